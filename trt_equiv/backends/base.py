"""The backend interface and the one input-validation helper.

A backend is configured in its constructor (cheap checks only), opened by ``open()`` or on first use
(where the runtime is imported and the model loaded), and runs one model at one precision. Tensors are
identified by name end to end: ``open()`` sets ``input_specs`` / ``output_specs`` from the model itself, and
``infer`` takes a mapping name → array and returns one (a single-input, single-output model also takes and
returns a plain array). ``infer`` validates every input (``validate_inputs``), splits batches larger than
``max_batch`` (never truncating), calls the subclass's ``_infer_impl`` per chunk and checks that every input
row came back for every output. Subclasses implement only ``_open_impl`` and ``_infer_impl`` (and
``_close_impl`` when they hold resources).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import overload

import numpy as np

from trt_equiv.errors import InputValidationError, TrtEquivError

PRECISIONS = ("fp32", "fp32-strict", "fp16", "int8")

#: dtypes a model input may have (DESIGN.md §4): images and features, token ids, masks
INPUT_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.bool_))

#: a batch of named tensors, every array batch-first
Tensors = Mapping[str, np.ndarray]


def onnx_precision(precision: str) -> str:
    """The ONNX recipe a precision runs from: "fp32-strict" differs from "fp32" only in TensorRT's TF32 flag."""
    return "fp32" if precision == "fp32-strict" else precision


class NaNInputWarning(UserWarning):
    """An input batch contains NaN or Inf; it is run anyway (a model may legitimately see it)."""


@dataclass(frozen=True)
class TensorSpec:
    """One named model input or output: dtype and per-sample shape (batch excluded; None = dynamic)."""

    name: str
    dtype: np.dtype | None
    #: per-sample shape; None for an output whose shape the runtime does not declare
    shape: tuple[int | None, ...] | None

    def describe(self) -> str:
        dtype = "any dtype" if self.dtype is None else str(self.dtype)
        shape = "any shape" if self.shape is None else f"(batch, {_fmt_shape(self.shape)})".replace(", )", ")")
        return f"{self.name!r} {dtype} {shape}"


def describe_specs(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(s.describe() for s in specs)


def validate_inputs(
    inputs: Mapping[str, object] | np.ndarray, specs: Sequence[TensorSpec] | None, *, where: str
) -> dict[str, np.ndarray]:
    """Check a batch of named inputs against the model's ``specs``; return them C-contiguous, in spec order.

    Checks, in this order: the names (missing and extra ones listed with what the model expects), then per
    input the type, dtype (one of ``INPUT_DTYPES``, equal to the model's), rank and per-sample shape (``None``
    dimensions accept any size), a non-empty batch, and one batch size across all inputs. A plain array is
    accepted for a single-input model. ``specs=None`` (not known yet) checks types and batch sizes only.
    Every message says what was expected and what came, prefixed by ``where``.
    """
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, Mapping):
        if specs is not None and len(specs) != 1:
            raise InputValidationError(
                f"{where}: expected a mapping name → array for the model's {len(specs)} inputs "
                f"({describe_specs(specs)}), got a single {type(inputs).__name__}"
            )
        name = specs[0].name if specs else "x"
        inputs = {name: inputs}
    if specs is not None:
        want = [s.name for s in specs]
        missing = [n for n in want if n not in inputs]
        extra = [n for n in inputs if n not in want]
        if missing or extra:
            detail = "; ".join(
                part
                for part in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "")
                if part
            )
            raise InputValidationError(f"{where}: expected inputs {describe_specs(specs)}, got {detail}")
    spec_of = {s.name: s for s in specs} if specs is not None else {}
    order = [s.name for s in specs] if specs is not None else list(inputs)
    out: dict[str, np.ndarray] = {}
    for name in order:
        x = inputs[name]
        label = f"{where}: input {name!r}" if specs is None or len(order) > 1 else where
        out[name] = validate_array(x, spec_of.get(name), where=label)
    sizes = {name: x.shape[0] for name, x in out.items()}
    if len(set(sizes.values())) > 1:
        raise InputValidationError(f"{where}: expected one batch size across inputs, got {sizes}")
    return out


def validate_array(x: object, spec: TensorSpec | None, *, where: str) -> np.ndarray:
    """One input array against its spec (see ``validate_inputs``)."""
    if not isinstance(x, np.ndarray):
        raise InputValidationError(f"{where}: expected a numpy.ndarray, got {type(x).__name__}")
    if spec is not None and spec.dtype is not None and x.dtype != spec.dtype:
        raise InputValidationError(f"{where}: expected dtype {spec.dtype}, got {x.dtype}")
    if x.dtype not in INPUT_DTYPES:
        raise InputValidationError(
            f"{where}: expected dtype {' or '.join(str(d) for d in INPUT_DTYPES)}, got {x.dtype}"
        )
    if spec is not None and spec.shape is not None:
        sample_shape = spec.shape
        want_rank = len(sample_shape) + 1
        if x.ndim != want_rank:
            shown = f"(batch, {_fmt_shape(sample_shape)})" if sample_shape else "(batch,)"
            raise InputValidationError(
                f"{where}: expected rank {want_rank} {shown}, got rank {x.ndim} with shape {x.shape}"
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


def validate_batch(x: object, sample_shape: Sequence[int | None] | None, *, where: str) -> np.ndarray:
    """A float32 batch of one unnamed input (the single-input form of ``validate_inputs``)."""
    spec = TensorSpec("x", np.dtype(np.float32), None if sample_shape is None else tuple(sample_shape))
    return validate_array(x, spec, where=where)


def report_nonfinite_input(inputs: Tensors, outputs: Tensors, *, where: str) -> None:
    """Warn when NaN/Inf inputs reached the outputs (NaN input is allowed, and reported).

    The inputs are scanned only when a (small) output has non-finite values: a full scan of every input
    batch costs about 3 % of an ONNX Runtime call at batch 32, more than the harness's 2 % budget, and a
    non-finite value that never reaches an output cannot change an equivalence verdict.
    """
    if all(np.isfinite(o).all() for o in outputs.values() if o.dtype.kind == "f"):
        return
    bad_in = sum(int(np.count_nonzero(~np.isfinite(x))) for x in inputs.values() if x.dtype.kind == "f")
    bad_out = sum(int(np.count_nonzero(~np.isfinite(o))) for o in outputs.values() if o.dtype.kind == "f")
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


def batch_size_of(inputs: Tensors) -> int:
    return int(next(iter(inputs.values())).shape[0])


def slice_tensors(tensors: Tensors, start: int, stop: int) -> dict[str, np.ndarray]:
    return {name: x[start:stop] for name, x in tensors.items()}


def concat_tensors(parts: Sequence[Tensors]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


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
        #: the model's inputs and outputs, in the model's order; set by ``_open_impl``
        self.input_specs: tuple[TensorSpec, ...] | None = None
        self.output_specs: tuple[TensorSpec, ...] | None = None
        #: device-side execution time of the last ``infer`` call (all chunks), when the runtime measures it
        self.last_device_time_s: float | None = None
        self._opened = False

    @property
    def label(self) -> str:
        """Short identifier used in reports and test ids, e.g. ``onnxruntime-fp16``."""
        return f"{self.name}-{self.precision}"

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.input_specs or ()]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.output_specs or ()]

    @property
    def sample_shape(self) -> tuple[int | None, ...] | None:
        """Per-sample shape of the single input (None when unknown or when the model has several inputs)."""
        if self.input_specs is None or len(self.input_specs) != 1:
            return None
        return self.input_specs[0].shape

    @sample_shape.setter
    def sample_shape(self, shape: Sequence[int | None] | None) -> None:
        """Declare a single float32 input of this per-sample shape (the one-array form of a model)."""
        name = self.input_specs[0].name if self.input_specs and len(self.input_specs) == 1 else "x"
        self.input_specs = (TensorSpec(name, np.dtype(np.float32), None if shape is None else tuple(shape)),)

    def open(self) -> Backend:
        """Import the runtime and load the model (once); sets the input and output specs. Returns self."""
        if not self._opened:
            self._open_impl()
            self._opened = True
        return self

    @overload
    def infer(self, inputs: np.ndarray) -> np.ndarray: ...
    @overload
    def infer(self, inputs: Tensors) -> dict[str, np.ndarray]: ...

    def infer(self, inputs: np.ndarray | Tensors) -> np.ndarray | dict[str, np.ndarray]:
        """Run a batch; rows come back in input order, all of them, for every output.

        A mapping name → array returns a dict name → array (every output, float outputs as float32). A plain
        array is the single-input, single-output form and returns a plain array.
        """
        self.open()
        plain = isinstance(inputs, np.ndarray)
        if plain and self.output_specs is not None and len(self.output_specs) != 1:
            raise InputValidationError(
                f"{self.label}: the model has {len(self.output_specs)} outputs ({', '.join(self.output_names)}); "
                "pass the inputs as a mapping name → array to get every output by name"
            )
        feed = validate_inputs(inputs, self.input_specs, where=self.label)
        outputs = self.run(feed)
        return next(iter(outputs.values())) if plain else outputs

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``infer`` on inputs already validated by ``validate_inputs``: split, run, check rows, convert."""
        n = batch_size_of(feed)
        parts = []
        device_total: float | None = None
        for start, stop in chunk_bounds(n, self.max_batch):
            self.last_device_time_s = None
            out = self._infer_impl(slice_tensors(feed, start, stop))
            if self.last_device_time_s is not None:  # summed, so a split batch reports all of its chunks
                device_total = (device_total or 0.0) + self.last_device_time_s
            parts.append(self._check_rows(out, stop - start, start, n))
        result = concat_tensors(parts)
        self.last_device_time_s = device_total
        report_nonfinite_input(feed, result, where=self.label)
        return result

    def _check_rows(self, out: Mapping[str, object], rows: int, start: int, n: int) -> dict[str, np.ndarray]:
        """Every output has one row per input sample; float outputs become float32."""
        if self.output_specs is not None and list(out) != self.output_names:
            raise TrtEquivError(f"{self.label}: returned outputs {list(out)}, expected {self.output_names}")
        checked = {}
        for name, value in out.items():
            arr = np.asarray(value)
            if arr.ndim < 1 or arr.shape[0] != rows:
                raise TrtEquivError(
                    f"{self.label}: output {name!r} returned {arr.shape[0] if arr.ndim else 0} rows for a batch of "
                    f"{rows} (rows {start}..{start + rows - 1} of {n}); every input sample must produce one row"
                )
            checked[name] = arr.astype(np.float32, copy=False) if arr.dtype.kind == "f" else arr
        return checked

    @abstractmethod
    def _open_impl(self) -> None:
        """Load the model; set ``input_specs`` / ``output_specs`` (and ``max_batch`` when the runtime bounds it)."""

    @abstractmethod
    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one validated chunk of at most ``max_batch`` samples; return every output by name."""

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


@overload
def infer_in_batches(backend: Backend, inputs: np.ndarray, batch_size: int | None) -> np.ndarray: ...
@overload
def infer_in_batches(backend: Backend, inputs: Tensors, batch_size: int | None) -> dict[str, np.ndarray]: ...


def infer_in_batches(
    backend: Backend, inputs: np.ndarray | Tensors, batch_size: int | None
) -> np.ndarray | dict[str, np.ndarray]:
    """Feed ``inputs`` to ``backend`` as a caller would, ``batch_size`` samples per call (None: one call)."""
    if isinstance(inputs, np.ndarray):
        n = len(inputs)
        if batch_size is None or batch_size >= n:
            return backend.infer(inputs)
        return np.concatenate([backend.infer(inputs[s:e]) for s, e in chunk_bounds(n, batch_size)], axis=0)
    n = batch_size_of(inputs)
    if batch_size is None or batch_size >= n:
        return backend.infer(inputs)
    return concat_tensors([backend.infer(slice_tensors(inputs, s, e)) for s, e in chunk_bounds(n, batch_size)])
