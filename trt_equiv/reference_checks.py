"""The data / reference stage: problems with the data or the SavedModel itself, found before any candidate.

A reference at chance, labels that do not fit the outputs, non-finite inputs or test inputs far outside the
range the model was calibrated on make every comparison meaningless or misleading; blaming them on a
conversion would send the user to the wrong stage. ``check_reference`` looks at these first and reports them
as their own stage (``DATA_STAGE``), with what to check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from trt_equiv.compare import (
    CLASS_KINDS,
    DATA_STAGE,
    REFERENCE_LABEL,
    Comparison,
    Tolerance,
    check_kind,
    detect_kind,
)
from trt_equiv.data import Dataset
from trt_equiv.errors import InputValidationError

#: a test input spread this many times wider or narrower than the calibration set's is "another range"
RANGE_RATIO_LIMIT = 8.0
#: fewer samples than this give no verdict: a 99th percentile, a flip rate or an accuracy needs a population
MIN_SAMPLES = 30
#: one-sided z for "not better than chance" (99 %)
_Z_99 = 2.326


def resolve_labels(
    labels: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], notes: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Which output each label array belongs to: ``y:<output>`` by name, ``y`` to the one output it fits.

    Integer ``y`` goes to the single output it can index as classes: an (N, C) float output with
    ``max(y) < C <= 2 * (max(y) + 1)`` (class scores over about that many classes — not a 64-d embedding), or a
    1-D integer output (class ids). Float ``y`` (targets) goes to the single float output of the same per-sample
    size. Several candidates is an error asking for ``y:<output>``; none means the labels are not used, said in
    ``notes`` (and so in the data stage's row).
    """
    resolved: dict[str, np.ndarray] = {}
    for key, y in labels.items():
        if key:
            if key not in reference:
                raise InputValidationError(
                    f"labels 'y:{key}': expected an output name from {sorted(reference)}, got {key!r}"
                )
            resolved[key] = y
            continue
        if y.dtype.kind in "iub":
            top = int(y.max()) + 1 if len(y) else 0
            fits = [n for n, r in reference.items() if _indexable_by(r, top)]
            what = f"class labels 0..{top - 1}"
            if not fits:  # labels out of a classifier's range are a data problem, reported by the data stage
                fits = [n for n, r in reference.items() if r.ndim == 2 and detect_kind(r, name=n) in CLASS_KINDS]
        else:
            size = int(np.prod(y.shape[1:], dtype=np.int64))
            fits = [n for n, r in reference.items() if r.dtype.kind == "f" and int(np.prod(r.shape[1:])) == size]
            what = f"targets of shape {y.shape}"
        if len(fits) > 1:
            raise InputValidationError(
                f"labels 'y' ({what}): expected exactly one output they fit, got {fits} among {sorted(reference)}; "
                "name the output with 'y:<output>'"
            )
        if not fits:
            shapes = ", ".join(f"{n} {tuple(r.shape)}" for n, r in reference.items())
            if notes is not None:
                notes.append(f"labels 'y' ({what}) fit no output ({shapes}); not used — name one with 'y:<output>'")
            continue
        resolved[fits[0]] = y
    return resolved


def _indexable_by(output: np.ndarray, classes: int) -> bool:
    """Class labels 0..classes-1 can index this output: class ids, or scores over about that many classes."""
    if output.dtype.kind in "iub":
        return output.ndim == 1
    return output.ndim == 2 and output.dtype.kind == "f" and classes <= output.shape[1] <= 2 * classes


def resolve_kinds(
    reference: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], overrides: Mapping[str, str] | None
) -> dict[str, str]:
    """Kind per output: the user's override where given (checked against the output), else detected."""
    overrides = dict(overrides or {})
    unknown = [n for n in overrides if n not in reference]
    if unknown:
        raise InputValidationError(f"--output-kind: expected output names from {sorted(reference)}, got {unknown}")
    kinds = {}
    for name, ref in reference.items():
        if name in overrides:
            kinds[name] = check_kind(overrides[name], ref, f"--output-kind {name}")
        else:
            int_labels = name in labels and labels[name].dtype.kind in "iub"
            kinds[name] = detect_kind(ref, class_labels=int_labels, name=name)
    return kinds


def check_reference(
    data: Dataset,
    reference: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    calibration: Dataset | None = None,
    notes: list[str] | None = None,
) -> Comparison:
    """One row for the data / reference stage: PASS, or FAIL with every problem found and what to check.

    ``notes`` (e.g. from ``resolve_labels``) are added to the row's report.
    """
    problems: list[str] = []
    notes = list(notes or [])
    if len(data) < MIN_SAMPLES:
        problems.append(
            f"the data has {len(data)} samples; a verdict needs at least {MIN_SAMPLES} (error percentiles, flip "
            "rates and accuracy are statistics over samples)"
        )

    for name, x in data.inputs.items():
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
            if bad.any():
                idx = np.flatnonzero(bad)
                problems.append(
                    f"input {name!r} has NaN/Inf in {len(idx)} samples (first: {idx[:5].tolist()}): "
                    "check the data pipeline that produced the file"
                )
    for name, ref in reference.items():
        if ref.dtype.kind == "f":
            bad_rows = ~np.isfinite(ref).reshape(len(ref), -1).all(axis=1)
            if bad_rows.any() and not any(p.startswith("input") for p in problems):
                problems.append(f"the SavedModel's output {name!r} is NaN/Inf for {int(bad_rows.sum())} finite samples")
        y = labels.get(name)
        if y is None:
            continue
        kind = kinds[name]
        if kind in CLASS_KINDS or kind == "exact":
            problems += _check_class_labels(name, ref, y, kind)
        elif y.dtype.kind == "f":
            problems += _check_targets(name, ref, y)
    if calibration is not None:
        problems += _check_input_range(data, calibration)
    else:
        notes.append("no calibration set given: the test inputs' range was not compared with the model's")
    result = Comparison(
        reference="data", candidate=REFERENCE_LABEL, tolerance_key="data", tolerance=Tolerance(), metrics=None,
        violations=problems, stage=DATA_STAGE, output="-", kind="-",
    )  # fmt: skip
    if problems:
        result.notes.append(
            "diagnosis: the data or the reference model is the problem, not a conversion; fix this first "
            "(rows below compare candidates with this reference and may fail because of it)"
        )
    result.notes.extend(notes)
    return result


def shared_samples(data: Dataset, calibration: Dataset) -> int:
    """How many samples (all inputs equal) the test data and the calibration set have in common."""
    from trt_equiv.hashing import array_hash

    def rows(d: Dataset) -> set[str]:
        names = sorted(d.inputs)
        return {"|".join(array_hash(d.inputs[n][i]) for n in names) for i in range(len(d))}

    if sorted(data.inputs) != sorted(calibration.inputs):
        return 0
    test_rows = rows(data)
    return sum(1 for r in rows(calibration) if r in test_rows)


def _check_class_labels(name: str, ref: np.ndarray, y: np.ndarray, kind: str) -> list[str]:
    if y.dtype.kind not in "iub":
        return [f"labels for {name!r} ({kind}) are floats {y.dtype}: expected integer class indices"]
    if kind == "exact":
        prediction = ref.reshape(len(ref), -1)[:, 0] if ref.ndim > 1 else ref
        classes = int(max(int(prediction.max()), int(y.max())) + 1)
    else:
        classes = ref.shape[1]
        prediction = np.nan_to_num(ref, nan=-np.inf).argmax(axis=1)
        if y.min() < 0 or y.max() >= classes:
            return [
                f"labels for {name!r} range {int(y.min())}..{int(y.max())}, but the output has {classes} classes "
                f"(0..{classes - 1}): the labels do not fit this output"
            ]
    n = len(y)
    accuracy = float(np.mean(prediction == y))
    chance = 1.0 / max(classes, 2)
    # at chance: not better than guessing uniformly, within sampling noise (one-sided 99 %)
    threshold = chance + _Z_99 * math.sqrt(chance * (1 - chance) / n)
    if accuracy <= threshold:
        return [
            f"the SavedModel's accuracy on {name!r} is {accuracy:.4f}, at chance for {classes} classes "
            f"(≤ {threshold:.4f}): the labels are shuffled or belong to other data, or the inputs are "
            "preprocessed differently from training (scaling, channel order, layout)"
        ]
    return []


def _check_targets(name: str, ref: np.ndarray, y: np.ndarray) -> list[str]:
    """Regression targets: the reference should explain them better than their mean does."""
    t = y.reshape(ref.shape).astype(np.float64)
    r = ref.astype(np.float64)
    ok = np.isfinite(t) & np.isfinite(r)
    if not ok.any():
        return [f"targets for {name!r} are all NaN/Inf"]
    residual = float(np.mean((r[ok] - t[ok]) ** 2))
    spread = float(np.var(t[ok]))
    if spread > 0 and residual >= spread:
        return [
            f"the SavedModel's error on {name!r} (MSE {residual:.4g}) is no better than predicting the targets' "
            f"mean (variance {spread:.4g}): the targets belong to other data, or the inputs are preprocessed "
            "differently from training"
        ]
    return []


def _check_input_range(data: Dataset, calibration: Dataset) -> list[str]:
    """Float test inputs whose spread or location is far from the calibration (training-like) data's."""
    problems = []
    for name, x in data.inputs.items():
        if x.dtype.kind != "f" or name not in calibration.inputs:
            continue
        cal = calibration.inputs[name]
        test_range, calibration_range = _robust_range(x), _robust_range(cal)
        if test_range is None or calibration_range is None:
            continue
        (lo_t, hi_t), (lo_c, hi_c) = test_range, calibration_range
        spread_t, spread_c = hi_t - lo_t, hi_c - lo_c
        ratio = (spread_t / spread_c) if spread_c > 0 else (math.inf if spread_t > 0 else 1.0)
        center_t = (hi_t + lo_t) / 2
        outside = spread_c > 0 and not (lo_c - spread_c <= center_t <= hi_c + spread_c)
        if ratio > RANGE_RATIO_LIMIT or ratio < 1 / RANGE_RATIO_LIMIT or outside:
            problems.append(
                f"input {name!r} ranges over [{lo_t:.4g}, {hi_t:.4g}] in the test data but [{lo_c:.4g}, "
                f"{hi_c:.4g}] in the calibration data ({ratio:.3g}× the spread): the test inputs are scaled or "
                "shifted differently (e.g. 0..255 instead of 0..1)"
            )
    return problems


def _robust_range(x: np.ndarray) -> tuple[float, float] | None:
    values = x[np.isfinite(x)].astype(np.float64)
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, [0.5, 99.5])
    return float(lo), float(hi)
