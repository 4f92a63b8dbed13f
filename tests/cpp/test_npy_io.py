"""The runner's .npy reader/writer against NumPy: bit-exact round trips, byte-identical files, NumPy's
float16 rounding, and clear exit-code-3 errors for every malformed input."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def _numpy_bytes(arr: np.ndarray, version: tuple[int, int] | None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


def _random_bits(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Every bit pattern, NaN payloads and subnormals included: a lossy path cannot hide."""
    itype = np.uint32 if dtype == np.float32 else np.uint16
    raw = np.random.default_rng(seed).integers(0, np.iinfo(itype).max, size=shape, dtype=itype, endpoint=True)
    return raw.view(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 5), (0, 4), ()])
def test_round_trip_is_byte_identical_to_numpy(
    npy_copy: Path, run_cli: Callable, tmp_path: Path, dtype: type, version: tuple[int, int], shape: tuple[int, ...]
) -> None:
    arr = _random_bits(shape, dtype, seed=len(shape))
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    src.write_bytes(_numpy_bytes(arr, version))
    proc = run_cli(npy_copy, src, dst, "--version", version[0])
    assert proc.returncode == 0, proc.stderr
    back = np.load(dst, allow_pickle=False)
    assert back.dtype == dtype and back.shape == shape
    assert back.tobytes() == arr.tobytes(), "values must come back bit for bit"
    assert dst.read_bytes() == src.read_bytes(), "the writer must produce exactly NumPy's file"


def test_large_header_uses_version_2(npy_copy: Path, run_cli: Callable, tmp_path: Path) -> None:
    arr = np.zeros((1,) * 32, np.float32)  # NumPy's maximum rank; header still fits 1.0, so force 2.0 on input
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    src.write_bytes(_numpy_bytes(arr, (2, 0)))
    assert run_cli(npy_copy, src, dst).returncode == 0
    assert dst.read_bytes() == _numpy_bytes(arr, None), "default version choice must match NumPy's"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=hnp.arrays(np.float32, st.integers(1, 64), elements=st.floats(width=32, allow_nan=False)))
def test_float32_to_float16_rounds_like_numpy(
    npy_copy: Path, run_cli: Callable, tmp_path: Path, values: np.ndarray
) -> None:
    src, dst = tmp_path / "f32.npy", tmp_path / "f16.npy"
    np.save(src, values)
    proc = run_cli(npy_copy, src, dst, "--dtype", "float16")
    assert proc.returncode == 0, proc.stderr
    got = np.load(dst)
    with np.errstate(over="ignore"):
        want = values.astype(np.float16)
    assert got.dtype == np.float16
    assert got.view(np.uint16).tolist() == want.view(np.uint16).tolist()


def test_float32_to_float16_boundaries_and_nan(npy_copy: Path, run_cli: Callable, tmp_path: Path) -> None:
    # Ties at both ends of the subnormal range and at the overflow threshold, plus quiet and signalling NaN.
    special = np.array(
        [2.0**-25, 3 * 2.0**-25, 2.0**-24 * 1.5, 2.0**-14 * (1 - 2.0**-11), 65504.0, 65519.996, 65520.0, -0.0,
         1 + 2.0**-11, 1 + 3 * 2.0**-11, np.inf, -np.inf],
        dtype=np.float32,
    )  # fmt: skip
    nans = np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FA00000], dtype=np.uint32).view(np.float32)
    src, dst = tmp_path / "f32.npy", tmp_path / "f16.npy"
    np.save(src, np.concatenate([special, nans]))
    assert run_cli(npy_copy, src, dst, "--dtype", "float16").returncode == 0
    got = np.load(dst)
    with np.errstate(over="ignore"):
        want = special.astype(np.float16)
    assert got[: special.size].view(np.uint16).tolist() == want.view(np.uint16).tolist()
    assert np.isnan(got[special.size :]).all(), "NaN must stay NaN, whatever its payload"


def _header_variant(arr: np.ndarray, old: bytes, new: bytes) -> bytes:
    data = _numpy_bytes(arr, (1, 0))
    assert old in data
    return data.replace(old, new, 1)


MALFORMED: dict[str, tuple[Callable[[np.ndarray], bytes], str]] = {
    "truncated-data": (lambda a: _numpy_bytes(a, None)[:-5], "truncated .npy file"),
    "truncated-header": (lambda a: _numpy_bytes(a, None)[:40], "truncated .npy file"),
    "trailing-bytes": (lambda a: _numpy_bytes(a, None) + b"\0\0\0\0", "trailing bytes"),
    "fortran-order": (lambda a: _numpy_bytes(np.asfortranarray(a), None), "Fortran-order"),
    "float64": (lambda a: _numpy_bytes(a.astype(np.float64), None), "unsupported dtype '<f8' (float64"),
    "int8": (lambda a: _numpy_bytes(a.astype(np.int8), None), "unsupported dtype '|i1'"),
    "int32": (lambda a: _numpy_bytes(a.astype(np.int32), None), "the engine tensor is float32, the array is int32"),
    "big-endian": (lambda a: _numpy_bytes(a.astype(">f4"), None), "big-endian"),
    "bad-magic": (lambda a: b"\x93NUMPZ" + _numpy_bytes(a, None)[6:], "bad magic"),
    "csv": (lambda a: "\n".join(",".join(map(str, r.ravel())) for r in a).encode(), "bad magic"),
    "empty-file": (lambda a: b"", "bad magic"),
    "version-9": (lambda a: _numpy_bytes(a, None)[:6] + b"\x09\x00" + _numpy_bytes(a, None)[8:], "version 9.0"),
    "bad-header": (lambda a: _header_variant(a, b"'fortran_order': False", b"'fortran_order': 0    "), "True or False"),
    "zero-samples": (lambda a: _numpy_bytes(a[:0], None), "at least one sample"),
    # an object (pickled) array's descr, spliced into a float32 header of the same length
    "object": (lambda a: _header_variant(a, b"'descr': '<f4'", b"'descr': '|O' "), "unsupported dtype '|O'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_is_exit_3_with_a_clear_message(
    cpu_runner: Path, make_cpu_engine: Callable, run_cli: Callable, tmp_path: Path, case: str
) -> None:
    engine = make_cpu_engine((4, 3))
    make, expected = MALFORMED[case]
    x = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(make(x))
    out = tmp_path / "out.npy"
    proc = run_cli(cpu_runner, "--engine", engine.path, "--input", bad, "--output", out)
    assert proc.returncode == 3, f"expected exit 3 (input error), got {proc.returncode}: {proc.stderr}"
    assert "input error" in proc.stderr and expected in proc.stderr, proc.stderr
    assert str(bad) in proc.stderr, "the message must name the file"
    assert not out.exists()


def test_missing_input_file_is_exit_3(
    cpu_runner: Path, make_cpu_engine: Callable, run_cli: Callable, tmp_path: Path
) -> None:
    engine = make_cpu_engine()
    proc = run_cli(
        cpu_runner, "--engine", engine.path, "--input", tmp_path / "nope.npy", "--output", tmp_path / "o.npy"
    )
    assert proc.returncode == 3 and "no such file" in proc.stderr, proc.stderr


def test_unwritable_output_is_exit_3(
    cpu_runner: Path, make_cpu_engine: Callable, run_cli: Callable, exact_inputs: Callable, tmp_path: Path
) -> None:
    engine = make_cpu_engine()
    np.save(tmp_path / "in.npy", exact_inputs(3, engine.sample_shape))
    out = tmp_path / "missing-dir" / "o.npy"
    proc = run_cli(cpu_runner, "--engine", engine.path, "--input", tmp_path / "in.npy", "--output", out)
    assert proc.returncode == 3 and "cannot write output" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "missing required option(s): --engine --input --output"),
        (("--engine", "e", "--input", "i", "--output", "o", "--batch-size", "0"), "--batch-size must be in"),
        (("--engine", "e", "--input", "i", "--output", "o", "--iterations", "x"), "expects an integer"),
        (("--engine", "e", "--input", "i", "--output", "o", "--frobnicate"), "unknown option '--frobnicate'"),
    ],
)
def test_usage_errors_are_exit_2(cpu_runner: Path, run_cli: Callable, args: tuple[str, ...], expected: str) -> None:
    proc = run_cli(cpu_runner, *args)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "--help" in proc.stderr, proc.stderr


def test_help_is_exit_0_and_documents_exit_codes(cpu_runner: Path, run_cli: Callable) -> None:
    proc = run_cli(cpu_runner, "--help")
    assert proc.returncode == 0
    assert "--batch-size" in proc.stdout and "4 engine error" in proc.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot open engine file"),
        ("not an engine\n", "not a CPU test engine"),
        ("trt-equiv-cpu-engine 1\n", "missing 'input_shape'"),
    ],
)
def test_engine_errors_are_exit_4(
    cpu_runner: Path, run_cli: Callable, exact_inputs: Callable, tmp_path: Path, content: str | None, expected: str
) -> None:
    engine = tmp_path / "e.engine"
    if content is not None:
        engine.write_text(content)
    np.save(tmp_path / "in.npy", exact_inputs(2, (4, 3)))
    proc = run_cli(cpu_runner, "--engine", engine, "--input", tmp_path / "in.npy", "--output", tmp_path / "o.npy")
    assert proc.returncode == 4 and "engine error" in proc.stderr and expected in proc.stderr, proc.stderr
