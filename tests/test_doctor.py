"""`trt-equiv doctor`: what is usable here, and which backends each missing piece stops (in the pipeline's words)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trt_equiv.cli import main
from trt_equiv.doctor import diagnose
from trt_equiv.pipeline import BACKENDS, Pipeline
from trt_equiv.runtime import cuda_devices, cuda_unavailable_reason, onnxruntime_cuda_unavailable_reason


def test_doctor_says_what_is_missing_for_gpu_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for backend in BACKENDS:  # every verdict is the pipeline's own, so doctor cannot disagree with a check
        reason = Pipeline.unavailable_reason(backend)
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
