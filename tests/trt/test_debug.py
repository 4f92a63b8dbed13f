"""Debug tensors marked in real TensorRT builds (TensorRT for RTX builds without a GPU), and the int8 fallback
file built by TensorRT. Reading the tensors back needs a GPU; that test skips with the reason."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests import locate_models as lm
from tests.trt import models
from trt_equiv.data import Dataset
from trt_equiv.trt.build import BuildOptions, build_serialized_engine


def test_marked_tensors_build_and_are_confirmed(trt_module: ModuleType, tiny_onnx: dict[str, Path]) -> None:
    from trt_equiv.trt.debug import build_debug_engine

    plain = build_serialized_engine(tiny_onnx["fp32"], BuildOptions(), module=trt_module, progress=False)
    debug = build_debug_engine(tiny_onnx["fp32"], ["conv", "relu", "logits", "no_such_tensor"], module=trt_module)

    assert debug.marked == ("conv", "relu", "logits")
    assert debug.missing == ("no_such_tensor",)
    if hasattr(trt_module.INetworkDefinition, "mark_debug"):
        assert debug.how == "mark_debug" and debug.confirmed == debug.marked
    assert debug.result.size_bytes > 1024 and debug.result.engine != plain.engine
    assert debug.result.inputs == plain.inputs


def test_int8_file_with_matched_qdq_names_builds_with_debug_tensors(
    trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    """The names ``locate`` compares in a Q/DQ file (DequantizeLinear outputs) are the ones marked."""
    import onnx

    from trt_equiv.locate import match_tensors
    from trt_equiv.trt.debug import build_debug_engine

    matched = match_tensors(onnx.load(str(tiny_onnx["fp32"])), onnx.load(str(tiny_onnx["int8"])))
    names = sorted(set(matched.values()) - {"probs"})
    debug = build_debug_engine(tiny_onnx["int8"], names, BuildOptions(recipe="int8"), module=trt_module)
    assert debug.marked and not debug.missing, debug
    assert any(n.endswith("_DequantizeLinear_Output") for n in debug.marked)


def test_default_marks_every_onnx_node_output(trt_module: ModuleType, tiny_onnx: dict[str, Path]) -> None:
    from trt_equiv.trt.debug import build_debug_engine

    debug = build_debug_engine(tiny_onnx["fp32"], module=trt_module)
    assert set(debug.marked) | set(debug.missing) == {"nchw", "conv", "relu", "pool", "flat", "logits"}
    assert {"conv", "relu", "logits"} <= set(debug.marked)


def test_int8_fallback_result_builds(trt_module: ModuleType, tmp_path: Path) -> None:
    from trt_equiv.convert.int8_fallback import _rel_l2, int8_with_fallback

    model = lm.outlier_mlp(tmp_path / "outlier.onnx")
    calib = Dataset.single(lm.samples((16,), n=320, seed=1))
    result = int8_with_fallback(model, calib, gate=lambda r, c: _rel_l2(r, c) < 0.06, gate_name="rel_l2<0.06",
                                cache_dir=tmp_path)  # fmt: skip
    assert result.excluded  # mixed precision: some layers float32, the rest Q/DQ
    built = build_serialized_engine(result.path, BuildOptions(recipe="int8"), module=trt_module, progress=False)
    assert built.size_bytes > 1024 and built.inputs == {"x": (-1, 16)}


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_debug_tensors_read_back_match_onnxruntime(trt_module: ModuleType, tiny_onnx: dict[str, Path],
                                                   tmp_path: Path) -> None:  # fmt: skip
    from trt_equiv.runtime import tensorrt_execution_unavailable_reason

    reason = tensorrt_execution_unavailable_reason(trt_module.__name__)
    if reason:
        pytest.skip(f"reading debug tensors needs a GPU that can run {trt_module.__name__} engines: {reason}")
    from trt_equiv.locate import _run, _session, _with_outputs
    from trt_equiv.trt.common import deserialize_engine
    from trt_equiv.trt.debug import build_debug_engine, engine_debug_tensors, run_debug_tensors

    debug = build_debug_engine(tiny_onnx["fp32"], ["conv", "relu"], BuildOptions(recipe="fp32-strict"),
                               module=trt_module)  # fmt: skip
    engine_path = tmp_path / "debug.engine"
    engine_path.write_bytes(debug.result.engine)
    _, engine = deserialize_engine(trt_module, debug.result.engine, where=str(engine_path))
    if hasattr(engine, "is_debug_tensor"):
        assert engine_debug_tensors(trt_module, engine, ["conv", "relu"]) == ["conv", "relu"]
    x = models.calibration_samples(8)
    got = run_debug_tensors(engine_path, x, ["conv", "relu"], module=trt_module)
    import onnx

    model = _with_outputs(onnx.load(str(tiny_onnx["fp32"])), ["conv", "relu"])
    path = tmp_path / "exposed.onnx"
    onnx.save(model, str(path))
    sess = _session(path)
    ref = dict(zip([o.name for o in sess.get_outputs()], _run(sess, {"x": x}, "reference"), strict=True))
    for name in ("conv", "relu"):
        assert got[name].shape == ref[name].shape
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-4)
