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
    stage_outputs: Callable[[str], np.ndarray],
    tolerance_policy: TolerancePolicy,
) -> None:
    own = stage_outputs(backend.label)  # the same backend over the whole set
    reference = stage_outputs(REFERENCE)
    # the backend against itself at another batch shape: the policy of a same-recipe link (TensorRT may pick
    # another kernel per batch shape, so its fp32 gets the TF32 allowance)
    same_key = tolerance_policy.key_for(backend.label, f"onnxruntime-{onnx_precision(backend.precision)}")

    @given(batches(len(trt_equiv_data)))
    def check(indices: np.ndarray) -> None:
        out = backend.infer(trt_equiv_data.x[indices])
        assert out.shape[0] == len(indices), f"{backend.label}: {out.shape[0]} rows for a batch of {len(indices)}"
        assert_equivalent(own[indices], out, reference_label=f"{backend.label}(whole set)",
                          candidate_label=backend.label, tolerance=tolerance_policy.lookup(same_key),
                          batch_size=len(indices), stage="batching")  # fmt: skip
        if backend.precision.startswith("fp32"):
            assert_equivalent(reference[indices], out, reference_label=REFERENCE, candidate_label=backend.label,
                              policy=tolerance_policy, batch_size=len(indices))  # fmt: skip

    check()
