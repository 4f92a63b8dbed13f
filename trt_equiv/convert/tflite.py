"""SavedModel → TF-Lite flatbuffer at fp32, fp16 (float16 weights) or full-integer int8, cached by content hash.

TensorFlow's ``TFLiteConverter.from_saved_model`` runs in a subprocess (``python -m trt_equiv.convert.tflite``),
as tf2onnx does in ``convert/onnx.py``: the converter is MLIR code that can abort the process on a model it
cannot handle, and a child keeps that, TensorFlow's global state and its log lines out of the caller (a
conversion costs ~4 s of which ~3 s is TensorFlow's import; it happens once per model and precision, then
the cache answers). The child runs from a fresh empty working directory so no local folder named like a
package can be imported instead of the installed one.

- fp32: the converter's defaults (float32 everywhere).
- fp16: ``Optimize.DEFAULT`` + ``supported_types=[float16]``: float16 weights, float32 inputs and outputs.
- int8: full-integer (``TFLITE_BUILTINS_INT8``) with the calibration split as representative data set
  (at most ``CALIBRATION_SAMPLES`` samples, one at a time, every input by name), inputs and outputs kept
  float32 (``inference_input_type``/``inference_output_type``) so every backend takes the same arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trt_equiv.backends.savedmodel import check_savedmodel_dir
from trt_equiv.cache_dir import content_hash, resolve_cache_dir
from trt_equiv.data import CALIBRATION_SAMPLES, Dataset
from trt_equiv.errors import ConversionError, InputValidationError
from trt_equiv.locking import build_once
from trt_equiv.progress import step
from trt_equiv.runtime import package_version

TFLITE_PRECISIONS = ("fp32", "fp16", "int8")
#: a TF-Lite flatbuffer carries this file identifier at bytes 4..8
TFLITE_IDENTIFIER = b"TFL3"


def savedmodel_to_tflite(
    model_dir: str | Path,
    precision: str = "fp32",
    *,
    calibration: Dataset | None = None,
    cache_dir: str | Path | None = None,
    signature: str = "serving_default",
    timeout_s: float = 900,
) -> Path:
    """The ``.tflite`` file for ``model_dir`` at ``precision``; converted on the first call, cached after.

    int8 needs ``calibration`` (never the test data): its arrays are part of the cache key.
    """
    if precision not in TFLITE_PRECISIONS:
        allowed = ", ".join(TFLITE_PRECISIONS)
        raise InputValidationError(f"TF-Lite precision: expected one of {allowed}, got {precision!r}")
    model_dir = check_savedmodel_dir(model_dir).resolve()
    if precision == "int8" and calibration is None:
        raise InputValidationError(
            "TF-Lite int8: expected a calibration set (--calibration FILE.npz) for the representative data set, "
            "got none; trt_equiv never calibrates on the test data or on random numbers"
        )
    tf = package_version("tensorflow", "tensorflow-cpu")
    with tempfile.TemporaryDirectory(prefix="trt_equiv_tflite_") as staging:
        calib_dir = None
        if precision == "int8":
            assert calibration is not None
            calib_dir = Path(staging) / "calibration"
            _write_calibration(calib_dir, calibration.take(CALIBRATION_SAMPLES))
        paths = [model_dir] + ([calib_dir] if calib_dir else [])
        key = content_hash(paths, extra=[f"tf={tf}", f"tflite-{precision}", signature, "format=1"])
        target = resolve_cache_dir(cache_dir) / "tflite" / key / f"model.{precision}.tflite"

        def convert(tmp: Path) -> None:
            cmd = [
                sys.executable, "-m", "trt_equiv.convert.tflite",
                "--saved-model", str(model_dir), "--precision", precision, "--signature", signature,
                "--out", str(tmp.resolve()),
            ] + (["--calibration-dir", str(calib_dir)] if calib_dir else [])  # fmt: skip
            env = dict(os.environ)
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            package_root = str(Path(__file__).resolve().parents[2])  # trt_equiv importable from a source tree
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
            try:
                with step(f"converting {model_dir} to TF-Lite ({precision})"), tempfile.TemporaryDirectory() as cwd:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False,
                                          cwd=cwd, env=env)  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise ConversionError(f"TF-Lite: conversion of {model_dir} ({precision}) did not finish in "
                                      f"{timeout_s:.0f} s") from exc  # fmt: skip
            if proc.returncode != 0 or not tmp.is_file():
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
                raise ConversionError(
                    f"TF-Lite: conversion of {model_dir} ({precision}) failed (exit {proc.returncode}):\n{tail}"
                )
            check_tflite(tmp)

        build_once(target, convert)
    return target


def check_tflite(path: Path) -> None:
    """A converted file is a TF-Lite flatbuffer (identifier ``TFL3``), not an empty or foreign file."""
    head = path.read_bytes()[:8]
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ConversionError(f"TF-Lite {path}: expected a flatbuffer with identifier TFL3, got {head!r}")


def _write_calibration(directory: Path, data: Dataset) -> None:
    """Each input as a plain ``.npy`` (byte-deterministic, so the cache key is stable) plus their names."""
    directory.mkdir(parents=True)
    names = list(data.inputs)
    for i, name in enumerate(names):
        np.save(directory / f"input{i}.npy", np.ascontiguousarray(data.inputs[name]), allow_pickle=False)
    (directory / "names.json").write_text(json.dumps(names))


def _read_calibration(directory: Path) -> dict[str, np.ndarray]:
    names = json.loads((directory / "names.json").read_text())
    return {name: np.load(directory / f"input{i}.npy", allow_pickle=False) for i, name in enumerate(names)}


def _convert(model_dir: str, precision: str, signature: str, out: str, calibration_dir: str | None) -> None:
    """The child's work: run TFLiteConverter and write the flatbuffer to ``out``."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(model_dir, signature_keys=[signature])
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        assert calibration_dir is not None
        arrays = _read_calibration(Path(calibration_dir))
        loaded = tf.saved_model.load(model_dir)
        _, spec = loaded.signatures[signature].structured_input_signature
        names = list(spec)
        if len(arrays) == 1 and len(names) == 1:  # a single-input file may key its array 'x'
            arrays = {names[0]: next(iter(arrays.values()))}
        missing = [n for n in names if n not in arrays]
        if missing:
            raise SystemExit(f"calibration set: expected arrays for inputs {names}, missing {missing}")
        n = len(next(iter(arrays.values())))

        def representative() -> object:
            for i in range(n):
                yield {name: arrays[name][i : i + 1] for name in names}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    Path(out).write_bytes(converter.convert())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trt_equiv.convert.tflite")
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--precision", required=True, choices=TFLITE_PRECISIONS)
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibration-dir")
    args = parser.parse_args(argv)
    _convert(args.saved_model, args.precision, args.signature, args.out, args.calibration_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
