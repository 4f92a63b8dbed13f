"""Any model's inputs and outputs (issue 10), end to end on real small models (fixtures/models): two inputs and
two outputs (classification + regression), int32 token ids + mask at two sequence lengths, a flat dense input, an
NCHW input, one input with two outputs — through the CLI (check at fp32/fp16/int8 on ONNX Runtime, build with
TensorRT for RTX), the plugin and the API."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.cli import main
from trt_equiv.data import FIXTURES_DIR, Dataset, load_npz, save_npz
from trt_equiv.runtime import is_available

MODELS = FIXTURES_DIR / "models"
#: (model, test file, outputs expected in the table with their kinds)
CASES = [
    ("two_in_two_out", "test.npz", {"class_probs": "probabilities", "value": "continuous"}),
    ("tokens", "test_len12.npz", {"probs": "probabilities"}),
    ("tokens", "test_len20.npz", {"probs": "probabilities"}),
    ("flat_dense", "test.npz", {"probs": "probabilities"}),
    ("nchw", "test.npz", {"probs": "probabilities"}),
    ("one_in_two_out", "test.npz", {"logits": "logits", "embedding": "continuous"}),
]


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def model_args(name: str, test: str) -> list[str]:
    root = MODELS / name
    return ["--model", str(root / "savedmodel"), "--data", str(root / test), "--calibration",
            str(root / "calibration.npz")]  # fmt: skip


@pytest.mark.parametrize(("name", "test", "outputs"), CASES, ids=[f"{c[0]}-{c[1][:-4]}" for c in CASES])
def test_check_passes_every_output_at_every_precision(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, name: str, test: str, outputs: dict
) -> None:
    cache = tmp_path_factory.getbasetemp() / "multi_io_cache"
    code, out, err = check(capsys, *model_args(name, test), "--backends", "onnxruntime", "--precisions",
                           "fp32,fp16,int8", "--cache-dir", str(cache))  # fmt: skip
    assert code == 0, out + err
    for output, kind in outputs.items():
        for precision in ("fp32", "fp16", "int8"):
            row = rf"onnxruntime-{precision}\s+savedmodel-fp32\s+{output}\s+{kind}\s+32\s.*PASS"
            assert re.search(row, out), f"no passing row for {precision} {output} ({kind}):\n{out}"
    rows = 1 + 5 * len(outputs)  # data stage; fp32, fp16, int8 vs SavedModel; fp16, int8 vs the fp32 ONNX
    assert f"EQUIVALENT: {rows} passed, 0 failed" in out


def test_a_wrong_data_layout_is_refused_before_any_conversion_naming_what_the_model_expects(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = load_npz(MODELS / "two_in_two_out" / "test.npz")
    bad = tmp_path / "x_only.npz"
    save_npz(bad, Dataset.single(data.inputs["image"]))
    code, _, err = check(capsys, "--model", str(MODELS / "two_in_two_out" / "savedmodel"), "--data", str(bad),
                         "--backends", "onnxruntime", "--precisions", "fp32",
                         "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 2
    assert "'image' float32 (batch, 16, 16, 3), 'side' float32 (batch, 4)" in err and "missing ['image', 'side']" in err
    assert not (tmp_path / "c" / "onnx").exists()  # refused before tf2onnx ran


def test_int64_ids_for_an_int32_model_are_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = load_npz(MODELS / "tokens" / "test_len12.npz")
    wrong = tmp_path / "int64.npz"
    save_npz(wrong, Dataset({k: v.astype(np.int64) for k, v in data.inputs.items()}, data.labels, "int64"))
    code, _, err = check(capsys, "--model", str(MODELS / "tokens" / "savedmodel"), "--data", str(wrong),
                         "--backends", "onnxruntime", "--precisions", "fp32",
                         "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 2 and "expected dtype int32, got int64" in err


def test_a_fault_in_one_output_fails_that_output_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Per-output comparison: a broken regression head fails the `value` row and names it; `class_probs` passes."""
    import onnx
    from onnx import numpy_helper

    from trt_equiv.convert.onnx import savedmodel_to_onnx

    fp32 = savedmodel_to_onnx(MODELS / "two_in_two_out" / "savedmodel", cache_dir=tmp_path / "c")
    model = onnx.load(str(fp32))
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer["value"]
    while node.op_type not in ("Add", "MatMul", "Gemm"):  # walk up to the regression head's last affine op
        node = producer[node.input[0]]
    inits = {i.name: i for i in model.graph.initializer}
    weight = next(inits[i] for i in node.input if i in inits)
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.1, weight.name))
    bad = tmp_path / "bad_value.onnx"
    onnx.save(model, str(bad))
    code, out, _ = check(capsys, *model_args("two_in_two_out", "test.npz"), "--onnx", str(bad), "--backends",
                         "onnxruntime", "--precisions", "fp32", "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 1
    assert re.search(r"onnxruntime-fp32\s+savedmodel-fp32\s+class_probs\s+probabilities.*PASS", out)
    assert re.search(r"onnxruntime-fp32\s+savedmodel-fp32\s+value\s+continuous.*FAIL", out)
    assert "output 'value' (continuous)" in out and "blamed stage: conversion (tf2onnx)" in out


def test_output_kind_override_changes_the_metrics(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = check(capsys, *model_args("one_in_two_out", "test.npz"), "--backends", "onnxruntime",
                         "--precisions", "fp32", "--output-kind", "logits=continuous",
                         "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 0 and re.search(r"savedmodel-fp32\s+logits\s+continuous", out)
    code, _, err = check(capsys, *model_args("one_in_two_out", "test.npz"), "--backends", "onnxruntime",
                         "--output-kind", "logits=exact", "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 2 and "kind 'exact' needs integer values" in err


@pytest.mark.skipif(not is_available("tensorrt_rtx") and not is_available("tensorrt_rtx_bindings"),
                    reason="TensorRT for RTX not installed (pip install 'trt-equiv[trt-rtx]')")  # fmt: skip
@pytest.mark.parametrize(
    ("name", "profile"),
    [("two_in_two_out", ["1,16,32"]), ("tokens", ["ids:1x4,16x16,32x32", "mask:1x4,16x16,32x32"])],
)
def test_build_engines_for_named_and_dynamic_inputs(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, name: str, profile: list[str]
) -> None:
    cache = tmp_path_factory.getbasetemp() / "multi_io_cache"
    root = MODELS / name
    args = ["build", "--model", str(root / "savedmodel"), "--calibration", str(root / "calibration.npz"),
            "--precisions", "fp32,fp16,int8", "--cache-dir", str(cache)]  # fmt: skip
    for item in profile:
        args += ["--profile", item]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(re.findall(r"^(fp32|fp16|int8)\s+[\d,]+\s+(built|hit)", out, flags=re.M)) == 3, out


def test_a_dynamic_sequence_length_without_a_range_is_a_clear_build_error(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not is_available("tensorrt_rtx") and not is_available("tensorrt_rtx_bindings"):
        pytest.skip("TensorRT for RTX not installed (pip install 'trt-equiv[trt-rtx]')")
    cache = tmp_path_factory.getbasetemp() / "multi_io_cache"
    code = main(["build", "--model", str(MODELS / "tokens" / "savedmodel"), "--precisions", "fp32",
                 "--cache-dir", str(cache)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "ids" in err and "--profile" in err


def test_the_plugin_runs_a_multi_io_model(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        """
        from trt_equiv.backends.base import infer_in_batches
        from trt_equiv.compare import assert_equivalent

        def test_named(backend, batch_size, trt_equiv_data, reference_outputs, output_labels, output_kinds,
                       tolerance_policy):
            assert sorted(trt_equiv_data.inputs) == ["image", "side"]
            assert output_kinds == {"class_probs": "probabilities", "value": "continuous"}
            out = infer_in_batches(backend, trt_equiv_data.feeds(), batch_size)
            results = assert_equivalent(reference_outputs, out, reference_label="savedmodel-fp32",
                                        candidate_label=backend.label, labels=output_labels, kinds=output_kinds,
                                        policy=tolerance_policy, batch_size=batch_size)
            assert [r.output for r in results] == list(reference_outputs)
        """
    )
    root = MODELS / "two_in_two_out"
    result = pytester.runpytest(
        "-q", "-p", "no:cacheprovider", "--trt-equiv-model", str(root / "savedmodel"), "--trt-equiv-data",
        str(root / "test.npz"), "--trt-equiv-calibration", str(root / "calibration.npz"), "--trt-equiv-backends",
        "onnxruntime", "--trt-equiv-precisions", "fp32,int8", "--trt-equiv-batch-sizes", "7,all",
        "--trt-equiv-cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    result.assert_outcomes(passed=4)
