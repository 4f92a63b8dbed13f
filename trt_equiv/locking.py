"""Build-once helper shared by every content-keyed cache (ONNX conversion, calibration, engines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def build_once(target: Path, build: Callable[[Path], None], *, timeout_s: float = 3600) -> bool:
    """Make ``target`` with ``build(tmp_path)`` unless it exists; True when this call built it.

    A file lock beside the target lets parallel workers (pytest-xdist, several CLI runs) build once; the
    builder writes a temporary path that is renamed into place, so a reader never sees half a file.
    """
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return False
    with FileLock(str(target) + ".lock", timeout=timeout_s):
        if target.exists():  # another worker built it while we waited
            return False
        tmp = target.with_name(f".{target.name}.tmp")
        if tmp.exists():
            tmp.unlink()
        build(tmp)
        tmp.replace(target)
        return True
