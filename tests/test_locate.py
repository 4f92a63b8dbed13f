"""``locate``: a perturbed layer is named as the first divergence; ordinary fp16/int8 noise is not."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests import locate_models as lm
from tests.onnx_edits import perturb_node
from trt_equiv.cli import main
from trt_equiv.data import Dataset, save_npz
from trt_equiv.errors import InputValidationError
from trt_equiv.locate import LocateResult, locate, match_tensors, write_locate_report
from trt_equiv.pipeline import Pipeline

CASES = [
    # (graph builder, input shape per sample, node perturbed, op type)
    (lm.conv_bn_net, (3, 8, 8), "conv2", "Conv"),
    (lm.conv_bn_net, (3, 8, 8), "bn", "BatchNormalization"),
    (lm.conv_bn_net, (3, 8, 8), "fc", "Gemm"),
    (lm.mlp_layernorm, (16,), "mm2", "MatMul"),
    (lm.mlp_layernorm, (16,), "ln", "LayerNormalization"),
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("build", "shape", "node", "op"), CASES, ids=[c[2] for c in CASES])
def test_one_perturbed_layer_is_the_first_divergence(tmp_path: Path, build, shape, node: str, op: str) -> None:
    ref = build(tmp_path / "ref.onnx")
    cand = perturb_node(ref, tmp_path / "cand.onnx", node, rel=0.02)
    before = (_sha(ref), _sha(cand))

    result = locate(ref, cand, {"x": lm.samples(shape)}, chunk_size=16)

    assert result.precision == "fp32"
    assert result.first_divergence is not None
    assert (result.first_divergence.node, result.first_divergence.op_type) == (node, op)
    assert result.divergence_line() == f"first divergence: {node} ({op})"
    rows = {r.node: r for r in result.rows}
    first = result.rows.index(rows[node])
    assert all(r.rel_l2 == 0.0 for r in result.rows[:first])  # upstream of the perturbation: bit-exact
    assert result.worst(1)[0].node == node  # the perturbed node adds the most error itself
    assert rows[node].sqnr_db < 60  # a 2% weight change is far from fp32 noise (>120 dB)
    assert (_sha(ref), _sha(cand)) == before  # neither input file was modified


def test_held_out_attention_block_is_located(tmp_path: Path) -> None:
    """A graph unlike the ones the rule was written against: branches, residual adds, softmax, reductions."""
    ref = lm.attention_block(tmp_path / "ref.onnx")
    x = {"x": lm.samples((6, 12), n=40)}
    for node, op in (("ffn/up", "MatMul"), ("attn/k", "MatMul"), ("norm1", "LayerNormalization")):
        cand = perturb_node(ref, tmp_path / f"{node.replace('/', '_')}.onnx", node, rel=0.01, seed=5)
        result = locate(ref, cand, x, chunk_size=8)
        assert result.first_divergence is not None, result.table()
        assert (result.first_divergence.node, result.first_divergence.op_type) == (node, op), result.table()


def test_bundled_model_with_a_perturbed_conv_is_located(trt_equiv_pipeline: Pipeline, tmp_path: Path) -> None:
    """The bundled (tf2onnx) graph with its third convolution's weights off by 1%."""
    fp32 = trt_equiv_pipeline.onnx("fp32")
    cand = perturb_node(fp32, tmp_path / "cand.onnx", "Conv__50", rel=0.01)
    assert trt_equiv_pipeline.data is not None
    result = locate(fp32, cand, {"input": trt_equiv_pipeline.data.x[:64]})
    assert result.first_divergence is not None
    assert result.divergence_line() == "first divergence: Conv__50 (Conv)"


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_correct_reduced_precision_files_show_no_divergence(trt_equiv_pipeline: Pipeline, precision: str) -> None:
    """fp16 adds ≤ 5e-4 and int8 ≤ 1.5e-2 relative error per node on the bundled model (measured); both
    below their floors, so locate reports no divergence while the total error grows along the graph."""
    assert trt_equiv_pipeline.data is not None
    x = {"input": trt_equiv_pipeline.data.x[:128]}
    result = locate(trt_equiv_pipeline.onnx("fp32"), trt_equiv_pipeline.onnx(precision), x)
    assert result.precision == precision
    assert len(result.rows) >= 15  # every conv/relu/pool/matmul output was matched through Cast or Q/DQ
    assert result.first_divergence is None, result.table()
    assert result.divergence_line().startswith("first divergence: none")
    assert max(r.rel_l2 for r in result.rows) > 0  # the candidate really differs: noise, not a copy
    assert all(r.local_rel_l2 is not None and r.local_rel_l2 < r.floor / 2 for r in result.rows)


GRAPHS = ((lm.conv_bn_net, (3, 8, 8)), (lm.mlp_layernorm, (16,)), (lm.attention_block, (6, 12)))


@pytest.mark.parametrize(
    ("build", "shape", "precision"),
    [(b, shape, p) for b, shape in GRAPHS for p in ("fp16", "int8")],
    ids=[f"{g}-{p}" for g in ("conv_bn", "mlp_ln", "attention") for p in ("fp16", "int8")],
)  # fmt: skip
def test_no_spurious_divergence_on_other_graphs(tmp_path: Path, build, shape, precision: str) -> None:
    """The recipes' own noise on graphs unlike the bundled model stays under the floors (measured: fp16 nodes
    ≤ 7 % of the floor, int8 nodes ≤ 29 %), so nothing is flagged."""
    from trt_equiv.convert.precision import fp16_onnx, int8_qdq_onnx

    ref = build(tmp_path / "ref.onnx", seed=1)
    if precision == "fp16":
        cand = fp16_onnx(ref, cache_dir=tmp_path).path
    else:
        cand = int8_qdq_onnx(ref, Dataset.single(lm.samples(shape, n=160, seed=11)), cache_dir=tmp_path).path
    result = locate(ref, cand, {"x": lm.samples(shape, n=64, seed=21)})
    assert result.precision == precision and len(result.rows) >= 9
    assert max(r.rel_l2 for r in result.rows) > 0  # really reduced precision
    assert result.first_divergence is None, result.table()


def test_perturbed_layer_inside_reduced_precision_files_is_located(
    trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    """A 5% fp16 weight error and a 30% int8 weight-scale error on Conv__50 stand out from the precision's noise."""
    import onnx
    from onnx import numpy_helper

    assert trt_equiv_pipeline.data is not None
    fp32 = trt_equiv_pipeline.onnx("fp32")
    x = {"input": trt_equiv_pipeline.data.x[:96]}
    fp16 = perturb_node(trt_equiv_pipeline.onnx("fp16"), tmp_path / "fp16.onnx", "Conv__50", rel=0.05)
    assert locate(fp32, fp16, x).divergence_line() == "first divergence: Conv__50 (Conv)"

    model = onnx.load(str(trt_equiv_pipeline.onnx("int8")))
    conv = next(n for n in model.graph.node if n.name == "Conv__50")
    dq = next(n for n in model.graph.node if n.output[0] == conv.input[1])
    scale = next(i for i in model.graph.initializer if i.name == dq.input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(1.3), scale.name))
    int8 = tmp_path / "int8.onnx"
    onnx.save(model, str(int8))
    assert locate(fp32, int8, x).divergence_line() == "first divergence: Conv__50 (Conv)"


def test_q_dq_tensors_match_the_dequantized_value(trt_equiv_pipeline: Pipeline) -> None:
    import onnx

    matched = match_tensors(onnx.load(str(trt_equiv_pipeline.onnx("fp32"))),
                            onnx.load(str(trt_equiv_pipeline.onnx("int8"))))  # fmt: skip
    assert matched["Conv__46:0"] == "Conv__46:0_DequantizeLinear_Output"
    assert matched["output_0"] == "output_0"


def test_result_prints_table_worst_and_report(tmp_path: Path) -> None:
    ref = lm.conv_bn_net(tmp_path / "ref.onnx")
    cand = perturb_node(ref, tmp_path / "cand.onnx", "conv2")
    result = locate(ref, cand, {"x": lm.samples((3, 8, 8), n=20)}, chunk_size=7, max_samples=15)
    assert isinstance(result, LocateResult) and result.samples == 15
    text = str(result)
    assert "first divergence: conv2 (Conv)" in text.splitlines()
    assert "SQNR dB" in text and text.count("\n") > len(result.rows)
    assert len(result.worst(5)) == 5 and len(result.worst(100)) == len(result.rows)
    md, png = write_locate_report(result, tmp_path / "report")
    assert "first divergence: conv2 (Conv)" in md.read_text() and "| `conv2` | Conv |" in md.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    ref = lm.conv_bn_net(tmp_path / "ref.onnx")
    other = lm.attention_block(tmp_path / "other.onnx")  # no tensor name in common
    same_names = lm.mlp_layernorm(tmp_path / "same_names.onnx")  # shares "logits"/"probs", takes (N, 16)
    x = {"x": lm.samples((3, 8, 8), n=4)}
    with pytest.raises(InputValidationError, match="found none"):
        locate(ref, other, x)
    with pytest.raises(InputValidationError, match="could not run it on the data"):
        locate(ref, same_names, x)
    with pytest.raises(InputValidationError, match="expected arrays for the model inputs"):
        locate(ref, ref, {"y": x["x"]})
    with pytest.raises(InputValidationError, match="expected an existing ONNX file"):
        locate(ref, tmp_path / "missing.onnx", x)
    with pytest.raises(InputValidationError, match="chunk_size"):
        locate(ref, ref, x, chunk_size=0)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_locate_names_the_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = lm.conv_bn_net(tmp_path / "ref.onnx")
    cand = perturb_node(ref, tmp_path / "cand.onnx", "bn")
    data = tmp_path / "data.npz"
    save_npz(data, Dataset.single(lm.samples((3, 8, 8), n=24)))
    code = main(["locate", "--onnx", str(ref), "--candidate", str(cand), "--data", str(data),
                 "--report", str(tmp_path / "rep")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "first divergence: bn (BatchNormalization)" in out.splitlines()
    assert (tmp_path / "rep" / "locate.md").is_file() and (tmp_path / "rep" / "locate.png").is_file()


def test_cli_locate_builds_the_int8_file_itself(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["locate", "--precision", "int8", "--max-samples", "64"]) == 0
    out = capsys.readouterr().out
    assert "first divergence: none" in out and "worst 5 layers" in out


def test_cli_locate_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = lm.conv_bn_net(tmp_path / "ref.onnx")
    other = lm.attention_block(tmp_path / "other.onnx")
    data = tmp_path / "data.npz"
    save_npz(data, Dataset.single(lm.samples((3, 8, 8), n=4)))
    assert main(["locate", "--onnx", str(ref), "--candidate", str(tmp_path / "nope.onnx"), "--data", str(data)]) == 2
    assert "--candidate: expected an existing ONNX file" in capsys.readouterr().err
    assert main(["locate", "--onnx", str(ref), "--candidate", str(other), "--data", str(data)]) == 2
    assert "found none" in capsys.readouterr().err
    assert main(["locate", "--onnx", str(ref)]) == 2
    assert "--candidate FILE.onnx, --precision fp16|int8 or --savedmodel" in capsys.readouterr().err


def test_unnamed_nodes_are_reported_by_their_output(tmp_path: Path) -> None:
    """ONNX node names are optional: rows then name the node by its output tensor."""
    import onnx

    ref = lm.conv_bn_net(tmp_path / "ref.onnx")
    cand = perturb_node(ref, tmp_path / "cand.onnx", "conv2")
    for path in (ref, cand):
        model = onnx.load(str(path))
        for node in model.graph.node:
            node.name = ""
        onnx.save(model, str(path))
    result = locate(ref, cand, {"x": lm.samples((3, 8, 8), n=16)})
    assert result.divergence_line() == "first divergence: c2 (Conv)"
    assert all(r.local_rel_l2 is not None for r in result.rows)
