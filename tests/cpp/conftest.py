"""Fixtures for the C++ runner tests: one CMake build per session, CPU test engines and their NumPy twin.

The build needs only cmake and a C++17 compiler, so nothing here skips on a CPU-only machine; the TensorRT
runner is built too when TensorRT and CUDA are found (tests/cpp/test_gpu_runner.py uses it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.runner_build import RunnerBuild, build_runner

_MARKERS = {
    "equivalence": "compares outputs of two backends",
    "gpu": "needs a CUDA GPU",
    "tensorrt": "needs TensorRT",
    "cpp": "needs the C++ TensorRT runner",
    "slow": "takes more than a few seconds",
}


def pytest_configure(config: pytest.Config) -> None:
    # The trt_equiv pytest plugin registers these; register whichever it has not, so --strict-markers
    # holds when the plugin is disabled or not written yet.
    known = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, doc in _MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {doc}")


@pytest.fixture(scope="session")
def runner_build(tmp_path_factory: pytest.TempPathFactory) -> RunnerBuild:
    """cpp/ built once for the session (Release, tests on)."""
    build = build_runner(tmp_path_factory.mktemp("cpp-build"), build_type="Release")
    assert build.cpu_runner is not None and build.cpu_runner.is_file(), build
    return build


@pytest.fixture(scope="session")
def cpu_runner(runner_build: RunnerBuild) -> Path:
    assert runner_build.cpu_runner is not None
    return runner_build.cpu_runner


@pytest.fixture(scope="session")
def npy_copy(runner_build: RunnerBuild) -> Path:
    assert runner_build.npy_copy is not None and runner_build.npy_copy.is_file()
    return runner_build.npy_copy


@dataclass(frozen=True)
class AffineEngine:
    """A CPU test engine file and the NumPy computation it must match (cpp/testing/cpu_engine.hpp)."""

    path: Path
    sample_shape: tuple[int, ...]
    scale: float = 1.0
    bias: float = 0.0
    copy_scale: float = 1.0
    input_dtype: str = "float32"

    def reference(self, x: np.ndarray) -> np.ndarray:
        """out[i] = [scale*sum(x_i)+bias, copy_scale*x_i[0], x_i[last]], in float64 then rounded to float32."""
        flat = x.reshape(x.shape[0], -1)
        if self.input_dtype == "float16":
            with np.errstate(over="ignore"):  # out-of-range values become inf, as in the engine
                flat = flat.astype(np.float16)
        flat = flat.astype(np.float64)
        out = np.stack([self.scale * flat.sum(axis=1) + self.bias, self.copy_scale * flat[:, 0], flat[:, -1]], axis=1)
        return out.astype(np.float32)


@pytest.fixture
def make_cpu_engine(tmp_path: Path) -> Callable[..., AffineEngine]:
    """Write a CPU test engine file; keyword arguments beyond AffineEngine's fields go in verbatim
    (min_batch, max_batch, fail_after_calls, drop_rows)."""
    counter = iter(range(1_000_000))

    def make(
        sample_shape: tuple[int, ...] = (4, 3),
        *,
        scale: float = 2.0,
        bias: float = 0.5,
        copy_scale: float = -3.0,
        input_dtype: str = "float32",
        **extra: int,
    ) -> AffineEngine:
        path = tmp_path / f"affine{next(counter)}.engine"
        lines = [
            "trt-equiv-cpu-engine 1",
            "input_shape " + " ".join(str(d) for d in sample_shape),
            f"input_dtype {input_dtype}",
            f"scale {scale!r}",
            f"bias {bias!r}",
            f"copy_scale {copy_scale!r}",
            *(f"{key} {value}" for key, value in extra.items()),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return AffineEngine(path, tuple(sample_shape), scale, bias, copy_scale, input_dtype)

    return make


def _exact_inputs(n: int, sample_shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Inputs whose sums are exact in float64 in any order (multiples of 1/8 below 2**10), so the C++ and
    NumPy reductions agree bit for bit; sample i starts with i so every row is identifiable."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-8192, 8192, size=(n, *sample_shape)).astype(np.float32) / np.float32(8)
    x.reshape(n, -1)[:, 0] = np.arange(n, dtype=np.float32)
    return x


def _run_cli(binary: Path, *args: str | Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a runner binary directly (no shell) and capture its output as text."""
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def exact_inputs() -> Callable[..., np.ndarray]:
    return _exact_inputs


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return _run_cli
