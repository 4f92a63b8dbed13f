"""Throughput and latency measurement shared by the pytest benchmarks and ``trt-equiv bench``.

pytest-benchmark times the rounds in the benchmark suite; ``measure`` times them here for the CLI. Both
hand the per-round times to ``summarize``, so percentiles, samples/s and the stability verdict are
computed one way everywhere.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: a run whose coefficient of variation exceeds this is reported as unstable
UNSTABLE_CV = 0.01


@dataclass(frozen=True)
class Summary:
    """Per-call latency statistics of one (backend, precision, batch size)."""

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
    cv: float
    unstable: bool
    #: median device-side execution time (CUDA events) when the backend measured it
    device_median_s: float | None = None

    def as_extra_info(self) -> dict[str, object]:
        """Flat, JSON-friendly fields for pytest-benchmark's ``extra_info``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def percentile(times: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation."""
    if not times:
        raise ValueError("percentile: expected at least one timing, got none")
    return float(np.percentile(np.asarray(times, dtype=np.float64), q))


def summarize(times: Sequence[float], batch_size: int, device_times: Sequence[float] = ()) -> Summary:
    """Statistics of per-call wall times (seconds) for calls of ``batch_size`` samples."""
    if not times:
        raise ValueError("summarize: expected at least one timing, got none")
    median = statistics.median(times)
    mean = statistics.fmean(times)
    stdev = statistics.stdev(times) if len(times) > 1 else 0.0
    cv = stdev / mean if mean > 0 else 0.0
    return Summary(
        batch_size=batch_size,
        rounds=len(times),
        median_s=median,
        mean_s=mean,
        stdev_s=stdev,
        p50_s=percentile(times, 50),
        p90_s=percentile(times, 90),
        p99_s=percentile(times, 99),
        min_s=min(times),
        samples_per_s=batch_size / median if median > 0 else float("inf"),
        cv=cv,
        unstable=cv > UNSTABLE_CV,
        device_median_s=statistics.median(device_times) if device_times else None,
    )


def measure(
    fn: Callable[[], object],
    batch_size: int,
    *,
    warmup: int = 3,
    rounds: int = 20,
    device_time: Callable[[], float | None] | None = None,
) -> Summary:
    """Call ``fn`` ``warmup`` times untimed, then ``rounds`` times timed with the host clock.

    ``device_time`` (e.g. ``lambda: backend.last_device_time_s``) is read after each timed call, so GPU
    backends report CUDA-event execution time beside end-to-end host time (copies included).
    """
    for _ in range(warmup):
        fn()
    times, device = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if device_time is not None and (d := device_time()) is not None:
            device.append(d)
    return summarize(times, batch_size, device)


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
    """The file a backend runs: engine, ONNX file or SavedModel directory."""
    for attr in ("engine_path", "onnx_path", "model_dir"):
        value = getattr(backend, attr, None)
        if value is not None:
            return Path(value)
    return None
