"""The C++ runner as a backend: proves C++ serving gives the same outputs as Python for the same engine.

``CppRunnerBackend`` finds the runner and asks it for the engine's I/O (``--describe``) when opened; ``infer``
writes the batch to a private ``.npy``, runs ``trt-equiv-runner`` (no shell, with a timeout) and reads its
output ``.npy``. The runner does its own batching with ``--batch-size``, so the base
class is told ``max_batch=None`` and the whole array goes to one run: the C++ batching, partial last batch
included, is what is under test. Every way the runner can fail (missing, non-zero exit, signal, timeout,
missing/truncated/mis-shaped output) becomes a ``RunnerError`` that says which and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.backends.base import Backend
from trt_equiv.errors import InputValidationError, ModelLoadError, RunnerError
from trt_equiv.runner_build import BUILD_HINT, RUNNER_NAME, built_binary, default_build_dir

#: environment variable naming the runner binary (checked after an explicit ``binary=``)
RUNNER_ENV_VAR = "TRT_EQUIV_RUNNER"

#: the runner's exit codes (cpp/core/include/trt_equiv/errors.hpp, documented in cpp/README.md)
EXIT_CODES: dict[int, str] = {
    1: "internal error in the runner (a bug or host out of memory)",
    2: "usage error (bad arguments, or --batch-size outside the engine's batch range)",
    3: "input error (bad or missing .npy, shape mismatch with the engine, output not writable)",
    4: "engine error (engine file, TensorRT or CUDA failure)",
}

_STDERR_TAIL_CHARS = 3000


def find_runner_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The runner to use: ``explicit``, else $TRT_EQUIV_RUNNER, else ``trt-equiv-runner`` on PATH, else the
    default build dir in the cache. An explicit path or the env var that points nowhere is an error, not a
    reason to look elsewhere: silently running another binary would test the wrong thing."""
    if explicit is not None:
        return _checked_binary(Path(explicit), "binary= argument")
    from_env = os.environ.get(RUNNER_ENV_VAR)
    if from_env:
        return _checked_binary(Path(from_env), f"${RUNNER_ENV_VAR}")
    on_path = shutil.which(RUNNER_NAME)
    if on_path:
        return Path(on_path)
    cached = built_binary(default_build_dir())
    if _is_executable(cached):
        return cached
    raise RunnerError(
        f"C++ runner not found: no binary= given, ${RUNNER_ENV_VAR} unset, no {RUNNER_NAME} on PATH and none "
        f"at {cached}; {BUILD_HINT}; then set {RUNNER_ENV_VAR}=<path to {RUNNER_NAME}> or pass binary="
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _checked_binary(path: Path, source: str) -> Path:
    if not path.exists():
        raise RunnerError(f"C++ runner not found: {path} (from {source}) does not exist; {BUILD_HINT}")
    if not _is_executable(path):
        raise RunnerError(f"C++ runner {path} (from {source}) is not an executable file")
    return path


def runner_unavailable_reason(binary: str | os.PathLike[str] | None = None) -> str | None:
    """None when a runner binary can be found (see ``find_runner_binary``), else why not and how to build it."""
    try:
        find_runner_binary(binary)
    except RunnerError as exc:
        return str(exc)
    return None


class CppRunnerBackend(Backend):
    """A serialized TensorRT engine run by the C++ runner in a subprocess.

    ``batch_size`` is the runner's ``--batch-size`` (None: the engine's maximum batch, or 32 when it has
    none). ``warmup``/``iterations`` are passes over the whole input inside one runner call; the output
    comes from the last pass and ``last_timing`` holds the runner's timing report.
    """

    name = "cpp"

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        *,
        binary: str | os.PathLike[str] | None = None,
        precision: str = "fp32",
        batch_size: int | None = None,
        sample_shape: Sequence[int] | None = None,
        timeout_s: float = 600.0,
        warmup: int = 0,
        iterations: int = 1,
    ) -> None:
        # max_batch=None: the whole array goes to one run and the runner batches it (--batch-size).
        super().__init__(precision=precision, max_batch=None)
        _check_int("warmup", warmup, 0)
        _check_int("iterations", iterations, 1)
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
        if not timeout_s > 0:
            raise InputValidationError(f"cpp: timeout_s must be > 0, got {timeout_s!r}")
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise ModelLoadError(f"cpp: expected an engine file, got a path that does not exist: {engine_path}")
        self._binary_arg = binary
        self.batch_size = batch_size
        self.timeout_s = float(timeout_s)
        self.warmup = warmup
        self.iterations = iterations
        self._declared_sample_shape = tuple(sample_shape) if sample_shape is not None else None
        #: the runner binary, resolved by open()
        self.binary: Path | None = None
        #: the engine's I/O as the runner reports it (``--describe``, schema trt-equiv-runner-engine/1)
        self.engine_info: dict[str, Any] | None = None
        #: the runner's timing report of the last run (schema trt-equiv-runner-timing/1; see cpp/README.md)
        self.last_timing: dict[str, Any] | None = None
        #: the runner's stderr of the last run (TensorRT warnings land here)
        self.last_stderr: str = ""

    def _open_impl(self) -> None:
        self.binary = find_runner_binary(self._binary_arg)
        out = self._run([str(self.binary), "--engine", str(self.engine_path), "--describe"], "--describe")
        try:
            info = json.loads(out)
            engine_shape = tuple(int(d) for d in info["input"]["sample_shape"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RunnerError(f"{self._where('--describe')} printed no engine description: {exc}") from exc
        if self._declared_sample_shape is not None and self._declared_sample_shape != engine_shape:
            raise InputValidationError(
                f"{self.label}: sample_shape {self._declared_sample_shape} was declared, but the engine "
                f"{self.engine_path.name} input {info['input'].get('name')!r} has per-sample shape {engine_shape}"
            )
        self.engine_info = info
        self.sample_shape = engine_shape

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Stopgap for the named-tensor interface (one input, one output); the multi-tensor runner replaces it.
        (x,) = inputs.values()
        n = int(x.shape[0])
        self.last_timing = None
        self.last_device_time_s = None
        assert self.binary is not None, "open() resolves the binary"
        with tempfile.TemporaryDirectory(prefix="trt_equiv_cpp_") as tmp:
            in_path, out_path, timing_path = (Path(tmp) / name for name in ("input.npy", "output.npy", "timing.json"))
            np.save(in_path, x, allow_pickle=False)
            cmd = [
                str(self.binary),
                "--engine", str(self.engine_path),
                "--input", str(in_path),
                "--output", str(out_path),
                "--warmup", str(self.warmup),
                "--iterations", str(self.iterations),
                "--timing-json", str(timing_path),
            ]  # fmt: skip
            if self.batch_size is not None:
                cmd += ["--batch-size", str(self.batch_size)]
            where = f"{n} samples (batch size {self.batch_size or 'engine maximum'})"
            self._run(cmd, where)
            out = _load_output(out_path, self._where(where))
            if out.ndim < 1 or out.shape[0] != n:
                got = out.shape[0] if out.ndim else 0
                raise RunnerError(
                    f"{self._where(where)} wrote {got} output rows (shape {out.shape}) for {n} input samples; "
                    "every sample must produce one row, in input order"
                )
            want_rest = tuple((self.engine_info or {}).get("output", {}).get("sample_shape", out.shape[1:]))
            if tuple(out.shape[1:]) != want_rest:
                raise RunnerError(
                    f"{self._where(where)} wrote per-sample output shape {tuple(out.shape[1:])}; the engine's "
                    f"output has {want_rest}"
                )
            self.last_timing = _load_timing(timing_path, self._where(where))
        compute = self.last_timing.get("compute_ms")
        if isinstance(compute, dict) and compute.get("count"):
            # Device time of one pass over the input, the same quantity the Python TensorRT backend reports.
            self.last_device_time_s = compute["mean"] * compute["count"] / self.iterations / 1000.0
        return {str((self.engine_info or {}).get("output", {}).get("name", "output")): out}

    def _where(self, what: str) -> str:
        name = self.binary.name if self.binary is not None else RUNNER_NAME
        return f"{self.label}: {name} on {what}"

    def _run(self, cmd: list[str], what: str) -> str:
        """Run the runner (own process group, so a timeout kills it and anything it started); return its
        stdout, or raise RunnerError for a signal, a non-zero exit or a timeout."""
        where = self._where(what)
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )
        except OSError as exc:
            raise RunnerError(f"{where}: cannot start {cmd[0]}: {exc}") from exc
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # the group may already be gone
                os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            raise RunnerError(
                f"{where} timed out after {self.timeout_s:g}s and was killed "
                f"(warmup {self.warmup}, iterations {self.iterations}){_tail(err.decode(errors='replace'))}"
            ) from None
        self.last_stderr = err.decode(errors="replace")
        if proc.returncode < 0:
            raise RunnerError(f"{where} crashed with signal {_signal_name(-proc.returncode)}{_tail(self.last_stderr)}")
        if proc.returncode != 0:
            meaning = EXIT_CODES.get(proc.returncode, "unknown exit code")
            raise RunnerError(f"{where} failed with exit code {proc.returncode}: {meaning}{_tail(self.last_stderr)}")
        return out.decode(errors="replace")


def _check_int(label: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputValidationError(f"cpp: {label} must be an integer >= {low}, got {value!r}")


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)


def _tail(stderr: str) -> str:
    text = stderr.strip()
    if not text:
        return " (no stderr output)"
    if len(text) > _STDERR_TAIL_CHARS:
        text = "..." + text[-_STDERR_TAIL_CHARS:]
    return f"; stderr:\n{text}"


def _load_output(path: Path, where: str) -> np.ndarray:
    if not path.is_file():
        raise RunnerError(f"{where} exited 0 but wrote no output file {path.name}")
    try:
        out = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise RunnerError(f"{where} wrote an unreadable output .npy (truncated or malformed: {exc})") from exc
    if out.dtype != np.float32:
        raise RunnerError(f"{where} wrote output dtype {out.dtype}; expected float32")
    return out


def _load_timing(path: Path, where: str) -> dict[str, Any]:
    try:
        timing = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunnerError(f"{where} exited 0 but wrote no timing JSON") from None
    except (OSError, ValueError) as exc:
        raise RunnerError(f"{where} wrote an unreadable timing JSON: {exc}") from exc
    if not isinstance(timing, dict):
        raise RunnerError(f"{where} wrote a timing JSON that is not an object")
    return timing
