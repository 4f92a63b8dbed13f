"""One hashing module; ONNX identity that survives tf2onnx's generated names but not a changed model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import trt_equiv
from trt_equiv.errors import ModelLoadError
from trt_equiv.hashing import array_hash, content_hash, onnx_identity, sha256_file
from trt_equiv.pipeline import Pipeline


def renamed_copy(src: Path, dst: Path, *, salt: str = "zz") -> Path:
    """``src`` with every generated name changed the way a second tf2onnx run changes them: node names,
    constant (initializer) names and intermediate tensor names; the initializer list in another order.
    Graph inputs and outputs keep their names (they are the model's interface)."""
    import onnx

    model = onnx.load(str(src))
    g = model.graph
    keep = {v.name for v in [*g.input, *g.output]}
    mapping: dict[str, str] = {}
    for t in g.initializer:
        mapping[t.name] = f"const_fold_opt__{salt}{len(mapping)}"
    for node in g.node:
        node.name = f"{node.name}__{salt}"
        for name in node.output:
            if name not in keep:
                mapping[name] = f"{name}__{salt}"
    for node in g.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    inits = list(g.initializer)
    for t in inits:
        t.name = mapping[t.name]
    del g.initializer[:]
    g.initializer.extend(reversed(inits))
    for vi in g.value_info:
        vi.name = mapping.get(vi.name, vi.name)
    g.doc_string = f"converted from /somewhere/else/{salt}"
    onnx.save(model, str(dst))
    return dst


def edited_copy(src: Path, dst: Path, edit: str) -> Path:
    """``src`` with one semantic change: a weight value, an attribute, the input's name, the opset."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    if edit == "weight":
        t = next(t for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 4)
        arr = numpy_helper.to_array(t).copy()
        arr.flat[0] += np.float32(1e-3)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
    elif edit == "attribute":
        node = next(n for n in g.node if n.attribute and any(a.type == onnx.AttributeProto.INTS for a in n.attribute))
        attr = next(a for a in node.attribute if a.type == onnx.AttributeProto.INTS)
        attr.ints[0] = attr.ints[0] + 1
    elif edit == "input name":
        old = g.input[0].name
        g.input[0].name = "renamed_input"
        for node in g.node:
            node.input[:] = ["renamed_input" if n == old else n for n in node.input]
    elif edit == "opset":
        model.opset_import[0].version += 1
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def fp32(trt_equiv_pipeline: Pipeline) -> Path:
    return trt_equiv_pipeline.onnx("fp32")


def test_generated_names_do_not_change_the_identity(fp32: Path, tmp_path: Path) -> None:
    copy = renamed_copy(fp32, tmp_path / "second_conversion.onnx")
    assert sha256_file(copy) != sha256_file(fp32), "the copy must differ in bytes, else the test proves nothing"
    assert onnx_identity(copy) == onnx_identity(fp32)
    other = renamed_copy(fp32, tmp_path / "third.onnx", salt="q")
    assert onnx_identity(other) == onnx_identity(fp32)


@pytest.mark.parametrize("edit", ["weight", "attribute", "input name", "opset"])
def test_a_changed_model_changes_the_identity(fp32: Path, tmp_path: Path, edit: str) -> None:
    changed = edited_copy(fp32, tmp_path / "changed.onnx", edit)
    assert onnx_identity(changed) != onnx_identity(fp32)
    # and the edit survives renaming: names are ignored, the change is not
    assert onnx_identity(renamed_copy(changed, tmp_path / "changed_renamed.onnx")) == onnx_identity(changed)


def test_identity_of_something_that_is_not_onnx_is_a_clean_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match="expected an ONNX model file"):
        onnx_identity(junk)


def test_array_and_content_hashes_see_every_byte(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert array_hash(x) == array_hash(x.copy()) == array_hash(np.asfortranarray(x))
    y = x.copy()
    y[2, 3] += 1
    assert array_hash(y) != array_hash(x)
    assert array_hash(x.reshape(4, 3)) != array_hash(x)  # same bytes, other shape
    assert array_hash(x.astype(np.float64)) != array_hash(x)
    (tmp_path / "a").write_bytes(b"abc")
    assert content_hash([tmp_path / "a"]) != content_hash([tmp_path / "a"], extra=["opset=17"])


def test_sha256_is_computed_in_one_module_only() -> None:
    """The four copies (cache_dir, trt/common, convert/precision, trt/build) are gone: only hashing.py hashes."""
    root = Path(trt_equiv.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "hashing.py" and re.search(r"\bhashlib\b", p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
