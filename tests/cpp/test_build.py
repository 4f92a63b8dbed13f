"""The CMake build itself: C++ unit tests under ctest, what configure reports, and build_runner's errors."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from trt_equiv.errors import MissingRuntimeError, RunnerError
from trt_equiv.runner_build import RunnerBuild, build_runner, default_source_dir, read_build_info


def test_ctest_runs_the_core_unit_tests_and_they_pass(runner_build: RunnerBuild) -> None:
    ctest = shutil.which("ctest")
    assert ctest is not None, "ctest ships with cmake and must be on PATH"
    proc = subprocess.run(
        [ctest, "--test-dir", str(runner_build.build_dir), "--output-on-failure"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "100% tests passed" in proc.stdout, proc.stdout
    assert "trt_equiv_core" in proc.stdout, "the unit-test binary must be registered with ctest"


def test_core_unit_test_binary_reports_its_checks(runner_build: RunnerBuild) -> None:
    assert runner_build.core_tests is not None
    proc = subprocess.run([str(runner_build.core_tests)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    passed, total = proc.stdout.split()[0].split("/")
    assert passed == total and int(total) > 100, proc.stdout


def test_build_info_says_whether_the_tensorrt_runner_was_built_and_why_not(runner_build: RunnerBuild) -> None:
    if runner_build.tensorrt_built:
        assert runner_build.tensorrt_runner is not None and runner_build.tensorrt_runner.is_file()
        assert runner_build.tensorrt_reason is None
    else:
        assert runner_build.tensorrt_reason, "a core-only build must say why the TensorRT runner is missing"
        assert any(word in runner_build.tensorrt_reason for word in ("NvInfer.h", "libnvinfer", "CUDA", "TensorRT"))
    log = runner_build.log_path
    assert log is not None
    status = "trt-equiv: building trt-equiv-runner" if runner_build.tensorrt_built else "NOT building trt-equiv-runner"
    assert status in log.read_text(), "the configure output must say whether the TensorRT runner is built"
    assert read_build_info(runner_build.build_dir) == replace(runner_build, log_path=None)


def test_build_runner_without_cmake_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no cmake
    with pytest.raises(MissingRuntimeError, match="cmake not found"):
        build_runner(tmp_path / "build")


def test_build_runner_compile_failure_shows_the_log_tail(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(broken LANGUAGES CXX)\nadd_executable(broken broken.cpp)\n"
    )
    (src / "broken.cpp").write_text("int main() { return this_is_not_declared; }\n")
    with pytest.raises(RunnerError, match="build failed") as info:
        build_runner(tmp_path / "build", source_dir=src)
    assert "this_is_not_declared" in str(info.value), "the compiler's message must be in the error"


def test_build_runner_rejects_a_directory_without_sources(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="sources not found"):
        build_runner(tmp_path / "build", source_dir=tmp_path)


def test_header_check_script_reports_a_directory_without_headers(tmp_path: Path) -> None:
    script = default_source_dir() / "check_headers.sh"
    bash = shutil.which("bash")
    assert bash is not None
    usage = subprocess.run([bash, str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    proc = subprocess.run([bash, str(script), str(tmp_path)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    assert f"FAIL {tmp_path}: no NvInferRuntime.h" in proc.stderr or "cuda_runtime_api.h not found" in proc.stderr
