"""Every candidate backend × precision × batch size against the SavedModel and its upstream stage."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.equivalence.conftest import REFERENCE, upstream_of
from trt_equiv.backends.base import Backend, infer_in_batches
from trt_equiv.compare import CLASS_KINDS, TolerancePolicy, assert_equivalent, blame_stage, compute_metrics
from trt_equiv.data import Dataset

pytestmark = pytest.mark.equivalence

#: measured on the bundled model (README): the SavedModel's test accuracy is 0.9639
BUNDLED_ACCURACY_FLOOR = 0.90


Outputs = dict[str, np.ndarray]


def test_matches_savedmodel(
    backend: Backend,
    batch_size: int | None,
    trt_equiv_data: Dataset,
    reference_outputs: Outputs,
    output_labels: Outputs,
    output_kinds: dict[str, str],
    tolerance_policy: TolerancePolicy,
) -> None:
    """Every output, by name: task-level for reduced precision, tight for fp32; and accuracy parity on every
    labelled class output (not at chance, the bundled model's measured figure held, within the quality gate)."""
    outputs = infer_in_batches(backend, trt_equiv_data.feeds(), batch_size)
    assert_equivalent(reference_outputs, outputs, reference_label=REFERENCE, candidate_label=backend.label,
                      labels=output_labels, kinds=output_kinds, policy=tolerance_policy,
                      batch_size=batch_size)  # fmt: skip
    classified = {n: y for n, y in output_labels.items() if output_kinds[n] in CLASS_KINDS}
    for name, y in classified.items():
        reference, candidate = reference_outputs[name], outputs[name]
        reference_accuracy = float(np.mean(reference.argmax(1) == y))
        candidate_accuracy = float(np.mean(candidate.argmax(1) == y))
        classes = reference.shape[1]
        assert candidate_accuracy > 1.5 / classes, (
            f"{backend.label} {name}: accuracy {candidate_accuracy:.4f} at chance"
        )
        if trt_equiv_data.source.endswith("fixtures/data/test.npz"):
            assert reference_accuracy >= BUNDLED_ACCURACY_FLOOR, f"bundled SavedModel accuracy {reference_accuracy:.4f}"
        key = tolerance_policy.key_for(backend.label, REFERENCE)
        m = compute_metrics(reference, candidate, y, kind=output_kinds[name])
        ratio = tolerance_policy.lookup(key, output_kinds[name], name).accuracy_ratio
        assert m.accuracy_ratio is not None and (ratio is None or m.accuracy_ratio >= ratio), (
            f"{backend.label} {name}: accuracy {candidate_accuracy:.4f} vs SavedModel {reference_accuracy:.4f}; "
            f"ratio with sampling allowance {m.accuracy_ratio:.4f} < {ratio} (policy {key!r})"
        )


def test_matches_upstream_stage(
    backend: Backend,
    trt_equiv_data: Dataset,
    stage_outputs: Callable[[str], Outputs],
    output_labels: Outputs,
    output_kinds: dict[str, str],
    tolerance_policy: TolerancePolicy,
) -> None:
    """One link of the blame chain, so a failure names the stage that broke."""
    upstream = upstream_of(backend)
    outputs = backend.infer(trt_equiv_data.feeds())
    assert_equivalent(stage_outputs(upstream), outputs, reference_label=upstream, candidate_label=backend.label,
                      labels=output_labels, kinds=output_kinds, policy=tolerance_policy,
                      stage=blame_stage(upstream, backend.label))  # fmt: skip
