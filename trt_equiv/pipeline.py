"""One model's artefacts and backends: the object the CLI, the pytest plugin and the benchmarks share.

``Pipeline`` knows the SavedModel, its data, the cache, and how to get every artefact per precision
(fp32 ONNX by conversion or from the user, reduced-precision ONNX by recipe, engines by build or from the
user); ``open_backend`` turns a (backend, precision) pair into a ready ``Backend`` and
``unavailable_reason`` says, before anything heavy runs, why a pair cannot run here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trt_equiv.backends.base import PRECISIONS, Backend, TensorSpec, onnx_precision
from trt_equiv.backends.savedmodel import SavedModelBackend, check_savedmodel_dir
from trt_equiv.cache_dir import resolve_cache_dir
from trt_equiv.data import BUNDLED_CALIBRATION, BUNDLED_MODEL, BUNDLED_TEST, Dataset, load_npz
from trt_equiv.errors import EngineError, InputValidationError, ModelLoadError, TrtEquivError
from trt_equiv.runtime import (
    INSTALL_HINTS,
    is_available,
    onnxruntime_cuda_unavailable_reason,
    tensorrt_execution_unavailable_reason,
)

#: "ortcuda" is ONNX Runtime's CUDA provider on the same ONNX files (no "-": labels split on the first one)
BACKENDS = ("savedmodel", "onnxruntime", "ortcuda", "tflite", "tensorrt", "cpp")
#: what gets compared by default: every candidate runtime at the precisions it supports
DEFAULT_CANDIDATES = ("onnxruntime", "ortcuda", "tflite", "tensorrt", "cpp")
DEFAULT_PRECISIONS = ("fp32", "fp16", "int8")


def parse_list(value: str | list[str] | tuple[str, ...], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Split a comma list (or take a sequence) and check every item is allowed."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    items = [i for i in items if i]
    bad = [i for i in items if i not in allowed]
    if bad or not items:
        raise InputValidationError(f"{what}: expected a comma list from {', '.join(allowed)}, got {value!r}")
    return tuple(dict.fromkeys(items))


def parse_batch_sizes(value: str | list[int] | tuple[int, ...]) -> tuple[int | None, ...]:
    """``"1,7,16,32,all"`` → (1, 7, 16, 32, None); ``None`` means the whole set in one call."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[int | None] = []
    for item in items:
        text = str(item).strip().lower()
        if text in ("all", "none", "whole"):
            out.append(None)
            continue
        try:
            size = int(text)
        except ValueError:
            size = 0
        if size < 1:
            raise InputValidationError(f"batch sizes: expected positive integers or 'all', got {item!r}")
        out.append(size)
    if not out:
        raise InputValidationError(f"batch sizes: expected at least one size, got {value!r}")
    return tuple(dict.fromkeys(out))


@dataclass
class Pipeline:
    """A SavedModel with its data and cache, and every artefact derived from it."""

    model_dir: Path = BUNDLED_MODEL
    data: Dataset | None = None
    calibration: Dataset | None = None
    cache_dir: Path | None = None
    #: a user's ONNX file checked instead of converting one
    onnx_override: Path | None = None
    #: a user's engine file checked instead of building one (its precision is the engine's own)
    engine_override: Path | None = None
    calibration_method: str = "minmax"
    #: engine optimization profile items (``--profile``): ``MIN,OPT,MAX`` for every input's batch,
    #: ``NAME:MIN,OPT,MAX`` for one input's batch, ``NAME:1x8,16x128,32x512`` for one input's whole shape range
    profile: tuple[str, ...] = ("1,16,32",)
    #: the SavedModel signature whose inputs and outputs are compared (``--signature``)
    signature: str = "serving_default"
    #: a user's fp16 / int8 ONNX files checked instead of producing them by recipe (``--onnx fp16=FILE``)
    precision_onnx_overrides: dict[str, Path] = field(default_factory=dict)
    #: "auto": keep the fewest compute nodes in float32 that make int8 pass its gate (convert/int8_fallback.py)
    int8_fallback: str = "off"
    #: reference outputs saved by ``trt-equiv golden``: used instead of running the SavedModel (no TensorFlow)
    golden: Path | None = None
    _onnx: dict[str, Path] = field(default_factory=dict, repr=False)
    _engines: dict[str, object] = field(default_factory=dict, repr=False)
    _reference: SavedModelBackend | None = field(default=None, repr=False)
    _reference_outputs: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _bound: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def create(
        cls,
        model: str | Path | None = None,
        data: str | Path | None = None,
        *,
        calibration: str | Path | None = None,
        cache_dir: str | Path | None = None,
        onnx: str | Path | Sequence[str] | None = None,
        engine: str | Path | None = None,
        require_data: bool = True,
        **options: object,
    ) -> Pipeline:
        """Validate user paths up front; defaults are the bundled model, its test and calibration splits.

        ``onnx`` is the user's fp32 ONNX file, or a list of ``FILE`` / ``PRECISION=FILE`` entries (the fp16 or
        int8 file checked instead of the recipe's). ``require_data=False`` is for commands that only produce
        artefacts (``trt-equiv build``).
        """
        bundled = model is None
        model_dir = check_savedmodel_dir(BUNDLED_MODEL if model is None else model)
        if data is None and not bundled and require_data:
            raise InputValidationError("--data: expected a .npz data file for a user's model, got none")
        dataset = load_npz(BUNDLED_TEST if data is None else data) if (data or bundled) else None
        calib = None
        if calibration is not None:
            calib = load_npz(calibration, labels=False)
        elif bundled:
            calib = load_npz(BUNDLED_CALIBRATION, labels=False)
        onnx_files = parse_onnx_overrides(onnx)
        golden = options.pop("golden", None)
        if golden is not None:  # checked now: a golden file from other data is refused before anything runs
            from trt_equiv.golden import read_golden_meta

            read_golden_meta(str(golden))
            options["golden"] = Path(str(golden))
        if engine is not None and not Path(engine).is_file():
            raise InputValidationError(f"--engine: expected an existing file, got {engine}")
        if onnx_files:  # parse them now: a file that is not ONNX is a usage error, not a crash mid-recipe
            from trt_equiv.convert.onnx import load_onnx

            for path in onnx_files.values():
                load_onnx(path, what="--onnx", load_external_data=False)
        return cls(
            model_dir=model_dir,
            data=dataset,
            calibration=calib,
            cache_dir=resolve_cache_dir(cache_dir),
            onnx_override=onnx_files.pop("fp32", None),
            precision_onnx_overrides=onnx_files,
            engine_override=Path(engine) if engine else None,
            **options,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ reference and data

    def reference_backend(self) -> SavedModelBackend:
        """The opened SavedModel (loaded once): its signature names every input and output."""
        if self._reference is None:
            backend = SavedModelBackend(self.model_dir, signature=self.signature)
            backend.open()
            self._reference = backend
        return self._reference

    def input_specs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs: from the golden file's record when there is one, else from the SavedModel."""
        if self.golden is not None:
            from trt_equiv.golden import golden_input_specs

            return golden_input_specs(self.golden)
        specs = self.reference_backend().input_specs
        assert specs is not None
        return specs

    def bound_data(self) -> Dataset:
        """The data set keyed by the model's input names, checked against them (before any conversion)."""
        if self.data is None:
            raise InputValidationError("--data: expected a .npz data file, got none")
        if "data" not in self._bound:
            self.data = self.data.bind(self.input_specs())
            self._bound.add("data")
        return self.data

    def bound_calibration(self) -> Dataset | None:
        """The calibration set keyed by the model's input names (None when there is none)."""
        if self.calibration is not None and "calibration" not in self._bound:
            self.calibration = self.calibration.without_labels().bind(self.input_specs())
            self._bound.add("calibration")
        return self.calibration

    def reference_outputs(self) -> dict[str, np.ndarray]:
        """SavedModel outputs (every output, by name) for the whole data set, computed once, in chunks."""
        if self._reference_outputs is None:
            if self.golden is not None:
                from trt_equiv.golden import load_golden

                self._reference_outputs = load_golden(self.golden, self.bound_data())
            else:
                self._reference_outputs = self.reference_backend().infer(self.bound_data().feeds())
        return self._reference_outputs

    # ------------------------------------------------------------------ artefacts

    def onnx(self, precision: str = "fp32") -> Path:
        """The ONNX file for ``precision`` (converted / produced by recipe once, then cached)."""
        if precision not in self._onnx:
            if onnx_precision(precision) == "fp32":
                if self.onnx_override is not None:
                    path = self.onnx_override
                else:
                    from trt_equiv.convert.onnx import savedmodel_to_onnx

                    path = savedmodel_to_onnx(self.model_dir, cache_dir=self.cache_dir, signature=self.signature)
            elif onnx_precision(precision) in self.precision_onnx_overrides:
                path = self.precision_onnx_overrides[onnx_precision(precision)]
            else:
                path = self._precision_onnx(precision)
            self._onnx[precision] = path
        return self._onnx[precision]

    def _precision_onnx(self, precision: str) -> Path:
        if precision == "int8" and self.calibration is None:
            raise InputValidationError(
                "int8: expected a calibration set (--calibration FILE.npz) for a user's model, got none; "
                "trt_equiv never calibrates on the test data or on random numbers"
            )
        from trt_equiv.convert import precision as recipes

        fp32 = self.onnx("fp32")
        if precision == "fp16":
            return recipes.fp16_onnx(fp32, cache_dir=self.cache_dir).path
        if precision == "int8" and self.int8_fallback != "off":
            from trt_equiv.convert.int8_fallback import FALLBACK_MODES, int8_with_fallback

            if self.int8_fallback not in FALLBACK_MODES:
                raise InputValidationError(
                    f"int8 fallback: expected one of {FALLBACK_MODES}, got {self.int8_fallback!r}"
                )
            calibration = self.bound_calibration()
            assert calibration is not None
            fallback = int8_with_fallback(fp32, calibration, calibration_method=self.calibration_method,
                                          cache_dir=self.cache_dir)  # fmt: skip
            print(fallback.summary(), file=sys.stderr)
            return fallback.path
        if precision == "int8":
            calibration = self.bound_calibration()
            assert calibration is not None
            method = self.calibration_method
            return recipes.int8_qdq_onnx(fp32, calibration, method=method, cache_dir=self.cache_dir).path
        raise InputValidationError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")

    def engine(self, precision: str = "fp32") -> Path:
        """The TensorRT engine for ``precision``: the user's (checked first), or built from the ONNX and cached."""
        return self.cached_engine(precision).path

    def cached_engine(self, precision: str = "fp32"):
        """``CachedEngine`` (path, metadata, hit) for ``precision``; fp16/int8 precision lives in the ONNX."""
        if precision not in self._engines:
            from trt_equiv.trt.build import Profile
            from trt_equiv.trt.cache import CachedEngine, EngineCache, check_engine_file

            if self.engine_override is not None:
                check = check_engine_file(self.engine_override, onnx_path=self._onnx_for_engine(precision),
                                          recipe=precision)  # fmt: skip
                if not check:
                    raise EngineError(f"--engine is not usable for this model and precision:\n{check}")
                cached = CachedEngine(self.engine_override, check.metadata or {}, hit=True, build_seconds=0.0)
            else:
                cached = EngineCache(self.cache_dir / "engines" if self.cache_dir else None).get(
                    self.onnx(onnx_precision(precision)), recipe=precision, profiles=[Profile.parse(list(self.profile))]
                )
            self._engines[precision] = cached
        return self._engines[precision]

    def _onnx_for_engine(self, precision: str) -> Path | None:
        """The ONNX a user's engine should have been built from, when we can produce it here."""
        try:
            return self.onnx(onnx_precision(precision))
        except TrtEquivError:
            return None

    # ------------------------------------------------------------------ backends

    @staticmethod
    def unavailable_reason(backend: str, precision: str = "fp32", cache_dir: Path | None = None) -> str | None:
        """Why (backend, precision) cannot run on this machine, naming what is missing; None if it can."""
        if backend not in BACKENDS:
            return f"unknown backend {backend!r}"
        if backend == "savedmodel":
            return None if is_available("tensorflow") else f"TensorFlow not installed ({INSTALL_HINTS['tensorflow']})"
        if backend in ("onnxruntime", "ortcuda"):
            # tf2onnx is needed only to convert a SavedModel; with --onnx / --golden ONNX Runtime runs without it,
            # and a conversion that needs it raises MissingRuntimeError naming it
            missing = [m for m in ("onnxruntime", "onnx") if not is_available(m)]
            if precision == "fp16" and not is_available("onnxconverter_common"):
                missing.append("onnxconverter_common")
            hints = "; ".join(INSTALL_HINTS[m] for m in missing)
            if missing:
                return f"ONNX Runtime pipeline unavailable: {', '.join(missing)} not installed ({hints})"
            return onnxruntime_cuda_unavailable_reason() if backend == "ortcuda" else None
        if backend == "tflite":  # converted by TensorFlow; run by LiteRT or TensorFlow's interpreter
            return None if is_available("tensorflow") else f"TensorFlow not installed ({INSTALL_HINTS['tensorflow']})"
        reason = tensorrt_execution_unavailable_reason()
        if reason or backend == "tensorrt":
            return reason
        from trt_equiv.backends.cpp import runner_unavailable_reason  # the C++ runner binary

        return runner_unavailable_reason(cache_dir=cache_dir)

    def open_backend(self, backend: str, precision: str = "fp32", **options: object) -> Backend:
        """A configured backend for (backend, precision); artefacts are produced on demand."""
        if backend == "savedmodel":
            return SavedModelBackend(self.model_dir, signature=self.signature)
        if backend == "onnxruntime":
            from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

            base = onnx_precision(precision)
            return OnnxRuntimeBackend(self.onnx(base), precision=base, **options)  # type: ignore[arg-type]
        if backend == "tflite":
            from trt_equiv.backends.tflite import TFLiteBackend
            from trt_equiv.convert.tflite import savedmodel_to_tflite

            calib, cache = (self.bound_calibration() if precision == "int8" else None), self.cache_dir
            model = savedmodel_to_tflite(self.model_dir, precision, calibration=calib, cache_dir=cache)
            return TFLiteBackend(model, precision=precision, **options)  # type: ignore[arg-type]
        if backend == "ortcuda":
            from trt_equiv.backends.onnxruntime import OnnxRuntimeCudaBackend

            base = onnx_precision(precision)
            return OnnxRuntimeCudaBackend(self.onnx(base), precision=base, **options)  # type: ignore[arg-type]
        if backend == "tensorrt":
            from trt_equiv.backends.tensorrt import TensorRTBackend

            return TensorRTBackend(self.engine(precision), precision=precision, **options)  # type: ignore[arg-type]
        if backend == "cpp":
            from trt_equiv.backends.cpp import CppRunnerBackend

            engine = self.engine(precision)
            return CppRunnerBackend(engine, precision=precision, cache_dir=self.cache_dir, **options)  # type: ignore[arg-type]
        raise ModelLoadError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")

    def reference(self) -> dict[str, np.ndarray]:
        """SavedModel outputs for the whole data set, by output name (``reference_outputs``)."""
        return self.reference_outputs()


def parse_onnx_overrides(value: str | Path | Sequence[str] | None) -> dict[str, Path]:
    """``--onnx FILE`` (the fp32 file) and ``--onnx fp16=FILE`` / ``--onnx int8=FILE`` → {precision: path}."""
    if value is None:
        return {}
    items = [value] if isinstance(value, str | Path) else list(value)
    out: dict[str, Path] = {}
    for item in items:
        text = str(item)
        precision, sep, path = text.partition("=")
        if not sep or precision not in ("fp32", "fp16", "int8"):
            precision, path = "fp32", text
        if precision in out:
            raise InputValidationError(f"--onnx: expected one file per precision, got two for {precision}")
        if not Path(path).is_file():
            raise InputValidationError(f"--onnx: expected an existing file, got {path}")
        out[precision] = Path(path)
    return out
