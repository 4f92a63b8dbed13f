"""The backend interface and the one input-validation helper.

A backend is configured in its constructor (cheap checks only), opened by ``open()`` or on first use
(where the runtime is imported and the model loaded), and runs one model at one precision.
``infer`` is the public method: it validates, splits batches larger than ``max_batch`` (never truncating),
calls the subclass's ``_infer_impl`` per chunk and checks that every input row came back. Subclasses
implement only ``_infer_impl`` (and ``_close_impl`` when they hold resources).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import TracebackType

import numpy as np

from trt_equiv.errors import InputValidationError, TrtEquivError

PRECISIONS = ("fp32", "fp32-strict", "fp16", "int8")


def onnx_precision(precision: str) -> str:
    """The ONNX recipe a precision runs from: "fp32-strict" differs from "fp32" only in TensorRT's TF32 flag."""
    return "fp32" if precision == "fp32-strict" else precision


class NaNInputWarning(UserWarning):
    """An input batch contains NaN or Inf; it is run anyway (a model may legitimately see it)."""


def validate_batch(x: object, sample_shape: Sequence[int | None] | None, *, where: str) -> np.ndarray:
    """Check that ``x`` is a non-empty float32 batch of samples shaped ``sample_shape``.

    ``sample_shape`` excludes the batch dimension; ``None`` entries accept any size, and a ``None``
    ``sample_shape`` accepts any rank >= 1. Returns ``x`` as a C-contiguous array (a copy only when
    needed). Every message says what was expected and what came, prefixed by ``where``.
    """
    if not isinstance(x, np.ndarray):
        raise InputValidationError(f"{where}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise InputValidationError(f"{where}: expected dtype float32, got {x.dtype}")
    if sample_shape is not None:
        want_rank = len(sample_shape) + 1
        if x.ndim != want_rank:
            raise InputValidationError(
                f"{where}: expected rank {want_rank} (batch, {_fmt_shape(sample_shape)}), "
                f"got rank {x.ndim} with shape {x.shape}"
            )
        for got, want in zip(x.shape[1:], sample_shape, strict=True):
            if want is not None and got != want:
                raise InputValidationError(
                    f"{where}: expected per-sample shape ({_fmt_shape(sample_shape)}), got {tuple(x.shape[1:])}"
                )
    elif x.ndim < 1:
        raise InputValidationError(f"{where}: expected a batch (rank >= 1), got a scalar")
    if x.shape[0] == 0:
        raise InputValidationError(f"{where}: expected at least one sample, got an empty batch {x.shape}")
    return np.ascontiguousarray(x)


def report_nonfinite_input(x: np.ndarray, out: np.ndarray, *, where: str) -> None:
    """Warn when NaN/Inf inputs reached the outputs (NaN input is allowed, and reported).

    The input is scanned only when the (small) output has non-finite values: a full scan of every input
    batch costs about 3 % of an ONNX Runtime call at batch 32, more than the harness's 2 % budget, and a
    non-finite value that never reaches an output cannot change an equivalence verdict.
    """
    if np.isfinite(out).all():
        return
    bad_in = int(np.count_nonzero(~np.isfinite(x)))
    bad_out = int(np.count_nonzero(~np.isfinite(out)))
    if bad_in:
        warnings.warn(
            f"{where}: input contains {bad_in} NaN/Inf values ({bad_out} non-finite outputs); running anyway",
            NaNInputWarning,
            stacklevel=3,
        )


def _fmt_shape(shape: Sequence[int | None]) -> str:
    return ", ".join("?" if d is None else str(d) for d in shape)


def chunk_bounds(n: int, max_batch: int | None) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks covering ``range(n)``; the last one may be partial."""
    step = max_batch if max_batch else n
    for start in range(0, n, step):
        yield start, min(start + step, n)


class Backend(ABC):
    """One runtime running one model at one precision."""

    #: runtime family, e.g. "savedmodel", "onnxruntime", "tensorrt", "cpp"
    name: str = "backend"

    def __init__(self, precision: str = "fp32", max_batch: int | None = None) -> None:
        if precision not in PRECISIONS:
            raise InputValidationError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        if max_batch is not None and max_batch < 1:
            raise InputValidationError(f"max_batch: expected a positive integer or None, got {max_batch}")
        self.precision = precision
        self.max_batch = max_batch
        #: per-sample input shape (without batch); None entries are dynamic
        self.sample_shape: tuple[int | None, ...] | None = None
        #: device-side execution time of the last ``infer`` call (all chunks), when the runtime measures it
        self.last_device_time_s: float | None = None
        self._opened = False

    @property
    def label(self) -> str:
        """Short identifier used in reports and test ids, e.g. ``onnxruntime-fp16``."""
        return f"{self.name}-{self.precision}"

    def open(self) -> Backend:
        """Import the runtime and load the model (once); sets ``sample_shape``. Returns self."""
        if not self._opened:
            self._open_impl()
            self._opened = True
        return self

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run ``x`` (float32, batch first); rows come back in input order, all of them."""
        self.open()
        x = validate_batch(x, self.sample_shape, where=self.label)
        n = x.shape[0]
        outs = []
        device_total: float | None = None
        for start, stop in chunk_bounds(n, self.max_batch):
            self.last_device_time_s = None
            out = np.asarray(self._infer_impl(x[start:stop]))
            if self.last_device_time_s is not None:  # summed, so a split batch reports all of its chunks
                device_total = (device_total or 0.0) + self.last_device_time_s
            if out.ndim < 1 or out.shape[0] != stop - start:
                raise TrtEquivError(
                    f"{self.label}: returned {out.shape[0] if out.ndim else 0} rows for a batch of "
                    f"{stop - start} (rows {start}..{stop - 1} of {n}); every input sample must produce one row"
                )
            outs.append(out)
        result = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)
        self.last_device_time_s = device_total
        report_nonfinite_input(x, result, where=self.label)
        return result.astype(np.float32, copy=False)

    @abstractmethod
    def _open_impl(self) -> None:
        """Load the model; set ``self.sample_shape`` (and ``max_batch`` when the runtime bounds it)."""

    @abstractmethod
    def _infer_impl(self, x: np.ndarray) -> np.ndarray:
        """Run one validated chunk of at most ``max_batch`` samples."""

    def _close_impl(self) -> None:
        """Release runtime resources; default: nothing to release."""

    def close(self) -> None:
        if self._opened:
            self._close_impl()
            self._opened = False

    def __enter__(self) -> Backend:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} max_batch={self.max_batch}>"


def infer_in_batches(backend: Backend, x: np.ndarray, batch_size: int | None) -> np.ndarray:
    """Feed ``x`` to ``backend`` as a caller would, ``batch_size`` samples per call (None: one call)."""
    if batch_size is None or batch_size >= len(x):
        return backend.infer(x)
    return np.concatenate([backend.infer(x[s:e]) for s, e in chunk_bounds(len(x), batch_size)], axis=0)
