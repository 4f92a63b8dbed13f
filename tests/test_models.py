"""SavedModel and ONNX Runtime backends, and the cached SavedModel → ONNX conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend, choose_providers
from trt_equiv.backends.savedmodel import SavedModelBackend
from trt_equiv.convert.onnx import check_onnx, savedmodel_to_onnx
from trt_equiv.data import BUNDLED_MODEL
from trt_equiv.errors import ConversionError, InputValidationError, ModelLoadError
from trt_equiv.pipeline import Pipeline


def test_missing_model_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        SavedModelBackend(tmp_path / "nope")


def test_directory_that_is_not_a_savedmodel(tmp_path: Path) -> None:
    (tmp_path / "weights.h5").write_bytes(b"\0")
    with pytest.raises(ModelLoadError, match="expected a directory containing saved_model.pb"):
        SavedModelBackend(tmp_path)


def test_corrupt_savedmodel(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        SavedModelBackend(tmp_path).open()


def test_savedmodel_backend_finds_single_input_and_output() -> None:
    with SavedModelBackend(BUNDLED_MODEL) as sm:
        assert sm.sample_shape == (32, 32, 3)
        assert sm.input_names == ["input"] and sm.output_names == ["output_0"]
        out = sm.infer(np.zeros((3, 32, 32, 3), np.float32))
    assert out.shape == (3, 10) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_savedmodel_unknown_names() -> None:
    with SavedModelBackend(BUNDLED_MODEL) as sm, pytest.raises(InputValidationError, match=r"missing \['input'\]"):
        sm.infer({"image": np.zeros((1, 32, 32, 3), np.float32)})
    with pytest.raises(ModelLoadError, match="expected signature 'predict'"):
        SavedModelBackend(BUNDLED_MODEL, signature="predict").open()


def test_savedmodel_validates_input() -> None:
    with SavedModelBackend(BUNDLED_MODEL) as sm, pytest.raises(InputValidationError, match=r"per-sample shape"):
        sm.infer(np.zeros((1, 3, 32, 32), np.float32))  # NCHW where NHWC is expected


def test_conversion_is_cached_and_keeps_nhwc_dynamic_batch(tmp_path: Path) -> None:
    first = savedmodel_to_onnx(BUNDLED_MODEL, cache_dir=tmp_path)
    mtime = first.stat().st_mtime_ns
    second = savedmodel_to_onnx(BUNDLED_MODEL, cache_dir=tmp_path)
    assert second == first and second.stat().st_mtime_ns == mtime  # nothing converted the second time
    with OnnxRuntimeBackend(first) as ort_backend:
        assert ort_backend.sample_shape == (32, 32, 3)
        assert ort_backend.infer(np.zeros((5, 32, 32, 3), np.float32)).shape == (5, 10)
    other_opset = savedmodel_to_onnx(BUNDLED_MODEL, cache_dir=tmp_path, opset=15)
    assert other_opset != first  # the key covers the opset


def test_conversion_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(ConversionError, match="tf2onnx: conversion of .* failed"):
        savedmodel_to_onnx(tmp_path / "model", cache_dir=tmp_path / "cache")


def test_check_onnx_rejects_fixed_batch(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
    )  # fmt: skip
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ConversionError, match="dynamic batch dimension, got a fixed 4"):
        check_onnx(path)


def test_provider_choice() -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(available, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ModelLoadError, match="unavailable"):
        choose_providers(["CPUExecutionProvider"], ["TensorrtExecutionProvider"])


def test_onnxruntime_missing_and_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelLoadError, match="could not load"):
        OnnxRuntimeBackend(bad).open()


def test_pipeline_requires_data_and_calibration_for_a_user_model(tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match="--data: expected a .npz data file"):
        Pipeline.create(BUNDLED_MODEL)
    with pytest.raises(InputValidationError, match="--onnx: expected an existing file"):
        Pipeline.create(onnx=tmp_path / "missing.onnx")


def test_the_reference_runs_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 samples must not be one TensorFlow call (2.7 GB RSS measured): the reference runs in chunks."""
    from trt_equiv.backends.savedmodel import REFERENCE_CHUNK

    seen: list[int] = []
    original = SavedModelBackend._infer_impl

    def counting(self: SavedModelBackend, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seen.append(len(next(iter(inputs.values()))))
        return original(self, inputs)

    monkeypatch.setattr(SavedModelBackend, "_infer_impl", counting)
    with SavedModelBackend(BUNDLED_MODEL) as sm:
        out = sm.infer(np.zeros((REFERENCE_CHUNK * 2 + 5, 32, 32, 3), np.float32))
    assert len(out) == REFERENCE_CHUNK * 2 + 5 and seen == [REFERENCE_CHUNK, REFERENCE_CHUNK, 5]
