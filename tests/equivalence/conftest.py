"""Shared fixtures of the equivalence suite: outputs of upstream stages, computed once per session."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from trt_equiv.backends.base import Backend, onnx_precision
from trt_equiv.compare import REFERENCE_LABEL, chain_links
from trt_equiv.pipeline import Pipeline

REFERENCE = REFERENCE_LABEL


Outputs = dict[str, np.ndarray]


@pytest.fixture(scope="session")
def stage_outputs(trt_equiv_pipeline: Pipeline, reference_outputs: Outputs) -> Callable[[str], Outputs]:
    """label → whole-set outputs by name of that stage (``<backend>-<precision>``), run at most once."""
    cache: dict[str, Outputs] = {REFERENCE: reference_outputs}
    data = trt_equiv_pipeline.bound_data()

    def get(label: str) -> Outputs:
        if label not in cache:
            name, _, precision = label.partition("-")
            with trt_equiv_pipeline.open_backend(name, precision) as runner:
                cache[label] = runner.infer(data.feeds())
        return cache[label]

    return get


def upstream_of(backend: Backend) -> str:
    """The nearest upstream stage of ``backend`` in the blame chain that can run on this machine."""
    if backend.name == "savedmodel":
        return REFERENCE  # the reference against a second run of itself: determinism
    candidates = [REFERENCE, "onnxruntime-fp32", f"onnxruntime-{onnx_precision(backend.precision)}"]
    if backend.name == "cpp":
        candidates.append(f"tensorrt-{backend.precision}")
    runnable = [c for c in candidates if Pipeline.unavailable_reason(*c.split("-", 1)) is None]
    links = dict((cand, ref) for ref, cand in chain_links([*dict.fromkeys(runnable), backend.label]))
    return links[backend.label]
