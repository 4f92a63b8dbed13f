"""Several named inputs and outputs through the real C++ runner core (CLI, npy I/O, batching with a partial last
batch across all inputs, dtype conversion, --describe, --output-dir) with the CPU test engine: a float32 feature
input, an int64 token input with a dynamic sequence length and a bool mask, and two outputs.

The CPU engine (cpp/testing/cpu_engine.hpp) computes, per row i, from the concatenation x_i of every input's row:
output 0 = [scale*sum(x_i)+bias, copy_scale*x_i[0], x_i[last]] and output 1 = the per-input row sums, so a row
of one input paired with another input's row, a dropped or reordered row, shows in the output.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.backends.cpp import CppRunnerBackend
from trt_equiv.errors import InputValidationError, RunnerError

SCALE, BIAS, COPY = 2.0, 0.5, -3.0


def write_engine(path: Path, *inputs: str, output2: str | None = "per_input/sums:0", **extra: int) -> Path:
    lines = ["trt-equiv-cpu-engine 1", *(f"input {spec}" for spec in inputs), "output_name probs"]
    lines += [f"output2 {output2}"] if output2 else []
    lines += [f"scale {SCALE}", f"bias {BIAS}", f"copy_scale {COPY}", *(f"{k} {v}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reference(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """What the CPU engine computes, in float64 then float32 (values are exact small integers/eighths)."""
    flats = [a.reshape(a.shape[0], -1).astype(np.float64) for a in arrays]
    cat = np.concatenate(flats, axis=1)
    out0 = np.stack([SCALE * cat.sum(axis=1) + BIAS, COPY * cat[:, 0], cat[:, -1]], axis=1).astype(np.float32)
    out1 = np.stack([f.sum(axis=1) for f in flats], axis=1).astype(np.float32)
    return out0, out1


def token_inputs(n: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feats = (rng.integers(-64, 64, size=(n, 3)) / 8).astype(np.float32)
    feats[:, 0] = np.arange(n)  # row identity
    return {
        "feats": feats,
        "ids": rng.integers(0, 30000, size=(n, seq)).astype(np.int64),
        "mask": rng.random((n, seq)) < 0.7,
    }


ENGINE_INPUTS = ("feats float32 3", "ids int32 -1", "mask bool -1")


@pytest.mark.parametrize("seq", [5, 17])  # one engine, two sequence lengths
def test_backend_runs_named_inputs_at_two_sequence_lengths_with_a_partial_last_batch(
    cpu_runner: Path, tmp_path: Path, seq: int
) -> None:
    engine = write_engine(tmp_path / "tok.engine", *ENGINE_INPUTS, max_batch=8)
    x = token_inputs(21, seq)  # 21 = 8 + 8 + 5 at batch 8
    with CppRunnerBackend(engine, binary=cpu_runner, batch_size=8) as backend:
        assert backend.input_names == ["feats", "ids", "mask"]
        assert backend.output_names == ["probs", "per_input/sums:0"]
        assert backend.input_specs is not None and backend.input_specs[1].shape == (None,)
        out = backend.infer(dict(reversed(list(x.items()))))  # any order: matched by name
        assert backend.last_timing is not None and backend.last_timing["batches_per_pass"] == 3
        assert backend.last_timing["last_batch_rows"] == 5
    want0, want1 = reference([x["feats"], x["ids"], x["mask"]])  # int64 ids went through the engine's int32
    np.testing.assert_array_equal(out["probs"], want0)
    np.testing.assert_array_equal(out["per_input/sums:0"], want1)


def test_int64_values_beyond_int32_are_an_input_error_naming_the_input(cpu_runner: Path, tmp_path: Path) -> None:
    engine = write_engine(tmp_path / "tok.engine", *ENGINE_INPUTS)
    x = token_inputs(4, 6)
    x["ids"][2, 3] = 2**40
    with (
        CppRunnerBackend(engine, binary=cpu_runner) as backend,
        pytest.raises(RunnerError, match=r"exit code 3[\s\S]*input 'ids'\): int64 value 1099511627776 .* does not fit"),
    ):
        backend.infer(x)


def test_missing_and_mismatched_inputs_are_refused_before_running(cpu_runner: Path, tmp_path: Path) -> None:
    engine = write_engine(tmp_path / "tok.engine", *ENGINE_INPUTS)
    x = token_inputs(4, 6)
    with CppRunnerBackend(engine, binary=cpu_runner) as backend:
        with pytest.raises(InputValidationError, match=r"missing \['mask'\]"):
            backend.infer({k: v for k, v in x.items() if k != "mask"})
        with pytest.raises(InputValidationError, match="one batch size across inputs"):
            backend.infer({**x, "mask": x["mask"][:3]})
        with pytest.raises(InputValidationError, match="pass the inputs as a mapping"):
            backend.infer(x["feats"])


def run(binary: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def test_cli_several_inputs_output_dir_and_describe(cpu_runner: Path, tmp_path: Path) -> None:
    engine = write_engine(tmp_path / "two.engine", "a float32 2 2", "b float16 3", max_batch=4)
    info = json.loads(run(cpu_runner, "--engine", engine, "--describe").stdout)
    assert info["schema"] == "trt-equiv-runner-engine/2"
    assert [(t["name"], t["dtype"], t["sample_shape"]) for t in info["inputs"]] == [
        ("a", "float32", [2, 2]),
        ("b", "float16", [3]),
    ]
    assert [(t["name"], t["file"]) for t in info["outputs"]] == [
        ("probs", "probs.npy"),
        ("per_input/sums:0", "per_input_sums_0.npy"),  # sanitised: no directory, no ':'
    ]
    rng = np.random.default_rng(1)
    a = rng.integers(-8, 8, size=(10, 2, 2)).astype(np.float32)
    b = (rng.integers(-8, 8, size=(10, 3)) / 4).astype(np.float32)  # float32 file for a float16 input: converted
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out_dir = tmp_path / "out"
    proc = run(cpu_runner, "--engine", engine, "--input", f"b={tmp_path / 'b.npy'}", "--input",
               f"a={tmp_path / 'a.npy'}", "--output-dir", out_dir, "--batch-size", "4")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["per_input_sums_0.npy", "probs.npy"]
    want0, want1 = reference([a, b.astype(np.float16)])
    np.testing.assert_array_equal(np.load(out_dir / "probs.npy"), want0)
    np.testing.assert_array_equal(np.load(out_dir / "per_input_sums_0.npy"), want1)

    single = run(cpu_runner, "--engine", engine, "--input", f"a={tmp_path / 'a.npy'}", "--input",
                 f"b={tmp_path / 'b.npy'}", "--output", tmp_path / "o.npy")  # fmt: skip
    assert single.returncode == 2 and "the engine has 2 outputs; use --output-dir" in single.stderr
    unnamed = run(cpu_runner, "--engine", engine, "--input", tmp_path / "a.npy", "--output-dir", out_dir)
    assert unnamed.returncode == 2 and "names no engine input; the engine's inputs are 'a', 'b'" in unnamed.stderr
    missing = run(cpu_runner, "--engine", engine, "--input", f"a={tmp_path / 'a.npy'}", "--output-dir", out_dir)
    assert missing.returncode == 2 and "missing input 'b'" in missing.stderr
    np.save(tmp_path / "short.npy", b[:9])
    short = run(cpu_runner, "--engine", engine, "--input", f"a={tmp_path / 'a.npy'}", "--input",
                f"b={tmp_path / 'short.npy'}", "--output-dir", out_dir)  # fmt: skip
    assert short.returncode == 3 and "same number of samples, got 'a': 10, 'b': 9" in short.stderr


def test_the_old_single_input_single_output_form_still_works(
    cpu_runner: Path, make_cpu_engine: Callable, exact_inputs: Callable, tmp_path: Path
) -> None:
    engine = make_cpu_engine((4, 3))
    x = exact_inputs(9, engine.sample_shape)
    np.save(tmp_path / "x.npy", x)
    proc = run(cpu_runner, "--engine", engine.path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), engine.reference(x))
