"""`trt-equiv build-runner`: CMake build of cpp/ (needs only a C++17 compiler and CMake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_equiv.cli import main


def test_build_runner_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`trt-equiv build-runner` builds the TensorRT-free core everywhere and says why the TensorRT runner was
    or was not built."""
    assert main(["build-runner", "--build-dir", str(tmp_path / "build")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "build" / "bin" / "trt-equiv-core-tests").is_file()
    assert "TensorRT runner:" in out and ("not built — " in out or "(TensorRT " in out)
