"""Verdicts on the public corpus (issue 9): zero false alarms on correct conversions, every injected fault caught.

Six small trained models of different families (fixtures/corpus), each run through the real pipeline — tf2onnx,
the fp16 and int8 recipes (int8 calibrated on the calibration split), ONNX Runtime, the same ``run_check`` the
CLI uses — and through the same check with one fault injected: fp32-file faults (input ×255, channels reversed,
H/W swapped, a bias shift of 5 % of one output unit's std, another training seed) given as ``--onnx``, an fp16
file with one layer's weights ×1.25 given as ``--onnx fp16=``, an int8 file calibrated on inputs ×255 given as
``--onnx int8=``. Each verdict is also written to ``$TRT_EQUIV_CORPUS_TABLE`` when set (the README table).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.corpus.faults import FP32_FAULTS, fp16_layer_scaled, fp32_fault, int8_wrong_range
from tests.corpus.make_verdict_dataset import CORPUS, load_model_data
from trt_equiv.check import run_check
from trt_equiv.compare import Comparison
from trt_equiv.pipeline import Pipeline

#: another corpus laid out the same way (e.g. a held-out one that is not in this repository) can be judged with
#: TRT_EQUIV_CORPUS_DIR=/path/to/corpus pytest tests/corpus/test_corpus_verdicts.py
CORPUS_DIR = Path(os.environ.get("TRT_EQUIV_CORPUS_DIR") or CORPUS)
MODELS = (
    tuple(sorted(p.parent.name for p in CORPUS_DIR.glob("*/info.json")))
    if "TRT_EQUIV_CORPUS_DIR" in os.environ
    else ("resnet", "mobilenetv2", "attention", "logits", "regression", "sepconv")
)
PRECISIONS = ("fp32", "fp16", "int8")
CANDIDATES = [("onnxruntime", p) for p in PRECISIONS]

_TABLE: list[dict[str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def verdict_table() -> Iterator[None]:
    yield
    target = os.environ.get("TRT_EQUIV_CORPUS_TABLE")
    if target:
        Path(target).write_text(json.dumps(_TABLE, indent=1))


def pipeline_for(name: str, cache: Path, **onnx: str) -> Pipeline:
    model_dir = CORPUS_DIR / name
    return Pipeline.create(model_dir / "savedmodel", model_dir / "test.npz",
                           calibration=model_dir / "calibration.npz", cache_dir=cache,
                           onnx=[f"{p}={f}" for p, f in onnx.items()] or None)  # fmt: skip


def record(name: str, precision: str, fault: str, comparisons: list[Comparison]) -> None:
    failing = [c for c in comparisons if not c]
    _TABLE.append({"model": name, "precision": precision, "fault": fault, "verdict": "FAIL" if failing else "PASS",
                   "stage": (failing[0].stage or "") if failing else ""})  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("TRT_EQUIV_CACHE_DIR") or tmp_path_factory.mktemp("corpus_cache"))


@pytest.mark.parametrize("name", MODELS)
def test_correct_conversions_pass_at_every_precision(name: str, cache: Path) -> None:
    result = run_check(pipeline_for(name, cache), CANDIDATES, (32,))
    for precision in PRECISIONS:
        record(name, precision, "none", [c for c in result.comparisons if c.candidate == f"onnxruntime-{precision}"])
    assert result, "false alarm on a correct conversion:\n" + "\n\n".join(c.report() for c in result.failures)


@pytest.mark.parametrize("fault", FP32_FAULTS)
@pytest.mark.parametrize("name", MODELS)
def test_fp32_file_faults_are_caught_and_blamed_on_the_conversion(
    name: str, fault: str, cache: Path, tmp_path: Path
) -> None:
    clean = pipeline_for(name, cache)
    x_test, _, _, _ = load_model_data(CORPUS_DIR / name)
    faulty = fp32_fault(fault, clean.onnx("fp32"), tmp_path / f"{fault}.onnx", x_test=x_test,
                        seed2_model=CORPUS_DIR / name / "savedmodel_seed2", cache_dir=cache)  # fmt: skip
    result = run_check(pipeline_for(name, cache, fp32=str(faulty.path)), [("onnxruntime", "fp32")], (32,))
    record(name, "fp32", fault, result.comparisons)
    assert not result, f"{name}: {fault} ({faulty.details}) was not caught"
    fp32_rows = [c for c in result.failures if c.candidate == "onnxruntime-fp32"]
    assert fp32_rows and all(c.stage == "conversion (tf2onnx)" for c in fp32_rows)
    assert result.data_stage is not None and result.data_stage  # the data is fine: the file is to blame


@pytest.mark.parametrize("name", MODELS)
def test_an_fp16_file_with_one_layer_scaled_is_caught_and_blamed_on_the_recipe(
    name: str, cache: Path, tmp_path: Path
) -> None:
    clean = pipeline_for(name, cache)
    faulty = fp16_layer_scaled(clean.onnx("fp16"), tmp_path / "scaled.fp16.onnx")
    result = run_check(pipeline_for(name, cache, fp16=str(faulty.path)), [("onnxruntime", "fp16")], (32,))
    record(name, "fp16", "fp16_layer_scaled", result.comparisons)
    assert not result, f"{name}: fp16 layer {faulty.details['node']} ×1.25 was not caught"
    assert {c.stage for c in result.failures} == {"precision recipe (fp16)"}
    assert any("first divergence:" in "\n".join(c.notes) for c in result.failures)


@pytest.mark.parametrize("name", MODELS)
def test_an_int8_file_calibrated_on_the_wrong_range_is_caught_and_blamed_on_the_recipe(name: str, cache: Path) -> None:
    _, _, calibration, _ = load_model_data(CORPUS_DIR / name)
    clean = pipeline_for(name, cache)
    faulty = int8_wrong_range(clean.onnx("fp32"), calibration, cache_dir=cache)
    result = run_check(pipeline_for(name, cache, int8=str(faulty.path)), [("onnxruntime", "int8")], (32,))
    record(name, "int8", "int8_wrong_range", result.comparisons)
    assert not result, f"{name}: int8 calibrated on inputs ×255 was not caught"
    assert {c.stage for c in result.failures} == {"precision recipe (int8)"}
