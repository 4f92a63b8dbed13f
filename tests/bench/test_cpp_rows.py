"""C++ benchmark rows come from the runner's own timing JSON (CPU test engine; no GPU needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trt_equiv.bench import TIMED_RUNNER, StabilityRule, measure_backend


def test_cpp_rows_come_from_the_runners_timing(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    from trt_equiv.backends.cpp import CppRunnerBackend

    engine = make_cpu_engine((4, 3))
    x = exact_inputs(16, engine.sample_shape)
    with CppRunnerBackend(engine.path, binary=cpu_runner) as backend:
        s = measure_backend(backend, x, StabilityRule(warmup=2, min_rounds=3, round_s=0.001, max_time_s=0.5))
        timing = backend.last_timing
    assert timing is not None and timing["batch_size"] == 16 and timing["batches_per_pass"] == 1
    assert s.timed == TIMED_RUNNER and s.rounds >= 3 and s.outputs_checked == s.rounds
    # per-call times are the runner's batch latencies: far below a process start (several ms)
    assert s.calls == s.rounds * timing["iterations"] and timing["warmup"] == 2
    assert s.median_s < 0.002, f"median {s.median_s * 1e3:.3f} ms looks like a process start, not a batch"
    assert s.samples_per_s == pytest.approx(16 / s.median_s)


def test_cpp_benchmark_fails_on_a_runner_that_drops_rows_mid_run(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    from trt_equiv.backends.cpp import CppRunnerBackend
    from trt_equiv.errors import TrtEquivError

    engine = make_cpu_engine((4, 3), fail_after_calls=3)
    x = exact_inputs(8, engine.sample_shape)
    with CppRunnerBackend(engine.path, binary=cpu_runner) as backend, pytest.raises(TrtEquivError):
        measure_backend(backend, x, StabilityRule(warmup=3, min_rounds=5, round_s=0.0, max_time_s=0.0))
