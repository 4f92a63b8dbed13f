"""The Python TensorRT runner on a GPU: agreement with ONNX Runtime, batch invariance, batches above the max.

Each test builds (through the cache) the tiny model's engine for one recipe and runs it next to ONNX Runtime on
the same ONNX file, so the only difference measured is TensorRT's. Skipped, with the reason, wherever TensorRT
engines cannot run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.trt import models
from trt_equiv.runtime import tensorrt_execution_unavailable_reason

_REASON = tensorrt_execution_unavailable_reason()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.tensorrt,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]

PROFILE_MAX = 32
#: max |TensorRT - ONNX Runtime| on softmax outputs of the same ONNX file. fp32-strict: no TF32, only
#: kernel/accumulation-order differences; fp32 allows TF32 (~1e-3 seen on softmax); fp16 and int8 run the same
#: casts/scales as ONNX Runtime but with different kernels and fusion, hence looser.
ATOL = {"fp32-strict": 1e-5, "fp32": 2e-3, "fp16": 1e-2, "int8": 5e-2}
ONNX_FOR = {"fp32-strict": "fp32", "fp32": "fp32", "fp16": "fp16", "int8": "int8"}


@pytest.fixture(scope="module")
def engines(trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    from trt_equiv.trt.build import Profile
    from trt_equiv.trt.cache import EngineCache

    cache = EngineCache(tmp_path_factory.mktemp("gpu_engines"))
    return {
        recipe: cache.get(tiny_onnx[ONNX_FOR[recipe]], recipe=recipe, profiles=[Profile(1, 16, PROFILE_MAX)],
                          module=trt_module, progress=False).path
        for recipe in ATOL
    }  # fmt: skip


@pytest.fixture(scope="module")
def runner(engines: dict, trt_module: ModuleType) -> Iterator:
    from trt_equiv.backends.tensorrt import TensorRTBackend

    opened = {}
    for recipe, path in engines.items():
        opened[recipe] = TensorRTBackend(path, precision=recipe, module=trt_module).open()
    yield opened
    for backend in opened.values():
        backend.close()


def samples(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *models.SAMPLE_SHAPE), dtype=np.float32)


@pytest.mark.parametrize("recipe", list(ATOL))
def test_runner_agrees_with_onnxruntime_on_the_same_onnx(recipe: str, runner: dict, tiny_onnx: dict) -> None:
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    x = samples(PROFILE_MAX)
    with OnnxRuntimeBackend(tiny_onnx[ONNX_FOR[recipe]], providers=["CPUExecutionProvider"]) as ort:
        want = ort.infer(x)
    got = runner[recipe].infer(x)
    assert got.shape == want.shape == (PROFILE_MAX, models.NUM_CLASSES)
    assert got.dtype == np.float32
    err = np.abs(got - want)
    worst = np.unravel_index(int(err.argmax()), err.shape)
    assert err.max() <= ATOL[recipe], f"{recipe}: max |trt - ort| {err.max():.3g} at {worst} > {ATOL[recipe]}"
    assert runner[recipe].last_device_time_s is not None and runner[recipe].last_device_time_s > 0


def test_profile_maximum_is_the_runner_max_batch(runner: dict) -> None:
    backend = runner["fp32-strict"]
    assert backend.max_batch == PROFILE_MAX and backend.sample_shape == models.SAMPLE_SHAPE


def test_batch_above_the_maximum_is_split_in_order(runner: dict) -> None:
    backend = runner["fp32-strict"]
    x = samples(2 * PROFILE_MAX + 11)
    whole = backend.infer(x)
    assert whole.shape[0] == len(x)
    pieces = np.concatenate([backend.infer(x[s : s + PROFILE_MAX]) for s in range(0, len(x), PROFILE_MAX)])
    np.testing.assert_array_equal(whole, pieces)
    np.testing.assert_allclose(whole[-11:], backend.infer(x[-11:]), atol=1e-6)  # the partial last chunk


def test_batch_invariance_up_to_the_profile_maximum(runner: dict) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    backend = runner["fp32-strict"]
    pool = samples(PROFILE_MAX, seed=11)
    reference = backend.infer(pool)

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(st.lists(st.integers(0, PROFILE_MAX - 1), min_size=1, max_size=PROFILE_MAX))
    def check(rows: list[int]) -> None:
        out = backend.infer(pool[rows])
        assert out.shape == (len(rows), models.NUM_CLASSES)
        # another batch size may pick another kernel: equal to fp32 rounding, and the same class always
        np.testing.assert_allclose(out, reference[rows], atol=1e-5, err_msg=f"batch {len(rows)} rows {rows}")
        assert (out.argmax(1) == reference[rows].argmax(1)).all()

    check()
