"""`check --golden`: golden outputs as the reference, with TensorFlow made unimportable (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.onnx_edits import scale_input
from trt_equiv.cli import main
from trt_equiv.data import BUNDLED_CALIBRATION, BUNDLED_TEST
from trt_equiv.pipeline import Pipeline

#: runs `trt-equiv` with TensorFlow and tf2onnx blocked: any attempt to import them raises ImportError
NO_TF = (
    "import sys; sys.modules['tensorflow'] = None; sys.modules['tf2onnx'] = None\n"
    "from trt_equiv.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "assert sys.modules['tensorflow'] is None\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="module")
def golden(trt_equiv_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden") / "golden.npz"
    assert main(["golden", "--data", str(BUNDLED_TEST), "--out", str(out)]) == 0
    return out


def run_without_tensorflow(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_TF, "check", *args, "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_check_with_golden_outputs_needs_no_tensorflow(trt_equiv_pipeline: Pipeline, golden: Path) -> None:
    fp32 = trt_equiv_pipeline.onnx("fp32")
    proc = run_without_tensorflow("--golden", str(golden), "--onnx", str(fp32), "--data", str(BUNDLED_TEST),
                                  "--backends", "onnxruntime", "--precisions", "fp32,fp16",
                                  cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "EQUIVALENT" in proc.stdout and "onnxruntime-fp16" in proc.stdout


def test_a_mutated_onnx_fails_against_golden_outputs(
    trt_equiv_pipeline: Pipeline, golden: Path, tmp_path: Path
) -> None:
    bad = scale_input(trt_equiv_pipeline.onnx("fp32"), tmp_path / "x255.onnx")
    proc = run_without_tensorflow("--golden", str(golden), "--onnx", str(bad), "--data", str(BUNDLED_TEST),
                                  "--backends", "onnxruntime", "--precisions", "fp32",
                                  cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "blamed stage: conversion (tf2onnx)" in proc.stdout


def test_a_golden_file_from_other_data_is_refused(trt_equiv_pipeline: Pipeline, golden: Path) -> None:
    proc = run_without_tensorflow("--golden", str(golden), "--onnx", str(trt_equiv_pipeline.onnx("fp32")),
                                  "--data", str(BUNDLED_CALIBRATION), "--backends", "onnxruntime", "--precisions",
                                  "fp32", cache=trt_equiv_pipeline.cache_dir)  # fmt: skip
    assert proc.returncode == 2 and "made from other data" in proc.stderr, proc.stderr
