"""Pure TensorRT-shaped logic, checked against fake modules shaped like TensorRT 8.6, 10 and 11.

The fakes carry only what ``plan_network`` looks at, taken from the public headers and Python bindings of each
release: 8.6 has EXPLICIT_BATCH (needed) and no STRONGLY_TYPED; 10.x has both (EXPLICIT_BATCH deprecated and
ignored) plus the FP16/INT8 flags and calibrators; 11.x has only STRONGLY_TYPED (deprecated, always on), TF32
and no FP16/INT8 flags or calibrators.
"""

from __future__ import annotations

import enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from trt_equiv.backends.tensorrt import IoTensor, batch_range, buffer_nbytes, discover_io, split_io
from trt_equiv.errors import EngineError, InputValidationError
from trt_equiv.trt.build import (
    RECIPES,
    BuildOptions,
    Calibration,
    Profile,
    check_network_precision,
    load_timing_cache,
    plan_network,
    profile_shapes,
    save_timing_cache,
)


def fake_trt(version: str) -> Any:
    """A namespace with the capability surface of TensorRT ``version`` ("8.6", "10", "11")."""
    major = version.split(".")[0]
    creation = {
        "8": {"EXPLICIT_BATCH": 0},
        "10": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
        "11": {"STRONGLY_TYPED": 0},
    }
    flags = {"8": ["FP16", "INT8", "TF32"], "10": ["FP16", "INT8", "TF32"], "11": ["TF32"]}
    builder_attrs = {"max_batch_size": 1} if major == "8" else {}
    trt = SimpleNamespace(
        __name__="tensorrt",
        __version__=version,
        NetworkDefinitionCreationFlag=enum.IntEnum("NDCF", creation[major]),
        BuilderFlag=enum.IntEnum("BuilderFlag", {f: i for i, f in enumerate(flags[major])}),
        Builder=type("Builder", (), builder_attrs),
    )
    if major in ("8", "10"):
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {})
    return trt


@pytest.mark.parametrize("version", ["8.6.1", "10.11.0", "11.0.0"])
@pytest.mark.parametrize("recipe", ["fp32", "fp16", "int8"])
def test_onnx_level_recipes_map_onto_each_version(version: str, recipe: str) -> None:
    plan = plan_network(fake_trt(version), recipe)
    major = version.split(".")[0]
    if major == "8":  # explicit batch needed; no strong typing, so the builder flag lets fp16/Q-DQ int8 run
        assert plan.creation_flags == 1 << 0 and not plan.strongly_typed
        assert plan.set_flags == (() if recipe == "fp32" else (recipe.upper(),))
    elif major == "10":  # opt into strong typing; never the deprecated EXPLICIT_BATCH
        assert plan.creation_flags == 1 << 1 and plan.strongly_typed and plan.set_flags == ()
    else:  # always strongly typed; the deprecated flag is not passed
        assert plan.creation_flags == 0 and plan.strongly_typed and plan.set_flags == ()
    assert plan.network_precision == recipe and not plan.calibrate and plan.clear_flags == ()


@pytest.mark.parametrize("version", ["8.6.1", "10.11.0", "11.0.0"])
def test_fp32_strict_clears_tf32_everywhere(version: str) -> None:
    plan = plan_network(fake_trt(version), "fp32-strict")
    assert plan.clear_flags == ("TF32",) and plan.network_precision == "fp32"


@pytest.mark.parametrize("version", ["8.6.1", "10.11.0"])
def test_legacy_recipes_use_flags_on_a_weakly_typed_network(version: str) -> None:
    fp16 = plan_network(fake_trt(version), "fp16-legacy")
    int8 = plan_network(fake_trt(version), "int8-legacy")
    assert not fp16.strongly_typed and fp16.set_flags == ("FP16",) and not fp16.calibrate
    assert not int8.strongly_typed and int8.set_flags == ("INT8",) and int8.calibrate
    assert fp16.network_precision == int8.network_precision == "fp32"  # they start from the fp32 ONNX
    assert fp16.creation_flags == (1 if version.startswith("8") else 0)


@pytest.mark.parametrize("recipe", ["fp16-legacy", "int8-legacy"])
def test_legacy_recipe_on_11_says_which_module_and_what_to_use(recipe: str) -> None:
    with pytest.raises(EngineError) as info:
        plan_network(fake_trt("11.0.0"), recipe)
    message = str(info.value)
    assert "tensorrt 11.0.0" in message and "ONNX-level recipe" in message
    assert ("model.fp16.onnx" if recipe.startswith("fp16") else "model.int8.qdq.onnx") in message


def test_unknown_recipe_is_refused() -> None:
    with pytest.raises(InputValidationError, match="recipe"):
        plan_network(fake_trt("10.11.0"), "int4")
    with pytest.raises(InputValidationError, match="recipe"):
        BuildOptions(recipe="bf16")
    assert set(RECIPES) >= {"fp32", "fp32-strict", "fp16", "int8"}


def test_profile_validation_and_parsing() -> None:
    assert Profile() == Profile(1, 16, 32)
    assert Profile.parse("2:8:64") == Profile(2, 8, 64) and Profile.parse("8") == Profile(8, 8, 8)
    assert Profile.parse("2,8,64") == Profile(2, 8, 64)
    for bad in [(0, 1, 2), (4, 2, 8), (1, 16, 8)]:
        with pytest.raises(InputValidationError, match="min <= opt <= max"):
            Profile(*bad)
    with pytest.raises(InputValidationError, match="MIN,OPT,MAX"):
        Profile.parse("1:2")
    with pytest.raises(InputValidationError, match="one or more Profile"):
        BuildOptions(profiles=())
    assert BuildOptions(profiles=Profile(1, 2, 4)).profiles == (Profile(1, 2, 4),)  # type: ignore[arg-type]


def test_profile_shapes_vary_the_batch_only() -> None:
    assert profile_shapes("x", (-1, 32, 32, 3), Profile(1, 16, 32)) == (
        (1, 32, 32, 3),
        (16, 32, 32, 3),
        (32, 32, 32, 3),
    )
    with pytest.raises(EngineError, match=r"dimension\(s\) \[1\] besides the batch are dynamic.*--profile x:1x8x3"):
        profile_shapes("x", (-1, -1, 3), Profile())
    with pytest.raises(EngineError, match="fixed batch of 4"):
        profile_shapes("x", (4, 3), Profile())
    assert profile_shapes("x", (4, 3), Profile(4, 4, 4)) == ((4, 3),) * 3


@pytest.mark.parametrize(
    ("expected", "reduced", "qdq", "ok"),
    [
        ("fp32", False, False, True),
        ("fp32", True, False, False),
        ("fp32", False, True, False),
        ("fp16", True, False, True),
        ("fp16", False, False, False),
        ("int8", False, True, True),
        ("int8", True, False, False),
    ],
)
def test_network_precision_must_match_the_recipe(expected: str, reduced: bool, qdq: bool, ok: bool) -> None:
    if ok:
        check_network_precision(expected, expected, reduced, qdq, "m.onnx")
    else:
        with pytest.raises(EngineError, match="m.onnx"):
            check_network_precision(expected, expected, reduced, qdq, "m.onnx")


def test_options_key_dict_is_json_ready_and_complete() -> None:
    opts = BuildOptions(recipe="int8", profiles=(Profile(1, 4, 8), Profile(8, 8, 64)), workspace_bytes=1 << 20,
                        target_compute_capabilities=("8.6",))  # fmt: skip
    assert opts.key_dict() == {
        "recipe": "int8",
        "profiles": [[1, 4, 8], [8, 8, 64]],
        "workspace_bytes": 1 << 20,
        "target_compute_capabilities": ["8.6"],
    }
    with pytest.raises(InputValidationError, match="'8.6'"):
        BuildOptions(target_compute_capabilities=("sm86",))


def test_calibration_uses_full_batches_and_fingerprints_them() -> None:
    data = np.arange(70 * 2, dtype=np.float32).reshape(70, 2)
    cal = Calibration(data, batch_size=32)
    assert cal.num_batches == 2 and cal.batch(1).shape == (32, 2) and cal.batch(1)[0, 0] == 64.0
    assert cal.fingerprint() == Calibration(data.copy(), batch_size=32).fingerprint()
    changed = data.copy()
    changed[5, 0] += 1
    assert cal.fingerprint() != Calibration(changed, batch_size=32).fingerprint()
    assert cal.fingerprint() != Calibration(data, batch_size=16).fingerprint()
    with pytest.raises(InputValidationError, match="at least one full batch"):
        Calibration(data[:10], batch_size=32)
    with pytest.raises(InputValidationError, match="float32"):
        Calibration(data.astype(np.float64))


class FakeConfig:
    """The timing-cache surface of IBuilderConfig: bytes in, bytes out."""

    def __init__(self) -> None:
        self.cache: bytes | None = None

    def create_timing_cache(self, data: bytes) -> Any:
        if data.startswith(b"bad"):
            return None
        return SimpleNamespace(serialize=lambda: data + b"+tuned")

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False  # a cache from another device/version must not be trusted silently
        self.attached = cache
        return True

    def get_timing_cache(self) -> Any:
        return self.attached


def test_timing_cache_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "timing.cache"
    config = FakeConfig()
    assert load_timing_cache(config, path)  # no file yet: a fresh cache
    save_timing_cache(config, path)
    assert path.read_bytes() == b"+tuned"
    config = FakeConfig()
    assert load_timing_cache(config, path)
    save_timing_cache(config, path)
    assert path.read_bytes() == b"+tuned+tuned"  # the earlier file was loaded, then extended
    assert not load_timing_cache(FakeConfig(), None)

    path.write_bytes(b"bad bytes")
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_timing_cache(FakeConfig(), path)


# --- runner logic over an engine-like object -------------------------------------------------------------


class FakeEngine:
    """The name-based I/O surface of ICudaEngine for an NHWC classifier with a 1..32 batch profile."""

    num_optimization_profiles = 2

    def __init__(self, in_dtype: str = "float32", outputs: int = 1) -> None:
        self.tensors: dict[str, tuple[str, str, tuple[int, ...]]] = {"x": ("in", in_dtype, (-1, 8, 8, 3))}
        for i in range(outputs):
            self.tensors[f"probs{i}"] = ("out", "float32", (-1, 10))
        self.num_io_tensors = len(self.tensors)

    def get_tensor_name(self, i: int) -> str:
        return list(self.tensors)[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.tensors[name][0]

    def get_tensor_dtype(self, name: str) -> str:
        return self.tensors[name][1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][2]

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        hi = 32 if index == 0 else 128
        return [(1, 8, 8, 3), (16, 8, 8, 3), (hi, 8, 8, 3)]


FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"), nptype=np.dtype)


def test_discover_io_reads_names_modes_dtypes_and_the_selected_profile() -> None:
    specs = discover_io(FakeEngine(), FAKE_TRT, profile_index=1)
    assert [s.name for s in specs] == ["x", "probs0"]
    (inp,), (out,) = split_io(specs, "fake")
    assert inp.is_input and not out.is_input
    assert inp.shape == (-1, 8, 8, 3) and inp.dtype == np.float32
    assert inp.profile == ((1, 8, 8, 3), (16, 8, 8, 3), (128, 8, 8, 3)) and out.profile is None
    assert batch_range([inp], "fake") == (1, 128)
    with pytest.raises(EngineError, match="expected 0..1"):
        discover_io(FakeEngine(), FAKE_TRT, profile_index=2)


def test_several_outputs_and_integer_io_are_served_unsupported_dtypes_refused() -> None:
    inp, outs = split_io(discover_io(FakeEngine("float16", outputs=2), FAKE_TRT), "fake")
    assert inp[0].dtype == np.float16 and [o.name for o in outs] == ["probs0", "probs1"]
    assert split_io(discover_io(FakeEngine("int32"), FAKE_TRT), "fake")[0][0].dtype == np.int32
    with pytest.raises(EngineError, match="'x' is int8; expected one of"):
        split_io(discover_io(FakeEngine("int8"), FAKE_TRT), "fake")
    with pytest.raises(EngineError, match="at least one input and one output"):
        split_io(discover_io(FakeEngine(outputs=0), FAKE_TRT), "fake")
    a = IoTensor("a", True, (-1, 3), np.dtype(np.float32), ((1, 3), (4, 3), (8, 3)))
    b = IoTensor("b", True, (-1, 3), np.dtype(np.float32), ((2, 3), (4, 3), (16, 3)))
    assert batch_range([a, b], "fake") == (2, 8)  # the batches every input accepts
    c = IoTensor("c", True, (-1, 3), np.dtype(np.float32), ((9, 3), (9, 3), (16, 3)))
    with pytest.raises(EngineError, match="do not overlap"):
        batch_range([a, c], "fake")


def test_buffer_sizes_follow_shape_and_dtype() -> None:
    assert buffer_nbytes((32, 8, 8, 3), np.dtype(np.float32)) == 32 * 8 * 8 * 3 * 4
    assert buffer_nbytes((32, 10), np.dtype(np.float16)) == 32 * 10 * 2
    with pytest.raises(EngineError, match="dynamic"):
        buffer_nbytes((-1, 10), np.dtype(np.float32))
