"""The real C++ TensorRT runner against the Python TensorRT runner, on the same engines, on a GPU.

Skipped, with the reason, unless TensorRT engines can execute here (``tensorrt`` module, CUDA GPU,
cuda-python) and the session's CMake build produced ``trt-equiv-runner`` (NvInfer.h + libnvinfer + CUDA).

Tolerances, and why:
- same engine, same batch chunking: **exact**. Both runners enqueue the same shapes on the same engine with
  the same input bytes (float32, or float16 rounded to nearest even on the host by both), so TensorRT runs
  the same kernels on the same data; any difference is a runner bug (layout, order, dropped rows, conversion).
- same engine, different batch sizes: within ``CROSS_BATCH_ATOL``; a different batch shape may run another
  kernel configuration, which changes accumulation order (fp32 ~1e-7 relative, fp16 ~1e-3 on softmax).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from trt_equiv.runner_build import RunnerBuild
from trt_equiv.runtime import tensorrt_execution_unavailable_reason

# The C++ runner links libnvinfer, so it needs TensorRT proper (TensorRT for RTX engines would not load).
_REASON = tensorrt_execution_unavailable_reason("tensorrt")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.tensorrt,
    pytest.mark.cpp,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]

PROFILE = (1, 16, 32)
BATCH_SIZES = (1, 7, 16, 32)
N_SAMPLES = 100  # not divisible by 7, 16 or 32: every run has a partial last batch
CROSS_BATCH_ATOL = {"fp32-strict": 1e-5, "fp32": 1e-5, "fp16": 2e-3}


@pytest.fixture(scope="module")
def trt_runner(runner_build: RunnerBuild) -> Path:
    if not runner_build.tensorrt_built or runner_build.tensorrt_runner is None:
        pytest.skip(f"TensorRT C++ runner not built: {runner_build.tensorrt_reason}")
    return runner_build.tensorrt_runner


@pytest.fixture(scope="module")
def trt_module() -> ModuleType:
    from trt_equiv.runtime import tensorrt_module

    return tensorrt_module("tensorrt")


@pytest.fixture(scope="module")
def engines(trt_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """recipe -> engine of the tiny test model (tests/trt/models.py), built through the engine cache."""
    pytest.importorskip("onnx", reason="onnx is needed to make the tiny test model")
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common is needed for the fp16 test model")
    from tests.trt import models
    from trt_equiv.trt.build import Profile
    from trt_equiv.trt.cache import EngineCache

    root = tmp_path_factory.mktemp("cpp_gpu_engines")
    fp32 = models.tiny_fp32(root / "model.onnx")
    onnx_for = {"fp32-strict": fp32, "fp32": fp32, "fp16": models.tiny_fp16(fp32, root / "model.fp16.onnx")}
    cache = EngineCache(root / "cache")
    return {
        recipe: cache.get(onnx, recipe=recipe, profiles=[Profile(*PROFILE)], module=trt_module, progress=False).path
        for recipe, onnx in onnx_for.items()
    }


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    from tests.trt import models

    return np.random.default_rng(7).random((N_SAMPLES, *models.SAMPLE_SHAPE), dtype=np.float32)


@pytest.fixture(scope="module")
def python_runners(engines: dict[str, Path], trt_module: ModuleType) -> Iterator[dict]:
    from trt_equiv.backends.tensorrt import TensorRTBackend  # written alongside; imported only on GPU machines

    opened = {r: TensorRTBackend(p, precision=r, module=trt_module).open() for r, p in engines.items()}
    yield opened
    for backend in opened.values():
        backend.close()


@pytest.mark.parametrize("recipe", sorted(CROSS_BATCH_ATOL))
@pytest.mark.parametrize("runner_batch", BATCH_SIZES)
def test_cpp_equals_python_on_the_same_engine_and_batches(
    trt_runner: Path, engines: dict, python_runners: dict, samples: np.ndarray, recipe: str, runner_batch: int
) -> None:
    from trt_equiv.backends.base import infer_in_batches
    from trt_equiv.backends.cpp import CppRunnerBackend

    with CppRunnerBackend(engines[recipe], binary=trt_runner, precision=recipe, batch_size=runner_batch) as cpp:
        got = cpp.infer(samples)
        timing = cpp.last_timing
        device_s = cpp.last_device_time_s
    want = infer_in_batches(python_runners[recipe], samples, runner_batch)
    assert got.shape == want.shape == (N_SAMPLES, want.shape[1]), f"cpp {got.shape} vs python {want.shape}"
    assert got.dtype == want.dtype == np.float32
    diff = np.abs(got - want)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    assert np.array_equal(got, want), (
        f"cpp-{recipe} vs tensorrt-{recipe} at batch {runner_batch}: max |diff| {diff.max():.3g} at sample {worst[0]} "
        f"(cpp {got[worst]!r}, python {want[worst]!r}); the same engine on the same batches must agree exactly"
    )
    assert timing is not None and timing["compute_ms"] is not None, "the TensorRT runner times execution with events"
    assert timing["batches_per_pass"] == -(-N_SAMPLES // runner_batch)
    assert device_s is not None and device_s > 0


@pytest.mark.parametrize("recipe", sorted(CROSS_BATCH_ATOL))
def test_cpp_is_batch_invariant(trt_runner: Path, engines: dict, samples: np.ndarray, recipe: str) -> None:
    from trt_equiv.backends.cpp import CppRunnerBackend

    outs = {}
    for batch_size in BATCH_SIZES:
        with CppRunnerBackend(engines[recipe], binary=trt_runner, precision=recipe, batch_size=batch_size) as cpp:
            outs[batch_size] = cpp.infer(samples)
    ref = outs[PROFILE[2]]
    for batch_size, out in outs.items():
        np.testing.assert_allclose(
            out, ref, rtol=0, atol=CROSS_BATCH_ATOL[recipe], err_msg=f"cpp-{recipe} batch {batch_size} vs {PROFILE[2]}"
        )


def test_batch_size_above_the_profile_is_a_usage_error(trt_runner: Path, engines: dict, samples: np.ndarray) -> None:
    from trt_equiv.backends.cpp import CppRunnerBackend
    from trt_equiv.errors import RunnerError

    with (
        CppRunnerBackend(engines["fp32"], binary=trt_runner, batch_size=PROFILE[2] + 1) as cpp,
        pytest.raises(RunnerError, match=rf"exit code 2[\s\S]*maximum batch {PROFILE[2]}"),
    ):
        cpp.infer(samples)


def test_describe_reports_the_engine_io(trt_runner: Path, engines: dict) -> None:
    from tests.trt import models
    from trt_equiv.backends.cpp import CppRunnerBackend

    with CppRunnerBackend(engines["fp32"], binary=trt_runner) as cpp:
        info = cpp.engine_info
        assert cpp.sample_shape == models.SAMPLE_SHAPE
    assert info is not None
    assert (info["min_batch"], info["max_batch"]) == (PROFILE[0], PROFILE[2])
    assert [t["name"] for t in info["inputs"]] == [models.INPUT_NAME]
    assert [t["sample_shape"] for t in info["outputs"]] == [[models.NUM_CLASSES]]
    assert "TensorRT" in info["description"]
