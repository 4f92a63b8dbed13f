"""TensorRT debug tensors: the same per-tensor table as ``trt_equiv.locate``, for an engine on a GPU.

Marking every tensor as a network output (Polygraphy's ``mark all``) changes which layers TensorRT fuses and
holds every activation in memory. TensorRT 10+ has debug tensors instead: ``INetworkDefinition.mark_debug``
keeps a tensor observable without making it an output, and at run time an ``IDebugListener`` receives each
marked tensor's device buffer (``IExecutionContext.set_debug_listener`` + ``set_tensor_debug_state`` /
``set_all_tensors_debug_state``). Where ``mark_debug`` is absent (TensorRT 8.6/9) the tensors are marked as
extra outputs, the only way there. Building works wherever the module can build (TensorRT for RTX on a
CPU-only machine); running needs a GPU.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from trt_equiv.errors import EngineError, MissingRuntimeError
from trt_equiv.trt.build import BuildOptions, BuildResult, build_serialized_engine
from trt_equiv.trt.common import resolve_module


@dataclass(frozen=True)
class DebugBuild:
    """An engine whose chosen intermediate tensors can be read back at run time."""

    result: BuildResult
    #: tensors marked, in network order
    marked: tuple[str, ...]
    #: "mark_debug" (TensorRT 10+) or "mark_output" (older TensorRT: extra network outputs)
    how: str
    #: requested names that the parsed network does not have (TensorRT renamed or folded them away)
    missing: tuple[str, ...]
    #: marked names the network confirmed (``INetworkDefinition.is_debug_tensor``) before the build
    confirmed: tuple[str, ...] = ()


def network_tensors(network: Any) -> list[str]:
    """Names of every layer output of a parsed network, in layer order (network outputs excluded)."""
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    names = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            name = layer.get_output(j).name
            if name not in outputs:
                names.append(name)
    return list(dict.fromkeys(names))


def build_debug_engine(
    onnx_path: str | Path,
    tensors: Iterable[str] | None = None,
    options: BuildOptions | None = None,
    *,
    module: str | ModuleType | None = None,
) -> DebugBuild:
    """Build ``onnx_path`` with ``tensors`` (default: every node output of the ONNX graph) marked for read-back.

    Names are the ONNX tensor names (the ONNX parser keeps them); for a Q/DQ file pass the candidate names
    ``trt_equiv.locate.match_tensors`` returns, so the rows line up with ``locate``'s.
    """
    trt = resolve_module(module)
    if tensors is None:
        from trt_equiv.runtime import require

        graph = require("onnx").load(str(onnx_path), load_external_data=False).graph
        outputs = {o.name for o in graph.output}
        tensors = [o for n in graph.node for o in n.output if o and o not in outputs]
    wanted = list(dict.fromkeys(tensors))
    marked: list[str] = []
    missing: list[str] = []
    confirmed: list[str] = []
    use_debug = hasattr(trt.INetworkDefinition, "mark_debug")

    def mark(network: Any) -> None:
        by_name: dict[str, Any] = {}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            for j in range(layer.num_outputs):
                by_name.setdefault(layer.get_output(j).name, layer.get_output(j))
        for name in wanted:
            tensor = by_name.get(name)
            if tensor is None:
                missing.append(name)
                continue
            if use_debug:
                if not network.mark_debug(tensor):
                    raise EngineError(f"TensorRT refused to mark {name!r} as a debug tensor")
                if network.is_debug_tensor(tensor):
                    confirmed.append(name)
            else:
                network.mark_output(tensor)
            marked.append(name)

    result = build_serialized_engine(onnx_path, options, module=trt, progress=False, network_hook=mark)
    how = "mark_debug" if use_debug else "mark_output"
    return DebugBuild(result, tuple(marked), how, tuple(missing), tuple(confirmed))


def engine_debug_tensors(trt: ModuleType, engine: Any, names: Iterable[str]) -> list[str]:
    """The names an engine reports as debug tensors (``ICudaEngine.is_debug_tensor``, TensorRT 10+)."""
    if not hasattr(engine, "is_debug_tensor"):
        return []
    return [n for n in names if engine.is_debug_tensor(n)]


def _capsule_pointer(capsule: Any) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get(capsule, None))


def run_debug_tensors(
    engine_path: str | Path, x: np.ndarray, names: Iterable[str], *, module: str | ModuleType | None = None
) -> dict[str, np.ndarray]:
    """Run the engine on ``x`` and return the marked tensors' values (needs a GPU and TensorRT 10+).

    An ``IDebugListener`` copies each tensor from the device during the callback (its buffer is only valid
    then); the run itself is the TensorRT backend's, so batching and validation are the usual ones.
    """
    from trt_equiv.backends.tensorrt import TensorRTBackend
    from trt_equiv.runtime import tensorrt_execution_unavailable_reason
    from trt_equiv.trt.cuda import cuda_api

    trt = resolve_module(module)
    reason = tensorrt_execution_unavailable_reason(trt.__name__)
    if reason:
        raise MissingRuntimeError(f"debug tensors of {engine_path}: {reason}")
    if not hasattr(trt, "IDebugListener"):
        raise MissingRuntimeError(f"{trt.__name__} has no IDebugListener: debug tensors need TensorRT 10 or later")
    wanted = list(dict.fromkeys(names))
    api = cuda_api()
    captured: dict[str, list[np.ndarray]] = {n: [] for n in wanted}

    class Listener(trt.IDebugListener):  # type: ignore[name-defined]
        def process_debug_tensor(self, addr: Any, location: Any, type: Any, shape: Any, name: str, stream: int) -> None:  # noqa: A002
            if name not in captured:
                return
            host = np.empty(tuple(int(d) for d in shape), dtype=np.dtype(trt.nptype(type)))
            api.copy_dtoh(host, _capsule_pointer(addr), None)  # synchronous: the buffer dies after the callback
            captured[name].append(host.astype(np.float32) if host.dtype.kind == "f" else host)

    listener = Listener()
    backend = TensorRTBackend(engine_path, module=trt)
    with backend:
        context = backend._res["context"]
        context.set_debug_listener(listener)
        for name in wanted:
            if not context.set_tensor_debug_state(name, True):
                raise EngineError(f"{engine_path}: {name!r} is not a debug tensor of this engine")
        backend.infer(x)
    missing = [n for n, parts in captured.items() if not parts]
    if missing:
        raise EngineError(f"{engine_path}: the debug listener received nothing for {missing[:5]}")
    return {n: np.concatenate(parts, axis=0) for n, parts in captured.items()}
