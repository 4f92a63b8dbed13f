"""The C++ runner as a backend: proves C++ serving gives the same outputs as Python for the same engine.

``CppRunnerBackend`` finds the runner and asks it for the engine's I/O (``--describe``: every input and output by
name, dtype and per-sample shape, and each output's file name) when opened; ``infer`` writes each input to a
private ``.npy``, runs ``trt-equiv-runner --input NAME=FILE ... --output-dir DIR`` (no shell, with a timeout)
and reads one ``.npy`` per output. The runner does its own batching with ``--batch-size``, so the base
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

from trt_equiv.backends.base import Backend, TensorSpec, describe_specs
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


def find_runner_binary(
    explicit: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The runner to use, only from a place the user named or built into (trust model: cpp/README.md):
    ``explicit`` (``binary=``), else $TRT_EQUIV_RUNNER, else ``<cache root>/runner/build/bin/trt-equiv-runner``
    under the cache root in use (``cache_dir``: the ``--cache-dir`` of the run, else $TRT_EQUIV_CACHE_DIR, else
    the per-user cache), where ``trt-equiv build-runner`` puts it. Never from PATH: an executable that merely
    happens to be there would be run on the user's data. An explicit path or the env var that points nowhere
    is an error, not a reason to look elsewhere: silently running another binary would test the wrong thing."""
    if explicit is not None:
        return _checked_binary(Path(explicit), "binary= argument")
    from_env = os.environ.get(RUNNER_ENV_VAR)
    if from_env:
        return _checked_binary(Path(from_env), f"${RUNNER_ENV_VAR}")
    built = built_binary(default_build_dir(cache_dir))
    if _is_executable(built):
        return built
    on_path = shutil.which(RUNNER_NAME)
    path_note = (
        f" (a {RUNNER_NAME} exists on PATH at {on_path}, but PATH is never searched: name it with "
        f"{RUNNER_ENV_VAR}={on_path} if you trust it)"
        if on_path
        else ""
    )
    raise RunnerError(
        f"C++ runner not found: no binary= given, ${RUNNER_ENV_VAR} unset, and none built under the cache in use "
        f"at {built}{path_note}; {BUILD_HINT}; or set {RUNNER_ENV_VAR}=<path to {RUNNER_NAME}> or pass binary="
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _checked_binary(path: Path, source: str) -> Path:
    if not path.exists():
        raise RunnerError(f"C++ runner not found: {path} (from {source}) does not exist; {BUILD_HINT}")
    if not _is_executable(path):
        raise RunnerError(f"C++ runner {path} (from {source}) is not an executable file")
    return path


def runner_unavailable_reason(
    binary: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """None when a runner binary can be found (see ``find_runner_binary``), else why not and how to build it."""
    try:
        find_runner_binary(binary, cache_dir)
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
        cache_dir: str | os.PathLike[str] | None = None,
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
        #: the cache root in use (``--cache-dir``): its runner/build is the one unnamed place a runner is taken from
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.timeout_s = float(timeout_s)
        self.warmup = warmup
        self.iterations = iterations
        self._declared_sample_shape = tuple(sample_shape) if sample_shape is not None else None
        #: the runner binary, resolved by open()
        self.binary: Path | None = None
        #: the engine's I/O as the runner reports it (``--describe``, schema trt-equiv-runner-engine/2)
        self.engine_info: dict[str, Any] | None = None
        #: the runner's timing report of the last run (schema trt-equiv-runner-timing/2; see cpp/README.md)
        self._output_files: dict[str, str] = {}
        self.last_timing: dict[str, Any] | None = None
        #: the runner's stderr of the last run (TensorRT warnings land here)
        self.last_stderr: str = ""

    def _open_impl(self) -> None:
        self.binary = find_runner_binary(self._binary_arg, self.cache_dir)
        out = self._run([str(self.binary), "--engine", str(self.engine_path), "--describe"], "--describe")
        try:
            info = json.loads(out)
            inputs = [_tensor(t, convertible=True) for t in info["inputs"]]
            outputs = [_tensor(t, convertible=False) for t in info["outputs"]]
            files = {str(t["name"]): str(t["file"]) for t in info["outputs"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RunnerError(f"{self._where('--describe')} printed no engine description: {exc}") from exc
        bad = [f for f in files.values() if Path(f).name != f or f.startswith(".")]
        if bad or not inputs or not outputs:
            raise RunnerError(f"{self._where('--describe')} described unusable tensors/files: {info}")
        if self._declared_sample_shape is not None and (
            len(inputs) != 1 or self._declared_sample_shape != inputs[0].shape
        ):
            raise InputValidationError(
                f"{self.label}: sample_shape {self._declared_sample_shape} was declared, but the engine "
                f"{self.engine_path.name} inputs are {describe_specs(inputs)}"
            )
        self.engine_info = info
        self._output_files = files
        self.input_specs = tuple(inputs)
        self.output_specs = tuple(outputs)

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = int(next(iter(inputs.values())).shape[0])
        self.last_timing = None
        self.last_device_time_s = None
        assert self.binary is not None and self.output_specs is not None, "open() resolves the binary and the I/O"
        with tempfile.TemporaryDirectory(prefix="trt_equiv_cpp_") as tmp:
            out_dir, timing_path = Path(tmp) / "outputs", Path(tmp) / "timing.json"
            cmd = [str(self.binary), "--engine", str(self.engine_path)]
            for i, (name, x) in enumerate(inputs.items()):
                path = Path(tmp) / f"input{i}.npy"  # by index: the name is only passed as an argument
                np.save(path, x, allow_pickle=False)
                cmd += ["--input", f"{name}={path}"]
            cmd += [
                "--output-dir", str(out_dir),
                "--warmup", str(self.warmup),
                "--iterations", str(self.iterations),
                "--timing-json", str(timing_path),
            ]  # fmt: skip
            if self.batch_size is not None:
                cmd += ["--batch-size", str(self.batch_size)]
            what = f"{n} samples (batch size {self.batch_size or 'engine maximum'})"
            where = self._where(what)
            self._run(cmd, what)
            result = {}
            for spec in self.output_specs:
                out = _load_output(out_dir / self._output_files[spec.name], f"{where}, output {spec.name!r}", spec)
                if out.ndim < 1 or out.shape[0] != n:
                    got = out.shape[0] if out.ndim else 0
                    raise RunnerError(
                        f"{where} wrote {got} rows for output {spec.name!r} (shape {out.shape}) for {n} input "
                        "samples; every sample must produce one row, in input order"
                    )
                want = spec.shape or ()
                if len(want) != out.ndim - 1 or any(
                    w is not None and w != g for w, g in zip(want, out.shape[1:], strict=True)
                ):
                    raise RunnerError(
                        f"{where} wrote per-sample output shape {tuple(out.shape[1:])} for {spec.name!r}; the engine's "
                        f"output has {tuple(-1 if w is None else w for w in want)}"
                    )
                result[spec.name] = out
            self.last_timing = _load_timing(timing_path, where)
        compute = self.last_timing.get("compute_ms")
        if isinstance(compute, dict) and compute.get("count"):
            # Device time of one pass over the input, the same quantity the Python TensorRT backend reports.
            self.last_device_time_s = compute["mean"] * compute["count"] / self.iterations / 1000.0
        return result

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


#: dtypes the runner writes: float outputs as float32, integer and bool outputs in their own dtype
_RUNNER_DTYPES = {"float32", "float16", "int32", "int64", "bool"}


def _tensor(desc: dict[str, Any], *, convertible: bool) -> TensorSpec:
    """A TensorSpec from one ``--describe`` entry (-1 dimensions become None).

    Inputs the runner converts itself (float32<->float16, int32<->int64 range-checked) leave the dtype open;
    float outputs come back as float32.
    """
    dtype = str(desc["dtype"])
    if dtype not in _RUNNER_DTYPES:
        raise ValueError(f"tensor {desc.get('name')!r} has dtype {dtype!r}")
    shape = tuple(None if int(d) < 0 else int(d) for d in desc["sample_shape"])
    if convertible:
        return TensorSpec(str(desc["name"]), None if dtype != "bool" else np.dtype(np.bool_), shape)
    return TensorSpec(str(desc["name"]), np.dtype(np.float32) if dtype.startswith("float") else np.dtype(dtype), shape)


def _load_output(path: Path, where: str, spec: TensorSpec) -> np.ndarray:
    if not path.is_file():
        raise RunnerError(f"{where}: exited 0 but wrote no output file {path.name}")
    try:
        out = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise RunnerError(f"{where}: wrote an unreadable output .npy (truncated or malformed: {exc})") from exc
    if spec.dtype is not None and out.dtype != spec.dtype:
        raise RunnerError(f"{where}: wrote output dtype {out.dtype}; expected {spec.dtype}")
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
