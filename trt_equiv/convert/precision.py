"""Reduced precision as ONNX: fp16 conversion and explicit int8 Q/DQ, both TensorRT-ready.

TensorRT 11 has no FP16/INT8 builder flags or calibrators: precision must be in the ONNX file (strongly
typed network). These recipes write ``model.fp16.onnx`` and ``model.int8.qdq.onnx`` next to nothing the
user owns (into the cache, keyed by content), and both files also run on ONNX Runtime, so recipe error
and TensorRT error are measured separately.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trt_equiv.cache_dir import content_hash, resolve_cache_dir
from trt_equiv.convert.qdq import validate_qdq
from trt_equiv.data import CALIBRATION_BATCH, CALIBRATION_SAMPLES, Dataset
from trt_equiv.errors import ConversionError, InputValidationError
from trt_equiv.locking import build_once
from trt_equiv.progress import step
from trt_equiv.runtime import is_available, package_version, require

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
FP16_METHODS = ("onnxconverter", "autocast")

#: Histogram settings. ORT's defaults (128 bins, 128 quantized bins) leave entropy nothing to search, so
#: it returns the min-max range; 2048 bins / 128 quantized bins is what TensorRT's entropy calibrator uses.
HISTOGRAM_BINS = 2048
QUANTIZED_BINS = 128
PERCENTILE = 99.999


@dataclass(frozen=True)
class RecipeResult:
    """A reduced-precision ONNX file and what the recipe did."""

    path: Path
    precision: str
    method: str
    #: fp16: nodes left in float32 (op type blocked or kept by AutoCast); int8: nodes left unquantized
    kept_fp32: list[str] = field(default_factory=list)
    #: True when the file came from the cache (no conversion or calibration ran)
    cache_hit: bool = False
    info: dict[str, object] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ fp16


def fp16_onnx(
    fp32_onnx: str | Path, *, method: str = "onnxconverter", cache_dir: str | Path | None = None
) -> RecipeResult:
    """float16 weights and activations, float32 inputs and outputs (so callers feed the same arrays).

    ``method="autocast"`` uses NVIDIA ModelOpt AutoCast (optional dependency), which keeps
    overflow-prone nodes in float32 by measuring their ranges.
    """
    if method not in FP16_METHODS:
        raise InputValidationError(f"fp16 method: expected one of {FP16_METHODS}, got {method!r}")
    fp32_onnx = Path(fp32_onnx)
    versions = (
        f"onnxconverter-common={package_version('onnxconverter-common')},modelopt={package_version('nvidia-modelopt')}"
    )
    key = content_hash([fp32_onnx], extra=["fp16", method, versions])
    target = resolve_cache_dir(cache_dir) / "precision" / key / "model.fp16.onnx"

    def convert(tmp: Path) -> None:
        onnx = require("onnx")
        if method == "autocast":
            if not is_available("modelopt"):
                raise ConversionError("fp16 method 'autocast' needs NVIDIA ModelOpt: pip install nvidia-modelopt[onnx]")
            from modelopt.onnx.autocast import convert_to_mixed_precision

            model = convert_to_mixed_precision(onnx_path=str(fp32_onnx), low_precision_type="fp16", keep_io_types=True)
        else:
            float16 = require("onnxconverter_common.float16")
            model = float16.convert_float_to_float16(onnx.load(str(fp32_onnx)), keep_io_types=True)
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # onnx.checker.ValidationError
            raise ConversionError(f"fp16 recipe ({method}) produced an invalid model from {fp32_onnx}: {exc}") from exc
        onnx.save(model, str(tmp))

    built = build_once(target, convert)
    return RecipeResult(target, "fp16", method, kept_fp32=fp32_nodes(target), cache_hit=not built)


def fp32_nodes(fp16_path: Path) -> list[str]:
    """Compute nodes of an fp16 model that still run in float32 (Casts at the I/O boundary excluded)."""
    onnx = require("onnx")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp16_path)))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    kept = []
    for node in graph.node:
        if node.op_type in ("Cast", "Constant", "Shape", "Reshape", "Transpose", "Squeeze", "Unsqueeze"):
            continue
        if any(types.get(o) == onnx.TensorProto.FLOAT for o in node.output):
            kept.append(f"{node.op_type}:{node.name}")
    return kept


# ------------------------------------------------------------------------------------------------ int8


def check_calibration_data(data: Dataset) -> None:
    """Refuse calibration sets that cannot give meaningful ranges (constant, all zeros, NaN)."""
    x = data.x[:CALIBRATION_SAMPLES]
    if not np.isfinite(x).all():
        raise ConversionError(f"calibration set {data.source}: contains NaN/Inf; ranges would be meaningless")
    if float(np.ptp(x)) == 0.0:
        raise ConversionError(
            f"calibration set {data.source}: every value is {float(x.flat[0])} (constant input); int8 ranges "
            "calibrated on it would collapse — pass real samples from the training distribution"
        )
    per_sample = x.reshape(len(x), -1)
    if len(x) > 1 and np.all(per_sample == per_sample[0]):
        raise ConversionError(f"calibration set {data.source}: all {len(x)} samples are identical")


def int8_qdq_onnx(
    fp32_onnx: str | Path,
    calibration: Dataset,
    *,
    method: str = "minmax",
    samples: int = CALIBRATION_SAMPLES,
    batch_size: int = CALIBRATION_BATCH,
    symmetric_activations: bool = True,
    nodes_to_exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
) -> RecipeResult:
    """Explicit int8 Q/DQ with ONNX Runtime ``quantize_static``, in the form TensorRT accepts.

    QDQ format, QInt8 activations and weights, symmetric (TensorRT requires zero point 0), per-channel
    weights, bias left in float (TensorRT's parser rejects int32 DequantizeLinear inputs). Calibration
    ranges are computed once per (model, calibration data, method) and cached as ORT's calibration JSON.
    Every output goes through ``validate_qdq``; ``symmetric_activations=False`` exists to show that the
    validator catches it. ``nodes_to_exclude``: node names left unquantized (float32), as chosen by the
    accuracy-aware fallback (``trt_equiv.convert.int8_fallback``); they are part of the cache key.
    """
    if method not in CALIBRATION_METHODS:
        raise InputValidationError(f"calibration method: expected one of {CALIBRATION_METHODS}, got {method!r}")
    fp32_onnx = Path(fp32_onnx)
    calib = calibration.take(samples)
    check_calibration_data(calib)
    _check_calibration_shape(fp32_onnx, calib)
    root = resolve_cache_dir(cache_dir) / "precision"
    settings = [
        f"onnxruntime={package_version('onnxruntime', 'onnxruntime-gpu')}",
        method,
        f"bins={HISTOGRAM_BINS}",
        f"qbins={QUANTIZED_BINS}",
        f"pct={PERCENTILE}",
        f"batch={batch_size}",
    ]
    calib_key = content_hash([fp32_onnx], extra=[*settings, _array_hash(calib.x)])
    ranges = root / "calibration" / f"{calib_key}.json"
    with step(f"int8 calibration ({method}, {len(calib)} samples)") if not ranges.exists() else nullcontext():
        calibrated = build_once(ranges, lambda tmp: _calibrate(fp32_onnx, calib, method, batch_size, tmp))
    excluded = sorted(set(nodes_to_exclude))
    if excluded:
        _check_node_names(fp32_onnx, excluded)
    settings = ["int8-qdq", f"symmetric={symmetric_activations}", *(f"exclude={n}" for n in excluded)]
    key = content_hash([fp32_onnx, ranges], extra=settings)
    target = root / key / "model.int8.qdq.onnx"
    built = build_once(
        target, lambda tmp: _quantize(fp32_onnx, ranges, method, symmetric_activations, tmp, nodes_to_exclude=excluded)
    )
    report = validate_qdq(target)
    return RecipeResult(
        target, "int8", method, kept_fp32=report.unquantized, cache_hit=not (built or calibrated),
        info={"calibration_cache": str(ranges), "calibration_samples": len(calib), "qdq_pairs": report.pairs},
    )  # fmt: skip


def _check_calibration_shape(fp32_onnx: Path, data: Dataset) -> None:
    """The calibration samples must fit the model's input (else ONNX Runtime fails mid-calibration)."""
    onnx = require("onnx")
    graph = onnx.load(str(fp32_onnx), load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim[1:]
    want = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    got = tuple(data.x.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got, strict=False)):
        shown = ", ".join("?" if w is None else str(w) for w in want)
        raise InputValidationError(
            f"calibration set {data.source}: expected samples shaped ({shown}) like the model input, got {got}"
        )


def _check_node_names(fp32_onnx: Path, names: Sequence[str]) -> None:
    """Nodes to exclude must exist (ORT would silently ignore a misspelt name and quantize everything)."""
    graph = require("onnx").load(str(fp32_onnx), load_external_data=False).graph
    unknown = sorted(set(names) - {n.name for n in graph.node})
    if unknown:
        raise InputValidationError(f"nodes_to_exclude: expected node names of {fp32_onnx}, got unknown {unknown}")


def _array_hash(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x).tobytes() + str(x.shape).encode()).hexdigest()


def _ort_method(method: str):
    quant = require("onnxruntime.quantization")
    return {
        "minmax": quant.CalibrationMethod.MinMax,
        "entropy": quant.CalibrationMethod.Entropy,
        "percentile": quant.CalibrationMethod.Percentile,
    }[method]


@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """ORT's quantizer prints progress to stdout and pre-processing advice to the root logger; keep
    stdout for our tables and show its messages only at debug level."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        root.setLevel(level)


class _Reader:
    """ONNX Runtime CalibrationDataReader over consecutive calibration batches."""

    def __init__(self, input_name: str, data: Dataset, batch_size: int) -> None:
        self._input = input_name
        self._batches: Iterator[np.ndarray] = iter(
            [data.x[s : s + batch_size] for s in range(0, len(data), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input: batch}


def _calibrate(fp32_onnx: Path, data: Dataset, method: str, batch_size: int, out: Path) -> None:
    """Run the calibrator with real histogram settings and save ORT's calibration-cache JSON."""
    import tempfile

    onnx = require("onnx")
    calibrate = require("onnxruntime.quantization.calibrate")
    extra: dict[str, object] = {"symmetric": True}
    if method in ("entropy", "percentile"):
        extra = {"num_bins": HISTOGRAM_BINS, "symmetric": True}
    if method == "entropy":
        extra["num_quantized_bins"] = QUANTIZED_BINS
    if method == "percentile":
        extra["percentile"] = PERCENTILE
    model = onnx.load(str(fp32_onnx))
    input_name = model.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="trt_equiv_calib.") as tmp, _quiet_ort():
        calibrator = calibrate.create_calibrator(
            fp32_onnx, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_ort_method(method), extra_options=extra,
        )  # fmt: skip
        try:
            calibrator.collect_data(_Reader(input_name, data, batch_size))
            tensors = calibrator.compute_data()
        except Exception as exc:  # ORT raises its own Fail/InvalidArgument types
            raise ConversionError(f"onnxruntime calibration ({method}) failed on {fp32_onnx}: {exc}") from exc
        del calibrator
    # ORT's own calibration-cache format, which quantize_static(calibration_cache_path=...) reads back
    calibrate.save_tensors_data(tensors, out)


def _quantize(
    fp32_onnx: Path,
    ranges: Path,
    method: str,
    symmetric_activations: bool,
    out: Path,
    nodes_to_exclude: Sequence[str] = (),
) -> None:
    quant = require("onnxruntime.quantization")
    try:
        with _quiet_ort():
            quant.quantize_static(
                str(fp32_onnx), str(out), calibration_data_reader=None,
                quant_format=quant.QuantFormat.QDQ,
                activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                per_channel=True, calibrate_method=_ort_method(method), calibration_cache_path=str(ranges),
                nodes_to_exclude=list(nodes_to_exclude),
                extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True,
                               "QuantizeBias": False},
            )  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"onnxruntime quantize_static failed on {fp32_onnx}: {exc}") from exc
