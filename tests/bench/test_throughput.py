"""Throughput and latency per backend × precision × batch size, and the harness overhead."""

from __future__ import annotations

import statistics
import time

import numpy as np

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
    assert out.shape == (bench_batch, 10)  # a benchmark of a broken call would measure nothing
    benchmark.extra_info.update(
        backend=backend.name, precision=backend.precision, batch_size=bench_batch,
        load_s=bench_backend.load_s, artefact_bytes=bench_backend.artefact_bytes,
    )  # fmt: skip
    if not benchmark.disabled:
        summary = summarize(benchmark.stats.stats.data, bench_batch, device_times[WARMUP_ROUNDS:])
        benchmark.extra_info.update(summary.as_extra_info())


def test_harness_overhead(benchmark, trt_equiv_pipeline, trt_equiv_data: Dataset, request) -> None:  # type: ignore[no-untyped-def]
    """`OnnxRuntimeBackend.infer` against `session.run` on the same pre-shaped batch of 32.

    Raw and wrapped calls alternate, so machine load affects both alike; the ratio of medians is the
    overhead. The target is checked when benchmarks are timed (`--benchmark-only`).
    """
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(trt_equiv_pipeline.onnx("fp32"), intra_op_threads=1).open()
    x = np.ascontiguousarray(trt_equiv_data.x[:32])
    session, feed, names = backend.session, {backend.input_name: x}, [backend.output_name]
    np.testing.assert_array_equal(session.run(names, feed)[0], backend.infer(x))  # same work on both sides

    rounds = 300 if not benchmark.disabled else 3
    raw, wrapped = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        session.run(names, feed)
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        backend.infer(x)
        wrapped.append(time.perf_counter() - start)
    overhead = statistics.median(wrapped) / statistics.median(raw) - 1.0
    benchmark.group = "harness overhead"
    benchmark.pedantic(backend.infer, args=(x,), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    benchmark.extra_info.update(
        overhead_ratio=overhead, raw_median_s=statistics.median(raw), infer_median_s=statistics.median(wrapped)
    )
    backend.close()
    if request.config.getoption("benchmark_only"):
        assert overhead < OVERHEAD_TARGET, f"backend.infer costs {overhead:.1%} over session.run (target < 2%)"
