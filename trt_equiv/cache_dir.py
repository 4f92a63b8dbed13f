"""Where converted models, calibration results, engines and the built runner are cached.

Resolution order: an explicit path (``--cache-dir`` / ``--trt-equiv-cache-dir``), then the
``TRT_EQUIV_CACHE_DIR`` environment variable, then the per-user cache folder (platformdirs).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

ENV_VAR = "TRT_EQUIV_CACHE_DIR"


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The cache root, created if missing."""
    if explicit:
        root = Path(explicit)
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("trt_equiv"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def content_hash(paths: Iterable[str | os.PathLike[str]] = (), extra: Iterable[str] = ()) -> str:
    """sha256 over the bytes of files (directories walked in sorted order, relative names included) and
    extra strings. Used for every content-keyed cache so that a changed input never hits a stale entry."""
    h = hashlib.sha256()
    for p in paths:
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
    for e in extra:
        h.update(e.encode())
        h.update(b"\0")
    return h.hexdigest()
