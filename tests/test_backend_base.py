"""The backend interface: validation, splitting without truncation, row-count checks."""

from __future__ import annotations

import numpy as np
import pytest

from trt_equiv.backends.base import (
    Backend,
    NaNInputWarning,
    TensorSpec,
    chunk_bounds,
    infer_in_batches,
    validate_batch,
)
from trt_equiv.errors import InputValidationError, TrtEquivError


class AffineBackend(Backend):
    """A CPU stand-in with a bounded batch that records the chunk sizes it was given."""

    name = "affine"

    def __init__(self, max_batch: int | None = 4, drop_last_row: bool = False) -> None:
        super().__init__("fp32", max_batch)
        self.chunks: list[int] = []
        self.drop_last_row = drop_last_row

    def _open_impl(self) -> None:
        self.sample_shape = (2, 3)

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.chunks.append(len(x))
        out = x.reshape(len(x), -1).sum(axis=1, keepdims=True) * 2.0 + 1.0
        return {"y": out[:-1] if self.drop_last_row else out}


def batch(n: int) -> np.ndarray:
    return np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((2, 2, 3), np.float64), "expected dtype float32, got float64"),
        (np.zeros((2, 6), np.float32), "expected rank 3"),
        (np.zeros((2, 3, 2), np.float32), "expected per-sample shape (2, 3), got (3, 2)"),
        (np.zeros((0, 2, 3), np.float32), "expected at least one sample"),
        ([[1.0]], "expected a numpy.ndarray, got list"),
    ],
    ids=["dtype", "rank", "sample-shape", "empty", "not-array"],
)
def test_bad_input_is_rejected_with_expected_and_got(x: object, message: str) -> None:
    with pytest.raises(InputValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AffineBackend().infer(x)  # type: ignore[arg-type]


def test_nan_input_is_run_but_reported() -> None:
    x = batch(3)
    x[1, 0, 0] = np.nan
    with pytest.warns(NaNInputWarning, match="1 NaN/Inf"):
        out = AffineBackend().infer(x)
    assert np.isnan(out[1, 0]) and np.isfinite(out[[0, 2]]).all()


def test_dynamic_dims_accept_any_size() -> None:
    assert validate_batch(np.zeros((1, 5, 3), np.float32), (None, 3), where="t").shape == (1, 5, 3)
    with pytest.raises(InputValidationError):
        validate_batch(np.zeros((1, 5, 4), np.float32), (None, 3), where="t")


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 11])
def test_batches_over_max_are_split_never_truncated(n: int) -> None:
    backend = AffineBackend(max_batch=4)
    x = batch(n)
    out = backend.infer(x)
    assert out.shape == (n, 1)
    np.testing.assert_array_equal(out[:, 0], x.reshape(n, -1).sum(axis=1) * 2 + 1)
    assert sum(backend.chunks) == n and max(backend.chunks) <= 4


def test_a_backend_that_drops_rows_is_caught() -> None:
    with pytest.raises(TrtEquivError, match="returned 3 rows for a batch of 4"):
        AffineBackend(drop_last_row=True).infer(batch(4))


def test_chunk_bounds_cover_everything_once() -> None:
    assert list(chunk_bounds(100, 32)) == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert list(chunk_bounds(5, None)) == [(0, 5)]


def test_infer_in_batches_keeps_order() -> None:
    backend = AffineBackend(max_batch=None)
    x = batch(10)
    np.testing.assert_array_equal(infer_in_batches(backend, x, 3), backend.infer(x))
    assert backend.chunks[:4] == [3, 3, 3, 1]


def test_invalid_precision_and_max_batch() -> None:
    with pytest.raises(InputValidationError, match="precision"):
        Backend.__init__(AffineBackend(), "fp8")
    with pytest.raises(InputValidationError, match="max_batch"):
        AffineBackend(max_batch=0)


def test_context_manager_opens_and_closes() -> None:
    with AffineBackend() as b:
        assert b.sample_shape == (2, 3)
    assert not b._opened


def test_nan_that_never_reaches_an_output_is_not_scanned_for() -> None:
    """The input scan runs only when outputs are non-finite (the harness-overhead budget)."""
    import warnings

    class Clamp(AffineBackend):
        def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"y": np.zeros((len(inputs["x"]), 1), np.float32)}

    x = batch(2)
    x[0, 0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", NaNInputWarning)
        assert np.isfinite(Clamp().infer(x)).all()


def test_device_time_is_summed_over_chunks() -> None:
    class Timed(AffineBackend):
        def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            self.last_device_time_s = 0.5 * len(inputs["x"])
            return super()._infer_impl(inputs)

    backend = Timed(max_batch=4)
    backend.infer(batch(10))  # chunks of 4, 4, 2
    assert backend.last_device_time_s == pytest.approx(5.0)
    assert AffineBackend().infer(batch(2)) is not None and AffineBackend().last_device_time_s is None


class TwoInTwoOut(Backend):
    """A named two-input, two-output stand-in: an image plus a side vector in, a class score and a value out."""

    name = "twoio"

    def __init__(self, max_batch: int | None = 3) -> None:
        super().__init__("fp32", max_batch)

    def _open_impl(self) -> None:
        self.input_specs = (
            TensorSpec("image", np.dtype(np.float32), (2, 2)),
            TensorSpec("ids", np.dtype(np.int32), (None,)),
        )
        self.output_specs = (TensorSpec("score", None, None), TensorSpec("count", None, None))

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        image, ids = inputs["image"], inputs["ids"]
        return {"score": image.reshape(len(image), -1).sum(1, keepdims=True), "count": (ids > 0).sum(1)}


def named_batch(n: int, length: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"image": rng.random((n, 2, 2), dtype=np.float32), "ids": rng.integers(-3, 9, (n, length), dtype=np.int32)}


@pytest.mark.parametrize("n", [1, 3, 7])
def test_named_inputs_and_outputs_are_split_and_kept_in_order(n: int) -> None:
    feed = named_batch(n)
    out = TwoInTwoOut().infer(feed)
    assert list(out) == ["score", "count"]
    np.testing.assert_allclose(out["score"][:, 0], feed["image"].reshape(n, -1).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(out["count"], (feed["ids"] > 0).sum(1))
    assert out["score"].dtype == np.float32 and out["count"].dtype.kind == "i"  # integer outputs stay integer


def test_dynamic_sequence_length_is_accepted_at_two_lengths() -> None:
    backend = TwoInTwoOut()
    assert len(backend.infer(named_batch(4, length=3))["count"]) == 4
    assert len(backend.infer(named_batch(4, length=11))["count"]) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: {"image": f["image"]}, r"missing \['ids'\]"),
        (lambda f: {**f, "mask": f["ids"]}, r"unexpected \['mask'\]"),
        (lambda f: {**f, "ids": f["ids"].astype(np.int64)}, "input 'ids': expected dtype int32, got int64"),
        (lambda f: {**f, "ids": f["ids"][:2]}, "expected one batch size across inputs"),
        (lambda f: {**f, "image": f["image"].reshape(len(f["image"]), 4)}, "input 'image': expected rank 3"),
        (lambda f: f["image"], "mapping name → array"),
    ],
    ids=["missing", "extra", "dtype", "batch-mismatch", "rank", "plain-array"],
)
def test_named_input_errors_say_expected_and_got(change, message: str) -> None:
    with pytest.raises(InputValidationError, match=message):
        TwoInTwoOut().infer(change(named_batch(4)))


def test_plain_array_form_refuses_a_multi_output_model() -> None:
    class OneInTwoOut(TwoInTwoOut):
        def _open_impl(self) -> None:
            super()._open_impl()
            self.input_specs = self.input_specs[:1]

    with pytest.raises(InputValidationError, match="has 2 outputs"):
        OneInTwoOut().infer(np.zeros((2, 2, 2), np.float32))
