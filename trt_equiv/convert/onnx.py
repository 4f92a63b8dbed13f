"""SavedModel → ONNX with tf2onnx, cached by content hash.

tf2onnx runs in a subprocess (its command-line entry point; tf2onnx 1.17 has no ``from_saved_model``):
TensorFlow's global state and logging stay out of the caller, and a converter crash is an error, not a
dead test session. The batch dimension stays dynamic and the NHWC input layout is kept (tf2onnx inserts
the transposes), so every backend takes the same arrays as the SavedModel.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trt_equiv.backends.savedmodel import check_savedmodel_dir
from trt_equiv.cache_dir import resolve_cache_dir
from trt_equiv.errors import ConversionError
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
        cmd = [
            sys.executable, "-m", "tf2onnx.convert",
            "--saved-model", str(model_dir),
            "--signature_def", signature,
            "--opset", str(opset),
            "--output", str(tmp),
        ]  # fmt: skip
        try:
            with step(f"converting {model_dir} to ONNX (tf2onnx, opset {opset})"):
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ConversionError(f"tf2onnx: conversion of {model_dir} did not finish in {timeout_s:.0f} s") from exc
        if proc.returncode != 0 or not tmp.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ConversionError(f"tf2onnx: conversion of {model_dir} failed (exit {proc.returncode}):\n{tail}")
        check_onnx(tmp)

    build_once(target, convert)
    return target


def _tf2onnx_version() -> str:
    """Installed tf2onnx version, read from package metadata: importing tf2onnx imports TensorFlow."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tf2onnx")
    except PackageNotFoundError:
        require("tf2onnx")  # raises MissingRuntimeError with the install hint
        raise


def check_onnx(path: Path) -> None:
    """Structural check of a converted file: valid ONNX, one input with a dynamic batch dimension."""
    onnx = require("onnx")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises ValidationError, DecodeError, ...
        raise ConversionError(f"ONNX {path}: not a valid model ({exc})") from exc
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ConversionError(f"ONNX {path}: expected one input, got {[i.name for i in inputs]}")
    batch = inputs[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value > 0:
        raise ConversionError(f"ONNX {path}: expected a dynamic batch dimension, got a fixed {batch.dim_value}")
