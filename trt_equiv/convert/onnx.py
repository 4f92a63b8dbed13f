"""SavedModel → ONNX with tf2onnx, cached by content hash.

tf2onnx runs in a subprocess (its command-line entry point; tf2onnx 1.17 has no ``from_saved_model``):
TensorFlow's global state and logging stay out of the caller, and a converter crash is an error, not a
dead test session. The batch dimension stays dynamic and the NHWC input layout is kept (tf2onnx inserts
the transposes), so every backend takes the same arrays as the SavedModel.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.backends.base import TensorSpec
from trt_equiv.backends.savedmodel import check_savedmodel_dir
from trt_equiv.cache_dir import resolve_cache_dir
from trt_equiv.errors import ConversionError, ModelLoadError
from trt_equiv.hashing import content_hash
from trt_equiv.locking import build_once
from trt_equiv.progress import step
from trt_equiv.runtime import package_version, require

DEFAULT_OPSET = 17


def savedmodel_to_onnx(
    model_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    signature: str = "serving_default",
    timeout_s: float = 900,
) -> Path:
    """The fp32 ONNX file for ``model_dir``; converted on the first call, reused from the cache after."""
    model_dir = check_savedmodel_dir(model_dir)
    tf = package_version("tensorflow", "tensorflow-cpu")  # the converter runs TensorFlow's graph tooling
    key = content_hash([model_dir], extra=[f"tf2onnx={_tf2onnx_version()}", f"tf={tf}", f"opset={opset}", signature])
    target = resolve_cache_dir(cache_dir) / "onnx" / key / "model.onnx"

    def convert(tmp: Path) -> None:
        tmp = tmp.resolve()  # the child runs elsewhere (cwd below): every path it gets is absolute
        cmd = [
            sys.executable, *_ISOLATED, "-m", "tf2onnx.convert",
            "--saved-model", str(model_dir.resolve()),
            "--signature_def", signature,
            "--opset", str(opset),
            "--output", str(tmp),
        ]  # fmt: skip
        with step(f"converting {model_dir} to ONNX (tf2onnx, opset {opset})"):
            # cwd: the builder's private temp folder, so nothing in the caller's folder can be imported or hit
            what = f"tf2onnx conversion of {model_dir}"
            code, out, err = run_child(cmd, cwd=tmp.parent, timeout_s=timeout_s, what=what)
        if code != 0 or not tmp.is_file():
            tail = "\n".join((err or out).strip().splitlines()[-15:])
            raise ConversionError(f"tf2onnx: conversion of {model_dir} failed (exit {code}):\n{tail}")
        check_onnx(tmp)

    build_once(target, convert, what=f"the ONNX conversion of {model_dir} another process is running")
    return target


#: interpreter flags for the converter child: only installed packages, never the caller's folder or script dir
#: (-P: Python 3.11+ keeps PYTHONPATH, which an installed-by-path setup may need; older: -I isolates fully)
_ISOLATED = ("-P",) if sys.version_info >= (3, 11) else ("-I",)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int, prctl: Any) -> None:  # pragma: no cover - runs in the child before exec
    """Linux: ask the kernel to SIGKILL this child when its parent dies, so a killed caller leaves no converter."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _child_setup() -> Any:
    """preexec_fn for the converter: libc's prctl is looked up here, in the parent (no dlopen after fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return partial(_die_with_parent, os.getpid(), prctl)


def run_child(cmd: list[str], *, cwd: Path, timeout_s: float, what: str) -> tuple[int, str, str]:
    """Run ``cmd`` (never through a shell) in its own process group; (exit code, stdout, stderr).

    The child dies with its caller: on Linux through PR_SET_PDEATHSIG (even when the caller is SIGKILLed), and
    on a timeout, an exception or Ctrl-C its whole process group is killed before this returns or raises.
    """
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=_child_setup(),
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise ConversionError(f"{what} did not finish in {timeout_s:.0f} s (killed)") from exc
    except BaseException:
        _kill_group(proc)
        raise
    return proc.returncode, out, err


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=10)


def _tf2onnx_version() -> str:
    """Installed tf2onnx version, read from package metadata: importing tf2onnx imports TensorFlow."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tf2onnx")
    except PackageNotFoundError:
        require("tf2onnx")  # raises MissingRuntimeError with the install hint
        raise


def load_onnx(path: str | os.PathLike[str], *, what: str = "ONNX", load_external_data: bool = True) -> Any:
    """``onnx.load`` that turns every parse failure (DecodeError, ...) into a ModelLoadError naming the file."""
    onnx = require("onnx")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # google.protobuf DecodeError, OSError, ValueError, ...
        raise ModelLoadError(
            f"{what} {path}: expected an ONNX model file, could not parse it ({type(exc).__name__}: {exc})"
        ) from exc


def graph_inputs(graph: Any) -> list[Any]:
    """A graph's real inputs: ``graph.input`` without the initializers older exporters also list there."""
    initializers = {i.name for i in graph.initializer}
    return [value for value in graph.input if value.name not in initializers]


def check_onnx(path: Path) -> None:
    """Structural check of a converted file: valid ONNX, every input with a dynamic batch dimension."""
    onnx = require("onnx")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises ValidationError, DecodeError, ...
        raise ConversionError(f"ONNX {path}: not a valid model ({exc})") from exc
    inputs = graph_inputs(model.graph)
    if not inputs:
        raise ConversionError(f"ONNX {path}: expected at least one input, got none")
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            raise ConversionError(f"ONNX {path}: input {value.name!r}: expected a batch dimension, got a scalar")
        if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            raise ConversionError(
                f"ONNX {path}: input {value.name!r}: expected a dynamic batch dimension, "
                f"got a fixed {dims[0].dim_value}"
            )


def onnx_input_specs(path: str | Path) -> tuple[TensorSpec, ...]:
    """The graph inputs of an ONNX file (initializers excluded) as TensorSpecs: name, dtype, per-sample shape."""
    onnx = require("onnx")
    specs = []
    for value in graph_inputs(load_onnx(path, load_external_data=False).graph):
        tensor_type = value.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        dims = tensor_type.shape.dim[1:]
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
        specs.append(TensorSpec(value.name, dtype, shape))
    return tuple(specs)
