"""Every candidate backend × precision × batch size against the SavedModel and its upstream stage."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.equivalence.conftest import REFERENCE, upstream_of
from trt_equiv.backends.base import Backend, infer_in_batches
from trt_equiv.compare import TolerancePolicy, assert_equivalent, blame_stage
from trt_equiv.data import Dataset

pytestmark = pytest.mark.equivalence

#: measured on the bundled model (README): the SavedModel's test accuracy is 0.9639
BUNDLED_ACCURACY_FLOOR = 0.90


def test_matches_savedmodel(
    backend: Backend,
    batch_size: int | None,
    trt_equiv_data: Dataset,
    reference_outputs: np.ndarray,
    tolerance_policy: TolerancePolicy,
) -> None:
    """Task-level for reduced precision, tight for fp32: the deployed model still gives the same answers."""
    outputs = infer_in_batches(backend, trt_equiv_data.x, batch_size)
    assert_equivalent(reference_outputs, outputs, reference_label=REFERENCE, candidate_label=backend.label,
                      labels=trt_equiv_data.y, policy=tolerance_policy, batch_size=batch_size)  # fmt: skip


def test_matches_upstream_stage(
    backend: Backend,
    trt_equiv_data: Dataset,
    stage_outputs: Callable[[str], np.ndarray],
    tolerance_policy: TolerancePolicy,
) -> None:
    """One link of the blame chain, so a failure names the stage that broke."""
    upstream = upstream_of(backend)
    outputs = backend.infer(trt_equiv_data.x)
    assert_equivalent(stage_outputs(upstream), outputs, reference_label=upstream, candidate_label=backend.label,
                      labels=trt_equiv_data.y, policy=tolerance_policy,
                      stage=blame_stage(upstream, backend.label))  # fmt: skip


def test_accuracy_parity(
    backend: Backend, trt_equiv_data: Dataset, reference_outputs: np.ndarray, tolerance_policy: TolerancePolicy
) -> None:
    """Accuracy against the labels: not at chance, not below the measured figure, and the same as the reference."""
    if trt_equiv_data.y is None:
        pytest.skip("the data file has no labels 'y': accuracy parity needs them (missing labels)")
    assert reference_outputs.argmax(1).shape == trt_equiv_data.y.shape
    reference_accuracy = float(np.mean(reference_outputs.argmax(1) == trt_equiv_data.y))
    candidate_accuracy = float(np.mean(backend.infer(trt_equiv_data.x).argmax(1) == trt_equiv_data.y))
    classes = reference_outputs.shape[1]
    assert candidate_accuracy > 1.5 / classes, f"{backend.label}: accuracy {candidate_accuracy:.4f} is at chance"
    if trt_equiv_data.source.endswith("fixtures/data/test.npz"):
        assert reference_accuracy >= BUNDLED_ACCURACY_FLOOR, f"bundled SavedModel accuracy {reference_accuracy:.4f}"
    key = tolerance_policy.key_for(backend.label, REFERENCE)
    allowed_drop = tolerance_policy.lookup(key).accuracy_drop or 0.0
    assert reference_accuracy - candidate_accuracy <= allowed_drop + 1e-12, (
        f"{backend.label}: accuracy {candidate_accuracy:.4f} vs SavedModel {reference_accuracy:.4f}, "
        f"allowed drop {allowed_drop} (policy {key!r})"
    )
