"""Deliberately broken copies of ONNX files: the silent conversion bugs the suite must catch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _prepend_to_input(model: Any, make_node: Callable[[str, str], Any], extra_initializers: Sequence[Any] = ()) -> None:
    """Insert one node between the graph input and every consumer of it (the node is built by
    ``make_node(input_name, output_name)``), so the edit happens "before the first op"."""
    graph = model.graph
    inp = graph.input[0].name
    edited = f"{inp}__edited"
    for node in graph.node:
        node.input[:] = [edited if name == inp else name for name in node.input]
    graph.initializer.extend(extra_initializers)
    graph.node.insert(0, make_node(inp, edited))


def scale_input(src: Path, dst: Path, factor: float = 255.0) -> Path:
    """Copy of ``src`` whose input is multiplied by ``factor`` first (the [0,1] vs [0,255] mix-up)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    name = f"{model.graph.input[0].name}__factor"
    factor_init = numpy_helper.from_array(np.array(factor, dtype=np.float32), name)
    _prepend_to_input(
        model, lambda i, o: helper.make_node("Mul", [i, name], [o], name="injected_input_scale"), [factor_init]
    )
    onnx.save(model, str(dst))
    return dst


def reverse_channels(src: Path, dst: Path, axis: int = -1) -> Path:
    """Copy of ``src`` that reverses the input's channel axis first (the RGB vs BGR mix-up)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    channels = dims[axis].dim_value
    if channels < 2:
        raise ValueError(f"{src}: expected a fixed channel axis {axis} of size >= 2, got {dims[axis]}")
    name = f"{model.graph.input[0].name}__reversed_channels"
    order = numpy_helper.from_array(np.arange(channels - 1, -1, -1, dtype=np.int64), name)
    rank = len(dims)
    _prepend_to_input(
        model,
        lambda i, o: helper.make_node("Gather", [i, name], [o], axis=axis % rank, name="injected_channel_reverse"),
        [order],
    )
    onnx.save(model, str(dst))
    return dst


def swap_hw(src: Path, dst: Path) -> Path:
    """Copy of ``src`` that transposes H and W of its NHWC input first (needs a square input)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != dims[2].dim_value or dims[1].dim_value == 0:
        raise ValueError(f"{src}: expected a square NHWC input to swap H and W, got {[str(d) for d in dims]}")
    _prepend_to_input(
        model, lambda i, o: helper.make_node("Transpose", [i], [o], perm=[0, 2, 1, 3], name="injected_hw_swap")
    )
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
