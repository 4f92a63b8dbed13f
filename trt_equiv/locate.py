"""Find the layer that broke: per-tensor comparison of a reference ONNX file and a candidate of the same graph.

A failing fp16/int8 row says *that* the outputs differ, not *where*. ``locate`` matches the intermediate
tensors of two ONNX files by name (through the QuantizeLinear → DequantizeLinear pairs of an int8 Q/DQ file
and the Cast nodes of an fp16 file), exposes them as extra outputs in temporary copies of both graphs, runs
both with ONNX Runtime CPU in chunks, and accumulates per-tensor error sums (never every activation).

Error grows along any reduced-precision graph, so the *total* error of a tensor does not say which node
caused it. For each node ``locate`` also runs the reference node alone on the candidate's inputs (one-node
ONNX Runtime sessions, the "golden input" idea of Polygraphy's ``debug reduce``). That splits a tensor's
error into what its inputs' error explains (``propagated``: reference node on candidate inputs vs reference)
and what the node itself adds (``local``: candidate vs reference node on the same candidate inputs). The
first divergence is the first tensor, in topological order, whose local error exceeds the noise one node of
the candidate's precision may add. Ordinary fp16/int8 noise accumulating along the graph is propagated
error and is not flagged; one perturbed layer has a large local error and is.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.errors import InputValidationError, ModelLoadError
from trt_equiv.runtime import require

#: relative-L2 error one node may add at each precision (local error above this is a divergence).
#: fp32: a different kernel or fusion order differs by ~1e-6 relative; 1e-4 is ~1000 fp32 unit roundoffs.
#: fp16: unit roundoff 2^-11 = 4.9e-4; a node's own fp16 rounding (weights, accumulation, output) measured
#: here stays below 2e-3; 1e-2 is 20 unit roundoffs.
#: int8: symmetric 8-bit steps; the bundled model's worst node adds ~3e-2 (weights + output rounding);
#: an int8 tensor also gets 3x the rounding noise its own scale implies (see ``_int8_floor``).
NOISE_FLOOR = {"fp32": 1e-4, "fp16": 1e-2, "int8": 8e-2}
#: where no local error can be computed (a node with a subgraph, an untyped input): flag a tensor whose
#: relative error exceeds this many times the largest relative error of the matched tensors feeding it
JUMP_FACTOR = 10.0
DEFAULT_CHUNK = 32
DEFAULT_MAX_SAMPLES = 512


@dataclass(frozen=True)
class LocateRow:
    """Error statistics of one matched tensor (relative errors are ‖·‖₂ / ‖reference‖₂ over all samples)."""

    index: int
    tensor: str
    node: str
    op_type: str
    sqnr_db: float
    rel_l2: float
    max_abs: float
    #: what the node itself adds: candidate vs the reference node run on the candidate's inputs (None: n/a)
    local_rel_l2: float | None
    #: what the inputs' error explains: reference node on the candidate's inputs vs reference
    propagated_rel_l2: float | None
    #: the largest relative error of the matched tensors feeding the node
    input_rel_l2: float
    #: the local error this node may add at the candidate's precision
    floor: float
    candidate_tensor: str
    flagged: bool
    #: nodes between this tensor and its nearest compared ancestors (their outputs could not be compared)
    via: tuple[str, ...] = ()

    @property
    def local_sqnr_db(self) -> float | None:
        return None if self.local_rel_l2 is None else _db(self.local_rel_l2)


def _db(rel: float) -> float:
    return math.inf if rel == 0 else -20.0 * math.log10(rel)


def _fmt(v: float | None, db: bool = False) -> str:
    if v is None:
        return "-"
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return f"{v:.1f}" if db else f"{v:.3g}"


@dataclass
class LocateResult:
    """Per-tensor rows in topological order; printable as a table; ``first_divergence`` or None."""

    rows: list[LocateRow]
    precision: str
    reference: str
    candidate: str
    samples: int
    seconds: float
    #: reference tensors that had a candidate of the same name but could not be compared (dtype/shape)
    skipped: list[str] = field(default_factory=list)

    @property
    def first_divergence(self) -> LocateRow | None:
        return next((r for r in self.rows if r.flagged), None)

    def worst(self, n: int = 5) -> list[LocateRow]:
        """The ``n`` nodes adding the most error themselves (local error; total error where it is unknown).

        Ranked by local error because total error only accumulates along the graph: ranking by it would name
        the last layers every time.
        """

        def key(r: LocateRow) -> float:
            return r.local_rel_l2 if r.local_rel_l2 is not None else r.rel_l2

        return sorted(self.rows, key=key, reverse=True)[:n]

    def divergence_line(self) -> str:
        first = self.first_divergence
        if first is None:
            return f"first divergence: none (no node adds more than the {self.precision} noise floor)"
        line = f"first divergence: {first.node} ({first.op_type})"
        if first.via and first.local_rel_l2 is None:  # the jump could have happened in a node not compared
            line += f"\n  (or in a node before it whose output could not be compared: {', '.join(first.via)})"
        return line

    def summary(self, n: int = 5) -> str:
        """The first divergence and the ``n`` worst layers: what a failure message needs."""
        lines = [self.divergence_line(), f"worst {min(n, len(self.rows))} layers (error the node adds itself):"]
        for r in self.worst(n):
            lines.append(
                f"  {r.node} ({r.op_type}): local rel_l2 {_fmt(r.local_rel_l2)}, total rel_l2 {_fmt(r.rel_l2)}, "
                f"SQNR {_fmt(r.sqnr_db, db=True)} dB"
            )
        return "\n".join(lines)

    def table(self) -> str:
        head = (
            f"{'#':>3}  {'node':<40} {'op':<18} {'SQNR dB':>8} {'rel_l2':>9} {'max_abs':>9} "
            f"{'local':>9} {'inputs':>9} {'floor':>8}  flag"
        )
        out = [head]
        for r in self.rows:
            name = r.node if len(r.node) <= 40 else "…" + r.node[-39:]
            out.append(
                f"{r.index:>3}  {name:<40} {r.op_type[:18]:<18} {_fmt(r.sqnr_db, db=True):>8} {_fmt(r.rel_l2):>9} "
                f"{_fmt(r.max_abs):>9} {_fmt(r.local_rel_l2):>9} {_fmt(r.input_rel_l2):>9} {_fmt(r.floor):>8}  "
                f"{'<<' if r.flagged else ''}"
            )
        return "\n".join(out)

    def __str__(self) -> str:
        return (
            f"locate: {self.candidate} ({self.precision}) vs {self.reference}: {len(self.rows)} tensors matched, "
            f"{self.samples} samples, {self.seconds:.1f} s\n{self.table()}\n{self.summary()}"
        )


# ------------------------------------------------------------------------------------------ graph matching


def detect_precision(model: Any) -> str:
    """Return "int8" for a Q/DQ file, "fp16" when float16 tensors appear, else "fp32" (a user's suspect file)."""
    onnx = require("onnx")
    ops = {n.op_type for n in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "int8"
    half = onnx.TensorProto.FLOAT16
    if any(i.data_type == half for i in model.graph.initializer):
        return "fp16"
    for n in model.graph.node:
        if n.op_type == "Cast" and any(a.name == "to" and a.i == half for a in n.attribute):
            return "fp16"
    return "fp32"


def match_tensors(reference: Any, candidate: Any) -> dict[str, str]:
    """Reference tensor name → the candidate tensor holding the same logical value.

    A name produced by a node in both graphs matches. In a Q/DQ file the candidate value is the output of
    the DequantizeLinear that follows ``T → QuantizeLinear``: that is what the candidate's consumers see,
    so a node's error includes the rounding of its own output and int8 sensitivity is charged to the node
    that produced the tensor. Cast nodes of an fp16 file keep tensor names, so names match there directly
    (the candidate's float16 values are compared in float32). dtype and shape are checked at run time.
    """
    produced = {o for n in candidate.graph.node for o in n.output if o}
    consumers: dict[str, list[Any]] = {}
    for n in candidate.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_inputs = {i.name for i in reference.graph.input}
    out: dict[str, str] = {}
    for node in reference.graph.node:
        for name in node.output:
            if not name or name in graph_inputs or name not in produced:
                continue
            resolved = name
            for q in consumers.get(name, []):
                if q.op_type != "QuantizeLinear":
                    continue
                dq = next((d for d in consumers.get(q.output[0], []) if d.op_type == "DequantizeLinear"), None)
                if dq is not None:
                    resolved = dq.output[0]
                    break
            out[name] = resolved
    return out


def _with_outputs(model: Any, names: list[str]) -> Any:
    """A copy of ``model`` with ``names`` added as graph outputs (ONNX Runtime infers their types)."""
    onnx = require("onnx")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    for name in names:
        if name not in existing:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    return copy


def _session(path: Path | bytes, what: str | None = None) -> Any:
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = str(path) if isinstance(path, Path) else path
    if what is None:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's Fail/InvalidGraph/NotImplemented types
        raise ModelLoadError(f"{what}: ONNX Runtime cannot load it ({exc})") from exc


def _run(sess: Any, feeds: Mapping[str, np.ndarray], what: str) -> list[np.ndarray]:
    try:
        return list(sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()}))
    except KeyError as exc:
        raise InputValidationError(f"{what}: expected an input named {exc}, got feeds {sorted(feeds)}") from exc
    except Exception as exc:  # ORT's InvalidArgument for a wrong rank/shape/dtype
        raise InputValidationError(f"{what}: ONNX Runtime could not run it on the data ({exc})") from exc


def _node_model(reference: Any, node: Any, types: Mapping[str, Any], inits: Mapping[str, Any]) -> bytes | None:
    """A one-node model computing ``node`` as the reference does, or None when it cannot be cut out."""
    onnx = require("onnx")
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return None  # If/Loop/Scan bodies read outer-scope tensors
    inputs, initializers = [], []
    for name in dict.fromkeys(i for i in node.input if i):
        if name in inits:
            initializers.append(inits[name])
        elif name in types:
            info = onnx.ValueInfoProto(name=name)
            info.type.tensor_type.elem_type = types[name]
            inputs.append(info)
        else:
            return None
    graph = onnx.helper.make_graph([node], "locate_node", inputs, [onnx.ValueInfoProto(name=o) for o in node.output
                                                                   if o], initializers)  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=list(reference.opset_import))
    model.ir_version = reference.ir_version
    return model.SerializeToString()


def _elem_types(model: Any) -> dict[str, int]:
    """Element type per tensor name (graph inputs, inferred intermediates)."""
    onnx = require("onnx")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort; unknown types only disable local errors
        inferred = model
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]
            if v.type.tensor_type.elem_type}  # fmt: skip


def _int8_floor(candidate: Any, dq_output: str, ref_rms: float) -> float:
    """3x the rounding noise an int8 tensor's own scale implies (uniform rounding: scale / √12), relative."""
    numpy_helper = require("onnx.numpy_helper")
    inits = {i.name: i for i in candidate.graph.initializer}
    dq = next((n for n in candidate.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == dq_output), None)
    if dq is None or ref_rms <= 0 or dq.input[1] not in inits:
        return 0.0
    scale = numpy_helper.to_array(inits[dq.input[1]])
    if scale.size != 1:
        return 0.0
    return 3.0 * float(scale.ravel()[0]) / math.sqrt(12.0) / ref_rms


# ------------------------------------------------------------------------------------------ running


@dataclass
class _Sums:
    ref_sq: float = 0.0
    diff_sq: float = 0.0
    local_sq: float = 0.0
    prop_sq: float = 0.0
    max_abs: float = 0.0
    count: int = 0
    has_local: bool = True


def _load(path: str | Path, what: str) -> Any:
    """The ONNX model at ``path``: a missing file is a usage error, an unreadable one ``load_onnx``'s error."""
    from trt_equiv.convert.onnx import load_onnx

    path = Path(path)
    if not path.is_file():
        raise InputValidationError(f"{what}: expected an existing ONNX file, got {path}")
    return load_onnx(path, what=what)


def locate(
    reference_onnx: str | Path,
    candidate_onnx: str | Path,
    feeds: Mapping[str, np.ndarray],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    precision: str | None = None,
) -> LocateResult:
    """Compare every tensor the two graphs share, on ``feeds`` (input name → batch-first array).

    ``precision`` ("fp32", "fp16", "int8") picks the noise floor; by default it is read from the candidate
    file. Neither file is modified: the extra outputs go into copies in a temporary directory.
    """
    start = time.perf_counter()
    if chunk_size < 1:
        raise InputValidationError(f"chunk_size: expected a positive integer, got {chunk_size}")
    if max_samples is not None and max_samples < 1:
        raise InputValidationError(f"max_samples: expected a positive integer or None, got {max_samples}")
    reference = _load(reference_onnx, "reference ONNX")
    candidate = _load(candidate_onnx, "candidate ONNX")
    precision = precision or detect_precision(candidate)
    if precision not in NOISE_FLOOR:
        raise InputValidationError(f"precision: expected one of {', '.join(NOISE_FLOOR)}, got {precision!r}")
    names = [i.name for i in reference.graph.input if i.name not in {t.name for t in reference.graph.initializer}]
    missing = [n for n in names if n not in feeds]
    if missing or not feeds:
        raise InputValidationError(f"feeds: expected arrays for the model inputs {names}, got {sorted(feeds)}")
    lengths = {len(feeds[n]) for n in names}
    if len(lengths) != 1 or 0 in lengths:
        raise InputValidationError(f"feeds: expected one non-zero batch length across inputs, got {sorted(lengths)}")
    total = lengths.pop() if max_samples is None else min(lengths.pop(), max_samples)

    matched = match_tensors(reference, candidate)
    if not matched:
        raise InputValidationError(
            f"{candidate_onnx}: expected intermediate tensors named like those of {reference_onnx}, found none "
            "(is it a conversion of the same graph?)"
        )
    all_ref = [o for n in reference.graph.node for o in n.output if o]
    types = _elem_types(reference)
    inits = {i.name: i for i in reference.graph.initializer}

    with tempfile.TemporaryDirectory(prefix="trt_equiv_locate.") as tmp:
        ref_path, cand_path = Path(tmp) / "reference.onnx", Path(tmp) / "candidate.onnx"
        onnx = require("onnx")
        onnx.save(_with_outputs(reference, all_ref), str(ref_path))
        onnx.save(_with_outputs(candidate, sorted(set(matched.values()))), str(cand_path))
        ref_sess = _session(ref_path, f"reference ONNX {reference_onnx}")
        cand_sess = _session(cand_path, f"candidate ONNX {candidate_onnx}")
    ref_out = [o.name for o in ref_sess.get_outputs()]
    cand_out = [o.name for o in cand_sess.get_outputs()]
    local_sess: dict[int, Any] = {}  # by node index: ONNX node names may repeat or be empty
    for index, node in enumerate(reference.graph.node):
        if any(o in matched for o in node.output):
            blob = _node_model(reference, node, types, inits)
            try:
                local_sess[index] = _session(blob) if blob is not None else None
            except Exception:  # ORT refused the cut-out node: fall back to the jump rule for it
                local_sess[index] = None

    sums: dict[str, _Sums] = {}
    bad: dict[str, str] = {}
    for lo in range(0, total, chunk_size):
        hi = min(lo + chunk_size, total)
        chunk = {n: np.asarray(feeds[n][lo:hi]) for n in names}
        ref_vals = dict(chunk)
        ref_vals.update(zip(ref_out, _run(ref_sess, chunk, f"reference {reference_onnx}"), strict=True))
        cand_vals = dict(zip(cand_out, _run(cand_sess, chunk, f"candidate {candidate_onnx}"), strict=True))
        usable: dict[str, np.ndarray] = {}
        for ref_name, cand_name in matched.items():
            r, c = ref_vals.get(ref_name), cand_vals.get(cand_name)
            if r is None or c is None or ref_name in bad:
                continue
            if not (np.issubdtype(r.dtype, np.floating) and np.issubdtype(c.dtype, np.floating)):
                bad[ref_name] = f"not float ({r.dtype} vs {c.dtype})"
                continue
            if r.shape != c.shape:
                bad[ref_name] = f"shape {r.shape} vs {c.shape}"
                continue
            usable[ref_name] = c.astype(r.dtype, copy=False)
        for index, node in enumerate(reference.graph.node):
            outs = [o for o in node.output if o in usable]
            if not outs:
                continue
            sess = local_sess.get(index)
            local: dict[str, np.ndarray] = {}
            if sess is not None:
                feed = {i: usable[i] if i in usable else ref_vals[i] for i in _input_names(sess)}
                try:
                    local = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True))
                except Exception:  # the node alone refused these inputs: no local error for it
                    local_sess[index] = None
            for o in outs:
                wide: type[np.floating[Any]] = np.float64 if ref_vals[o].dtype == np.float64 else np.float32
                ref = np.ravel(ref_vals[o]).astype(wide, copy=False)
                cand = np.ravel(usable[o]).astype(wide, copy=False)
                s = sums.setdefault(o, _Sums())
                diff = cand - ref
                s.ref_sq += _sq(ref)
                s.diff_sq += _sq(diff)
                s.max_abs = max(s.max_abs, float(np.max(np.abs(diff))) if diff.size else 0.0)
                s.count += int(ref.size)
                if o in local:
                    lv = np.ravel(local[o]).astype(wide, copy=False)
                    s.local_sq += _sq(cand - lv)
                    s.prop_sq += _sq(lv - ref)
                else:
                    s.has_local = False

    rows = _rows(reference, candidate, matched, sums, precision)
    return LocateResult(
        rows, precision, str(reference_onnx), str(candidate_onnx), total, time.perf_counter() - start,
        skipped=[f"{k}: {v}" for k, v in bad.items()],
    )  # fmt: skip


def _sq(v: np.ndarray) -> float:
    """Sum of squares, accumulated in float64 (BLAS dot; a float32 sum loses digits over millions of values)."""
    v64 = v.astype(np.float64)
    return float(np.dot(v64, v64))


def _input_names(sess: Any) -> list[str]:
    return [i.name for i in sess.get_inputs()]


def _rows(
    reference: Any,
    candidate: Any,
    matched: Mapping[str, str],
    sums: Mapping[str, _Sums],
    precision: str,
) -> list[LocateRow]:
    """One row per compared tensor, in the topological order of ``reference``'s graph.

    A node's input error is taken from its nearest compared ancestors: nodes whose outputs could not be
    compared (renamed, fused, not float) are walked through, and listed in ``via``.
    """
    rel: dict[str, float] = {}
    producer = {o: n for n in reference.graph.node for o in n.output if o}

    def ancestors(name: str, seen: set[str]) -> tuple[float, list[Any]]:
        """(largest relative error of the compared tensors feeding ``name``, nodes walked through)."""
        if name in rel:
            return rel[name], []
        node = producer.get(name)
        if node is None or name in seen:
            return 0.0, []
        seen.add(name)
        worst, via = 0.0, [node]
        for i in node.input:
            if i:
                err, more = ancestors(i, seen)
                worst, via = max(worst, err), via + more
        return worst, via

    rows: list[LocateRow] = []
    for node in reference.graph.node:
        for o in node.output:
            s = sums.get(o)
            if s is None:
                continue
            ref_norm = math.sqrt(s.ref_sq)

            def relative(sq: float, norm: float = ref_norm) -> float:
                err = math.sqrt(sq)
                return (err / norm) if norm > 0 else (math.inf if err > 0 else 0.0)

            local = relative(s.local_sq) if s.has_local else None
            propagated = relative(s.prop_sq) if s.has_local else None
            inputs = 0.0
            via: list[Any] = []
            seen: set[str] = set()
            for i in node.input:
                if i:
                    err, walked = ancestors(i, seen)
                    inputs, via = max(inputs, err), via + walked
            rel[o] = relative(s.diff_sq)
            floor = NOISE_FLOOR[precision]
            if precision == "int8" and candidate is not None and matched[o] != o:
                floor = max(floor, _int8_floor(candidate, matched[o], ref_norm / math.sqrt(max(s.count, 1))))
            flagged = local > floor if local is not None else rel[o] > max(floor, JUMP_FACTOR * inputs)
            rows.append(LocateRow(
                index=len(rows), tensor=o, node=node.name or o, op_type=node.op_type, sqnr_db=_db(rel[o]),
                rel_l2=rel[o], max_abs=s.max_abs, local_rel_l2=local, propagated_rel_l2=propagated,
                input_rel_l2=inputs, floor=floor, candidate_tensor=matched[o], flagged=flagged,
                via=tuple(dict.fromkeys(f"{n.name} ({n.op_type})" for n in via)),
            ))  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------ report


def write_locate_report(result: LocateResult, directory: str | Path) -> list[Path]:
    """``locate.md`` (the table and the summary) and ``locate.png`` (error per layer along the graph)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "locate.md"
    lines = [
        "# locate", "",
        f"- reference: `{result.reference}`", f"- candidate: `{result.candidate}` ({result.precision})",
        f"- samples: {result.samples}; tensors matched: {len(result.rows)}; {result.seconds:.1f} s", "",
        *(f"**{ln.strip()}**" if i == 0 else ln.strip() for i, ln in enumerate(result.divergence_line().splitlines())),
        "",
        "| # | node | op | SQNR dB | rel L2 | max abs | local rel L2 | inputs rel L2 | floor | flagged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in result.rows:
        lines.append(
            f"| {r.index} | `{r.node}` | {r.op_type} | {_fmt(r.sqnr_db, db=True)} | {_fmt(r.rel_l2)} | "
            f"{_fmt(r.max_abs)} | {_fmt(r.local_rel_l2)} | {_fmt(r.input_rel_l2)} | {_fmt(r.floor)} | "
            f"{'yes' if r.flagged else ''} |"
        )
    lines += ["", "```", result.summary(), "```", ""]
    if result.skipped:
        lines += ["Not compared (same name, different dtype or shape):", *[f"- `{s}`" for s in result.skipped], ""]
    md.write_text("\n".join(lines))

    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(result.rows)), 4.0))
    xs = [r.index for r in result.rows]
    tiny = min((r.floor for r in result.rows), default=1e-4) * 1e-3  # where zero error is drawn
    ax.semilogy(xs, [max(r.rel_l2, tiny) for r in result.rows], marker="o", label="total rel L2")
    ax.semilogy(xs, [max(r.local_rel_l2 or tiny, tiny) for r in result.rows], marker="x", linestyle="--",
                label="local rel L2 (node's own)")  # fmt: skip
    ax.semilogy(xs, [r.floor for r in result.rows], color="grey", linestyle=":", label=f"{result.precision} floor")
    first = result.first_divergence
    if first is not None:
        ax.axvline(first.index, color="red", alpha=0.6, label=f"first divergence: {first.node[-30:]}")
    ax.set_xlabel("tensor (topological order)")
    ax.set_ylabel("relative L2 error")
    ax.set_title(f"locate: {Path(result.candidate).name} vs {Path(result.reference).name}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    png = out / "locate.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return [md, png]
