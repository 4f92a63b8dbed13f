"""Golden outputs: the SavedModel's answers saved once, with provenance, so checks can run without TensorFlow.

A GPU runner (NVIDIA's TensorRT container, say) usually has no TensorFlow, and TensorFlow's own CUDA
libraries often clash with TensorRT's. ``save_golden`` runs the SavedModel once, on a machine that has
TensorFlow, and ``load_golden`` hands its outputs back as the reference, importing nothing heavy.

Format (version 1), one ``.npz`` written without pickle (``np.savez_compressed``):

- ``out:<output name>``: one array per SavedModel output, batch first, in the data file's sample order.
  Floating outputs are stored as float32; integer and boolean outputs keep their dtype (exact outputs
  must stay exact).
- ``__meta__``: a 1-D uint8 array holding UTF-8 JSON:

  ``format`` ("trt-equiv-golden"), ``format_version`` (int), ``created`` (ISO 8601 UTC),
  ``model`` {``path``, ``sha256`` (``cache_dir.content_hash`` over the SavedModel directory), ``signature``},
  ``data`` {``path``, ``sha256`` (see ``inputs_sha256``: inputs only, labels excluded), ``samples``},
  ``inputs`` / ``outputs``: lists of {``name``, ``dtype``, ``shape``} (shape includes the batch; an
  output's ``dtype`` is the SavedModel's, ``stored_dtype`` what the file holds),
  ``tensorflow`` (version), ``trt_equiv`` (version), ``machine`` {``hostname``, ``platform``, ``cpu``,
  ``python``}.

A reader refuses a file whose ``format_version`` is newer than it knows, a malformed or truncated file, one
whose data hash differs from the data it is used with, and (``golden_matches_outputs``) one whose outputs do
not match the candidate model's by name and shape; each refusal says what differs.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.backends.base import TensorSpec
from trt_equiv.data import Dataset, _member_header, max_data_bytes
from trt_equiv.errors import InputValidationError
from trt_equiv.hashing import array_hash, json_hash

FORMAT = "trt-equiv-golden"
FORMAT_VERSION = 1
META_KEY = "__meta__"
OUTPUT_PREFIX = "out:"
#: the JSON record is small; a larger one is not a golden file
MAX_META_BYTES = 1 << 20


def inputs_sha256(inputs: Mapping[str, np.ndarray]) -> str:
    """sha256 over the inputs in name order: name, dtype, shape and the C-order bytes of each array.

    Labels are left out on purpose: the outputs depend on the inputs only.
    """
    return json_hash([[name, array_hash(inputs[name])] for name in sorted(inputs)])


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    """Where a golden file was made: enough to tell two machines apart in a report."""
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu": _cpu_name(),
            "python": platform.python_version()}  # fmt: skip


def _tensor_record(
    name: str, array: np.ndarray, stored: np.ndarray | None = None, dtype: np.dtype | None = None
) -> dict[str, Any]:
    """{name, dtype (the model's, when known), shape (batch included)[, stored_dtype]}."""
    record: dict[str, Any] = {"name": name, "dtype": str(dtype or array.dtype), "shape": list(array.shape)}
    if stored is not None:
        record["stored_dtype"] = str(stored.dtype)
    return record


def _stored(array: np.ndarray) -> np.ndarray:
    """float32 for floating outputs; integers and booleans as they are."""
    return array.astype(np.float32) if array.dtype.kind in "fc" else array


def save_golden(
    model_dir: str | Path,
    data: Dataset,
    out: str | Path,
    *,
    signature: str = "serving_default",
    data_path: str | Path | None = None,
) -> dict[str, Any]:
    """Run the SavedModel once over ``data`` and write every output, by name, with its provenance record.

    Returns the record. The file is written to a temporary name and renamed, so a reader never sees half.
    """
    from trt_equiv import __version__
    from trt_equiv.backends.savedmodel import SavedModelBackend
    from trt_equiv.cache_dir import content_hash
    from trt_equiv.runtime import package_version

    model_dir = Path(model_dir)
    with SavedModelBackend(model_dir, signature=signature) as sm:
        assert sm.input_specs is not None and sm.output_specs is not None
        bound = data.bind(sm.input_specs)
        outputs = sm.infer(bound.feeds())
        declared = {s.name: s.dtype for s in sm.output_specs}
    stored = {name: _stored(np.asarray(a)) for name, a in outputs.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(model_dir), "sha256": content_hash([model_dir]), "signature": signature},
        "data": {"path": str(data_path or data.source), "sha256": inputs_sha256(bound.inputs), "samples": len(bound)},
        "inputs": [_tensor_record(n, a) for n, a in bound.inputs.items()],
        "outputs": [_tensor_record(n, outputs[n], stored[n], declared.get(n)) for n in outputs],
        "tensorflow": package_version("tensorflow", "tensorflow-cpu", "tf-nightly"),
        "trt_equiv": __version__,
        "machine": machine_info(),
    }
    encoded = np.frombuffer(json.dumps(meta, indent=1).encode(), dtype=np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp.npz")
    arrays = {META_KEY: encoded, **{OUTPUT_PREFIX + name: a for name, a in stored.items()}}
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(out)
    return meta


def _refuse(path: Path, what: str) -> InputValidationError:
    return InputValidationError(f"golden file {path}: {what}")


def _check_meta(meta: object, path: Path) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _refuse(path, f"expected a {FORMAT!r} record in {META_KEY!r}, got format {got!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _refuse(path, f"expected an integer format_version >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise _refuse(
            path, f"written in format version {version} by a newer trt_equiv; this one reads up to {FORMAT_VERSION}"
        )
    for key, kind in (("model", dict), ("data", dict), ("inputs", list), ("outputs", list)):
        if not isinstance(meta.get(key), kind):
            raise _refuse(path, f"expected {key!r} ({kind.__name__}) in the record, got {meta.get(key)!r}")
    if not isinstance(meta["data"].get("sha256"), str):
        raise _refuse(path, "expected data.sha256 in the record, got none")
    for record in meta["inputs"] + meta["outputs"]:
        named = isinstance(record, dict) and isinstance(record.get("name"), str)
        if not (named and isinstance(record.get("shape"), list)):
            raise _refuse(path, f"expected tensor records with name and shape, got {record!r}")
    return meta


def read_golden_meta(path: str | Path) -> dict[str, Any]:
    """The provenance record of a golden file (see the module docstring), checked, without reading outputs."""
    path = Path(path)
    if not path.is_file():
        raise _refuse(path, "expected an existing .npz golden file, got no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            if META_KEY + ".npy" not in archive.namelist():
                raise _refuse(path, f"expected a {META_KEY!r} member, got members {sorted(archive.namelist())}")
            shape, dtype = _member_header(archive, META_KEY + ".npy", path, MAX_META_BYTES)
            if dtype != np.uint8 or len(shape) != 1:
                raise _refuse(path, f"expected {META_KEY!r} as 1-D uint8 JSON bytes, got {dtype} {shape}")
            with archive.open(META_KEY + ".npy") as f:
                raw = np.lib.format.read_array(f, allow_pickle=False)
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except InputValidationError:
        raise
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, UnicodeDecodeError, JSONDecodeError, ...
        raise _refuse(path, f"expected a readable golden .npz, got {type(exc).__name__}: {exc}") from exc
    return _check_meta(meta, path)


def _specs_from_records(records: Sequence[Mapping[str, Any]]) -> list[TensorSpec]:
    return [TensorSpec(r["name"], np.dtype(r["dtype"]), tuple(r["shape"][1:])) for r in records]


def golden_input_specs(path: str | Path) -> tuple[TensorSpec, ...]:
    """The model inputs a golden file was made with (names, dtypes, per-sample shapes), from its record."""
    return tuple(_specs_from_records(read_golden_meta(path)["inputs"]))


def _data_difference(meta: Mapping[str, Any], data: Dataset, path: Path) -> str:
    """Say how ``data`` differs from the data the golden file was made from (names, count, shapes, values)."""
    recorded = {r["name"]: r for r in meta["inputs"]}
    specs = _specs_from_records(meta["inputs"])
    try:
        bound = data.bind(specs)
    except InputValidationError as exc:
        return f"the data does not fit the recorded inputs: {exc}"
    samples = meta["data"].get("samples")
    if samples is not None and len(bound) != samples:
        return f"it was made from {samples} samples, the data has {len(bound)}"
    got = inputs_sha256(bound.inputs)
    if got == meta["data"]["sha256"]:
        return ""
    shapes = {n: list(a.shape) for n, a in bound.inputs.items()}
    if any(shapes[n] != recorded[n]["shape"] for n in shapes):
        return f"input shapes {shapes} differ from the recorded { ({n: r['shape'] for n, r in recorded.items()}) }"
    return (
        f"same inputs, shapes and sample count, different values: data sha256 {got[:16]}… of {data.source} vs "
        f"{meta['data']['sha256'][:16]}… recorded from {meta['data'].get('path')}"
    )


def load_golden(path: str | Path, data: Dataset) -> dict[str, np.ndarray]:
    """The golden outputs (output name → array) for ``data``; refused when made from other data.

    Imports neither TensorFlow nor any other heavy runtime.
    """
    path = Path(path)
    meta = read_golden_meta(path)
    difference = _data_difference(meta, data, path)
    if difference:
        raise _refuse(path, f"made from other data than {data.source}: {difference}")
    limit = max_data_bytes()
    outputs: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            for record in meta["outputs"]:
                member = f"{OUTPUT_PREFIX}{record['name']}.npy"
                if member not in members:
                    raise _refuse(path, f"expected output member {member!r} from the record, got {sorted(members)}")
                shape, dtype = _member_header(archive, member, path, limit)
                if list(shape) != record["shape"]:
                    raise _refuse(
                        path,
                        f"output {record['name']!r}: the record says shape {record['shape']}, "
                        f"the member holds {list(shape)}",
                    )
                with archive.open(member) as f:
                    outputs[record["name"]] = np.lib.format.read_array(f, allow_pickle=False)
    except InputValidationError:
        raise
    except Exception as exc:  # a truncated member: EOFError, zlib.error, ValueError, BadZipFile
        raise _refuse(path, f"expected complete output arrays, got {type(exc).__name__}: {exc}") from exc
    return outputs


def golden_matches_outputs(
    meta: Mapping[str, Any], output_specs: Sequence[TensorSpec], input_specs: Sequence[TensorSpec] | None = None
) -> None:
    """Refuse (InputValidationError) a golden file whose outputs (and inputs, when given) do not match the
    candidate model's by name and per-sample shape; ``None`` dimensions of a spec match any size."""
    where = f"golden file {meta.get('data', {}).get('path', '?')} vs the candidate model"
    for kind, records, specs in (("outputs", meta["outputs"], output_specs), ("inputs", meta["inputs"], input_specs)):
        if specs is None:
            continue
        recorded = {r["name"]: r["shape"][1:] for r in records}
        wanted = {s.name: s.shape for s in specs}
        if set(recorded) != set(wanted):
            missing = sorted(set(wanted) - set(recorded))
            extra = sorted(set(recorded) - set(wanted))
            raise InputValidationError(
                f"{where}: {kind} differ by name: the candidate has {sorted(wanted)}, the golden file "
                f"{sorted(recorded)} (missing from the golden file {missing}, not in the candidate {extra})"
            )
        for name, shape in wanted.items():
            got = recorded[name]
            if shape is None:
                continue
            if len(shape) != len(got) or any(w is not None and w != g for w, g in zip(shape, got, strict=True)):
                raise InputValidationError(
                    f"{where}: {kind[:-1]} {name!r}: the candidate's per-sample shape is {list(shape)}, "
                    f"the golden file's {got}"
                )
