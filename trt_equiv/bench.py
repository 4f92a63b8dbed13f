"""Throughput and latency measurement shared by the pytest benchmarks and ``trt-equiv bench``.

How a number is taken (one rule everywhere, stated in every output by ``StabilityRule.describe``):

- warm-up calls, untimed; then one untimed call whose outputs are kept as the *verified* outputs;
- timed rounds of back-to-back calls, each round at least ``round_s`` long; rounds repeat until the
  coefficient of variation (CoV) of the per-round mean call time is at most ``target_cv`` (after at least
  ``min_rounds`` rounds), or until ``max_time_s`` has passed — then the row is marked *unstable*;
- a random sample of the calls made inside the timed loop (``check_rate``, plus the first one) has its
  outputs compared, after the clock stops, with the verified outputs of the same inputs (MLPerf's TEST01
  idea): a timed loop that reuses a buffer or a graph and computes garbage fails with ``BenchmarkError``;
- what is timed: the host clock around ``backend.infer`` (end to end: validation, copies, the runtime call);
  the C++ runner times its own batches (``--timing-json``), so process start and engine load are excluded;
  GPU backends add the device time (CUDA events) beside it, as trtexec separates them;
- harness overhead: ``backend.infer`` against the runtime's own call (ONNX Runtime ``session.run``, TF-Lite
  ``set_tensor``/``invoke``/``get_tensor``, TensorRT ``execute_async_v3`` where the backend exposes
  ``raw_call``) on the same pre-shaped batch, alternating the two, as the median of paired differences.
"""

from __future__ import annotations

import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.errors import BenchmarkError, InputValidationError

#: default stability target: a row whose CoV stays above it when the time budget runs out is unstable
DEFAULT_TARGET_CV = 0.02
#: rows from files that do not say whether they were stable are judged against this CoV
UNSTABLE_CV = DEFAULT_TARGET_CV

TIMED_HOST = "host end-to-end (backend.infer)"
TIMED_RUNNER = "C++ runner's own host clock per batch (copies included; process start and engine load excluded)"


@dataclass(frozen=True)
class StabilityRule:
    """When to stop timing: CoV of round means ≤ ``target_cv`` after ``min_rounds``, or ``max_time_s`` spent."""

    target_cv: float = DEFAULT_TARGET_CV
    max_time_s: float = 10.0
    min_rounds: int = 5
    round_s: float = 0.05
    warmup: int = 3
    #: fraction of the timed calls whose outputs are compared with the verified ones (the first always is)
    check_rate: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if not self.target_cv > 0:
            problems.append(f"target CoV > 0, got {self.target_cv}")
        if not self.max_time_s >= 0:
            problems.append(f"time budget >= 0 s, got {self.max_time_s}")
        if self.min_rounds < 1:
            problems.append(f"at least 1 round, got {self.min_rounds}")
        if self.warmup < 0:
            problems.append(f"warm-up >= 0 calls, got {self.warmup}")
        if not 0 <= self.check_rate <= 1:
            problems.append(f"output check rate in [0, 1], got {self.check_rate}")
        if problems:
            raise InputValidationError("benchmark rule: expected " + "; ".join(problems))

    def describe(self) -> str:
        return (
            f"{self.warmup} warm-up calls; rounds of >= {self.round_s * 1e3:.0f} ms repeat until the CoV of round "
            f"means is <= {self.target_cv:.1%} (at least {self.min_rounds} rounds) or {self.max_time_s:g} s per row "
            f"have passed (then: unstable); outputs of {self.check_rate:.0%} of timed calls (and the first) checked "
            "against the verified outputs"
        )


@dataclass(frozen=True)
class Summary:
    """Latency statistics of one (backend, precision, batch size) and how they were taken."""

    batch_size: int
    rounds: int
    median_s: float
    mean_s: float
    stdev_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    min_s: float
    samples_per_s: float
    #: coefficient of variation of the per-round mean call time
    cv: float
    unstable: bool
    #: median device-side execution time (CUDA events) when the backend measured it
    device_median_s: float | None = None
    calls: int = 0
    target_cv: float = UNSTABLE_CV
    timed: str = TIMED_HOST
    #: timed calls whose outputs were compared with the verified outputs (all matched, or the run failed)
    outputs_checked: int = 0
    elapsed_s: float | None = None

    @property
    def stable(self) -> bool:
        return not self.unstable

    def as_extra_info(self) -> dict[str, object]:
        """Flat, JSON-friendly fields for pytest-benchmark's ``extra_info``."""
        info = {k: v for k, v in asdict(self).items() if v is not None}
        info["stable"] = self.stable
        info["outputs_matched"] = True  # a mismatch raises before a Summary exists
        return info


def percentile(times: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation."""
    if not times:
        raise ValueError("percentile: expected at least one timing, got none")
    return float(np.percentile(np.asarray(times, dtype=np.float64), q))


def coefficient_of_variation(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean > 0 else 0.0


def summarize(
    times: Sequence[float],
    batch_size: int,
    device_times: Sequence[float] = (),
    *,
    round_means: Sequence[float] | None = None,
    target_cv: float = UNSTABLE_CV,
    **how: Any,
) -> Summary:
    """Statistics of per-call times (seconds) for calls of ``batch_size`` samples.

    ``round_means`` (mean call time of each round) decide samples/s and the CoV; without them every call
    is its own round. ``how`` fills the descriptive fields (``timed``, ``outputs_checked``, ``elapsed_s``).
    """
    if not times:
        raise ValueError("summarize: expected at least one timing, got none")
    rounds = list(times) if round_means is None else list(round_means)
    median = statistics.median(rounds)
    cv = coefficient_of_variation(rounds)
    return Summary(
        batch_size=batch_size,
        rounds=len(rounds),
        median_s=median,
        mean_s=statistics.fmean(times),
        stdev_s=statistics.stdev(times) if len(times) > 1 else 0.0,
        p50_s=percentile(times, 50),
        p90_s=percentile(times, 90),
        p99_s=percentile(times, 99),
        min_s=min(times),
        samples_per_s=batch_size / median if median > 0 else float("inf"),
        cv=cv,
        unstable=cv > target_cv,
        device_median_s=statistics.median(device_times) if device_times else None,
        calls=len(times),
        target_cv=target_cv,
        **how,
    )


# ---------------------------------------------------------------------------------------- output checks


class OutputCheck:
    """MLPerf TEST01 for one benchmark: sampled timed outputs must equal the verified outputs.

    The verified outputs are copied when the check is made, so a backend that later overwrites the array
    it returned cannot change them. Same backend, same inputs, same batch shape: the outputs should be
    identical; ``rtol``/``atol`` only absorb reduction-order noise of multi-threaded kernels.
    """

    def __init__(
        self, verified: object, *, rate: float = 0.1, seed: int = 0, rtol: float = 1e-5, atol: float = 1e-6,
        where: str = "benchmark",
    ) -> None:  # fmt: skip
        self.verified = _as_arrays(verified, copy=True)
        self.rate = rate
        self.rtol, self.atol = rtol, atol
        self.where = where
        self.checked = 0
        self._rng = random.Random(seed)

    def wants(self, call_index: int) -> bool:
        """Whether the timed call number ``call_index`` (0-based) is in the sample."""
        return call_index == 0 or self._rng.random() < self.rate

    def verify(self, got: object, call_index: int) -> None:
        """Raise ``BenchmarkError`` when ``got`` differs from the verified outputs."""
        arrays = _as_arrays(got, copy=False)
        self.checked += 1
        if list(arrays) != list(self.verified):
            raise BenchmarkError(
                f"{self.where}: timed call #{call_index} returned outputs {list(arrays)}, the verified call "
                f"returned {list(self.verified)}"
            )
        for name, want in self.verified.items():
            have = arrays[name]
            if have.shape != want.shape:
                raise BenchmarkError(
                    f"{self.where}: timed call #{call_index}: output {name!r} has shape {have.shape}, the verified "
                    f"output of the same inputs has {want.shape}"
                )
            if not np.allclose(have, want, rtol=self.rtol, atol=self.atol, equal_nan=True):
                with np.errstate(invalid="ignore"):
                    diff = np.abs(have.astype(np.float64) - want.astype(np.float64))
                worst = int(np.nanargmax(diff)) if np.isfinite(diff).any() else 0
                raise BenchmarkError(
                    f"{self.where}: timed call #{call_index}: output {name!r} differs from the verified output of "
                    f"the same inputs (max |diff| {np.nanmax(diff):.3g} at flat index {worst}, bounds rtol "
                    f"{self.rtol:g} atol {self.atol:g}); the timed loop computes something else than what was "
                    "verified (a reused buffer or graph?), so its timings are not those of this model"
                )


def _as_arrays(value: object, *, copy: bool) -> dict[str, np.ndarray]:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        items = [("output", value)]
    return {str(k): np.array(v, copy=True) if copy else np.asarray(v) for k, v in items}


# -------------------------------------------------------------------------------------------- measuring


def measure(
    call: Callable[[], object],
    batch_size: int,
    rule: StabilityRule | None = None,
    *,
    check: OutputCheck | None = None,
    device_time: Callable[[], float | None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Summary:
    """Time ``call`` by ``rule``: warm-up, then rounds until stable or out of time; sampled outputs checked.

    ``device_time`` (e.g. ``lambda: backend.last_device_time_s``) is read after each timed call, so GPU
    backends report CUDA-event execution time beside end-to-end host time.
    """
    rule = rule or StabilityRule()
    for _ in range(rule.warmup):
        call()
    start = clock()
    call()
    per_round = max(1, min(10_000, math.ceil(rule.round_s / max(clock() - start, 1e-9))))
    times: list[float] = []
    round_means: list[float] = []
    device: list[float] = []
    begin = clock()
    index = 0
    while True:
        this_round = []
        for _ in range(per_round):
            t0 = clock()
            out = call()
            this_round.append(clock() - t0)
            if check is not None and check.wants(index):
                check.verify(out, index)
            if device_time is not None and (d := device_time()) is not None:
                device.append(d)
            index += 1
        times += this_round
        round_means.append(statistics.fmean(this_round))
        if len(round_means) >= rule.min_rounds and (
            coefficient_of_variation(round_means) <= rule.target_cv or clock() - begin >= rule.max_time_s
        ):
            break
    return summarize(
        times, batch_size, device, round_means=round_means, target_cv=rule.target_cv, timed=TIMED_HOST,
        outputs_checked=check.checked if check else 0, elapsed_s=clock() - begin,
    )  # fmt: skip


def measure_backend(
    backend: Any, inputs: np.ndarray | Mapping[str, np.ndarray], rule: StabilityRule | None = None, *, seed: int = 0
) -> Summary:
    """One benchmark row for an opened backend on one batch, by the rule; the C++ runner times itself."""
    rule = rule or StabilityRule()
    if getattr(backend, "name", "") == "cpp":
        return measure_runner(backend, inputs, rule)
    batch = _batch_of(inputs)
    verified = backend.infer(inputs)  # untimed: the outputs every sampled timed call must reproduce
    check = OutputCheck(verified, rate=rule.check_rate, seed=seed, where=f"{backend.label} batch {batch}")
    device = (lambda: backend.last_device_time_s) if hasattr(backend, "last_device_time_s") else None
    summary = measure(lambda: backend.infer(inputs), batch, rule, check=check, device_time=device)
    if summary.device_median_s is not None:
        how = "host end-to-end (backend.infer, copies included) and device (CUDA events)"
        summary = _replace(summary, timed=how)
    return summary


def measure_runner(backend: Any, inputs: np.ndarray | Mapping[str, np.ndarray], rule: StabilityRule) -> Summary:
    """C++ runner rows from the runner's own timing JSON: each round is one runner call of K timed batches.

    The runner runs with ``--batch-size`` = the batch, so each timed batch is one inference call; its output
    (from the last timed pass) is compared with the verified output of an untimed call every round.
    """
    batch = _batch_of(inputs)
    saved = (backend.batch_size, backend.warmup, backend.iterations)
    where = f"{backend.label} batch {batch}"
    try:
        backend.batch_size, backend.warmup, backend.iterations = batch, 0, 1
        check = OutputCheck(backend.infer(inputs), rate=1.0, where=where)
        latency = _runner_batches(backend, where)[0]
        backend.warmup = rule.warmup
        backend.iterations = max(1, min(10_000, math.ceil(rule.round_s / max(latency, 1e-9))))
        times: list[float] = []
        round_means: list[float] = []
        device: list[float] = []
        begin = time.perf_counter()
        while True:
            out = backend.infer(inputs)
            check.verify(out, len(times))
            this_round = _runner_batches(backend, where)
            times += this_round
            round_means.append(statistics.fmean(this_round))
            compute = (backend.last_timing or {}).get("compute_ms")
            if isinstance(compute, dict) and compute.get("median") is not None:
                device.append(float(compute["median"]) / 1000.0)
            if len(round_means) >= rule.min_rounds and (
                coefficient_of_variation(round_means) <= rule.target_cv
                or time.perf_counter() - begin >= rule.max_time_s
            ):
                break
    finally:
        backend.batch_size, backend.warmup, backend.iterations = saved
    return summarize(
        times, batch, device, round_means=round_means, target_cv=rule.target_cv, timed=TIMED_RUNNER,
        outputs_checked=check.checked, elapsed_s=time.perf_counter() - begin,
    )  # fmt: skip


def _runner_batches(backend: Any, where: str) -> list[float]:
    """Per-batch latencies (s) of the runner's last call, from its timing JSON."""
    timing = backend.last_timing or {}
    if timing.get("batches_per_pass") != 1:
        raise BenchmarkError(f"{where}: expected one runner batch per pass, got {timing.get('batches_per_pass')}")
    latencies = timing.get("batch_latencies_ms")
    if not isinstance(latencies, list) or not latencies:
        raise BenchmarkError(f"{where}: the runner's timing JSON has no batch_latencies_ms")
    return [float(v) / 1000.0 for v in latencies]


def _batch_of(inputs: np.ndarray | Mapping[str, np.ndarray]) -> int:
    return int(len(inputs) if isinstance(inputs, np.ndarray) else len(next(iter(inputs.values()))))


def _replace(summary: Summary, **changes: Any) -> Summary:
    from dataclasses import replace

    return replace(summary, **changes)


# ------------------------------------------------------------------------------------- harness overhead

#: what each runtime's own call is, as named in tables
RAW_CALL_NAMES = {
    "onnxruntime": "session.run",
    "tflite": "set_tensor+invoke+get_tensor",
    "savedmodel": "signature function",
    "tensorrt": "execute_async_v3",
}


@dataclass(frozen=True)
class Overhead:
    """``backend.infer`` against the runtime's own call on the same batch."""

    raw_call: str
    raw_samples_per_s: float
    harness_samples_per_s: float
    #: median of paired (infer − raw) differences over the median raw time
    overhead: float
    pairs: int


def raw_runtime_call(backend: Any, inputs: np.ndarray | Mapping[str, np.ndarray]) -> Callable[[], object] | None:
    """The runtime's own call for this batch (inputs validated and named once, outside it), or None."""
    from trt_equiv.backends.base import validate_inputs

    if not hasattr(backend, "raw_call") and getattr(backend, "name", None) not in ("onnxruntime", "savedmodel"):
        return None
    backend.open()
    feed = validate_inputs(inputs, backend.input_specs, where=backend.label)
    if hasattr(backend, "raw_call"):
        return backend.raw_call(feed)
    if backend.name == "onnxruntime" and getattr(backend, "session", None) is not None:
        session, names = backend.session, backend.output_names
        return lambda: session.run(names, feed)
    if backend.name == "savedmodel" and getattr(backend, "_fn", None) is not None:
        fn, tf = backend._fn, backend._tf
        return lambda: {k: v.numpy() for k, v in fn(**{n: tf.constant(x) for n, x in feed.items()}).items()}
    return None


def harness_overhead(
    backend: Any, inputs: np.ndarray | Mapping[str, np.ndarray], *, pairs: int = 200, max_time_s: float = 5.0
) -> Overhead | None:
    """Alternate ``backend.infer`` and the raw call; None when the backend has no raw call to compare with.

    Pairing each wrapped call with the raw call just before it cancels drift in machine load.
    """
    raw = raw_runtime_call(backend, inputs)
    if raw is None:
        return None
    batch = _batch_of(inputs)
    for _ in range(3):
        raw()
        backend.infer(inputs)
    raw_t: list[float] = []
    wrapped_t: list[float] = []
    begin = time.perf_counter()
    while len(raw_t) < pairs and (len(raw_t) < 5 or time.perf_counter() - begin < max_time_s):
        t0 = time.perf_counter()
        raw()
        t1 = time.perf_counter()
        backend.infer(inputs)
        t2 = time.perf_counter()
        raw_t.append(t1 - t0)
        wrapped_t.append(t2 - t1)
    raw_median = statistics.median(raw_t)
    overhead = statistics.median(w - r for w, r in zip(wrapped_t, raw_t, strict=True)) / raw_median
    return Overhead(
        raw_call=RAW_CALL_NAMES.get(backend.name, "raw call"),
        raw_samples_per_s=batch / raw_median,
        harness_samples_per_s=batch / statistics.median(wrapped_t),
        overhead=overhead,
        pairs=len(raw_t),
    )


# ----------------------------------------------------------------------------------------------- misc


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(result, seconds) of one call: model load and engine build times."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def artefact_size(path: str | os.PathLike[str] | None) -> int | None:
    """Bytes of a model file or directory (SavedModel), None when there is none."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else None


def backend_artefact(backend: object) -> Path | None:
    """The file a backend runs: engine, ONNX file, TF-Lite file or SavedModel directory."""
    for attr in ("engine_path", "onnx_path", "model_path", "model_dir"):
        value = getattr(backend, attr, None)
        if value is not None:
            return Path(value)
    return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, object]:
    """What explains a throughput figure: CPU, cores, GPU, driver, CUDA, and the runtimes' versions."""
    from trt_equiv.runtime import cuda_device, is_available, package_version

    info: dict[str, object] = {"node": platform.node(), "cpu": cpu_name(), "cpu_count": os.cpu_count()}
    device = cuda_device()
    info["gpu"] = f"{device[0]} (sm_{device[1][0]}{device[1][1]})" if device else "none"
    if device and is_available("cuda.bindings"):
        from cuda.bindings import runtime as cudart

        info["cuda_driver"] = int(cudart.cudaDriverGetVersion()[1])
        info["cuda_runtime"] = int(cudart.cudaRuntimeGetVersion()[1])
    for dist in ("tensorrt", "tensorrt-rtx-cu13-bindings", "onnxruntime", "onnxruntime-gpu", "tensorflow-cpu",
                 "tensorflow", "ai-edge-litert", "onnx"):  # fmt: skip
        version = package_version(dist)
        if version != "none":
            info[dist] = version
    return info


def machine_label(info: Mapping[str, object]) -> str:
    """A short name for a machine in cross-machine tables: GPU, driver, TensorRT; the CPU when no GPU."""
    gpu = str(info.get("gpu") or "none")
    if gpu != "none":
        parts = [gpu]
        if info.get("cuda_driver"):
            parts.append(f"driver {info['cuda_driver']}")
        trt = info.get("tensorrt") or info.get("tensorrt-rtx-cu13-bindings")
        if trt:
            parts.append(f"TensorRT {trt}")
        return ", ".join(parts)
    cpu = str(info.get("cpu") or info.get("cpu_model") or info.get("processor") or "unknown CPU")
    cores = info.get("cpu_count")
    return f"{cpu} ({cores} cores)" if cores else cpu
