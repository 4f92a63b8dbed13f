"""The one place trt_equiv hashes anything: files, folders, arrays, JSON, and ONNX models by content.

Every cache key, integrity record and engine identity goes through these functions, so "the same input"
means the same thing everywhere (and a change of scheme is one edit, not four).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_BLOCK = 1 << 20


def _update_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes alone (not its name): a file copied elsewhere keeps its hash."""
    h = hashlib.sha256()
    _update_file(h, Path(path))
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """sha256 of bytes already in memory."""
    return hashlib.sha256(data).hexdigest()


def array_hash(x: np.ndarray, extra: Iterable[str] = ()) -> str:
    """sha256 over an array's dtype, shape and C-order bytes (and extra strings): equal arrays, equal hash."""
    h = hashlib.sha256()
    arr = np.ascontiguousarray(x)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    for e in extra:
        h.update(b"\0" + e.encode())
    h.update(b"\0")
    h.update(arr.data if arr.size else b"")
    return h.hexdigest()


def json_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no spaces): dict order does not matter."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def content_hash(paths: Iterable[str | os.PathLike[str]] = (), extra: Iterable[str] = ()) -> str:
    """sha256 over the bytes of files (directories walked in sorted order, relative names included) and
    extra strings. Used for every content-keyed cache so that a changed input never hits a stale entry."""
    h = hashlib.sha256()
    for p in paths:
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(b"\0")
            _update_file(h, f)
            h.update(b"\0")
    for e in extra:
        h.update(e.encode())
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------------------- ONNX identity


def onnx_identity(path: str | os.PathLike[str]) -> str:
    """Canonical content hash of an ONNX model: what the model computes, not how its tensors are named.

    tf2onnx is not byte-reproducible: two conversions of the same SavedModel differ in generated node,
    constant and intermediate-tensor names. Those names are replaced by their position (node order, then
    first use) and node names, doc strings and derived ``value_info`` are dropped; graph structure, operators,
    attributes, initializer values and dtypes, graph input/output names and types, opsets and IR version stay
    in the hash. Raises ``ModelLoadError`` when the file is not an ONNX model.
    """
    from trt_equiv.convert.onnx import load_onnx
    from trt_equiv.runtime import require

    onnx = require("onnx")
    model = load_onnx(path)
    graph = _canonical_graph(onnx, model.graph, {}, "g")
    h = hashlib.sha256(f"ir={model.ir_version}".encode())
    h.update(f";opsets={sorted((o.domain, o.version) for o in model.opset_import)}".encode())
    # part by part (tagged, length-prefixed), not one SerializeToString: protobuf refuses messages over 2 GB
    parts = (
        [("i", v) for v in graph.input]
        + [("n", v) for v in graph.node]
        + [("o", v) for v in graph.output]
        + [("w", v) for v in graph.initializer]
        + [("s", v) for v in graph.sparse_initializer]
        + [("f", v) for v in model.functions]  # local functions: kept whole (their names are part of the API)
    )
    for kind, part in parts:
        data = part.SerializeToString(deterministic=True)
        h.update(f";{kind}{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def _canonical_graph(onnx: Any, graph: Any, outer: dict[str, str], prefix: str) -> Any:
    """A copy of ``graph`` with every internal tensor renamed by position (``outer`` maps enclosing names)."""
    top = not outer and prefix == "g"
    names: dict[str, str] = dict(outer)
    out = onnx.GraphProto()
    # graph inputs/outputs: the model's interface; their names stay at the top level, by position in subgraphs
    for i, vi in enumerate(graph.input):
        names[vi.name] = vi.name if top else f"{prefix}.in{i}"
    io_outputs = {vi.name for vi in graph.output} if top else set()
    initializers = {t.name: t for t in graph.initializer}
    sparse = {s.values.name: s for s in graph.sparse_initializer}
    next_weight = 0

    def weight_name(name: str) -> str:
        nonlocal next_weight
        if name not in names:
            names[name] = f"{prefix}.w{next_weight}"
            next_weight += 1
        return names[name]

    nodes = []
    for n, node in enumerate(graph.node):
        for name in node.input:
            if name in initializers or name in sparse:
                weight_name(name)
        new = onnx.NodeProto()
        new.op_type = node.op_type
        new.domain = node.domain
        new.overload = node.overload
        new.input.extend(names.get(name, name) if name else "" for name in node.input)
        for j, name in enumerate(node.output):
            if name and name not in io_outputs:
                names[name] = f"{prefix}.n{n}.{j}"
            new.output.append(names.get(name, name) if name else "")
        for attr in sorted(node.attribute, key=lambda a: a.name):
            new.attribute.append(_canonical_attribute(onnx, attr, names, f"{prefix}.n{n}"))
        nodes.append(new)
    # unused initializers still count (by value), in a name-free order
    for name in sorted(initializers, key=lambda k: sha256_bytes(_tensor_bytes(onnx, initializers[k]))):
        weight_name(name)

    for vi in graph.input:
        new_vi = out.input.add()
        new_vi.CopyFrom(vi)
        new_vi.name = names[vi.name]
        new_vi.doc_string = ""
    out.node.extend(nodes)
    for vi in graph.output:
        new_vi = out.output.add()
        new_vi.CopyFrom(vi)
        new_vi.name = names.get(vi.name, vi.name)
        new_vi.doc_string = ""
    for t in sorted((_renamed_tensor(onnx, t, names[t.name]) for t in graph.initializer), key=lambda t: t.name):
        out.initializer.append(t)
    for s in sorted(graph.sparse_initializer, key=lambda s: names[s.values.name]):
        new_s = out.sparse_initializer.add()
        new_s.CopyFrom(s)
        new_s.values.name = names[s.values.name]
        new_s.indices.name = ""
    return out


def _canonical_attribute(onnx: Any, attr: Any, names: dict[str, str], prefix: str) -> Any:
    new = onnx.AttributeProto()
    new.CopyFrom(attr)
    new.doc_string = ""
    if attr.HasField("t"):
        new.t.name = ""
    for t in new.tensors:
        t.name = ""
    if attr.HasField("g"):
        new.g.CopyFrom(_canonical_graph(onnx, attr.g, names, f"{prefix}.{attr.name}"))
    if len(attr.graphs):
        del new.graphs[:]
        for k, g in enumerate(attr.graphs):
            new.graphs.append(_canonical_graph(onnx, g, names, f"{prefix}.{attr.name}{k}"))
    return new


def _renamed_tensor(onnx: Any, t: Any, name: str) -> Any:
    new = onnx.TensorProto()
    new.CopyFrom(t)
    new.name = name
    new.doc_string = ""
    return new


def _tensor_bytes(onnx: Any, t: Any) -> bytes:
    copy = onnx.TensorProto()
    copy.CopyFrom(t)
    copy.name = ""
    return copy.SerializeToString(deterministic=True)
