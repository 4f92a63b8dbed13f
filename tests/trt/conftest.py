"""Session fixtures for the TensorRT tests: the TensorRT module and the tiny fp32/fp16/int8/broken ONNX files.

Building needs a TensorRT module but no GPU (TensorRT for RTX builds on a CPU-only machine), so only the absence
of every TensorRT module skips the build and cache tests. Running engines needs more; those tests skip with
``tensorrt_execution_unavailable_reason()``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.trt import models
from trt_equiv.runtime import TENSORRT_MODULES, is_available


def pytest_configure(config: pytest.Config) -> None:
    # the trt_equiv plugin registers these too; repeated here so `-p no:trt_equiv` runs still pass --strict-markers
    for line in ("gpu: needs a CUDA GPU", "tensorrt: needs TensorRT able to execute engines"):
        config.addinivalue_line("markers", line)


@pytest.fixture(scope="session")
def trt_module() -> ModuleType:
    """The TensorRT module the builder will use (tensorrt, tensorrt_rtx or tensorrt_rtx_bindings)."""
    if not any(is_available(m) for m in TENSORRT_MODULES):
        pytest.skip(f"no TensorRT module installed (looked for {', '.join(TENSORRT_MODULES)})")
    from trt_equiv.trt.common import resolve_module

    return resolve_module()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """precision -> ONNX file of the tiny model: "fp32", "fp16" (Cast-edged), "int8" (Q/DQ)."""
    pytest.importorskip("onnx", reason="onnx is needed to make the tiny test models")
    root = tmp_path_factory.mktemp("tiny_onnx")
    fp32 = models.tiny_fp32(root / "model.onnx")
    return {
        "fp32": fp32,
        "fp16": models.tiny_fp16(fp32, root / "model.fp16.onnx"),
        "int8": models.tiny_int8(fp32, root / "model.int8.qdq.onnx"),
    }


@pytest.fixture(scope="session")
def broken_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="onnx is needed to make the test models")
    return models.broken(tmp_path_factory.mktemp("broken") / "broken.onnx")
