"""Data sets: the bundled fixtures, `.npz` I/O, the CIFAR-10 loader and calibration batches.

Data files are ``.npz`` with ``x`` float32 (N, H, W, C) in the model's input range and optional ``y``
integer labels. They are loaded without pickle, and every problem (missing key, wrong dtype, truncated
file) is an InputValidationError that names the file and what was expected.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trt_equiv.errors import InputValidationError

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
BUNDLED_MODEL = FIXTURES_DIR / "savedmodel"
BUNDLED_TEST = FIXTURES_DIR / "data" / "test.npz"
BUNDLED_CALIBRATION = FIXTURES_DIR / "data" / "calibration.npz"

#: calibration defaults (DESIGN.md §5): 320 samples in batches of 32
CALIBRATION_SAMPLES = 320
CALIBRATION_BATCH = 32


@dataclass(frozen=True)
class Dataset:
    """Samples ``x`` (float32, batch first) and optional integer labels ``y``."""

    x: np.ndarray
    y: np.ndarray | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise InputValidationError(
                f"{self.source}: expected one label per sample ({len(self.x)}), got {len(self.y)} labels"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, n: int | None) -> Dataset:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return Dataset(self.x[:n], None if self.y is None else self.y[:n], self.source)


def load_npz(path: str | Path) -> Dataset:
    """Load ``x`` (and ``y`` when present) from an ``.npz`` data file, validating both."""
    path = Path(path)
    if not path.is_file():
        raise InputValidationError(f"data file {path}: expected an existing .npz file, got no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if "x" not in keys:
                raise InputValidationError(
                    f"data file {path}: expected an array named 'x' (and optional 'y'), got {sorted(keys) or 'none'}"
                )
            x = npz["x"]
            y = npz["y"] if "y" in keys else None
    except InputValidationError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise InputValidationError(f"data file {path}: expected a readable .npz archive, got {exc}") from exc
    if x.dtype != np.float32:
        raise InputValidationError(f"data file {path}: expected 'x' of dtype float32, got {x.dtype}")
    if x.ndim != 4:
        raise InputValidationError(f"data file {path}: expected 'x' of rank 4 (N, H, W, C), got shape {x.shape}")
    if len(x) == 0:
        raise InputValidationError(f"data file {path}: expected at least one sample in 'x', got none")
    if y is not None:
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
            raise InputValidationError(f"data file {path}: expected 'y' as 1-D integers, got {y.dtype} {y.shape}")
        y = y.astype(np.int64)
    return Dataset(x, y, str(path))


def save_npz(path: str | Path, data: Dataset) -> None:
    """Write ``data`` as a compressed ``.npz`` (temp file + rename, so a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    if data.y is None:
        np.savez_compressed(tmp, x=data.x)
    else:
        np.savez_compressed(tmp, x=data.x, y=data.y)
    tmp.replace(path)


def calibration_batches(
    data: Dataset, batch_size: int = CALIBRATION_BATCH, limit: int = CALIBRATION_SAMPLES
) -> Iterator[np.ndarray]:
    """Consecutive batches of at most ``batch_size`` over the first ``limit`` calibration samples."""
    x = data.x[:limit]
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def load_cifar10(split: str = "test") -> Dataset:
    """CIFAR-10 as float32 NHWC in [0, 1] (downloads through Keras; needs internet on first use)."""
    from trt_equiv.runtime import require

    keras = require("tensorflow").keras
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    x, y = (x_test, y_test) if split == "test" else (x_train, y_train)
    return Dataset((x.astype(np.float32) / 255.0), y.reshape(-1).astype(np.int64), f"cifar10:{split}")


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
    return Dataset(np.ascontiguousarray(x), digits.target.astype(np.int64), "sklearn:load_digits")
