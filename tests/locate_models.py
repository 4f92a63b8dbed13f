"""Small ONNX graphs made with onnx.helper for the ``locate`` and int8-fallback tests.

Each has named nodes of the kinds a perturbed layer is located in: convolutions with batch normalization,
matmuls with layer normalization, and a residual attention block built differently from both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(nodes: list, inputs: list, outputs: list, inits: list, path: Path, name: str) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_bn_net(path: Path, seed: int = 0) -> Path:
    """NCHW (N, 3, 8, 8) → conv1 → relu → conv2 → bn → relu → conv3 → pool → flatten → fc (Gemm) → softmax."""
    from onnx import TensorProto, helper
    from onnx.numpy_helper import from_array

    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = [
        from_array(w(8, 3, 3, 3), "w1"), from_array(w(8, scale=0.1), "b1"),
        from_array(w(8, 8, 3, 3, scale=0.2), "w2"), from_array(w(8, scale=0.1), "b2"),
        from_array((1 + w(8, scale=0.1)), "bn_gamma"), from_array(w(8, scale=0.1), "bn_bias"),
        from_array(w(8, scale=0.1), "bn_mean"), from_array((1 + np.abs(w(8, scale=0.2))), "bn_var"),
        from_array(w(8, 8, 3, 3, scale=0.2), "w3"), from_array(w(8, scale=0.1), "b3"),
        from_array(w(8, 10, scale=0.5), "fc_w"), from_array(w(10, scale=0.1), "fc_b"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("BatchNormalization", ["c2", "bn_gamma", "bn_bias", "bn_mean", "bn_var"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], name="conv3"),
        helper.make_node("GlobalAveragePool", ["c3"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
    ]
    return _save(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits, path, "conv_bn",
    )  # fmt: skip


def mlp_layernorm(path: Path, seed: int = 0) -> Path:
    """(N, 16) → mm1 → add1 → ln (LayerNormalization) → relu → mm2 → add2 → tanh → mm3 → softmax."""
    from onnx import TensorProto, helper
    from onnx.numpy_helper import from_array

    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = [
        from_array(w(16, 32), "m1"), from_array(w(32, scale=0.1), "a1"),
        from_array(1 + w(32, scale=0.1), "ln_gamma"), from_array(w(32, scale=0.1), "ln_bias"),
        from_array(w(32, 32, scale=0.2), "m2"), from_array(w(32, scale=0.1), "a2"),
        from_array(w(32, 10), "m3"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "m1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["h1", "a1"], ["h1b"], name="add1"),
        helper.make_node("LayerNormalization", ["h1b", "ln_gamma", "ln_bias"], ["ln"], axis=-1, name="ln"),
        helper.make_node("Relu", ["ln"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "m2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["h2", "a2"], ["h2b"], name="add2"),
        helper.make_node("Tanh", ["h2b"], ["t"], name="tanh"),
        helper.make_node("MatMul", ["t", "m3"], ["logits"], name="mm3"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    return _save(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits, path, "mlp_ln",
    )  # fmt: skip


def attention_block(path: Path, seed: int = 7) -> Path:
    """A residual self-attention + feed-forward block on (N, 6, 12): built unlike the graphs above (branches,
    residual Adds, a Softmax inside, ReduceMean head) to stand in for a held-out model."""
    from onnx import TensorProto, helper
    from onnx.numpy_helper import from_array

    rng = np.random.default_rng(seed)
    d = 12

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = [
        from_array(w(d, d), "wq"), from_array(w(d, d), "wk"), from_array(w(d, d), "wv"), from_array(w(d, d), "wo"),
        from_array(np.array(1 / np.sqrt(d), np.float32), "inv_sqrt_d"),
        from_array(1 + w(d, scale=0.1), "g1"), from_array(w(d, scale=0.1), "be1"),
        from_array(w(d, 2 * d), "wf1"), from_array(w(2 * d, scale=0.1), "bf1"), from_array(w(2 * d, d), "wf2"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="attn/q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="attn/k"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="attn/v"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="attn/kt"),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="attn/scores"),
        helper.make_node("Mul", ["s", "inv_sqrt_d"], ["ss"], name="attn/scale"),
        helper.make_node("Softmax", ["ss"], ["p"], axis=-1, name="attn/softmax"),
        helper.make_node("MatMul", ["p", "v"], ["ctx"], name="attn/context"),
        helper.make_node("MatMul", ["ctx", "wo"], ["o"], name="attn/out"),
        helper.make_node("Add", ["x", "o"], ["res1"], name="res1"),
        helper.make_node("LayerNormalization", ["res1", "g1", "be1"], ["n1"], axis=-1, name="norm1"),
        helper.make_node("MatMul", ["n1", "wf1"], ["f1"], name="ffn/up"),
        helper.make_node("Add", ["f1", "bf1"], ["f1b"], name="ffn/bias"),
        helper.make_node("Relu", ["f1b"], ["f1r"], name="ffn/relu"),
        helper.make_node("MatMul", ["f1r", "wf2"], ["f2"], name="ffn/down"),
        helper.make_node("Add", ["n1", "f2"], ["res2"], name="res2"),
        helper.make_node("ReduceMean", ["res2"], ["pooled"], axes=[1], keepdims=0, name="pool"),
    ]
    return _save(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, d])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", d])],
        inits, path, "attention",
    )  # fmt: skip


def samples(shape: tuple[int, ...], n: int = 64, seed: int = 3) -> np.ndarray:
    """Inputs in [0, 1), like normalized images."""
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def outlier_mlp(path: Path, seed: int = 0, outlier: float = 300.0) -> Path:
    """(N, 16) → mm1..mm6 (MatMul + bias Add) with Relu between → 10 outputs.

    mm3's output channel 0 is ``outlier``× larger and mm4's matching weight row as many times smaller: the same
    function in float32 (Relu is positively homogeneous), but the outlier channel sets the int8 range of mm3's
    output and mm4's input, so the other channels round to almost nothing (the outlier-channel failure of int8
    seen in large models)."""
    from onnx import TensorProto, helper
    from onnx.numpy_helper import from_array

    rng = np.random.default_rng(seed)
    dims = [16, 32, 32, 32, 32, 32, 10]
    inits, nodes = [], []
    src = "x"
    for k in range(6):
        w = (rng.standard_normal((dims[k], dims[k + 1])) * (2.0 / np.sqrt(dims[k]))).astype(np.float32)
        b = (rng.standard_normal(dims[k + 1]) * 0.1).astype(np.float32)
        if k == 2:
            w[:, 0] *= outlier
            b[0] = abs(b[0]) * outlier + outlier  # channel 0 stays positive: it passes the Relu, huge
        if k == 3:
            w[0, :] /= outlier
        inits += [from_array(w, f"w{k + 1}"), from_array(b, f"b{k + 1}")]
        nodes.append(helper.make_node("MatMul", [src, f"w{k + 1}"], [f"m{k + 1}"], name=f"mm{k + 1}"))
        nodes.append(helper.make_node("Add", [f"m{k + 1}", f"b{k + 1}"], [f"a{k + 1}"], name=f"bias{k + 1}"))
        if k < 5:
            nodes.append(helper.make_node("Relu", [f"a{k + 1}"], [f"r{k + 1}"], name=f"relu{k + 1}"))
            src = f"r{k + 1}"
    return _save(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("a6", TensorProto.FLOAT, ["N", 10])],
        inits, path, "outlier_mlp",
    )  # fmt: skip
