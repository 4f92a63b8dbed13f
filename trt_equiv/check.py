"""The equivalence check behind ``trt-equiv check``: run every candidate, compare, blame.

Each candidate (backend × precision) is compared with the SavedModel (task-level policy for reduced
precision) and, where the blame chain has a closer upstream stage (its own precision's ONNX on ONNX
Runtime, the Python TensorRT runner for the C++ one), with that stage too (tight policy). Candidates
that cannot run here are listed with the reason instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trt_equiv.backends.base import infer_in_batches
from trt_equiv.compare import Comparison, TolerancePolicy, assign_blame, chain_links, compare
from trt_equiv.pipeline import Pipeline

REFERENCE = "savedmodel-fp32"


@dataclass
class CheckResult:
    comparisons: list[Comparison] = field(default_factory=list)
    #: (label, reason) of candidates that could not run here
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: label -> batch size -> outputs, kept for the report's error plots
    outputs: dict[str, dict[int | None, np.ndarray]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.comparisons) and all(self.comparisons)

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c]


def run_check(
    pipeline: Pipeline,
    candidates: list[tuple[str, str]],
    batch_sizes: tuple[int | None, ...],
    policy: TolerancePolicy | None = None,
) -> CheckResult:
    """Run the candidates (backend, precision) at each batch size and compare them."""
    assert pipeline.data is not None
    data = pipeline.data
    result = CheckResult()
    reference = pipeline.reference()
    result.outputs[REFERENCE] = {None: reference}
    runnable = []
    for backend, precision in candidates:
        reason = Pipeline.unavailable_reason(backend, precision)
        if reason:
            result.skipped.append((f"{backend}-{precision}", reason))
        else:
            runnable.append((backend, precision))
    for backend, precision in runnable:
        with pipeline.open_backend(backend, precision) as runner:
            result.outputs[runner.label] = {b: infer_in_batches(runner, data.x, b) for b in batch_sizes}
    labels = list(result.outputs)
    links = chain_links(labels)
    for batch in batch_sizes:
        outputs = {label: _at_batch(by_batch, batch) for label, by_batch in result.outputs.items()}
        batch_results = []
        for label in labels[1:]:
            batch_results.append(
                compare(outputs[REFERENCE], outputs[label], reference_label=REFERENCE, candidate_label=label,
                        labels=data.y, policy=policy, batch_size=batch)
            )  # fmt: skip
        for ref, cand in links:
            if ref != REFERENCE:
                batch_results.append(
                    compare(outputs[ref], outputs[cand], reference_label=ref, candidate_label=cand,
                            labels=data.y, policy=policy, batch_size=batch)
                )  # fmt: skip
        assign_blame(batch_results, links)
        result.comparisons.extend(batch_results)
    return result


def _at_batch(by_batch: dict[int | None, np.ndarray], batch: int | None) -> np.ndarray:
    """Outputs computed at ``batch``; the SavedModel reference is computed once, over the whole set."""
    return by_batch[batch] if batch in by_batch else by_batch[None]
