"""Build a TensorRT engine from an ONNX file: one code path for TensorRT 8.6, 10, 11 and TensorRT for RTX.

What differs between those modules is decided by what the module has (``hasattr``), never by its version
string, so a 10.x minor that drops a flag, or a new RTX release, takes the right branch without an edit:

- explicit batch: passed only where implicit batch still exists (``Builder.max_batch_size``: 8.6/9.x);
- strong typing: the ``STRONGLY_TYPED`` flag is passed where weak typing still exists (10.x); where weak typing
  is gone (11.x, TensorRT for RTX) every network is strongly typed and the flag is deprecated or ignored;
  where the flag does not exist (8.6) the ONNX-level recipes fall back to the matching builder flag;
- legacy recipes (``fp16-legacy``/``int8-legacy``: ``BuilderFlag.FP16``/``INT8`` plus an entropy calibrator)
  exist only where those flags and ``IInt8EntropyCalibrator2`` do;
- TF32: cleared for ``fp32-strict`` where ``BuilderFlag.TF32`` exists;
- explicit target compute capabilities: only where ``ComputeCapability`` exists (TensorRT for RTX);
- progress: an ``IProgressMonitor`` where the module has one.

Loading (this module, cacheable) is separate from running (``trt_equiv.backends.tensorrt``).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import numpy as np

from trt_equiv.errors import EngineError, InputValidationError
from trt_equiv.trt.common import (
    atomic_write,
    captured_log,
    is_rtx,
    module_identity,
    resolve_module,
)

#: build recipes: the four precisions of ``trt_equiv.backends.base.PRECISIONS`` (precision taken from the ONNX
#: file for fp16/int8) plus the builder-flag recipes of TensorRT 8.6/10
RECIPES = ("fp32", "fp32-strict", "fp16", "int8", "fp16-legacy", "int8-legacy")
DEFAULT_WORKSPACE_BYTES = 1 << 30


class BuildWarning(UserWarning):
    """A build went through but something the caller asked for could not be honoured exactly."""


@dataclass(frozen=True)
class Profile:
    """Batch range of one optimization profile: the engine accepts batches ``min..max``, tuned for ``opt``."""

    min: int = 1
    opt: int = 16
    max: int = 32

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or not (
            1 <= self.min <= self.opt <= self.max
        ):
            raise InputValidationError(
                f"Profile: expected integers 1 <= min <= opt <= max, got min={self.min!r} opt={self.opt!r} "
                f"max={self.max!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Profile:
        """``"1:16:32"`` (min:opt:max) or ``"8"`` (min = opt = max), as typed on a command line."""
        parts = text.replace(",", ":").split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        if len(nums) == 1:
            return cls(nums[0], nums[0], nums[0])
        if len(nums) == 3:
            return cls(*nums)
        raise InputValidationError(f"profile: expected MIN:OPT:MAX or N (e.g. 1:16:32), got {text!r}")

    def as_list(self) -> list[int]:
        return [self.min, self.opt, self.max]


DEFAULT_PROFILE = Profile()


@dataclass(frozen=True)
class BuildOptions:
    """Everything that changes the engine bytes besides the ONNX file and the TensorRT module/device."""

    recipe: str = "fp32"
    profiles: tuple[Profile, ...] = (DEFAULT_PROFILE,)
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    #: e.g. ("8.6", "12.0"): build for these GPUs instead of the default (TensorRT for RTX only)
    target_compute_capabilities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise InputValidationError(f"recipe: expected one of {', '.join(RECIPES)}, got {self.recipe!r}")
        profiles = (self.profiles,) if isinstance(self.profiles, Profile) else tuple(self.profiles)
        if not profiles or not all(isinstance(p, Profile) for p in profiles):
            raise InputValidationError(f"profiles: expected one or more Profile objects, got {self.profiles!r}")
        object.__setattr__(self, "profiles", profiles)
        if not isinstance(self.workspace_bytes, int) or self.workspace_bytes < 1:
            raise InputValidationError(f"workspace_bytes: expected a positive integer, got {self.workspace_bytes!r}")
        targets = tuple(str(t) for t in self.target_compute_capabilities)
        for t in targets:
            if not re.fullmatch(r"\d+\.\d", t):
                raise InputValidationError(f"target_compute_capabilities: expected entries like '8.6', got {t!r}")
        object.__setattr__(self, "target_compute_capabilities", targets)

    @property
    def precision(self) -> str:
        """The backend precision this recipe produces (``int8-legacy`` → ``int8``)."""
        return self.recipe.removesuffix("-legacy")

    def key_dict(self) -> dict[str, Any]:
        """JSON-ready view used in the engine cache key and metadata."""
        return {
            "recipe": self.recipe,
            "profiles": [p.as_list() for p in self.profiles],
            "workspace_bytes": self.workspace_bytes,
            "target_compute_capabilities": list(self.target_compute_capabilities),
        }


@dataclass(frozen=True)
class Calibration:
    """Calibration batches for the ``int8-legacy`` recipe (an entropy calibrator over a numpy array).

    Only full batches are used: the calibrator must hand TensorRT exactly ``batch_size`` samples each time, and
    padding a short last batch with repeats would skew the histograms.
    """

    data: np.ndarray
    batch_size: int = 32
    cache_file: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray) or self.data.dtype != np.float32 or self.data.ndim < 2:
            got = f"{type(self.data).__name__} {getattr(self.data, 'dtype', '')} {getattr(self.data, 'shape', '')}"
            raise InputValidationError(f"calibration data: expected a float32 array (N, ...), got {got}")
        if self.batch_size < 1 or self.data.shape[0] < self.batch_size:
            raise InputValidationError(
                f"calibration: expected at least one full batch of {self.batch_size} samples, "
                f"got {self.data.shape[0]} samples"
            )

    @property
    def num_batches(self) -> int:
        return self.data.shape[0] // self.batch_size

    def batch(self, index: int) -> np.ndarray:
        """Batch ``index`` as a C-contiguous float32 array, shape (batch_size, ...)."""
        start = index * self.batch_size
        return np.ascontiguousarray(self.data[start : start + self.batch_size])

    def fingerprint(self) -> str:
        """sha256 over the samples actually used and the batch size: part of the engine cache key."""
        h = hashlib.sha256()
        used = np.ascontiguousarray(self.data[: self.num_batches * self.batch_size])
        h.update(f"{used.dtype.str}{used.shape}{self.batch_size}".encode())
        h.update(used.tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class BuildResult:
    """A serialized engine and how it was made."""

    engine: bytes
    seconds: float
    module: str
    version: str
    options: BuildOptions
    strongly_typed: bool
    #: network input name -> shape as parsed (-1 for dynamic dimensions)
    inputs: dict[str, tuple[int, ...]]
    timing_cache_used: bool
    #: what TensorRT logged at WARNING and worse during parse and build
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def size_bytes(self) -> int:
        return len(self.engine)


# --- capability decisions (pure: a fake module namespace is enough to test them) --------------------------


@dataclass(frozen=True)
class NetworkPlan:
    """How a recipe maps onto what a module can do."""

    creation_flags: int
    strongly_typed: bool
    set_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    calibrate: bool
    #: what the parsed network must contain: "fp32" (no reduced precision), "fp16" or "int8"
    network_precision: str


_ONNX_NAMES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.qdq.onnx"}


def plan_network(trt: Any, recipe: str) -> NetworkPlan:
    """Choose creation flags and builder flags for ``recipe`` from the module's capabilities."""
    if recipe not in RECIPES:
        raise InputValidationError(f"recipe: expected one of {', '.join(RECIPES)}, got {recipe!r}")
    ndcf = trt.NetworkDefinitionCreationFlag
    flags_enum = trt.BuilderFlag
    has_weak_typing = hasattr(flags_enum, "FP16")
    creation = 0
    if hasattr(trt.Builder, "max_batch_size") and hasattr(ndcf, "EXPLICIT_BATCH"):
        creation |= 1 << int(ndcf.EXPLICIT_BATCH)  # 8.6/9.x: dynamic shapes need explicit batch
    precision = recipe.removesuffix("-legacy").removesuffix("-strict")
    clear = ("TF32",) if recipe == "fp32-strict" and hasattr(flags_enum, "TF32") else ()

    if recipe.endswith("-legacy"):
        missing = [] if hasattr(flags_enum, precision.upper()) else [f"BuilderFlag.{precision.upper()}"]
        if precision == "int8" and not hasattr(trt, "IInt8EntropyCalibrator2"):
            missing.append("IInt8EntropyCalibrator2")
        if missing:
            name, version = module_identity(trt)
            raise EngineError(
                f"recipe {recipe!r} needs {' and '.join(missing)}, which {name} {version} does not have "
                f"(TensorRT 11 and TensorRT for RTX removed weak typing and calibrators): use the ONNX-level "
                f"recipe {precision!r} with the {precision} ONNX file ({_ONNX_NAMES[precision]}) instead"
            )
        return NetworkPlan(creation, False, (precision.upper(),), (), precision == "int8", "fp32")

    if has_weak_typing and hasattr(ndcf, "STRONGLY_TYPED"):
        # 10.x: opt in, so the fp16 casts and Q/DQ scales of the ONNX file are obeyed exactly
        return NetworkPlan(creation | (1 << int(ndcf.STRONGLY_TYPED)), True, (), clear, False, precision)
    if not has_weak_typing:
        # 11.x / RTX: always strongly typed; the flag is deprecated (11) or redundant (RTX)
        return NetworkPlan(creation, True, (), clear, False, precision)
    # 8.6: no strong typing; the builder only uses fp16 kernels / Q/DQ int8 when the flag allows it
    set_flags = (precision.upper(),) if precision in ("fp16", "int8") else ()
    return NetworkPlan(creation, False, set_flags, clear, False, precision)


def profile_shapes(
    input_name: str, shape: Sequence[int], profile: Profile
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) shapes for one input: the batch range on dimension 0, every other dimension fixed."""
    dims = tuple(int(d) for d in shape)
    if not dims:
        raise EngineError(f"input {input_name!r} is a scalar; expected a batch dimension first")
    rest = dims[1:]
    if any(d < 0 for d in rest):
        raise EngineError(
            f"input {input_name!r} has shape {dims}: only the batch dimension (first) may be dynamic, so a "
            f"batch profile can fix the rest; export the ONNX with fixed per-sample dimensions"
        )
    if dims[0] >= 0 and not (profile.min == profile.opt == profile.max == dims[0]):
        raise EngineError(
            f"input {input_name!r} has a fixed batch of {dims[0]} but the profile asks for "
            f"{profile.min}..{profile.max}; export the ONNX with a dynamic batch dimension"
        )
    return (profile.min, *rest), (profile.opt, *rest), (profile.max, *rest)


def check_network_precision(recipe: str, expected: str, has_reduced_float: bool, has_qdq: bool, source: str) -> None:
    """Refuse an ONNX file whose precision contradicts the recipe, instead of building a mislabelled engine."""
    if expected == "fp16" and not has_reduced_float:
        problem = "has no float16 tensors (use the fp16 ONNX, model.fp16.onnx)"
    elif expected == "int8" and not has_qdq:
        problem = "has no QuantizeLinear/DequantizeLinear nodes (use the int8 Q/DQ ONNX, model.int8.qdq.onnx)"
    elif expected == "fp32" and (has_reduced_float or has_qdq):
        found = "Q/DQ nodes" if has_qdq else "reduced-precision tensors"
        problem = f"already contains {found} (use the fp32 ONNX, model.onnx)"
    else:
        return
    raise EngineError(
        f"recipe {recipe!r} expects a {expected} network, but {source} {problem}; building it would give an engine "
        f"whose precision is not what its label says"
    )


def parser_errors(parser: Any) -> list[str]:
    """Every ONNX parser error with its node index, name and operator where the module reports them."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = err.node() if hasattr(err, "node") else -1
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        where = f"node #{node}" if node >= 0 else "model"
        if name:
            where += f" {name!r}"
        if op:
            where += f" ({op})"
        out.append(f"{where}: {err.desc()} [{err.code()}]")
    return out


def _target_capabilities(trt: Any, targets: Iterable[str]) -> list[Any]:
    targets = list(targets)
    if not targets:
        return []
    name, version = module_identity(trt)
    enum = getattr(trt, "ComputeCapability", None)
    if enum is None:
        raise EngineError(
            f"target_compute_capabilities {targets} asked for, but {name} {version} builds only for the GPU it runs "
            f"on; explicit targets need TensorRT for RTX"
        )
    out = []
    for t in targets:
        member = getattr(enum, "SM" + t.replace(".", ""), None)
        if member is None:
            known = sorted(f"{m[2:-1]}.{m[-1]}" for m in enum.__members__ if m.startswith("SM") and m[2:].isdigit())
            raise EngineError(f"{name} {version} cannot target compute capability {t}; it knows {', '.join(known)}")
        out.append(member)
    return out


# --- TensorRT callbacks (subclasses of module classes, so made per module) ------------------------------


def _progress_monitor(trt: Any, stream: TextIO) -> Any:
    """An IProgressMonitor printing the two outer phase levels (name, steps, duration) to ``stream``."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.depth: dict[str, int] = {}
            self.started: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            depth = self.depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self.depth[phase_name] = depth
            self.started[phase_name] = time.perf_counter()
            if depth <= 1:
                print(f"[trt_equiv] {'  ' * depth}{phase_name} ({num_steps} steps)", file=stream, flush=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            if self.depth.pop(phase_name, 0) == 0:
                took = time.perf_counter() - self.started.pop(phase_name, time.perf_counter())
                print(f"[trt_equiv] {phase_name} done in {took:.1f} s", file=stream, flush=True)

    return _Monitor()


def _entropy_calibrator(trt: Any, calibration: Calibration, input_name: str) -> Any:
    """An IInt8EntropyCalibrator2 feeding ``calibration``'s batches through one device buffer."""
    from trt_equiv.trt.cuda import DeviceBuffer

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.buffer = DeviceBuffer(calibration.batch(0).nbytes)

        def get_batch_size(self) -> int:
            return calibration.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= calibration.num_batches:
                return None
            if list(names) != [input_name]:
                raise EngineError(f"calibrator: TensorRT asked for inputs {list(names)}, expected [{input_name!r}]")
            self.buffer.copy_from_host(calibration.batch(self.index))
            self.index += 1
            return [self.buffer.ptr]

        def read_calibration_cache(self) -> bytes | None:
            path = calibration.cache_file
            return path.read_bytes() if path is not None and path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            if calibration.cache_file is not None:
                atomic_write(Path(calibration.cache_file), bytes(cache))

    return _Calibrator()


# --- timing cache --------------------------------------------------------------------------------------


def load_timing_cache(config: Any, path: Path | None) -> bool:
    """Attach the timing cache in ``path`` (or a fresh one) to ``config``; False when none was attached.

    A damaged file is replaced by an empty cache with a warning: it only costs build time.
    """
    if path is None:
        return False
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None and data:
        warnings.warn(f"timing cache {path} is unreadable; starting an empty one", BuildWarning, stacklevel=3)
        cache = config.create_timing_cache(b"")
    if cache is None:
        return False
    return bool(config.set_timing_cache(cache, ignore_mismatch=False))


def save_timing_cache(config: Any, path: Path) -> None:
    """Write the config's timing cache to ``path`` atomically (concurrent builders: last writer wins, whole)."""
    cache = config.get_timing_cache()
    if cache is not None:
        atomic_write(path, bytes(cache.serialize()))


# --- the builder ---------------------------------------------------------------------------------------


def _network_precision(trt: Any, network: Any) -> tuple[bool, bool]:
    """(has reduced-precision float tensors, has Q/DQ layers) of a parsed network."""
    reduced = {getattr(trt.DataType, n) for n in ("HALF", "BF16", "FP8") if hasattr(trt.DataType, n)}
    qdq = {getattr(trt.LayerType, n) for n in ("QUANTIZE", "DEQUANTIZE") if hasattr(trt.LayerType, n)}
    has_reduced = has_qdq = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        has_qdq = has_qdq or layer.type in qdq
        has_reduced = has_reduced or any(layer.get_output(j).dtype in reduced for j in range(layer.num_outputs))
    return has_reduced, has_qdq


def build_serialized_engine(
    onnx_path: str | os.PathLike[str],
    options: BuildOptions | None = None,
    *,
    module: str | ModuleType | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    calibration: Calibration | None = None,
    progress: bool | None = None,
    network_hook: Callable[[Any], None] | None = None,
) -> BuildResult:
    """Parse ``onnx_path`` and build a serialized engine; raise EngineError with TensorRT's log on failure.

    ``timing_cache``: file loaded before and saved after the build (ignored where the module's timing cache is
    a no-op: TensorRT for RTX). ``calibration``: batches for ``int8-legacy``. ``progress``: print build phases
    to stderr; None prints only when stderr is a terminal, so CI logs stay quiet. ``network_hook``: called with
    the parsed network before the build (``trt_equiv.trt.debug`` marks debug tensors there).
    """
    options = options or BuildOptions()
    trt = resolve_module(module)
    name, version = module_identity(trt)
    path = Path(onnx_path)
    if not path.is_file():
        raise InputValidationError(f"onnx_path: expected an existing ONNX file, got {str(path)!r}")
    plan = plan_network(trt, options.recipe)
    if plan.calibrate and calibration is None:
        raise EngineError(f"recipe {options.recipe!r} needs calibration batches (Calibration(data=...)), got none")
    targets = _target_capabilities(trt, options.target_compute_capabilities)
    use_timing_cache = (
        timing_cache is not None and not is_rtx(trt) and hasattr(trt.IBuilderConfig, "create_timing_cache")
    )
    show_progress = sys.stderr.isatty() if progress is None else progress

    with captured_log(trt) as (logger, capture):
        builder = trt.Builder(logger)
        network = builder.create_network(plan.creation_flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(path)):
            errors = parser_errors(parser) or capture.problems()
            raise EngineError(
                f"{name} {version} could not parse {path}:\n  " + "\n  ".join(errors or ["(no error reported)"])
            )
        check_network_precision(options.recipe, plan.network_precision, *_network_precision(trt, network), str(path))
        if network_hook is not None:
            network_hook(network)

        inputs = {}
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            inputs[tensor.name] = tuple(int(d) for d in tensor.shape)

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
        for flag in plan.set_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        for flag in plan.clear_flags:
            config.clear_flag(getattr(trt.BuilderFlag, flag))
        if targets:
            config.num_compute_capabilities = len(targets)
            for i, cc in enumerate(targets):
                if not config.set_compute_capability(cc, i):
                    raise EngineError(f"{name} {version} refused target compute capability {cc}")
        for index, prof in enumerate(options.profiles):
            profile = builder.create_optimization_profile()
            for input_name, shape in inputs.items():
                profile.set_shape(input_name, *profile_shapes(input_name, shape, prof))
            if config.add_optimization_profile(profile) < 0:
                raise EngineError(
                    f"{name} {version} rejected optimization profile #{index} {prof}:\n  {capture.report()}"
                )
        calibrator = None
        if plan.calibrate:
            assert calibration is not None
            if len(inputs) != 1:
                raise EngineError(f"int8-legacy calibration supports one network input, the network has {list(inputs)}")
            ((input_name, shape),) = inputs.items()
            calibrator = _entropy_calibrator(trt, calibration, input_name)
            if hasattr(config, "set_calibration_profile"):
                fixed = Profile(calibration.batch_size, calibration.batch_size, calibration.batch_size)
                cal_profile = builder.create_optimization_profile()
                cal_profile.set_shape(input_name, *profile_shapes(input_name, shape, fixed))
                config.set_calibration_profile(cal_profile)
            config.int8_calibrator = calibrator
        timing_path = Path(timing_cache) if use_timing_cache and timing_cache is not None else None
        timing_used = load_timing_cache(config, timing_path)
        monitor = None
        if show_progress and hasattr(trt, "IProgressMonitor"):
            monitor = _progress_monitor(trt, sys.stderr)
            config.progress_monitor = monitor

        start = time.perf_counter()
        try:
            serialized = builder.build_serialized_network(network, config)
        except Exception as exc:  # some bindings raise instead of returning None
            raise EngineError(
                f"{name} {version} failed to build {path} ({options.recipe}): {exc}\n"
                f"  TensorRT said:\n  {capture.report()}"
            ) from exc
        seconds = time.perf_counter() - start
        if serialized is None:
            raise EngineError(
                f"{name} {version} failed to build {path} with recipe {options.recipe!r}, profiles "
                f"{[p.as_list() for p in options.profiles]}, targets "
                f"{list(options.target_compute_capabilities) or 'default'}.\n  TensorRT said:\n  {capture.report()}"
            )
        if timing_used and timing_path is not None:
            save_timing_cache(config, timing_path)
        del calibrator, monitor  # kept alive until the build returned: TensorRT calls back into them
        return BuildResult(
            engine=bytes(serialized),
            seconds=seconds,
            module=name,
            version=version,
            options=options,
            strongly_typed=plan.strongly_typed,
            inputs=inputs,
            timing_cache_used=timing_used,
            warnings=tuple(capture.problems()),
        )
