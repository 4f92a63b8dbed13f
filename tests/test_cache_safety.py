"""The cache under faults (issue 12 items 12 and 13): integrity, temp files, modes, killed callers, lock waits,
and a converter that imports only the installed tf2onnx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trt_equiv.convert.onnx import run_child, savedmodel_to_onnx
from trt_equiv.data import BUNDLED_MODEL
from trt_equiv.errors import CacheLockTimeout, ConversionError
from trt_equiv.hashing import onnx_identity, sha256_file
from trt_equiv.locking import (
    CacheIntegrityWarning,
    build_once,
    hold_lock,
    integrity_path,
    sweep_cache_tree,
    sweep_stale_temps,
    temp_prefix,
)
from trt_equiv.pipeline import Pipeline
from trt_equiv.trt.common import atomic_write

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}


class Counter:
    """A builder that writes known bytes and counts its calls."""

    def __init__(self, payload: bytes = b"artefact bytes\n") -> None:
        self.payload = payload
        self.calls = 0

    def __call__(self, tmp: Path) -> None:
        self.calls += 1
        tmp.write_bytes(self.payload)


# --------------------------------------------------------------------------------------- integrity records


@pytest.mark.parametrize("damage", ["edited", "truncated", "record deleted", "record edited"])
def test_damaged_cache_entry_is_rebuilt_with_a_warning(tmp_path: Path, damage: str) -> None:
    target = tmp_path / "onnx" / "k" / "model.onnx"
    build = Counter(b"x" * 1000)
    assert build_once(target, build) and build.calls == 1
    assert integrity_path(target).read_text().split() == [sha256_file(target), "model.onnx"]
    assert not build_once(target, build) and build.calls == 1  # verified hit
    if damage == "edited":
        target.write_bytes(b"y" * 1000)
    elif damage == "truncated":
        target.write_bytes(b"x" * 10)
    elif damage == "record deleted":
        integrity_path(target).unlink()
    else:
        integrity_path(target).write_text("0" * 64 + "  model.onnx\n")
    with pytest.warns(CacheIntegrityWarning, match="rebuilding"):
        assert build_once(target, build)
    assert build.calls == 2 and target.read_bytes() == b"x" * 1000
    assert not build_once(target, build) and build.calls == 2  # healed


def test_edited_cached_fp16_model_is_never_used(trt_equiv_pipeline: Pipeline, tmp_path: Path) -> None:
    from trt_equiv.convert.precision import fp16_onnx

    first = fp16_onnx(trt_equiv_pipeline.onnx("fp32"), cache_dir=tmp_path)
    good = first.path.read_bytes()
    first.path.write_bytes(good[: len(good) // 3])  # e.g. a disk-full write or a hand edit
    with pytest.warns(CacheIntegrityWarning, match="model.fp16.onnx does not match its integrity record"):
        again = fp16_onnx(trt_equiv_pipeline.onnx("fp32"), cache_dir=tmp_path)
    assert not again.cache_hit and again.path.read_bytes() == good


# --------------------------------------------------------------------------------------- temp files, modes


def test_a_symlink_at_the_old_predictable_temp_path_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / "model.onnx"
    for name in (".model.onnx.tmp", f"{temp_prefix(target)}a", "model.onnx.tmp"):
        (cache / name).symlink_to(victim)
    assert build_once(target, Counter())
    atomic_write(cache / "x.engine", b"engine")
    assert victim.read_text() == "precious"
    assert target.is_file() and not target.is_symlink() and target.read_bytes() == Counter().payload
    assert (cache / "x.engine").read_bytes() == b"engine"


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_cache_file_gets_the_normal_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        target = tmp_path / "precision" / "calibration" / "k.json"
        build_once(target, Counter())
        engine = tmp_path / "engines" / "k.engine"
        atomic_write(engine, b"engine bytes")
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    for f in (target, integrity_path(target), engine):
        assert f.stat().st_mode & 0o777 == want, f"{f}: {oct(f.stat().st_mode & 0o777)} != {oct(want)}"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_entries_of_dead_processes_are_swept(tmp_path: Path) -> None:
    import socket

    host = socket.gethostname()
    dead = tmp_path / f".model.onnx.tmp.{_dead_pid()}@{host}.abc123"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"half")
    dead_file = tmp_path / f".k.engine.tmp.{_dead_pid()}@{host}.q1w2e3"
    dead_file.write_bytes(b"half an engine")
    mine = tmp_path / f".k.engine.tmp.{os.getpid()}@{host}.zzz"
    mine.write_bytes(b"being written")
    parent = tmp_path / f".k.engine.tmp.{os.getppid()}@{host}.yyy"
    parent.write_bytes(b"another live process")
    foreign = tmp_path / ".k.engine.tmp.1@elsewhere.example.xxx"
    foreign.write_bytes(b"cannot tell")
    unrelated = tmp_path / "model.onnx"
    unrelated.write_bytes(b"keep")

    removed = sweep_stale_temps(tmp_path)
    assert sorted(removed) == sorted([dead, dead_file])
    assert all(p.exists() for p in (mine, parent, foreign, unrelated))


def test_calibration_scratch_lives_under_the_cache(
    trt_equiv_pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.quantization import calibrate

    from trt_equiv.convert.precision import int8_qdq_onnx
    from trt_equiv.data import BUNDLED_CALIBRATION, load_npz

    seen: list[Path] = []
    real = calibrate.create_calibrator

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(Path(str(kwargs["augmented_model_path"])))
        return real(*args, **kwargs)

    monkeypatch.setattr(calibrate, "create_calibrator", spy)
    cache = tmp_path / "cache"
    int8_qdq_onnx(trt_equiv_pipeline.onnx("fp32"), load_npz(BUNDLED_CALIBRATION).take(64), cache_dir=cache)
    assert seen and all(cache.resolve() in p.resolve().parents for p in seen), seen
    assert not any(p.exists() for p in seen), "scratch must be removed after the build"


# --------------------------------------------------------------------------------------- lock waits


_HOLDER = """
import sys, time
from pathlib import Path
from trt_equiv.locking import hold_lock
lock, ready, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
with hold_lock(lock, timeout_s=10, what="test"):
    ready.touch()
    time.sleep(seconds)
"""


def test_waiting_on_a_lock_says_who_holds_it_and_how_long_we_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "model.onnx"
    lock = tmp_path / "model.onnx.lock"
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock), str(ready), "4"], env=_env())
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "holder did not start"
            time.sleep(0.02)
        with pytest.raises(CacheLockTimeout, match=f"held by pid {holder.pid} on host") as info:
            build_once(target, Counter(), timeout_s=1.0, report_every_s=0.3)
        assert str(lock) in str(info.value)
        err = capsys.readouterr().err
        first = [line for line in err.splitlines() if "waiting for" in line and "still" not in line]
        assert len(first) == 1 and f"pid {holder.pid}" in first[0] and "will wait up to 1 s" in first[0], err
        assert "still waiting" in err  # repeated while waiting

        build = Counter()
        assert build_once(target, build, timeout_s=60, report_every_s=0.5)  # the holder lets go after 4 s
        assert build.calls == 1
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_holder_is_recorded_only_while_held(tmp_path: Path) -> None:
    from trt_equiv.locking import lock_owner

    lock = tmp_path / "x.lock"
    with hold_lock(lock, timeout_s=1, what="test"):
        owner = lock_owner(lock)
        assert owner is not None and owner["pid"] == os.getpid() and owner["since"]
    assert lock_owner(lock) is None


# --------------------------------------------------------------------------------------- the converter child


def test_a_timed_out_child_and_its_children_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """)
    with pytest.raises(ConversionError, match="did not finish in 2 s"):
        run_child([sys.executable, "-c", script], cwd=tmp_path, timeout_s=2, what="test child")
    grandchild = int(pidfile.read_text())
    assert _gone(grandchild, within_s=10), "the grandchild outlived the timeout"


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited, waiting for its (dead) parent's reaper
            return True
        time.sleep(0.05)
    return False


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(d.name), cmdline))
    return out


_CONVERTER = """
import sys
from trt_equiv.convert.onnx import savedmodel_to_onnx
savedmodel_to_onnx(sys.argv[1], cache_dir=sys.argv[2])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux-only")
def test_sigkill_of_the_caller_kills_tf2onnx_and_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    caller = subprocess.Popen(
        [sys.executable, "-c", _CONVERTER, str(BUNDLED_MODEL), str(cache)], env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        child: list[tuple[int, str]] = []
        while not child:
            assert caller.poll() is None, "the caller ended before tf2onnx started"
            assert time.monotonic() < deadline, "tf2onnx never started"
            child = [c for c in _children(caller.pid) if "tf2onnx.convert" in c[1]]
            time.sleep(0.05)
        time.sleep(1.0)  # let the converter get going (TensorFlow import)
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait()
        assert _gone(child[0][0], within_s=10), "tf2onnx kept running after its caller was SIGKILLed"
    finally:
        caller.kill()
        caller.wait()
    leftovers = [p for p in cache.rglob(".*.tmp.*") if ".tmp." not in p.parent.name]
    assert leftovers, "expected the killed build's temp folder (else the sweep below proves nothing)"
    removed = sweep_cache_tree(cache)  # what the next run's resolve_cache_dir does
    assert sorted(removed) == sorted(leftovers)
    assert not list(cache.rglob(".*.tmp.*")) and not list(cache.rglob("model.onnx"))


@pytest.fixture(scope="module")
def converted_from_a_hostile_cwd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ONNX file, marker path): a conversion started from a folder holding a fake ``tf2onnx`` package."""
    cwd = tmp_path_factory.mktemp("hostile_cwd")
    marker = cwd / "IMPORTED"
    fake = cwd / "tf2onnx"
    fake.mkdir()
    trap = f"open({str(marker)!r}, 'w').write('fake tf2onnx imported')\nraise SystemExit(3)\n"
    (fake / "__init__.py").write_text(trap)
    (fake / "convert.py").write_text(trap)
    cache = tmp_path_factory.mktemp("fresh_cache")
    old = Path.cwd()
    os.chdir(cwd)
    try:
        path = savedmodel_to_onnx(BUNDLED_MODEL, cache_dir=cache)
    finally:
        os.chdir(old)
    return path, marker


def test_the_converter_never_imports_tf2onnx_from_the_callers_folder(
    converted_from_a_hostile_cwd: tuple[Path, Path], trt_equiv_pipeline: Pipeline
) -> None:
    path, marker = converted_from_a_hostile_cwd
    assert not marker.exists(), "tf2onnx was imported from the caller's working directory"
    assert path.is_file()
    # a second, independent conversion: the same identity, although tf2onnx's bytes are not reproducible
    assert onnx_identity(path) == onnx_identity(trt_equiv_pipeline.onnx("fp32"))


def test_an_edited_cached_model_onnx_heals(converted_from_a_hostile_cwd: tuple[Path, Path]) -> None:
    path, _ = converted_from_a_hostile_cwd
    identity = onnx_identity(path)
    with open(path, "r+b") as fh:  # flip one byte in the middle: a silent edit, same size
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.warns(CacheIntegrityWarning, match="model.onnx does not match its integrity record"):
        again = savedmodel_to_onnx(BUNDLED_MODEL, cache_dir=path.parents[2])
    assert again == path
    assert integrity_path(path).read_text().split()[0] == sha256_file(path)
    assert onnx_identity(path) == identity  # a whole, fresh conversion of the same model


def test_an_edited_legacy_calibration_cache_is_ignored_not_fed_to_tensorrt(tmp_path: Path) -> None:
    """The int8-legacy calibrator reads its cache through read_verified (GPU-only path; the helper is tested here)."""
    from trt_equiv.locking import read_verified

    cache = tmp_path / "engines" / "calibration" / "abc-def.cache"
    atomic_write(cache, b"TRT-1001-EntropyCalibration2\ninput: 3c010a14\n", record=True)
    assert read_verified(cache) == cache.read_bytes()
    cache.write_bytes(b"TRT-1001-EntropyCalibration2\ninput: 7f7f7f7f\n")
    with pytest.warns(CacheIntegrityWarning, match="does not match its integrity record"):
        assert read_verified(cache) is None
    assert read_verified(tmp_path / "absent.cache") is None
