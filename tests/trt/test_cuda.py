"""CUDA memory layer: return-code checking everywhere; real copies and events where a GPU exists."""

from __future__ import annotations

import numpy as np
import pytest

from trt_equiv.runtime import cuda_device, is_available
from trt_equiv.trt.cuda import CudaError, DeviceBuffer, Event, PinnedHostBuffer, Stream, _CudartApi, cuda_api

needs_cuda_python = pytest.mark.skipif(not is_available("cuda.bindings"), reason="cuda-python not installed")
needs_gpu = pytest.mark.skipif(
    cuda_device() is None, reason="no CUDA GPU (cuda-python missing, no driver or no device)"
)


@needs_cuda_python
def test_a_failed_call_names_the_call_and_the_cuda_error() -> None:
    from cuda.bindings import runtime as cudart

    api = _CudartApi()
    with pytest.raises(CudaError) as info:
        api.check((cudart.cudaError_t.cudaErrorMemoryAllocation, 0), "cudaMalloc(1 TiB)")
    assert "cudaMalloc(1 TiB) failed" in str(info.value) and "cudaErrorMemoryAllocation" in str(info.value)
    assert api.check((cudart.cudaError_t.cudaSuccess, 42), "x") == 42
    assert api.check((cudart.cudaError_t.cudaSuccess,), "x") is None


def test_unknown_adapter_is_refused() -> None:
    with pytest.raises(ValueError, match="cuda.bindings"):
        cuda_api("cupy")


@needs_cuda_python
@pytest.mark.skipif(cuda_device() is not None, reason="a GPU is present: allocation succeeds, no error to check")
def test_without_a_gpu_allocation_fails_with_the_cuda_error_name() -> None:
    with pytest.raises(CudaError, match=r"cudaMalloc\(64\) failed: cudaError\w+"):
        DeviceBuffer(64)


def test_sizes_are_checked_before_any_cuda_call() -> None:
    with pytest.raises(ValueError, match="positive size"):
        DeviceBuffer(0)


@pytest.mark.gpu
@needs_gpu
def test_host_device_host_round_trip_on_a_stream() -> None:
    src = np.random.default_rng(0).standard_normal((33, 8, 8, 3)).astype(np.float32)
    with (
        Stream() as stream,
        PinnedHostBuffer(src.shape, np.float32) as up,
        PinnedHostBuffer(src.shape, np.float32) as down,
        DeviceBuffer(src.nbytes) as dev,
    ):
        assert up.array.shape == src.shape and up.array.dtype == np.float32
        np.copyto(up.array, src)
        dev.copy_from_host(up.array, stream)
        dev.copy_to_host(down.array, stream)
        stream.synchronize()
        np.testing.assert_array_equal(down.array, src)
        # a partial copy touches only the leading rows, as the runner's partial batches do
        down.array[:] = 0
        dev.copy_to_host(down.array[:5], stream)
        stream.synchronize()
        np.testing.assert_array_equal(down.array[:5], src[:5])
        assert not down.array[5:].any()


@pytest.mark.gpu
@needs_gpu
def test_synchronous_copies_and_size_checks() -> None:
    src = np.arange(1000, dtype=np.float16)
    out = np.empty_like(src)
    with DeviceBuffer(src.nbytes) as dev:
        dev.copy_from_host(src)
        dev.copy_to_host(out)
        np.testing.assert_array_equal(out, src)
        with pytest.raises(ValueError, match="does not fit"):
            dev.copy_from_host(np.zeros(1001, dtype=np.float16))
        with pytest.raises(ValueError, match="C-contiguous"):
            dev.copy_from_host(np.zeros((10, 10), dtype=np.float16)[:, ::2])


@pytest.mark.gpu
@needs_gpu
def test_events_time_work_on_the_stream() -> None:
    nbytes = 256 << 20
    host = PinnedHostBuffer((nbytes,), np.uint8)
    with Stream() as stream, Event() as start, Event() as end, DeviceBuffer(nbytes) as dev:
        start.record(stream)
        for _ in range(4):
            dev.copy_from_host(host.array, stream)
        end.record(stream)
        ms = start.elapsed_ms(end)
    host.close()
    # 1 GiB over PCIe/NVLink-C2C takes milliseconds, never zero and never minutes
    assert 0.01 < ms < 60_000, ms


@pytest.mark.gpu
@needs_gpu
def test_a_real_cuda_failure_raises_cuda_error() -> None:
    with pytest.raises(CudaError, match="cudaMalloc"):
        DeviceBuffer(1 << 50)  # 1 PiB: no GPU has it


@pytest.mark.gpu
@needs_gpu
def test_close_is_idempotent_and_frees_once() -> None:
    buf = DeviceBuffer(1024)
    buf.close()
    buf.close()
    pinned = PinnedHostBuffer((4, 4), np.float32)
    pinned.close()
    assert pinned.array.size == 0  # the view no longer points at freed memory
    pinned.close()
