"""Benchmark fixtures: the SavedModel baseline plus every candidate backend × precision, opened once.

Benchmarks run with ``pytest --benchmark-only`` (timed). ``make test`` passes ``--benchmark-disable``,
under which each benchmark body runs once untimed, so CI proves the suite works without timing noise.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cpp.conftest import cpu_runner, exact_inputs, make_cpu_engine, runner_build  # noqa: F401 (fixtures)
from trt_equiv.backends.base import Backend
from trt_equiv.bench import artefact_size, backend_artefact, timed
from trt_equiv.pipeline import Pipeline
from trt_equiv.plugin import OPTIONS_KEY, backend_params, open_or_skip
from trt_equiv.runtime import cuda_device, is_available, require

#: batch sizes benchmarked: DESIGN's set; 32 is also the default engine profile maximum
BENCH_BATCH_SIZES = (1, 8, 16, 32)


@dataclass
class OpenedBackend:
    backend: Backend
    load_s: float
    artefact_bytes: int | None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_backend" in metafunc.fixturenames:
        options = metafunc.config.stash[OPTIONS_KEY]
        pairs = [("savedmodel", "fp32")] + [(b, p) for b in options.backends for p in options.precisions]
        metafunc.parametrize("bench_backend", backend_params(pairs), indirect=True, scope="session")
    if "bench_batch" in metafunc.fixturenames:
        metafunc.parametrize("bench_batch", BENCH_BATCH_SIZES, ids=[f"b{b}" for b in BENCH_BATCH_SIZES])


@pytest.fixture(scope="session")
def bench_backend(request: pytest.FixtureRequest, trt_equiv_pipeline: Pipeline) -> Iterator[OpenedBackend]:
    backend = open_or_skip(trt_equiv_pipeline, *request.param)  # converts / builds the artefact first
    _, load_s = timed(backend.open)  # load time alone: the artefact already exists
    yield OpenedBackend(backend, load_s, artefact_size(backend_artefact(backend)))
    backend.close()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, object]) -> None:
    """Versions that explain a throughput figure: CPU, GPU, driver, CUDA, TensorRT, ORT, TensorFlow."""
    machine_info["cpu_model"] = platform.processor() or platform.machine()
    device = cuda_device()
    machine_info["gpu"] = f"{device[0]} (sm_{device[1][0]}{device[1][1]})" if device else "none"
    if device and is_available("cuda.bindings"):
        from cuda.bindings import runtime as cudart

        machine_info["cuda_driver"] = int(cudart.cudaDriverGetVersion()[1])
        machine_info["cuda_runtime"] = int(cudart.cudaRuntimeGetVersion()[1])
    for module in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings", "onnxruntime", "tensorflow", "onnx"):
        if is_available(module):
            machine_info[module] = getattr(require(module), "__version__", "unknown")
