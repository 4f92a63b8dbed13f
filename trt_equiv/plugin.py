"""pytest plugin (entry point ``pytest11``): options, markers and fixtures for equivalence suites.

Fixtures:
- ``trt_equiv_pipeline`` (session): the model, its data, calibration set and cache.
- ``trt_equiv_data`` (session): the data set compared on, keyed by the model's input names.
- ``reference_outputs`` (session): SavedModel outputs for the whole data set, by output name.
- ``output_labels`` (session): labels / targets per output name (from ``y`` / ``y:<output>``).
- ``output_kinds`` (session): the kind of each output (detected, or ``--trt-equiv-output-kind``).
- ``tolerance_policy`` (session): the default policy with ``--trt-equiv-tolerance`` overrides.
- ``backend`` (session, parametrized backend × precision): an opened backend, or a skip whose reason
  names the missing runtime or device.
- ``batch_size`` (parametrized): each of ``--trt-equiv-batch-sizes``; ``None`` is the whole set.

State lives in ``config.stash``; heavy runtimes are imported only when a fixture is used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
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
    signature: str = "serving_default"
    output_kinds: tuple[str, ...] = ()
    int8_fallback: str = "off"


OPTIONS_KEY = pytest.StashKey[Options]()
#: the --trt-equiv-golden path (None when the SavedModel is the reference); the check runner reads it
GOLDEN_KEY = pytest.StashKey["str | None"]()
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
    group.addoption(
        "--trt-equiv-tolerance",
        action="append",
        default=[],
        metavar="KEY.BOUND=VALUE",
        help="override a tolerance bound, e.g. fp16.rms_err=0.02 or fp16.cosine=none (repeatable)",
    )
    group.addoption("--trt-equiv-signature", default="serving_default", help="SavedModel signature")
    group.addoption("--trt-equiv-output-kind", action="append", default=[], metavar="NAME=KIND",
                    help="override an output's detected kind: probabilities, logits, continuous, exact")  # fmt: skip
    group.addoption("--trt-equiv-int8-fallback", default="off", choices=("off", "auto"),
                    help="auto: keep the fewest compute nodes in fp32 that make int8 pass its gate")  # fmt: skip
    group.addoption("--trt-equiv-golden", default=None, metavar="FILE.npz",
                    help="reference outputs from `trt-equiv golden` instead of running TensorFlow")  # fmt: skip
    group.addoption("--trt-equiv-gpus", default="auto", metavar="IDS",
                    help="GPUs for pytest-xdist workers, one each (CUDA_VISIBLE_DEVICES ids, comma list); "
                         "'auto': every visible GPU; 'none': no pinning")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    pin_this_process(config)
    config.stash[GOLDEN_KEY] = config.getoption("--trt-equiv-golden")
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
            signature=config.getoption("--trt-equiv-signature"),
            output_kinds=tuple(config.getoption("--trt-equiv-output-kind")),
            int8_fallback=config.getoption("--trt-equiv-int8-fallback"),
        )
        from trt_equiv.compare import parse_output_kinds

        parse_output_kinds(options.output_kinds)  # a bad NAME=KIND is a usage error before any test runs
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
            o.model,
            o.data,
            calibration=o.calibration,
            cache_dir=o.cache_dir,
            signature=o.signature,
            int8_fallback=o.int8_fallback,
        )
    return pytestconfig.stash[PIPELINE_KEY]


def _require_reference() -> None:
    reason = Pipeline.unavailable_reason("savedmodel")
    if reason:
        pytest.skip(f"the SavedModel reference cannot run: {reason}")


@pytest.fixture(scope="session")
def trt_equiv_data(trt_equiv_pipeline: Pipeline):
    """The data set keyed by the model's input names (checked against the SavedModel's signature)."""
    _require_reference()
    return trt_equiv_pipeline.bound_data()


@pytest.fixture(scope="session")
def reference_outputs(trt_equiv_pipeline: Pipeline) -> dict[str, np.ndarray]:
    _require_reference()
    return trt_equiv_pipeline.reference_outputs()


@pytest.fixture(scope="session")
def output_labels(trt_equiv_data, reference_outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from trt_equiv.reference_checks import resolve_labels

    return resolve_labels(trt_equiv_data.labels, reference_outputs)


@pytest.fixture(scope="session")
def output_kinds(
    pytestconfig: pytest.Config, reference_outputs: dict[str, np.ndarray], output_labels: dict[str, np.ndarray]
) -> dict[str, str]:
    from trt_equiv.compare import parse_output_kinds
    from trt_equiv.reference_checks import resolve_kinds

    overrides = parse_output_kinds(pytestconfig.stash[OPTIONS_KEY].output_kinds)
    return resolve_kinds(reference_outputs, output_labels, overrides)


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


# ------------------------------------------------------------------ several GPUs: one xdist worker per GPU
#
# The controller resolves the GPU list (before any worker initialises CUDA) and hands each worker its GPU
# through xdist's ``workerinput``; the worker sets CUDA_VISIBLE_DEVICES first thing in ``pytest_configure``,
# so its CUDA context, engines and ONNX Runtime sessions all land on that GPU (which it sees as device 0).

GPU_ENV = "CUDA_VISIBLE_DEVICES"
WORKER_GPU_KEY = "trt_equiv_gpu"
_WORKER_GPUS_KEY = pytest.StashKey[list[str]]()


def parse_gpus(value: str) -> tuple[str, ...] | None:
    """``--trt-equiv-gpus``: "auto" → None (every visible GPU), "none" → () (no pinning), "0,1" → ("0", "1")."""
    text = (value or "auto").strip()
    if text.lower() == "auto":
        return None
    if text.lower() == "none":
        return ()
    ids = tuple(i.strip() for i in text.split(","))
    if not all(ids) or len(set(ids)) != len(ids):
        raise pytest.UsageError(
            f"--trt-equiv-gpus: expected 'auto', 'none' or distinct GPU ids like 0,1, got {value!r}"
        )
    return ids


def visible_gpus(option: str) -> tuple[str, tuple[str, ...]]:
    """(where the list came from, GPU ids) for ``--trt-equiv-gpus``: explicit ids, else $CUDA_VISIBLE_DEVICES,
    else every device CUDA reports (none on a machine without a usable GPU)."""
    explicit = parse_gpus(option)
    if explicit is not None:
        return "--trt-equiv-gpus", explicit
    env = os.environ.get(GPU_ENV)
    if env is not None and env.strip():
        return f"${GPU_ENV}", tuple(i.strip() for i in env.split(",") if i.strip())
    from trt_equiv.runtime import cuda_devices

    return "visible CUDA devices", tuple(str(i) for i in range(len(cuda_devices())))


def assign_gpus(workers: int, option: str) -> list[str]:
    """One GPU id per worker, in worker order; [] when there is nothing to pin (no GPU, or 'none').

    More workers than GPUs is a usage error: two workers sharing a GPU would time each other's kernels.
    """
    source, gpus = visible_gpus(option)
    if not gpus:  # 'none', or no GPU here: workers run unpinned (CPU-only suites parallelise as usual)
        return []
    if workers > len(gpus):
        raise pytest.UsageError(
            f"--trt-equiv-gpus: expected at most one pytest-xdist worker per GPU, got {workers} workers for "
            f"{len(gpus)} GPU(s) {list(gpus)} ({source}); use -n {len(gpus)}, choose GPUs with --trt-equiv-gpus, "
            "or --trt-equiv-gpus none to run without pinning"
        )
    return list(gpus[:workers])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Sequence[object]) -> None:
    """Controller: resolve the GPUs once, before any worker starts, and refuse more workers than GPUs."""
    config.stash[_WORKER_GPUS_KEY] = assign_gpus(len(specs), config.getoption("--trt-equiv-gpus"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """Controller: hand worker ``gwN`` its GPU."""
    gpus = node.config.stash.get(_WORKER_GPUS_KEY, [])  # type: ignore[attr-defined]
    index = int(str(node.workerinput["workerid"]).removeprefix("gw"))  # type: ignore[attr-defined]
    if gpus:
        node.workerinput[WORKER_GPU_KEY] = gpus[index]  # type: ignore[attr-defined]


def pin_this_process(config: pytest.Config) -> None:
    """Worker (or a run without xdist given explicit GPUs): set CUDA_VISIBLE_DEVICES before CUDA starts."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        gpu = workerinput.get(WORKER_GPU_KEY)
    elif not config.getoption("numprocesses", None):  # no xdist workers: pin this process to the first id
        gpu = next(iter(parse_gpus(config.getoption("--trt-equiv-gpus")) or ()), None)
    else:
        return
    if gpu is not None:
        os.environ[GPU_ENV] = str(gpu)
