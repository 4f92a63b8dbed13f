"""Where converted models, calibration results, engines and the built runner are cached.

Resolution order: an explicit path (``--cache-dir`` / ``--trt-equiv-cache-dir``), then the
``TRT_EQUIV_CACHE_DIR`` environment variable, then the per-user cache folder (platformdirs).
"""

from __future__ import annotations

import os
from pathlib import Path

from trt_equiv.hashing import content_hash

__all__ = ["ENV_VAR", "content_hash", "resolve_cache_dir"]  # content_hash: re-exported, defined in hashing

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
    from trt_equiv.locking import sweep_cache_tree

    sweep_cache_tree(root)  # once per process: temp files of killed builds (any entry) go away
    return root
