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
from trt_equiv.hashing import array_hash
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


Shape = tuple[int, ...]


def _check_range(label: str, lo: Shape, opt: Shape, hi: Shape) -> None:
    if (
        not (len(lo) == len(opt) == len(hi))
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (*lo, *opt, *hi))
        or not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True))
    ):
        raise InputValidationError(
            f"{label}: expected integers 1 <= min <= opt <= max (in every dimension), got min={lo} opt={opt} max={hi}"
        )


@dataclass(frozen=True)
class InputRange:
    """One input's range in a profile: its batch alone (shapes of length 1) or its full shape, batch first."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputValidationError(f"profile: expected an input name, got {self.name!r}")
        _check_range(f"profile for input {self.name!r}", self.min, self.opt, self.max)

    @property
    def batch_only(self) -> bool:
        return len(self.min) == 1

    def key(self) -> list[list[int]]:
        return [list(self.min), list(self.opt), list(self.max)]


_BATCH_ONLY = re.compile(r"\d+|\d+([:,])\d+\1\d+")
_SHAPE = re.compile(r"\d+(x\d+)*")


@dataclass(frozen=True)
class Profile:
    """One optimization profile: the batch range of every input (``min..max``, tuned for ``opt``), plus per-input
    ranges (``inputs``) that override one input's batch or give the range of its other dynamic dimensions.

    Text form (``Profile.parse``, the CLI's ``--profile``; several items separated by spaces or given as a list):

    - ``MIN,OPT,MAX`` (or ``MIN:OPT:MAX``, or ``N`` for a fixed batch): the batch range of every input;
    - ``NAME:MIN,OPT,MAX``: the batch range of input ``NAME`` only;
    - ``NAME:AxB,CxD,ExF``: the full min, opt and max shapes of input ``NAME``, batch first, ``x`` between
      dimensions, e.g. ``input_ids:1x8,16x128,32x512`` (batch 1..32, sequence length 8..512).

    The name is everything before the last ``:``, so tf2onnx names such as ``ids:0`` work
    (``ids:0:1x8,16x16,32x64``). Every dynamic dimension other than the batch needs a full-shape item.
    """

    min: int = 1
    opt: int = 16
    max: int = 32
    inputs: tuple[InputRange, ...] = ()

    def __post_init__(self) -> None:
        _check_range("Profile", (self.min,), (self.opt,), (self.max,))
        items = tuple(self.inputs)
        if not all(isinstance(i, InputRange) for i in items):
            raise InputValidationError(f"Profile.inputs: expected InputRange objects, got {self.inputs!r}")
        names = [i.name for i in items]
        if len(set(names)) != len(names):
            raise InputValidationError(f"Profile: an input is given twice: {names}")
        object.__setattr__(self, "inputs", items)

    @classmethod
    def parse(cls, text: str | Sequence[str]) -> Profile:
        """A profile from its text form (see the class docstring), as typed on a command line."""
        items = text.split() if isinstance(text, str) else [t for part in text for t in part.split()]
        if not items:
            raise InputValidationError("profile: expected MIN,OPT,MAX or NAME:MIN,OPT,MAX items, got nothing")
        batch: Shape | None = None
        inputs: list[InputRange] = []
        for item in items:
            if _BATCH_ONLY.fullmatch(item):
                if batch is not None:
                    raise InputValidationError(f"profile: the batch range for all inputs is given twice ({item!r})")
                nums = tuple(int(p) for p in re.split("[:,]", item))
                batch = nums * 3 if len(nums) == 1 else nums
                continue
            name, sep, value = item.rpartition(":")
            parts = value.split(",")
            if not sep or not name or len(parts) != 3 or not all(_SHAPE.fullmatch(p) for p in parts):
                raise InputValidationError(
                    f"profile: expected MIN,OPT,MAX (e.g. 1,16,32), NAME:MIN,OPT,MAX (e.g. mask:1,8,64) or "
                    f"NAME:MINSHAPE,OPTSHAPE,MAXSHAPE (e.g. ids:1x8,16x128,32x512), got {item!r}"
                )
            lo, opt, hi = (tuple(int(d) for d in p.split("x")) for p in parts)
            inputs.append(InputRange(name, lo, opt, hi))
        if batch is None:
            batch = (DEFAULT_PROFILE.min, DEFAULT_PROFILE.opt, DEFAULT_PROFILE.max)
        return cls(batch[0], batch[1], batch[2], tuple(inputs))

    def as_list(self) -> list[int]:
        return [self.min, self.opt, self.max]

    def key(self) -> list[int] | dict[str, Any]:
        """JSON-ready identity: ``[min, opt, max]`` for a batch-only profile (the historic cache key)."""
        if not self.inputs:
            return self.as_list()
        return {"batch": self.as_list(), "inputs": {i.name: i.key() for i in self.inputs}}

    def for_input(self, name: str) -> InputRange | None:
        return next((i for i in self.inputs if i.name == name), None)


DEFAULT_PROFILE = Profile(1, 16, 32)


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
            "profiles": [p.key() for p in self.profiles],
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
        used = self.data[: self.num_batches * self.batch_size]
        return array_hash(used, extra=[f"batch={self.batch_size}"])


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
    #: per profile: input name -> (min, opt, max) shapes as TensorRT's optimization profile holds them
    profile_shapes: tuple[dict[str, tuple[tuple[int, ...], ...]], ...] = field(default_factory=tuple)

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


def profile_shapes(input_name: str, shape: Sequence[int], profile: Profile) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) shapes for one input: its own range from the profile, else the profile's batch range with
    every other dimension fixed. A dynamic non-batch dimension without a range, a range that contradicts a fixed
    dimension, or a rank mismatch is an EngineError that says which input, which dimension and what to pass."""
    dims = tuple(int(d) for d in shape)
    if not dims:
        raise EngineError(f"input {input_name!r} is a scalar; expected a batch dimension first")
    own = profile.for_input(input_name)
    if own is not None and not own.batch_only:
        if len(own.min) != len(dims):
            raise EngineError(
                f"input {input_name!r} has rank {len(dims)} (shape {dims}) but its profile gives rank-{len(own.min)} "
                f"shapes {own.min} .. {own.max}"
            )
        for axis, d in enumerate(dims):
            if d >= 0 and not (own.min[axis] == own.opt[axis] == own.max[axis] == d):
                raise EngineError(
                    f"input {input_name!r} dimension {axis} is fixed at {d} (shape {dims}) but its profile asks for "
                    f"{own.min[axis]}..{own.max[axis]}"
                    + ("; export the ONNX with a dynamic batch dimension" if axis == 0 else "")
                )
        return own.min, own.opt, own.max
    lo_b, opt_b, hi_b = (profile.min, profile.opt, profile.max) if own is None else (own.min[0], own.opt[0], own.max[0])
    rest = dims[1:]
    dynamic = [axis + 1 for axis, d in enumerate(rest) if d < 0]
    if dynamic:
        example = "x".join(["1"] + [str(d) if d >= 0 else "8" for d in rest])
        raise EngineError(
            f"input {input_name!r} has shape {dims}: dimension(s) {dynamic} besides the batch are dynamic and need a "
            f"range: pass the full shapes, e.g. --profile {input_name}:{example},...,... (MIN,OPT,MAX shapes, "
            f"batch first), or export the ONNX with fixed per-sample dimensions"
        )
    if dims[0] >= 0 and not (lo_b == opt_b == hi_b == dims[0]):
        raise EngineError(
            f"input {input_name!r} has a fixed batch of {dims[0]} but the profile asks for "
            f"{lo_b}..{hi_b}; export the ONNX with a dynamic batch dimension"
        )
    return (lo_b, *rest), (opt_b, *rest), (hi_b, *rest)


def check_profile_names(profile: Profile, network_inputs: Sequence[str], source: str) -> None:
    """Every input a profile names must exist in the network (a typo would otherwise be ignored silently)."""
    unknown = [i.name for i in profile.inputs if i.name not in network_inputs]
    if unknown:
        raise EngineError(
            f"profile names input(s) {unknown} that {source} does not have; its inputs are {list(network_inputs)}"
        )


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


def _entropy_calibrator(trt: Any, calibration: Calibration, input_name: str, buffer_factory: Any = None) -> Any:
    """An IInt8EntropyCalibrator2 feeding ``calibration``'s batches through one device buffer.

    TensorRT's Python binding swallows an exception raised in ``get_batch`` (prints it and takes it as "no more
    batches"), so calibration would silently use part of the data. The calibrator therefore catches everything,
    keeps the first exception in ``error``, stops the calibration, and ``raise_calibration_error`` re-raises it
    once the build returns. ``buffer_factory`` (default ``trt_equiv.trt.cuda.DeviceBuffer``) takes a byte size.
    """
    if buffer_factory is None:
        from trt_equiv.trt.cuda import DeviceBuffer as buffer_factory

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.error: BaseException | None = None
            self.buffer = buffer_factory(calibration.batch(0).nbytes)

        def get_batch_size(self) -> int:
            return calibration.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.error is not None or self.index >= calibration.num_batches:
                return None
            try:
                if list(names) != [input_name]:
                    raise EngineError(f"calibrator: TensorRT asked for inputs {list(names)}, expected [{input_name!r}]")
                self.buffer.copy_from_host(calibration.batch(self.index))
            except BaseException as exc:  # noqa: BLE001 - kept and re-raised after the build (see docstring)
                self.error = exc
                return None
            self.index += 1
            return [self.buffer.ptr]

        def read_calibration_cache(self) -> bytes | None:
            from trt_equiv.locking import read_verified

            # an edited or truncated cache is ignored (recalibrated) with a warning, never fed to TensorRT
            path = calibration.cache_file
            return None if path is None else read_verified(Path(path))

        def write_calibration_cache(self, cache: Any) -> None:
            if calibration.cache_file is not None:
                atomic_write(Path(calibration.cache_file), bytes(cache), record=True)

    return _Calibrator()


def raise_calibration_error(calibrator: Any, where: str) -> None:
    """Re-raise what a calibrator's ``get_batch`` hit (TensorRT swallowed it) as an EngineError from it."""
    error = getattr(calibrator, "error", None)
    if error is None:
        return
    raise EngineError(
        f"{where}: int8 calibration failed at batch {calibrator.index}: {type(error).__name__}: {error}; no engine "
        f"was kept, because it would have been calibrated on part of the data"
    ) from error


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
    if not hasattr(trt, "Builder"):
        raise EngineError(
            f"{name} {version} is a runtime-only (lean) TensorRT module and cannot build engines; "
            f"install tensorrt or tensorrt-rtx to build"
        )
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
        accepted: list[dict[str, tuple[tuple[int, ...], ...]]] = []
        for index, prof in enumerate(options.profiles):
            check_profile_names(prof, list(inputs), str(path))
            profile = builder.create_optimization_profile()
            for input_name, shape in inputs.items():
                profile.set_shape(input_name, *profile_shapes(input_name, shape, prof))
            accepted.append(
                {n: tuple(tuple(int(d) for d in s) for s in profile.get_shape(n)) for n in inputs}
                if hasattr(profile, "get_shape")
                else {}
            )
            if config.add_optimization_profile(profile) < 0:
                raise EngineError(
                    f"{name} {version} rejected optimization profile #{index} {prof.key()}:\n  {capture.report()}"
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
            raise_calibration_error(calibrator, f"{name} {version} building {path} ({options.recipe})")
            raise EngineError(
                f"{name} {version} failed to build {path} ({options.recipe}): {exc}\n"
                f"  TensorRT said:\n  {capture.report()}"
            ) from exc
        seconds = time.perf_counter() - start
        raise_calibration_error(calibrator, f"{name} {version} building {path} ({options.recipe})")
        if serialized is None:
            raise EngineError(
                f"{name} {version} failed to build {path} with recipe {options.recipe!r}, profiles "
                f"{[p.key() for p in options.profiles]}, targets "
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
            profile_shapes=tuple(accepted),
        )
