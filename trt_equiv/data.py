"""Data sets: the bundled fixtures, `.npz` I/O, the CIFAR-10 loader and calibration batches.

A data file is an ``.npz`` with one array per model input, keyed by the input's name (``x`` is accepted for a
single-input model), batch first, of dtype float32, float16, int32, int64 or bool. Labels sit beside them:
``y`` for the model's one classification (or regression) output, ``y:<output>`` when several outputs have
labels; integer labels are class indices, float labels are regression targets. Calibration files hold inputs
only. Files are read without pickle; every member's header is checked, and its size bounded, before any data
is read, so a malformed or hostile file is an ``InputValidationError`` that names the file, the member and
what was expected — never a traceback or an out-of-memory kill.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trt_equiv.backends.base import INPUT_DTYPES, TensorSpec, describe_specs, validate_array
from trt_equiv.errors import InputValidationError

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
BUNDLED_MODEL = FIXTURES_DIR / "savedmodel"
BUNDLED_TEST = FIXTURES_DIR / "data" / "test.npz"
BUNDLED_CALIBRATION = FIXTURES_DIR / "data" / "calibration.npz"

#: calibration defaults (DESIGN.md §5): 320 samples in batches of 32
CALIBRATION_SAMPLES = 320
CALIBRATION_BATCH = 32

#: the key of a single-input model's input in a data file, and of the default labels
SINGLE_INPUT_KEY = "x"
LABELS_KEY = "y"
#: the largest array a data file may claim (decompressed), unless $TRT_EQUIV_MAX_DATA_BYTES says otherwise
DEFAULT_MAX_DATA_BYTES = 4 << 30


def max_data_bytes() -> int:
    value = os.environ.get("TRT_EQUIV_MAX_DATA_BYTES")
    try:
        return int(value) if value else DEFAULT_MAX_DATA_BYTES
    except ValueError as exc:
        raise InputValidationError(f"$TRT_EQUIV_MAX_DATA_BYTES: expected a byte count, got {value!r}") from exc


@dataclass(frozen=True)
class Dataset:
    """Named input arrays (batch first, one batch size) and optional labels per output.

    ``labels`` maps ``""`` to the file's ``y`` (the model's one labelled output) and an output name to
    ``y:<output>``.
    """

    inputs: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if not self.inputs:
            raise InputValidationError(f"{self.source}: expected at least one input array, got none")
        sizes = {name: len(a) for name, a in self.inputs.items()}
        sizes |= {_label_key(name): len(a) for name, a in self.labels.items()}
        if len(set(sizes.values())) != 1:
            raise InputValidationError(f"{self.source}: expected one sample count across arrays, got {sizes}")

    @classmethod
    def single(cls, x: np.ndarray, y: np.ndarray | None = None, source: str = "<memory>") -> Dataset:
        """A data set of one unnamed input ``x`` (bound to the model's input name by ``bind``)."""
        return cls({SINGLE_INPUT_KEY: x}, {} if y is None else {"": y}, source)

    @property
    def x(self) -> np.ndarray:
        """The one input array (for single-input models)."""
        if len(self.inputs) != 1:
            raise InputValidationError(f"{self.source}: has inputs {list(self.inputs)}; name the one you want")
        return next(iter(self.inputs.values()))

    @property
    def y(self) -> np.ndarray | None:
        """The default labels ``y`` (None when the file has none)."""
        return self.labels.get("")

    def __len__(self) -> int:
        return int(len(next(iter(self.inputs.values()))))

    def take(self, n: int | None) -> Dataset:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return self.slice(0, n)

    def slice(self, start: int, stop: int) -> Dataset:
        return Dataset(
            {k: v[start:stop] for k, v in self.inputs.items()},
            {k: v[start:stop] for k, v in self.labels.items()},
            self.source,
        )

    def without_labels(self) -> Dataset:
        return Dataset(self.inputs, {}, self.source)

    def bind(self, specs: Sequence[TensorSpec]) -> Dataset:
        """These arrays as the model's inputs: ``x`` renamed for a single-input model, every input checked.

        Missing and extra keys, dtypes and per-sample shapes are reported against what the model expects,
        before any conversion work starts.
        """
        inputs = dict(self.inputs)
        names = [s.name for s in specs]
        if len(specs) == 1 and list(inputs) == [SINGLE_INPUT_KEY] and names[0] != SINGLE_INPUT_KEY:
            inputs = {names[0]: inputs[SINGLE_INPUT_KEY]}
        missing = [n for n in names if n not in inputs]
        extra = [n for n in inputs if n not in names]
        if missing or extra:
            parts = [f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else ""]
            hint = f" (a single-input model also takes '{SINGLE_INPUT_KEY}')" if len(specs) == 1 else ""
            raise InputValidationError(
                f"data file {self.source}: expected one array per model input, keyed by name: "
                f"{describe_specs(specs)}{hint}; got keys {list(self.inputs)} ({'; '.join(p for p in parts if p)})"
            )
        checked = {
            s.name: validate_array(inputs[s.name], s, where=f"data file {self.source}: input {s.name!r}") for s in specs
        }
        return Dataset(checked, self.labels, self.source)

    def feeds(self) -> dict[str, np.ndarray]:
        return dict(self.inputs)


def _label_key(name: str) -> str:
    return LABELS_KEY if name == "" else f"{LABELS_KEY}:{name}"


def _member_header(archive: zipfile.ZipFile, member: str, path: Path, limit: int) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one ``.npy`` member, read from its header only, with the size bounded."""
    try:
        with archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # ValueError, SyntaxError, tokenize errors, zlib errors...: all "malformed"
        raise InputValidationError(
            f"data file {path}: member {member!r}: expected a valid .npy header, got {type(exc).__name__}: {exc}"
        ) from exc
    if dtype.hasobject:
        raise InputValidationError(f"data file {path}: member {member!r}: object arrays (pickles) are refused")
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > limit:
        raise InputValidationError(
            f"data file {path}: member {member!r} claims shape {shape} {dtype} = {nbytes / 2**30:.1f} GiB, over "
            f"the {limit / 2**30:.1f} GiB limit (set $TRT_EQUIV_MAX_DATA_BYTES to allow more)"
        )
    return tuple(int(d) for d in shape), dtype


def load_npz(path: str | Path, *, labels: bool = True) -> Dataset:
    """Load a data file: inputs by name, labels under ``y`` / ``y:<output>`` (dropped when ``labels=False``)."""
    path = Path(path)
    if not path.is_file():
        raise InputValidationError(f"data file {path}: expected an existing .npz file, got no such file")
    limit = max_data_bytes()
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".npy")]
            for member in members:
                _member_header(archive, member, path, limit)
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except InputValidationError:
        raise
    except Exception as exc:  # BadZipFile, ValueError, OSError, EOFError, zlib.error, ...
        raise InputValidationError(f"data file {path}: expected a readable .npz archive, got {exc}") from exc
    inputs = {k: v for k, v in arrays.items() if k != LABELS_KEY and not k.startswith(LABELS_KEY + ":")}
    label_arrays = {("" if k == LABELS_KEY else k.split(":", 1)[1]): v for k, v in arrays.items() if k not in inputs}
    if not inputs:
        raise InputValidationError(
            f"data file {path}: expected one array per model input ('{SINGLE_INPUT_KEY}' for a single-input "
            f"model) and optional labels '{LABELS_KEY}' / '{LABELS_KEY}:<output>', got {sorted(arrays) or 'none'}"
        )
    for name, x in inputs.items():
        if x.dtype not in INPUT_DTYPES:
            raise InputValidationError(
                f"data file {path}: input {name!r}: expected dtype "
                f"{' or '.join(str(d) for d in INPUT_DTYPES)}, got {x.dtype}"
            )
        if x.ndim < 1 or len(x) == 0:
            raise InputValidationError(
                f"data file {path}: input {name!r}: expected at least one sample, got shape {x.shape}"
            )
    checked_labels = {}
    if labels:
        for name, y in label_arrays.items():
            checked_labels[name] = _check_labels(y, _label_key(name), path)
    sizes = {k: len(v) for k, v in inputs.items()} | {_label_key(k): len(v) for k, v in checked_labels.items()}
    if len(set(sizes.values())) != 1:
        raise InputValidationError(f"data file {path}: expected one sample count across arrays, got {sizes}")
    return Dataset(inputs, checked_labels, str(path))


def _check_labels(y: np.ndarray, key: str, path: Path) -> np.ndarray:
    """Integer class labels (1-D, or (N, 1)) as int64; float targets, or several integers per sample
    (multi-label), as float32 targets."""
    if y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind in "iub":
        y = y.reshape(-1)
    if y.dtype.kind in "iub":
        if y.ndim == 1:
            return y.astype(np.int64)
        # several integers per sample (multi-label 0/1 targets, counts): targets, compared as values
        return y.astype(np.float32)
    if y.dtype.kind == "f":
        if y.ndim < 1:
            raise InputValidationError(f"data file {path}: '{key}': expected one target per sample, got a scalar")
        return y.astype(np.float32)
    raise InputValidationError(
        f"data file {path}: '{key}': expected integer class labels or float regression targets, got {y.dtype}"
    )


def save_npz(path: str | Path, data: Dataset) -> None:
    """Write ``data`` as a compressed ``.npz`` (temp file + rename, so a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    arrays = dict(data.inputs) | {_label_key(k): v for k, v in data.labels.items()}
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def calibration_batches(
    data: Dataset, batch_size: int = CALIBRATION_BATCH, limit: int = CALIBRATION_SAMPLES
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches (every input, by name) of at most ``batch_size`` over the first ``limit`` samples."""
    n = min(len(data), limit)
    for start in range(0, n, batch_size):
        yield {k: v[start : min(start + batch_size, n)] for k, v in data.inputs.items()}


def load_cifar10(split: str = "test") -> Dataset:
    """CIFAR-10 as float32 NHWC in [0, 1] (downloads through Keras; needs internet on first use)."""
    from trt_equiv.runtime import require

    keras = require("tensorflow").keras
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    x, y = (x_test, y_test) if split == "test" else (x_train, y_train)
    return Dataset.single(x.astype(np.float32) / 255.0, y.reshape(-1).astype(np.int64), f"cifar10:{split}")


def digits_32x32() -> Dataset:
    """scikit-learn's bundled handwritten digits (8×8, no download) as CIFAR-shaped 32×32×3 in [0, 1].

    Each pixel is repeated 4×4 and the grey level copied to three channels, so the bundled model has the
    input layout of the CIFAR-10 VGG the original pipeline deployed.
    """
    from trt_equiv.runtime import require

    datasets = require("sklearn.datasets")
    digits = datasets.load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (N, 8, 8) in [0, 1]
    up = np.kron(images, np.ones((1, 4, 4), dtype=np.float32))  # (N, 32, 32)
    x = np.repeat(up[..., None], 3, axis=-1)
    return Dataset.single(np.ascontiguousarray(x), digits.target.astype(np.int64), "sklearn:load_digits")
