"""`trt-equiv doctor`: what is usable here, and which backends each missing piece stops (in the pipeline's words)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trt_equiv.cli import main
from trt_equiv.doctor import diagnose, runtime_reasons
from trt_equiv.pipeline import BACKENDS, Pipeline
from trt_equiv.runtime import cuda_devices, cuda_unavailable_reason, onnxruntime_cuda_unavailable_reason


def test_doctor_says_what_is_missing_for_gpu_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    runtimes = runtime_reasons()
    for backend in BACKENDS:  # every verdict is the pipeline's own, so doctor cannot disagree with a check
        reason = Pipeline.unavailable_reason(backend)
        if reason is not None and runtimes.get(backend, reason) is None:  # only conversion tools missing
            assert (
                f"{backend:<12} runs here on given artefacts (--onnx/--engine + --golden); converting needs: {reason}"
                in out
            )
        else:
            assert f"{backend:<12} {'runs here' if reason is None else 'will not run: ' + reason}" in out
    gpu_line = next(line for line in out.splitlines() if " GPU " in f" {line} ")
    if cuda_devices():
        assert gpu_line.lstrip().startswith("ok") and cuda_devices()[0][0] in gpu_line
    else:  # this CPU machine: the GPU line gives the reason, and every GPU backend is listed as stopped
        reason = cuda_unavailable_reason()
        assert reason and gpu_line.lstrip().startswith("--") and reason in gpu_line
        for backend in ("tensorrt", "cpp"):
            assert f"{backend:<12} will not run: " in out
    ort_cuda = onnxruntime_cuda_unavailable_reason()
    assert ("ortcuda      runs here" in out) == (ort_cuda is None)
    if ort_cuda:
        assert "ONNX Runtime CUDA" in out and ort_cuda in out
    runnable = sum(Pipeline.unavailable_reason(b) is None for b in BACKENDS)
    assert f"{runnable} of {len(BACKENDS)} backends can run here" in out


def test_diagnosis_lists_every_component() -> None:
    names = [c.name for c in diagnose().components]
    for wanted in ("GPU", "NVIDIA driver", "CUDA runtime", "ONNX Runtime", "ONNX Runtime CUDA", "TensorFlow",
                   "C++ runner"):  # fmt: skip
        assert wanted in names
    assert any(n.startswith("TensorRT") for n in names)


def test_doctor_does_not_import_tensorflow() -> None:
    """TensorFlow's version comes from package metadata: doctor stays fast and works on TF-less runners."""
    code = "import sys\nfrom trt_equiv.doctor import diagnose\ndiagnose()\nprint('tensorflow' in sys.modules)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_a_runner_without_conversion_tools_is_told_what_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU runner with ONNX Runtime but no tf2onnx can still check given ONNX files against golden outputs."""
    monkeypatch.setattr(
        Pipeline, "unavailable_reason", staticmethod(lambda backend, precision="fp32": "tf2onnx not installed (test)")
    )
    monkeypatch.setattr("trt_equiv.doctor.runtime_reasons", lambda: {"onnxruntime": None, "tensorrt": "no GPU (test)"})
    out = diagnose().format()
    assert "onnxruntime  runs here on given artefacts (--onnx/--engine + --golden); converting needs: tf2onnx" in out
    assert "tensorrt     will not run: tf2onnx not installed (test)" in out
    assert "savedmodel   will not run: tf2onnx not installed (test)" in out
