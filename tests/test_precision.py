"""Precision recipes (fp16, int8 Q/DQ), the Q/DQ validator, calibration safety and recipe blame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.onnx_edits import replace_weights
from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend
from trt_equiv.compare import assign_blame, chain_links, compare_chain
from trt_equiv.convert.precision import fp16_onnx, int8_qdq_onnx
from trt_equiv.convert.qdq import inspect_qdq, validate_qdq
from trt_equiv.data import BUNDLED_CALIBRATION, Dataset, load_npz
from trt_equiv.errors import ConversionError, InputValidationError, QdqValidationError
from trt_equiv.pipeline import Pipeline


@pytest.fixture(scope="module")
def fp32(trt_equiv_pipeline: Pipeline) -> Path:
    return trt_equiv_pipeline.onnx("fp32")


@pytest.fixture(scope="module")
def calibration() -> Dataset:
    return load_npz(BUNDLED_CALIBRATION)


def test_fp16_keeps_float32_io_and_converts_weights(fp32: Path, tmp_path: Path) -> None:
    import onnx

    result = fp16_onnx(fp32, cache_dir=tmp_path)
    model = onnx.load(str(result.path))
    io_types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io_types == {onnx.TensorProto.FLOAT}
    weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    assert isinstance(result.kept_fp32, list) and not result.cache_hit
    assert all(not k.startswith("Conv:") for k in result.kept_fp32)  # convolutions did go to fp16
    again = fp16_onnx(fp32, cache_dir=tmp_path)
    assert again.cache_hit and again.path == result.path


def test_int8_is_tensorrt_ready_and_cached(fp32: Path, calibration: Dataset, tmp_path: Path) -> None:
    result = int8_qdq_onnx(fp32, calibration, cache_dir=tmp_path)
    report = validate_qdq(result.path)
    assert report.pairs > 10 and not report.violations
    assert report.unquantized == []  # every Conv/MatMul/Gemm is fed by DequantizeLinear
    assert result.info["calibration_samples"] == 320
    mtime = result.path.stat().st_mtime_ns
    again = int8_qdq_onnx(fp32, calibration, cache_dir=tmp_path)
    assert again.cache_hit and again.path.stat().st_mtime_ns == mtime


def test_int8_zero_points_and_per_channel_weights(fp32: Path, calibration: Dataset, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(int8_qdq_onnx(fp32, calibration, cache_dir=tmp_path).path))
    inits = {i.name: i for i in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    zero_points = [inits[n.input[2]] for n in dq if n.input[2] in inits]
    assert zero_points and all(z.data_type == onnx.TensorProto.INT8 for z in zero_points)
    assert all(not numpy_helper.to_array(z).any() for z in zero_points)
    conv_weight_scales = [numpy_helper.to_array(inits[n.input[1]]) for n in dq
                          if n.input[0] in inits and len(inits[n.input[0]].dims) == 4]  # fmt: skip
    assert conv_weight_scales and all(s.size > 1 for s in conv_weight_scales)


def test_entropy_uses_real_histograms(fp32: Path, calibration: Dataset, tmp_path: Path) -> None:
    """With ORT's default 128 bins, entropy returns the min-max ranges; ours must differ."""
    ranges = {}
    for method in ("minmax", "entropy"):
        result = int8_qdq_onnx(fp32, calibration, method=method, cache_dir=tmp_path)
        ranges[method] = json.loads(Path(str(result.info["calibration_cache"])).read_text())
    assert ranges["minmax"] != ranges["entropy"]


@pytest.mark.parametrize("value", [0.0, 0.5], ids=["all-zeros", "constant"])
def test_constant_calibration_is_refused(fp32: Path, tmp_path: Path, value: float) -> None:
    constant = Dataset.single(np.full((64, 32, 32, 3), value, np.float32), None, "constant.npz")
    with pytest.raises(ConversionError, match="constant input"):
        int8_qdq_onnx(fp32, constant, cache_dir=tmp_path)


def test_identical_calibration_samples_are_refused(fp32: Path, calibration: Dataset, tmp_path: Path) -> None:
    same = Dataset.single(np.repeat(calibration.x[:1], 32, axis=0), None, "repeated.npz")
    with pytest.raises(ConversionError, match="all 32 samples are identical"):
        int8_qdq_onnx(fp32, same, cache_dir=tmp_path)


def test_asymmetric_activations_are_caught_by_the_validator(fp32: Path, calibration: Dataset, tmp_path: Path) -> None:
    with pytest.raises(QdqValidationError, match=r"zero point \[.*\] \(asymmetric\); TensorRT needs 0"):
        int8_qdq_onnx(fp32, calibration, symmetric_activations=False, cache_dir=tmp_path)


def test_unknown_methods(fp32: Path, calibration: Dataset, tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match="calibration method"):
        int8_qdq_onnx(fp32, calibration, method="kl", cache_dir=tmp_path)
    with pytest.raises(InputValidationError, match="fp16 method"):
        fp16_onnx(fp32, method="bf16", cache_dir=tmp_path)


def _qdq_model(path: Path, *, x_type: int, zero_point: np.ndarray | None, weight_scale: np.ndarray) -> Path:
    """A Conv fed by hand-made Q/DQ nodes, to show each validator rule on its own."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8 if x_type == TensorProto.INT8 else np.int32), "w_q")
    inits = [w, numpy_helper.from_array(weight_scale.astype(np.float32), "w_scale"),
             numpy_helper.from_array(np.array(0.1, np.float32), "x_scale")]  # fmt: skip
    dq_inputs = ["w_q", "w_scale"]
    q_inputs = ["x", "x_scale"]
    if zero_point is not None:
        inits.append(numpy_helper.from_array(zero_point, "zp"))
        q_inputs.append("zp")
    nodes = [
        helper.make_node("QuantizeLinear", q_inputs, ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", *q_inputs[1:]], ["xd"], name="dq_x"),
        helper.make_node("DequantizeLinear", dq_inputs, ["wd"], name="dq_w", axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 4, 4])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_validator_rules_one_by_one(tmp_path: Path) -> None:
    from onnx import TensorProto

    ok = _qdq_model(tmp_path / "ok.onnx", x_type=TensorProto.INT8, zero_point=np.array(0, np.int8),
                    weight_scale=np.full(4, 0.1))  # fmt: skip
    assert not inspect_qdq(ok).violations
    int32 = _qdq_model(tmp_path / "i32.onnx", x_type=TensorProto.INT32, zero_point=np.array(0, np.int8),
                       weight_scale=np.full(4, 0.1))  # fmt: skip
    assert any("int32 input (quantized bias)" in v for v in inspect_qdq(int32).violations)
    uint8 = _qdq_model(tmp_path / "u8.onnx", x_type=TensorProto.INT8, zero_point=None, weight_scale=np.full(4, 0.1))
    assert any("no zero point, which means uint8" in v for v in inspect_qdq(uint8).violations)
    per_tensor = _qdq_model(tmp_path / "pt.onnx", x_type=TensorProto.INT8, zero_point=np.array(0, np.int8),
                            weight_scale=np.array(0.1))  # fmt: skip
    assert any("quantized per tensor, expected per channel" in v for v in inspect_qdq(per_tensor).violations)
    wrong_len = _qdq_model(tmp_path / "wl.onnx", x_type=TensorProto.INT8, zero_point=np.array(0, np.int8),
                           weight_scale=np.full(3, 0.1))  # fmt: skip
    assert any("does not match weight axis 0" in v for v in inspect_qdq(wrong_len).violations)
    with pytest.raises(QdqValidationError, match="breaks TensorRT rules"):
        validate_qdq(uint8)


def test_collapsed_activation_scale_is_caught(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, numpy_helper

    path = _qdq_model(tmp_path / "m.onnx", x_type=TensorProto.INT8, zero_point=np.array(0, np.int8),
                      weight_scale=np.full(4, 0.1))  # fmt: skip
    model = onnx.load(str(path))
    scale = next(i for i in model.graph.initializer if i.name == "x_scale")
    scale.CopyFrom(numpy_helper.from_array(np.array(1e-12, np.float32), "x_scale"))
    onnx.save(model, str(path))
    assert any("calibrated range collapsed" in v for v in inspect_qdq(path).violations)


def test_corrupted_fp16_file_is_blamed_on_the_precision_recipe(
    trt_equiv_pipeline: Pipeline, reference_outputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    data = trt_equiv_pipeline.bound_data()
    assert data is not None
    good_fp16 = trt_equiv_pipeline.onnx("fp16")
    corrupted = replace_weights(good_fp16, tmp_path / "corrupt.fp16.onnx", which="first", scale=3.0)
    outputs = {
        "savedmodel-fp32": reference_outputs,
        "onnxruntime-fp32": OnnxRuntimeBackend(trt_equiv_pipeline.onnx("fp32")).infer(data.feeds()),
        "onnxruntime-fp16": OnnxRuntimeBackend(corrupted, precision="fp16").infer(data.feeds()),
    }
    results = compare_chain(outputs, labels={"output_0": data.y})
    assign_blame(results, chain_links(list(outputs)))
    by_link = {(r.reference, r.candidate): r for r in results}
    assert all(r.output == "output_0" for r in results)
    assert by_link[("savedmodel-fp32", "onnxruntime-fp32")]  # the conversion is fine
    failed = by_link[("onnxruntime-fp32", "onnxruntime-fp16")]
    assert not failed and failed.stage == "precision recipe (fp16)"
    assert "blamed stage: precision recipe (fp16)" in failed.report()


def test_bundled_int8_calibrates_on_the_calibration_split(trt_equiv_pipeline: Pipeline) -> None:
    assert trt_equiv_pipeline.calibration is not None
    assert trt_equiv_pipeline.calibration.source.endswith("calibration.npz")
    assert trt_equiv_pipeline.data is not None and trt_equiv_pipeline.data.source.endswith("test.npz")
