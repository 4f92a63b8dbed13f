"""TensorRT backend: runs a serialized engine with the name-based tensor API of TensorRT 8.6+/10/11.

Only ``num_io_tensors``/``get_tensor_*``/``set_input_shape``/``set_tensor_address``/``execute_async_v3`` are
used (the bindings API is gone in 10.x). Every input and output is served by name, whatever their number.
Each tensor gets one device buffer and one pinned host buffer, allocated once for the profile maximum of every
dynamic dimension (batch, sequence length, ...); each chunk sets every input's own shape and reads every
output's shape back from the context, so a partial batch or a shorter sequence runs with its own shape, never
padded. One stream carries copies and execution; two CUDA events time the execution alone
(``last_device_time_s``). ``max_batch`` is the largest batch every input's profile accepts, so
``Backend.infer`` splits larger batches.

The TensorRT-shaped decisions (I/O discovery, dtype and format checks, profile ranges, buffer sizing, profile
selection, output shapes) are pure functions over engine-/context-like objects, tested without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from trt_equiv.backends.base import Backend, TensorSpec
from trt_equiv.errors import EngineError, InputValidationError, MissingRuntimeError, ModelLoadError

#: engine I/O dtypes this runner feeds/reads
SUPPORTED_IO_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.bool_))

Shape = tuple[int, ...]


@dataclass(frozen=True)
class IoTensor:
    """One engine I/O tensor as the runner needs it."""

    name: str
    is_input: bool
    #: shape as the engine reports it (-1 for dynamic dimensions)
    shape: Shape
    dtype: np.dtype
    #: (min, opt, max) shapes of the selected profile; inputs only
    profile: tuple[Shape, Shape, Shape] | None = None


def numpy_dtype(trt: Any, trt_dtype: Any, name: str, where: str) -> np.dtype:
    """The numpy dtype of an engine tensor; BF16/FP8/INT4/FP4 (no numpy equivalent) → EngineError naming it."""
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except (TypeError, KeyError, ValueError) as exc:
        type_name = getattr(trt_dtype, "name", str(trt_dtype))
        raise EngineError(
            f"{where}: tensor {name!r} has TensorRT type {type_name}, which has no numpy equivalent; this runner "
            f"serves {', '.join(str(d) for d in SUPPORTED_IO_DTYPES)} I/O (rebuild with float32/float16 I/O)"
        ) from exc


def check_linear_format(engine: Any, trt: Any, name: str, where: str) -> None:
    """Refuse a vectorized I/O format (CHW4, HWC8, ...): its bytes are not C-order, reading them would be garbage."""
    if not (hasattr(engine, "get_tensor_format") and hasattr(trt, "TensorFormat")):
        return
    fmt = engine.get_tensor_format(name)
    if fmt != trt.TensorFormat.LINEAR:
        raise EngineError(
            f"{where}: tensor {name!r} uses the vectorized format {getattr(fmt, 'name', fmt)}; this runner (like the "
            f"C++ runner) reads only LINEAR (C-order) I/O: build the engine with linear I/O formats"
        )


def discover_io(engine: Any, trt: Any, profile_index: int = 0, where: str = "engine") -> list[IoTensor]:
    """Every I/O tensor of ``engine`` with its dtype, format check and profile shapes (name-based API only)."""
    n_profiles = int(getattr(engine, "num_optimization_profiles", 1))
    if not 0 <= profile_index < n_profiles:
        raise EngineError(
            f"profile_index: expected 0..{n_profiles - 1} (the engine has {n_profiles}), got {profile_index}"
        )
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dtype = numpy_dtype(trt, engine.get_tensor_dtype(name), name, where)
        check_linear_format(engine, trt, name, where)
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input:
            lo, opt, hi = engine.get_tensor_profile_shape(name, profile_index)
            profile = (tuple(int(d) for d in lo), tuple(int(d) for d in opt), tuple(int(d) for d in hi))
        specs.append(IoTensor(name, is_input, shape, dtype, profile))
    return specs


def split_io(specs: Sequence[IoTensor], where: str) -> tuple[list[IoTensor], list[IoTensor]]:
    """(inputs, outputs) in engine order; every tensor has a batch dimension and a dtype this runner serves."""
    inputs = [s for s in specs if s.is_input]
    outputs = [s for s in specs if not s.is_input]
    if not inputs or not outputs:
        raise EngineError(
            f"{where}: expected an engine with at least one input and one output, got inputs "
            f"{[s.name for s in inputs]} and outputs {[s.name for s in outputs]}"
        )
    for s in specs:
        if s.dtype not in SUPPORTED_IO_DTYPES:
            raise EngineError(
                f"{where}: tensor {s.name!r} is {s.dtype}; expected one of "
                f"{', '.join(str(d) for d in SUPPORTED_IO_DTYPES)}"
            )
        if not s.shape:
            raise EngineError(f"{where}: tensor {s.name!r} is a scalar; expected a batch dimension first")
    return inputs, outputs


def batch_range(inputs: Sequence[IoTensor], where: str) -> tuple[int, int]:
    """(min batch, max batch) that every input's profile accepts (the intersection of their batch ranges)."""
    lows, highs = [], []
    for spec in inputs:
        assert spec.profile is not None, "discover_io gives every input its profile"
        lows.append(spec.profile[0][0])
        highs.append(spec.profile[2][0])
    lo, hi = max(lows), min(highs)
    if lo > hi:
        ranges = {s.name: (s.profile[0][0], s.profile[2][0]) for s in inputs if s.profile}
        raise EngineError(f"{where}: the inputs' batch ranges do not overlap: {ranges}")
    return lo, hi


def input_specs_of(inputs: Sequence[IoTensor]) -> tuple[TensorSpec, ...]:
    """Per-sample specs for ``Backend.infer``: None for dimensions the profile lets vary.

    The dtype is left open (None) where the runner converts safely: float32/float16 data for a float16 or
    float32 engine input, int32/int64 data for an int32 one (range-checked); otherwise it is the engine's.
    """
    out = []
    for s in inputs:
        assert s.profile is not None
        lo, _opt, hi = s.profile
        sample = tuple(None if (d < 0 or lo[i + 1] != hi[i + 1]) else d for i, d in enumerate(s.shape[1:]))
        convertible = s.dtype in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.int32))
        out.append(TensorSpec(s.name, None if convertible else s.dtype, sample))
    return tuple(out)


def check_in_profile(spec: IoTensor, shape: Shape, where: str) -> None:
    """An input chunk's shape against the profile, dimension by dimension, before TensorRT refuses it."""
    assert spec.profile is not None
    lo, _opt, hi = spec.profile
    if len(shape) != len(lo) or any(not a <= d <= b for d, a, b in zip(shape, lo, hi, strict=False)):
        raise InputValidationError(
            f"{where}: input {spec.name!r} shape {shape} is outside the engine profile {lo} .. {hi}; "
            f"rebuild the engine with a wider profile (trt-equiv build --profile)"
        )


def to_engine_dtype(name: str, x: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    """``x`` as the engine tensor's dtype: exact, float32↔float16, or int64→int32 when every value fits."""
    if x.dtype == dtype:
        return x
    if x.dtype.kind == "f" and dtype.kind == "f":
        return x.astype(dtype)
    if x.dtype == np.int64 and dtype == np.int32:
        info = np.iinfo(np.int32)
        if x.size and (int(x.min()) < info.min or int(x.max()) > info.max):
            raise InputValidationError(
                f"{where}: input {name!r} is int64 with values {int(x.min())}..{int(x.max())}, outside the int32 "
                f"range of the engine tensor; rebuild the engine with int64 input (TensorRT 10+)"
            )
        return x.astype(np.int32)
    raise InputValidationError(f"{where}: input {name!r}: the engine tensor is {dtype}, got {x.dtype}")


def output_shape(context: Any, name: str, where: str) -> Shape:
    """An output's concrete shape from the context; -1 (data-dependent, e.g. NonZero) → EngineError naming it."""
    shape = tuple(int(d) for d in context.get_tensor_shape(name))
    if any(d < 0 for d in shape):
        raise EngineError(
            f"{where}: output {name!r} has shape {shape}: a data-dependent size (-1) that is only known after "
            f"execution; this runner needs output shapes determined by the input shapes"
        )
    return shape


def select_profile(context: Any, index: int, stream_handle: int, where: str) -> None:
    """``set_optimization_profile_async``, which raises RuntimeError (never returns False) on failure."""
    try:
        ok = context.set_optimization_profile_async(index, stream_handle)
    except RuntimeError as exc:
        raise EngineError(f"{where}: could not select optimization profile {index}: {exc}") from exc
    if ok is False:
        raise EngineError(f"{where}: could not select optimization profile {index}")


def buffer_nbytes(shape: Shape, dtype: np.dtype) -> int:
    """Bytes for a tensor of a concrete ``shape``; a dynamic (-1) dimension is a sizing bug, said so."""
    if any(d < 0 for d in shape):
        raise EngineError(f"cannot size a buffer for shape {shape}: it still has dynamic dimensions")
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class TensorRTBackend(Backend):
    """Runs one serialized engine (from ``trt_equiv.trt.cache.EngineCache`` or a user) on the GPU."""

    name = "tensorrt"

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        *,
        precision: str = "fp32",
        module: str | ModuleType | None = None,
        profile_index: int = 0,
    ) -> None:
        super().__init__(precision, None)
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise ModelLoadError(f"TensorRT: expected an engine file, got a path that does not exist: {engine_path}")
        self.module = module
        self.profile_index = profile_index
        self.min_batch = 1
        self._res: dict[str, Any] = {}

    def _open_impl(self) -> None:
        from trt_equiv.runtime import tensorrt_execution_unavailable_reason
        from trt_equiv.trt import cuda
        from trt_equiv.trt.common import deserialize_engine, resolve_module

        trt = resolve_module(self.module)
        reason = tensorrt_execution_unavailable_reason(trt.__name__)
        if reason:
            raise MissingRuntimeError(f"{self.label}: cannot run {self.engine_path}: {reason}")
        try:
            self._load(trt, deserialize_engine, cuda)
        except BaseException:
            self._close_impl()  # free what was allocated before the failure; the error says what failed
            raise

    def _load(self, trt: ModuleType, deserialize_engine: Any, cuda: Any) -> None:
        where = f"{self.label} ({self.engine_path})"
        runtime, engine = deserialize_engine(trt, self.engine_path.read_bytes(), where=where)
        inputs, outputs = split_io(discover_io(engine, trt, self.profile_index, where), where)
        self.min_batch, max_batch = batch_range(inputs, where)
        res = self._res = {"runtime": runtime, "engine": engine, "inputs": inputs, "outputs": outputs}
        stream = res["stream"] = cuda.Stream()
        context = res["context"] = engine.create_execution_context()
        if context is None:
            raise EngineError(f"{where}: could not create an execution context (out of GPU memory?)")
        if self.profile_index:
            select_profile(context, self.profile_index, stream.handle, where)
        # size every buffer for the profile maximum of every dimension: set each input to its maximum and ask
        # the context, which resolves every output's dynamic dimensions
        shapes: dict[str, Shape] = {}
        for spec in inputs:
            assert spec.profile is not None
            shapes[spec.name] = spec.profile[2]
            if not context.set_input_shape(spec.name, spec.profile[2]):
                raise EngineError(f"{where}: engine refused input {spec.name!r} shape {spec.profile[2]} (profile max)")
        for spec in outputs:
            shapes[spec.name] = output_shape(context, spec.name, where)
        res["host"], res["device"] = {}, {}
        for spec in (*inputs, *outputs):
            nbytes = max(buffer_nbytes(shapes[spec.name], spec.dtype), 1)
            res["host"][spec.name] = cuda.PinnedHostBuffer((nbytes,), np.uint8)
            res["device"][spec.name] = dev = cuda.DeviceBuffer(nbytes)
            if not context.set_tensor_address(spec.name, dev.ptr):
                raise EngineError(f"{where}: could not set the address of tensor {spec.name!r}")
        res["start"], res["end"] = cuda.Event(), cuda.Event()
        self.input_specs = input_specs_of(inputs)
        self.output_specs = tuple(
            TensorSpec(s.name, np.dtype(np.float32) if s.dtype.kind == "f" else s.dtype, None) for s in outputs
        )
        self.max_batch = max_batch

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self._res
        n = int(next(iter(inputs.values())).shape[0])
        if n < self.min_batch:
            raise EngineError(
                f"{self.label}: batch of {n} is below the engine profile's minimum {self.min_batch}; "
                f"build the engine with a profile starting at 1"
            )
        context, stream = res["context"], res["stream"]
        for spec in res["inputs"]:
            x = to_engine_dtype(spec.name, inputs[spec.name], spec.dtype, self.label)
            check_in_profile(spec, tuple(x.shape), self.label)
            if not context.set_input_shape(spec.name, tuple(x.shape)):
                raise EngineError(f"{self.label}: engine refused input {spec.name!r} shape {x.shape} ({spec.profile})")
            host = res["host"][spec.name].array[: x.nbytes]
            np.copyto(host, np.ascontiguousarray(x).reshape(-1).view(np.uint8))
            res["device"][spec.name].copy_from_host(host, stream)
        res["start"].record(stream)
        if not context.execute_async_v3(stream.handle):
            raise EngineError(f"{self.label}: execute_async_v3 failed for a batch of {n}")
        res["end"].record(stream)
        views = {}
        for spec in res["outputs"]:
            shape = output_shape(context, spec.name, self.label)
            host = res["host"][spec.name].array[: buffer_nbytes(shape, spec.dtype)]
            res["device"][spec.name].copy_to_host(host, stream)
            views[spec.name] = (host, shape, spec.dtype)
        stream.synchronize()
        self.last_device_time_s = res["start"].elapsed_ms(res["end"]) / 1000.0
        # copies: the pinned buffers are reused by the next chunk
        return {name: host.view(dtype).reshape(shape).copy() for name, (host, shape, dtype) in views.items()}

    def _close_impl(self) -> None:
        res, self._res = self._res, {}
        # context before engine before runtime (TensorRT's ownership order), then CUDA objects
        for key in ("context", "engine", "runtime"):
            res.pop(key, None)
        owned = [*res.pop("device", {}).values(), *res.pop("host", {}).values()]
        owned += [res.pop(k) for k in ("start", "end", "stream") if k in res]
        for obj in owned:
            obj.close()
