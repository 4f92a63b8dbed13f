"""Data files: bundled splits, .npz validation, calibration batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_equiv.data import BUNDLED_CALIBRATION, BUNDLED_TEST, Dataset, calibration_batches, load_npz, save_npz
from trt_equiv.errors import InputValidationError


def test_bundled_splits_are_disjoint_and_large_enough() -> None:
    test, calib = load_npz(BUNDLED_TEST), load_npz(BUNDLED_CALIBRATION)
    assert len(test) >= 300 and len(calib) >= 320
    assert test.x.shape[1:] == (32, 32, 3) and test.x.dtype == np.float32
    assert test.x.min() >= 0.0 and test.x.max() <= 1.0
    assert test.y is not None and set(np.unique(test.y)) == set(range(10))
    test_rows = {r.tobytes() for r in test.x}
    assert not any(r.tobytes() in test_rows for r in calib.x), "calibration must never contain test samples"


def test_round_trip(tmp_path: Path) -> None:
    data = Dataset.single(np.random.default_rng(0).random((5, 4, 4, 3), dtype=np.float32), np.arange(5))
    save_npz(tmp_path / "d.npz", data)
    back = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.x, data.x)
    np.testing.assert_array_equal(back.y, data.y)


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((2, 4, 4, 3), np.float32)}, "expected an array named 'x'"),
        ({"x": np.zeros((2, 4, 4, 3), np.float64)}, "expected 'x' of dtype float32, got float64"),
        ({"x": np.zeros((2, 4, 4), np.float32)}, r"expected 'x' of rank 4 \(N, H, W, C\)"),
        ({"x": np.zeros((0, 4, 4, 3), np.float32)}, "expected at least one sample"),
        ({"x": np.zeros((2, 4, 4, 3), np.float32), "y": np.zeros(3, np.int64)}, "expected one label per sample"),
        ({"x": np.zeros((2, 4, 4, 3), np.float32), "y": np.zeros(2, np.float32)}, "expected 'y' as 1-D integers"),
    ],
    ids=["no-x", "float64", "rank", "empty", "label-count", "label-dtype"],
)
def test_bad_data_files(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InputValidationError, match=message):
        load_npz(_write(tmp_path / "bad.npz", **arrays))


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.npz", x=np.zeros((4, 4, 4, 3), np.float32))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(InputValidationError, match="expected a readable .npz archive"):
        load_npz(truncated)
    with pytest.raises(InputValidationError, match="no such file"):
        load_npz(tmp_path / "missing.npz")


def test_object_arrays_are_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputValidationError, match="readable"):
        load_npz(path)


def test_calibration_batches_default_to_320_in_32s() -> None:
    calib = load_npz(BUNDLED_CALIBRATION)
    sizes = [len(b) for b in calibration_batches(calib)]
    assert sizes == [32] * 10
    assert [len(b) for b in calibration_batches(calib.take(70), batch_size=32)] == [32, 32, 6]
