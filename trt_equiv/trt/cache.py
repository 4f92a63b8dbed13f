"""Content-keyed engine cache: an engine is reused only when everything that made it is unchanged.

Layout (``root`` is ``<cache dir>/engines`` unless given)::

    <root>/<key>.engine        serialized engine
    <root>/<key>.json          metadata: key inputs, engine size + sha256, build time, created-at
    <root>/<key>.json.lock     file lock: parallel workers build once (trt_equiv.locking.build_once)
    <root>/timing/<module>-<version>-<device>.cache       persistent timing cache (classic TensorRT)
    <root>/calibration/<onnx id>-<data sha>.cache         int8-legacy calibration cache

key = sha256 over the ONNX model's canonical identity (``trt_equiv.hashing.onnx_identity``: content without
the generated tensor names that make tf2onnx's output differ run to run), TensorRT module + version, device
name + compute capability (or the explicit target compute capabilities), recipe, profiles, workspace and
calibration data. The metadata is written last, so its presence marks a complete entry; a hit re-checks size
and sha256 (and the header's size field and validity, or a full deserialization where the module can do that
here), so a truncated, damaged or mismatched engine is never used: it is rebuilt with a warning, or refused
with ``on_mismatch="error"``. Delete ``root`` to clear.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from trt_equiv.errors import EngineError, InputValidationError
from trt_equiv.hashing import json_hash, onnx_identity, sha256_file
from trt_equiv.trt.build import (
    DEFAULT_PROFILE,
    DEFAULT_WORKSPACE_BYTES,
    BuildOptions,
    Calibration,
    Profile,
    build_serialized_engine,
)
from trt_equiv.trt.common import (
    atomic_write,
    deserialize_engine,
    header_problems,
    module_identity,
    resolve_module,
    size_checkable,
    size_problems,
)

#: bump when the key inputs or the metadata layout change: old entries then simply miss
KEY_FORMAT = 2


class EngineCacheWarning(UserWarning):
    """A cached engine was found unusable (damaged or not matching its request) and is being rebuilt."""


@dataclass(frozen=True)
class CachedEngine:
    """An engine file ready to load, its metadata, and whether it came from the cache."""

    path: Path
    metadata: dict[str, Any]
    hit: bool
    build_seconds: float

    @property
    def metadata_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def size_bytes(self) -> int:
        return int(self.metadata["engine"]["size"])


def device_identity(trt: ModuleType, options: BuildOptions) -> dict[str, Any]:
    """What the engine is built for: the GPU here (if any) and the explicit targets (if any).

    Classic TensorRT engines are tied to the GPU that built them; TensorRT for RTX builds without a GPU, for
    the targets it is given or for its default portable set, which ``targets: []`` stands for.
    """
    from trt_equiv.runtime import cuda_device

    dev = cuda_device()
    return {
        "device": None if dev is None else {"name": dev[0], "compute_capability": f"{dev[1][0]}.{dev[1][1]}"},
        "targets": list(options.target_compute_capabilities),
    }


def engine_key_inputs(
    onnx_path: Path, options: BuildOptions, trt: ModuleType, calibration: Calibration | None = None
) -> dict[str, Any]:
    """Everything the engine bytes depend on, as a JSON-ready dict (hashed into the key, stored in metadata)."""
    name, version = module_identity(trt)
    return {
        "key_format": KEY_FORMAT,
        "onnx_identity": onnx_identity(onnx_path),
        "module": name,
        "module_version": version,
        **device_identity(trt, options),
        **options.key_dict(),
        "calibration": calibration.fingerprint()
        if calibration is not None and options.recipe == "int8-legacy"
        else None,
    }


def engine_key(key_inputs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the key inputs."""
    return json_hash(key_inputs)


def _diff(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    keys = sorted(set(expected) | set(found))
    return [
        f"{k}: requested {expected.get(k)!r}, cached {found.get(k)!r}" for k in keys if expected.get(k) != found.get(k)
    ]


def _read_metadata(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"metadata {path.name} is missing"
    except (OSError, ValueError) as exc:
        return None, f"metadata {path.name} is unreadable ({exc})"
    if not isinstance(meta, dict) or not isinstance(meta.get("engine"), dict):
        return None, f"metadata {path.name} is not trt_equiv engine metadata"
    return meta, None


def integrity_problems(
    engine_path: Path, meta: dict[str, Any], trt: ModuleType | None, *, deserialize: bool
) -> list[str]:
    """Size and sha256 against the metadata, then the module's header check, then (optionally) deserialization."""
    if not engine_path.is_file():
        return [f"engine file {engine_path.name} is missing"]
    size = engine_path.stat().st_size
    want = meta["engine"]
    if size != want.get("size"):
        return [f"engine file is {size} bytes, metadata says {want.get('size')} (truncated or replaced)"]
    if sha256_file(engine_path) != want.get("sha256"):
        return [f"engine sha256 differs from the metadata's {str(want.get('sha256'))[:12]}… (file damaged or replaced)"]
    data = engine_path.read_bytes()
    problems = size_problems(data)
    if trt is None or problems:
        return problems
    problems = header_problems(trt, data)
    if not problems and deserialize:
        try:
            deserialize_engine(trt, data, where=str(engine_path))
        except EngineError as exc:
            problems.append(str(exc))
    return problems


def _can_deserialize_here(trt: ModuleType) -> bool:
    from trt_equiv.runtime import tensorrt_execution_unavailable_reason

    return tensorrt_execution_unavailable_reason(trt.__name__) is None


class EngineCache:
    """Engines keyed by content under ``root`` (default ``<trt_equiv cache dir>/engines``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 3600.0) -> None:
        if root is None:
            from trt_equiv.cache_dir import resolve_cache_dir

            root = resolve_cache_dir() / "engines"
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_timeout_s = lock_timeout_s
        #: engines this object built (a hit does not count): lets tests and reports prove reuse
        self.builds = 0

    def paths(self, key: str) -> tuple[Path, Path]:
        """(engine, metadata) paths of ``key``."""
        return self.root / f"{key}.engine", self.root / f"{key}.json"

    def get(
        self,
        onnx_path: str | os.PathLike[str],
        *,
        recipe: str = "fp32",
        profiles: Profile | Sequence[Profile] = (DEFAULT_PROFILE,),
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
        target_compute_capabilities: Sequence[str] = (),
        module: str | ModuleType | None = None,
        calibration: Calibration | None = None,
        progress: bool | None = None,
        on_mismatch: str = "rebuild",
    ) -> CachedEngine:
        """The engine for this request: from the cache when a valid entry exists, else built once and stored.

        ``on_mismatch``: what to do with an entry that exists but is damaged or does not match the request —
        "rebuild" (with an EngineCacheWarning) or "error" (EngineError; nothing is used).
        """
        if on_mismatch not in ("rebuild", "error"):
            raise InputValidationError(f"on_mismatch: expected 'rebuild' or 'error', got {on_mismatch!r}")
        onnx = Path(onnx_path)
        if not onnx.is_file():
            raise InputValidationError(f"onnx_path: expected an existing ONNX file, got {str(onnx)!r}")
        trt = resolve_module(module)
        options = BuildOptions(
            recipe=recipe,
            profiles=(profiles,) if isinstance(profiles, Profile) else tuple(profiles),
            workspace_bytes=workspace_bytes,
            target_compute_capabilities=tuple(target_compute_capabilities),
        )
        key_inputs = engine_key_inputs(onnx, options, trt, calibration)
        key = engine_key(key_inputs)
        engine_path, meta_path = self.paths(key)
        deserialize = _can_deserialize_here(trt)

        problems = self._problems(engine_path, meta_path, key, key_inputs, trt, deserialize)
        if not problems:
            return self._hit(engine_path, meta_path)
        if engine_path.exists() or meta_path.exists():
            self._discard(engine_path, meta_path, key, key_inputs, trt, deserialize, problems, on_mismatch)

        def build(tmp_meta: Path) -> None:
            cal = calibration
            if cal is not None and cal.cache_file is None:
                stem = f"{key_inputs['onnx_identity'][:16]}-{cal.fingerprint()[:16]}"
                cal = Calibration(cal.data, cal.batch_size, self.root / "calibration" / f"{stem}.cache")
            result = build_serialized_engine(
                onnx,
                options,
                module=trt,
                timing_cache=self._timing_cache_path(trt, key_inputs),
                calibration=cal,
                progress=progress,
            )
            atomic_write(engine_path, result.engine)
            meta = {
                "format": KEY_FORMAT,
                "key": key,
                "key_inputs": key_inputs,
                "engine": {"file": engine_path.name, "size": result.size_bytes, "sha256": sha256_file(engine_path)},
                "build_seconds": round(result.seconds, 4),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "onnx_path": str(onnx.resolve()),
                "inputs": {k: list(v) for k, v in result.inputs.items()},
                "strongly_typed": result.strongly_typed,
                "timing_cache_used": result.timing_cache_used,
                "builder_warnings": list(result.warnings[-20:]),
            }
            tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True))
            self.builds += 1

        if not self._build_once(meta_path, build):
            # another process built it while we waited for the lock: use theirs, after the same checks
            problems = self._problems(engine_path, meta_path, key, key_inputs, trt, deserialize)
            if problems:
                raise EngineError(f"engine {engine_path} built by another process is unusable: {'; '.join(problems)}")
            return self._hit(engine_path, meta_path)
        meta, _ = _read_metadata(meta_path)
        assert meta is not None
        return CachedEngine(engine_path, meta, hit=False, build_seconds=float(meta["build_seconds"]))

    def _hit(self, engine_path: Path, meta_path: Path) -> CachedEngine:
        meta, _ = _read_metadata(meta_path)
        assert meta is not None
        return CachedEngine(engine_path, meta, hit=True, build_seconds=float(meta.get("build_seconds", 0.0)))

    def _problems(
        self,
        engine_path: Path,
        meta_path: Path,
        key: str,
        key_inputs: dict[str, Any],
        trt: ModuleType,
        deserialize: bool,
    ) -> list[str]:
        meta, problem = _read_metadata(meta_path)
        if meta is None:
            return [problem or "metadata missing"]
        mismatch = _diff(key_inputs, meta.get("key_inputs") or {})
        if meta.get("key") != key:
            mismatch.insert(0, f"key: requested {key[:12]}…, metadata says {str(meta.get('key'))[:12]}…")
        if mismatch:
            return ["metadata does not match the request: " + "; ".join(mismatch)]
        return integrity_problems(engine_path, meta, trt, deserialize=deserialize)

    def _discard(
        self,
        engine_path: Path,
        meta_path: Path,
        key: str,
        key_inputs: dict[str, Any],
        trt: ModuleType,
        deserialize: bool,
        problems: list[str],
        on_mismatch: str,
    ) -> None:
        """Remove a bad entry under the build lock (re-checked there: another worker may have just fixed it)."""
        message = f"cached engine {engine_path} not used: {'; '.join(problems)}"
        if on_mismatch == "error":
            raise EngineError(message + f"; delete it (or the cache folder {self.root}) to rebuild")
        from trt_equiv.locking import hold_lock

        with hold_lock(Path(str(meta_path) + ".lock"), timeout_s=self.lock_timeout_s, what=self._what(meta_path)):
            if not self._problems(engine_path, meta_path, key, key_inputs, trt, deserialize):
                return
            warnings.warn(message + "; rebuilding", EngineCacheWarning, stacklevel=3)
            meta_path.unlink(missing_ok=True)  # metadata first: an engine without it is never a hit
            engine_path.unlink(missing_ok=True)

    def _build_once(self, meta_path: Path, build: Any) -> bool:
        from trt_equiv.locking import build_once

        # the metadata (engine size + sha256, verified on every hit) is this entry's integrity record
        return build_once(meta_path, build, timeout_s=self.lock_timeout_s, what=self._what(meta_path), integrity=False)

    @staticmethod
    def _what(meta_path: Path) -> str:
        return f"the engine {meta_path.with_suffix('.engine')} another process is building"

    def _timing_cache_path(self, trt: ModuleType, key_inputs: dict[str, Any]) -> Path:
        dev = key_inputs["device"]
        device = "nogpu" if dev is None else f"{dev['name']}-{dev['compute_capability']}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{key_inputs['module']}-{key_inputs['module_version']}-{device}")
        return self.root / "timing" / f"{stem}.cache"

    def clear(self) -> int:
        """Delete every entry, lock, timing and calibration cache under ``root``; the number of files removed."""
        removed = 0
        for pattern in (
            "*.engine",
            "*.json",
            "*.lock",
            "*.owner",
            ".*.tmp.*",
            "timing/*.cache",
            "calibration/*.cache",
            "calibration/*.sha256",
            "calibration/.*.tmp.*",
        ):
            for f in self.root.glob(pattern):
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    f.unlink(missing_ok=True)
                removed += 1
        return removed


@dataclass
class EngineCheck:
    """Result of checking a user-supplied engine file; falsy when something is wrong."""

    path: Path
    size: int = 0
    sha256: str | None = None
    metadata: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"engine {self.path} ({self.size} bytes): {'OK' if self else 'NOT USABLE'}"
        lines = [head] + [f"  problem: {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_engine_file(
    path: str | os.PathLike[str],
    *,
    onnx_path: str | os.PathLike[str] | None = None,
    recipe: str | None = None,
    module: str | ModuleType | None = None,
) -> EngineCheck:
    """Sanity-check an engine a user brings (``trt-equiv check --engine FILE``) before anything trusts it.

    Checks: the file exists and is not empty; the module's header check; when our metadata JSON sits beside it,
    size and sha256, the TensorRT module and version, the device, and — when given — the ONNX file and recipe
    it should have been built from; where engines can run here, a full deserialization.
    """
    engine_path = Path(path)
    check = EngineCheck(engine_path)
    if not engine_path.is_file():
        check.problems.append("file does not exist or is not a regular file")
        return check
    check.size = engine_path.stat().st_size
    if check.size == 0:
        check.problems.append("file is empty")
        return check
    check.sha256 = sha256_file(engine_path)
    try:
        trt: ModuleType | None = resolve_module(module)
    except ImportError as exc:
        trt = None
        check.notes.append(f"no TensorRT module to inspect the engine with ({exc})")

    meta_path = engine_path.with_suffix(".json")
    meta, problem = _read_metadata(meta_path)
    if meta is None:
        check.notes.append(
            f"no trt_equiv metadata beside it ({problem}): which ONNX, recipe and TensorRT built it cannot be checked"
        )
        data = engine_path.read_bytes()
        check.problems += size_problems(data)
        deserialized = False
        if trt is not None and not check.problems:
            check.problems += header_problems(trt, data)
            if _can_deserialize_here(trt) and not check.problems:
                try:
                    deserialize_engine(trt, data, where=str(engine_path))
                    deserialized = True
                except EngineError as exc:
                    check.problems.append(str(exc))
        if not check.problems and not deserialized and not size_checkable(data):
            check.problems.append(
                "neither metadata beside it nor a full deserialization here (no GPU/TensorRT runtime) can show the "
                "engine is whole, and its header records no size; put its trt_equiv .json beside it or check it on "
                "the GPU it was built for"
            )
        return check

    check.metadata = meta
    inputs = meta.get("key_inputs") or {}
    if trt is not None:
        name, version = module_identity(trt)
        if (inputs.get("module"), inputs.get("module_version")) != (name, version):
            check.problems.append(
                f"built with {inputs.get('module')} {inputs.get('module_version')}, but {name} {version} is installed: "
                f"TensorRT engines only load in the version that built them"
            )
        here = device_identity(trt, BuildOptions(target_compute_capabilities=tuple(inputs.get("targets") or ())))
        if not inputs.get("targets") and inputs.get("device") and here["device"] and inputs["device"] != here["device"]:
            check.problems.append(f"built for {inputs['device']}, this machine has {here['device']}")
    if onnx_path is not None and inputs.get("onnx_identity") != onnx_identity(onnx_path):
        check.problems.append(
            f"built from an ONNX model with identity {str(inputs.get('onnx_identity'))[:12]}…, not from {onnx_path} "
            f"(a stale engine from another model or export)"
        )
    if recipe is not None and inputs.get("recipe") != recipe:
        check.problems.append(f"built with recipe {inputs.get('recipe')!r}, expected {recipe!r}")
    if not check.problems:
        check.problems += integrity_problems(
            engine_path, meta, trt, deserialize=trt is not None and _can_deserialize_here(trt)
        )
    return check
