"""Per-input optimization profiles, built for real with the installed TensorRT (TensorRT for RTX builds on a CPU).

Two models from ``tests/trt/models.py``: two float inputs / two outputs, and int32 token ids + mask with a dynamic
sequence length. What the builder accepted is read back from TensorRT's own optimization profile
(``IOptimizationProfile.get_shape``); the engine is deserialized and its profile read only where a GPU lets it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.trt import models
from trt_equiv.errors import EngineError, InputValidationError
from trt_equiv.runtime import tensorrt_execution_unavailable_reason
from trt_equiv.trt.build import BuildOptions, InputRange, Profile, build_serialized_engine, profile_shapes


@pytest.fixture(scope="module")
def two_io_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="onnx is needed to make the test models")
    return models.two_in_two_out(tmp_path_factory.mktemp("two_io") / "model.onnx")


@pytest.fixture(scope="module")
def token_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="onnx is needed to make the test models")
    return models.token_model(tmp_path_factory.mktemp("tokens") / "model.onnx")


def test_profile_text_forms() -> None:
    p = Profile.parse("2,8,16 side:1,4,8 ids:0:1x8,16x16,32x64")
    assert (p.min, p.opt, p.max) == (2, 8, 16)
    assert p.for_input("side") == InputRange("side", (1,), (4,), (8,))
    assert p.for_input("ids:0") == InputRange("ids:0", (1, 8), (16, 16), (32, 64))  # the name keeps its ':0'
    assert Profile.parse(["ids:1x8,16x16,32x64"]).as_list() == [1, 16, 32]  # batch default for the others
    assert p.key() == {"batch": [2, 8, 16], "inputs": {"side": [[1], [4], [8]], "ids:0": [[1, 8], [16, 16], [32, 64]]}}
    assert Profile.parse("1,16,32").key() == [1, 16, 32]  # batch-only: the historic cache key, unchanged
    for bad, match in [
        ("ids:1x8,16x16", "NAME:MINSHAPE"),
        ("ids:1x8,16x4,32x64", "min <= opt <= max"),
        ("1,2,3 4,5,6", "given twice"),
        ("a:1,2,3 a:1,2,4", "given twice"),
        ("ids:1x0,1x1,1x1", "expected integers 1 <= min"),
    ]:
        with pytest.raises(InputValidationError, match=match):
            Profile.parse(bad)


def test_profile_shapes_per_input_and_clear_errors() -> None:
    p = Profile.parse("1,4,8 mask:2,4,6 ids:1x8,4x16,8x32")
    assert profile_shapes("image", (-1, 4, 4, 3), p) == ((1, 4, 4, 3), (4, 4, 4, 3), (8, 4, 4, 3))
    assert profile_shapes("mask", (-1, 5), p) == ((2, 5), (4, 5), (6, 5))
    assert profile_shapes("ids", (-1, -1), p) == ((1, 8), (4, 16), (8, 32))
    with pytest.raises(EngineError, match=r"'ids' has rank 3 .* rank-2 shapes"):
        profile_shapes("ids", (-1, -1, 2), p)
    with pytest.raises(EngineError, match=r"'ids' dimension 1 is fixed at 12 .* asks for 8..32"):
        profile_shapes("ids", (-1, 12), p)
    with pytest.raises(EngineError, match=r"'tok' has shape \(-1, -1\): dimension\(s\) \[1\] .* --profile tok:1x8"):
        profile_shapes("tok", (-1, -1), p)


def test_two_inputs_two_outputs_build_with_a_batch_override(trt_module: ModuleType, two_io_onnx: Path) -> None:
    result = build_serialized_engine(
        two_io_onnx, BuildOptions(profiles=(Profile.parse("1,4,8 side:1,4,8"),)), module=trt_module, progress=False
    )
    assert result.inputs == {"image": (-1, 4, 4, 3), "side": (-1, 5)} and result.size_bytes > 0
    (shapes,) = result.profile_shapes
    assert shapes == {"image": ((1, 4, 4, 3), (4, 4, 4, 3), (8, 4, 4, 3)), "side": ((1, 5), (4, 5), (8, 5))}


def test_token_model_builds_with_a_sequence_range(trt_module: ModuleType, token_onnx: Path) -> None:
    profile = Profile.parse("ids:1x4,4x16,8x32 mask:1x4,4x16,8x32")
    result = build_serialized_engine(token_onnx, BuildOptions(profiles=(profile,)), module=trt_module, progress=False)
    assert result.inputs == {"ids": (-1, -1), "mask": (-1, -1)}
    (shapes,) = result.profile_shapes
    assert shapes == {"ids": ((1, 4), (4, 16), (8, 32)), "mask": ((1, 4), (4, 16), (8, 32))}
    if tensorrt_execution_unavailable_reason(trt_module.__name__) is None:  # a GPU can load it: check the engine too
        from trt_equiv.backends.tensorrt import discover_io, split_io
        from trt_equiv.trt.common import deserialize_engine

        _runtime, engine = deserialize_engine(trt_module, result.engine, where="tokens")
        inputs, _ = split_io(discover_io(engine, trt_module), "tokens")
        assert {s.name: s.profile for s in inputs} == shapes


def test_token_model_without_a_sequence_range_says_what_to_pass(trt_module: ModuleType, token_onnx: Path) -> None:
    with pytest.raises(EngineError, match=r"'ids' has shape \(-1, -1\).*--profile ids:1x8"):
        build_serialized_engine(token_onnx, BuildOptions(), module=trt_module, progress=False)
    with pytest.raises(EngineError, match=r"profile names input\(s\) \['idz'\].*its inputs are \['ids', 'mask'\]"):
        build_serialized_engine(
            token_onnx, BuildOptions(profiles=(Profile.parse("idz:1x4,4x16,8x32"),)), module=trt_module, progress=False
        )


def test_a_lean_runtime_module_cannot_build_and_says_so(token_onnx: Path) -> None:
    pytest.importorskip("tensorrt_lean_bindings", reason="the TensorRT 11 lean runtime is not installed")
    import tensorrt_lean_bindings

    with pytest.raises(EngineError, match="runtime-only .* cannot build engines"):
        build_serialized_engine(token_onnx, BuildOptions(), module=tensorrt_lean_bindings, progress=False)
