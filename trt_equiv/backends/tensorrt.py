"""TensorRT backend: runs a serialized engine with the name-based tensor API of TensorRT 8.6+/10/11.

Only ``num_io_tensors``/``get_tensor_*``/``set_input_shape``/``set_tensor_address``/``execute_async_v3`` are
used (the bindings API is gone in 10.x). Device buffers are allocated once for the profile maximum, host
buffers are pinned, one stream carries copies and execution, and two CUDA events time the execution alone
(``last_device_time_s``). ``max_batch`` is the profile maximum, so ``Backend.infer`` splits larger batches;
a partial batch runs with its own shape, never padded.

The TensorRT-shaped decisions (I/O discovery, buffer sizing) are pure functions over an engine-like object,
tested without a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from trt_equiv.backends.base import Backend
from trt_equiv.errors import EngineError, MissingRuntimeError, ModelLoadError

#: engine I/O dtypes this runner feeds/reads (the runner converts float32 input to the engine's dtype)
SUPPORTED_IO_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor as the runner needs it."""

    name: str
    is_input: bool
    #: shape as the engine reports it (-1 for dynamic dimensions)
    shape: tuple[int, ...]
    dtype: np.dtype
    #: (min, opt, max) shapes of the selected profile; inputs only
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None


def discover_io(engine: Any, trt: Any, profile_index: int = 0) -> list[TensorSpec]:
    """Every I/O tensor of ``engine`` with its profile shapes, through the name-based API only."""
    n_profiles = int(getattr(engine, "num_optimization_profiles", 1))
    if not 0 <= profile_index < n_profiles:
        raise EngineError(
            f"profile_index: expected 0..{n_profiles - 1} (the engine has {n_profiles}), got {profile_index}"
        )
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input:
            lo, opt, hi = engine.get_tensor_profile_shape(name, profile_index)
            profile = (tuple(int(d) for d in lo), tuple(int(d) for d in opt), tuple(int(d) for d in hi))
        specs.append(TensorSpec(name, is_input, shape, dtype, profile))
    return specs


def split_io(specs: list[TensorSpec], where: str) -> tuple[TensorSpec, TensorSpec]:
    """(the input, the output): this runner, like ``Backend.infer``, takes one array and returns one."""
    inputs = [s for s in specs if s.is_input]
    outputs = [s for s in specs if not s.is_input]
    if len(inputs) != 1 or len(outputs) != 1:
        raise EngineError(
            f"{where}: expected an engine with one input and one output, got inputs "
            f"{[s.name for s in inputs]} and outputs {[s.name for s in outputs]}"
        )
    for s in (inputs[0], outputs[0]):
        if s.dtype not in SUPPORTED_IO_DTYPES:
            raise EngineError(f"{where}: tensor {s.name!r} is {s.dtype}; expected float32 or float16")
    return inputs[0], outputs[0]


def batch_range(spec: TensorSpec, where: str) -> tuple[int, int]:
    """(min batch, max batch) of an input's profile; every other dimension must be fixed by it."""
    assert spec.profile is not None
    lo, _opt, hi = spec.profile
    if lo[1:] != hi[1:]:
        raise EngineError(
            f"{where}: input {spec.name!r} profile varies beyond the batch dimension ({lo} .. {hi}); "
            f"expected only the batch to vary"
        )
    return lo[0], hi[0]


def buffer_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
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
        inp, out = split_io(discover_io(engine, trt, self.profile_index), where)
        self.min_batch, max_batch = batch_range(inp, where)
        res = self._res = {"runtime": runtime, "engine": engine, "input": inp, "output": out}
        stream = res["stream"] = cuda.Stream()
        context = res["context"] = engine.create_execution_context()
        if context is None:
            raise EngineError(f"{where}: could not create an execution context (out of GPU memory?)")
        if self.profile_index and not context.set_optimization_profile_async(self.profile_index, stream.handle):
            raise EngineError(f"{where}: could not select optimization profile {self.profile_index}")
        # size the output for the largest batch by asking the context, which resolves every dynamic dimension
        assert inp.profile is not None  # discover_io gives every input its profile
        max_in = inp.profile[2]
        if not context.set_input_shape(inp.name, max_in):
            raise EngineError(f"{where}: engine refused input shape {max_in} (profile maximum)")
        max_out = tuple(int(d) for d in context.get_tensor_shape(out.name))
        res["host_in"] = cuda.PinnedHostBuffer(max_in, inp.dtype)
        res["host_out"] = cuda.PinnedHostBuffer(max_out, out.dtype)
        res["dev_in"] = cuda.DeviceBuffer(buffer_nbytes(max_in, inp.dtype))
        res["dev_out"] = cuda.DeviceBuffer(buffer_nbytes(max_out, out.dtype))
        for spec, buf in ((inp, res["dev_in"]), (out, res["dev_out"])):
            if not context.set_tensor_address(spec.name, buf.ptr):
                raise EngineError(f"{where}: could not set the address of tensor {spec.name!r}")
        res["start"], res["end"] = cuda.Event(), cuda.Event()
        self.sample_shape = tuple(None if d < 0 else d for d in inp.shape[1:])
        self.max_batch = max_batch

    def _infer_impl(self, x: np.ndarray) -> np.ndarray:
        res = self._res
        inp, out = res["input"], res["output"]
        n = x.shape[0]
        if n < self.min_batch:
            raise EngineError(
                f"{self.label}: batch of {n} is below the engine profile's minimum {self.min_batch}; "
                f"build the engine with a profile starting at 1"
            )
        context, stream = res["context"], res["stream"]
        shape = (n, *x.shape[1:])
        if not context.set_input_shape(inp.name, shape):
            raise EngineError(f"{self.label}: engine refused input shape {shape} (profile {inp.profile})")
        host_in = res["host_in"].array[:n]
        np.copyto(host_in, x, casting="same_kind")  # float32 → float16 when the engine input is half
        res["dev_in"].copy_from_host(host_in, stream)
        res["start"].record(stream)
        if not context.execute_async_v3(stream.handle):
            raise EngineError(f"{self.label}: execute_async_v3 failed for a batch of {n}")
        res["end"].record(stream)
        out_shape = tuple(int(d) for d in context.get_tensor_shape(out.name))
        host_out = res["host_out"].array.reshape(-1)[: int(np.prod(out_shape))].reshape(out_shape)
        res["dev_out"].copy_to_host(host_out, stream)
        stream.synchronize()
        self.last_device_time_s = res["start"].elapsed_ms(res["end"]) / 1000.0
        return host_out.astype(np.float32)  # a copy: the pinned buffer is reused by the next chunk

    def _close_impl(self) -> None:
        res, self._res = self._res, {}
        # context before engine before runtime (TensorRT's ownership order), then CUDA objects
        for key in ("context", "engine", "runtime"):
            res.pop(key, None)
        for key in ("dev_in", "dev_out", "host_in", "host_out", "start", "end", "stream"):
            obj = res.pop(key, None)
            if obj is not None:
                obj.close()
