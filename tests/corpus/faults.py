"""Fault injectors for the model corpus: copies of correct ONNX files with one silent bug each.

Test tooling, not library code: the verdict rules must say FAIL on every file made here and PASS on the
correct conversions. Each injector returns a ``Fault`` that records what was changed and by how much, so a
rule that misses a fault can be judged against the fault's size.

fp32-level faults (run as they are, and through the fp16 / int8 recipes made from the faulty file):
``input_x255``, ``channels_reversed``, ``hw_swapped``, ``bias_shift``, ``other_seed``.
Reduced-precision faults: ``fp16_layer_scaled`` (one middle layer's weights ×1.25 in the fp16 file) and
``int8_wrong_range`` (Q/DQ calibrated on calibration data scaled by a wrong factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.onnx_edits import reverse_channels, scale_input, swap_hw
from trt_equiv.convert.onnx import savedmodel_to_onnx
from trt_equiv.convert.precision import int8_qdq_onnx
from trt_equiv.data import Dataset
from trt_equiv.runtime import require

FP32_FAULTS = ("input_x255", "channels_reversed", "hw_swapped", "bias_shift", "other_seed")
FP16_FAULTS = ("fp16_layer_scaled",)
INT8_FAULTS = ("int8_wrong_range",)

#: bias shift size relative to the std (over the test split) of the tensor the bias is added to
BIAS_SHIFT_RELATIVE = 0.05
FP16_LAYER_SCALE = 1.25
#: calibration data ×255: a [0, 255] calibration set for a [0, 1] model (ranges 255× too wide)
INT8_RANGE_FACTOR = 255.0

_WEIGHTED_OPS = ("Conv", "MatMul", "Gemm", "ConvTranspose")


@dataclass(frozen=True)
class Fault:
    """A faulty ONNX file and what was done to it."""

    name: str
    #: the precision of the file the fault lives in: "fp32", "fp16" or "int8"
    stage: str
    path: Path
    details: dict[str, object] = field(default_factory=dict)


def fp32_fault(
    name: str,
    fp32_onnx: Path,
    dst: Path,
    *,
    x_test: np.ndarray | None = None,
    seed2_model: Path | None = None,
    cache_dir: Path | None = None,
) -> Fault:
    """One of ``FP32_FAULTS`` applied to a copy of ``fp32_onnx`` (``other_seed`` converts ``seed2_model``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if name == "input_x255":
        return Fault(name, "fp32", scale_input(fp32_onnx, dst, 255.0), {"factor": 255.0})
    if name == "channels_reversed":
        return Fault(name, "fp32", reverse_channels(fp32_onnx, dst), {"axis": -1})
    if name == "hw_swapped":
        return Fault(name, "fp32", swap_hw(fp32_onnx, dst), {"perm": [0, 2, 1, 3]})
    if name == "bias_shift":
        if x_test is None:
            raise ValueError("bias_shift: expected the test inputs (the shift is relative to their output std)")
        return bias_shift(fp32_onnx, dst, x_test)
    if name == "other_seed":
        if seed2_model is None:
            raise ValueError("other_seed: expected the SavedModel trained with another seed")
        other = savedmodel_to_onnx(seed2_model, cache_dir=cache_dir)
        dst.write_bytes(other.read_bytes())
        return Fault(name, "fp32", dst, {"savedmodel": str(seed2_model)})
    raise ValueError(f"fp32 fault: expected one of {FP32_FAULTS}, got {name!r}")


# ------------------------------------------------------------------------------------------ bias shift


def _producer(graph: Any, name: str) -> Any:
    return next((n for n in graph.node if name in n.output), None)


def find_last_bias(model: Any, units: int) -> tuple[Any, str, int]:
    """(node, bias initializer name, axis of the units in the node's output) of the last layer's bias.

    The last node in graph order that adds a 1-D float initializer of ``units`` elements to the output of
    a weighted layer: an ``Add`` fed by MatMul/Gemm/Conv, a ``Gemm``'s C or a ``Conv``'s B.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}

    def bias_of(name: str) -> bool:
        init = inits.get(name)
        return init is not None and int(np.prod(init.dims)) == units and len([d for d in init.dims if d > 1]) <= 1

    for node in reversed(graph.node):
        if node.op_type in ("Gemm", "Conv", "ConvTranspose") and len(node.input) > 2 and bias_of(node.input[2]):
            return node, node.input[2], 1 if node.op_type != "Gemm" else -1
        if node.op_type == "Add":
            for i, j in ((0, 1), (1, 0)):
                producer = _producer(graph, node.input[j])
                if bias_of(node.input[i]) and producer is not None and producer.op_type in _WEIGHTED_OPS:
                    return node, node.input[i], 1 if producer.op_type.startswith("Conv") else -1
    raise ValueError(f"no bias of {units} elements after a weighted layer found")


def _run_with_extra_output(model: Any, tensor: str, x: np.ndarray) -> np.ndarray:
    """Values of an intermediate ``tensor`` on ``x`` (ONNX Runtime, CPU), from a copy of the graph."""
    onnx = require("onnx")
    ort = require("onnxruntime")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    session = ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([tensor], {copy.graph.input[0].name: x})[0])


def bias_shift(
    src: Path, dst: Path, x_test: np.ndarray, *, unit: int = 0, relative: float = BIAS_SHIFT_RELATIVE
) -> Fault:
    """Copy of ``src`` whose last-layer bias of ``unit`` is shifted by ``relative`` × that unit's std.

    The std is measured over ``x_test`` on the tensor the bias is added to (the pre-activation: logits
    for a softmax head, the output itself for linear heads), so the fault has the same relative size on
    every model; the absolute shift is recorded.
    """
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    model = onnx.load(str(src))
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    units = out_dims[-1].dim_value
    if units <= 0:
        raise ValueError(f"{src}: expected a fixed last output dimension, got {out_dims[-1]}")
    node, bias_name, axis = find_last_bias(model, units)
    pre = _run_with_extra_output(model, node.output[0], x_test)
    values = np.moveaxis(pre, axis, -1).reshape(-1, pre.shape[axis])[:, unit]
    std = float(values.std())
    shift = relative * std
    init = next(i for i in model.graph.initializer if i.name == bias_name)
    bias = numpy_helper.to_array(init).copy()
    flat = bias.reshape(-1)
    before = float(flat[unit])
    flat[unit] += np.asarray(shift, dtype=bias.dtype)
    init.CopyFrom(numpy_helper.from_array(flat.reshape(bias.shape), bias_name))
    onnx.save(model, str(dst))
    details = {
        "node": node.name,
        "op": node.op_type,
        "initializer": bias_name, "unit": unit, "relative": relative,
        "preactivation_std": std, "shift": shift, "bias_before": before,
    }  # fmt: skip
    return Fault("bias_shift", "fp32", dst, details)


# ------------------------------------------------------------------------------------------ reduced precision


def fp16_layer_scaled(fp16_onnx: Path, dst: Path, *, scale: float = FP16_LAYER_SCALE) -> Fault:
    """Copy of an fp16 file with the weight initializer of its middle Conv/MatMul/Gemm scaled by ``scale``."""
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    model = onnx.load(str(fp16_onnx))
    inits = {i.name: i for i in model.graph.initializer}
    weighted = [n for n in model.graph.node if n.op_type in _WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in inits]
    if not weighted:
        raise ValueError(f"{fp16_onnx}: no Conv/MatMul/Gemm with an initializer weight")
    index = len(weighted) // 2
    node = weighted[index]
    init = inits[node.input[1]]
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((w * scale).astype(w.dtype), init.name))
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    details = {"node": node.name, "op": node.op_type, "initializer": init.name, "scale": scale,
               "weighted_index": index, "weighted_nodes": len(weighted), "dtype": str(w.dtype)}  # fmt: skip
    return Fault("fp16_layer_scaled", "fp16", dst, details)


def int8_wrong_range(
    fp32_onnx: Path, calibration: Dataset, *, factor: float = INT8_RANGE_FACTOR, cache_dir: Path | None = None
) -> Fault:
    """int8 Q/DQ file calibrated on the calibration split multiplied by ``factor`` (a preprocessing mix-up)."""
    scaled = (calibration.x * np.float32(factor)).astype(np.float32)
    wrong = Dataset.single(scaled, None, f"{calibration.source}×{factor:g}")
    result = int8_qdq_onnx(fp32_onnx, wrong, method="minmax", cache_dir=cache_dir)
    return Fault("int8_wrong_range", "int8", result.path, {"calibration_factor": factor, "method": "minmax"})
