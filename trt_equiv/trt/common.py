"""What the builder, the engine cache and the runner share: the TensorRT module, its log, engine bytes.

TensorRT keeps one logger per process (a second ``Builder``/``Runtime`` with another logger is ignored with a
warning), so the logger here is a per-module singleton that hands messages to whichever captures are active.
That is how a failed build can report what TensorRT said.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from trt_equiv.errors import EngineError
from trt_equiv.runtime import RTX_MODULES, tensorrt_module

_log = logging.getLogger("trt_equiv.tensorrt")

#: TensorRT severities, most severe first (ILogger.Severity values in 8.6 … 11 and TensorRT for RTX)
SEVERITY_NAMES = {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}
_WARNING = 2
_INFO = 3


def resolve_module(module: str | ModuleType | None = None) -> ModuleType:
    """The TensorRT module to use: an imported module as is, a name through the runtime probe, None: the first found."""
    if isinstance(module, ModuleType):
        return module
    return tensorrt_module(module)


def module_identity(trt: ModuleType) -> tuple[str, str]:
    """(module name, version): what an engine is tied to, recorded in every key and error message."""
    return trt.__name__, str(getattr(trt, "__version__", "unknown"))


def is_rtx(trt: ModuleType) -> bool:
    """True for TensorRT for RTX, whose engines are portable across RTX GPUs and whose timing cache is a no-op."""
    return trt.__name__.split(".")[0] in RTX_MODULES


@dataclass
class LogCapture:
    """What TensorRT logged (VERBOSE excluded) while a capture was active."""

    records: list[tuple[int, str]] = field(default_factory=list)

    def problems(self, limit: int = 40) -> list[str]:
        """WARNING and worse, as ``[SEVERITY] message`` lines, the last ``limit`` of them."""
        lines = [f"[{SEVERITY_NAMES.get(s, s)}] {m}" for s, m in self.records if s <= _WARNING]
        return lines[-limit:]

    def report(self, limit: int = 40) -> str:
        """Problems, or the last INFO lines when there were none, for an error message."""
        lines = self.problems(limit)
        if not lines:
            lines = [f"[{SEVERITY_NAMES.get(s, s)}] {m}" for s, m in self.records][-10:]
        return "\n  ".join(lines) if lines else "(TensorRT logged nothing)"


_LOGGERS: dict[str, Any] = {}
_LOGGERS_LOCK = threading.Lock()


def process_logger(trt: ModuleType) -> Any:
    """The one ILogger for ``trt`` in this process, created on first use."""
    name = trt.__name__
    with _LOGGERS_LOCK:
        logger = _LOGGERS.get(name)
        if logger is None:

            class _Logger(trt.ILogger):  # type: ignore[name-defined]
                """Fans TensorRT's messages out to the active captures and to Python logging."""

                def __init__(self) -> None:
                    trt.ILogger.__init__(self)
                    self.sinks: list[LogCapture] = []
                    self.lock = threading.Lock()

                def log(self, severity: Any, msg: str) -> None:
                    level = int(severity)
                    if level > _INFO:  # VERBOSE: megabytes per build, never needed to explain a failure
                        return
                    with self.lock:
                        sinks = list(self.sinks)
                    for sink in sinks:
                        sink.records.append((level, str(msg)))
                    # DEBUG only: every message that matters reaches the user through an EngineError or a
                    # BuildResult; at WARNING, Python's last-resort handler would print harmless no-GPU chatter
                    _log.debug("%s [%s] %s", name, SEVERITY_NAMES.get(level, level), msg)

            logger = _Logger()
            _LOGGERS[name] = logger
    return logger


@contextmanager
def captured_log(trt: ModuleType) -> Iterator[tuple[Any, LogCapture]]:
    """(logger to give TensorRT, capture filled while the block runs)."""
    logger = process_logger(trt)
    capture = LogCapture()
    with logger.lock:
        logger.sinks.append(capture)
    try:
        yield logger, capture
    finally:
        with logger.lock:
            logger.sinks.remove(capture)


def device_description() -> str:
    """'NVIDIA H100 (compute capability 9.0)' or 'no CUDA GPU', for messages."""
    from trt_equiv.runtime import cuda_device

    dev = cuda_device()
    return "no CUDA GPU" if dev is None else f"{dev[0]} (compute capability {dev[1][0]}.{dev[1][1]})"


def deserialize_engine(trt: ModuleType, data: bytes, *, where: str) -> tuple[Any, Any]:
    """(runtime, engine) from serialized bytes; the runtime must outlive the engine.

    A None from TensorRT means the bytes are damaged or were built by another TensorRT version or for another
    device; the error says so and quotes TensorRT, because "deserialization failed" alone sends people hunting.
    """
    name, version = module_identity(trt)
    from trt_equiv.runtime import cuda_unavailable_reason

    # Never deserialize without a working CUDA: the 11.4 lean runtime returns a Runtime after a failed CUDA
    # initialisation and then segfaults in deserialize_cuda_engine, killing the process.
    reason = cuda_unavailable_reason()
    if reason:
        raise EngineError(f"{where}: {name} {version} cannot deserialize an engine here: {reason}")
    with captured_log(trt) as (logger, capture):
        runtime = trt.Runtime(logger)
        failed_init = [m for s, m in capture.records if s <= 1 and "CUDA initialization failure" in m]
        if runtime is None or failed_init:
            raise EngineError(
                f"{where}: {name} {version} could not initialise CUDA, so the engine was not deserialized.\n"
                f"  TensorRT said:\n  {capture.report()}"
            )
        try:
            engine = runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # the bindings raise on some malformed inputs instead of returning None
            engine = None
            capture.records.append((1, f"{type(exc).__name__}: {exc}"))
    if engine is None:
        raise EngineError(
            f"{where}: engine could not be deserialized by {name} {version} on {device_description()}: "
            f"corrupt or built by a different TensorRT version/device; rebuild it from the ONNX file.\n"
            f"  TensorRT said:\n  {capture.report()}"
        )
    return runtime, engine


#: engine-validity diagnostics that mean the bytes themselves are wrong, whatever machine reads them
_ALWAYS_BAD = ("MALFORMED_ENGINE", "VERSION_MISMATCH")
#: diagnostics that only matter where the engine is meant to run (a GPU is present)
_DEVICE_BAD = ("UNSUPPORTED_CC", "OLD_CUDA_DRIVER", "OLD_CUDA_RUNTIME", "INSUFFICIENT_GPU_MEMORY")


def header_problems(trt: ModuleType, data: bytes) -> list[str]:
    """Problems the module can see in an engine's header without a GPU (empty when it cannot look).

    TensorRT for RTX exposes ``Runtime.get_engine_validity``; classic TensorRT has no header check, so there a
    damaged engine is caught by size/sha256 against the metadata, or by deserialization where a GPU exists.
    """
    if not (hasattr(trt.Runtime, "get_engine_validity") and hasattr(trt, "EngineInvalidityDiagnostics")):
        return []
    from trt_equiv.runtime import cuda_device

    name, version = module_identity(trt)
    with captured_log(trt) as (logger, _capture):
        runtime = trt.Runtime(logger)
        header_size = int(getattr(runtime, "engine_header_size", 0) or 0)
        if len(data) < max(header_size, 1):
            return [f"engine is {len(data)} bytes, shorter than the {header_size}-byte {name} header"]
        _validity, diagnostics = runtime.get_engine_validity(data[: header_size or len(data)])
    bits = int(diagnostics)
    wanted = _ALWAYS_BAD + (_DEVICE_BAD if cuda_device() is not None else ())
    found = [
        n
        for n in wanted
        if hasattr(trt.EngineInvalidityDiagnostics, n) and bits & int(getattr(trt.EngineInvalidityDiagnostics, n))
    ]
    return [f"{name} {version} reports the engine header invalid: {', '.join(found)}"] if found else []


#: engine layouts whose header records the whole engine's size (uint64, little endian) at a known offset, by
#: magic. Only layouts verified on real engines are listed — TensorRT for RTX 1.x ("vtrt", size at byte 16);
#: classic TensorRT ("ftrt") is not assumed, there deserialization (with a GPU) or our metadata decides.
_SIZE_FIELDS = {b"vtrt": 16}


def size_problems(data: bytes) -> list[str]:
    """Truncation or trailing bytes seen from the engine header alone (no GPU, no metadata needed).

    Empty when the layout is unknown: the caller must then say that the engine could not be checked in full.
    """
    offset = _SIZE_FIELDS.get(data[:4])
    if offset is None:
        return []
    if len(data) < offset + 8:
        return [f"engine is {len(data)} bytes, too short to hold its header (truncated)"]
    declared = int.from_bytes(data[offset : offset + 8], "little")
    if declared > len(data):
        return [f"engine header says {declared} bytes, the file has {len(data)} (truncated)"]
    if declared < len(data):
        return [f"engine header says {declared} bytes, the file has {len(data)} (extra bytes appended)"]
    return []


def size_checkable(data: bytes) -> bool:
    """True when ``size_problems`` knows this engine layout."""
    return data[:4] in _SIZE_FIELDS


def atomic_write(path: Path, data: bytes, *, record: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader (another pytest-xdist worker, a crashed run's successor) sees the old file or the whole new one,
    never half of one. The temp name is unpredictable and created O_EXCL (never a planted symlink), carries
    pid@host so a killed writer's leftovers are swept by the next run, and the result gets the normal file mode.
    ``record``: also write the file's integrity record (``trt_equiv.locking.read_verified`` checks it).
    """
    from trt_equiv.locking import make_temp_file, publish, write_integrity

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if record:
            write_integrity(tmp, path)
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
