"""The equivalence check behind ``trt-equiv check``: run every candidate, compare, blame.

Each candidate (backend × precision) is compared with the SavedModel (task-level policy for reduced
precision) and, where the blame chain has a closer upstream stage (its own precision's ONNX on ONNX
Runtime, the Python TensorRT runner for the C++ one), with that stage too (tight policy). Candidates
that cannot run here are listed with the reason instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trt_equiv.backends.base import infer_in_batches, onnx_precision
from trt_equiv.compare import (
    REFERENCE_LABEL,
    Comparison,
    TolerancePolicy,
    assign_blame,
    blame_stage,
    chain_links,
    compare,
)
from trt_equiv.errors import InputValidationError, MissingRuntimeError, TrtEquivError
from trt_equiv.pipeline import Pipeline

REFERENCE = REFERENCE_LABEL


@dataclass
class CheckResult:
    comparisons: list[Comparison] = field(default_factory=list)
    #: (label, reason) of candidates that could not run here
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: label -> batch size -> outputs, kept for the report's error plots
    outputs: dict[str, dict[int | None, np.ndarray]] = field(default_factory=dict)
    #: label -> error of a candidate that failed while producing outputs (crash, dropped rows, failed build)
    errors: dict[str, str] = field(default_factory=dict)

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
    """Run the candidates (backend, precision) at each batch size and compare them.

    The ONNX Runtime stages a TensorRT or C++ candidate comes from are run too (where they can run), so a
    broken recipe is blamed on the recipe, not on the engine. A candidate that fails while producing
    outputs (a crashed runner, a dropped row, a failed engine build) is a failed comparison blamed on its
    stage; only bad usage and missing runtimes stop the run.
    """
    assert pipeline.data is not None
    data = pipeline.data
    result = CheckResult()
    for backend, precision in _with_upstream_stages(candidates):
        reason = Pipeline.unavailable_reason(backend, precision)
        if reason:
            result.skipped.append((f"{backend}-{precision}", reason))
            continue
        label = f"{backend}-{onnx_precision(precision) if backend == 'onnxruntime' else precision}"
        try:
            with pipeline.open_backend(backend, precision) as runner:
                result.outputs[runner.label] = {b: infer_in_batches(runner, data.x, b) for b in batch_sizes}
        except (InputValidationError, MissingRuntimeError):
            raise
        except TrtEquivError as exc:
            result.errors[label] = f"{type(exc).__name__}: {exc}"
    if not result.outputs and not result.errors:
        listing = "; ".join(f"{label}: {reason}" for label, reason in result.skipped)
        raise MissingRuntimeError(f"no candidate backend can run here ({listing})")
    reference = pipeline.reference()
    result.outputs = {REFERENCE: {None: reference}, **result.outputs}
    labels = [*result.outputs, *result.errors]
    links = chain_links(labels)
    upstream = {cand: ref for ref, cand in links}
    for batch in batch_sizes:
        outputs = {label: _at_batch(by_batch, batch) for label, by_batch in result.outputs.items()}
        batch_results = []
        for label in labels[1:]:
            batch_results.append(_compare_or_error(result, outputs, REFERENCE, label, data.y, policy, batch))
        for ref, cand in links:
            if ref != REFERENCE:
                batch_results.append(_compare_or_error(result, outputs, ref, cand, data.y, policy, batch))
        for label in result.errors:  # a stage that produced nothing is blamed on itself
            for r in batch_results:
                if r.candidate == label:
                    r.stage = blame_stage(upstream.get(label, REFERENCE), label)
        assign_blame([r for r in batch_results if r.candidate not in result.errors], links)
        result.comparisons.extend(batch_results)
    return result


def _with_upstream_stages(candidates: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Candidates plus the ONNX Runtime stages that TensorRT / C++ candidates derive from, in chain order."""
    pairs: list[tuple[str, str]] = []
    for backend, precision in candidates:
        if backend in ("tensorrt", "cpp"):
            pairs += [("onnxruntime", "fp32"), ("onnxruntime", onnx_precision(precision))]
        pairs.append((backend, precision))
    order = {"onnxruntime": 0, "tensorrt": 1, "cpp": 2}
    return sorted(dict.fromkeys(pairs), key=lambda pair: order.get(pair[0], 3))


def _compare_or_error(
    result: CheckResult,
    outputs: dict[str, np.ndarray],
    ref: str,
    cand: str,
    labels: np.ndarray | None,
    policy: TolerancePolicy | None,
    batch: int | None,
) -> Comparison:
    if cand in result.errors or ref in result.errors:
        policy = policy or TolerancePolicy()
        key = policy.key_for(cand, ref)
        broken = cand if cand in result.errors else ref
        return Comparison(ref, cand, key, policy.lookup(key), None, [], batch, blame_stage(ref, cand),
                          structural_error=f"{broken} produced no outputs: {result.errors[broken]}")  # fmt: skip
    return compare(outputs[ref], outputs[cand], reference_label=ref, candidate_label=cand, labels=labels,
                   policy=policy, batch_size=batch)  # fmt: skip


def _at_batch(by_batch: dict[int | None, np.ndarray], batch: int | None) -> np.ndarray:
    """Outputs computed at ``batch``; the SavedModel reference is computed once, over the whole set."""
    return by_batch[batch] if batch in by_batch else by_batch[None]
