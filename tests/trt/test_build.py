"""Real parses and builds with whatever TensorRT module is installed (TensorRT for RTX on CPU-only CI)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.trt import models
from trt_equiv.errors import EngineError, InputValidationError
from trt_equiv.trt.build import BuildOptions, Profile, build_serialized_engine, plan_network


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_each_precision_parses_and_builds_with_the_profile(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], precision: str
) -> None:
    result = build_serialized_engine(
        tiny_onnx[precision], BuildOptions(recipe=precision), module=trt_module, progress=False
    )

    assert result.inputs == {models.INPUT_NAME: (-1, *models.SAMPLE_SHAPE)}
    # the tiny model has ~2 KB of weights; an engine is kernels + weights: more than a KiB, far under 64 MiB
    assert 1024 < result.size_bytes < 64 << 20, f"{precision} engine size {result.size_bytes} bytes is implausible"
    assert result.engine[:4] != b"\0\0\0\0", "engine starts with zeros: not a serialized plan"
    assert result.strongly_typed == plan_network(trt_module, precision).strongly_typed
    assert result.module == trt_module.__name__ and result.version == trt_module.__version__
    assert result.seconds > 0


def test_fp32_strict_and_several_profiles_build(trt_module: ModuleType, tiny_onnx: dict[str, Path]) -> None:
    options = BuildOptions(recipe="fp32-strict", profiles=(Profile(1, 1, 4), Profile(4, 16, 64)))
    result = build_serialized_engine(tiny_onnx["fp32"], options, module=trt_module, progress=False)
    assert result.size_bytes > 1024
    assert result.options.profiles == (Profile(1, 1, 4), Profile(4, 16, 64))


@pytest.mark.parametrize(
    ("recipe", "onnx_precision", "expected"),
    [
        ("fp16", "fp32", "no float16 tensors"),
        ("int8", "fp32", "no QuantizeLinear/DequantizeLinear"),
        ("fp32", "int8", "already contains Q/DQ"),
        ("fp32-strict", "fp16", "already contains reduced-precision"),
    ],
)
def test_an_onnx_file_contradicting_the_recipe_is_refused(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], recipe: str, onnx_precision: str, expected: str
) -> None:
    with pytest.raises(EngineError, match=expected) as info:
        build_serialized_engine(
            tiny_onnx[onnx_precision], BuildOptions(recipe=recipe), module=trt_module, progress=False
        )
    assert str(tiny_onnx[onnx_precision]) in str(info.value)


@pytest.mark.parametrize("recipe", ["fp16-legacy", "int8-legacy"])
def test_legacy_recipe_on_a_module_without_it_names_the_module_and_the_way_out(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], recipe: str
) -> None:
    if hasattr(trt_module.BuilderFlag, recipe.split("-")[0].upper()):
        pytest.skip(f"{trt_module.__name__} {trt_module.__version__} still has the legacy builder flags")
    with pytest.raises(EngineError) as info:
        build_serialized_engine(tiny_onnx["fp32"], BuildOptions(recipe=recipe), module=trt_module, progress=False)
    message = str(info.value)
    assert trt_module.__name__ in message and trt_module.__version__ in message
    assert "ONNX-level recipe" in message and recipe.split("-")[0] in message


def test_parse_failure_names_the_node(trt_module: ModuleType, broken_onnx: Path) -> None:
    with pytest.raises(EngineError) as info:
        build_serialized_engine(broken_onnx, module=trt_module, progress=False)
    message = str(info.value)
    assert "could not parse" in message and str(broken_onnx) in message
    assert "broken_node" in message and "NoSuchOp" in message and "node #1" in message


def test_failed_build_reports_what_tensorrt_logged(trt_module: ModuleType, tiny_onnx: dict[str, Path]) -> None:
    if not hasattr(trt_module, "ComputeCapability"):
        pytest.skip(f"{trt_module.__name__} cannot target another GPU, the way this test makes a build fail")
    # TensorRT for RTX cannot compile the model's fp32 GEMM for Turing (7.5): a real, deterministic build failure
    with pytest.raises(EngineError) as info:
        build_serialized_engine(
            tiny_onnx["fp32"], BuildOptions(target_compute_capabilities=("7.5",)), module=trt_module, progress=False
        )
    message = str(info.value)
    assert "failed to build" in message and "['7.5']" in message
    assert "TensorRT said:" in message and "[ERROR]" in message


def test_unknown_target_compute_capability_lists_the_known_ones(
    trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    with pytest.raises(EngineError, match=r"9\.0") as info:
        build_serialized_engine(
            tiny_onnx["fp32"], BuildOptions(target_compute_capabilities=("9.0",)), module=trt_module, progress=False
        )
    assert "8.6" in str(info.value) or "RTX" in str(info.value)


def test_explicit_targets_build_where_the_module_supports_them(
    trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    if not hasattr(trt_module, "ComputeCapability"):
        pytest.skip(f"{trt_module.__name__} builds only for the GPU it runs on")
    options = BuildOptions(target_compute_capabilities=("8.6", "12.0"))
    assert build_serialized_engine(tiny_onnx["fp32"], options, module=trt_module, progress=False).size_bytes > 1024


def test_progress_goes_to_stderr_only_when_asked_or_on_a_terminal(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    if not hasattr(trt_module, "IProgressMonitor"):
        pytest.skip(f"{trt_module.__name__} has no IProgressMonitor")
    build_serialized_engine(tiny_onnx["fp32"], module=trt_module, progress=True)
    shown = capsys.readouterr()
    assert "[trt_equiv] Building engine" in shown.err and "done in" in shown.err
    assert shown.out == ""

    build_serialized_engine(tiny_onnx["fp32"], module=trt_module, progress=None)  # captured stderr is not a terminal
    assert capsys.readouterr().err == ""


def test_timing_cache_is_persisted_unless_the_module_ignores_it(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    from trt_equiv.trt.common import is_rtx

    timing = tmp_path / "timing.cache"
    result = build_serialized_engine(tiny_onnx["fp32"], module=trt_module, timing_cache=timing, progress=False)
    if is_rtx(trt_module):  # TensorRT for RTX: timing cache calls are deprecated no-ops, so none is written
        assert not result.timing_cache_used and not timing.exists()
    else:
        assert result.timing_cache_used and timing.stat().st_size > 0


def test_missing_onnx_file_is_an_input_error(trt_module: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match="expected an existing ONNX file"):
        build_serialized_engine(tmp_path / "nope.onnx", module=trt_module)


def test_a_dynamic_per_sample_dimension_is_refused(trt_module: ModuleType, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "W"])],
    )
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(EngineError, match=r"dimension\(s\) \[1\] besides the batch are dynamic and need a range"):
        build_serialized_engine(path, module=trt_module, progress=False)
