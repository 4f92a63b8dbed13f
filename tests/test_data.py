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
        ({"y": np.zeros(2, np.int64)}, "expected one array per model input"),
        ({"x": np.zeros((2, 4, 4, 3), np.float64)}, "input 'x': expected dtype float32 or float16 or int32"),
        ({"x": np.zeros((0, 4, 4, 3), np.float32)}, "expected at least one sample"),
        ({"x": np.zeros((2, 4, 4, 3), np.float32), "y": np.zeros(3, np.int64)}, "expected one sample count"),
        ({"x": np.zeros((2, 4), np.float32), "y": np.array(["a", "b"])}, "integer class labels or float"),
        ({"a": np.zeros((2, 4), np.float32), "b": np.zeros((3, 4), np.float32)}, "one sample count across"),
    ],
    ids=["no-inputs", "float64", "empty", "label-count", "label-dtype", "input-counts"],
)
def test_bad_data_files(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InputValidationError, match=message):
        load_npz(_write(tmp_path / "bad.npz", **arrays))


def test_named_inputs_labels_and_targets_load(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "multi.npz", image=np.zeros((3, 4, 4, 3), np.float32), ids=np.ones((3, 7), np.int32),
        mask=np.ones((3, 7), np.bool_), **{"y:probs": np.array([0, 1, 2]), "y:value": np.zeros((3, 1), np.float32)},
    )  # fmt: skip
    data = load_npz(path)
    assert list(data.inputs) == ["image", "ids", "mask"]
    assert data.labels["probs"].dtype == np.int64 and data.labels["value"].dtype == np.float32
    assert data.y is None and len(data) == 3
    multilabel = load_npz(_write(tmp_path / "ml.npz", x=np.zeros((3, 4), np.float32), y=np.eye(3, 5, dtype=np.int64)))
    assert multilabel.y is not None and multilabel.y.dtype == np.float32  # several 0/1 per sample: targets


def test_bind_names_missing_and_extra_keys_with_the_model_specs(tmp_path: Path) -> None:
    from trt_equiv.backends.base import TensorSpec

    specs = (TensorSpec("image", np.dtype(np.float32), (4, 4, 3)), TensorSpec("ids", np.dtype(np.int32), (None,)))
    data = Dataset({"image": np.zeros((2, 4, 4, 3), np.float32), "tokens": np.zeros((2, 5), np.int32)}, {}, "d.npz")
    with pytest.raises(InputValidationError, match=r"'image' float32 \(batch, 4, 4, 3\), 'ids' int32 \(batch, \?\)"):
        data.bind(specs)
    with pytest.raises(InputValidationError, match=r"missing \['ids'\]; unexpected \['tokens'\]"):
        data.bind(specs)
    wrong = Dataset({"image": np.zeros((2, 4, 4, 3), np.float32), "ids": np.zeros((2, 5), np.int64)}, {}, "d.npz")
    with pytest.raises(InputValidationError, match="input 'ids': expected dtype int32, got int64"):
        wrong.bind(specs)
    single = Dataset.single(np.zeros((2, 4, 4, 3), np.float32)).bind(specs[:1])
    assert list(single.inputs) == ["image"]


def test_malformed_npy_header_is_a_clean_error(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "header.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (2,, }   \n")
    with pytest.raises(InputValidationError, match="member 'x.npy': expected a valid .npy header"):
        load_npz(path)


def test_a_header_claiming_a_huge_array_is_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    import zipfile

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 1000, 1000), }"
    header += " " * (63 - len(header) % 64) + "\n"
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    with pytest.raises(InputValidationError, match=r"claims shape \(100000, 1000, 1000\).*over the"):
        load_npz(path)
    monkeypatch.setenv("TRT_EQUIV_MAX_DATA_BYTES", "1000")
    small = _write(tmp_path / "small.npz", x=np.zeros((10, 100), np.float32))
    with pytest.raises(InputValidationError, match="TRT_EQUIV_MAX_DATA_BYTES"):
        load_npz(small)


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
    with pytest.raises(InputValidationError, match="object arrays"):
        load_npz(path)


def test_calibration_batches_default_to_320_in_32s() -> None:
    calib = load_npz(BUNDLED_CALIBRATION)
    sizes = [len(b["x"]) for b in calibration_batches(calib)]
    assert sizes == [32] * 10
    assert [len(b["x"]) for b in calibration_batches(calib.take(70), batch_size=32)] == [32, 32, 6]
