"""``locate`` between the SavedModel and its fp32 ONNX: tensors matched by the TensorFlow op names tf2onnx keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.onnx_edits import perturb_node
from trt_equiv.cli import main
from trt_equiv.pipeline import Pipeline


def test_savedmodel_vs_onnx_matches_names_and_finds_a_perturbed_conv(
    trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    from trt_equiv.locate_tf import locate_savedmodel

    assert trt_equiv_pipeline.data is not None
    fp32 = trt_equiv_pipeline.onnx("fp32")
    x = {"input": trt_equiv_pipeline.data.x[:48]}
    result = locate_savedmodel(trt_equiv_pipeline.model_dir, fp32, x, chunk_size=16)
    assert len(result.rows) >= 10  # relus, pools, dense layers and the output matched by name
    assert result.first_divergence is None, result.table()
    assert max(r.rel_l2 for r in result.rows) < 1e-5  # TensorFlow vs ONNX Runtime fp32, NHWC vs NCHW handled
    assert any("no TensorFlow name" in s and "Conv__46" in s for s in result.skipped)  # said so, not hidden

    broken = perturb_node(fp32, tmp_path / "broken.onnx", "Conv__50", rel=0.01)
    result = locate_savedmodel(trt_equiv_pipeline.model_dir, broken, x, chunk_size=16)
    first = result.first_divergence
    assert first is not None
    # Conv__50 (BatchNorm folded in by tf2onnx) has no TensorFlow name: the ReLU after it is flagged and
    # the convolution named as the node in between
    assert (first.node, first.op_type) == ("StatefulPartitionedCall/vgg_small_1/re_lu_2_1/Relu", "Relu")
    assert first.via == ("Conv__50 (Conv)",)
    assert "Conv__50 (Conv)" in result.divergence_line()


def test_cli_locate_savedmodel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["locate", "--savedmodel", "--max-samples", "32"]) == 0
    out = capsys.readouterr().out
    assert "first divergence: none" in out and "not compared:" in out
    assert main(["locate", "--savedmodel", "--precision", "int8"]) == 2
