"""`trt-equiv build` and `trt-equiv check --engine`: real parse + build + cache with the TensorRT module here.

On CPU-only machines TensorRT for RTX (installed by the `trt-rtx` extra) parses and builds engines, so
these run in CI for real; they skip only where no TensorRT module at all is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trt_equiv.cli import main
from trt_equiv.pipeline import Pipeline
from trt_equiv.runtime import TENSORRT_MODULES, is_available

pytestmark = pytest.mark.skipif(
    not any(is_available(m) for m in TENSORRT_MODULES),
    reason=f"TensorRT not installed (none of {', '.join(TENSORRT_MODULES)}): engines cannot be built",
)


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory: pytest.TempPathFactory, trt_equiv_pipeline: Pipeline) -> Path:
    """A fresh engine cache that shares the session's converted ONNX files (conversion is not under test)."""
    root = tmp_path_factory.mktemp("cache")
    for sub in ("onnx", "precision"):
        (root / sub).symlink_to(trt_equiv_pipeline.cache_dir / sub, target_is_directory=True)  # type: ignore[operator]
    trt_equiv_pipeline.onnx("fp16"), trt_equiv_pipeline.onnx("int8")
    return root


def rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines() if re.match(r"^(fp32|fp16|int8)\s", line)}


def test_build_all_precisions_then_hit(capsys: pytest.CaptureFixture[str], engine_cache: Path) -> None:
    assert main(["build", "--cache-dir", str(engine_cache)]) == 0
    first = rows(capsys.readouterr().out)
    assert set(first) == {"fp32", "fp16", "int8"}
    for precision, row in first.items():
        assert row[2] == "built", row
        size = int(row[1].replace(",", ""))
        assert 50_000 < size < 50_000_000, f"{precision} engine size {size} bytes"
        assert Path(row[-1]).is_file() and Path(row[-1]).with_suffix(".json").is_file()
    engines = {row[-1]: Path(row[-1]).stat().st_mtime_ns for row in first.values()}
    assert main(["build", "--cache-dir", str(engine_cache)]) == 0
    second = rows(capsys.readouterr().out)
    assert all(row[2] == "hit" for row in second.values())
    assert {row[-1]: Path(row[-1]).stat().st_mtime_ns for row in second.values()} == engines  # nothing rebuilt


def test_profile_is_part_of_the_key(capsys: pytest.CaptureFixture[str], engine_cache: Path) -> None:
    assert main(["build", "--cache-dir", str(engine_cache), "--precisions", "fp32", "--profile", "1,8,16"]) == 0
    assert rows(capsys.readouterr().out)["fp32"][2] == "built"
    assert main(["build", "--cache-dir", str(engine_cache), "--profile", "4,1,2"]) == 2
    assert "expected integers 1 <= min <= opt <= max" in capsys.readouterr().err


def test_corrupt_user_engine_is_refused(capsys: pytest.CaptureFixture[str], engine_cache: Path) -> None:
    assert main(["build", "--cache-dir", str(engine_cache), "--precisions", "fp32"]) == 0
    built = Path(rows(capsys.readouterr().out)["fp32"][-1])
    truncated = engine_cache / "user" / "model.engine"
    truncated.parent.mkdir(exist_ok=True)
    truncated.write_bytes(built.read_bytes()[: built.stat().st_size // 2])
    (truncated.with_suffix(".json")).write_bytes(built.with_suffix(".json").read_bytes())
    code = main(["check", "--cache-dir", str(engine_cache), "--engine", str(truncated), "--precisions", "fp32"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--engine is not usable" in err and "problem:" in err


def test_engine_built_for_another_precision_is_refused(capsys: pytest.CaptureFixture[str], engine_cache: Path) -> None:
    """An engine whose metadata says fp16 checked as fp32: the stale/mismatched-engine bug."""
    assert main(["build", "--cache-dir", str(engine_cache), "--precisions", "fp16"]) == 0
    fp16 = Path(rows(capsys.readouterr().out)["fp16"][-1])
    code = main(["check", "--cache-dir", str(engine_cache), "--engine", str(fp16), "--precisions", "fp32"])
    assert code == 2
    assert "problem:" in capsys.readouterr().err
