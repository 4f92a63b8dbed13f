"""pytest plugin (entry point ``pytest11``): options, markers and fixtures for equivalence suites.

Fixtures:
- ``trt_equiv_pipeline`` (session): the model, its data, calibration set and cache.
- ``trt_equiv_data`` (session): the data set compared on.
- ``reference_outputs`` (session): SavedModel outputs for the whole data set.
- ``tolerance_policy`` (session): the default policy with ``--trt-equiv-tolerance`` overrides.
- ``backend`` (session, parametrized backend × precision): an opened backend, or a skip whose reason
  names the missing runtime or device.
- ``batch_size`` (parametrized): each of ``--trt-equiv-batch-sizes``; ``None`` is the whole set.

State lives in ``config.stash``; heavy runtimes are imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from trt_equiv.backends.base import PRECISIONS, Backend
from trt_equiv.pipeline import BACKENDS, DEFAULT_CANDIDATES, DEFAULT_PRECISIONS, Pipeline, parse_batch_sizes, parse_list

MARKERS = {
    "equivalence": "compares a converted backend with its reference (run with -m equivalence)",
    "gpu": "needs a CUDA GPU",
    "tensorrt": "needs TensorRT able to execute engines",
    "cpp": "needs the C++ runner binary",
    "slow": "takes more than a few seconds",
}

#: marks added to a backend parameter so `-m "not gpu"` deselects what cannot run on CPU machines
_BACKEND_MARKS = {"ortcuda": ("gpu",), "tensorrt": ("gpu", "tensorrt"), "cpp": ("gpu", "tensorrt", "cpp")}

DEFAULT_BATCH_SIZES = "1,7,16,32,all"


@dataclass(frozen=True)
class Options:
    model: str | None
    data: str | None
    calibration: str | None
    cache_dir: str | None
    backends: tuple[str, ...]
    precisions: tuple[str, ...]
    batch_sizes: tuple[int | None, ...]
    tolerances: tuple[str, ...]


OPTIONS_KEY = pytest.StashKey[Options]()
PIPELINE_KEY = pytest.StashKey[Pipeline]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt_equiv", "TensorFlow → ONNX → TensorRT equivalence")
    group.addoption("--trt-equiv-model", default=None, help="SavedModel directory (default: the bundled model)")
    group.addoption("--trt-equiv-data", default=None, help=".npz data file with x (and y) (default: bundled)")
    group.addoption("--trt-equiv-calibration", default=None, help=".npz calibration set for int8")
    group.addoption(
        "--trt-equiv-cache-dir", default=None, help="cache root (default: $TRT_EQUIV_CACHE_DIR or per-user)"
    )
    group.addoption(
        "--trt-equiv-backends",
        default=",".join(DEFAULT_CANDIDATES),
        help="candidate backends for the `backend` fixture (comma list)",
    )
    group.addoption(
        "--trt-equiv-precisions",
        default=",".join(DEFAULT_PRECISIONS),
        help="precisions for the `backend` fixture (comma list)",
    )
    group.addoption(
        "--trt-equiv-batch-sizes",
        default=DEFAULT_BATCH_SIZES,
        help="batch sizes for the `batch_size` fixture; 'all' is the whole set",
    )
    group.addoption("--trt-equiv-tolerance", action="append", default=[], metavar="KEY.BOUND=VALUE",
                    help="override a tolerance bound, e.g. fp16.max_abs=0.05 (repeatable)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        options = Options(
            model=config.getoption("--trt-equiv-model"),
            data=config.getoption("--trt-equiv-data"),
            calibration=config.getoption("--trt-equiv-calibration"),
            cache_dir=config.getoption("--trt-equiv-cache-dir"),
            backends=parse_list(config.getoption("--trt-equiv-backends"), BACKENDS, "--trt-equiv-backends"),
            precisions=parse_list(config.getoption("--trt-equiv-precisions"), PRECISIONS, "--trt-equiv-precisions"),
            batch_sizes=parse_batch_sizes(config.getoption("--trt-equiv-batch-sizes")),
            tolerances=tuple(config.getoption("--trt-equiv-tolerance")),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[OPTIONS_KEY] = options


def backend_params(pairs: list[tuple[str, str]]) -> list[pytest.ParameterSet]:
    """(backend, precision) pairs as parameters with ids and the markers their hardware needs.

    The SavedModel runs in fp32 only, so it contributes one parameter whatever the precisions are.
    """
    unique = dict.fromkeys((b, "fp32" if b == "savedmodel" else p) for b, p in pairs)
    return [
        pytest.param((b, p), id=f"{b}-{p}", marks=[getattr(pytest.mark, m) for m in _BACKEND_MARKS.get(b, ())])
        for b, p in unique
    ]


def open_or_skip(pipeline: Pipeline, name: str, precision: str) -> Backend:
    """A configured backend for the pair, or a skip naming the missing runtime or device."""
    reason = Pipeline.unavailable_reason(name, precision)
    if reason:
        pytest.skip(f"{name}-{precision}: {reason}")
    return pipeline.open_backend(name, precision)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    options = metafunc.config.stash[OPTIONS_KEY]
    if "backend" in metafunc.fixturenames:
        params = backend_params([(b, p) for b in options.backends for p in options.precisions])
        metafunc.parametrize("backend", params, indirect=True, scope="session")
    if "batch_size" in metafunc.fixturenames:
        ids = [f"b{b}" if b is not None else "ball" for b in options.batch_sizes]
        metafunc.parametrize("batch_size", options.batch_sizes, ids=ids)


@pytest.fixture(scope="session")
def trt_equiv_pipeline(pytestconfig: pytest.Config) -> Pipeline:
    if PIPELINE_KEY not in pytestconfig.stash:
        o = pytestconfig.stash[OPTIONS_KEY]
        pytestconfig.stash[PIPELINE_KEY] = Pipeline.create(
            o.model, o.data, calibration=o.calibration, cache_dir=o.cache_dir
        )
    return pytestconfig.stash[PIPELINE_KEY]


@pytest.fixture(scope="session")
def trt_equiv_data(trt_equiv_pipeline: Pipeline):
    return trt_equiv_pipeline.data


@pytest.fixture(scope="session")
def reference_outputs(trt_equiv_pipeline: Pipeline) -> np.ndarray:
    reason = Pipeline.unavailable_reason("savedmodel")
    if reason:
        pytest.skip(reason)
    return trt_equiv_pipeline.reference()


@pytest.fixture(scope="session")
def tolerance_policy(pytestconfig: pytest.Config):
    from trt_equiv.compare import TolerancePolicy

    return TolerancePolicy().with_overrides(list(pytestconfig.stash[OPTIONS_KEY].tolerances))


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest, trt_equiv_pipeline: Pipeline) -> Iterator[Backend]:
    """An opened candidate backend; skipped, with the missing runtime or device named, where it cannot run."""
    runner = open_or_skip(trt_equiv_pipeline, *request.param).open()
    yield runner
    runner.close()


@pytest.fixture
def batch_size(request: pytest.FixtureRequest) -> int | None:
    return request.param
