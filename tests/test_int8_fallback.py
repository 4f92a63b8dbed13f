"""``--int8-fallback auto``: the fewest compute nodes in float32 that make int8 meet its gate, on calibration data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests import locate_models as lm
from trt_equiv.cli import main
from trt_equiv.convert.int8_fallback import _rel_l2, _run, compute_nodes, int8_with_fallback, layer_nodes
from trt_equiv.convert.precision import int8_qdq_onnx
from trt_equiv.convert.qdq import inspect_qdq, validate_qdq
from trt_equiv.data import Dataset
from trt_equiv.errors import ConversionError, InputValidationError
from trt_equiv.pipeline import Pipeline

#: twice the output error plain int8 has on the same MLP without the outlier channel (measured 0.035)
GATE_REL_L2 = 0.06


def rel_l2_gate(reference: np.ndarray, candidate: np.ndarray) -> bool:
    return _rel_l2(reference, candidate) < GATE_REL_L2


Outlier = tuple[Path, Dataset, np.ndarray]


@pytest.fixture
def outlier(tmp_path: Path) -> Outlier:
    """The outlier MLP, its calibration split and a disjoint held-out split."""
    model = lm.outlier_mlp(tmp_path / "outlier.onnx")
    return model, Dataset.single(lm.samples((16,), n=320, seed=1), source="calib"), lm.samples((16,), n=200, seed=2)


def test_fallback_keeps_the_outlier_layers_and_passes(outlier: Outlier, tmp_path: Path) -> None:
    model, calib, held_out = outlier
    plain = int8_qdq_onnx(model, calib, cache_dir=tmp_path)
    ref_calib = _run(model, calib.x, "fp32")
    assert not rel_l2_gate(ref_calib, _run(plain.path, calib.x, "int8"))  # the plain int8 file fails

    result = int8_with_fallback(model, calib, gate=rel_l2_gate, gate_name="rel_l2<0.06", cache_dir=tmp_path)

    assert not result.plain_passed and not result.cache_hit
    assert set(result.excluded) == {"mm3", "mm4"}  # the outlier's producer and consumer, nothing else
    assert result.compute_nodes == 6 and result.cost() == "2 of 6 Conv/Gemm/MatMul nodes kept in fp32"
    assert rel_l2_gate(ref_calib, _run(result.path, calib.x, "int8"))
    # held-out samples (never seen by the search) pass too
    assert rel_l2_gate(_run(model, held_out, "fp32"), _run(result.path, held_out, "int8"))
    report = validate_qdq(result.path)
    assert {u.split(":")[1] for u in report.unquantized} == {"mm3", "mm4"}  # the other four stay int8
    assert report.pairs > 0 and not report.violations
    assert result.trials[0] == (0, False) and any(ok for _, ok in result.trials)

    again = int8_with_fallback(model, calib, gate=rel_l2_gate, gate_name="rel_l2<0.06", cache_dir=tmp_path)
    assert again.cache_hit and again.excluded == result.excluded and again.path == result.path
    cached = json.loads(next((tmp_path / "precision" / "int8_fallback").glob("*.json")).read_text())
    assert cached["excluded"] == list(result.excluded) and cached["plain_passed"] is False


def test_cache_key_includes_the_gate_name(outlier: Outlier, tmp_path: Path) -> None:
    model, calib, _ = outlier
    int8_with_fallback(model, calib, gate=rel_l2_gate, gate_name="a", cache_dir=tmp_path)
    other = int8_with_fallback(model, calib, gate=lambda r, c: True, gate_name="b", cache_dir=tmp_path)
    assert not other.cache_hit and other.plain_passed and other.excluded == ()


def test_a_gate_nothing_meets_is_an_error(outlier: Outlier, tmp_path: Path) -> None:
    model, calib, _ = outlier
    with pytest.raises(ConversionError, match="even with all 6"):
        int8_with_fallback(model, calib, gate=lambda r, c: False, gate_name="never", cache_dir=tmp_path)
    with pytest.raises(InputValidationError, match="fallback method"):
        int8_with_fallback(model, calib, method="guess", cache_dir=tmp_path)


def test_exclusion_is_in_the_recipe_and_its_cache_key(outlier: Outlier, tmp_path: Path) -> None:
    model, calib, _ = outlier
    plain = int8_qdq_onnx(model, calib, cache_dir=tmp_path)
    kept = int8_qdq_onnx(model, calib, nodes_to_exclude=["mm2"], cache_dir=tmp_path)
    assert kept.path != plain.path
    assert [u for u in inspect_qdq(kept.path).unquantized] == ["MatMul:mm2"]
    assert inspect_qdq(plain.path).unquantized == []
    with pytest.raises(InputValidationError, match="unknown \\['nope'\\]"):
        int8_qdq_onnx(model, calib, nodes_to_exclude=["nope"], cache_dir=tmp_path)
    assert compute_nodes(model) == [f"mm{i}" for i in range(1, 7)]
    assert layer_nodes(model, ["mm3"]) == ["mm3", "bias3", "relu3"]  # the bias and activation go with it


def test_bundled_model_passes_plain_and_keeps_everything_int8(trt_equiv_pipeline: Pipeline, tmp_path: Path) -> None:
    """Default gate (the int8 row of `check`): the bundled model's plain int8 file already passes."""
    assert trt_equiv_pipeline.calibration is not None
    fp32 = trt_equiv_pipeline.onnx("fp32")
    result = int8_with_fallback(fp32, trt_equiv_pipeline.calibration, cache_dir=tmp_path)
    assert result.plain_passed and result.excluded == ()
    assert result.path == int8_qdq_onnx(fp32, trt_equiv_pipeline.calibration, cache_dir=tmp_path).path
    assert result.summary().endswith("0 of 6 Conv/Gemm/MatMul nodes kept in fp32")


def test_pipeline_and_cli_take_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = Pipeline.create(cache_dir=tmp_path, int8_fallback="auto")
    assert pipeline.onnx("int8").is_file()
    assert "int8 fallback: the plain int8 file passes its gate" in capsys.readouterr().err
    with pytest.raises(InputValidationError, match="int8 fallback"):
        Pipeline.create(cache_dir=tmp_path, int8_fallback="sometimes").onnx("int8")
    with pytest.raises(SystemExit) as info:
        main(["build", "--int8-fallback", "sometimes"])
    assert info.value.code == 2
    assert "--int8-fallback" in capsys.readouterr().err


def test_check_parser_and_plugin_option(pytester: pytest.Pytester) -> None:
    from trt_equiv.cli import build_parser

    assert build_parser().parse_args(["check", "--int8-fallback", "auto"]).int8_fallback == "auto"
    assert build_parser().parse_args(["check"]).int8_fallback == "off"
    pytester.makepyfile("def test_mode(trt_equiv_pipeline):\n    assert trt_equiv_pipeline.int8_fallback == 'auto'\n")
    pytester.runpytest("-p", "no:cacheprovider", "--trt-equiv-int8-fallback", "auto").assert_outcomes(passed=1)
