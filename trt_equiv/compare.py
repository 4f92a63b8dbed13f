"""Metrics, tolerance policy, ``assert_equivalent`` and stage blame.

One metrics function (``compute_metrics``) serves the tests, the CLI and the report. Tolerances are data
(``Tolerance`` bounds looked up in a ``TolerancePolicy``), so a test or the command line can override
them without touching code. A ``Comparison`` is truthy when equivalent and prints a readable report that
names reference, candidate, batch size, every metric against its bound, the worst sample and the blamed
stage.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from trt_equiv.backends.base import onnx_precision
from trt_equiv.errors import InputValidationError

# --------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """How far ``candidate`` is from ``reference`` (both (N, ...) arrays)."""

    samples: int
    max_abs: float
    mean_abs: float
    p99_abs: float
    rel_l2: float
    min_cosine: float
    top1_agreement: float | None
    nonfinite: int
    worst_index: int
    worst_reference_class: int | None
    worst_candidate_class: int | None
    accuracy_reference: float | None = None
    accuracy_candidate: float | None = None
    #: candidate accuracy minus reference accuracy (negative: the candidate is worse)
    accuracy_delta: float | None = None
    #: most frequent candidate class share: 1.0 means the candidate predicts one class for everything
    majority_class_share: float | None = None
    #: number of classes (output width) when outputs are (N, classes) scores
    classes: int | None = None


def compute_metrics(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None) -> Metrics:
    """Metrics of ``candidate`` against ``reference``; shapes must already match (see ``compare``)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise InputValidationError(f"metrics: expected equal shapes, got reference {ref.shape}, candidate {cand.shape}")
    n = ref.shape[0]
    finite = np.isfinite(cand)
    nonfinite = int(cand.size - np.count_nonzero(finite))
    diff = np.abs(np.where(finite, cand, np.inf) - ref)  # a NaN/Inf candidate is infinitely far
    flat_ref, flat_cand = ref.reshape(n, -1), np.where(finite, cand, 0.0).reshape(n, -1)
    per_sample = diff.reshape(n, -1).max(axis=1)
    worst = int(np.argmax(per_sample))
    ref_norm = float(np.linalg.norm(flat_ref))
    diff_norm = float(np.linalg.norm(np.where(finite, cand, 0.0) - ref)) if nonfinite == 0 else math.inf
    rel_l2 = diff_norm / ref_norm if ref_norm > 0 else (0.0 if diff_norm == 0 else math.inf)
    min_cosine = float(_cosine_rows(flat_ref, flat_cand).min()) if nonfinite == 0 else -1.0

    top1 = ref_cls = cand_cls = majority = None
    acc_ref = acc_cand = acc_delta = None
    if ref.ndim == 2 and ref.shape[1] > 1:
        ref_top, cand_top = ref.argmax(axis=1), np.nan_to_num(cand, nan=-np.inf).argmax(axis=1)
        top1 = float(np.mean(ref_top == cand_top))
        ref_cls, cand_cls = int(ref_top[worst]), int(cand_top[worst])
        majority = float(np.bincount(cand_top).max() / n)
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if len(labels) != n:
                raise InputValidationError(f"metrics: expected {n} labels, got {len(labels)}")
            acc_ref, acc_cand = float(np.mean(ref_top == labels)), float(np.mean(cand_top == labels))
            acc_delta = acc_cand - acc_ref
    return Metrics(
        samples=n,
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        p99_abs=float(np.percentile(diff, 99)) if nonfinite == 0 else math.inf,
        rel_l2=rel_l2,
        min_cosine=min_cosine,
        top1_agreement=top1,
        nonfinite=nonfinite,
        worst_index=worst,
        worst_reference_class=ref_cls,
        worst_candidate_class=cand_cls,
        accuracy_reference=acc_ref,
        accuracy_candidate=acc_cand,
        accuracy_delta=acc_delta,
        majority_class_share=majority,
        classes=int(ref.shape[1]) if top1 is not None else None,
    )


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity; two zero rows are identical (1), one zero row is unrelated (0)."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    cos = np.where((na == 0) & (nb == 0), 1.0, cos)
    return np.where(np.isfinite(cos), cos, 0.0)


# ------------------------------------------------------------------------------------------- tolerance

#: bounds that are upper limits (metric must be <= bound); the others are lower limits
_UPPER = ("max_abs", "mean_abs", "p99_abs", "rel_l2", "accuracy_drop")
_LOWER = ("min_cosine", "top1_agreement", "min_accuracy")


@dataclass(frozen=True)
class Tolerance:
    """Bounds for one link; ``None`` means not checked.

    ``accuracy_drop`` bounds reference accuracy minus candidate accuracy; ``min_accuracy`` is an
    absolute floor on the candidate's accuracy (catches a pipeline that is broken on both sides).
    """

    max_abs: float | None = None
    mean_abs: float | None = None
    p99_abs: float | None = None
    rel_l2: float | None = None
    min_cosine: float | None = None
    top1_agreement: float | None = None
    accuracy_drop: float | None = None
    min_accuracy: float | None = None

    def replace(self, **changes: float | None) -> Tolerance:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputValidationError(
                f"tolerance: expected bounds from {[f.name for f in dataclasses.fields(self)]}, got {sorted(unknown)}"
            )
        return dataclasses.replace(self, **changes)

    def bounds(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# Defaults set from distributions measured on the bundled model (README "Tolerances" has the figures).
# Margin rule: error bounds (max/mean/p99 abs, rel_l2) at about 10x the worst measured value, rounded up;
# agreement bounds (cosine, top-1) below the worst measured value by at least 3x its distance from 1.
# - fp32: ONNX Runtime CPU vs SavedModel measured max_abs 1.0e-6, rel_l2 2.2e-7, top-1 1.0.
# - tf32: TensorRT fp32 with TF32 allowed (Ampere+) has shown ~1e-3 on softmax (DESIGN.md §5); 5x that.
# - fp16 (onnxconverter-common, ORT CPU) vs SavedModel measured max_abs 9.8e-4, mean 1.6e-5, rel_l2 2.4e-4.
# - int8 Q/DQ vs SavedModel, worst of minmax/entropy/percentile (entropy): max_abs 0.157, mean 2.8e-3,
#   rel_l2 0.031, min cosine 0.968, top-1 0.994; accuracy unchanged (minmax, entropy) or +0.3 pt.
# - "<p>@same": one recipe on two runtimes (TensorRT vs its ONNX on ONNX Runtime; C++ vs Python on one
#   engine). Kernels and fusions differ, so not bit-exact, but far tighter than the task-level bounds.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4, mean_abs=1e-5, p99_abs=1e-5, rel_l2=1e-4, min_cosine=0.99999,
                      top1_agreement=1.0, accuracy_drop=0.0),
    "tf32": Tolerance(max_abs=5e-3, mean_abs=5e-4, rel_l2=5e-3, min_cosine=0.9999, top1_agreement=0.995,
                      accuracy_drop=0.005),
    "fp16": Tolerance(max_abs=1e-2, mean_abs=2e-4, p99_abs=5e-3, rel_l2=2.5e-3, min_cosine=0.999,
                      top1_agreement=0.99, accuracy_drop=0.01),
    "int8": Tolerance(max_abs=0.5, mean_abs=0.03, p99_abs=0.3, rel_l2=0.3, min_cosine=0.9, top1_agreement=0.98,
                      accuracy_drop=0.02),
    "fp32@same": Tolerance(max_abs=5e-3, rel_l2=5e-3, min_cosine=0.9999, top1_agreement=0.995),
    "fp16@same": Tolerance(max_abs=1e-2, rel_l2=5e-3, min_cosine=0.999, top1_agreement=0.99),
    "int8@same": Tolerance(max_abs=0.2, rel_l2=0.1, min_cosine=0.97, top1_agreement=0.98),
    # C++ vs Python runner on one engine: bit-identical at equal batch shapes; the C++ runner batches at the
    # profile maximum while callers may not, and another batch shape can pick another kernel (seen up to
    # ~1e-5 in fp32 and ~2e-3 in fp16 for such kernels). One near-tie flip in 360 is tolerated.
    "cpp@same": Tolerance(max_abs=2e-3, rel_l2=1e-3, min_cosine=0.9999, top1_agreement=0.997),
}  # fmt: skip

#: the label of the reference every candidate is compared with
REFERENCE_LABEL = "savedmodel-fp32"


@dataclass(frozen=True)
class TolerancePolicy:
    """Tolerances as data: a table of named ``Tolerance`` entries and the rule that picks one per link."""

    table: Mapping[str, Tolerance] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))

    @staticmethod
    def key_for(candidate_label: str, reference_label: str) -> str:
        """Which entry governs a link between two ``<backend>-<precision>`` labels.

        A reduced-precision candidate against a reference of the same recipe is an ``@same`` link; against
        an fp32 reference it is task-level. TensorRT "fp32" may use TF32 ("fp32-strict" may not). The C++
        runner against the Python runner on the same engine is ``cpp@same``, near-exact, at every precision.
        """
        cand_backend, _, cand_prec = candidate_label.partition("-")
        ref_backend, _, ref_prec = reference_label.partition("-")
        strict = cand_prec == "fp32-strict"
        cand = onnx_precision(cand_prec or "fp32")
        ref = onnx_precision(ref_prec or "fp32")
        if cand_backend == "cpp" and ref_backend == "tensorrt" and cand == ref:
            return "cpp@same"  # one engine, two runners: only batch-shape kernel choices may differ
        if cand != "fp32":
            return f"{cand}@same" if ref == cand else cand
        if cand_backend in ("tensorrt", "cpp") and not strict:
            return "tf32"
        return "fp32"

    def lookup(self, key: str) -> Tolerance:
        if key not in self.table:
            raise InputValidationError(f"tolerance: expected a policy entry from {sorted(self.table)}, got {key!r}")
        return self.table[key]

    def with_overrides(self, overrides: Sequence[str] | Mapping[str, Mapping[str, float]]) -> TolerancePolicy:
        """A copy with bounds replaced: ``["fp16.max_abs=0.05", ...]`` or ``{"fp16": {"max_abs": 0.05}}``."""
        parsed: dict[str, dict[str, float | None]] = {}
        if isinstance(overrides, Mapping):
            parsed = {k: dict(v) for k, v in overrides.items()}
        else:
            for item in overrides:
                try:
                    lhs, value = item.split("=", 1)
                    key, bound = lhs.rsplit(".", 1)
                    parsed.setdefault(key.strip(), {})[bound.strip()] = (
                        None if value.strip().lower() == "none" else float(value)
                    )
                except ValueError as exc:
                    raise InputValidationError(
                        f"tolerance override: expected KEY.BOUND=VALUE (e.g. fp16.max_abs=0.05), got {item!r}"
                    ) from exc
        table = dict(self.table)
        for key, changes in parsed.items():
            table[key] = self.lookup(key).replace(**changes)
        return TolerancePolicy(table)


# ------------------------------------------------------------------------------------------ comparison


def blame_stage(reference: str, candidate: str) -> str:
    """Name the pipeline stage a failing link points at, from the two backend labels."""
    ref_backend, _, ref_prec = reference.partition("-")
    cand_backend, _, cand_prec = candidate.partition("-")
    if cand_backend == "cpp":
        return "C++ runner"
    if cand_backend == "tensorrt":
        return "TensorRT engine"
    if cand_backend == "tflite":
        return f"TF-Lite conversion ({cand_prec})"
    if cand_backend == "onnxruntime":
        if cand_prec in ("fp16", "int8") and not (ref_backend == "onnxruntime" and ref_prec == cand_prec):
            return f"precision recipe ({cand_prec})"
        return "conversion (tf2onnx)"
    return f"{candidate} vs {reference}"


@dataclass
class Comparison:
    """Outcome of one reference/candidate pair. Truthy when equivalent; ``str()`` is the full report."""

    reference: str
    candidate: str
    tolerance_key: str
    tolerance: Tolerance
    metrics: Metrics | None
    violations: list[str]
    batch_size: int | None = None
    stage: str | None = None
    structural_error: str | None = None

    def __bool__(self) -> bool:
        return self.structural_error is None and not self.violations

    @property
    def verdict(self) -> str:
        return "PASS" if self else "FAIL"

    def row(self) -> dict[str, object]:
        """One table row: the identifiers, the metrics and the verdict."""
        m = self.metrics
        row: dict[str, object] = {
            "reference": self.reference,
            "candidate": self.candidate,
            "batch": self.batch_size if self.batch_size is not None else "all",
            "policy": self.tolerance_key,
        }
        if m is not None:
            row.update(
                max_abs=m.max_abs, mean_abs=m.mean_abs, p99_abs=m.p99_abs, rel_l2=m.rel_l2,
                min_cosine=m.min_cosine, top1=m.top1_agreement, accuracy=m.accuracy_candidate,
                accuracy_delta=m.accuracy_delta,
            )  # fmt: skip
        row["verdict"] = self.verdict
        row["stage"] = self.stage if not self else ""
        return row

    def report(self) -> str:
        batch = "whole set" if self.batch_size is None else f"batch size {self.batch_size}"
        where = f"{batch}, policy {self.tolerance_key!r}"
        lines = [f"{self.verdict}: {self.candidate} vs reference {self.reference} ({where})"]
        if not self and self.stage:
            lines.append(f"  blamed stage: {self.stage}")
        if self.structural_error:
            lines.append(f"  {self.structural_error}")
            return "\n".join(lines)
        m = self.metrics
        assert m is not None
        bounds = self.tolerance.bounds()
        values = _bound_values(m)
        for name, value in values.items():
            if value is None:
                continue
            bound = bounds.get(name)
            if bound is None:
                lines.append(f"  {name:<15} {_fmt(value):>12}")
                continue
            ok = value <= bound if name in _UPPER else value >= bound
            rel = "<=" if name in _UPPER else ">="
            lines.append(f"  {name:<15} {_fmt(value):>12}  {rel} {_fmt(bound):<10} {'ok' if ok else 'VIOLATED'}")
        if m.nonfinite:
            lines.append(f"  candidate has {m.nonfinite} NaN/Inf values")
        if m.worst_reference_class is not None:
            lines.append(
                f"  worst sample: index {m.worst_index}, reference top-1 class {m.worst_reference_class}, "
                f"candidate top-1 class {m.worst_candidate_class}"
            )
        else:
            lines.append(f"  worst sample: index {m.worst_index}")
        if m.accuracy_candidate is not None:
            lines.append(f"  accuracy: reference {m.accuracy_reference:.4f}, candidate {m.accuracy_candidate:.4f}")
        lines.extend(f"  diagnosis: {d}" for d in _diagnose(m))
        return "\n".join(lines)

    __str__ = report


def _bound_values(m: Metrics) -> dict[str, float | None]:
    """Metric values under the names of the bounds that govern them."""
    drop = None if m.accuracy_delta is None else -m.accuracy_delta
    return {
        "max_abs": m.max_abs, "mean_abs": m.mean_abs, "p99_abs": m.p99_abs, "rel_l2": m.rel_l2,
        "min_cosine": m.min_cosine, "top1_agreement": m.top1_agreement, "accuracy_drop": drop,
        "min_accuracy": m.accuracy_candidate,
    }  # fmt: skip


def _diagnose(m: Metrics) -> list[str]:
    """Patterns the pipeline this project replaces reported as successes."""
    notes = []
    if m.majority_class_share is not None and m.majority_class_share >= 0.99 and m.samples >= 10:
        notes.append("candidate predicts (almost) one class for every sample: collapsed model or wrong input scaling")
    if m.accuracy_candidate is not None and m.classes and m.accuracy_candidate <= 1.5 / m.classes:
        notes.append(
            f"candidate accuracy {m.accuracy_candidate:.4f} is at chance level for {m.classes} classes: "
            "the outputs carry no information (broken conversion, calibration or input preprocessing)"
        )
    if m.accuracy_reference is not None and m.classes and m.accuracy_reference <= 1.5 / m.classes:
        notes.append(f"reference accuracy {m.accuracy_reference:.4f} is at chance level: check the data and labels")
    return notes


def _fmt(v: float) -> str:
    if v is None:
        return "-"
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}"


def compare(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    labels: np.ndarray | None = None,
    tolerance: Tolerance | None = None,
    policy: TolerancePolicy | None = None,
    batch_size: int | None = None,
    stage: str | None = None,
) -> Comparison:
    """Compare in the order count → shape → dtype → values and return a ``Comparison``.

    Labels are ``"<backend>-<precision>"`` (``Backend.label``); they pick the policy entry and the blamed
    stage unless ``tolerance`` / ``stage`` are given.
    """
    policy = policy or TolerancePolicy()
    key = "custom" if tolerance is not None else policy.key_for(candidate_label, reference_label)
    tol = tolerance if tolerance is not None else policy.lookup(key)
    stage = stage or blame_stage(reference_label, candidate_label)
    result = Comparison(reference_label, candidate_label, key, tol, None, [], batch_size, stage)
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.ndim == 0 or candidate.ndim == 0 or len(reference) != len(candidate):
        result.structural_error = (
            f"count: reference has {len(reference) if reference.ndim else 0} rows, candidate has "
            f"{len(candidate) if candidate.ndim else 0}: samples were dropped or duplicated"
        )
        return result
    if reference.shape != candidate.shape:
        result.structural_error = f"shape: reference {reference.shape}, candidate {candidate.shape}"
        return result
    if not (np.issubdtype(candidate.dtype, np.floating) and np.issubdtype(reference.dtype, np.floating)):
        result.structural_error = (
            f"dtype: expected floating outputs, got reference {reference.dtype}, candidate {candidate.dtype}"
        )
        return result
    m = compute_metrics(reference, candidate, labels)
    result.metrics = m
    result.violations = _violations(m, tol)
    return result


def _violations(m: Metrics, tol: Tolerance) -> list[str]:
    out = []
    if m.nonfinite:
        out.append(f"candidate contains {m.nonfinite} NaN/Inf values")
    if m.accuracy_reference is not None and m.classes and m.accuracy_reference <= 1.5 / m.classes:
        # "accuracy 0.1000 at every precision": equal answers prove nothing when the reference is at chance
        out.append(f"reference accuracy {m.accuracy_reference:.4f} is at chance level for {m.classes} classes")
    values = _bound_values(m)
    for name, bound in tol.bounds().items():
        value = values[name]
        if value is None:
            continue
        if (name in _UPPER and not value <= bound) or (name in _LOWER and not value >= bound):
            rel = "<=" if name in _UPPER else ">="
            out.append(f"{name} {_fmt(value)} (bound {rel} {_fmt(bound)})")
    return out


class EquivalenceError(AssertionError):
    """Raised by ``assert_equivalent``; carries the ``Comparison``."""

    def __init__(self, comparison: Comparison) -> None:
        super().__init__(comparison.report())
        self.comparison = comparison


def assert_equivalent(reference: np.ndarray, candidate: np.ndarray, **kwargs: object) -> Comparison:
    """``compare`` and raise ``EquivalenceError`` (an AssertionError) with the full report on failure."""
    result = compare(reference, candidate, **kwargs)  # type: ignore[arg-type]
    if not result:
        raise EquivalenceError(result)
    return result


# ------------------------------------------------------------------------------------------ stage chain


def chain_links(labels: Sequence[str]) -> list[tuple[str, str]]:
    """Links of the blame chain among the available outputs.

    savedmodel → onnxruntime-fp32 → onnxruntime-<p> → tensorrt-<p> → cpp-<p>; each candidate is
    compared with the nearest upstream output that exists, so one broken stage is blamed once.
    """
    present = set(labels)
    links = []
    for label in labels:
        backend, _, prec = label.partition("-")
        upstream: list[str]
        if backend == "savedmodel":
            continue
        if backend == "onnxruntime":
            upstream = ["savedmodel-fp32"] if prec.startswith("fp32") else ["onnxruntime-fp32", "savedmodel-fp32"]
        elif backend == "tensorrt":
            upstream = [f"onnxruntime-{onnx_precision(prec)}", "onnxruntime-fp32", "savedmodel-fp32"]
        elif backend == "cpp":
            upstream = [f"tensorrt-{prec}", f"onnxruntime-{onnx_precision(prec)}", "savedmodel-fp32"]
        else:
            upstream = ["savedmodel-fp32"]
        ref = next((u for u in upstream if u in present and u != label), None)
        if ref is not None:
            links.append((ref, label))
    return links


def compare_chain(
    outputs: Mapping[str, np.ndarray],
    *,
    labels: np.ndarray | None = None,
    policy: TolerancePolicy | None = None,
    batch_size: int | None = None,
) -> list[Comparison]:
    """Every link of the blame chain among ``outputs`` (label → array), in pipeline order."""
    return [
        compare(outputs[ref], outputs[cand], reference_label=ref, candidate_label=cand, labels=labels,
                policy=policy, batch_size=batch_size)
        for ref, cand in chain_links(list(outputs))
    ]  # fmt: skip


def chain_path(label: str, links: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The links from the root of the chain down to ``label``, most upstream first."""
    parent = {cand: ref for ref, cand in links}
    path = []
    while label in parent:
        path.append((parent[label], label))
        label = parent[label]
    return path[::-1]


def assign_blame(results: Sequence[Comparison], links: Sequence[tuple[str, str]]) -> None:
    """Point every failing comparison at the most upstream failing link on its candidate's path.

    A broken conversion makes every downstream candidate fail against the SavedModel; blaming each of
    them on "TensorRT engine" would send the user to the wrong stage.
    """
    failed_links = {(r.reference, r.candidate): r for r in results if not r}
    for result in results:
        if result:
            continue
        for ref, cand in chain_path(result.candidate, links):
            if (ref, cand) in failed_links:
                result.stage = blame_stage(ref, cand)
                break
