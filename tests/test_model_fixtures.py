"""The multi-layout test models (fixtures/models, issue 10) are what their documentation says they are.

They are fixtures for the named-tensor pipeline, so a silent drift (a renamed signature input, a data file
keyed by the wrong name, a calibration set that overlaps the test set, a model that no longer learns) would
make the tests built on them prove nothing. The expected layouts below are written out from the brief, not
read from the files, and info.json is checked against them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trt_equiv.runtime import require

MODELS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "models"

Spec = tuple[str, str, tuple[int | None, ...]]  # name, dtype, shape with the batch first (None = dynamic)

#: name → (inputs, outputs as (name, dtype, shape, kind)), in the declared order
EXPECTED: dict[str, tuple[list[Spec], list[tuple[str, str, tuple[int | None, ...], str]]]] = {
    "two_in_two_out": (
        [("image", "float32", (None, 16, 16, 3)), ("side", "float32", (None, 4))],
        [("class_probs", "float32", (None, 5), "probabilities"), ("value", "float32", (None, 1), "continuous")],
    ),
    "tokens": (
        [("ids", "int32", (None, None)), ("mask", "int32", (None, None))],
        [("probs", "float32", (None, 4), "probabilities")],
    ),
    "flat_dense": ([("pixels", "float32", (None, 64))], [("probs", "float32", (None, 10), "probabilities")]),
    "nchw": ([("image_nchw", "float32", (None, 3, 32, 32))], [("probs", "float32", (None, 10), "probabilities")]),
    "one_in_two_out": (
        [("image", "float32", (None, 16, 16, 3))],
        [("logits", "float32", (None, 10), "logits"), ("embedding", "float32", (None, 16), "continuous")],
    ),
}

#: test files per model and, for the token model, the padded sequence length of each file
TEST_FILES = {"tokens": {"test_len12.npz": 12, "test_len20.npz": 20}}
CALIBRATION_LENGTH = {"tokens": 16}
CLASSIFIERS = {
    "two_in_two_out": "class_probs",
    "tokens": "probs",
    "flat_dense": "probs",
    "nchw": "probs",
    "one_in_two_out": "logits",
}
REGRESSIONS = {"two_in_two_out": "value"}


def files_of(name: str) -> list[str]:
    return list(TEST_FILES.get(name, {"test.npz": 0}))


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def input_keys(name: str) -> list[str]:
    """Data-file keys of the inputs: the input names, or ``x`` for a single-input model."""
    inputs = EXPECTED[name][0]
    return ["x"] if len(inputs) == 1 else [spec[0] for spec in inputs]


def label_keys(name: str) -> dict[str, str]:
    """Data-file label key → output it labels: ``y`` for a single output, ``y:<output>`` otherwise."""
    outputs = [o[0] for o in EXPECTED[name][1]]
    labelled = [o for o in outputs if o in (CLASSIFIERS[name], REGRESSIONS.get(name))]
    if len(outputs) == 1:
        return {"y": outputs[0]}
    return {f"y:{o}": o for o in labelled}


def per_sample_matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    if len(shape) != len(expected) - 1:
        return False
    return all(e is None or s == e for s, e in zip(shape, expected[1:], strict=True))


@pytest.fixture(scope="module")
def tf() -> Any:
    return require("tensorflow")


@pytest.fixture(scope="module")
def signatures(tf: Any) -> Iterator[dict[str, Any]]:
    """serving_default of every model, loaded once for the module (loading is the slow part)."""
    yield {
        name: tf.saved_model.load(str(MODELS_DIR / name / "savedmodel")).signatures["serving_default"]
        for name in EXPECTED
    }


def test_every_model_directory_is_expected_and_complete() -> None:
    found = sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    assert found == sorted(EXPECTED)
    for name in EXPECTED:
        for file in ["savedmodel/saved_model.pb", "calibration.npz", "info.json", *files_of(name)]:
            assert (MODELS_DIR / name / file).is_file(), f"{name}: missing {file}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_json_documents_the_layout(name: str) -> None:
    info = json.loads((MODELS_DIR / name / "info.json").read_text())
    inputs, outputs = EXPECTED[name]
    assert info["signature"] == "serving_default"
    assert [(i["name"], i["dtype"], tuple(i["shape"])) for i in info["inputs"]] == inputs
    assert [(o["name"], o["dtype"], tuple(o["shape"]), o["kind"]) for o in info["outputs"]] == outputs
    assert info["test_files"] == files_of(name) and info["calibration_file"] == "calibration.npz"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_signature_has_the_documented_names_dtypes_and_shapes(name: str, signatures: dict[str, Any]) -> None:
    fn = signatures[name]
    args, kwargs = fn.structured_input_signature
    assert args == ()  # every input is keyword-only: callers must feed by name
    got_in = {k: (v.dtype.name, tuple(v.shape.as_list())) for k, v in kwargs.items()}
    assert got_in == {n: (d, s) for n, d, s in EXPECTED[name][0]}
    got_out = {k: (v.dtype.name, tuple(v.shape.as_list())) for k, v in fn.structured_outputs.items()}
    assert got_out == {n: (d, s) for n, d, s, _ in EXPECTED[name][1]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_data_files_match_the_signature(name: str) -> None:
    inputs = dict(zip(input_keys(name), EXPECTED[name][0], strict=True))
    outputs = {o[0]: o for o in EXPECTED[name][1]}
    for file in [*files_of(name), "calibration.npz"]:
        arrays = load(MODELS_DIR / name / file)
        labels = label_keys(name) if file != "calibration.npz" else {}
        assert sorted(arrays) == sorted([*inputs, *labels]), f"{name}/{file}: keys"
        n = len(arrays[next(iter(inputs))])
        assert n > 0
        for key, (_, dtype, shape) in inputs.items():
            a = arrays[key]
            assert a.dtype == np.dtype(dtype) and len(a) == n, f"{name}/{file}:{key} {a.dtype} {a.shape}"
            assert per_sample_matches(a.shape[1:], shape), f"{name}/{file}:{key} shape {a.shape} vs {shape}"
            if np.issubdtype(a.dtype, np.floating):
                assert np.isfinite(a).all()
        for key, output in labels.items():
            y = arrays[key]
            assert len(y) == n, f"{name}/{file}:{key}"
            if output == REGRESSIONS.get(name):
                assert y.dtype == np.float32 and y.shape[1:] == outputs[output][2][1:] and np.isfinite(y).all()
            else:
                classes = outputs[output][2][1]
                assert y.dtype == np.int64 and y.ndim == 1
                assert y.min() >= 0 and y.max() < classes and len(np.unique(y)) == classes  # every class present
        if name in CALIBRATION_LENGTH or name in TEST_FILES:
            length = CALIBRATION_LENGTH[name] if file == "calibration.npz" else TEST_FILES[name][file]
            assert arrays["ids"].shape[1] == length and arrays["mask"].shape == arrays["ids"].shape
            mask = arrays["mask"]
            assert set(np.unique(mask)) <= {0, 1} and (mask.sum(axis=1) >= 1).all()
            assert (arrays["ids"][mask == 0] == 0).all(), "padding ids must be 0"
            assert len(np.unique(mask.sum(axis=1))) > 1, "real lengths must vary within a file"


def sample_keys(name: str, arrays: dict[str, np.ndarray]) -> set[bytes]:
    """One hashable key per sample: the inputs' bytes (for tokens, the unpadded sequence)."""
    keys = input_keys(name)
    n = len(arrays[keys[0]])
    if name == "tokens":
        return {arrays["ids"][i][arrays["mask"][i] == 1].tobytes() for i in range(n)}
    return {b"".join(np.ascontiguousarray(arrays[k][i]).tobytes() for k in keys) for i in range(n)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_calibration_is_disjoint_from_test(name: str) -> None:
    calibration = sample_keys(name, load(MODELS_DIR / name / "calibration.npz"))
    assert len(calibration) >= 100
    for file in files_of(name):
        test = sample_keys(name, load(MODELS_DIR / name / file))
        assert test.isdisjoint(calibration), f"{name}: {len(test & calibration)} samples of {file} are in calibration"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_beats_chance_on_its_test_data(name: str, tf: Any, signatures: dict[str, Any]) -> None:
    fn = signatures[name]
    info = json.loads((MODELS_DIR / name / "info.json").read_text())
    feed_names = [spec[0] for spec in EXPECTED[name][0]]
    for file in files_of(name):
        arrays = load(MODELS_DIR / name / file)
        feeds = {n: tf.constant(arrays[k]) for n, k in zip(feed_names, input_keys(name), strict=True)}
        out = {k: v.numpy() for k, v in fn(**feeds).items()}
        for key, output in label_keys(name).items():
            y = arrays[key]
            if output == REGRESSIONS.get(name):
                rmse = float(np.sqrt(np.mean((out[output] - y) ** 2)))
                std = float(y.std())
                assert rmse < 0.5 * std, f"{name}/{file}:{output} rmse {rmse:.4f} vs target std {std:.4f}"
                continue
            classes = out[output].shape[1]
            acc = float(np.mean(out[output].argmax(axis=1) == y))
            assert acc > 0.8, f"{name}/{file}:{output} accuracy {acc:.4f} (chance {1 / classes:.2f})"
            recorded = [
                v
                for k, v in info["metrics"].items()
                if k.startswith("test_accuracy") and (len(files_of(name)) == 1 or k.endswith(file))
            ]
            assert recorded and abs(recorded[0] - acc) < 1e-3, f"{name}/{file}: info.json says {recorded}, got {acc}"
        for output, _, _, kind in EXPECTED[name][1]:
            sums = out[output].sum(axis=1)
            if kind == "probabilities":
                np.testing.assert_allclose(sums, 1.0, atol=1e-5, err_msg=f"{name}:{output} is not a softmax")
            elif kind == "logits":
                assert not np.allclose(sums, 1.0, atol=1e-3), f"{name}:{output} looks like probabilities"
