"""TF-Lite backend and conversion on the bundled model: every precision against the SavedModel (plain numpy
metrics), tensors by name, batch resizing, the raw interpreter call, caching and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_equiv.backends.tflite import TFLiteBackend
from trt_equiv.compare import blame_stage, chain_links
from trt_equiv.convert.tflite import check_tflite, savedmodel_to_tflite
from trt_equiv.errors import ConversionError, InputValidationError, ModelLoadError
from trt_equiv.pipeline import Pipeline

#: (max |diff| bound, top-1 agreement floor) against the SavedModel, from what each recipe can lose:
#: fp32 is the same float graph, fp16 rounds weights to 11 bits, int8 quantizes every activation
BOUNDS = {"fp32": (1e-4, 1.0), "fp16": (1e-2, 0.99), "int8": (0.15, 0.98)}


@pytest.fixture(scope="module")
def reference(trt_equiv_pipeline: Pipeline) -> np.ndarray:
    return trt_equiv_pipeline.reference()["output_0"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tflite_matches_the_savedmodel(trt_equiv_pipeline: Pipeline, reference: np.ndarray, precision: str) -> None:
    data = trt_equiv_pipeline.data
    assert data is not None
    with trt_equiv_pipeline.open_backend("tflite", precision) as backend:
        assert backend.label == f"tflite-{precision}" and backend.interpreter_module == "ai_edge_litert"
        assert backend.input_names == ["input"] and backend.input_specs[0].shape == (32, 32, 3)  # type: ignore[index]
        whole = backend.infer(data.x)
        named = backend.infer({"input": data.x[:7]})  # another batch size: the interpreter is resized
        in_batches = np.concatenate([backend.infer(data.x[s : s + 32]) for s in range(0, len(data.x), 32)])
    assert whole.shape == reference.shape and whole.dtype == np.float32
    assert list(named) == ["output_0"] and np.array_equal(named["output_0"], whole[:7])
    np.testing.assert_allclose(in_batches, whole, rtol=1e-5, atol=1e-6)  # batch size does not change answers
    max_abs, top1_floor = BOUNDS[precision]
    assert np.abs(whole - reference).max() <= max_abs
    assert (whole.argmax(1) == reference.argmax(1)).mean() >= top1_floor
    assert data.y is not None and (whole.argmax(1) == data.y).mean() >= (reference.argmax(1) == data.y).mean() - 0.02


def test_int8_is_really_quantized(trt_equiv_pipeline: Pipeline) -> None:
    """Full-integer int8: smaller than fp32, int8 tensors inside, float32 at the edges."""
    sizes = {p: trt_equiv_pipeline.open_backend("tflite", p).model_path.stat().st_size for p in ("fp32", "int8")}
    assert sizes["int8"] < sizes["fp32"] / 2.5
    with trt_equiv_pipeline.open_backend("tflite", "int8") as backend:
        details = backend.interpreter.get_tensor_details()
        runner = backend.interpreter.get_signature_runner("serving_default")
        assert runner.get_input_details()["input"]["dtype"] == np.float32
    assert sum(d["dtype"] == np.int8 for d in details) > 10


def test_raw_call_does_the_same_work(trt_equiv_pipeline: Pipeline) -> None:
    x = trt_equiv_pipeline.data.x[:32]  # type: ignore[union-attr]
    with trt_equiv_pipeline.open_backend("tflite", "fp32") as backend:
        raw = backend.raw_call({"input": x})
        np.testing.assert_array_equal(raw()[0], backend.infer(x))  # type: ignore[index]


def test_conversion_is_cached(trt_equiv_pipeline: Pipeline) -> None:
    first = savedmodel_to_tflite(trt_equiv_pipeline.model_dir, "fp16", cache_dir=trt_equiv_pipeline.cache_dir)
    mtime = first.stat().st_mtime_ns
    again = savedmodel_to_tflite(trt_equiv_pipeline.model_dir, "fp16", cache_dir=trt_equiv_pipeline.cache_dir)
    assert again == first and again.stat().st_mtime_ns == mtime


def test_bad_inputs_are_clear_errors(trt_equiv_pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match="calibration set"):
        savedmodel_to_tflite(trt_equiv_pipeline.model_dir, "int8", cache_dir=tmp_path)
    with pytest.raises(InputValidationError, match="expected one of fp32, fp16, int8"):
        savedmodel_to_tflite(trt_equiv_pipeline.model_dir, "bf16", cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        TFLiteBackend(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ConversionError, match="TFL3"):
        check_tflite(junk)
    with pytest.raises(ModelLoadError, match="could not load"):
        TFLiteBackend(junk).open()
    with trt_equiv_pipeline.open_backend("tflite", "fp32") as backend, pytest.raises(InputValidationError):
        backend.infer(np.zeros((2, 3, 32, 32), dtype=np.float32))  # NCHW for an NHWC model


def test_blame_link() -> None:
    assert ("savedmodel-fp32", "tflite-int8") in chain_links(["savedmodel-fp32", "onnxruntime-fp32", "tflite-int8"])
    assert blame_stage("savedmodel-fp32", "tflite-fp16") == "TF-Lite conversion (fp16)"
    assert Pipeline.unavailable_reason("tflite", "int8") is None
