"""Tiny ONNX models made with onnx.helper, so the TensorRT tests depend on no converted fixture.

The fp32 model mirrors the shape of the real pipeline's model at toy size: an NHWC input with a dynamic batch,
Transpose to NCHW (what tf2onnx emits), Conv → Relu → GlobalAveragePool → Flatten → Gemm → Softmax. The fp16 and
int8 copies are made with the same tools and settings as the precision recipes (DESIGN.md §5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_SHAPE = (8, 8, 3)
NUM_CLASSES = 10
INPUT_NAME = "x"


def tiny_fp32(path: Path, seed: int = 0) -> Path:
    """The fp32 classifier; weights from ``seed`` so two seeds give two different models."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, w, c = SAMPLE_SHAPE
    inits = [
        numpy_helper.from_array((rng.standard_normal((16, c, 3, 3)) * 0.3).astype(np.float32), "conv_w"),
        numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "conv_b"),
        numpy_helper.from_array((rng.standard_normal((16, NUM_CLASSES)) * 0.5).astype(np.float32), "fc_w"),
        numpy_helper.from_array((rng.standard_normal(NUM_CLASSES) * 0.1).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", h, w, c])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime and TensorRT parser we support
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_fp16(src: Path, dst: Path) -> Path:
    """float16 copy keeping float32 inputs/outputs (Cast nodes at the edges), as the fp16 recipe does."""
    import onnx
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
    return dst


def calibration_samples(n: int = 64, seed: int = 1) -> np.ndarray:
    """Inputs in [0, 1), like normalized images."""
    return np.random.default_rng(seed).random((n, *SAMPLE_SHAPE), dtype=np.float32)


def tiny_int8(src: Path, dst: Path) -> Path:
    """Q/DQ copy with TensorRT's rules: QInt8, symmetric (zero point 0), per-channel weights, bias not quantized."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            data = calibration_samples()
            self.batches = iter([{INPUT_NAME: data[i : i + 16]} for i in range(0, len(data), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    )
    return dst


def broken(path: Path) -> Path:
    """A model TensorRT cannot parse: its second node (index 1) is an operator nobody implements."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Relu", [INPUT_NAME], ["r"], name="fine_relu"),
            helper.make_node("NoSuchOp", ["r"], ["y"], name="broken_node"),
        ],
        "broken",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def two_in_two_out(path: Path) -> Path:
    """image (N, 4, 4, 3) + side vector (N, 5) -> probs (N, 3) (classification) and value (N, 1) (regression)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(np.array([-1, 48], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array((rng.standard_normal((53, 3)) * 0.2).astype(np.float32), "w_cls"),
        numpy_helper.from_array((rng.standard_normal((53, 1)) * 0.2).astype(np.float32), "w_val"),
    ]
    nodes = [
        helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
        helper.make_node("Concat", ["flat", "side"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "w_cls"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("MatMul", ["features", "w_val"], ["value"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_in_two_out",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, 4, 3]),
            helper.make_tensor_value_info("side", TensorProto.FLOAT, ["N", 5]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", 1]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def token_model(path: Path, vocab: int = 50, dim: int = 4) -> Path:
    """int32 token ids (N, S) + int32 mask (N, S), S dynamic -> pooled (N, dim): masked mean of embeddings."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    inits = [
        numpy_helper.from_array(rng.standard_normal((vocab, dim)).astype(np.float32), "emb"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "seq_axis"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["vectors"], axis=0),  # (N, S, dim)
        helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "last_axis"], ["mask3"]),
        helper.make_node("Mul", ["vectors", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "seq_axis"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["pooled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", "S"]),
            helper.make_tensor_value_info("mask", TensorProto.INT32, ["N", "S"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
