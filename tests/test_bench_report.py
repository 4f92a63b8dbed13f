"""Shared measurement code, the report (tables, plots, HTML) and the `bench` / `report` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.bench import (
    TIMED_HOST,
    OutputCheck,
    StabilityRule,
    harness_overhead,
    machine_label,
    measure,
    measure_backend,
    percentile,
    summarize,
)
from trt_equiv.cli import main
from trt_equiv.compare import compare
from trt_equiv.errors import BenchmarkError, InputValidationError
from trt_equiv.pipeline import Pipeline
from trt_equiv.report import BenchRow, bench_rows_from_json, load_equivalence_json, throughput_markdown, write_report


def test_summary_of_known_times() -> None:
    s = summarize([0.010, 0.020, 0.030, 0.040], batch_size=8, device_times=[0.001, 0.003])
    assert s.median_s == pytest.approx(0.025) and s.mean_s == pytest.approx(0.025)
    assert s.samples_per_s == pytest.approx(8 / 0.025)
    assert s.p90_s == pytest.approx(0.037) and s.min_s == 0.010
    assert s.cv == pytest.approx(np.std([10, 20, 30, 40], ddof=1) / 25)
    assert s.unstable and s.device_median_s == pytest.approx(0.002)
    steady = summarize([0.01] * 5, batch_size=1)
    assert steady.cv == 0.0 and not steady.unstable and steady.device_median_s is None
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    with pytest.raises(ValueError, match="at least one timing"):
        summarize([], batch_size=1)


def test_measure_repeats_until_stable_or_out_of_time() -> None:
    calls: list[int] = []
    ticks = iter(range(10**6))
    steady = measure(lambda: calls.append(1), 4, StabilityRule(warmup=2, min_rounds=3, round_s=0.5, max_time_s=60),
                     clock=lambda: float(next(ticks)))  # fmt: skip
    assert steady.stable and steady.rounds == 3 and steady.cv == 0.0  # every call "takes" 1 tick: stable at once
    assert len(calls) == 2 + 1 + steady.calls  # warm-up, the calibration call, then the timed calls

    noisy_times = iter([0.0, 1.0] + [t for i in range(10**5) for t in (i * 10.0, i * 10.0 + (1 + i % 2 * 4))])
    noisy = measure(lambda: None, 1, StabilityRule(warmup=0, min_rounds=2, round_s=1e-9, max_time_s=50),
                    clock=lambda: next(noisy_times))  # fmt: skip
    assert not noisy.stable and noisy.cv > 0.02 and noisy.rounds > 2  # ran until the budget, then flagged
    info = noisy.as_extra_info()
    assert info["stable"] is False and info["target_cv"] == 0.02 and info["timed"] == TIMED_HOST


def test_stability_rule_refuses_nonsense() -> None:
    with pytest.raises(InputValidationError, match="target CoV > 0"):
        StabilityRule(target_cv=0)
    with pytest.raises(InputValidationError, match="output check rate"):
        StabilityRule(check_rate=2)
    assert "2.0%" in StabilityRule().describe() and "10 s per row" in StabilityRule().describe()


class _CorruptsOnCall:
    """A backend double whose ``n``-th ``infer`` call (1-based) returns garbage, as a loop reusing a stale
    buffer would; the harness must notice it among the timed calls."""

    name = "fake"
    label = "fake-fp32"
    last_device_time_s = None

    def __init__(self, bad_call: int) -> None:
        self.bad_call, self.calls = bad_call, 0

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = np.tanh(x.reshape(len(x), -1)[:, :10])
        return np.full_like(out, 7.0) if self.calls == self.bad_call else out


def test_benchmark_fails_when_a_timed_call_returns_garbage() -> None:
    x = np.random.default_rng(0).random((8, 4, 4)).astype(np.float32)
    rule = StabilityRule(warmup=3, min_rounds=3, round_s=0.0, max_time_s=0.0, check_rate=1.0)
    # calls 1-3 warm up, 4 is the verified call, 5 the calibration call: 6 is the first timed call, 8 the last
    for bad in (6, 8):
        with pytest.raises(BenchmarkError, match="differs from the verified output"):
            measure_backend(_CorruptsOnCall(bad), x, rule)
    assert measure_backend(_CorruptsOnCall(10**9), x, rule).outputs_checked >= 3  # a good backend passes
    check = OutputCheck({"a": np.ones(3)}, where="w")
    with pytest.raises(BenchmarkError, match="returned outputs"):
        check.verify({"b": np.ones(3)}, 0)
    with pytest.raises(BenchmarkError, match="shape"):
        check.verify({"a": np.ones(4)}, 0)


def test_verified_outputs_are_copied() -> None:
    """A backend that reuses one output buffer cannot make the verified outputs agree with garbage."""
    buffer = np.zeros(4, dtype=np.float32)
    check = OutputCheck(buffer)
    buffer[:] = 9.0  # the next call overwrote the buffer it returned before
    with pytest.raises(BenchmarkError):
        check.verify(buffer, 3)


def test_harness_overhead_against_raw_session_run(trt_equiv_pipeline: Pipeline) -> None:
    backend = trt_equiv_pipeline.open_backend("onnxruntime", "fp32").open()
    x = trt_equiv_pipeline.data.x[:32]
    over = harness_overhead(backend, x, pairs=10, max_time_s=0.5)
    assert over is not None and over.raw_call == "session.run" and over.pairs == 10
    assert over.raw_samples_per_s > 0 and over.harness_samples_per_s > 0 and -1 < over.overhead < 1
    assert harness_overhead(_CorruptsOnCall(0), x) is None  # no raw call known: no column, not a guess


def _payload() -> dict[str, object]:
    def bench(backend: str, precision: str, batch: int, median: float) -> dict[str, object]:
        info = {"backend": backend, "precision": precision, "batch_size": batch, "artefact_bytes": 1_500_000}
        return {"stats": {"median": median}, "extra_info": info}

    return {
        "benchmarks": [
            bench("savedmodel", "fp32", 1, 0.004), bench("savedmodel", "fp32", 32, 0.016),
            bench("onnxruntime", "fp32", 1, 0.001), bench("onnxruntime", "fp32", 32, 0.002),
            {"stats": {"median": 0.002}, "extra_info": {"overhead_ratio": 0.01}},  # not a throughput row
        ]
    }  # fmt: skip


def test_rows_from_pytest_benchmark_json_and_speedup() -> None:
    rows = bench_rows_from_json(_payload())
    assert len(rows) == 4
    ort32 = next(r for r in rows if r.label == "onnxruntime-fp32" and r.batch_size == 32)
    assert ort32.samples_per_s == pytest.approx(16_000)
    table = throughput_markdown(rows)
    assert "| onnxruntime-fp32 | 1,000 | 16,000 | 4.00 | 8.00 | - | - | - | - | 1.50 MB | - |" in table


def _row(**kw: object) -> BenchRow:
    base: dict[str, object] = dict(
        backend="onnxruntime",
        precision="fp32",
        batch_size=32,
        samples_per_s=1000.0,
        median_s=0.032,
        cv=0.005,
        stable=True,
        outputs_checked=3,
        outputs_matched=True,
    )
    return BenchRow(**(base | kw))  # type: ignore[arg-type]


def test_unstable_rows_are_marked_in_tables_and_drawn_hollow_grey(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rows = [_row(), _row(batch_size=1, samples_per_s=500.0, cv=0.3, stable=False),
            _row(backend="tflite", cv=0.5, stable=None)]  # fmt: skip  # old file: judged by its CoV
    table = throughput_markdown(rows)
    assert "| 500 † | 1,000 |" in table and "tflite-fp32 | - | 1,000 † |" in table
    assert "onnxruntime-fp32 b1 (CoV 30.0%)" in table and "6 sampled timed calls" not in table
    import matplotlib.figure

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    from trt_equiv.report import plot_throughput

    plot_throughput(rows, tmp_path / "t.png")
    lines = figures[0].axes[0].get_lines()
    grey = [ln for ln in lines if ln.get_markeredgecolor() == "grey" and ln.get_markerfacecolor() == "none"]
    assert sorted(len(ln.get_xdata()) for ln in grey) == [1, 1], "each unstable point drawn hollow grey"
    assert figures[0].axes[0].get_legend_handles_labels()[1].count("unstable (CoV over target)") == 1


def test_several_machines_side_by_side(tmp_path: Path) -> None:
    a = {
        "machine_info": {"gpu": "NVIDIA H100 (sm_90)", "cuda_driver": 13000, "tensorrt": "10.11"},
        "benchmarks": [{"extra_info": _row().as_json()}],
    }
    b = {"machine_info": {"gpu": "none", "cpu": "AMD EPYC", "cpu_count": 2},
         "benchmarks": [{"extra_info": _row(samples_per_s=250.0, stable=False).as_json()}]}  # fmt: skip
    assert machine_label(a["machine_info"]) == "NVIDIA H100 (sm_90), driver 13000, TensorRT 10.11"
    assert machine_label(b["machine_info"]) == "AMD EPYC (2 cores)"
    paths = []
    for name, payload in (("a.json", a), ("b.json", b)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(payload))
    assert main(["report", "--benchmark-json", *map(str, paths), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| backend | batch | NVIDIA H100 (sm_90), driver 13000, TensorRT 10.11 samples/s | AMD EPYC (2 cores) " in md
    assert "| onnxruntime-fp32 | 32 | 1,000 | 250 † |" in md


def test_report_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((20, 10)).astype(np.float32)
    outputs = {"savedmodel-fp32": ref, "onnxruntime-fp16": ref + 1e-4, "onnxruntime-int8": ref + 0.9}
    comparisons = [compare(ref, outputs[c], reference_label="savedmodel-fp32", candidate_label=c)
                   for c in ("onnxruntime-fp16", "onnxruntime-int8")]  # fmt: skip
    skipped = [("tensorrt-fp32", "no CUDA GPU here")]
    written = write_report(tmp_path, comparisons=comparisons, skipped=skipped, bench=bench_rows_from_json(_payload()),
                           outputs=outputs)  # fmt: skip
    names = {p.name for p in written}
    assert {"report.md", "report.html", "errors.png", "throughput.png", "equivalence.json"} <= names
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # self-contained: plots inlined
    assert "<td class='PASS'>PASS</td>" in html and "<td class='FAIL'>FAIL</td>" in html
    assert "|---" not in html and "```" not in html  # Markdown syntax never leaks into the HTML
    assert html.count("<h2>Throughput</h2>") == 1 and "<h2>Not run here</h2>" in html
    assert "<code>tensorrt-fp32</code>: no CUDA GPU here" in html
    failure = comparisons[1].report()
    assert "<h2>Failures</h2>" in html and failure.splitlines()[1].strip() in html
    assert failure in (tmp_path / "equivalence.md").read_text()
    assert (tmp_path / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the equivalence JSON round-trips into the same sections through `trt-equiv report`
    rows, not_run = load_equivalence_json(tmp_path / "equivalence.json")
    assert not_run == skipped and [r["verdict"] for r in rows] == ["PASS", "FAIL"]
    assert main(["report", "--equivalence-json", str(tmp_path / "equivalence.json"), "--out", str(tmp_path / "r")]) == 0
    again = (tmp_path / "r" / "report.html").read_text()
    assert "<h2>Not run here</h2>" in again and failure.splitlines()[1].strip() in again and "|---" not in again


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(_payload()))
    assert main(["report", "--benchmark-json", str(bench_json), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", "--benchmark-json", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "expected a readable JSON file" in capsys.readouterr().err
    bad.write_text(json.dumps({"benchmarks": []}))
    assert main(["report", "--benchmark-json", str(bad), "--out", str(tmp_path / "o3")]) == 2
    assert main(["report", "--out", str(tmp_path / "o4")]) == 2
    assert "got neither" in capsys.readouterr().err


def _info(**kw: object) -> dict[str, object]:
    return {"backend": "a", "precision": "fp32", "batch_size": 32, "median_s": 0.1} | kw


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "expected an object with a 'benchmarks' list, got list"),
        ({"benchmarks": "x"}, "expected an object with a 'benchmarks' list"),
        ({"benchmarks": [[1]]}, "benchmark #0 (?): expected an object with an 'extra_info' object"),
        (
            {
                "benchmarks": [
                    {"extra_info": {"backend": "a", "precision": "fp32", "batch_size": "32", "median_s": 0.1}}
                ]
            },
            "expected a number for batch_size, got '32'",
        ),  # fmt: skip
        (
            {
                "benchmarks": [
                    {"extra_info": {"backend": "a", "precision": "fp32", "batch_size": 32, "median_s": "fast"}}
                ]
            },
            "expected a number for median_s, got 'fast'",
        ),  # fmt: skip
        (
            {
                "benchmarks": [
                    {
                        "extra_info": {
                            "backend": "a",
                            "precision": "fp32",
                            "batch_size": 32,
                            "median_s": 0.1,
                            "stable": "yes",
                        }
                    }
                ]
            },
            "expected bool for stable",
        ),  # fmt: skip
    ],
)
def test_report_refuses_malformed_benchmark_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: object, message: str
) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(payload))
    assert main(["report", "--benchmark-json", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_refuses_malformed_equivalence_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "e.json"
    for payload, message in (([], "'comparisons' list"), ({"comparisons": [3]}, "comparison #0")):
        path.write_text(json.dumps(payload))
        assert main(["report", "--equivalence-json", str(path), "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err


def test_bench_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline) -> None:
    code = main(["bench", "--backends", "savedmodel,onnxruntime,tflite", "--precisions", "fp32,int8", "--batch-sizes",
                 "1,32", "--rounds", "2", "--warmup", "1", "--max-time", "0", "--check-rate", "0.5",
                 "--cache-dir", str(trt_equiv_pipeline.cache_dir),
                 "--json", str(tmp_path / "b.json"), "--report", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads((tmp_path / "b.json").read_text())
    rows = bench_rows_from_json(payload)
    labels = ("savedmodel-fp32", "onnxruntime-fp32", "onnxruntime-int8", "tflite-fp32", "tflite-int8")
    assert {(r.label, r.batch_size) for r in rows} == {(label, b) for label in labels for b in (1, 32)}
    assert all(r.samples_per_s > 0 and r.load_s is not None and r.artefact_bytes for r in rows)
    assert all(r.stable is not None and r.rounds and r.rounds >= 2 and r.timed == TIMED_HOST for r in rows)
    assert all(r.outputs_checked and r.outputs_matched for r in rows)
    with_raw = {r.label: r.raw_call for r in rows if r.raw_samples_per_s}
    assert with_raw["onnxruntime-fp32"] == "session.run" and with_raw["tflite-int8"].startswith("set_tensor+invoke")
    assert {r.batch_size for r in rows if r.overhead is not None} == {32}
    assert payload["machine_info"]["cpu"] and "CoV of round means" in payload["rule"]
    assert "| tflite-int8 |" in out and "how: " in out and (tmp_path / "r" / "throughput.png").is_file()
    assert main(["bench", "--rounds", "0"]) == 2
    assert main(["bench", "--target-cv", "0"]) == 2


def test_cli_sets_tf_log_level_without_overriding_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(_payload()))
    argv = ["report", "--benchmark-json", str(bench_json), "--out", str(tmp_path / "o")]
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert main(argv) == 0 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert main(argv) == 0 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_tensorflow_start_up_lines_are_dropped() -> None:
    """TF 2.21 prints absl's pre-init warning and the oneDNN notice on import whatever the log level says."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "from trt_equiv.cli import import_tensorflow_quietly as q; q(); import sys; print('after', file=sys.stderr)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "oneDNN custom operations" not in proc.stderr and "absl::InitializeLog" not in proc.stderr
    assert "after" in proc.stderr  # stderr is restored after the import
    loud = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert "oneDNN custom operations" in loud.stderr, "the noise this test guards against is no longer printed"


def test_no_licence_warning_in_pyproject() -> None:
    """setuptools >= 77 warns on a ``license = {text = ...}`` table; an SPDX string needs >= 77 to build."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert any(req.replace(" ", "").startswith("setuptools>=77") for req in project["build-system"]["requires"])


def test_check_report_has_error_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline
) -> None:
    code = main(["check", "--backends", "onnxruntime", "--precisions", "fp32,fp16", "--cache-dir",
                 str(trt_equiv_pipeline.cache_dir), "--report", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert (tmp_path / "errors.png").is_file() and "Equivalence" in (tmp_path / "report.md").read_text()


def test_benchrow_label() -> None:
    assert BenchRow("tensorrt", "int8", 32, 1.0, 1.0).label == "tensorrt-int8"
