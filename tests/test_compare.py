"""Metrics on known arrays, tolerance policy, reports and stage blame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trt_equiv.compare import (
    EquivalenceError,
    Tolerance,
    TolerancePolicy,
    assert_equivalent,
    assign_blame,
    blame_stage,
    chain_links,
    compare,
    compute_metrics,
)
from trt_equiv.errors import InputValidationError


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def probs() -> np.ndarray:
    return softmax(np.random.default_rng(0).normal(size=(50, 10)) * 3)


def test_identical_outputs_have_zero_error(probs: np.ndarray) -> None:
    m = compute_metrics(probs, probs.copy(), labels=probs.argmax(1))
    assert m.kind == "probabilities" and m.scale == 1.0
    assert m.max_abs == m.mean_abs == m.p99_abs == m.rel_l2 == m.rms_err == m.p99_err == m.max_err == 0.0
    assert m.top1_agreement == 1.0 and m.confident_flips == 0.0
    assert m.cosine is None  # probabilities are judged by value errors and decisions
    assert m.accuracy_reference == m.accuracy_candidate == 1.0 and m.accuracy_delta == 0.0


def test_known_difference() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    cand = np.array([[0.5, 0.5], [0.0, 1.0]], np.float32)
    m = compute_metrics(ref, cand, labels=np.array([0, 1]))
    assert m.max_abs == pytest.approx(0.5)
    assert m.mean_abs == pytest.approx(0.25)
    assert m.rel_l2 == pytest.approx(math.sqrt(0.5) / math.sqrt(2))
    assert m.max_err == pytest.approx(0.5 / (1.0 + 0.0))  # |Δ| / (scale + |reference|), scale 1 for probabilities
    assert m.worst_index == 0
    assert m.accuracy_candidate == 1.0  # argmax of a tie is the first class


def test_permuted_rows_are_caught(probs: np.ndarray) -> None:
    perm = np.random.default_rng(1).permutation(len(probs))
    result = compare(probs, probs[perm], reference_label="savedmodel-fp32", candidate_label="onnxruntime-fp32")
    assert not result
    assert result.metrics is not None and result.metrics.top1_agreement < 0.5
    assert any(v.startswith("max_err") for v in result.violations)


def test_nan_in_candidate_always_fails(probs: np.ndarray) -> None:
    cand = probs.copy()
    cand[3, 2] = np.nan
    generous = Tolerance(max_abs=None, top1_agreement=0.0)
    result = compare(probs, cand, tolerance=generous)
    assert not result
    assert result.violations[0] == "candidate contains 1 NaN/Inf values where the reference is finite"
    assert result.metrics is not None and math.isinf(result.metrics.max_abs) and result.metrics.worst_index == 3


def test_inf_in_candidate_fails(probs: np.ndarray) -> None:
    cand = probs.copy()
    cand[0, 0] = np.inf
    assert not compare(probs, cand, tolerance=Tolerance())


def test_count_mismatch_is_a_structural_failure(probs: np.ndarray) -> None:
    result = compare(probs, probs[:48])
    assert not result
    assert result.structural_error == (
        "count: reference has 50 rows, candidate has 48: samples were dropped or duplicated"
    )


def test_shape_and_dtype_checked_before_values(probs: np.ndarray) -> None:
    assert "shape" in (compare(probs, probs[:, :5]).structural_error or "")
    assert "dtype" in (compare(probs, probs.astype(np.int32)).structural_error or "")


def test_metrics_reject_mismatched_shapes_and_labels(probs: np.ndarray) -> None:
    with pytest.raises(InputValidationError, match="equal shapes"):
        compute_metrics(probs, probs[:, :3])
    with pytest.raises(InputValidationError, match="expected 50 labels, got 3"):
        compute_metrics(probs, probs, labels=np.array([1, 2, 3]))


def test_chance_level_and_collapsed_outputs_are_diagnosed(probs: np.ndarray) -> None:
    labels = probs.argmax(1)
    collapsed = np.tile(probs[:1], (len(probs), 1))
    report = compare(probs, collapsed, labels=labels, candidate_label="tensorrt-int8").report()
    assert "one class for every sample" in report
    assert "chance level for 10 classes" in report


def test_failure_message_names_everything(probs: np.ndarray) -> None:
    cand = probs.copy()
    cand[7] = cand[7][::-1]
    with pytest.raises(EquivalenceError) as info:
        assert_equivalent(probs, cand, reference_label="savedmodel-fp32", candidate_label="onnxruntime-fp32",
                          labels=probs.argmax(1), batch_size=16)  # fmt: skip
    text = str(info.value)
    assert "FAIL: onnxruntime-fp32 vs reference savedmodel-fp32 (batch size 16, policy 'fp32')" in text
    assert "blamed stage: conversion (tf2onnx)" in text
    assert "max_err" in text and "VIOLATED" in text
    assert "worst sample: index 7" in text
    assert info.value.comparison.metrics is not None


def test_comparison_is_truthy_and_prints_a_row(probs: np.ndarray) -> None:
    result = compare(probs, probs + 1e-7, reference_label="savedmodel-fp32", candidate_label="onnxruntime-fp32")
    assert result and result.verdict == "PASS"
    row = result.row()
    assert row["candidate"] == "onnxruntime-fp32" and row["verdict"] == "PASS" and row["policy"] == "fp32"


@pytest.mark.parametrize(
    ("candidate", "reference", "key"),
    [
        ("onnxruntime-fp32", "savedmodel-fp32", "fp32"),
        ("onnxruntime-fp16", "savedmodel-fp32", "fp16"),
        ("onnxruntime-int8", "onnxruntime-fp32", "int8"),
        ("tensorrt-fp32", "onnxruntime-fp32", "tf32"),
        ("tensorrt-fp32-strict", "onnxruntime-fp32", "fp32"),
        ("tensorrt-fp16", "onnxruntime-fp16", "fp16@same"),
        ("tensorrt-int8", "savedmodel-fp32", "int8"),
        ("cpp-int8", "tensorrt-int8", "cpp@same"),
        ("cpp-fp32", "tensorrt-fp32", "cpp@same"),
        ("cpp-fp16", "onnxruntime-fp16", "fp16@same"),
        ("tensorrt-fp32", "savedmodel-fp32", "tf32"),
    ],
)
def test_policy_key_per_link(candidate: str, reference: str, key: str) -> None:
    assert TolerancePolicy.key_for(candidate, reference) == key


def test_policy_overrides_are_data() -> None:
    policy = TolerancePolicy().with_overrides(["fp16.max_abs=0.5", "int8.min_accuracy=0.9", "fp16.cosine=none"])
    assert policy.lookup("fp16").max_abs == 0.5
    assert policy.lookup("int8").min_accuracy == 0.9
    assert policy.lookup("fp16").cosine is None and TolerancePolicy().lookup("fp16").cosine is not None
    assert TolerancePolicy().lookup("fp16").max_abs != 0.5  # the default is untouched
    with pytest.raises(InputValidationError, match="KEY.BOUND=VALUE"):
        TolerancePolicy().with_overrides(["fp16max_abs"])
    with pytest.raises(InputValidationError, match="expected bounds from"):
        TolerancePolicy().with_overrides(["fp16.max_rel=1"])
    with pytest.raises(InputValidationError, match="policy entry"):
        TolerancePolicy().with_overrides(["fp64.max_abs=1"])


def test_accuracy_bounds(probs: np.ndarray) -> None:
    labels = probs.argmax(1)
    worse = probs.copy()
    worse[:5] = worse[:5][:, ::-1]  # 5 of 50 samples now wrong: accuracy drops by 0.1
    result = compare(probs, worse, labels=labels, tolerance=Tolerance(accuracy_drop=0.05))
    assert not result and result.violations == ["accuracy_drop 0.1000 (bound <= 0.0500)"]
    assert not compare(probs, worse, labels=labels, tolerance=Tolerance(min_accuracy=0.95))


def test_chain_links_pick_the_nearest_upstream() -> None:
    labels = ["savedmodel-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "tensorrt-fp16", "cpp-fp16", "tensorrt-int8"]
    assert chain_links(labels) == [
        ("savedmodel-fp32", "onnxruntime-fp32"),
        ("onnxruntime-fp32", "onnxruntime-fp16"),
        ("onnxruntime-fp16", "tensorrt-fp16"),
        ("tensorrt-fp16", "cpp-fp16"),
        ("onnxruntime-fp32", "tensorrt-int8"),
    ]


@pytest.mark.parametrize(
    ("reference", "candidate", "stage"),
    [
        ("savedmodel-fp32", "onnxruntime-fp32", "conversion (tf2onnx)"),
        ("onnxruntime-fp32", "onnxruntime-int8", "precision recipe (int8)"),
        ("savedmodel-fp32", "onnxruntime-fp16", "precision recipe (fp16)"),
        ("onnxruntime-fp16", "tensorrt-fp16", "TensorRT engine"),
        ("tensorrt-fp16", "cpp-fp16", "C++ runner"),
    ],
)
def test_blame_stage(reference: str, candidate: str, stage: str) -> None:
    assert blame_stage(reference, candidate) == stage


def test_blame_goes_to_the_most_upstream_failing_link(probs: np.ndarray) -> None:
    broken = probs[::-1].copy()  # conversion broke: everything downstream differs from the SavedModel
    outputs = {"savedmodel-fp32": probs, "onnxruntime-fp32": broken, "onnxruntime-fp16": broken}
    links = chain_links(list(outputs))
    results = [compare(outputs["savedmodel-fp32"], outputs[c], reference_label="savedmodel-fp32", candidate_label=c)
               for c in ("onnxruntime-fp32", "onnxruntime-fp16")]  # fmt: skip
    results.append(compare(broken, broken, reference_label="onnxruntime-fp32", candidate_label="onnxruntime-fp16"))
    assign_blame(results, links)
    assert [r.stage for r in results[:2]] == ["conversion (tf2onnx)", "conversion (tf2onnx)"]
    assert results[2]  # the recipe link itself is fine


def test_tensorrt_candidates_bring_their_onnxruntime_stages() -> None:
    """With --backends tensorrt,cpp a broken recipe must still be blamed on the recipe, not the engine."""
    from trt_equiv.check import _with_upstream_stages

    pairs = _with_upstream_stages([("tensorrt", "fp16"), ("cpp", "fp32-strict")])
    assert pairs == [("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("tensorrt", "fp16"), ("cpp", "fp32-strict")]
    links = chain_links([f"{b}-{p}" for b, p in [("savedmodel", "fp32"), *pairs]])
    assert ("onnxruntime-fp16", "tensorrt-fp16") in links and ("onnxruntime-fp32", "onnxruntime-fp16") in links
