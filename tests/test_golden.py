"""Golden outputs: saved once with provenance, loaded back without TensorFlow, refused when they do not fit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.backends.base import TensorSpec
from trt_equiv.cache_dir import content_hash
from trt_equiv.cli import EXIT_USAGE, build_parser, main
from trt_equiv.data import BUNDLED_MODEL, BUNDLED_TEST, Dataset, load_npz
from trt_equiv.errors import InputValidationError
from trt_equiv.golden import (
    FORMAT_VERSION,
    META_KEY,
    golden_matches_outputs,
    inputs_sha256,
    load_golden,
    read_golden_meta,
)
from trt_equiv.runtime import package_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def golden_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A golden file of the bundled model on the bundled test set, written by the CLI."""
    out = tmp_path_factory.mktemp("golden") / "golden.npz"
    assert main(["golden", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """The SavedModel's outputs computed directly, to compare the golden file with."""
    from trt_equiv.backends.savedmodel import SavedModelBackend

    with SavedModelBackend(BUNDLED_MODEL) as sm:
        assert sm.input_specs is not None
        return sm.infer(load_npz(BUNDLED_TEST).bind(sm.input_specs).feeds())


def _rewrite(src: Path, dst: Path, meta_change: dict | None = None, drop: str | None = None) -> Path:
    """A copy of a golden file with its record changed or a member left out."""
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != drop}
    if meta_change is not None:
        meta = json.loads(arrays[META_KEY].tobytes())
        meta.update(meta_change)
        arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(dst, **arrays)
    return dst


def test_golden_round_trip_equals_the_savedmodel(golden_file: Path, reference: dict[str, np.ndarray]) -> None:
    outputs = load_golden(golden_file, load_npz(BUNDLED_TEST))
    assert sorted(outputs) == sorted(reference)
    for name, expected in reference.items():
        assert outputs[name].dtype == np.float32
        np.testing.assert_array_equal(outputs[name], expected.astype(np.float32))


def test_golden_record_holds_the_provenance(golden_file: Path, reference: dict[str, np.ndarray]) -> None:
    meta = read_golden_meta(golden_file)
    data = load_npz(BUNDLED_TEST)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["model"]["sha256"] == content_hash([BUNDLED_MODEL])
    assert meta["data"]["samples"] == len(data)
    (name,) = [r["name"] for r in meta["inputs"]]  # the bundled model has one input, stored under its own name
    assert meta["data"]["sha256"] == inputs_sha256({name: data.x})
    assert meta["inputs"][0]["shape"] == list(data.x.shape) and meta["inputs"][0]["dtype"] == "float32"
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {k: list(v.shape) for k, v in reference.items()}
    assert meta["tensorflow"] == package_version("tensorflow", "tensorflow-cpu", "tf-nightly") != "none"
    assert meta["machine"]["hostname"] and meta["machine"]["cpu"] and meta["created"].endswith("+00:00")


def test_data_hash_ignores_labels_but_not_values() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    base = inputs_sha256({"a": x})
    assert inputs_sha256({"a": x.copy()}) == base
    assert inputs_sha256({"b": x}) != base  # names count
    assert inputs_sha256({"a": x.reshape(3, 2, 2)}) != base  # shapes count
    y = x.copy()
    y[2, 3] = np.nextafter(y[2, 3], np.float32(100))
    assert inputs_sha256({"a": y}) != base


def test_golden_for_other_data_is_refused(golden_file: Path) -> None:
    data = load_npz(BUNDLED_TEST)
    x = data.x.copy()
    x[5, 0, 0, 0] += 0.5
    with pytest.raises(InputValidationError, match="made from other data.*different values: data sha256"):
        load_golden(golden_file, Dataset.single(x, source="changed.npz"))
    with pytest.raises(InputValidationError, match=f"made from {len(data)} samples, the data has 10"):
        load_golden(golden_file, data.take(10))
    with pytest.raises(InputValidationError, match="does not fit the recorded inputs"):
        load_golden(golden_file, Dataset({"x": x[..., :2]}, source="narrow.npz"))


def test_golden_from_a_newer_format_is_refused(golden_file: Path, tmp_path: Path) -> None:
    newer = _rewrite(golden_file, tmp_path / "newer.npz", {"format_version": FORMAT_VERSION + 1})
    with pytest.raises(InputValidationError, match=f"format version {FORMAT_VERSION + 1} by a newer trt_equiv"):
        load_golden(newer, load_npz(BUNDLED_TEST))


def test_malformed_golden_files_are_refused(golden_file: Path, tmp_path: Path) -> None:
    data = load_npz(BUNDLED_TEST)
    truncated = tmp_path / "truncated.npz"
    raw = golden_file.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    no_meta = _rewrite(golden_file, tmp_path / "nometa.npz", drop=META_KEY)
    output_key = next(k for k in np.load(golden_file).files if k.startswith("out:"))
    no_output = _rewrite(golden_file, tmp_path / "nooutput.npz", drop=output_key)
    not_golden = _rewrite(golden_file, tmp_path / "other.npz", {"format": "something-else"})
    cases = {
        truncated: "expected a readable golden .npz",
        no_meta: "expected a '__meta__' member",
        no_output: f"expected output member '{output_key}.npy'",
        not_golden: "expected a 'trt-equiv-golden' record",
        BUNDLED_TEST: "expected a '__meta__' member",  # a data file is not a golden file
        tmp_path / "missing.npz": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(InputValidationError, match=f"golden file {path}: .*{message}"):
            load_golden(path, data)


def test_candidate_outputs_must_match_by_name_and_shape(golden_file: Path) -> None:
    meta = read_golden_meta(golden_file)
    (out,) = meta["outputs"]
    (inp,) = meta["inputs"]
    shape = tuple(out["shape"][1:])
    golden_matches_outputs(meta, [TensorSpec(out["name"], None, shape)])
    golden_matches_outputs(meta, [TensorSpec(out["name"], None, None)])  # undeclared shape: name only
    golden_matches_outputs(meta, [TensorSpec(out["name"], None, (None,) * len(shape))],
                           [TensorSpec(inp["name"], np.dtype(np.float32), tuple(inp["shape"][1:]))])  # fmt: skip
    with pytest.raises(InputValidationError, match=r"outputs differ by name.*missing from the golden file \['probs'\]"):
        golden_matches_outputs(meta, [TensorSpec("probs", None, shape)])
    with pytest.raises(InputValidationError, match=rf"output '{out['name']}': the candidate's per-sample shape"):
        golden_matches_outputs(meta, [TensorSpec(out["name"], None, (shape[0] + 1,))])
    with pytest.raises(InputValidationError, match="inputs differ by name"):
        golden_matches_outputs(meta, [TensorSpec(out["name"], None, shape)], [TensorSpec("other", None, None)])


def test_load_golden_works_without_tensorflow(golden_file: Path) -> None:
    """A GPU runner without TensorFlow: the loader must not import it (made unimportable here)."""
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "from trt_equiv.data import load_npz\n"
        "from trt_equiv.golden import load_golden\n"
        f"out = load_golden({str(golden_file)!r}, load_npz({str(BUNDLED_TEST)!r}))\n"
        "print({k: v.shape for k, v in out.items()})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    meta = read_golden_meta(golden_file)
    assert proc.stdout.strip() == str({o["name"]: tuple(o["shape"]) for o in meta["outputs"]})


def test_cli_golden_needs_data_for_a_users_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, model)
    assert main(["golden", "--model", str(model), "--out", str(tmp_path / "g.npz")]) == EXIT_USAGE
    assert "--data: expected a .npz data file for a user's model" in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists()


def test_check_and_plugin_take_a_golden_file(pytester: pytest.Pytester) -> None:
    assert build_parser().parse_args(["check", "--golden", "g.npz"]).golden == "g.npz"
    pytester.makepyfile(
        """
        from trt_equiv.plugin import GOLDEN_KEY

        def test_stash(pytestconfig):
            assert pytestconfig.stash[GOLDEN_KEY] == "g.npz"
        """
    )
    pytester.runpytest("--trt-equiv-golden", "g.npz").assert_outcomes(passed=1)
