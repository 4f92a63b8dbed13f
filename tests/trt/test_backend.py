"""The TensorRT backend where engines cannot run: clear errors, no heavy import at construction."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from trt_equiv.errors import EngineError, InputValidationError, MissingRuntimeError, ModelLoadError
from trt_equiv.runtime import cuda_unavailable_reason, tensorrt_execution_unavailable_reason


def test_construction_validates_without_touching_tensorrt(tmp_path: Path) -> None:
    from trt_equiv.backends.tensorrt import TensorRTBackend

    with pytest.raises(ModelLoadError, match="does not exist"):
        TensorRTBackend(tmp_path / "missing.engine")
    (tmp_path / "e.engine").write_bytes(b"x")
    with pytest.raises(InputValidationError, match="precision"):
        TensorRTBackend(tmp_path / "e.engine", precision="int4")
    backend = TensorRTBackend(tmp_path / "e.engine", precision="fp16")
    assert backend.label == "tensorrt-fp16" and backend.max_batch is None  # known once opened


@pytest.mark.skipif(tensorrt_execution_unavailable_reason() is None, reason="TensorRT engines can run here")
def test_opening_where_engines_cannot_run_says_why(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    from trt_equiv.backends.tensorrt import TensorRTBackend
    from trt_equiv.trt.cache import EngineCache

    engine = EngineCache(tmp_path).get(tiny_onnx["fp32"], module=trt_module, progress=False).path
    backend = TensorRTBackend(engine, module=trt_module)
    reason = tensorrt_execution_unavailable_reason(trt_module.__name__)
    assert reason
    with pytest.raises(MissingRuntimeError) as info:
        backend.infer(np.zeros((1, 8, 8, 3), dtype=np.float32))
    assert reason in str(info.value) and str(engine) in str(info.value)


def test_deserialization_failure_is_reported_as_corrupt_or_mismatched(trt_module: ModuleType) -> None:
    from trt_equiv.trt.common import deserialize_engine

    # garbage bytes: refused either because they are no engine, or (no GPU) because nothing can be loaded
    with pytest.raises(EngineError) as info:
        deserialize_engine(trt_module, b"definitely not an engine" * 8, where="test.engine")
    message = str(info.value)
    assert "test.engine" in message and trt_module.__version__ in message
    if cuda_unavailable_reason() is None:
        assert "corrupt or built by a different TensorRT version/device" in message and "TensorRT said:" in message
    else:  # never deserialize without CUDA (the lean runtime segfaults): the reason is the missing GPU
        assert f"cannot deserialize an engine here: {cuda_unavailable_reason()}" in message
