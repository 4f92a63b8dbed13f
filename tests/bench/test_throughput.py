"""Throughput and latency per backend × precision × batch size, and the harness overhead.

Each row is measured by ``trt_equiv.bench.measure_backend`` (the same rule as ``trt-equiv bench``: rounds
until the CoV target or the time budget, outputs checked while timing). pytest-benchmark times the whole
adaptive measurement once; the row's numbers are in ``extra_info``, which ``trt-equiv report`` reads.
Under ``--benchmark-disable`` each body runs once on a zero time budget, so CI proves the suite works.
"""

from __future__ import annotations

import numpy as np

from tests.bench.conftest import OpenedBackend
from trt_equiv.bench import StabilityRule, harness_overhead, measure_backend
from trt_equiv.data import Dataset

#: `backend.infer` may cost at most this much over the raw runtime call at batch 32 (README states how)
OVERHEAD_TARGET = 0.02


def test_throughput(benchmark, bench_backend: OpenedBackend, bench_batch: int, trt_equiv_data: Dataset) -> None:  # type: ignore[no-untyped-def]
    backend = bench_backend.backend
    x = np.ascontiguousarray(trt_equiv_data.bind(backend.input_specs or ()).x[:bench_batch])
    rule = StabilityRule(min_rounds=2, max_time_s=0.0) if benchmark.disabled else StabilityRule()
    benchmark.group = f"batch {bench_batch}"
    summary = benchmark.pedantic(lambda: measure_backend(backend, x, rule), rounds=1, iterations=1)
    assert summary.calls >= summary.rounds >= 2 and summary.outputs_checked >= 1
    benchmark.extra_info.update(summary.as_extra_info())
    benchmark.extra_info.update(
        backend=backend.name, precision=backend.precision, batch_size=bench_batch,
        load_s=bench_backend.load_s, artefact_bytes=bench_backend.artefact_bytes, rule=rule.describe(),
    )  # fmt: skip
    if bench_batch == 32 and not benchmark.disabled:
        over = harness_overhead(backend, x)
        if over is not None:
            benchmark.extra_info.update(raw_call=over.raw_call, raw_samples_per_s=over.raw_samples_per_s,
                                        overhead=over.overhead)  # fmt: skip


def test_harness_overhead(trt_equiv_pipeline, trt_equiv_data: Dataset, request) -> None:  # type: ignore[no-untyped-def]
    """ONNX Runtime (single thread, steadier timings): `backend.infer` against `session.run` at batch 32.

    The 2 % target is asserted when benchmarks are timed (`--benchmark-only`), never in ordinary test runs.
    """
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    timed = request.config.getoption("benchmark_only")
    with OnnxRuntimeBackend(trt_equiv_pipeline.onnx("fp32"), intra_op_threads=1) as backend:
        x = np.ascontiguousarray(trt_equiv_data.x[:32])
        over = harness_overhead(backend, x, pairs=400 if timed else 3)
    assert over is not None and over.raw_call == "session.run"
    print(f"harness overhead: backend.infer {over.overhead:+.2%} over session.run ({over.pairs} alternating pairs)")
    if timed:
        assert over.overhead < OVERHEAD_TARGET, f"backend.infer costs {over.overhead:.1%} over session.run"
