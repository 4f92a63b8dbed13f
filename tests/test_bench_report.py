"""Shared measurement code, the report (tables, plots, HTML) and the `bench` / `report` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.bench import measure, percentile, summarize
from trt_equiv.cli import main
from trt_equiv.compare import compare
from trt_equiv.pipeline import Pipeline
from trt_equiv.report import BenchRow, bench_rows_from_json, throughput_markdown, write_report


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


def test_measure_warms_up_then_times_each_round() -> None:
    calls: list[int] = []
    device = iter([0.5, 0.25, 0.75])
    s = measure(lambda: calls.append(1), 4, warmup=2, rounds=3, device_time=lambda: next(device))
    assert len(calls) == 5 and s.rounds == 3 and s.batch_size == 4
    assert s.device_median_s == 0.5


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
    assert "| onnxruntime-fp32 | 1,000 | 16,000 | 4.00 | 8.00 | 1.50 MB | - |" in table


def test_report_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.random((20, 10)).astype(np.float32)
    outputs = {"savedmodel-fp32": ref, "onnxruntime-fp16": ref + 1e-4}
    comparisons = [compare(ref, outputs["onnxruntime-fp16"], reference_label="savedmodel-fp32",
                           candidate_label="onnxruntime-fp16")]  # fmt: skip
    written = write_report(tmp_path, comparisons=comparisons, bench=bench_rows_from_json(_payload()), outputs=outputs)
    names = {p.name for p in written}
    assert {"report.md", "report.html", "errors.png", "throughput.png", "equivalence.json"} <= names
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # self-contained: plots inlined
    assert "<td class='PASS'>PASS</td>" in html and "onnxruntime-fp16" in html
    assert (tmp_path / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_bench_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline) -> None:
    code = main(["bench", "--backends", "savedmodel,onnxruntime", "--precisions", "fp32,int8", "--batch-sizes",
                 "1,32", "--rounds", "2", "--warmup", "1", "--cache-dir", str(trt_equiv_pipeline.cache_dir),
                 "--json", str(tmp_path / "b.json"), "--report", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    rows = bench_rows_from_json(json.loads((tmp_path / "b.json").read_text()))
    assert {(r.label, r.batch_size) for r in rows} == {
        (label, b) for label in ("savedmodel-fp32", "onnxruntime-fp32", "onnxruntime-int8") for b in (1, 32)
    }
    assert all(r.samples_per_s > 0 and r.load_s is not None and r.artefact_bytes for r in rows)
    assert "| savedmodel-fp32 |" in out and (tmp_path / "r" / "throughput.png").is_file()
    assert main(["bench", "--rounds", "0"]) == 2


def test_check_report_has_error_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline
) -> None:
    code = main(["check", "--backends", "onnxruntime", "--precisions", "fp32,fp16", "--cache-dir",
                 str(trt_equiv_pipeline.cache_dir), "--report", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert (tmp_path / "errors.png").is_file() and "Equivalence" in (tmp_path / "report.md").read_text()


def test_benchrow_label() -> None:
    assert BenchRow("tensorrt", "int8", 32, 1.0, 1.0).label == "tensorrt-int8"
