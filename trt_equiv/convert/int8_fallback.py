"""Accuracy-aware int8: keep the fewest Conv/Gemm/MatMul nodes in float32 that make the int8 file pass its gate.

When the plain int8 Q/DQ file misses its quality gate, nothing tells the user which layers to keep in higher
precision (Intel Neural Compressor and Polygraphy's ``debug precision`` answer this by trial). Here the
compute nodes are ranked by sensitivity, measured on the CALIBRATION split only (the test split stays
unseen): ``method="locate"`` ranks by the error each node adds itself in the plain int8 file (one
``trt_equiv.locate`` run), ``method="exclude-one"`` by how much the output error drops when that node alone
is left in float32 (one quantization per node). The smallest prefix of the ranking that passes the gate is
found by bisection (the full set must pass, the empty set failed) and cached as JSON keyed by the fp32 ONNX,
the calibration data, the method and the gate name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.cache_dir import content_hash, resolve_cache_dir
from trt_equiv.convert.onnx import onnx_input_specs
from trt_equiv.convert.precision import CALIBRATION_METHODS, RecipeResult, int8_qdq_onnx
from trt_equiv.data import CALIBRATION_SAMPLES, Dataset
from trt_equiv.errors import ConversionError, InputValidationError
from trt_equiv.hashing import array_hash
from trt_equiv.locking import build_once
from trt_equiv.runtime import package_version, require

Gate = Callable[[np.ndarray, np.ndarray], bool]
METHODS = ("locate", "exclude-one")
FALLBACK_MODES = ("off", "auto")
#: node types the fallback may keep in float32 (the ones int8 kernels exist for, and where the cost is)
COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
#: element-wise ops that follow a compute node as its epilogue (bias, normalization, activation): TensorRT
#: fuses them into the layer, and ONNX Runtime would otherwise re-quantize the layer's float output at them
EPILOGUE_OPS = ("Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh",
                "HardSigmoid", "HardSwish", "Elu", "Selu")  # fmt: skip


def default_gate(reference: np.ndarray, candidate: np.ndarray) -> bool:
    """The int8 row of ``trt-equiv check``: ONNX Runtime int8 against ONNX Runtime fp32 under the int8 policy."""
    from trt_equiv.compare import compare

    return bool(compare(reference, candidate, reference_label="onnxruntime-fp32", candidate_label="onnxruntime-int8"))


@dataclass(frozen=True)
class FallbackResult:
    """The int8 file that passes the gate, and which compute nodes it keeps in float32."""

    recipe: RecipeResult
    excluded: tuple[str, ...]
    #: number of Conv/Gemm/MatMul nodes in the model
    compute_nodes: int
    plain_passed: bool
    method: str
    gate_name: str
    #: True when the excluded set came from the cache (no search ran)
    cache_hit: bool
    #: (number excluded, gate passed) for every trial the search ran, in order
    trials: tuple[tuple[int, bool], ...] = ()

    @property
    def path(self) -> Path:
        return self.recipe.path

    def cost(self) -> str:
        return f"{len(self.excluded)} of {self.compute_nodes} {'/'.join(COMPUTE_OPS)} nodes kept in fp32"

    def summary(self) -> str:
        if self.plain_passed:
            return f"int8 fallback: the plain int8 file passes its gate; {self.cost()}"
        return f"int8 fallback ({self.method}): {self.cost()}: {', '.join(self.excluded)}"


def compute_nodes(fp32_onnx: str | Path) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes, in graph order."""
    graph = require("onnx").load(str(fp32_onnx), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in COMPUTE_OPS and n.name]


def layer_nodes(fp32_onnx: str | Path, names: list[str]) -> list[str]:
    """``names`` plus each one's epilogue: the chain of element-wise nodes that alone consume its output.

    Keeping a MatMul in float32 but its bias Add in int8 would re-quantize the very tensor that needed
    float32, so a compute node is excluded together with its epilogue (what TensorRT fuses into one layer).
    """
    graph = require("onnx").load(str(fp32_onnx), load_external_data=False).graph
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    by_name = {n.name: n for n in graph.node}
    out: list[str] = []
    for name in names:
        node = by_name[name]
        out.append(name)
        while len(node.output) == 1 and node.output[0] not in outputs:
            users = consumers.get(node.output[0], [])
            if len(users) != 1 or users[0].op_type not in EPILOGUE_OPS or not users[0].name:
                break
            node = users[0]
            out.append(node.name)
    return list(dict.fromkeys(out))


def _run(path: Path, feeds: Any, precision: str) -> Any:
    """Every output (by name) of an ONNX file on ONNX Runtime's CPU provider."""
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    with OnnxRuntimeBackend(path, precision=precision, providers=["CPUExecutionProvider"]) as backend:
        return backend.infer(feeds)


def _passes(gate: Gate, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> bool:
    """The gate holds on every float output (each output is judged on its own)."""
    return all(bool(gate(ref, candidate[name])) for name, ref in reference.items() if ref.dtype.kind == "f")


def _rel_l2(reference: np.ndarray | dict[str, np.ndarray], candidate: np.ndarray | dict[str, np.ndarray]) -> float:
    """Relative L2 error of one output, or the worst over the float outputs of a model."""
    if isinstance(reference, dict) and isinstance(candidate, dict):
        return max((_rel_l2(out, candidate[n]) for n, out in reference.items() if out.dtype.kind == "f"), default=0.0)
    assert isinstance(reference, np.ndarray) and isinstance(candidate, np.ndarray)
    ref = reference.astype(np.float64)
    norm = float(np.linalg.norm(ref))
    err = float(np.linalg.norm(candidate.astype(np.float64) - ref))
    return err / norm if norm > 0 else err


def int8_with_fallback(
    fp32_onnx: str | Path,
    calibration: Dataset,
    *,
    gate: Gate = default_gate,
    gate_name: str | None = None,
    method: str = "locate",
    calibration_method: str = "minmax",
    cache_dir: str | Path | None = None,
) -> FallbackResult:
    """The int8 Q/DQ file of ``fp32_onnx`` with the fewest compute nodes in float32 that passes ``gate``.

    ``gate(reference_outputs, candidate_outputs)`` sees ONNX Runtime fp32 and int8 outputs on the calibration
    samples. ``gate_name`` goes into the cache key (default: the gate's qualified name); give a new name when
    a gate's behaviour changes. Raises ConversionError when even float32 for every compute node fails the gate.
    """
    if method not in METHODS:
        raise InputValidationError(f"int8 fallback method: expected one of {METHODS}, got {method!r}")
    if calibration_method not in CALIBRATION_METHODS:
        raise InputValidationError(
            f"calibration method: expected one of {CALIBRATION_METHODS}, got {calibration_method!r}"
        )
    fp32_onnx = Path(fp32_onnx)
    name = gate_name or f"{getattr(gate, '__module__', '?')}.{getattr(gate, '__qualname__', repr(gate))}"
    calib = calibration.without_labels().take(CALIBRATION_SAMPLES)
    feeds = calib.bind(onnx_input_specs(fp32_onnx)).feeds()
    key = content_hash(
        [fp32_onnx],
        extra=["int8-fallback", method, name, calibration_method, *(f"{k}={array_hash(v)}" for k, v in feeds.items()),
               f"onnxruntime={package_version('onnxruntime', 'onnxruntime-gpu')}"],
    )  # fmt: skip
    target = resolve_cache_dir(cache_dir) / "precision" / "int8_fallback" / f"{key}.json"

    def quantize(excluded: list[str]) -> RecipeResult:
        return int8_qdq_onnx(fp32_onnx, calib, method=calibration_method,
                             nodes_to_exclude=layer_nodes(fp32_onnx, excluded), cache_dir=cache_dir)  # fmt: skip

    def search(tmp: Path) -> None:
        nodes = compute_nodes(fp32_onnx)
        reference = _run(fp32_onnx, feeds, "fp32")
        plain = quantize([])
        trials: list[tuple[int, bool]] = []

        def passes(excluded: list[str]) -> bool:
            ok = _passes(gate, reference, _run(quantize(excluded).path, feeds, "int8"))
            trials.append((len(excluded), ok))
            return ok

        excluded: list[str] = []
        plain_ok = passes([])
        ranking: list[str] = []
        if not plain_ok:
            ranking = _rank(fp32_onnx, plain.path, nodes, feeds, reference, method, quantize)
            if not passes(ranking):
                raise ConversionError(
                    f"int8 fallback: {fp32_onnx} misses its gate ({name}) on the calibration set even with all "
                    f"{len(ranking)} {'/'.join(COMPUTE_OPS)} nodes in float32; int8 cannot meet it by excluding "
                    "compute nodes (check the gate, or the calibration data)"
                )
            lo, hi = 0, len(ranking)  # invariant: prefix lo fails, prefix hi passes
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if passes(ranking[:mid]):
                    hi = mid
                else:
                    lo = mid
            excluded = ranking[:hi]
        payload = {
            "fp32_onnx": str(fp32_onnx), "method": method, "gate": name, "calibration_method": calibration_method,
            "calibration_samples": len(calib), "compute_nodes": len(nodes), "plain_passed": plain_ok,
            "ranking": ranking, "excluded": excluded, "trials": trials,
        }  # fmt: skip
        tmp.write_text(json.dumps(payload, indent=2))

    built = build_once(target, search)
    try:
        payload = json.loads(target.read_text())
        excluded = [str(n) for n in payload["excluded"]]
    except (OSError, ValueError, KeyError) as exc:
        raise ConversionError(f"int8 fallback cache {target} is unreadable ({exc}); delete it to search again") from exc
    recipe = quantize(excluded)
    return FallbackResult(
        recipe=recipe, excluded=tuple(excluded), compute_nodes=int(payload["compute_nodes"]),
        plain_passed=bool(payload["plain_passed"]), method=method, gate_name=name, cache_hit=not built,
        trials=tuple((int(n), bool(ok)) for n, ok in payload.get("trials", [])),
    )  # fmt: skip


def _rank(
    fp32_onnx: Path,
    plain: Path,
    nodes: list[str],
    feeds: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    method: str,
    quantize: Callable[[list[str]], RecipeResult],
) -> list[str]:
    """Compute nodes, most sensitive first."""
    if method == "exclude-one":
        base = _rel_l2(reference, _run(plain, feeds, "int8"))
        gain = {n: base - _rel_l2(reference, _run(quantize([n]).path, feeds, "int8")) for n in nodes}
        return sorted(nodes, key=lambda n: gain[n], reverse=True)
    from trt_equiv.locate import locate

    result = locate(fp32_onnx, plain, feeds, precision="int8")
    graph = require("onnx").load(str(fp32_onnx), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    local = {r.tensor: (r.local_rel_l2 if r.local_rel_l2 is not None else r.rel_l2) for r in result.rows}
    # a compute node is charged with its own error and with the rounding of the activations it reads:
    # keeping it in float32 removes the Q/DQ on its inputs too (that is where outlier channels hurt)
    by_name = {n.name: n for n in graph.node}
    score = {}
    for name in nodes:
        node = by_name[name]
        reads = [local.get(i, 0.0) for i in node.input if i and i not in initializers]
        score[name] = max([local.get(o, 0.0) for o in node.output] + reads)
    return sorted(nodes, key=lambda n: score[n], reverse=True)
