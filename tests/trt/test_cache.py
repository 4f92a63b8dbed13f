"""The engine cache with real builds: hits, keys, damaged and mismatched entries, concurrent processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from trt_equiv.errors import EngineError, InputValidationError
from trt_equiv.hashing import onnx_identity, sha256_file
from trt_equiv.trt.build import BuildOptions, Profile
from trt_equiv.trt.cache import (
    EngineCache,
    EngineCacheWarning,
    check_engine_file,
    engine_key,
    engine_key_inputs,
)


@pytest.fixture
def cache(tmp_path: Path) -> EngineCache:
    return EngineCache(tmp_path / "engines")


def test_second_request_is_a_hit_without_a_build(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    first = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    assert not first.hit and cache.builds == 1
    assert first.path.is_file() and first.metadata_path.is_file()
    assert first.size_bytes == first.path.stat().st_size > 1024
    meta = json.loads(first.metadata_path.read_text())
    assert meta["engine"]["sha256"] == sha256_file(first.path)
    assert meta["key_inputs"]["recipe"] == "fp32" and meta["key_inputs"]["profiles"] == [[1, 16, 32]]
    assert meta["key_inputs"]["onnx_identity"] == onnx_identity(tiny_onnx["fp32"])
    assert meta["build_seconds"] > 0 and meta["created_at"]
    mtime = first.path.stat().st_mtime_ns

    second = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    assert second.hit and second.path == first.path
    assert cache.builds == 1, "a hit must not build"
    assert second.path.stat().st_mtime_ns == mtime
    assert second.build_seconds == first.build_seconds  # the recorded build time, not a new one

    other = EngineCache(cache.root)  # another process's view of the same folder
    assert other.get(tiny_onnx["fp32"], module=trt_module, progress=False).hit and other.builds == 0


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_entries_are_separate(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path], precision: str
) -> None:
    fp32 = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    reduced = cache.get(tiny_onnx[precision], recipe=precision, module=trt_module, progress=False)
    assert not reduced.hit and reduced.path != fp32.path and cache.builds == 2
    assert reduced.metadata["key_inputs"]["recipe"] == precision


def test_key_covers_every_input_and_only_the_onnx_bytes(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    from tests.trt import models

    onnx = tiny_onnx["fp32"]
    base = engine_key(engine_key_inputs(onnx, BuildOptions(), trt_module))
    variants = {
        "recipe": BuildOptions(recipe="fp32-strict"),
        "profile": BuildOptions(profiles=(Profile(1, 8, 32),)),
        "second profile": BuildOptions(profiles=(Profile(), Profile(32, 32, 64))),
        "workspace": BuildOptions(workspace_bytes=1 << 28),
        "targets": BuildOptions(target_compute_capabilities=("8.6",)),
    }
    keys = {what: engine_key(engine_key_inputs(onnx, opts, trt_module)) for what, opts in variants.items()}
    keys["other model"] = engine_key(
        engine_key_inputs(models.tiny_fp32(tmp_path / "m.onnx", seed=7), BuildOptions(), trt_module)
    )
    assert base not in keys.values() and len(set(keys.values())) == len(keys), keys

    renamed = shutil.copy(onnx, tmp_path / "renamed.onnx")
    assert engine_key(engine_key_inputs(Path(renamed), BuildOptions(), trt_module)) == base


def test_engine_identity_ignores_generated_names_but_not_weights(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 12 item 8: tf2onnx renames constants run to run; a good engine must not be called stale for it."""
    from tests.test_hashing import edited_copy, renamed_copy

    onnx = tiny_onnx["fp32"]
    second_export = renamed_copy(onnx, tmp_path / "second_export.onnx")
    assert sha256_file(second_export) != sha256_file(onnx)
    base = engine_key(engine_key_inputs(onnx, BuildOptions(), trt_module))
    assert engine_key(engine_key_inputs(second_export, BuildOptions(), trt_module)) == base
    changed = edited_copy(onnx, tmp_path / "changed.onnx", "weight")
    assert engine_key(engine_key_inputs(changed, BuildOptions(), trt_module)) != base

    entry = cache.get(onnx, module=trt_module, progress=False)
    assert cache.get(second_export, module=trt_module, progress=False).hit
    ok = check_engine_file(entry.path, onnx_path=second_export, recipe="fp32", module=trt_module)
    assert ok, str(ok)
    stale = check_engine_file(entry.path, onnx_path=changed, recipe="fp32", module=trt_module)
    assert not stale and any("stale engine" in p for p in stale.problems)


def test_truncated_engine_is_rebuilt_not_used(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    first = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    good = first.path.read_bytes()
    first.path.write_bytes(good[: len(good) // 2])

    with pytest.warns(EngineCacheWarning, match="truncated"):
        again = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    assert not again.hit and cache.builds == 2
    assert (
        again.path.stat().st_size == again.size_bytes and sha256_file(again.path) == again.metadata["engine"]["sha256"]
    )


def test_corrupted_engine_of_the_right_size_is_detected(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    first = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    data = bytearray(first.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.path.write_bytes(bytes(data))

    with pytest.raises(EngineError, match="sha256 differs") as info:
        cache.get(tiny_onnx["fp32"], module=trt_module, progress=False, on_mismatch="error")
    assert str(first.path) in str(info.value) and cache.builds == 1
    with pytest.warns(EngineCacheWarning, match="sha256 differs"):
        assert not cache.get(tiny_onnx["fp32"], module=trt_module, progress=False).hit


def test_metadata_not_matching_the_request_is_never_used(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    first = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    meta = json.loads(first.metadata_path.read_text())
    meta["key_inputs"]["recipe"] = "fp16"  # e.g. an entry copied in under the wrong name
    first.metadata_path.write_text(json.dumps(meta))

    with pytest.raises(EngineError, match="does not match the request") as info:
        cache.get(tiny_onnx["fp32"], module=trt_module, progress=False, on_mismatch="error")
    assert "recipe: requested 'fp32', cached 'fp16'" in str(info.value)
    with pytest.warns(EngineCacheWarning, match="does not match"):
        rebuilt = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    assert not rebuilt.hit and rebuilt.metadata["key_inputs"]["recipe"] == "fp32" and cache.builds == 2


@pytest.mark.parametrize("damage", ["missing metadata", "unreadable metadata"])
def test_incomplete_entries_are_rebuilt(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path], damage: str
) -> None:
    first = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    if damage == "missing metadata":  # a build that died between the engine and its metadata
        first.metadata_path.unlink()
    else:
        first.metadata_path.write_text("{not json")
    with pytest.warns(EngineCacheWarning, match="metadata"):
        assert not cache.get(tiny_onnx["fp32"], module=trt_module, progress=False).hit
    assert cache.builds == 2


def test_on_mismatch_must_be_known(cache: EngineCache, tiny_onnx: dict[str, Path]) -> None:
    with pytest.raises(InputValidationError, match="on_mismatch"):
        cache.get(tiny_onnx["fp32"], on_mismatch="ignore")


def test_clear_removes_everything(cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]) -> None:
    cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    assert cache.clear() >= 2
    assert not list(cache.root.glob("*.engine")) and not list(cache.root.glob("*.json"))


_CHILD = """
import json, sys, time
from pathlib import Path
from trt_equiv.runtime import tensorrt_module
from trt_equiv.trt.cache import EngineCache
tensorrt_module()  # import TensorRT before the start line, so both children race on the build alone
root, onnx, ready, go = sys.argv[1:5]
Path(ready).touch()
deadline = time.monotonic() + 60
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("the parent never said go")
    time.sleep(0.001)
cache = EngineCache(root)
entry = cache.get(onnx, progress=False)
print(json.dumps({"hit": entry.hit, "builds": cache.builds, "sha256": entry.metadata["engine"]["sha256"]}))
"""


def test_two_processes_asking_at_once_build_once(
    trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "shared_engines"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    procs = []
    for i in range(2):
        args = [sys.executable, "-c", _CHILD, str(root), str(tiny_onnx["fp32"]), str(tmp_path / f"ready{i}"), str(go)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sorted(r["builds"] for r in results) == [0, 1], results
    assert sorted(r["hit"] for r in results) == [False, True], results
    assert results[0]["sha256"] == results[1]["sha256"]
    assert len(list(root.glob("*.engine"))) == 1


# --- a user-supplied engine (trt-equiv check --engine FILE) ---------------------------------------------


def test_check_accepts_our_engine_and_names_what_does_not_match(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    entry = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    ok = check_engine_file(entry.path, onnx_path=tiny_onnx["fp32"], recipe="fp32", module=trt_module)
    assert ok, str(ok)
    assert ok.size == entry.size_bytes and ok.metadata is not None

    stale = check_engine_file(entry.path, onnx_path=tiny_onnx["fp16"], recipe="fp16", module=trt_module)
    assert not stale
    assert any("stale engine" in p for p in stale.problems) and any("recipe 'fp32'" in p for p in stale.problems)
    assert "NOT USABLE" in str(stale)


def test_check_refuses_an_engine_from_another_tensorrt_version(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path]
) -> None:
    entry = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    meta = json.loads(entry.metadata_path.read_text())
    meta["key_inputs"]["module_version"] = "10.11.0.33"
    entry.metadata_path.write_text(json.dumps(meta))
    check = check_engine_file(entry.path, module=trt_module)
    assert not check and any("10.11.0.33" in p and trt_module.__version__ in p for p in check.problems)


def test_check_finds_a_truncated_engine_and_empty_or_missing_files(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    entry = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    entry.path.write_bytes(entry.path.read_bytes()[:4096])
    truncated = check_engine_file(entry.path, module=trt_module)
    assert not truncated and "truncated" in truncated.problems[0]

    (tmp_path / "empty.engine").write_bytes(b"")
    assert check_engine_file(tmp_path / "empty.engine", module=trt_module).problems == ["file is empty"]
    assert not check_engine_file(tmp_path / "absent.engine", module=trt_module)


def test_check_without_metadata_still_catches_a_damaged_header(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    from trt_equiv.runtime import tensorrt_execution_unavailable_reason

    if not hasattr(trt_module.Runtime, "get_engine_validity") and tensorrt_execution_unavailable_reason():
        pytest.skip(f"{trt_module.__name__} has no header check and engines cannot be deserialized here")
    entry = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    lone = tmp_path / "user.engine"
    good = entry.path.read_bytes()
    lone.write_bytes(good)
    intact = check_engine_file(lone, module=trt_module)
    assert intact and any("no trt_equiv metadata" in n for n in intact.notes), str(intact)

    lone.write_bytes(b"not an engine header, " * 3 + good[66:])
    damaged = check_engine_file(lone, module=trt_module)
    assert not damaged and any("header invalid" in p or "could not be deserialized" in p for p in damaged.problems)


def test_a_truncated_engine_without_metadata_is_refused_without_a_gpu(
    cache: EngineCache, trt_module: ModuleType, tiny_onnx: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 12 item 11: no .json beside it and nothing here can deserialize it — the header's size field (TensorRT
    for RTX) or, for a layout without one, the refusal to vouch for an unverifiable engine, still stops it."""
    entry = cache.get(tiny_onnx["fp32"], module=trt_module, progress=False)
    good = entry.path.read_bytes()
    lone = tmp_path / "user.engine"
    for cut in (len(good) - 1, len(good) // 2, 100):
        lone.write_bytes(good[:cut])
        check = check_engine_file(lone, module=trt_module)
        assert not check, f"cut at {cut}: {check}"
        reasons = ("truncated", "could not be deserialized", "neither metadata")
        assert any(r in p for r in reasons for p in check.problems), str(check)
    lone.write_bytes(good + b"\0" * 16)
    assert not check_engine_file(lone, module=trt_module)
    lone.write_bytes(good)
    assert check_engine_file(lone, module=trt_module) or not _whole_engine_verifiable(trt_module, good)


def _whole_engine_verifiable(trt_module: ModuleType, data: bytes) -> bool:
    from trt_equiv.runtime import tensorrt_execution_unavailable_reason
    from trt_equiv.trt.common import size_checkable

    return size_checkable(data) or tensorrt_execution_unavailable_reason(trt_module.__name__) is None
