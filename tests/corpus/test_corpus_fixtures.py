"""The committed model corpus is usable for judging verdicts: it loads, its splits are disjoint, every
model is clearly better than chance, its channels carry different information, and every fault injector
really changes the outputs it is supposed to break."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.corpus.faults import FP32_FAULTS, fp16_layer_scaled, fp32_fault, int8_wrong_range
from tests.corpus.make_verdict_dataset import CORPUS, load_model_data, run_onnx
from trt_equiv.backends.savedmodel import SavedModelBackend
from trt_equiv.convert.onnx import savedmodel_to_onnx
from trt_equiv.convert.precision import fp16_onnx, int8_qdq_onnx

MODELS = ("resnet", "mobilenetv2", "attention", "logits", "regression", "sepconv")
CLASSIFIERS = ("classification", "logits")
#: samples used to recompute the task metric and the channel-order effect from the SavedModel
FEW = 96


def _info(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name / "info.json").read_text())


@pytest.mark.parametrize("name", MODELS)
def test_corpus_model_files_and_splits(name: str) -> None:
    model_dir = CORPUS / name
    for sub in ("savedmodel", "savedmodel_seed2"):
        assert (model_dir / sub / "saved_model.pb").is_file(), f"{name}/{sub} missing"
    x, y, calibration, info = load_model_data(model_dir)
    assert x.dtype == np.float32 and x.shape[1:] == (32, 32, 3) and len(x) >= 300
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert len(y) == len(x)
    assert y.dtype == (np.int64 if info["task"] in CLASSIFIERS else np.float32)
    assert calibration.x.dtype == np.float32 and len(calibration) >= 256
    with np.load(model_dir / "calibration.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"x"}  # calibration carries no labels: it is never scored
    test_rows = {row.tobytes() for row in x}
    shared = sum(row.tobytes() in test_rows for row in calibration.x)
    assert shared == 0, f"{name}: {shared} calibration samples also in the test split"
    assert info["samples"]["train"] + len(x) + len(calibration) <= 1797  # load_digits has 1797 images


@pytest.mark.parametrize("name", MODELS)
def test_model_beats_chance_and_channels_differ(name: str) -> None:
    info = _info(name)
    x, y, _, _ = load_model_data(CORPUS / name)
    x, y = x[:FEW], y[:FEW]
    with SavedModelBackend(CORPUS / name / "savedmodel") as sm:
        out = sm.infer(x)
        reversed_out = sm.infer(np.ascontiguousarray(x[..., ::-1]))
    if info["task"] in CLASSIFIERS:
        assert info["savedmodel"]["accuracy"] >= 0.8 and info["savedmodel_seed2"]["accuracy"] >= 0.8
        assert float(np.mean(out.argmax(1) == y)) >= 0.8
        changed = int(np.sum(out.argmax(1) != reversed_out.argmax(1)))
        assert changed >= 5, f"{name}: reversing the channels changed only {changed} of {FEW} predictions"
    else:
        baseline = info["savedmodel"]["baseline_mae"]
        assert info["savedmodel"]["mae"] <= 0.5 * baseline and info["savedmodel_seed2"]["mae"] <= 0.5 * baseline
        mae = float(np.mean(np.abs(out.reshape(-1) - y)))
        assert mae <= 0.5 * baseline
        shift = float(np.mean(np.abs(reversed_out - out)))
        assert shift >= mae, f"{name}: reversing the channels moved predictions by {shift:.3g} only (MAE {mae:.3g})"


@pytest.fixture(scope="module")
def logits_model() -> tuple[Path, np.ndarray, Any]:
    """The fp32 ONNX of the corpus's logits model (cached conversion), its test inputs and calibration."""
    model_dir = CORPUS / "logits"
    x, _, calibration, _ = load_model_data(model_dir)
    return savedmodel_to_onnx(model_dir / "savedmodel"), x[:128], calibration


@pytest.mark.parametrize("fault", FP32_FAULTS)
def test_fp32_fault_changes_outputs(fault: str, logits_model: tuple[Path, np.ndarray, Any], tmp_path: Path) -> None:
    fp32, x, _ = logits_model
    made = fp32_fault(
        fault, fp32, tmp_path / f"{fault}.onnx", x_test=x, seed2_model=CORPUS / "logits" / "savedmodel_seed2"
    )
    good, bad = run_onnx(fp32, x, "fp32"), run_onnx(made.path, x, "fp32")
    assert bad.shape == good.shape
    diff = float(np.abs(bad - good).max())
    if fault == "bias_shift":
        shift = float(made.details["shift"])  # type: ignore[arg-type]
        assert made.details["unit"] == 0 and shift > 0
        # a logits head: the shift lands on output unit 0 unchanged, and nowhere else
        np.testing.assert_allclose(bad[:, 0] - good[:, 0], shift, rtol=1e-3)
        np.testing.assert_allclose(bad[:, 1:], good[:, 1:], atol=1e-5)
    else:
        assert diff > 0.1 * float(np.abs(good).mean()), f"{fault}: outputs moved by {diff:.3g} only"


def test_fp16_layer_scaled_changes_outputs(logits_model: tuple[Path, np.ndarray, Any], tmp_path: Path) -> None:
    fp32, x, _ = logits_model
    fp16 = fp16_onnx(fp32).path
    made = fp16_layer_scaled(fp16, tmp_path / "scaled.onnx")
    assert made.details["node"] and made.details["scale"] == 1.25
    good, bad = run_onnx(fp16, x, "fp16"), run_onnx(made.path, x, "fp16")
    assert float(np.abs(bad - good).max()) > 0.05 * float(np.abs(good).mean())


def test_int8_wrong_range_changes_outputs(logits_model: tuple[Path, np.ndarray, Any]) -> None:
    fp32, x, calibration = logits_model
    good = run_onnx(int8_qdq_onnx(fp32, calibration).path, x, "int8")
    made = int8_wrong_range(fp32, calibration)
    bad = run_onnx(made.path, x, "int8")
    ref = run_onnx(fp32, x, "fp32")
    assert float(np.abs(bad - ref).mean()) > 3 * float(np.abs(good - ref).mean())
