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
