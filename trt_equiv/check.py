"""The equivalence check behind ``trt-equiv check``: check the reference, run every candidate, compare, blame.

First the data / reference stage (``reference_checks``): the data is bound to the SavedModel's inputs (names,
dtypes, shapes checked before any conversion work), the reference runs, and problems with the data or the
reference are their own failing row. Then each candidate (backend × precision) runs, and every output is
compared by name with the SavedModel (task-level policy for reduced precision) and, where the blame chain has
a closer upstream stage (the fp32 ONNX for a precision recipe, its own precision's ONNX for TensorRT, the
Python TensorRT runner for the C++ one), with that stage too. Candidates that cannot run here are listed with
the reason instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from trt_equiv.backends.base import infer_in_batches, onnx_precision
from trt_equiv.compare import (
    DATA_STAGE,
    REFERENCE_LABEL,
    Comparison,
    TolerancePolicy,
    assign_blame,
    blame_stage,
    chain_links,
    compare_outputs,
)
from trt_equiv.errors import InputValidationError, MissingRuntimeError, TrtEquivError
from trt_equiv.pipeline import Pipeline
from trt_equiv.reference_checks import check_reference, resolve_kinds, resolve_labels, shared_samples

REFERENCE = REFERENCE_LABEL

Outputs = dict[str, np.ndarray]


@dataclass
class CheckResult:
    comparisons: list[Comparison] = field(default_factory=list)
    #: (label, reason) of candidates that could not run here
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: label -> batch size -> outputs by name, kept for the report's error plots
    outputs: dict[str, dict[int | None, Outputs]] = field(default_factory=dict)
    #: label -> error of a candidate that failed while producing outputs (crash, dropped rows, failed build)
    errors: dict[str, str] = field(default_factory=dict)
    #: output name -> kind used for it
    kinds: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.comparisons) and all(self.comparisons)

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c]

    @property
    def data_stage(self) -> Comparison | None:
        return next((c for c in self.comparisons if c.stage == DATA_STAGE), None)


def run_check(
    pipeline: Pipeline,
    candidates: list[tuple[str, str]],
    batch_sizes: tuple[int | None, ...],
    policy: TolerancePolicy | None = None,
    output_kinds: Mapping[str, str] | None = None,
) -> CheckResult:
    """Run the candidates (backend, precision) at each batch size and compare every output.

    The upstream stages a candidate comes from are run too where they can run (the fp32 ONNX for a precision
    recipe; the fp32 and own-precision ONNX for TensorRT and C++), so a broken conversion is blamed on the
    conversion and a broken recipe on the recipe. A candidate that fails while producing outputs (a crashed
    runner, a dropped row, a failed engine build) is a failed comparison blamed on its stage; only bad usage
    and missing runtimes stop the run.
    """
    policy = policy or TolerancePolicy()
    result = CheckResult()
    plan = []
    for backend, precision in _with_upstream_stages(candidates):
        reason = Pipeline.unavailable_reason(backend, precision, pipeline.cache_dir)
        if reason:
            result.skipped.append((f"{backend}-{precision}", reason))
        else:
            plan.append((backend, precision))
    if not plan:
        listing = "; ".join(f"{label}: {reason}" for label, reason in result.skipped)
        raise MissingRuntimeError(f"no candidate backend can run here ({listing})")
    data = pipeline.bound_data()  # names, dtypes and shapes checked against the SavedModel before any conversion
    calibration = pipeline.bound_calibration()
    if calibration is not None and any(p == "int8" for _, p in plan):
        shared = shared_samples(data, calibration)
        if shared:  # refused before calibrating: an int8 file calibrated on its own test data proves nothing
            raise InputValidationError(
                f"--calibration {calibration.source}: {shared} of its samples are also in the test data "
                f"{data.source}; expected a calibration split disjoint from the test data"
            )
    reference = pipeline.reference_outputs()
    label_notes: list[str] = []
    labels = resolve_labels(data.labels, reference, label_notes)
    result.kinds = resolve_kinds(reference, labels, output_kinds)
    data_row = check_reference(data, reference, labels, result.kinds, calibration, label_notes)
    for backend, precision in plan:
        label = f"{backend}-{onnx_precision(precision) if backend == 'onnxruntime' else precision}"
        try:
            with pipeline.open_backend(backend, precision) as runner:
                result.outputs[runner.label] = {b: infer_in_batches(runner, data.feeds(), b) for b in batch_sizes}
        except (InputValidationError, MissingRuntimeError):
            raise
        except TrtEquivError as exc:
            result.errors[label] = f"{type(exc).__name__}: {exc}"
    result.outputs = {REFERENCE: {None: reference}, **result.outputs}
    all_labels = [*result.outputs, *result.errors]
    links = chain_links(all_labels)
    upstream = {cand: ref for ref, cand in links}
    result.comparisons.append(data_row)
    for batch in batch_sizes:
        outputs = {label: _at_batch(by_batch, batch) for label, by_batch in result.outputs.items()}
        batch_results: list[Comparison] = []
        pairs = [(REFERENCE, label) for label in all_labels[1:]] + [(r, c) for r, c in links if r != REFERENCE]
        for ref, cand in pairs:
            batch_results += _compare_or_error(result, outputs, ref, cand, labels, policy, batch)
        for label in result.errors:  # a stage that produced nothing is blamed on itself
            for r in batch_results:
                if r.candidate == label:
                    r.stage = blame_stage(upstream.get(label, REFERENCE), label)
        assign_blame([r for r in batch_results if r.candidate not in result.errors], links)
        if not data_row:
            for r in batch_results:
                if not r:
                    r.notes.append(f"note: the {DATA_STAGE} stage failed too; fix the data first")
        result.comparisons.extend(batch_results)
    _locate_failed_recipes(pipeline, result)
    return result


#: samples ``locate`` runs on for a failure summary: enough for stable statistics, bounded in time
LOCATE_SAMPLES = 128


def _locate_failed_recipes(pipeline: Pipeline, result: CheckResult) -> None:
    """Where a reduced-precision ONNX file fails, say where in the graph it diverges (``trt-equiv locate``).

    Run once per failing recipe (fp16/int8 on ONNX Runtime) and attached to each of its failing rows: the first
    divergence and the five worst layers, so the user learns where, not only that.
    """
    from trt_equiv.locate import locate

    failing = {c.candidate for c in result.failures if c.candidate in ("onnxruntime-fp16", "onnxruntime-int8")}
    for label in sorted(failing):
        precision = label.split("-", 1)[1]
        try:
            summary = locate(pipeline.onnx("fp32"), pipeline.onnx(precision), pipeline.bound_data().feeds(),
                             max_samples=LOCATE_SAMPLES, precision=precision).summary()  # fmt: skip
        except TrtEquivError as exc:  # locate is a diagnosis: its failure must not hide the verdict
            summary = f"locate could not run: {exc}"
        for c in result.failures:
            if c.candidate == label:
                c.notes.append(f"where it diverges (trt-equiv locate, {LOCATE_SAMPLES} samples):\n  " +
                               summary.replace("\n", "\n  "))  # fmt: skip


def _with_upstream_stages(candidates: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Candidates plus the ONNX Runtime stages they derive from, in chain order.

    A precision recipe's fp32 ONNX always runs with it, so a fault in the fp32 file (a conversion bug) is
    caught by the tight fp32 link and blamed on the conversion, not hidden in reduced-precision noise.
    """
    pairs: list[tuple[str, str]] = []
    for backend, precision in candidates:
        if backend in ("tensorrt", "cpp"):
            pairs += [("onnxruntime", "fp32"), ("onnxruntime", onnx_precision(precision))]
        elif backend == "onnxruntime" and onnx_precision(precision) != "fp32":
            pairs.append(("onnxruntime", "fp32"))
        pairs.append((backend, precision))
    order = {"onnxruntime": 0, "tensorrt": 1, "cpp": 2}
    return sorted(dict.fromkeys(pairs), key=lambda pair: order.get(pair[0], 3))


def _compare_or_error(
    result: CheckResult,
    outputs: dict[str, Outputs],
    ref: str,
    cand: str,
    labels: Mapping[str, np.ndarray],
    policy: TolerancePolicy,
    batch: int | None,
) -> list[Comparison]:
    if cand in result.errors or ref in result.errors:
        key = policy.key_for(cand, ref)
        broken = cand if cand in result.errors else ref
        return [
            Comparison(ref, cand, key, policy.lookup(key), None, [], batch, blame_stage(ref, cand),
                       structural_error=f"{broken} produced no outputs: {result.errors[broken]}", output="*")
        ]  # fmt: skip
    return compare_outputs(outputs[ref], outputs[cand], labels=labels, kinds=result.kinds, reference_label=ref,
                           candidate_label=cand, policy=policy, batch_size=batch)  # fmt: skip


def _at_batch(by_batch: dict[int | None, Outputs], batch: int | None) -> Outputs:
    """Outputs computed at ``batch``; the SavedModel reference is computed once, over the whole set."""
    return by_batch[batch] if batch in by_batch else by_batch[None]
