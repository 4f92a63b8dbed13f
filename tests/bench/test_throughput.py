"""Throughput and latency per backend × precision × batch size, and the harness overhead."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from tests.bench.conftest import OpenedBackend
from trt_equiv.bench import summarize
from trt_equiv.data import Dataset

WARMUP_ROUNDS = 5
ROUNDS = 30
#: `backend.infer` may cost at most this much over the raw runtime call (README states the measurement)
OVERHEAD_TARGET = 0.02


def test_throughput(benchmark, bench_backend: OpenedBackend, bench_batch: int, trt_equiv_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    backend = bench_backend.backend
    x = np.ascontiguousarray(trt_equiv_data.x[:bench_batch])
    device_times: list[float] = []

    def call() -> np.ndarray:
        out = backend.infer(x)
        if backend.last_device_time_s is not None:
            device_times.append(backend.last_device_time_s)
        return out

    benchmark.group = f"batch {bench_batch}"
    out = benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    assert out.shape[0] == bench_batch  # a benchmark of a broken call would measure nothing
    benchmark.extra_info.update(
        backend=backend.name, precision=backend.precision, batch_size=bench_batch,
        load_s=bench_backend.load_s, artefact_bytes=bench_backend.artefact_bytes,
    )  # fmt: skip
    if not benchmark.disabled:
        summary = summarize(benchmark.stats.stats.data, bench_batch, device_times[WARMUP_ROUNDS:])
        benchmark.extra_info.update(summary.as_extra_info())


@pytest.fixture(scope="module")
def overhead_setup(trt_equiv_pipeline, trt_equiv_data: Dataset):  # type: ignore[no-untyped-def]
    """One ONNX Runtime session (single thread, steadier timings) and a pre-shaped batch of 32."""
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(trt_equiv_pipeline.onnx("fp32"), intra_op_threads=1).open()
    x = np.ascontiguousarray(trt_equiv_data.x[:32])
    raw = lambda: backend.session.run([backend.output_name], {backend.input_name: x})[0]  # noqa: E731
    np.testing.assert_array_equal(raw(), backend.infer(x))  # both sides do the same work
    yield backend, x, raw
    backend.close()


@pytest.mark.parametrize("call", ["session.run", "backend.infer"])
def test_harness_overhead(benchmark, overhead_setup, call: str, request) -> None:  # type: ignore[no-untyped-def]
    """The pair `backend.infer` vs the raw `session.run`; the infer side also measures the ratio.

    For the ratio, raw and wrapped calls alternate and are compared pairwise; the target is
    checked when benchmarks are timed (`--benchmark-only`), never in ordinary test runs.
    """
    backend, x, raw = overhead_setup
    fn = raw if call == "session.run" else (lambda: backend.infer(x))
    benchmark.group = "harness overhead (onnxruntime-fp32, batch 32)"
    benchmark.pedantic(fn, rounds=ROUNDS * 3, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    if call == "session.run":
        return
    rounds = 3 if benchmark.disabled else 400
    raw_t, wrapped_t = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        raw()
        raw_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        backend.infer(x)
        wrapped_t.append(time.perf_counter() - start)
    # Median of paired differences: each wrapped call against the raw call just before it, so drift in
    # machine load between the two halves of the run cancels out.
    overhead = statistics.median(w - r for w, r in zip(wrapped_t, raw_t, strict=True)) / statistics.median(raw_t)
    benchmark.extra_info.update(
        overhead_ratio=overhead, raw_median_s=statistics.median(raw_t), infer_median_s=statistics.median(wrapped_t)
    )
    print(f"harness overhead: backend.infer {overhead:+.2%} over session.run ({rounds} alternating rounds)")
    if request.config.getoption("benchmark_only"):
        assert overhead < OVERHEAD_TARGET, f"backend.infer costs {overhead:.1%} over session.run (target < 2%)"
