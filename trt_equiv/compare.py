"""Metrics, tolerance policy, ``assert_equivalent`` and stage blame, per named output.

Every output is compared on its own, by name, with metrics chosen by its **kind** (``OUTPUT_KINDS``):

- ``probabilities``: non-negative rows summing to 1 (softmax heads);
- ``logits``: class scores that are not probabilities (a head without softmax);
- ``continuous``: regression values, embeddings, feature maps, sigmoid scores;
- ``exact``: integer or boolean outputs (class ids, masks, counts).

The kind is detected from the reference outputs (``detect_kind``) and can be overridden. Errors are measured
in units that carry across models: each element's error is divided by ``scale + |reference|``, where
``scale`` is the reference's natural magnitude (1 for probabilities, the standard deviation of the reference
for other float outputs). The denominator follows how floating-point rounding behaves — relative to the
value, with the output's spread as the floor near zero — so the same bound holds for ±25 logits, [0, 1]
probabilities and a regression predicting 1000 ± 5. Decision metrics (top-1, flips) exist only for class
scores, and a flip counts against a candidate only when the reference was confident (its top-1/top-2 margin
is beyond the candidate's own noise). Task-quality gates (accuracy against labels, regression error against
targets) are relative with a statistical allowance for the size of the test set.

One metrics function (``compute_metrics``) serves the tests, the CLI and the report. Tolerances are data
(``Tolerance`` bounds looked up in a ``TolerancePolicy``), with the metric names as keys, so a test or the
command line overrides them without touching code. A ``Comparison`` is truthy when equivalent and prints a
readable report that names reference, candidate, output, batch size, every metric against its bound, the
worst sample and the blamed stage.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from trt_equiv.backends.base import onnx_precision
from trt_equiv.errors import InputValidationError

OUTPUT_KINDS = ("probabilities", "logits", "continuous", "exact")
#: kinds whose rows are class scores: top-1 decisions and accuracy apply
CLASS_KINDS = ("probabilities", "logits")
#: output-name fragments that mark an unlabelled (N, C) float output as class scores
_LOGIT_NAME_HINTS = ("logit", "class", "score", "pred")
#: one-sided 95 % normal quantile: the sampling allowance of the accuracy and flip gates
Z_95 = 1.645

# --------------------------------------------------------------------------------------------- kinds


def detect_kind(reference: np.ndarray, *, class_labels: bool = False, name: str = "") -> str:
    """The kind of an output, from the reference values (and whether integer labels exist for it).

    Integer/boolean → ``exact``; (N, C≥2) non-negative rows summing to 1 → ``probabilities``; (N, C≥2) with
    integer labels, or named like class scores (``logits``, ``scores``, ...) → ``logits``; everything else
    → ``continuous`` (the safe default: no decision metrics, value errors only).
    """
    ref = np.asarray(reference)
    if ref.dtype.kind in "iub":
        return "exact"
    if ref.ndim == 2 and ref.shape[1] >= 2:
        finite = ref[np.isfinite(ref).all(axis=1)]
        if len(finite) and (finite >= -1e-6).all() and np.abs(finite.sum(axis=1) - 1.0).max() <= 1e-3:
            return "probabilities"
        if class_labels or any(h in name.lower() for h in _LOGIT_NAME_HINTS):
            return "logits"
    return "continuous"


def check_kind(kind: str, reference: np.ndarray, where: str) -> str:
    """A user-chosen kind must fit the output's shape and dtype."""
    if kind not in OUTPUT_KINDS:
        raise InputValidationError(f"{where}: expected an output kind from {', '.join(OUTPUT_KINDS)}, got {kind!r}")
    ref = np.asarray(reference)
    if kind in CLASS_KINDS and not (ref.ndim == 2 and ref.shape[1] >= 2):
        raise InputValidationError(f"{where}: kind {kind!r} needs (N, classes≥2) scores, got shape {ref.shape}")
    if kind == "exact" and ref.dtype.kind == "f" and not np.all(np.isnan(ref) | (ref == np.round(ref))):
        raise InputValidationError(f"{where}: kind 'exact' needs integer values, got non-integer floats")
    return kind


def parse_output_kinds(items: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["probs=probabilities", ...]`` (CLI/plugin form) or a mapping → {output name: kind}, validated."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            name, sep, kind = item.partition("=")
            if not sep or not name.strip():
                raise InputValidationError(f"--output-kind: expected NAME=KIND (e.g. logits=logits), got {item!r}")
            pairs.append((name.strip(), kind.strip()))
    for name, kind in pairs:
        if kind not in OUTPUT_KINDS:
            raise InputValidationError(
                f"--output-kind {name}: expected a kind from {', '.join(OUTPUT_KINDS)}, got {kind!r}"
            )
    return dict(pairs)


def output_scale(reference: np.ndarray, kind: str) -> float:
    """The reference's natural magnitude that element errors are measured against (see the module doc)."""
    if kind == "probabilities":
        return 1.0
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return 1.0
    spread = float(ref.std())
    if spread > 0:
        return spread
    rms = float(np.sqrt(np.mean(ref**2)))
    return rms if rms > 0 else 1.0


# --------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """How far a candidate output is from the reference output (both (N, ...) arrays), for one kind.

    Metrics that do not apply to the kind are None. Names are the tolerance keys and the table headers.
    """

    kind: str
    samples: int
    scale: float
    # value errors, absolute (output units)
    max_abs: float | None = None
    mean_abs: float | None = None
    p99_abs: float | None = None
    # value errors relative to ``scale + |reference|`` (dimensionless; comparable across models)
    max_err: float | None = None
    p99_err: float | None = None
    rms_err: float | None = None
    rel_l2: float | None = None
    #: RMS error over the reference's standard deviation: how much of the output's variation is lost (an output
    #: of 1000 ± 5 is judged on the ± 5, which the value-relative errors above cannot see)
    spread_err: float | None = None
    #: 1st percentile over samples of the per-sample cosine similarity (rows of ≥ 2 values, low-energy rows skipped)
    cosine: float | None = None
    # decisions (class kinds)
    top1_agreement: float | None = None
    #: share of samples whose top-1 changed although the reference's top-1/top-2 margin exceeded ``flip_margin``
    confident_flips: float | None = None
    flip_margin: float | None = None
    #: exact kind: share of elements that differ
    mismatch: float | None = None
    # task quality against labels / targets
    accuracy_reference: float | None = None
    accuracy_candidate: float | None = None
    accuracy_delta: float | None = None
    #: candidate accuracy / reference accuracy, with the sampling allowance added (gate: >= accuracy_ratio bound)
    accuracy_ratio: float | None = None
    #: regression: relative increase of the RMS error against the targets
    error_reference: float | None = None
    error_candidate: float | None = None
    error_increase: float | None = None
    # non-finite values and the worst sample
    nonfinite: int = 0
    #: positions where reference and candidate are both NaN/Inf (the data made them; excluded from the errors)
    nonfinite_shared: int = 0
    worst_index: int = 0
    worst_reference_class: int | None = None
    worst_candidate_class: int | None = None
    majority_class_share: float | None = None
    classes: int | None = None


def compute_metrics(
    reference: np.ndarray,
    candidate: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    kind: str | None = None,
) -> Metrics:
    """Metrics of ``candidate`` against ``reference`` for ``kind`` (detected when None); shapes must match.

    ``labels`` are integer class labels (class kinds) or float regression targets (continuous).
    """
    ref_raw, cand_raw = np.asarray(reference), np.asarray(candidate)
    if ref_raw.shape != cand_raw.shape:
        raise InputValidationError(
            f"metrics: expected equal shapes, got reference {ref_raw.shape}, candidate {cand_raw.shape}"
        )
    int_labels = labels is not None and np.asarray(labels).dtype.kind in "iub"
    kind = kind or detect_kind(ref_raw, class_labels=int_labels)
    n = ref_raw.shape[0]
    if kind == "exact":
        return _exact_metrics(ref_raw, cand_raw, labels)
    ref = ref_raw.astype(np.float64)
    cand = cand_raw.astype(np.float64)
    ref_ok, cand_ok = np.isfinite(ref), np.isfinite(cand)
    shared = ~ref_ok & ~cand_ok  # NaN in, NaN out on both sides: a data problem, reported by the data stage
    nonfinite = int(np.count_nonzero(~cand_ok & ref_ok))
    ref_bad_only = int(np.count_nonzero(~ref_ok & cand_ok))
    valid = ref_ok & cand_ok
    scale = output_scale(ref, kind)
    diff = np.where(valid, np.abs(cand - ref), 0.0)
    diff = np.where(~cand_ok & ref_ok, np.inf, diff)
    diff = np.where(~ref_ok & cand_ok, np.inf, diff)
    err = diff / (scale + np.abs(np.where(ref_ok, ref, 0.0)))
    counted = ~shared
    d, e = diff[counted], err[counted]
    per_sample = err.reshape(n, -1).max(axis=1)
    worst = int(np.argmax(per_sample))
    finite_d = nonfinite == 0 and ref_bad_only == 0
    r_valid = np.where(valid, ref, 0.0)
    c_valid = np.where(valid, cand, 0.0)
    ref_norm = float(np.linalg.norm(r_valid))
    diff_norm = float(np.linalg.norm(c_valid - r_valid)) if finite_d else math.inf
    values: dict[str, object] = dict(
        kind=kind, samples=n, scale=scale,
        max_abs=float(d.max()) if d.size else 0.0, mean_abs=float(d.mean()) if d.size else 0.0,
        p99_abs=float(np.percentile(d, 99)) if d.size and finite_d else (0.0 if not d.size else math.inf),
        max_err=float(e.max()) if e.size else 0.0,
        p99_err=float(np.percentile(e, 99)) if e.size and finite_d else (0.0 if not e.size else math.inf),
        rms_err=float(np.sqrt(np.mean(e**2))) if e.size and finite_d else (0.0 if not e.size else math.inf),
        rel_l2=diff_norm / ref_norm if ref_norm > 0 else (0.0 if diff_norm == 0 else math.inf),
        spread_err=_spread_err(d, ref[valid]) if finite_d else math.inf,
        nonfinite=nonfinite + ref_bad_only, nonfinite_shared=int(np.count_nonzero(shared)), worst_index=worst,
    )  # fmt: skip
    flat_ref, flat_cand = r_valid.reshape(n, -1), c_valid.reshape(n, -1)
    if flat_ref.shape[1] >= 2 and kind != "probabilities":
        values["cosine"] = _cosine_p1(flat_ref, flat_cand) if finite_d else -1.0
    if kind in CLASS_KINDS and ref.ndim == 2 and ref.shape[1] >= 2:
        values.update(_decision_metrics(ref, cand, diff, worst, labels))
    elif labels is not None and np.asarray(labels).dtype.kind == "f":
        values.update(_target_metrics(ref, cand, np.asarray(labels, dtype=np.float64)))
    return Metrics(**values)  # type: ignore[arg-type]


def _spread_err(diff: np.ndarray, reference: np.ndarray) -> float | None:
    """RMS of the errors over the reference's standard deviation (None for a constant reference)."""
    spread = float(reference.std()) if reference.size else 0.0
    if spread <= 0 or not diff.size:
        return None
    return float(np.sqrt(np.mean(diff**2))) / spread


def _cosine_p1(ref: np.ndarray, cand: np.ndarray) -> float:
    """1st percentile of per-row cosine, skipping rows with (near-)zero reference energy (onnx2tf's rule)."""
    norms = np.linalg.norm(ref, axis=1)
    energetic = norms > 1e-6 * max(float(np.median(norms)), 1e-30)
    if not energetic.any():
        return 1.0
    a, b = ref[energetic], cand[energetic]
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ij,ij->i", a, b) / (na * nb)
    cos = np.where(np.isfinite(cos), cos, 0.0)
    return float(np.percentile(cos, 1))


def _decision_metrics(
    ref: np.ndarray, cand: np.ndarray, diff: np.ndarray, worst: int, labels: np.ndarray | None
) -> dict[str, object]:
    """Top-1 agreement, confident flips, accuracy with its sampling allowance, collapse."""
    n, classes = ref.shape
    ref_clean = np.nan_to_num(ref, nan=-np.inf)
    ref_top = ref_clean.argmax(axis=1)
    cand_top = np.nan_to_num(cand, nan=-np.inf).argmax(axis=1)
    ordered = np.sort(ref_clean, axis=1)
    with np.errstate(invalid="ignore"):  # a NaN row (from NaN input) has no margin, and is excluded anyway
        margin = np.nan_to_num(ordered[:, -1] - ordered[:, -2], nan=0.0)
    # The candidate's own noise: twice the 99th percentile of its element error. A flip on a sample whose
    # reference margin is inside that band is what rounding does to an undecided sample; beyond it, it is not.
    finite = diff[np.isfinite(diff)]
    noise = 2.0 * float(np.percentile(finite, 99)) if finite.size else math.inf
    flipped = ref_top != cand_top
    confident = flipped & (margin > noise)
    out: dict[str, object] = {
        "top1_agreement": float(np.mean(~flipped)),
        "confident_flips": float(np.mean(confident)),
        "flip_margin": noise,
        "worst_reference_class": int(ref_top[worst]),
        "worst_candidate_class": int(cand_top[worst]),
        "majority_class_share": float(np.bincount(cand_top, minlength=classes).max() / n),
        "classes": int(classes),
    }
    if labels is not None and np.asarray(labels).dtype.kind in "iub":
        y = np.asarray(labels).reshape(-1)
        if len(y) != n:
            raise InputValidationError(f"metrics: expected {n} labels, got {len(y)}")
        ref_right, cand_right = ref_top == y, cand_top == y
        acc_ref, acc_cand = float(ref_right.mean()), float(cand_right.mean())
        discordant = int(np.count_nonzero(ref_right != cand_right))
        allowance = Z_95 * math.sqrt(discordant) / n  # McNemar-style: the noise of (b - c) / n
        out.update(
            accuracy_reference=acc_ref, accuracy_candidate=acc_cand, accuracy_delta=acc_cand - acc_ref,
            accuracy_ratio=min(1.0, (acc_cand + allowance) / acc_ref) if acc_ref > 0 else 1.0,
        )  # fmt: skip
    return out


def _target_metrics(ref: np.ndarray, cand: np.ndarray, targets: np.ndarray) -> dict[str, object]:
    """Regression: the candidate's RMS error against the targets, relative to the reference's own."""
    if targets.size != ref.size:
        raise InputValidationError(f"metrics: expected targets shaped like the output {ref.shape}, got {targets.shape}")
    t = targets.reshape(ref.shape)
    ok = np.isfinite(ref) & np.isfinite(cand) & np.isfinite(t)
    err_ref = float(np.sqrt(np.mean((ref[ok] - t[ok]) ** 2))) if ok.any() else math.nan
    err_cand = float(np.sqrt(np.mean((cand[ok] - t[ok]) ** 2))) if ok.any() else math.nan
    increase = (err_cand - err_ref) / err_ref if err_ref > 0 else (0.0 if err_cand == err_ref else math.inf)
    return {"error_reference": err_ref, "error_candidate": err_cand, "error_increase": increase}


def _exact_metrics(ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None) -> Metrics:
    n = ref.shape[0]
    differs = ref != cand
    per_sample = differs.reshape(n, -1).sum(axis=1)
    values: dict[str, object] = {}
    if labels is not None and ref.ndim == 1 and np.asarray(labels).dtype.kind in "iub":
        y = np.asarray(labels).reshape(-1)
        ref_right, cand_right = ref == y, cand == y
        acc_ref, acc_cand = float(ref_right.mean()), float(cand_right.mean())
        allowance = Z_95 * math.sqrt(int(np.count_nonzero(ref_right != cand_right))) / n
        values = dict(accuracy_reference=acc_ref, accuracy_candidate=acc_cand, accuracy_delta=acc_cand - acc_ref,
                      accuracy_ratio=min(1.0, (acc_cand + allowance) / acc_ref) if acc_ref > 0 else 1.0)  # fmt: skip
    return Metrics(
        kind="exact",
        samples=n,
        scale=1.0,
        mismatch=float(differs.mean()) if differs.size else 0.0,
        worst_index=int(np.argmax(per_sample)),
        **values,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------------------- tolerance

#: bounds that are upper limits (metric must be <= bound); the others are lower limits
UPPER_BOUNDS = (
    "max_abs", "mean_abs", "p99_abs", "max_err", "p99_err", "rms_err", "rel_l2", "spread_err", "confident_flips",
    "mismatch",
    "error_increase", "accuracy_drop",
)  # fmt: skip
LOWER_BOUNDS = ("cosine", "top1_agreement", "accuracy_ratio", "min_accuracy")
#: bounds that are shares or similarities, so must lie in [0, 1]
_UNIT_BOUNDS = ("cosine", "top1_agreement", "accuracy_ratio", "min_accuracy", "confident_flips", "mismatch")


@dataclass(frozen=True)
class Tolerance:
    """Bounds for one link; ``None`` means not checked. Names are those of ``Metrics`` and the table.

    ``accuracy_ratio`` is the relative quality gate (candidate accuracy ≥ ratio × reference accuracy, after
    the sampling allowance); ``accuracy_drop`` an optional absolute one; ``min_accuracy`` an absolute floor.
    """

    max_abs: float | None = None
    mean_abs: float | None = None
    p99_abs: float | None = None
    max_err: float | None = None
    p99_err: float | None = None
    rms_err: float | None = None
    rel_l2: float | None = None
    spread_err: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    confident_flips: float | None = None
    mismatch: float | None = None
    accuracy_ratio: float | None = None
    accuracy_drop: float | None = None
    min_accuracy: float | None = None
    error_increase: float | None = None

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            check_bound(name, value)

    def replace(self, **changes: float | None) -> Tolerance:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputValidationError(
                f"tolerance: expected bounds from {[f.name for f in dataclasses.fields(self)]}, got {sorted(unknown)}"
            )
        return dataclasses.replace(self, **changes)

    def bounds(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def check_bound(name: str, value: object) -> None:
    """A bound is None (not checked) or a finite, non-negative number; shares and similarities at most 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputValidationError(
            f"tolerance {name}: expected a finite number >= 0 (or 'none' to not check it), got {value!r}"
        )
    if name in _UNIT_BOUNDS and value > 1:
        raise InputValidationError(f"tolerance {name}: expected a value in [0, 1], got {value!r}")


# Default bounds, from first principles (README "Tolerances" gives the reasoning and the corpus measurements):
# - element errors are relative to scale + |reference| (module doc), so bounds are multiples of the precision's
#   unit roundoff u: fp32 u = 2^-24 ≈ 6e-8, fp16 (and TF32 products) u = 2^-11 ≈ 4.9e-4, int8 a quantization
#   step of 2^-7 of each tensor's range, i.e. u ≈ 2^-8 ≈ 3.9e-3 relative to the range.
# - fp32 conversion (TF kernels vs ONNX Runtime kernels): summation order and fused kernels only, so errors stay
#   within ~10^3 u of each value; a single max is a fine statistic there and catches the smallest real bug.
# - reduced precision: errors accumulate through the layers, so bounds are on the distribution (99th percentile
#   and RMS of the element errors), never on one element, and decisions are judged by confident flips only.
# - regression targets give a report (RMS error against the targets, reference vs candidate), not a gate: a very
#   accurate regression model has an error far below any precision's noise, so a relative error gate would fail
#   every correct int8 file of it; users who want one set e.g. int8.error_increase=0.05.
# - spread_err (errors over the reference's standard deviation) bounds how much of the output's variation is
#   lost: spread_err² is the share of the variance, so fp32 0.1 %, fp16 1 % (0.1), int8 25 % (0.5). It is what
#   sees an output of 1000 ± 5, where the value-relative errors are tiny whatever happens to the ± 5.
# - quality gates: MLPerf's anchor — an int8 (reduced-precision) result is valid at >= 99 % of the fp32
#   accuracy (99.9 % for the "high accuracy" variants, used here for fp16), after the sampling allowance.
U_FP16 = 2.0**-11
U_INT8 = 2.0**-8
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_err=1e-4, rms_err=1e-5, rel_l2=1e-4, spread_err=1e-3, cosine=0.9999,
                      confident_flips=0.0, mismatch=0.0, accuracy_ratio=1.0),
    "tf32": Tolerance(p99_err=32 * U_FP16, rms_err=8 * U_FP16, rel_l2=16 * U_FP16, spread_err=0.05, cosine=0.999,
                      confident_flips=0.0, mismatch=0.0, accuracy_ratio=0.999),
    "fp16": Tolerance(p99_err=64 * U_FP16, rms_err=16 * U_FP16, rel_l2=32 * U_FP16, spread_err=0.1, cosine=0.995,
                      confident_flips=0.002, mismatch=0.01, accuracy_ratio=0.999),
    "int8": Tolerance(p99_err=128 * U_INT8, rms_err=32 * U_INT8, rel_l2=64 * U_INT8, spread_err=0.5, cosine=0.9,
                      confident_flips=0.03, mismatch=0.03, accuracy_ratio=0.99),
    # one recipe on two runtimes (TensorRT vs its ONNX on ONNX Runtime): kernels and fusions differ, and
    # TensorRT int8 runs fused int8 kernels where ONNX Runtime simulates Q/DQ in float, so the bounds are those
    # of the precision's noise, without the task-quality gates (the task-level link has them)
    "fp16@same": Tolerance(p99_err=64 * U_FP16, rms_err=16 * U_FP16, rel_l2=32 * U_FP16, spread_err=0.1, cosine=0.995,
                           confident_flips=0.002, mismatch=0.01),
    "int8@same": Tolerance(p99_err=128 * U_INT8, rms_err=32 * U_INT8, rel_l2=64 * U_INT8, spread_err=0.5, cosine=0.9,
                           confident_flips=0.03, mismatch=0.03),
    # C++ vs Python runner on one engine: bit-identical at equal batch shapes; another batch shape may pick
    # another kernel, so fp16-level rounding differences are allowed, and no confident flip
    "cpp@same": Tolerance(p99_err=16 * U_FP16, rms_err=4 * U_FP16, rel_l2=8 * U_FP16, spread_err=0.01, cosine=0.999,
                          confident_flips=0.0, mismatch=0.0),
}  # fmt: skip

#: the label of the reference every candidate is compared with
REFERENCE_LABEL = "savedmodel-fp32"


@dataclass(frozen=True)
class TolerancePolicy:
    """Tolerances as data: named ``Tolerance`` entries and the rule that picks one per link and output.

    ``table`` holds one entry per link kind (``fp32``, ``fp16``, ``int8@same``, ...). ``refinements`` set bounds
    for one output kind (``fp16.logits``) or one output by name (``fp16:value``); the most specific wins, and a
    refinement changes only the bounds it names (``None`` switches one off).
    """

    table: Mapping[str, Tolerance] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    refinements: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)

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

    def lookup(self, key: str, kind: str | None = None, output: str | None = None) -> Tolerance:
        if key not in self.table:
            raise InputValidationError(f"tolerance: expected a policy entry from {sorted(self.table)}, got {key!r}")
        tol = self.table[key]
        for specific in (f"{key}.{kind}" if kind else None, f"{key}:{output}" if output else None):
            if specific and specific in self.refinements:
                tol = tol.replace(**self.refinements[specific])
        return tol

    def with_overrides(self, overrides: Sequence[str] | Mapping[str, Mapping[str, float | None]]) -> TolerancePolicy:
        """A copy with bounds replaced: ``["fp16.rms_err=0.05", "int8.logits.cosine=none", "fp16:value.p99_err=0.1"]``
        or ``{"fp16": {"rms_err": 0.05}}``. ``none`` switches a bound off; every value is validated."""
        parsed: dict[str, dict[str, float | None]] = {}
        if isinstance(overrides, Mapping):
            parsed = {k: dict(v) for k, v in overrides.items()}
        else:
            for item in overrides:
                try:
                    lhs, value = item.split("=", 1)
                    key, bound = lhs.rsplit(".", 1)
                    text = value.strip().lower()
                    parsed.setdefault(key.strip(), {})[bound.strip()] = None if text == "none" else float(text)
                except ValueError as exc:
                    raise InputValidationError(
                        "tolerance override: expected KEY.BOUND=VALUE (e.g. fp16.rms_err=0.05, "
                        f"fp16.logits.p99_err=0.1, fp16:OUTPUT.rel_l2=0.1, or =none), got {item!r}"
                    ) from exc
        table, refinements = dict(self.table), {k: dict(v) for k, v in self.refinements.items()}
        for key, changes in parsed.items():
            base = self._check_key(key)
            checked = Tolerance().replace(**changes)  # unknown names and bad values raise here
            if base == key:
                table[key] = table[key].replace(**changes)
            else:
                refinements[key] = {**refinements.get(key, {}), **{k: getattr(checked, k) for k in changes}}
        return TolerancePolicy(table, refinements)

    def _check_key(self, key: str) -> str:
        """The base entry of an override key (``fp16`` of ``fp16.logits`` / ``fp16:value``), validated."""
        base, colon, output = key.partition(":")
        base, _, kind = base.partition(".")
        if base not in self.table:
            raise InputValidationError(f"tolerance: expected a policy entry from {sorted(self.table)}, got {key!r}")
        if kind and kind not in OUTPUT_KINDS:
            raise InputValidationError(
                f"tolerance {key!r}: expected a kind from {', '.join(OUTPUT_KINDS)}, got {kind!r}"
            )
        if colon and not output:
            raise InputValidationError(f"tolerance {key!r}: expected an output name after ':'")
        if kind and colon:
            raise InputValidationError(f"tolerance {key!r}: expected KEY.KIND or KEY:OUTPUT, not both")
        return base


# ------------------------------------------------------------------------------------------ comparison

DATA_STAGE = "data / reference"


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
    """Outcome of one reference/candidate pair for one output. Truthy when equivalent; ``str()`` is the report."""

    reference: str
    candidate: str
    tolerance_key: str
    tolerance: Tolerance
    metrics: Metrics | None
    violations: list[str]
    batch_size: int | None = None
    stage: str | None = None
    structural_error: str | None = None
    output: str | None = None
    kind: str | None = None
    #: extra lines for the report (diagnoses, the data stage's findings, locate's summary)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.structural_error is None and not self.violations

    @property
    def verdict(self) -> str:
        return "PASS" if self else "FAIL"

    def row(self) -> dict[str, object]:
        """One table row: the identifiers, the metrics (under their tolerance names) and the verdict."""
        m = self.metrics
        row: dict[str, object] = {
            "candidate": self.candidate,
            "reference": self.reference,
            "output": self.output or "-",
            "kind": self.kind or (m.kind if m else "-"),
            "batch": self.batch_size if self.batch_size is not None else "all",
            "policy": self.tolerance_key,
        }
        if m is not None:
            row.update({name: getattr(m, name) for name in TABLE_METRICS})
            row["accuracy"] = m.accuracy_candidate
            row["accuracy_delta"] = m.accuracy_delta
        row["verdict"] = self.verdict
        row["stage"] = self.stage if not self else ""
        return row

    def report(self) -> str:
        batch = "whole set" if self.batch_size is None else f"batch size {self.batch_size}"
        output = f"output {self.output!r} ({self.kind}), " if self.output else ""
        where = f"{output}{batch}, policy {self.tolerance_key!r}"
        lines = [f"{self.verdict}: {self.candidate} vs reference {self.reference} ({where})"]
        if not self and self.stage:
            lines.append(f"  blamed stage: {self.stage}")
        if self.structural_error:
            lines.append(f"  {self.structural_error}")
            lines.extend(f"  {n}" for n in self.notes)
            return "\n".join(lines)
        m = self.metrics
        if m is None:
            lines.extend(f"  {v}" for v in self.violations)
            lines.extend(f"  {n}" for n in self.notes)
            return "\n".join(lines)
        bounds = self.tolerance.bounds()
        lines.append(f"  scale           {_fmt(m.scale):>12}  (errors *_err are |Δ| / (scale + |reference|))")
        for name, value in _bound_values(m).items():
            if value is None:
                continue
            bound = bounds.get(name)
            if bound is None:
                lines.append(f"  {name:<15} {_fmt(value):>12}")
                continue
            ok = value <= bound if name in UPPER_BOUNDS else value >= bound
            rel = "<=" if name in UPPER_BOUNDS else ">="
            lines.append(f"  {name:<15} {_fmt(value):>12}  {rel} {_fmt(bound):<10} {'ok' if ok else 'VIOLATED'}")
        if m.flip_margin is not None:
            lines.append(f"  (a flip counts as confident when the reference margin exceeds {_fmt(m.flip_margin)})")
        if m.nonfinite:
            lines.append(f"  candidate has {m.nonfinite} NaN/Inf values where the reference is finite")
        if m.nonfinite_shared:
            lines.append(f"  {m.nonfinite_shared} values are NaN/Inf in both (from the data; excluded above)")
        if m.worst_reference_class is not None:
            lines.append(
                f"  worst sample: index {m.worst_index}, reference top-1 class {m.worst_reference_class}, "
                f"candidate top-1 class {m.worst_candidate_class}"
            )
        else:
            lines.append(f"  worst sample: index {m.worst_index}")
        if m.accuracy_candidate is not None:
            lines.append(f"  accuracy: reference {m.accuracy_reference:.4f}, candidate {m.accuracy_candidate:.4f}")
        if m.error_candidate is not None:
            lines.append(
                f"  RMS error vs targets: reference {_fmt(m.error_reference)}, candidate {_fmt(m.error_candidate)}"
            )
        lines.extend(f"  diagnosis: {d}" for d in _diagnose(m))
        lines.extend(f"  {n}" for n in self.notes)
        return "\n".join(lines)

    __str__ = report


#: the metric columns of the table (names = tolerance keys); absolute errors are in the report and JSON only
TABLE_METRICS = (
    "rel_l2", "rms_err", "p99_err", "max_err", "spread_err", "cosine", "top1_agreement", "confident_flips", "mismatch",
)  # fmt: skip
#: (row key, header) of the check table, shared by the terminal table and the report
TABLE_COLUMNS = (
    ("candidate", "candidate"), ("reference", "reference"), ("output", "output"), ("kind", "kind"),
    ("batch", "batch"), ("policy", "policy"), *((m, m) for m in TABLE_METRICS),
    ("accuracy", "accuracy"), ("accuracy_delta", "accuracy_delta"), ("verdict", "verdict"), ("stage", "blamed stage"),
)  # fmt: skip


def _bound_values(m: Metrics) -> dict[str, float | None]:
    """Metric values under the names of the bounds that govern them."""
    drop = None if m.accuracy_delta is None else -m.accuracy_delta
    values = {name: getattr(m, name) for name in (*UPPER_BOUNDS, *LOWER_BOUNDS) if hasattr(m, name)}
    values["accuracy_drop"] = drop
    values["min_accuracy"] = m.accuracy_candidate
    return values


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
    return notes


def _fmt(v: float | None) -> str:
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
    output: str | None = None,
    kind: str | None = None,
) -> Comparison:
    """Compare one output in the order count → shape → dtype → values and return a ``Comparison``.

    Labels are ``"<backend>-<precision>"`` (``Backend.label``); they pick the policy entry and the blamed
    stage unless ``tolerance`` / ``stage`` are given. ``kind`` is detected from the reference when None.
    """
    policy = policy or TolerancePolicy()
    key = "custom" if tolerance is not None else policy.key_for(candidate_label, reference_label)
    stage = stage or blame_stage(reference_label, candidate_label)
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    int_labels = labels is not None and np.asarray(labels).dtype.kind in "iub"
    if kind is None and reference.ndim >= 1:
        kind = detect_kind(reference, class_labels=int_labels, name=output or "")
    elif kind is not None and reference.ndim >= 1:
        check_kind(kind, reference, f"output {output!r}" if output else "output")
    tol = tolerance if tolerance is not None else policy.lookup(key, kind, output)
    result = Comparison(reference_label, candidate_label, key, tol, None, [], batch_size, stage, output=output,
                        kind=kind)  # fmt: skip
    if reference.ndim == 0 or candidate.ndim == 0 or len(reference) != len(candidate):
        result.structural_error = (
            f"count: reference has {len(reference) if reference.ndim else 0} rows, candidate has "
            f"{len(candidate) if candidate.ndim else 0}: samples were dropped or duplicated"
        )
        return result
    if reference.shape != candidate.shape:
        result.structural_error = f"shape: reference {reference.shape}, candidate {candidate.shape}"
        return result
    ref_kind, cand_kind = reference.dtype.kind, candidate.dtype.kind
    if (ref_kind == "f") != (cand_kind == "f") or ref_kind not in "fiub" or cand_kind not in "fiub":
        result.structural_error = f"dtype: reference {reference.dtype}, candidate {candidate.dtype}"
        return result
    m = compute_metrics(reference, candidate, labels, kind=kind)
    result.metrics = m
    result.violations = _violations(m, tol)
    return result


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    labels: Mapping[str, np.ndarray] | None = None,
    kinds: Mapping[str, str] | None = None,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    policy: TolerancePolicy | None = None,
    tolerance: Tolerance | None = None,
    batch_size: int | None = None,
    stage: str | None = None,
) -> list[Comparison]:
    """``compare`` every output of ``reference`` by name; a missing candidate output is a failed comparison."""
    policy = policy or TolerancePolicy()
    results = []
    for name, ref in reference.items():
        if name not in candidate:
            key = policy.key_for(candidate_label, reference_label)
            results.append(Comparison(
                reference_label, candidate_label, key, policy.lookup(key), None, [], batch_size,
                stage or blame_stage(reference_label, candidate_label),
                structural_error=f"output {name!r} missing: candidate has {sorted(candidate)}", output=name,
            ))  # fmt: skip
            continue
        results.append(
            compare(ref, candidate[name], labels=(labels or {}).get(name), output=name, kind=(kinds or {}).get(name),
                    reference_label=reference_label, candidate_label=candidate_label, policy=policy,
                    tolerance=tolerance, batch_size=batch_size, stage=stage)
        )  # fmt: skip
    return results


def _violations(m: Metrics, tol: Tolerance) -> list[str]:
    out = []
    if m.nonfinite:
        out.append(f"candidate contains {m.nonfinite} NaN/Inf values where the reference is finite")
    values = _bound_values(m)
    for name, bound in tol.bounds().items():
        value = values.get(name)
        if value is None:
            continue
        if (name in UPPER_BOUNDS and not value <= bound) or (name in LOWER_BOUNDS and not value >= bound):
            rel = "<=" if name in UPPER_BOUNDS else ">="
            out.append(f"{name} {_fmt(value)} (bound {rel} {_fmt(bound)})")
    return out


class EquivalenceError(AssertionError):
    """Raised by ``assert_equivalent``; carries the failing ``Comparison``s."""

    def __init__(self, comparisons: Sequence[Comparison]) -> None:
        super().__init__("\n\n".join(c.report() for c in comparisons))
        self.comparisons = list(comparisons)
        self.comparison = self.comparisons[0]


def assert_equivalent(
    reference: np.ndarray | Mapping[str, np.ndarray], candidate: np.ndarray | Mapping[str, np.ndarray], **kwargs: object
) -> Comparison | list[Comparison]:
    """``compare`` (one array) or ``compare_outputs`` (mappings by name) and raise ``EquivalenceError`` (an
    AssertionError) with the full report of every failing output."""
    if isinstance(reference, Mapping):
        if not isinstance(candidate, Mapping):
            raise InputValidationError("assert_equivalent: expected the candidate as a mapping like the reference")
        labels = kwargs.pop("labels", None)
        if labels is not None and not isinstance(labels, Mapping):
            if len(reference) != 1:
                raise InputValidationError("assert_equivalent: several outputs need labels as a mapping by output")
            labels = {next(iter(reference)): labels}
        results = compare_outputs(reference, candidate, labels=labels, **kwargs)  # type: ignore[arg-type]
        failing = [r for r in results if not r]
        if failing:
            raise EquivalenceError(failing)
        return results
    result = compare(reference, np.asarray(candidate), **kwargs)  # type: ignore[arg-type]
    if not result:
        raise EquivalenceError([result])
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
    outputs: Mapping[str, np.ndarray | Mapping[str, np.ndarray]],
    *,
    labels: np.ndarray | Mapping[str, np.ndarray] | None = None,
    policy: TolerancePolicy | None = None,
    batch_size: int | None = None,
) -> list[Comparison]:
    """Every link of the blame chain among ``outputs`` (label → array, or label → outputs by name)."""
    results: list[Comparison] = []
    for ref, cand in chain_links(list(outputs)):
        a, b = outputs[ref], outputs[cand]
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            named = labels if isinstance(labels, Mapping) or labels is None else {next(iter(a)): labels}
            results += compare_outputs(a, b, labels=named, reference_label=ref, candidate_label=cand, policy=policy,
                                       batch_size=batch_size)  # fmt: skip
        else:
            results.append(compare(np.asarray(a), np.asarray(b), reference_label=ref, candidate_label=cand,
                                   labels=labels if not isinstance(labels, Mapping) else None, policy=policy,
                                   batch_size=batch_size))  # fmt: skip
    return results


def chain_path(label: str, links: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The links from the root of the chain down to ``label``, most upstream first."""
    parent = {cand: ref for ref, cand in links}
    path = []
    while label in parent:
        path.append((parent[label], label))
        label = parent[label]
    return path[::-1]


def assign_blame(results: Sequence[Comparison], links: Sequence[tuple[str, str]]) -> None:
    """Point every failing comparison at the most upstream failing link on its candidate's path (per output).

    A broken conversion makes every downstream candidate fail against the SavedModel; blaming each of
    them on "TensorRT engine" would send the user to the wrong stage.
    """
    failed_links = {(r.reference, r.candidate, r.output) for r in results if not r}
    for result in results:
        if result or result.stage == DATA_STAGE:
            continue
        for ref, cand in chain_path(result.candidate, links):
            if (ref, cand, result.output) in failed_links:
                result.stage = blame_stage(ref, cand)
                break
