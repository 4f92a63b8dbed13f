"""``locate`` for conversion bugs: the SavedModel's intermediate tensors against the fp32 ONNX file's.

tf2onnx names most ONNX tensors after the TensorFlow op that produced them (``StatefulPartitionedCall/
vgg_small_1/re_lu_1/Relu:0``) once the serving function is frozen and inlined, which is also what tf2onnx
converts. Those names are fetched from the frozen TensorFlow graph and compared with the ONNX tensors of
the same name (NHWC TensorFlow values transposed to NCHW where tf2onnx changed the layout). Tensors tf2onnx
created or fused (``Conv__46``: a convolution with its batch normalization folded in) have no TensorFlow
counterpart; they are listed as not matched, and a divergence found after them names them as suspects.
No one-node "local" error exists on the TensorFlow side, so the first divergence is the first tensor whose
error exceeds 10× that of its nearest compared ancestors and the fp32 floor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.errors import InputValidationError, ModelLoadError
from trt_equiv.locate import (
    DEFAULT_CHUNK,
    DEFAULT_MAX_SAMPLES,
    LocateResult,
    _load,
    _rows,
    _run,
    _session,
    _sq,
    _Sums,
    _with_outputs,
)
from trt_equiv.runtime import require


def _frozen(model_dir: Path, signature: str) -> Any:
    tf = require("tensorflow")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        loaded = tf.saved_model.load(str(model_dir))
    except Exception as exc:  # TensorFlow raises OSError, ValueError or its own errors
        raise ModelLoadError(f"SavedModel {model_dir}: cannot be loaded ({exc})") from exc
    if signature not in loaded.signatures:
        raise InputValidationError(
            f"SavedModel {model_dir}: expected a signature {signature!r}, got {sorted(loaded.signatures)}"
        )
    return convert_variables_to_constants_v2(loaded.signatures[signature])


def locate_savedmodel(
    model_dir: str | Path,
    onnx_path: str | Path,
    feeds: Mapping[str, np.ndarray],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    signature: str = "serving_default",
) -> LocateResult:
    """Per-tensor comparison of the SavedModel (reference) and its fp32 ONNX conversion (candidate)."""
    start = time.perf_counter()
    tf = require("tensorflow")
    onnx = require("onnx")
    model_dir = Path(model_dir)
    model = _load(onnx_path, "ONNX")
    frozen = _frozen(model_dir, signature)
    graph = frozen.graph
    tf_ops = {op.name for op in graph.get_operations()}
    onnx_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(onnx_inputs) != len(frozen.inputs) or any(n not in feeds for n in onnx_inputs):
        raise InputValidationError(
            f"feeds: expected arrays for the ONNX inputs {onnx_inputs} (SavedModel inputs "
            f"{[t.name for t in frozen.inputs]}), got {sorted(feeds)}"
        )
    # ONNX tensor → TensorFlow tensor, by name; graph outputs by position (tf2onnx keeps the signature order)
    matched: dict[str, str] = {}
    unmatched: list[str] = []
    for node in model.graph.node:
        for o in node.output:
            if o and ":" in o and o.rsplit(":", 1)[0] in tf_ops:
                matched[o] = o
            elif o:
                unmatched.append(o)
    for onnx_out, tf_out in zip(model.graph.output, frozen.outputs, strict=False):
        matched[onnx_out.name] = tf_out.name
        if onnx_out.name in unmatched:
            unmatched.remove(onnx_out.name)
    if len(matched) <= len(model.graph.output):
        raise InputValidationError(
            f"{onnx_path}: no intermediate tensor is named after an op of the SavedModel's frozen graph "
            "(the converter renamed them all), so SavedModel and ONNX cannot be compared layer by layer"
        )

    graph_def = graph.as_graph_def()
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    inputs = [wrapped.graph.get_tensor_by_name(t.name) for t in frozen.inputs]
    names = list(matched)
    fetch = wrapped.prune(feeds=inputs, fetches=[wrapped.graph.get_tensor_by_name(matched[n]) for n in names])

    import tempfile

    with tempfile.TemporaryDirectory(prefix="trt_equiv_locate_tf.") as tmp:
        exposed = Path(tmp) / "candidate.onnx"
        onnx.save(_with_outputs(model, names), str(exposed))
        sess = _session(exposed, f"ONNX {onnx_path}")
    out_names = [o.name for o in sess.get_outputs()]
    total = len(feeds[onnx_inputs[0]])
    total = total if max_samples is None else min(total, max_samples)
    sums: dict[str, _Sums] = {}
    bad: dict[str, str] = {}
    nchw: dict[str, bool] = {}
    for lo in range(0, total, chunk_size):
        chunk = {n: np.asarray(feeds[n][lo : lo + chunk_size]) for n in onnx_inputs}
        tf_vals = dict(zip(names, (t.numpy() for t in fetch(*[tf.constant(chunk[n]) for n in onnx_inputs])),
                           strict=True))  # fmt: skip
        onnx_vals = dict(zip(out_names, _run(sess, chunk, f"ONNX {onnx_path}"), strict=True))
        for n in names:
            r, c = tf_vals[n], onnx_vals.get(n)
            if c is None or n in bad:
                continue
            if not (np.issubdtype(r.dtype, np.floating) and np.issubdtype(c.dtype, np.floating)):
                bad[n] = f"not float ({r.dtype} vs {c.dtype})"
                continue
            if r.ndim == 4 and np.transpose(r, (0, 3, 1, 2)).shape == c.shape:
                if n not in nchw:  # tf2onnx may have moved this tensor to NCHW; shapes alone can be ambiguous
                    moved = np.transpose(r, (0, 3, 1, 2))
                    nchw[n] = r.shape != c.shape or _sq(np.ravel(moved - c)) < _sq(np.ravel(r - c))
                if nchw[n]:
                    r = np.transpose(r, (0, 3, 1, 2))
            if r.shape != c.shape:
                bad[n] = f"shape {r.shape} vs {c.shape}"
                continue
            ref = np.ravel(r).astype(np.float32)
            diff = np.ravel(c).astype(np.float32) - ref
            s = sums.setdefault(n, _Sums(has_local=False))
            s.ref_sq += _sq(ref)
            s.diff_sq += _sq(diff)
            s.max_abs = max(s.max_abs, float(np.max(np.abs(diff))) if diff.size else 0.0)
            s.count += int(ref.size)
    rows = _rows(model, None, {n: n for n in matched}, sums, "fp32")
    notes = [f"{k}: {v}" for k, v in bad.items() if not v.startswith("not float")]
    if unmatched:
        shown = ", ".join(unmatched[:8]) + (", …" if len(unmatched) > 8 else "")
        notes.append(f"{len(unmatched)} ONNX tensors have no TensorFlow name (created or fused by tf2onnx): {shown}")
    return LocateResult(
        rows, "fp32", f"{model_dir} (SavedModel)", str(onnx_path), total, time.perf_counter() - start, skipped=notes
    )
