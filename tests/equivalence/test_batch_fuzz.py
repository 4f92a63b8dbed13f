"""Hypothesis fuzzing of batch composition: any batch size, any subset, any order gives the same rows.

Catches runners that drop the last partial batch, mix rows between samples, or depend on padding; the
base class must split batches larger than a backend's maximum rather than truncate them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.equivalence.conftest import REFERENCE
from trt_equiv.backends.base import Backend, onnx_precision
from trt_equiv.compare import TolerancePolicy, assert_equivalent
from trt_equiv.data import Dataset

pytestmark = pytest.mark.equivalence

MAX_FUZZ_BATCH = 64


@st.composite
def batches(draw: st.DrawFn, n: int) -> np.ndarray:
    """Indices of a random batch: size 1..64, a random subset of the data in random order."""
    size = draw(st.integers(min_value=1, max_value=min(MAX_FUZZ_BATCH, n)))
    return np.array(draw(st.permutations(range(n)))[:size])


def test_batch_composition_does_not_change_rows(
    backend: Backend,
    trt_equiv_data: Dataset,
    stage_outputs: Callable[[str], dict[str, np.ndarray]],
    output_kinds: dict[str, str],
    tolerance_policy: TolerancePolicy,
) -> None:
    own = stage_outputs(backend.label)  # the same backend over the whole set
    reference = stage_outputs(REFERENCE)
    # the backend against itself at another batch shape: the policy of a same-recipe link (TensorRT may pick
    # another kernel per batch shape, so its fp32 gets the TF32 allowance)
    same_key = tolerance_policy.key_for(backend.label, f"onnxruntime-{onnx_precision(backend.precision)}")

    @given(batches(len(trt_equiv_data)))
    def check(indices: np.ndarray) -> None:
        out = backend.infer({k: v[indices] for k, v in trt_equiv_data.feeds().items()})
        for name, rows in out.items():
            assert len(rows) == len(indices), f"{backend.label} {name}: {len(rows)} rows for a batch of {len(indices)}"
        own_rows = {k: v[indices] for k, v in own.items()}
        assert_equivalent(own_rows, out, reference_label=f"{backend.label}(whole set)", candidate_label=backend.label,
                          tolerance=tolerance_policy.lookup(same_key), kinds=output_kinds,
                          batch_size=len(indices), stage="batching")  # fmt: skip
        if backend.precision.startswith("fp32"):
            assert_equivalent({k: v[indices] for k, v in reference.items()}, out, reference_label=REFERENCE,
                              candidate_label=backend.label, kinds=output_kinds, policy=tolerance_policy,
                              batch_size=len(indices))  # fmt: skip

    check()
