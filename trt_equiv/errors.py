"""Exception hierarchy.

Every error raised on purpose by trt_equiv derives from ``TrtEquivError`` so the CLI can map it to an exit
code. Input problems are also ``ValueError`` and missing runtimes also ``ImportError`` so that callers who
catch the builtin types keep working.
"""

from __future__ import annotations


class TrtEquivError(Exception):
    """Base class of every error trt_equiv raises deliberately."""


class InputValidationError(TrtEquivError, ValueError):
    """An input batch, data file or argument is not what the backend expects."""


class MissingRuntimeError(TrtEquivError, ImportError):
    """A heavy runtime (tensorflow, onnxruntime, tensorrt, cuda, a GPU, the C++ runner) is not available."""


class ModelLoadError(TrtEquivError):
    """A model or artefact path exists but cannot be loaded as what was asked for."""


class ConversionError(TrtEquivError):
    """SavedModel → ONNX conversion or a precision recipe failed."""


class QdqValidationError(ConversionError):
    """An int8 Q/DQ ONNX file breaks a rule TensorRT enforces."""


class EngineError(TrtEquivError):
    """A TensorRT engine could not be built, or a cached/user engine is corrupt or does not match."""


class RunnerError(TrtEquivError):
    """The C++ runner binary is missing, crashed, timed out or wrote something unexpected."""


class BenchmarkError(TrtEquivError):
    """A benchmark's timed calls produced outputs that differ from the verified ones (MLPerf TEST01)."""


class CacheLockTimeout(TrtEquivError, TimeoutError):
    """Waited too long for another process that holds a cache entry's build lock (the message names it)."""
