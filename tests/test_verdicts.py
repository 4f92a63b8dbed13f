"""Verdict rules that must hold on any model: output kinds, scale-free bounds, confident flips, quality gates,
validated tolerances and the data / reference stage. Synthetic outputs with known properties; the corpus test
(tests/corpus) checks the same rules on real conversions of trained models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trt_equiv.compare import (
    Tolerance,
    TolerancePolicy,
    compare,
    compare_outputs,
    compute_metrics,
    detect_kind,
    parse_output_kinds,
)
from trt_equiv.data import Dataset
from trt_equiv.errors import InputValidationError
from trt_equiv.reference_checks import check_reference, resolve_kinds, resolve_labels

RNG = np.random.default_rng(0)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fp16_round(x: np.ndarray) -> np.ndarray:
    """What storing a float32 output in float16 does: the least any fp16 conversion changes."""
    return x.astype(np.float16).astype(np.float32)


LOGITS = (RNG.normal(size=(400, 10)) * 8).astype(np.float32)
PROBS = softmax(LOGITS / 4)
REGRESSION = (1000 + 5 * RNG.normal(size=(400, 1))).astype(np.float32)
FEATURES = np.maximum(RNG.normal(size=(400, 6, 6, 4)), 0).astype(np.float32)


@pytest.mark.parametrize(
    ("reference", "labels", "name", "kind"),
    [
        (PROBS, None, "output_0", "probabilities"),
        (LOGITS, np.arange(400) % 10, "dense", "logits"),
        (LOGITS, None, "logits", "logits"),
        (LOGITS, None, "embedding", "continuous"),
        (REGRESSION, None, "value", "continuous"),
        (FEATURES, None, "fmap", "continuous"),
        (np.arange(400, dtype=np.int64) % 3, None, "class_id", "exact"),
        (np.ones((400, 5), np.bool_), None, "mask", "exact"),
    ],
)
def test_kind_is_detected_from_the_reference(reference, labels, name: str, kind: str) -> None:
    assert detect_kind(reference, class_labels=labels is not None, name=name) == kind


@pytest.mark.parametrize("reference", [PROBS, LOGITS, REGRESSION, FEATURES], ids=["probs", "logits", "offset", "fmap"])
@pytest.mark.parametrize("link", [("onnxruntime-fp16", "savedmodel-fp32"), ("onnxruntime-int8", "savedmodel-fp32")])
def test_fp16_storage_rounding_passes_reduced_precision_on_every_kind_and_scale(
    reference: np.ndarray, link: tuple[str, str]
) -> None:
    """±25 logits, [0, 1] probabilities and 1000 ± 5 regression alike: bounds are scale-free, not tuned to one model."""
    result = compare(reference, fp16_round(reference), candidate_label=link[0], reference_label=link[1])
    assert result, result.report()


@pytest.mark.parametrize("reference", [PROBS, LOGITS, REGRESSION, FEATURES], ids=["probs", "logits", "offset", "fmap"])
def test_fp16_rounding_is_too_much_for_an_fp32_conversion(reference: np.ndarray) -> None:
    """fp32 stays tight: an fp32 file that behaves like fp16 is a conversion bug."""
    noisy = reference + (reference - fp16_round(reference)) * 20  # ~20 fp16 ulps: far beyond fp32 kernel noise
    assert not compare(reference, noisy, candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32")


def test_a_small_bias_shift_on_one_output_unit_fails_fp32() -> None:
    shifted = LOGITS.copy()
    shifted[:, 3] += 0.05 * LOGITS[:, 3].std()
    result = compare(
        LOGITS, shifted, candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32", kind="logits"
    )
    assert not result and any(v.startswith("max_err") for v in result.violations)


def test_one_value_rows_have_no_cosine_and_a_sign_change_is_not_a_verdict() -> None:
    """The cosine of a one-element row only says whether two signs agree (issue 9)."""
    ref = (0.02 * RNG.normal(size=(200, 1))).astype(np.float32)  # predictions around zero
    cand = ref + (0.001 * RNG.normal(size=ref.shape)).astype(np.float32)
    m = compute_metrics(ref, cand, kind="continuous")
    assert m.cosine is None and m.top1_agreement is None
    assert compare(ref, cand, candidate_label="onnxruntime-int8", reference_label="onnxruntime-fp32")


def test_regression_targets_give_a_report_and_an_opt_in_gate() -> None:
    """Float targets are reported (reference vs candidate RMS error), gated only when the user sets a bound: an
    accurate regression model's own error can be far below any precision's noise (issue 9, issue 10)."""
    targets = (REGRESSION + RNG.normal(size=REGRESSION.shape)).astype(np.float32)  # model error ~1
    cand = REGRESSION + 0.03 * RNG.normal(size=REGRESSION.shape).astype(np.float32)  # int8-like error 0.03
    kwargs = {"labels": targets, "candidate_label": "onnxruntime-int8", "reference_label": "savedmodel-fp32"}
    ok = compare(REGRESSION, cand, **kwargs)
    assert ok and ok.metrics is not None and ok.metrics.error_increase is not None and ok.metrics.error_increase < 0.01
    assert "RMS error vs targets: reference" in ok.report()
    shifted = REGRESSION + 2.0  # twice the model's error
    assert compare(REGRESSION, shifted, **kwargs).metrics.error_increase > 1.0  # type: ignore[union-attr]
    gated = TolerancePolicy().with_overrides(["int8.error_increase=0.05"])
    failed = compare(REGRESSION, shifted, policy=gated, **kwargs)
    assert not failed and any(v.startswith("error_increase") for v in failed.violations)


def _flip(probs: np.ndarray, row: int) -> np.ndarray:
    out = probs.copy()
    top2 = np.argsort(out[row])[-2:]
    out[row, top2] = out[row, top2[::-1]]
    return out


def test_a_flip_of_an_undecided_sample_is_noise_a_flip_of_a_confident_one_is_not() -> None:
    ref = PROBS.copy()
    margins = np.sort(ref, 1)[:, -1] - np.sort(ref, 1)[:, -2]
    undecided, confident = int(np.argmin(margins)), int(np.argmax(margins))
    noise = fp16_round(ref) + (1e-3 * RNG.normal(size=ref.shape)).astype(np.float32) * (margins.min() < 1e-3)
    near_tie = compare(
        ref, _flip(noise, undecided), candidate_label="onnxruntime-fp16", reference_label="savedmodel-fp32"
    )
    assert near_tie.metrics is not None and near_tie.metrics.top1_agreement < 1.0
    assert near_tie.metrics.confident_flips == 0.0, near_tie.report()
    decided = compare(
        ref, _flip(noise, confident), candidate_label="onnxruntime-fp16", reference_label="savedmodel-fp32"
    )
    assert not decided and any(v.startswith("confident_flips") for v in decided.violations), decided.report()


def test_accuracy_gate_is_relative_with_a_sampling_allowance() -> None:
    labels = PROBS.argmax(1)
    one_flip = _flip(PROBS, 0)
    m = compute_metrics(PROBS, one_flip, labels)
    assert m.accuracy_delta == pytest.approx(-1 / 400)
    assert m.accuracy_ratio == pytest.approx(min(1.0, (399 / 400 + 1.645 / 400) / 1.0))
    collapsed = np.tile(PROBS[:1], (400, 1))
    bad = compare(
        PROBS, collapsed, labels=labels, candidate_label="onnxruntime-int8", reference_label="savedmodel-fp32"
    )
    assert not bad and any(v.startswith("accuracy_ratio") for v in bad.violations)
    assert "one class for every sample" in bad.report()


def test_integer_outputs_must_match_exactly_in_fp32() -> None:
    ids = (np.arange(400) % 7).astype(np.int64)
    changed = ids.copy()
    changed[5] += 1
    assert compare(ids, ids.copy(), candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32")
    result = compare(ids, changed, candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32")
    assert not result and result.kind == "exact" and result.violations == ["mismatch 0.0025 (bound <= 0)"]


def test_nan_from_nan_inputs_is_shared_not_a_candidate_failure() -> None:
    ref, cand = PROBS.copy(), PROBS.copy()
    ref[4] = cand[4] = np.nan
    shared = compare(ref, cand, candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32")
    assert shared and shared.metrics is not None and shared.metrics.nonfinite_shared == 10
    cand[7, 0] = np.nan
    assert not compare(ref, cand, candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fp16.rms_err=nan", "finite number >= 0"),
        ("fp16.rms_err=-1", "finite number >= 0"),
        ("fp16.cosine=1.5", r"value in \[0, 1\]"),
        ("fp16.wobble=1", "expected bounds from"),
        ("fp99.rms_err=1", "policy entry"),
        ("fp16.softmaxes.rms_err=1", "expected a kind from"),
        ("fp16:.rms_err=1", "output name after ':'"),
        ("fp16.rms_err=abc", "KEY.BOUND=VALUE"),
    ],
)
def test_every_bound_a_user_sets_is_validated(override: str, message: str) -> None:
    with pytest.raises(InputValidationError, match=message):
        TolerancePolicy().with_overrides([override])


def test_bounds_refine_per_kind_and_per_output_and_none_switches_one_off() -> None:
    policy = TolerancePolicy().with_overrides(
        ["fp16.rms_err=0.5", "fp16.logits.p99_err=0.7", "fp16:value.p99_err=0.9", "fp16:value.cosine=none"]
    )
    assert policy.lookup("fp16").rms_err == 0.5
    assert policy.lookup("fp16", "logits").p99_err == 0.7
    assert policy.lookup("fp16", "probabilities").p99_err == TolerancePolicy().lookup("fp16").p99_err
    value = policy.lookup("fp16", "logits", "value")
    assert value.p99_err == 0.9 and value.cosine is None and value.rms_err == 0.5
    with pytest.raises(InputValidationError):
        Tolerance(rms_err=math.nan)


def test_output_kind_overrides_are_parsed_and_checked() -> None:
    assert parse_output_kinds(["logits=logits", "value=continuous"]) == {"logits": "logits", "value": "continuous"}
    with pytest.raises(InputValidationError, match="NAME=KIND"):
        parse_output_kinds(["logits"])
    with pytest.raises(InputValidationError, match="expected a kind from"):
        parse_output_kinds(["logits=softmax"])
    reference = {"value": REGRESSION}
    with pytest.raises(InputValidationError, match=r"needs \(N, classes≥2\) scores"):
        resolve_kinds(reference, {}, {"value": "logits"})
    with pytest.raises(InputValidationError, match="expected output names"):
        resolve_kinds(reference, {}, {"nope": "continuous"})


def test_each_output_is_compared_on_its_own_and_a_missing_one_fails() -> None:
    reference = {"probs": PROBS, "value": REGRESSION}
    candidate = {"probs": PROBS.copy(), "value": REGRESSION + 1.0}
    results = compare_outputs(
        reference, candidate, candidate_label="onnxruntime-fp32", reference_label="savedmodel-fp32"
    )
    assert [(r.output, r.kind, bool(r)) for r in results] == [
        ("probs", "probabilities", True), ("value", "continuous", False)
    ]  # fmt: skip
    assert "output 'value' (continuous)" in results[1].report()
    missing = compare_outputs(reference, {"probs": PROBS}, candidate_label="onnxruntime-fp32")
    assert not missing[1] and "output 'value' missing" in (missing[1].structural_error or "")


# ------------------------------------------------------------------------------ the data / reference stage


def _stage(inputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], labels: dict[str, np.ndarray],
           calibration: Dataset | None = None):  # fmt: skip
    data = Dataset(inputs, {"": labels.pop("")} if "" in labels else labels, "test.npz")
    resolved = resolve_labels(data.labels, reference)
    return check_reference(data, reference, resolved, resolve_kinds(reference, resolved, None), calibration)


IMAGES = RNG.random((400, 4, 4, 3), dtype=np.float32)


def test_a_sound_reference_passes_the_data_stage() -> None:
    row = _stage({"x": IMAGES}, {"probs": PROBS}, {"": PROBS.argmax(1)}, Dataset.single(IMAGES[:100]))
    assert row and row.stage == "data / reference"


def test_shuffled_labels_put_the_reference_at_chance() -> None:
    labels = RNG.permutation(PROBS.argmax(1))
    row = _stage({"x": IMAGES}, {"probs": PROBS}, {"": labels})
    assert not row and "at chance for 10 classes" in row.report() and "data or the reference model" in row.report()


def test_labels_out_of_range_do_not_fit_the_output() -> None:
    row = _stage({"x": IMAGES}, {"probs": PROBS}, {"": PROBS.argmax(1) + 5})
    assert not row and "do not fit this output" in row.report()


def test_nan_inputs_are_a_data_problem() -> None:
    images = IMAGES.copy()
    images[[3, 9]] = np.nan
    row = _stage({"x": images}, {"probs": PROBS}, {})
    assert not row and "NaN/Inf in 2 samples (first: [3, 9])" in row.report()


def test_inputs_scaled_by_255_against_the_calibration_range_are_a_data_problem() -> None:
    row = _stage({"x": IMAGES * 255}, {"probs": PROBS}, {}, Dataset.single(IMAGES[:100]))
    assert not row and "0..255 instead of 0..1" in row.report()


def test_targets_the_reference_does_not_explain() -> None:
    row = _stage({"x": IMAGES}, {"value": REGRESSION}, {"": RNG.permutation(REGRESSION)})
    assert not row and "no better than predicting the targets' mean" in row.report()


def test_class_labels_that_fit_no_output_are_not_used_and_said_so() -> None:
    """An embedding model's file with class labels: the labels cannot index a 64-d embedding (no false alarm)."""
    embedding = RNG.normal(size=(400, 64)).astype(np.float32)
    notes: list[str] = []
    assert resolve_labels({"": PROBS.argmax(1)}, {"embedding": embedding}, notes) == {}
    assert notes and "fit no output" in notes[0] and "y:<output>" in notes[0]


def test_ambiguous_labels_ask_for_y_colon_output() -> None:
    with pytest.raises(InputValidationError, match="y:<output>"):
        resolve_labels({"": PROBS.argmax(1)}, {"a": PROBS, "b": PROBS})
    with pytest.raises(InputValidationError, match="expected an output name"):
        resolve_labels({"nope": PROBS.argmax(1)}, {"a": PROBS})


def test_a_fault_in_the_variation_of_an_offset_output_is_caught() -> None:
    """1000 ± 5: value-relative errors cannot see a fault in the ± 5, spread_err (error / output std) does."""
    scaled = (1000 + 1.25 * (REGRESSION - 1000)).astype(np.float32)  # one layer ×1.25 in a regression head
    collapsed = np.full_like(REGRESSION, float(REGRESSION.mean()))  # int8 calibrated on the wrong range
    for candidate, label in ((scaled, "onnxruntime-fp16"), (collapsed, "onnxruntime-int8")):
        result = compare(REGRESSION, candidate, candidate_label=label, reference_label="savedmodel-fp32")
        assert not result and any(v.startswith("spread_err") for v in result.violations), result.report()
        assert result.metrics is not None and result.metrics.rms_err is not None and result.metrics.rms_err < 0.01
