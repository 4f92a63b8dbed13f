"""Small owning wrappers over CUDA memory, streams and events, every return code checked.

cuda-python (``cuda.bindings.runtime``) is used by default; pycuda is accepted when it is what is installed.
The two differ only in a dozen calls, gathered in one adapter each (``_CudartApi``, ``_PycudaApi``); the
wrappers (``DeviceBuffer``, ``PinnedHostBuffer``, ``Stream``, ``Event``) hold the logic once. Each wrapper
frees what it owns on ``close()``, on leaving a ``with`` block, or at garbage collection as a last resort.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from functools import cache
from types import TracebackType
from typing import Any

import numpy as np

from trt_equiv.errors import MissingRuntimeError, TrtEquivError
from trt_equiv.runtime import CUDA_PYTHON_HINT, is_available, require


class CudaError(TrtEquivError, RuntimeError):
    """A CUDA call returned an error; the message names the call and the CUDA error."""


Release = Callable[[], None]


class _CudartApi:
    """cuda-python runtime API: every call returns ``(cudaError_t, *values)``."""

    name = "cuda.bindings"

    def __init__(self) -> None:
        self.rt = require("cuda.bindings.runtime")

    def check(self, result: Any, what: str) -> Any:
        """The call's value(s), or CudaError naming ``what`` and the CUDA error."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise CudaError(f"{what} failed: {self.error_name(err)}")
        return values[0] if len(values) == 1 else tuple(values) or None

    def error_name(self, err: Any) -> str:
        code = int(err)
        try:
            name = self.rt.cudaGetErrorName(err)[1].decode()
            text = self.rt.cudaGetErrorString(err)[1].decode()
        except Exception:  # an unknown code: say the number rather than hide the original failure
            return f"CUDA error {code}"
        return f"{name} ({code}: {text})"

    def malloc(self, nbytes: int) -> tuple[int, Release]:
        ptr = int(self.check(self.rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))
        return ptr, lambda: self.check(self.rt.cudaFree(ptr), "cudaFree")

    def host_alloc(self, nbytes: int) -> tuple[np.ndarray, Release]:
        ptr = int(self.check(self.rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})"))
        view = np.ctypeslib.as_array((ctypes.c_ubyte * nbytes).from_address(ptr))
        return view, lambda: self.check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def copy_htod(self, dst: int, src: np.ndarray, stream: Any | None) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        if stream is None:
            self.check(self.rt.cudaMemcpy(dst, src.ctypes.data, src.nbytes, kind), "cudaMemcpy(host→device)")
        else:
            self.check(
                self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync(host→device)"
            )

    def copy_dtoh(self, dst: np.ndarray, src: int, stream: Any | None) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        if stream is None:
            self.check(self.rt.cudaMemcpy(dst.ctypes.data, src, dst.nbytes, kind), "cudaMemcpy(device→host)")
        else:
            self.check(
                self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync(device→host)"
            )

    def stream_create(self) -> Any:
        return self.check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def stream_sync(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def event_create(self) -> Any:
        return self.check(self.rt.cudaEventCreate(), "cudaEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        self.check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_sync(self, event: Any) -> None:
        self.check(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self.check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        self.check(self.rt.cudaEventDestroy(event), "cudaEventDestroy")


class _PycudaApi:
    """pycuda: raises ``pycuda.driver.Error`` itself; ``check`` turns that into CudaError with the call's name."""

    name = "pycuda"

    def __init__(self) -> None:
        require("pycuda.autoprimaryctx")  # the primary context: the one TensorRT's runtime API uses too
        self.drv = require("pycuda.driver")

    def check(self, call: Callable[[], Any], what: str) -> Any:
        try:
            return call()
        except self.drv.Error as exc:
            raise CudaError(f"{what} failed: {exc}") from exc

    def malloc(self, nbytes: int) -> tuple[int, Release]:
        alloc = self.check(lambda: self.drv.mem_alloc(nbytes), f"cuMemAlloc({nbytes})")
        return int(alloc), lambda: self.check(alloc.free, "cuMemFree")

    def host_alloc(self, nbytes: int) -> tuple[np.ndarray, Release]:
        arr = self.check(lambda: self.drv.pagelocked_empty(nbytes, np.uint8), f"cuMemHostAlloc({nbytes})")
        return arr, lambda: self.check(arr.base.free, "cuMemFreeHost")

    def copy_htod(self, dst: int, src: np.ndarray, stream: Any | None) -> None:
        if stream is None:
            self.check(lambda: self.drv.memcpy_htod(dst, src), "cuMemcpyHtoD")
        else:
            self.check(lambda: self.drv.memcpy_htod_async(dst, src, stream), "cuMemcpyHtoDAsync")

    def copy_dtoh(self, dst: np.ndarray, src: int, stream: Any | None) -> None:
        if stream is None:
            self.check(lambda: self.drv.memcpy_dtoh(dst, src), "cuMemcpyDtoH")
        else:
            self.check(lambda: self.drv.memcpy_dtoh_async(dst, src, stream), "cuMemcpyDtoHAsync")

    def stream_create(self) -> Any:
        return self.check(self.drv.Stream, "cuStreamCreate")

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_sync(self, stream: Any) -> None:
        self.check(stream.synchronize, "cuStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        """pycuda destroys a stream when its object is collected; dropping the reference is all there is."""

    def event_create(self) -> Any:
        return self.check(self.drv.Event, "cuEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        self.check(lambda: event.record(stream), "cuEventRecord")

    def event_sync(self, event: Any) -> None:
        self.check(event.synchronize, "cuEventSynchronize")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self.check(lambda: end.time_since(start), "cuEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        """Like streams, pycuda events are destroyed with their object."""


CudaApi = _CudartApi | _PycudaApi


@cache
def cuda_api(prefer: str | None = None) -> CudaApi:
    """The CUDA adapter: ``prefer`` ("cuda.bindings" or "pycuda") if given, else cuda-python, else pycuda."""
    if prefer not in (None, "cuda.bindings", "pycuda"):
        raise ValueError(f"prefer: expected 'cuda.bindings', 'pycuda' or None, got {prefer!r}")
    if prefer == "pycuda" or (prefer is None and not is_available("cuda.bindings") and is_available("pycuda")):
        return _PycudaApi()
    if prefer is None and not is_available("cuda.bindings"):
        raise MissingRuntimeError(
            f"neither cuda-python nor pycuda is installed; install one with: {CUDA_PYTHON_HINT}, or pip install pycuda"
        )
    return _CudartApi()


class _Owned:
    """Common close/with/del behaviour: ``_release`` runs once."""

    _release: Release | None = None

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # at interpreter exit the CUDA context may already be gone; there is nothing left to free then
        with contextlib.suppress(Exception):
            self.close()


class Stream(_Owned):
    """A CUDA stream; ``handle`` is the integer TensorRT's ``execute_async_v3`` takes."""

    def __init__(self, api: CudaApi | None = None) -> None:
        self.api = api or cuda_api()
        self.raw = self.api.stream_create()
        self.handle = self.api.stream_handle(self.raw)
        raw, api_ = self.raw, self.api
        self._release = lambda: api_.stream_destroy(raw)

    def synchronize(self) -> None:
        self.api.stream_sync(self.raw)


class Event(_Owned):
    """A CUDA event, for timing device work between two records on a stream."""

    def __init__(self, api: CudaApi | None = None) -> None:
        self.api = api or cuda_api()
        self.raw = self.api.event_create()
        raw, api_ = self.raw, self.api
        self._release = lambda: api_.event_destroy(raw)

    def record(self, stream: Stream) -> None:
        self.api.event_record(self.raw, stream.raw)

    def synchronize(self) -> None:
        self.api.event_sync(self.raw)

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to ``end`` (waits for ``end`` to complete)."""
        end.synchronize()
        return self.api.event_elapsed_ms(self.raw, end.raw)


class DeviceBuffer(_Owned):
    """``nbytes`` of device memory; copies check that the host array fits."""

    def __init__(self, nbytes: int, api: CudaApi | None = None) -> None:
        if nbytes < 1:
            raise ValueError(f"DeviceBuffer: expected a positive size, got {nbytes} bytes")
        self.api = api or cuda_api()
        self.nbytes = int(nbytes)
        self.ptr, self._release = self.api.malloc(self.nbytes)

    def _fits(self, arr: np.ndarray, direction: str) -> np.ndarray:
        if not arr.flags.c_contiguous:
            raise ValueError(f"DeviceBuffer {direction}: expected a C-contiguous array, got strides {arr.strides}")
        if arr.nbytes > self.nbytes:
            raise ValueError(
                f"DeviceBuffer {direction}: array of {arr.nbytes} bytes {arr.shape} does not fit the "
                f"{self.nbytes}-byte buffer"
            )
        return arr

    def copy_from_host(self, src: np.ndarray, stream: Stream | None = None) -> None:
        """Copy ``src`` to the start of the buffer; asynchronous on ``stream`` (keep ``src`` alive until synced)."""
        self.api.copy_htod(self.ptr, self._fits(src, "copy_from_host"), stream.raw if stream else None)

    def copy_to_host(self, dst: np.ndarray, stream: Stream | None = None) -> None:
        """Fill ``dst`` from the start of the buffer; asynchronous on ``stream``."""
        self.api.copy_dtoh(self._fits(dst, "copy_to_host"), self.ptr, stream.raw if stream else None)


class PinnedHostBuffer(_Owned):
    """Page-locked host memory seen as a numpy array (``array``), so device copies can be asynchronous."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, api: CudaApi | None = None) -> None:
        self.api = api or cuda_api()
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if nbytes < 1:
            raise ValueError(f"PinnedHostBuffer: expected a non-empty shape, got {shape}")
        raw, self._release = self.api.host_alloc(nbytes)
        self.array: np.ndarray = raw.view(dt).reshape(shape)

    def close(self) -> None:
        # drop the view first: numpy must not read memory that cudaFreeHost returned
        self.array = np.empty((0,), dtype=getattr(self, "array", np.empty(0)).dtype)
        super().close()
