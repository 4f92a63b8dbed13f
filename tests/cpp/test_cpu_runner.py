"""End to end through CppRunnerBackend with the CPU test runner: every sample, in order, for sample counts
that batches do not divide; plus timing, padding to an engine's minimum batch and the runner's own checks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trt_equiv.backends.cpp import CppRunnerBackend
from trt_equiv.errors import InputValidationError, RunnerError


@pytest.mark.parametrize(("n", "runner_batch"), [(100, 32), (1, 32), (65, 64), (64, 64), (7, 1)])
def test_every_row_in_order_for_partial_last_batches(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable, n: int, runner_batch: int
) -> None:
    engine = make_cpu_engine((4, 3))
    x = exact_inputs(n, engine.sample_shape, seed=n)
    with CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=runner_batch) as backend:
        out = backend.infer(x)
        timing = backend.last_timing
    want = engine.reference(x)
    assert out.shape == want.shape, f"expected {want.shape}, got {out.shape}"
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, want)
    assert timing is not None
    assert timing["samples"] == n
    assert timing["batches_per_pass"] == math.ceil(n / runner_batch)
    assert timing["last_batch_rows"] == n - (math.ceil(n / runner_batch) - 1) * runner_batch


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 300), runner_batch=st.integers(1, 70), seed=st.integers(0, 2**31))
def test_batch_invariance_fuzzed(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable, n: int, runner_batch: int, seed: int
) -> None:
    engine = make_cpu_engine((2, 5), scale=0.25, bias=-1.0, copy_scale=4.0)
    x = exact_inputs(n, engine.sample_shape, seed=seed)
    with CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=runner_batch) as backend:
        out = backend.infer(x)
    np.testing.assert_array_equal(out, engine.reference(x))


def test_shuffled_samples_give_shuffled_rows(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    engine = make_cpu_engine((3,))
    x = exact_inputs(50, engine.sample_shape, seed=1)
    perm = np.random.default_rng(2).permutation(50)
    with CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=16) as backend:
        np.testing.assert_array_equal(backend.infer(x[perm]), backend.infer(x)[perm])


def test_float16_engine_input_is_rounded_like_numpy(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    engine = make_cpu_engine((6,), input_dtype="float16")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((40, 6)) * np.array([1e-6, 1e-3, 1.0, 300.0, 2e4, 1e5])).astype(np.float32)
    with CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=16) as backend:
        out = backend.infer(x)
    # Exact, sum included: six float16 values add up exactly in float64 on both sides.
    np.testing.assert_array_equal(out, engine.reference(x))
    assert np.isinf(out[np.abs(x[:, 5]) > 65520, 2]).all(), "values beyond the float16 range must become inf"


def test_float16_npy_input_is_widened_exactly(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable, run_cli: Callable, tmp_path: Path
) -> None:
    engine = make_cpu_engine((4,))
    x16 = exact_inputs(9, engine.sample_shape).astype(np.float16)
    np.save(tmp_path / "in.npy", x16)
    proc = run_cli(cpu_runner, "--engine", engine.path, "--input", tmp_path / "in.npy", "--output", tmp_path / "o.npy")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), engine.reference(x16.astype(np.float32)))


def test_last_batch_is_padded_up_to_the_engine_minimum(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    engine = make_cpu_engine((4,), min_batch=8, max_batch=8)  # a fixed-batch engine
    x = exact_inputs(21, engine.sample_shape)
    with CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=8) as backend:
        out = backend.infer(x)
    np.testing.assert_array_equal(out, engine.reference(x))


def test_timing_report(cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable) -> None:
    engine = make_cpu_engine((8, 8))
    x = exact_inputs(70, engine.sample_shape)
    with CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=32, warmup=2, iterations=5) as backend:
        backend.infer(x)
        t = backend.last_timing
    assert t is not None
    assert t["schema"] == "trt-equiv-runner-timing/2"
    assert (t["warmup"], t["iterations"], t["batch_size"], t["batches_per_pass"]) == (2, 5, 32, 3)
    assert len(t["pass_ms"]) == 5, "only the timed passes are reported"
    lat = np.asarray(t["batch_latencies_ms"])
    assert lat.size == 5 * 3 == t["batch_latency_ms"]["count"]
    for key, q in (("median", 50), ("p90", 90), ("p99", 99)):
        assert t["batch_latency_ms"][key] == pytest.approx(np.percentile(lat, q), rel=1e-12, abs=1e-12)
    assert t["batch_latency_ms"]["min"] <= t["batch_latency_ms"]["median"] <= t["batch_latency_ms"]["max"]
    assert t["samples_per_s"] == pytest.approx(70 * 5 / (sum(t["pass_ms"]) / 1000.0), rel=1e-9)
    assert [i["shape"] for i in t["inputs"]] == [[70, 8, 8]] and [o["shape"] for o in t["outputs"]] == [[70, 3]]
    assert t["compute_ms"] is None, "the CPU engine has no device timer"


def test_batch_size_above_engine_maximum_is_a_usage_error(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    engine = make_cpu_engine((4,), max_batch=16)
    with (
        CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=32) as backend,
        pytest.raises(RunnerError, match=r"exit code 2: usage error[\s\S]*maximum batch 16"),
    ):
        backend.infer(exact_inputs(40, engine.sample_shape))


def test_runner_count_check_catches_an_engine_that_drops_rows(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    engine = make_cpu_engine((4,), drop_rows=1)
    with (
        CppRunnerBackend(engine.path, binary=cpu_runner, batch_size=32) as backend,
        pytest.raises(RunnerError, match=r"exit code 1[\s\S]*returned 31 rows for a batch of 32"),
    ):
        backend.infer(exact_inputs(100, engine.sample_shape))


def test_engine_failure_mid_run_is_exit_4_and_writes_no_output(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable, run_cli: Callable, tmp_path: Path
) -> None:
    engine = make_cpu_engine((4,), fail_after_calls=2)
    np.save(tmp_path / "in.npy", exact_inputs(100, engine.sample_shape))
    out = tmp_path / "out.npy"
    proc = run_cli(
        cpu_runner, "--engine", engine.path, "--input", tmp_path / "in.npy", "--output", out, "--batch-size", 32
    )
    assert proc.returncode == 4, proc.stderr
    assert "failing on purpose after 2 call(s)" in proc.stderr
    assert not out.exists(), "a failed run must not leave an output file behind"


def test_per_sample_shape_mismatch_is_an_input_error_naming_the_layout(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable, run_cli: Callable, tmp_path: Path
) -> None:
    engine = make_cpu_engine((3, 8, 8))  # "NCHW"
    np.save(tmp_path / "nhwc.npy", exact_inputs(5, (8, 8, 3)))
    proc = run_cli(
        cpu_runner, "--engine", engine.path, "--input", tmp_path / "nhwc.npy", "--output", tmp_path / "o.npy"
    )
    assert proc.returncode == 3, proc.stderr
    assert "(8, 8, 3)" in proc.stderr and "(3, 8, 8)" in proc.stderr and "NHWC/NCHW" in proc.stderr, proc.stderr


def test_open_learns_the_sample_shape_from_the_engine(cpu_runner: Path, make_cpu_engine: Callable) -> None:
    engine = make_cpu_engine((3, 8, 8), max_batch=48)
    with CppRunnerBackend(engine.path, binary=cpu_runner) as backend:
        assert backend.sample_shape == (3, 8, 8)
        assert backend.engine_info is not None and backend.engine_info["max_batch"] == 48
        assert [o["sample_shape"] for o in backend.engine_info["outputs"]] == [[3]]
        with pytest.raises(InputValidationError, match=r"expected per-sample shape \(3, 8, 8\), got \(8, 8, 3\)"):
            backend.infer(np.zeros((2, 8, 8, 3), np.float32))


def test_declared_sample_shape_must_match_the_engine(cpu_runner: Path, make_cpu_engine: Callable) -> None:
    engine = make_cpu_engine((4,))
    backend = CppRunnerBackend(engine.path, binary=cpu_runner, sample_shape=(5,))
    with pytest.raises(InputValidationError, match=r"sample_shape \(5,\) was declared[\s\S]*'x' any dtype \(batch, 4"):
        backend.open()


def test_default_batch_size_is_the_engine_maximum(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable
) -> None:
    engine = make_cpu_engine((4,), max_batch=24)
    x = exact_inputs(50, engine.sample_shape)
    with CppRunnerBackend(engine.path, binary=cpu_runner) as backend:
        np.testing.assert_array_equal(backend.infer(x), engine.reference(x))
        assert backend.last_timing is not None and backend.last_timing["batch_size"] == 24
