"""Reduced precision as ONNX: fp16 conversion and explicit int8 Q/DQ, both TensorRT-ready.

TensorRT 11 has no FP16/INT8 builder flags or calibrators: precision must be in the ONNX file (strongly
typed network). These recipes write ``model.fp16.onnx`` and ``model.int8.qdq.onnx`` next to nothing the
user owns (into the cache, keyed by content), and both files also run on ONNX Runtime, so recipe error
and TensorRT error are measured separately.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.cache_dir import resolve_cache_dir
from trt_equiv.convert.onnx import graph_inputs, load_onnx, onnx_input_specs
from trt_equiv.convert.qdq import validate_qdq
from trt_equiv.data import CALIBRATION_BATCH, CALIBRATION_SAMPLES, Dataset, calibration_batches
from trt_equiv.errors import ConversionError, InputValidationError
from trt_equiv.hashing import array_hash, content_hash
from trt_equiv.locking import build_once
from trt_equiv.progress import step
from trt_equiv.runtime import is_available, package_version, require

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
FP16_METHODS = ("onnxconverter", "autocast")

#: Histogram settings. ORT's defaults (128 bins, 128 quantized bins) leave entropy nothing to search, so
#: it returns the min-max range; 2048 bins / 128 quantized bins is what TensorRT's entropy calibrator uses.
HISTOGRAM_BINS = 2048
QUANTIZED_BINS = 128
PERCENTILE = 99.999


@dataclass(frozen=True)
class RecipeResult:
    """A reduced-precision ONNX file and what the recipe did."""

    path: Path
    precision: str
    method: str
    #: fp16: nodes left in float32 (op type blocked or kept by AutoCast); int8: nodes left unquantized
    kept_fp32: list[str] = field(default_factory=list)
    #: True when the file came from the cache (no conversion or calibration ran)
    cache_hit: bool = False
    info: dict[str, object] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ fp16


def fp16_onnx(
    fp32_onnx: str | Path, *, method: str = "onnxconverter", cache_dir: str | Path | None = None
) -> RecipeResult:
    """float16 weights and activations, float32 inputs and outputs (so callers feed the same arrays).

    ``method="autocast"`` uses NVIDIA ModelOpt AutoCast (optional dependency), which keeps
    overflow-prone nodes in float32 by measuring their ranges.
    """
    if method not in FP16_METHODS:
        raise InputValidationError(f"fp16 method: expected one of {FP16_METHODS}, got {method!r}")
    fp32_onnx = Path(fp32_onnx)
    versions = (
        f"onnxconverter-common={package_version('onnxconverter-common')},modelopt={package_version('nvidia-modelopt')}"
    )
    key = content_hash([fp32_onnx], extra=["fp16", method, versions])
    target = resolve_cache_dir(cache_dir) / "precision" / key / "model.fp16.onnx"

    def convert(tmp: Path) -> None:
        onnx = require("onnx")
        if method == "autocast":
            if not is_available("modelopt"):
                raise ConversionError("fp16 method 'autocast' needs NVIDIA ModelOpt: pip install nvidia-modelopt[onnx]")
            from modelopt.onnx.autocast import convert_to_mixed_precision

            model = convert_to_mixed_precision(onnx_path=str(fp32_onnx), low_precision_type="fp16", keep_io_types=True)
        else:
            float16 = require("onnxconverter_common.float16")
            source = _separate_consumed_outputs(load_onnx(fp32_onnx))
            model = _fix_cast_targets(float16.convert_float_to_float16(source, keep_io_types=True))
        try:
            # full_check runs type inference: plain check_model passes files ONNX Runtime then refuses to load
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:  # onnx.checker.ValidationError, shape_inference.InferenceError
            raise ConversionError(f"fp16 recipe ({method}) produced an invalid model from {fp32_onnx}: {exc}") from exc
        onnx.save(model, str(tmp))

    built = build_once(target, convert)
    return RecipeResult(target, "fp16", method, kept_fp32=fp32_nodes(target), cache_hit=not built)


def _separate_consumed_outputs(model: Any) -> Any:
    """Give every graph output that nodes also consume its own Identity (a copy of ``model``).

    onnxconverter-common keeps a graph output float32 (``keep_io_types``) but converts the weights of the nodes
    that read it to float16, so a model exposing an intermediate (an embedding also feeding the logits) gets a
    MatMul with mixed input types that ONNX Runtime refuses. Reading an internal copy instead fixes that.
    """
    onnx = require("onnx")
    model = copy.deepcopy(model)
    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumed = {i for n in graph.node for i in n.input} & outputs
    for name in sorted(consumed):
        internal = f"{name}__trt_equiv_internal"
        for node in graph.node:
            node.output[:] = [internal if o == name else o for o in node.output]
            node.input[:] = [internal if i == name else i for i in node.input]
        graph.node.append(onnx.helper.make_node("Identity", [internal], [name], name=f"{name}__trt_equiv_output"))
    return model


def _fix_cast_targets(model: Any) -> Any:
    """Casts from integer inputs whose output onnxconverter-common retyped to float16 but whose ``to`` it left
    at FLOAT (token models: ``Cast(ids)``, ``Cast(mask)``): point ``to`` at FLOAT16 as the graph now expects."""
    onnx = require("onnx")
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for node in model.graph.node:
        if node.op_type != "Cast" or types.get(node.output[0]) != fp16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == fp32:
                attr.i = fp16
    return model


def fp32_nodes(fp16_path: Path) -> list[str]:
    """Compute nodes of an fp16 model that still run in float32 (Casts at the I/O boundary excluded)."""
    onnx = require("onnx")
    model = onnx.shape_inference.infer_shapes(load_onnx(fp16_path))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    kept = []
    for node in graph.node:
        if node.op_type in ("Cast", "Constant", "Shape", "Reshape", "Transpose", "Squeeze", "Unsqueeze"):
            continue
        if any(types.get(o) == onnx.TensorProto.FLOAT for o in node.output):
            kept.append(f"{node.op_type}:{node.name}")
    return kept


# ------------------------------------------------------------------------------------------------ int8


#: fewer calibration samples than this cannot give ranges that represent the data (one batch at least)
MIN_CALIBRATION_SAMPLES = 16


def check_calibration_data(data: Dataset) -> None:
    """Refuse calibration sets that cannot give meaningful ranges (too few, constant, all zeros, NaN).

    Float inputs carry the activation ranges; integer inputs (token ids, masks) are fed as they are.
    """
    if len(data) < MIN_CALIBRATION_SAMPLES:
        raise ConversionError(
            f"calibration set {data.source}: {len(data)} samples; expected at least {MIN_CALIBRATION_SAMPLES} "
            f"(default {CALIBRATION_SAMPLES}) representative samples from the training distribution"
        )
    for name, full in data.inputs.items():
        x = full[:CALIBRATION_SAMPLES]
        where = f"calibration set {data.source}" + (f", input {name!r}" if len(data.inputs) > 1 else "")
        if x.dtype.kind != "f":
            continue
        if not np.isfinite(x).all():
            raise ConversionError(f"{where}: contains NaN/Inf; ranges would be meaningless")
        if float(np.ptp(x)) == 0.0:
            raise ConversionError(
                f"{where}: every value is {float(x.flat[0])} (constant input); int8 ranges "
                "calibrated on it would collapse — pass real samples from the training distribution"
            )
        per_sample = x.reshape(len(x), -1)
        if len(x) > 1 and np.all(per_sample == per_sample[0]):
            raise ConversionError(f"{where}: all {len(x)} samples are identical")


def int8_qdq_onnx(
    fp32_onnx: str | Path,
    calibration: Dataset,
    *,
    method: str = "minmax",
    samples: int = CALIBRATION_SAMPLES,
    batch_size: int = CALIBRATION_BATCH,
    symmetric_activations: bool = True,
    nodes_to_exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
) -> RecipeResult:
    """Explicit int8 Q/DQ with ONNX Runtime ``quantize_static``, in the form TensorRT accepts.

    QDQ format, QInt8 activations and weights, symmetric (TensorRT requires zero point 0), per-channel
    weights, bias left in float (TensorRT's parser rejects int32 DequantizeLinear inputs). Calibration
    ranges are computed once per (model, calibration data, method) and cached as ORT's calibration JSON.
    Every output goes through ``validate_qdq``; ``symmetric_activations=False`` exists to show that the
    validator catches it. ``nodes_to_exclude``: node names left unquantized (float32), as chosen by the
    accuracy-aware fallback (``trt_equiv.convert.int8_fallback``); they are part of the cache key.
    """
    if method not in CALIBRATION_METHODS:
        raise InputValidationError(f"calibration method: expected one of {CALIBRATION_METHODS}, got {method!r}")
    fp32_onnx = Path(fp32_onnx)
    calib = _check_calibration_shape(fp32_onnx, calibration.without_labels().take(samples))
    check_calibration_data(calib)
    fixed = _fixed_batch(fp32_onnx)
    if fixed is not None:  # a model exported with a fixed batch only takes batches of exactly that size
        if len(calib) < fixed:
            raise InputValidationError(
                f"calibration set {calib.source}: the model has a fixed batch of {fixed}, got {len(calib)} samples"
            )
        batch_size, calib = fixed, calib.take(len(calib) // fixed * fixed)
    root = resolve_cache_dir(cache_dir) / "precision"
    settings = [
        f"onnxruntime={package_version('onnxruntime', 'onnxruntime-gpu')}",
        method,
        f"bins={HISTOGRAM_BINS}",
        f"qbins={QUANTIZED_BINS}",
        f"pct={PERCENTILE}",
        f"batch={batch_size}",
    ]
    calib_key = content_hash([fp32_onnx], extra=[*settings, *(f"{k}={array_hash(v)}" for k, v in calib.inputs.items())])
    ranges = root / "calibration" / f"{calib_key}.json"
    with step(f"int8 calibration ({method}, {len(calib)} samples)") if not ranges.exists() else nullcontext():
        calibrated = build_once(ranges, lambda tmp: _calibrate(fp32_onnx, calib, method, batch_size, tmp))
    excluded = sorted(set(nodes_to_exclude))
    if excluded:
        _check_node_names(fp32_onnx, excluded)
    settings = ["int8-qdq", f"symmetric={symmetric_activations}", *(f"exclude={n}" for n in excluded)]
    key = content_hash([fp32_onnx, ranges], extra=settings)
    target = root / key / "model.int8.qdq.onnx"
    built = build_once(
        target, lambda tmp: _quantize(fp32_onnx, ranges, method, symmetric_activations, tmp, nodes_to_exclude=excluded)
    )
    report = validate_qdq(target)
    return RecipeResult(
        target, "int8", method, kept_fp32=report.unquantized, cache_hit=not (built or calibrated),
        info={"calibration_cache": str(ranges), "calibration_samples": len(calib), "qdq_pairs": report.pairs},
    )  # fmt: skip


def _check_calibration_shape(fp32_onnx: Path, data: Dataset) -> Dataset:
    """The calibration arrays must be the model's inputs (else ONNX Runtime fails mid-calibration).

    Returns the data keyed by the ONNX input names (``x`` renamed for a single-input model).
    """
    try:
        return data.bind(onnx_input_specs(fp32_onnx))
    except InputValidationError as exc:
        raise InputValidationError(f"calibration set: {exc}") from exc


def _fixed_batch(fp32_onnx: Path) -> int | None:
    """The model inputs' fixed batch size, or None when the batch dimension is dynamic."""
    for value in graph_inputs(load_onnx(fp32_onnx, load_external_data=False).graph):
        batch = value.type.tensor_type.shape.dim[:1]
        if batch and batch[0].HasField("dim_value") and batch[0].dim_value > 0:
            return int(batch[0].dim_value)
    return None


def _check_node_names(fp32_onnx: Path, names: Sequence[str]) -> None:
    """Nodes to exclude must exist (ORT would silently ignore a misspelt name and quantize everything)."""
    graph = load_onnx(fp32_onnx, load_external_data=False).graph
    unknown = sorted(set(names) - {n.name for n in graph.node})
    if unknown:
        raise InputValidationError(f"nodes_to_exclude: expected node names of {fp32_onnx}, got unknown {unknown}")


def _ort_method(method: str):
    quant = require("onnxruntime.quantization")
    return {
        "minmax": quant.CalibrationMethod.MinMax,
        "entropy": quant.CalibrationMethod.Entropy,
        "percentile": quant.CalibrationMethod.Percentile,
    }[method]


@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """ORT's quantizer prints progress to stdout and pre-processing advice to the root logger; keep
    stdout for our tables and show its messages only at debug level."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        root.setLevel(level)


class _Reader:
    """ONNX Runtime CalibrationDataReader over consecutive calibration batches, every input by name."""

    def __init__(self, data: Dataset, batch_size: int) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = calibration_batches(data, batch_size, limit=len(data))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _calibrate(fp32_onnx: Path, data: Dataset, method: str, batch_size: int, out: Path) -> None:
    """Run the calibrator with real histogram settings and save ORT's calibration-cache JSON."""
    calibrate = require("onnxruntime.quantization.calibrate")
    extra: dict[str, object] = {"symmetric": True}
    if method in ("entropy", "percentile"):
        extra = {"num_bins": HISTOGRAM_BINS, "symmetric": True}
    if method == "entropy":
        extra["num_quantized_bins"] = QUANTIZED_BINS
    if method == "percentile":
        extra["percentile"] = PERCENTILE
    # ``out`` lies in build_once's private temp folder under the cache: ORT's augmented model goes there too, so
    # a killed calibration leaves nothing in /tmp and its leftovers are swept with the folder
    with _quiet_ort():
        calibrator = calibrate.create_calibrator(
            fp32_onnx, None, augmented_model_path=str(out.parent / "augmented.onnx"),
            calibrate_method=_ort_method(method), extra_options=extra,
        )  # fmt: skip
        try:
            calibrator.collect_data(_Reader(data, batch_size))
            tensors = calibrator.compute_data()
        except Exception as exc:  # ORT raises its own Fail/InvalidArgument types
            raise ConversionError(f"onnxruntime calibration ({method}) failed on {fp32_onnx}: {exc}") from exc
        del calibrator
    # ORT's own calibration-cache format, which quantize_static(calibration_cache_path=...) reads back
    calibrate.save_tensors_data(tensors, out)


def _quantize(
    fp32_onnx: Path,
    ranges: Path,
    method: str,
    symmetric_activations: bool,
    out: Path,
    nodes_to_exclude: Sequence[str] = (),
) -> None:
    quant = require("onnxruntime.quantization")
    try:
        with _quiet_ort():
            quant.quantize_static(
                str(fp32_onnx), str(out), calibration_data_reader=None,
                quant_format=quant.QuantFormat.QDQ,
                activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                per_channel=True, calibrate_method=_ort_method(method), calibration_cache_path=str(ranges),
                nodes_to_exclude=list(nodes_to_exclude),
                extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True,
                               "QuantizeBias": False},
            )  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"onnxruntime quantize_static failed on {fp32_onnx}: {exc}") from exc
