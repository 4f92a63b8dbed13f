"""Build-once, integrity and temp-file rules shared by every cached artefact (ONNX, calibration, engines).

- A file lock beside the target lets parallel workers (pytest-xdist, several CLI runs) build once; a process
  waiting for it says who holds it (pid, host, since when) and how long it will wait, on stderr.
- A builder writes into a private temporary folder (``mkdtemp``: unpredictable name, mode 0700, never an
  existing path or a planted symlink) in the target's folder; the result is renamed into place, so a reader
  never sees half a file. Temp names carry ``pid@host``: those of dead processes are removed by the next run.
- Every artefact gets an integrity record, ``<file>.sha256`` (``sha256sum -c`` format), written before the
  rename and verified on every reuse: an edited or truncated cache file is rebuilt with a warning, never used.
- Finished files get the mode a normally created file would get (``0666 & ~umask``), so a cache shared by
  several users works for all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from trt_equiv.errors import CacheLockTimeout
from trt_equiv.hashing import sha256_file

#: how often a waiting process repeats who holds the lock
LOCK_REPORT_EVERY_S = 30.0
#: a temp entry from another host is removed only when older than this (its pid cannot be checked here)
FOREIGN_TEMP_MAX_AGE_S = 7 * 24 * 3600.0

INTEGRITY_SUFFIX = ".sha256"
_TEMP_RE = re.compile(r"^\..+\.tmp\.(?P<pid>\d+)@(?P<host>[^/]+)\.[A-Za-z0-9_]+$")
_HOST = socket.gethostname().replace("/", "_")
_UMASK_LOCK = threading.Lock()


class CacheIntegrityWarning(UserWarning):
    """A cached artefact failed its integrity check (edited, truncated, record missing) and is being rebuilt."""


# ------------------------------------------------------------------------------------------- modes, temps


def file_mode() -> int:
    """The mode ``open(..., "w")`` would give a new file here: 0666 minus the process umask."""
    try:  # Linux >= 4.7 shows the umask without changing it (os.umask would race with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def temp_prefix(target: Path) -> str:
    """Prefix of every temp entry made for ``target``: hidden, names the target, the pid and the host."""
    return f".{target.name}.tmp.{os.getpid()}@{_HOST}."


def make_temp_file(target: Path) -> tuple[int, Path]:
    """(fd, path) of a new empty file beside ``target`` (O_EXCL, unpredictable name), for an atomic replace."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target))
    return fd, Path(name)


def publish(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the normal file mode and rename it onto ``target`` (atomic on one filesystem)."""
    os.chmod(tmp, file_mode(), follow_symlinks=False)
    os.replace(tmp, target)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove temp entries in ``folder`` left by processes that died (killed builds); the entries removed.

    An entry of this host is stale when its pid no longer runs; one from another host when it is older than
    FOREIGN_TEMP_MAX_AGE_S. Symlinks are removed, never followed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if m["host"] == _HOST:
            if int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
                continue
        elif now - st.st_mtime < FOREIGN_TEMP_MAX_AGE_S:
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


_SWEPT: set[Path] = set()


def sweep_cache_tree(root: Path, depth: int = 3) -> list[Path]:
    """``sweep_stale_temps`` over ``root`` and its folders down to ``depth`` levels, once per process and root."""
    root = Path(root)
    if root in _SWEPT:
        return []
    _SWEPT.add(root)
    removed: list[Path] = []
    level = [root]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for folder in level:
            removed += sweep_stale_temps(folder)
            with contextlib.suppress(OSError):
                nxt += [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
        level = [f for f in nxt if not _TEMP_RE.match(f.name)]
    return removed


# ------------------------------------------------------------------------------------------------ integrity


def integrity_path(target: Path) -> Path:
    return target.with_name(target.name + INTEGRITY_SUFFIX)


def write_integrity(file: Path, target: Path) -> None:
    """Record ``file``'s sha256 as the integrity record of ``target`` (``sha256sum -c`` format)."""
    record = integrity_path(target)
    fd, tmp = make_temp_file(record)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{sha256_file(file)}  {target.name}\n")
    publish(tmp, record)


def integrity_problem(target: Path) -> str | None:
    """Why ``target`` may not be reused (None when its bytes match its record)."""
    if not target.is_file():
        return "is missing"
    record = integrity_path(target)
    try:
        want = record.read_text().split()[0]
    except (OSError, IndexError):
        return f"has no integrity record ({record.name})"
    got = sha256_file(target)
    if got != want:
        size = target.stat().st_size
        return f"does not match its integrity record (sha256 {got[:12]}…, {size} bytes; recorded {want[:12]}…)"
    return None


def read_verified(path: Path) -> bytes | None:
    """``path``'s bytes when they match its integrity record; None (with a CacheIntegrityWarning when the file
    exists) otherwise, so the caller recomputes instead of trusting an edited file."""
    if not path.is_file():
        return None
    problem = integrity_problem(path)
    if problem is not None:
        warnings.warn(f"cached {path} {problem}; ignoring it", CacheIntegrityWarning, stacklevel=2)
        return None
    return path.read_bytes()


# ------------------------------------------------------------------------------------------------ locking


def _owner_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".owner")


def lock_owner(lock_path: Path) -> dict[str, object] | None:
    """Who holds ``lock_path`` as its holder recorded it (pid, host, since), or None when unknown."""
    try:
        info = json.loads(_owner_path(lock_path).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe_owner(lock_path: Path) -> str:
    info = lock_owner(lock_path)
    if info is None:
        return "another process (it did not record who it is)"
    since = str(info.get("since", "?"))
    try:
        age = f", {time.time() - datetime.fromisoformat(since).timestamp():.0f} s ago"
    except ValueError:
        age = ""
    return f"pid {info.get('pid')} on host {info.get('host')} since {since}{age}"


@contextlib.contextmanager
def hold_lock(
    lock_path: Path, *, timeout_s: float, what: str, report_every_s: float = LOCK_REPORT_EVERY_S
) -> Iterator[None]:
    """Hold the file lock ``lock_path``; while another process holds it, say who and for how long we wait.

    Raises CacheLockTimeout (naming the holder and the lock file) after ``timeout_s``.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path))
    start = time.monotonic()
    waited_msg = False
    while True:
        remaining = timeout_s - (time.monotonic() - start)
        try:
            lock.acquire(timeout=max(0.0, min(report_every_s, remaining)) if waited_msg else 0)
            break
        except Timeout:
            remaining = timeout_s - (time.monotonic() - start)
            holder = _describe_owner(lock_path)
            if remaining <= 0:
                raise CacheLockTimeout(
                    f"waited {timeout_s:.0f} s for {what}: the lock {lock_path} is held by {holder}; if that process "
                    f"is gone, delete the lock file"
                ) from None
            if not waited_msg:
                msg = f"waiting for {what}: lock held by {holder}; will wait up to {timeout_s:.0f} s"
            else:
                msg = f"still waiting for {what} ({time.monotonic() - start:.0f} s of {timeout_s:.0f} s): {holder}"
            print(f"[trt_equiv] {msg}", file=sys.stderr, flush=True)
            waited_msg = True
    owner = _owner_path(lock_path)
    try:
        info = {"pid": os.getpid(), "host": _HOST, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        fd, tmp = make_temp_file(owner)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        publish(tmp, owner)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


# ------------------------------------------------------------------------------------------------ build once


def build_once(
    target: Path,
    build: Callable[[Path], None],
    *,
    timeout_s: float = 3600,
    what: str | None = None,
    integrity: bool = True,
    report_every_s: float = LOCK_REPORT_EVERY_S,
) -> bool:
    """Make ``target`` with ``build(tmp_path)`` unless a verified copy exists; True when this call built it.

    ``build`` writes ``tmp_path`` (inside a private temp folder it may also use for scratch files). With
    ``integrity`` (default) the result gets a ``.sha256`` record and a cached copy that does not match its
    record is rebuilt with a CacheIntegrityWarning; callers that keep their own record (the engine cache's
    metadata) pass ``integrity=False``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if _reusable(target, integrity):
        return False
    lock_path = target.with_name(target.name + ".lock")
    with hold_lock(lock_path, timeout_s=timeout_s, what=what or f"another process building {target}",
                   report_every_s=report_every_s):  # fmt: skip
        sweep_stale_temps(target.parent)
        problem = integrity_problem(target) if integrity else (None if target.exists() else "is missing")
        if problem is None:  # another worker built it while we waited
            return False
        if problem != "is missing":
            warnings.warn(f"cached {target} {problem}; rebuilding it", CacheIntegrityWarning, stacklevel=2)
            target.unlink(missing_ok=True)
        integrity_path(target).unlink(missing_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=temp_prefix(target)))
        try:
            tmp = scratch / target.name
            build(tmp)
            if integrity:
                write_integrity(tmp, target)  # first: a target without a record would be rebuilt, not trusted
            publish(tmp, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return True


def _reusable(target: Path, integrity: bool) -> bool:
    """Lock-free fast path: the target exists and (with integrity) matches its record."""
    if not integrity:
        return target.exists()
    return integrity_problem(target) is None
