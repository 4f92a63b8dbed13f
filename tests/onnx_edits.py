"""Deliberately broken copies of ONNX files: the silent conversion bugs the suite must catch."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scale_input(src: Path, dst: Path, factor: float = 255.0) -> Path:
    """Copy of ``src`` whose input is multiplied by ``factor`` first (the [0,1] vs [0,255] mix-up)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inp = graph.input[0].name
    scaled = f"{inp}__scaled"
    for node in graph.node:
        node.input[:] = [scaled if name == inp else name for name in node.input]
    graph.initializer.append(numpy_helper.from_array(np.array(factor, dtype=np.float32), f"{inp}__factor"))
    graph.node.insert(0, helper.make_node("Mul", [inp, f"{inp}__factor"], [scaled], name="injected_input_scale"))
    onnx.save(model, str(dst))
    return dst


def replace_weights(src: Path, dst: Path, *, which: str = "last", scale: float | None = None, seed: int = 1) -> Path:
    """Copy of ``src`` with one float weight tensor changed.

    ``which="last"``: the largest-index 2-D initializer (the classifier head) is redrawn from a seeded
    normal distribution with the same std — a different model. ``which="first"``: the first 4-D (conv)
    weight, multiplied by ``scale`` when given, else redrawn.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = list(model.graph.initializer)
    rank = 2 if which == "last" else 4
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    candidates = [i for i in inits if len(i.dims) == rank and i.data_type in floats]
    if not candidates:
        raise ValueError(f"{src}: no float initializer of rank {rank} to replace")
    target = candidates[-1] if which == "last" else candidates[0]
    w = numpy_helper.to_array(target)
    if scale is not None:
        new = (w * scale).astype(w.dtype)
    else:
        new = np.random.default_rng(seed).normal(0.0, float(w.std()) or 1.0, w.shape).astype(w.dtype)
    target.CopyFrom(numpy_helper.from_array(new, target.name))
    onnx.save(model, str(dst))
    return dst


def perturb_node(src: Path, dst: Path, node_name: str, *, rel: float = 0.05, seed: int = 0) -> Path:
    """Copy of ``src`` where the weight (input 1: Conv/MatMul/Gemm weight, BatchNormalization or
    LayerNormalization scale) of the node named ``node_name`` gets seeded noise of relative size ``rel``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    node = next((n for n in model.graph.node if n.name == node_name), None)
    if node is None:
        raise ValueError(f"{src}: no node named {node_name!r}")
    inits = {i.name: i for i in model.graph.initializer}
    target = inits.get(node.input[1]) if len(node.input) > 1 else None
    if target is None:
        raise ValueError(f"{src}: node {node_name!r} has no initializer as its input 1")
    w = numpy_helper.to_array(target)
    noise = np.random.default_rng(seed).standard_normal(w.shape) * rel * (float(np.abs(w).mean()) or 1.0)
    target.CopyFrom(numpy_helper.from_array((w + noise).astype(w.dtype), target.name))
    onnx.save(model, str(dst))
    return dst
