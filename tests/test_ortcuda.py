"""ONNX Runtime on CUDA as its own backend, "ortcuda": its own rows, a clear reason where it cannot run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_equiv.backends import onnxruntime as ort_backend
from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeCudaBackend
from trt_equiv.cli import EXIT_USAGE, main
from trt_equiv.errors import MissingRuntimeError
from trt_equiv.pipeline import BACKENDS, DEFAULT_CANDIDATES, Pipeline
from trt_equiv.plugin import backend_params
from trt_equiv.runtime import onnxruntime_cuda_unavailable_reason

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """softmax(x @ W + b), dynamic batch: enough to run a provider without converting a SavedModel."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 4])], [w, b],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_ortcuda_is_its_own_backend_row(tiny_onnx: Path) -> None:
    backend = OnnxRuntimeCudaBackend(tiny_onnx)
    assert backend.label == "ortcuda-fp32" and "-" not in backend.name  # labels split on the first "-"
    assert "ortcuda" in BACKENDS and "ortcuda" in DEFAULT_CANDIDATES
    (param,) = backend_params([("ortcuda", "fp16")])
    assert param.id == "ortcuda-fp16" and [m.name for m in param.marks] == ["gpu"]


def test_ortcuda_runs_on_cuda_or_says_why_not(tiny_onnx: Path) -> None:
    """On a CUDA machine it matches ONNX Runtime on the CPU; elsewhere it refuses with the probe's reason."""
    reason = onnxruntime_cuda_unavailable_reason()
    x = np.random.default_rng(1).standard_normal((33, 6)).astype(np.float32)
    if reason is not None:
        pipeline_reason = Pipeline.unavailable_reason("ortcuda")
        # the pipeline names missing conversion tools (tf2onnx) first; with them present, the provider's reason
        assert pipeline_reason == reason if Pipeline.unavailable_reason("onnxruntime") is None else pipeline_reason
        with pytest.raises(MissingRuntimeError, match=f"ortcuda: {reason[:40]}"):
            OnnxRuntimeCudaBackend(tiny_onnx).open()
        return
    assert Pipeline.unavailable_reason("ortcuda") == Pipeline.unavailable_reason("onnxruntime")  # tf2onnx or None
    cpu = OnnxRuntimeBackend(tiny_onnx, providers=["CPUExecutionProvider"])
    with OnnxRuntimeCudaBackend(tiny_onnx) as gpu, cpu:
        assert gpu.providers[0] == "CUDAExecutionProvider"
        np.testing.assert_allclose(gpu.infer(x), cpu.infer(x), rtol=1e-5, atol=1e-6)


class _FallingBackOrt:
    """An onnxruntime stand-in whose session, asked for CUDA, ends up on the CPU (as a failed CUDA load does)."""

    class SessionOptions:
        intra_op_num_threads = 0

    class InferenceSession:
        def __init__(self, path: str, sess_options: object, providers: list[object]) -> None:
            assert providers[0] == ("CUDAExecutionProvider", {"device_id": "0", "use_tf32": "0"})

        def get_providers(self) -> list[str]:
            return ["CPUExecutionProvider"]


def test_a_silent_cpu_fallback_is_refused(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime falls back to the CPU when the CUDA provider does not load; that must not pass as CUDA."""
    monkeypatch.setattr(ort_backend, "onnxruntime_cuda_unavailable_reason", lambda: None)
    monkeypatch.setattr(ort_backend, "require", lambda name: _FallingBackOrt)
    with pytest.raises(MissingRuntimeError, match=r"fell back to \['CPUExecutionProvider'\]"):
        OnnxRuntimeCudaBackend(tiny_onnx).open()


def test_check_asked_for_ortcuda_where_it_cannot_run_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if onnxruntime_cuda_unavailable_reason() is None:  # a CUDA machine: make the provider missing for this test
        monkeypatch.setattr("trt_equiv.pipeline.onnxruntime_cuda_unavailable_reason", lambda: "no CUDA provider (test)")
    reason = Pipeline.unavailable_reason("ortcuda")
    assert reason
    assert main(["check", "--backends", "ortcuda", "--precisions", "fp32"]) == EXIT_USAGE
    assert f"ortcuda-fp32 cannot run here: {reason}" in capsys.readouterr().err
