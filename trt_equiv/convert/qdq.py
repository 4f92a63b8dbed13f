"""Static check of an int8 Q/DQ ONNX file against what TensorRT's ONNX parser and builder accept.

TensorRT supports symmetric int8 quantization only (zero point 0), does not take an int32 input to
DequantizeLinear (quantized bias), and needs per-channel weight scales along the output-channel axis.
A file that breaks these rules either fails to parse or, worse, builds into an engine with different
numerics; checking it here names the tensor and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trt_equiv.errors import QdqValidationError
from trt_equiv.runtime import require

#: the smallest activation scale accepted: below it, the calibrated range collapsed (constant data)
MIN_ACTIVATION_SCALE = 1e-8


@dataclass
class QdqReport:
    pairs: int = 0
    violations: list[str] = field(default_factory=list)
    #: compute nodes (Conv, Gemm, MatMul) whose inputs are not fed by DequantizeLinear
    unquantized: list[str] = field(default_factory=list)


def validate_qdq(path: str | Path, *, require_per_channel: bool = True) -> QdqReport:
    """Check every Q/DQ node; raise QdqValidationError listing each violation (tensor and rule)."""
    report = inspect_qdq(path, require_per_channel=require_per_channel)
    if report.violations:
        listing = "\n  ".join(report.violations)
        raise QdqValidationError(f"int8 Q/DQ model {path} breaks TensorRT rules:\n  {listing}")
    return report


def inspect_qdq(path: str | Path, *, require_per_channel: bool = True) -> QdqReport:
    onnx = require("onnx")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant" and n.attribute}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[object]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    report = QdqReport()

    def tensor(name: str):
        proto = inits.get(name) or consts.get(name)
        return None if proto is None else (proto, numpy_helper.to_array(proto))

    int8 = onnx.TensorProto.INT8
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        where = f"{node.op_type} '{node.name}' (tensor '{node.input[0]}')"
        if node.op_type == "DequantizeLinear":
            report.pairs += 1
            source = tensor(node.input[0])
            if source is not None and source[0].data_type == onnx.TensorProto.INT32:
                report.violations.append(f"{where}: int32 input (quantized bias); TensorRT accepts int8 only")
        if len(node.input) < 3 or not node.input[2]:
            # Without a zero point, QuantizeLinear produces uint8; DequantizeLinear follows its input's type.
            source = tensor(node.input[0]) if node.op_type == "DequantizeLinear" else None
            if node.op_type == "QuantizeLinear":
                report.violations.append(
                    f"{where}: no zero point, which means uint8; TensorRT needs an int8 zero point 0"
                )
            elif source is not None and source[0].data_type not in (int8, onnx.TensorProto.INT32):
                dtype = onnx.TensorProto.DataType.Name(source[0].data_type)
                report.violations.append(f"{where}: quantized input of type {dtype}, expected INT8")
        else:
            zp = tensor(node.input[2])
            if zp is None:
                report.violations.append(f"{where}: zero point is not a constant")
            else:
                if zp[0].data_type != int8:
                    dtype = onnx.TensorProto.DataType.Name(zp[0].data_type)
                    report.violations.append(f"{where}: zero point type {dtype}, expected INT8")
                if np.any(zp[1] != 0):
                    report.violations.append(
                        f"{where}: zero point {np.unique(zp[1])[:4].tolist()} (asymmetric); TensorRT needs 0"
                    )
        scale = tensor(node.input[1])
        if scale is None:
            report.violations.append(f"{where}: scale is not a constant")
            continue
        s = scale[1]
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            report.violations.append(f"{where}: scale must be positive and finite, got {s.ravel()[:4].tolist()}")
        weight = tensor(node.input[0]) if node.op_type == "DequantizeLinear" else None
        is_weight = weight is not None and weight[1].ndim >= 2
        if not is_weight and node.op_type == "QuantizeLinear" and np.all(s < MIN_ACTIVATION_SCALE):
            report.violations.append(
                f"{where}: activation scale {float(s.ravel()[0]):.3g} — the calibrated range collapsed "
                "(constant or all-zero calibration data?)"
            )
        if is_weight:
            assert weight is not None
            w = weight[1]
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            users = [u.op_type for u in consumers.get(node.output[0], [])]  # type: ignore[attr-defined]
            if s.size > 1:
                if s.ndim != 1 or not -w.ndim <= axis < w.ndim or w.shape[axis] != s.size:
                    report.violations.append(
                        f"{where}: per-channel scale of {s.size} values does not match weight axis {axis} "
                        f"of shape {list(w.shape)}"
                    )
                elif "Conv" in users and axis % w.ndim != 0:
                    report.violations.append(f"{where}: Conv weight quantized along axis {axis}, expected 0")
            elif require_per_channel and "Conv" in users and w.shape[0] > 1:
                report.violations.append(f"{where}: Conv weight quantized per tensor, expected per channel (axis 0)")
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            fed = [producers.get(i) for i in node.input[:2]]
            if not all(p is not None and p.op_type == "DequantizeLinear" for p in fed):
                report.unquantized.append(f"{node.op_type}:{node.name}")
    return report
