"""`trt-equiv check`: the table, exit codes 0 / 1 / 2, and the silent conversion bugs it must catch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.onnx_edits import replace_weights, scale_input
from trt_equiv.cli import main
from trt_equiv.data import BUNDLED_MODEL, BUNDLED_TEST
from trt_equiv.pipeline import Pipeline


@pytest.fixture(scope="module")
def fp32_onnx(trt_equiv_pipeline: Pipeline) -> Path:
    return trt_equiv_pipeline.onnx("fp32")


def run(capsys: pytest.CaptureFixture[str], *args: str, cache: Path) -> tuple[int, str, str]:
    code = main(["check", "--cache-dir", str(cache), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_bundled_model_is_equivalent(capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline) -> None:
    code, out, _ = run(capsys, "--backends", "onnxruntime", "--precisions", "fp32", "--batch-sizes", "7,all",
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 0, out
    assert re.search(r"onnxruntime-fp32\s+savedmodel-fp32\s+output_0\s+probabilities\s+7\s", out), out
    assert "PASS" in out and "FAIL" not in out
    assert "EQUIVALENT: 3 passed, 0 failed" in out  # the data / reference stage, then batch 7 and the whole set


def test_input_scaled_by_255_is_caught(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, fp32_onnx: Path, tmp_path: Path
) -> None:
    bad = scale_input(fp32_onnx, tmp_path / "x255.onnx")
    code, out, _ = run(capsys, "--onnx", str(bad), "--backends", "onnxruntime", "--precisions", "fp32",
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 1
    assert "FAIL: onnxruntime-fp32 vs reference savedmodel-fp32" in out
    assert "max_abs" in out and "VIOLATED" in out and "blamed stage: conversion (tf2onnx)" in out
    assert "NOT EQUIVALENT" in out


def test_a_different_model_is_caught(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, fp32_onnx: Path, tmp_path: Path
) -> None:
    other = replace_weights(fp32_onnx, tmp_path / "other.onnx", which="last", seed=7)
    code, out, _ = run(capsys, "--onnx", str(other), "--backends", "onnxruntime", "--precisions", "fp32",
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 1
    assert "top1_agreement" in out and "accuracy_drop" in out and "VIOLATED" in out


def test_report_directory(capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "--backends", "onnxruntime", "--precisions", "fp32", "--report", str(tmp_path / "r"),
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 0
    md = (tmp_path / "r" / "equivalence.md").read_text()
    assert "| onnxruntime-fp32 | savedmodel-fp32 | output_0 | probabilities | 32 |" in md
    assert '"passed": true' in (tmp_path / "r" / "equivalence.json").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model"], "expected a SavedModel directory"),
        (["--model", str(BUNDLED_MODEL)], "--data: expected a .npz data file"),
        (["--data", "/nonexistent.npz"], "no such file"),
        (["--backends", "tensorflow"], "--backends: expected a comma list"),
        (["--precisions", "fp8"], "--precisions: expected a comma list"),
        (["--batch-sizes", "0"], "batch sizes: expected positive integers"),
        (["--tolerance", "fp16.max_abs"], "KEY.BOUND=VALUE"),
        (["--onnx", "/nonexistent.onnx"], "--onnx: expected an existing file"),
    ],
    ids=["missing-model", "user-model-without-data", "missing-data", "backend", "precision", "batch", "tolerance",
         "missing-onnx"],
)  # fmt: skip
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str) -> None:
    code, out, err = run(capsys, *args, cache=tmp_path)
    assert code == 2
    assert message in err and out == ""


def test_user_model_int8_without_calibration_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline
) -> None:
    code, _, err = run(capsys, "--model", str(BUNDLED_MODEL), "--data", str(BUNDLED_TEST), "--backends",
                       "onnxruntime", "--precisions", "int8", cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 2
    assert "expected a calibration set (--calibration FILE.npz)" in err


def test_named_backend_that_cannot_run_here_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    reason = Pipeline.unavailable_reason("tensorrt")
    if reason is None:
        pytest.skip("TensorRT can execute on this machine (GPU present); the missing-runtime path cannot be shown")
    code, _, err = run(capsys, "--backends", "tensorrt", "--precisions", "fp32", cache=tmp_path)
    assert code == 2
    assert "tensorrt-fp32 cannot run here" in err


def test_argparse_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--no-such-flag"])
    assert info.value.code == 2


def test_runner_that_drops_rows_fails_with_blame_not_usage(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "100 samples, batch 32 → 96 processed": a failed equivalence (exit 1) blamed on the stage."""
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    original = OnnxRuntimeBackend._infer_impl
    monkeypatch.setattr(
        OnnxRuntimeBackend, "_infer_impl", lambda self, x: {k: v[:-1] for k, v in original(self, x).items()}
    )
    code, out, _ = run(capsys, "--backends", "onnxruntime", "--precisions", "fp32,fp16",
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 1
    assert "onnxruntime-fp32 produced no outputs" in out and "returned 31 rows for a batch of 32" in out
    assert "blamed stage: conversion (tf2onnx)" in out and "blamed stage: precision recipe (fp16)" in out


def test_reference_at_chance_level_fails(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    """ "accuracy 0.1000 at every precision": identical answers prove nothing when the reference is at chance."""
    import numpy as np

    from trt_equiv.data import Dataset, load_npz, save_npz

    data = load_npz(BUNDLED_TEST)
    assert data.y is not None
    shuffled = tmp_path / "shuffled_labels.npz"
    save_npz(shuffled, Dataset.single(data.x, np.random.default_rng(0).permutation(data.y)))
    code, out, _ = run(capsys, "--model", str(BUNDLED_MODEL), "--data", str(shuffled), "--backends", "onnxruntime",
                       "--precisions", "fp32", cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 1
    assert "at chance for 10 classes" in out and "blamed stage: data / reference" in out
    assert "blamed stage: conversion (tf2onnx)" not in out  # the ONNX file matches the SavedModel: not a conversion bug


def test_nothing_runnable_is_a_missing_prerequisite(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        Pipeline, "unavailable_reason", staticmethod(lambda backend, precision="fp32", cache_dir=None: "no GPU")
    )
    code, _, err = run(capsys, cache=trt_equiv_pipeline.cache_dir)
    assert code == 2 and "no candidate backend can run here" in err


def test_unwritable_report_dir_is_exit_2(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run(capsys, "--backends", "onnxruntime", "--precisions", "fp32", "--report", str(blocker),
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 2 and "FileExistsError" in err


def test_calibration_with_wrong_sample_shape_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    import numpy as np

    from trt_equiv.data import Dataset, save_npz

    calib = tmp_path / "calib28.npz"
    save_npz(calib, Dataset.single(np.random.default_rng(0).random((64, 28, 28, 3), dtype=np.float32)))
    code, _, err = run(capsys, "--model", str(BUNDLED_MODEL), "--data", str(BUNDLED_TEST), "--backends",
                       "onnxruntime", "--precisions", "int8", "--calibration", str(calib),
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 2
    assert "input 'input': expected per-sample shape (32, 32, 3), got (28, 28, 3)" in err


def test_a_failing_reduced_precision_file_says_where_it_diverges(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    """Issue 11 item 2: a failing fp16/int8 row carries locate's summary (first divergence, five worst layers)."""
    broken = replace_weights(trt_equiv_pipeline.onnx("fp16"), tmp_path / "broken.fp16.onnx", which="first", scale=3.0)
    code, out, _ = run(capsys, "--onnx", f"fp16={broken}", "--backends", "onnxruntime", "--precisions", "fp16",
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 1
    assert "blamed stage: precision recipe (fp16)" in out
    assert re.search(r"first divergence: \S+ \(Conv\)", out), out
    assert "worst 5 layers" in out


def test_the_test_set_given_as_calibration_is_refused_before_calibrating(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline
) -> None:
    code, _, err = run(capsys, "--model", str(BUNDLED_MODEL), "--data", str(BUNDLED_TEST), "--calibration",
                       str(BUNDLED_TEST), "--backends", "onnxruntime", "--precisions", "int8",
                       cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 2 and "360 of its samples are also in the test data" in err


def test_a_one_sample_data_set_gives_no_verdict(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    from trt_equiv.data import load_npz, save_npz

    one = tmp_path / "one.npz"
    save_npz(one, load_npz(BUNDLED_TEST).take(1))
    code, out, _ = run(capsys, "--model", str(BUNDLED_MODEL), "--data", str(one), "--backends", "onnxruntime",
                       "--precisions", "fp32", cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert code == 1 and "a verdict needs at least 30" in out and "blamed stage: data / reference" in out
