"""Build the C++ runner (``cpp/``) with CMake, and find what a build produced.

The runner is built, not shipped: it must be compiled against the TensorRT and CUDA of the machine that
serves the model. ``build_runner`` runs ``cmake`` configure + build (never through a shell) and reads the
``trt_equiv_runner_build.json`` that the CMake project writes, so callers learn where each binary is and,
when the TensorRT runner could not be built, why (CMake's own reason, e.g. "NvInfer.h not found").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from trt_equiv.cache_dir import resolve_cache_dir
from trt_equiv.errors import InputValidationError, MissingRuntimeError, RunnerError

#: the TensorRT runner's executable name (the CLI contract of cpp/README.md)
RUNNER_NAME = "trt-equiv-runner"
#: the test-only runner whose "engine" is a CPU affine map (cpp/testing/cpu_engine.hpp)
CPU_RUNNER_NAME = "trt-equiv-runner-cpu"
#: written by cpp/CMakeLists.txt at generate time
BUILD_INFO_NAME = "trt_equiv_runner_build.json"
#: how a user builds the runner, quoted in every "not found" message
BUILD_HINT = (
    "build it with `trt-equiv build-runner` (needs cmake, a C++17 compiler, TensorRT and CUDA; "
    "pass --tensorrt-root/--cuda-root if they are not in standard places), or by hand with "
    "`cmake -S cpp -B build -DTENSORRT_ROOT=<prefix> && cmake --build build` (see cpp/README.md)"
)

_LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class RunnerBuild:
    """What one CMake build of ``cpp/`` produced. Paths are None for targets that were not built."""

    build_dir: Path
    tensorrt_runner: Path | None
    #: CMake's reason for not building the TensorRT runner (None when it was built)
    tensorrt_reason: str | None
    #: version read from NvInferVersion.h ("" when TensorRT headers were not found)
    tensorrt_version: str
    cpu_runner: Path | None
    npy_copy: Path | None
    core_tests: Path | None
    log_path: Path | None = None

    @property
    def tensorrt_built(self) -> bool:
        return self.tensorrt_runner is not None


def default_source_dir() -> Path:
    """``cpp/`` beside the package (a source checkout or an editable install)."""
    return Path(__file__).resolve().parent.parent / "cpp"


def default_build_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``trt-equiv build-runner`` builds by default under the cache root in use (``--cache-dir``, else
    $TRT_EQUIV_CACHE_DIR, else the per-user cache), and the one place the cpp backend looks unasked."""
    return resolve_cache_dir(cache_dir) / "runner" / "build"


def built_binary(build_dir: Path, name: str = RUNNER_NAME) -> Path:
    """Path a binary has in a build dir (the CMake project puts every executable in ``<build>/bin``)."""
    return Path(build_dir) / "bin" / name


def read_build_info(build_dir: Path, build_type: str | None = None) -> RunnerBuild:
    """The RunnerBuild of an existing build dir, from the JSON its CMake configure step wrote."""
    build_dir = Path(build_dir)
    candidates = [build_dir / BUILD_INFO_NAME]
    if build_type:  # multi-config generators write one file per configuration
        candidates.append(build_dir / f"trt_equiv_runner_build-{build_type}.json")
    info_path = next((p for p in candidates if p.is_file()), None)
    if info_path is None:
        raise RunnerError(f"{build_dir} is not a configured runner build (no {BUILD_INFO_NAME}); {BUILD_HINT}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerError(f"cannot read {info_path}: {exc}") from exc

    def path(key: str) -> Path | None:
        value = info.get(key)
        return Path(value) if value else None

    return RunnerBuild(
        build_dir=build_dir,
        tensorrt_runner=path("tensorrt_runner"),
        # CMake's reason names its variable; the user of `trt-equiv build-runner` passes the flag instead
        tensorrt_reason=(info.get("tensorrt_reason") or "").replace("set -DTENSORRT_ROOT=", "pass --tensorrt-root ")
        or None,
        tensorrt_version=info.get("tensorrt_version") or "",
        cpu_runner=path("cpu_runner"),
        npy_copy=path("npy_copy"),
        core_tests=path("core_tests"),
    )


def build_runner(
    build_dir: Path | None = None,
    *,
    source_dir: Path | None = None,
    tensorrt_root: Path | str | None = None,
    cuda_root: Path | str | None = None,
    build_type: str = "Release",
    tests: bool = True,
    require_tensorrt: bool = False,
    jobs: int | None = None,
    timeout_s: float = 1800.0,
) -> RunnerBuild:
    """Configure and build ``cpp/`` into ``build_dir`` (default: the cache's ``runner/build``).

    ``tests`` also builds the unit tests and the CPU test runner; ``require_tensorrt`` (implied by an explicit
    ``tensorrt_root``, which must hold TensorRT's headers) turns "TensorRT not found" into an error instead of a
    core-only build. Raises MissingRuntimeError when cmake is missing and
    RunnerError (with the tail of the build log) when configuring or compiling fails.
    """
    if tensorrt_root is not None:
        check_tensorrt_root(Path(tensorrt_root))
        require_tensorrt = True  # a root the user named must give the TensorRT runner, not a core-only build
    cmake = shutil.which("cmake")
    if cmake is None:
        raise MissingRuntimeError(
            "cmake not found on PATH; install CMake >= 3.18 (apt-get install cmake, or pip install cmake)"
        )
    src = Path(source_dir) if source_dir is not None else default_source_dir()
    if not (src / "CMakeLists.txt").is_file():
        raise RunnerError(
            f"C++ runner sources not found: {src / 'CMakeLists.txt'} does not exist "
            "(build from a source checkout of trt_equiv, or pass source_dir)"
        )
    build = Path(build_dir) if build_dir is not None else default_build_dir()
    build.mkdir(parents=True, exist_ok=True)
    log_path = build / "trt_equiv_build.log"

    configure = [
        cmake,
        "-S",
        str(src),
        "-B",
        str(build),
        f"-DCMAKE_BUILD_TYPE={build_type}",
        f"-DTRT_EQUIV_BUILD_TESTS={'ON' if tests else 'OFF'}",
        f"-DTRT_EQUIV_REQUIRE_TENSORRT={'ON' if require_tensorrt else 'OFF'}",
    ]
    if tensorrt_root is not None:
        # Forget what an earlier configure found, so a new root is really searched.
        configure += [f"-DTENSORRT_ROOT={tensorrt_root}", "-UTensorRT_INCLUDE_DIR", "-UTensorRT_LIBRARY"]
    if cuda_root is not None:
        configure.append(f"-DCUDAToolkit_ROOT={cuda_root}")
    compile_cmd = [cmake, "--build", str(build), "--config", build_type, "--parallel", str(jobs or os.cpu_count() or 2)]

    with open(log_path, "w", encoding="utf-8") as log:
        for step, cmd in (("configure", configure), ("build", compile_cmd)):
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            try:
                proc = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout_s, check=False
                )
            except subprocess.TimeoutExpired:
                raise RunnerError(f"C++ runner {step} timed out after {timeout_s:g}s; log: {log_path}") from None
            if proc.returncode != 0:
                log.flush()
                raise RunnerError(
                    f"C++ runner {step} failed (cmake exit code {proc.returncode}); last lines of {log_path}:\n"
                    + _tail(log_path)
                )
    result = read_build_info(build, build_type)
    return replace(result, log_path=log_path)


def check_tensorrt_root(root: Path) -> None:
    """Refuse a TensorRT prefix that does not exist or has no ``NvInfer.h``, before CMake quietly looks elsewhere."""
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise InputValidationError(
            f"--tensorrt-root: expected a TensorRT install prefix (with include/NvInfer.h and lib/libnvinfer), "
            f"got {root}, which {what}"
        )
    include = root / "include"
    if not ((include / "NvInfer.h").is_file() or any(include.glob("*/NvInfer.h"))):
        raise InputValidationError(
            f"--tensorrt-root: expected a TensorRT install prefix with include/NvInfer.h, got {root}, which has none "
            f"(point it at the folder that holds TensorRT's include/ and lib/)"
        )


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])
