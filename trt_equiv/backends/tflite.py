"""TF-Lite backend: runs the fp32, fp16 and int8 ``.tflite`` files of ``convert/tflite.py``, every tensor by name.

Interpreter: LiteRT (``ai_edge_litert.interpreter.Interpreter``, package ``ai-edge-litert``) when installed,
else TensorFlow's ``tf.lite.Interpreter``. TensorFlow 2.21 warns on every ``tf.lite.Interpreter`` that it
"is deprecated and is scheduled for deletion" and points to LiteRT, which installs from PyPI beside
TensorFlow without changing any other package, so LiteRT is the one the ``tf`` extra brings and the one
used here; the fallback keeps TensorFlow-only installs working. ``interpreter_module`` says which ran.

Tensors are addressed through the ``serving_default`` signature (its input and output keys are the
SavedModel's names, so outputs compare name by name); their indices come from the signature's details, and
a batch of another size resizes every input (``resize_tensor_input``) before ``allocate_tensors``.
``get_tensor`` returns a copy, so a later call can never overwrite an output already handed out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.backends.base import Backend, TensorSpec
from trt_equiv.errors import ModelLoadError
from trt_equiv.runtime import is_available, require

#: where the interpreter comes from, preferred first
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tensorflow")


def interpreter_class() -> tuple[Any, str]:
    """(Interpreter class, module name): LiteRT when installed, else TensorFlow's (deprecated) one."""
    if is_available("ai_edge_litert"):
        return require("ai_edge_litert.interpreter").Interpreter, "ai_edge_litert"
    return require("tensorflow").lite.Interpreter, "tensorflow"


class TFLiteBackend(Backend):
    """A ``.tflite`` file run by the TF-Lite interpreter; ``precision`` labels which conversion produced it.

    ``num_threads`` defaults to every CPU core, as ONNX Runtime's default session does, so throughput rows
    compare runtimes rather than thread counts.
    """

    name = "tflite"

    def __init__(
        self,
        model_path: str | Path,
        *,
        precision: str = "fp32",
        signature: str = "serving_default",
        num_threads: int | None = None,
    ) -> None:
        super().__init__(precision, None)
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(f"TF-Lite: expected a .tflite file, got a path that does not exist: {model_path}")
        self.signature_name = signature
        self.num_threads = num_threads or os.cpu_count() or 1
        self.interpreter: Any = None
        self.interpreter_module = ""
        self._in_index: dict[str, int] = {}
        self._out_index: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def _open_impl(self) -> None:
        cls, self.interpreter_module = interpreter_class()
        try:
            interp = cls(model_path=str(self.model_path), num_threads=self.num_threads)
            signatures = interp.get_signature_list()
        except Exception as exc:  # the interpreter raises ValueError / RuntimeError for a bad flatbuffer
            raise ModelLoadError(f"TF-Lite: could not load {self.model_path} ({exc})") from exc
        if self.signature_name not in signatures:
            raise ModelLoadError(
                f"TF-Lite {self.model_path}: expected signature {self.signature_name!r}, got {sorted(signatures)}"
            )
        runner = interp.get_signature_runner(self.signature_name)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        self._in_index = {name: int(d["index"]) for name, d in inputs.items()}
        self._out_index = {name: int(d["index"]) for name, d in outputs.items()}
        self.input_specs = tuple(_spec(name, d) for name, d in inputs.items())
        self.output_specs = tuple(TensorSpec(name, None, None) for name in outputs)
        self._shapes = {}
        self.interpreter = interp

    def _prepare(self, inputs: dict[str, np.ndarray]) -> None:
        """Resize the inputs to this batch's shapes (only when they changed) and reallocate."""
        shapes = {name: tuple(x.shape) for name, x in inputs.items()}
        if shapes != self._shapes:
            for name, shape in shapes.items():
                self.interpreter.resize_tensor_input(self._in_index[name], list(shape), strict=True)
            self.interpreter.allocate_tensors()
            self._shapes = shapes

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.interpreter is not None
        self._prepare(inputs)
        interp = self.interpreter
        for name, x in inputs.items():
            interp.set_tensor(self._in_index[name], x)
        interp.invoke()
        return {name: interp.get_tensor(self._out_index[name]) for name in self.output_names}

    def raw_call(self, inputs: dict[str, np.ndarray]) -> Callable[[], object]:
        """The bare runtime work for one pre-validated batch: ``set_tensor`` + ``invoke`` + ``get_tensor``.

        The benchmarks time it beside ``infer`` to measure what the harness adds (validation, splitting,
        row checks); the resize happens here, once, outside the returned call.
        """
        self.open()
        self._prepare(inputs)
        interp, feed = self.interpreter, [(self._in_index[n], x) for n, x in inputs.items()]
        outs = [self._out_index[n] for n in self.output_names]

        def call() -> object:
            for index, x in feed:
                interp.set_tensor(index, x)
            interp.invoke()
            return [interp.get_tensor(i) for i in outs]

        return call

    def _close_impl(self) -> None:
        self.interpreter = None
        self._shapes = {}


def _spec(name: str, detail: dict[str, Any]) -> TensorSpec:
    """TensorSpec (batch dropped, -1 → None) from a signature input's details."""
    shape = detail.get("shape_signature", detail["shape"])
    dims = tuple(None if int(d) < 0 else int(d) for d in list(shape)[1:])
    return TensorSpec(name, np.dtype(detail["dtype"]), dims)
