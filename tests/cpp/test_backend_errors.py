"""CppRunnerBackend's failure modes, each a RunnerError that says what happened: runner missing (and how
to build it), crash by signal, timeout (the runner and what it started are killed), non-zero exit with its
meaning and stderr, missing/truncated/mis-shaped output. Fake runners are small Python scripts."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trt_equiv.backends.cpp import (
    RUNNER_ENV_VAR,
    CppRunnerBackend,
    find_runner_binary,
    runner_unavailable_reason,
)
from trt_equiv.errors import InputValidationError, ModelLoadError, RunnerError
from trt_equiv.runner_build import RUNNER_NAME, built_binary

FAKE_RUNNER = """#!{python}
# A stand-in for trt-equiv-runner that misbehaves in one way ({mode}); its engine is (4,) -> (3,).
import json, os, signal, subprocess, sys, time
import numpy as np

mode = {mode!r}
args = sys.argv[1:]
if "--describe" in args:
    tensor = lambda name, shape: {{"name": name, "sample_shape": shape, "dtype": "float32"}}
    print(json.dumps({{"inputs": [tensor("x", [4])], "outputs": [dict(tensor("y", [3]), file="y.npy")],
                      "min_batch": 1, "max_batch": None}}))
    sys.exit(0)
opt = dict(zip(args[::2], args[1::2]))
n = np.load(opt["--input"].split("=", 1)[1]).shape[0]
os.makedirs(opt["--output-dir"], exist_ok=True)
opt["--output"] = os.path.join(opt["--output-dir"], "y.npy")
out = np.zeros((n, 3), np.float32)
timing = {{"samples": n, "compute_ms": None}}
if mode == "crash":
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open({pid_file!r} + ".tmp", "w") as f:
        f.write(f"{{os.getpid()}} {{child.pid}}")
    os.replace({pid_file!r} + ".tmp", {pid_file!r})
    time.sleep(120)
if mode == "exit4":
    print("trt-equiv-runner: engine error: could not deserialize model.plan", file=sys.stderr)
    sys.exit(4)
if mode == "exit77":
    sys.exit(77)
if mode == "no-output":
    sys.exit(0)
if mode == "rows":
    out = out[:-1]
if mode == "shape":
    out = np.zeros((n, 2), np.float32)
if mode == "float64":
    out = out.astype(np.float64)
np.save(opt["--output"], out)
if mode == "truncated":
    data = open(opt["--output"], "rb").read()
    open(opt["--output"], "wb").write(data[:-7])
if mode != "no-timing":
    with open(opt["--timing-json"], "w") as f:
        json.dump(timing, f)
"""


@pytest.fixture
def engine_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.plan"
    path.write_bytes(b"not really an engine; the fake runners do not read it")
    return path


@pytest.fixture
def fake_runner(tmp_path: Path) -> Callable[..., Path]:
    def make(mode: str, name: str = "fake-runner", directory: Path | None = None) -> Path:
        directory = directory or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_text(FAKE_RUNNER.format(python=sys.executable, mode=mode, pid_file=str(tmp_path / "pids")))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    return make


def _infer(engine: Path, binary: Path, n: int = 5, **kwargs: object) -> np.ndarray:
    with CppRunnerBackend(engine, binary=binary, **kwargs) as backend:  # type: ignore[arg-type]
        return backend.infer(np.ones((n, 4), np.float32))


def test_a_well_behaved_fake_runs(engine_file: Path, fake_runner: Callable[..., Path]) -> None:
    assert _infer(engine_file, fake_runner("ok"), n=6).shape == (6, 3)


def test_crash_by_signal(engine_file: Path, fake_runner: Callable[..., Path]) -> None:
    with pytest.raises(RunnerError, match=r"crashed with signal SIGSEGV \(11\)"):
        _infer(engine_file, fake_runner("crash"))


def test_timeout_kills_the_runner_and_its_children(
    engine_file: Path, fake_runner: Callable[..., Path], tmp_path: Path
) -> None:
    start = time.monotonic()
    with pytest.raises(RunnerError, match=r"timed out after 1.5s and was killed"):
        _infer(engine_file, fake_runner("hang"), timeout_s=1.5)
    assert time.monotonic() - start < 30
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    assert not alive, f"processes {alive} survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie whose parent is gone (reparented, not yet reaped) counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_nonzero_exit_gives_meaning_and_stderr(engine_file: Path, fake_runner: Callable[..., Path]) -> None:
    with pytest.raises(RunnerError, match=r"exit code 4: engine error[\s\S]*could not deserialize model.plan"):
        _infer(engine_file, fake_runner("exit4"))


def test_unknown_exit_code(engine_file: Path, fake_runner: Callable[..., Path]) -> None:
    with pytest.raises(RunnerError, match=r"exit code 77: unknown exit code \(no stderr output\)"):
        _infer(engine_file, fake_runner("exit77"))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("no-output", "exited 0 but wrote no output file"),
        ("truncated", "unreadable output .npy"),
        ("rows", "wrote 4 rows for output 'y' .* for 5 input samples"),
        ("shape", r"per-sample output shape \(2,\) for 'y'; the engine's output has \(3,\)"),
        ("float64", "output dtype float64; expected float32"),
        ("no-timing", "wrote no timing JSON"),
    ],
)
def test_bad_output(engine_file: Path, fake_runner: Callable[..., Path], mode: str, expected: str) -> None:
    with pytest.raises(RunnerError, match=expected):
        _infer(engine_file, fake_runner(mode))


def test_missing_explicit_binary_says_how_to_build(engine_file: Path, tmp_path: Path) -> None:
    backend = CppRunnerBackend(engine_file, binary=tmp_path / "nope")
    with pytest.raises(RunnerError, match=r"does not exist[\s\S]*trt-equiv build-runner"):
        backend.open()


def test_non_executable_binary(engine_file: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    with pytest.raises(RunnerError, match="not an executable"):
        CppRunnerBackend(engine_file, binary=plain).open()


@pytest.fixture
def clean_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env var, an empty PATH directory, an empty cache: nothing to discover until a test adds it."""
    monkeypatch.delenv(RUNNER_ENV_VAR, raising=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("TRT_EQUIV_CACHE_DIR", str(tmp_path / "cache"))
    return empty


def test_nothing_found_explains_every_place_and_how_to_build(clean_discovery: Path) -> None:
    reason = runner_unavailable_reason()
    assert reason is not None
    for needle in (RUNNER_ENV_VAR, "runner/build/bin", "trt-equiv build-runner", "cmake -S cpp"):
        assert needle in reason, f"{needle!r} missing from: {reason}"
    with pytest.raises(RunnerError):
        find_runner_binary()


def test_discovery_order(
    clean_discovery: Path, monkeypatch: pytest.MonkeyPatch, fake_runner: Callable[..., Path], tmp_path: Path
) -> None:
    from trt_equiv.runner_build import default_build_dir

    cached = fake_runner("ok", RUNNER_NAME, built_binary(default_build_dir()).parent)
    assert find_runner_binary() == cached
    from_env = fake_runner("ok", "from-env")
    monkeypatch.setenv(RUNNER_ENV_VAR, str(from_env))
    assert find_runner_binary() == from_env
    explicit = fake_runner("ok", "explicit")
    assert find_runner_binary(explicit) == explicit
    assert runner_unavailable_reason() is None


def test_item14_a_runner_on_path_is_never_picked_up_silently(
    clean_discovery: Path, fake_runner: Callable[..., Path]
) -> None:
    """Issue 12 item 14: PATH is not a place the user named; the message says where the ignored one is."""
    on_path = fake_runner("ok", RUNNER_NAME, clean_discovery)
    with pytest.raises(RunnerError, match=f"exists on PATH at {on_path}, but PATH is never searched"):
        find_runner_binary()


def test_item14_the_build_dir_is_taken_under_the_cache_dir_in_use(
    clean_discovery: Path, fake_runner: Callable[..., Path], tmp_path: Path, engine_file: Path
) -> None:
    """``--cache-dir`` X means X/runner/build, not the env/default cache's build (the lookup ignored it)."""
    from trt_equiv.runner_build import default_build_dir

    fake_runner("ok", RUNNER_NAME, built_binary(default_build_dir()).parent)  # in $TRT_EQUIV_CACHE_DIR's cache
    other = tmp_path / "other-cache"
    with pytest.raises(RunnerError, match=str(other / "runner" / "build" / "bin")):
        find_runner_binary(cache_dir=other)
    mine = fake_runner("ok", RUNNER_NAME, built_binary(default_build_dir(other)).parent)
    assert find_runner_binary(cache_dir=other) == mine
    assert runner_unavailable_reason(cache_dir=other) is None
    assert CppRunnerBackend(engine_file, cache_dir=other).cache_dir == other


def test_env_var_pointing_nowhere_is_an_error_not_a_fallback(
    clean_discovery: Path, monkeypatch: pytest.MonkeyPatch, fake_runner: Callable[..., Path], tmp_path: Path
) -> None:
    fake_runner("ok", RUNNER_NAME, clean_discovery)  # would be found on PATH
    monkeypatch.setenv(RUNNER_ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(RunnerError, match=r"from \$TRT_EQUIV_RUNNER"):
        find_runner_binary()


def test_constructor_checks(engine_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        CppRunnerBackend(tmp_path / "missing.plan")
    with pytest.raises(InputValidationError, match="batch_size must be an integer >= 1"):
        CppRunnerBackend(engine_file, batch_size=0)
    with pytest.raises(InputValidationError, match="iterations must be an integer >= 1"):
        CppRunnerBackend(engine_file, iterations=0)
    with pytest.raises(InputValidationError, match="timeout_s must be > 0"):
        CppRunnerBackend(engine_file, timeout_s=0)
    assert CppRunnerBackend(engine_file).max_batch is None, "the runner batches; the base must not"
    assert CppRunnerBackend(engine_file, precision="fp16").label == "cpp-fp16"
