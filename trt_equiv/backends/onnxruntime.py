"""ONNX Runtime backend: runs the fp32, fp16 and int8 Q/DQ ONNX files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trt_equiv.backends.base import Backend
from trt_equiv.errors import InputValidationError, ModelLoadError
from trt_equiv.runtime import require

#: Preferred execution providers, best first; the first available ones are used unless chosen explicitly.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def choose_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """Explicit providers when given (each must be available), else the preferred ones that are."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelLoadError(f"ONNX Runtime: expected providers from {list(available)}, got unavailable {missing}")
        return list(requested)
    return [p for p in PROVIDER_PREFERENCE if p in available]


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX file with ONNX Runtime; ``precision`` labels which recipe produced the file."""

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        precision: str = "fp32",
        providers: Sequence[str] | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        super().__init__(precision, None)
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ModelLoadError(f"ONNX Runtime: expected an ONNX file, got a path that does not exist: {onnx_path}")
        self.requested_providers = list(providers) if providers else None
        self.input_name = input_name
        self.output_name = output_name
        self.intra_op_threads = intra_op_threads
        self.session = None
        self.fixed_batch: int | None = None

    def _open_impl(self) -> None:
        ort = require("onnxruntime")
        providers = choose_providers(ort.get_available_providers(), self.requested_providers)
        options = ort.SessionOptions()
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        try:
            session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelLoadError(f"ONNX Runtime: could not load {self.onnx_path} ({exc})") from exc
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        if self.input_name is None:
            if len(inputs) != 1:
                raise ModelLoadError(f"ONNX {self.onnx_path}: expected a single input, got {sorted(inputs)}")
            self.input_name = next(iter(inputs))
        elif self.input_name not in inputs:
            raise ModelLoadError(f"ONNX {self.onnx_path}: expected input {self.input_name!r}, got {sorted(inputs)}")
        if self.output_name is None:
            if len(outputs) != 1:
                raise ModelLoadError(f"ONNX {self.onnx_path}: expected a single output, got {outputs}")
            self.output_name = outputs[0]
        elif self.output_name not in outputs:
            raise ModelLoadError(f"ONNX {self.onnx_path}: expected output {self.output_name!r}, got {outputs}")
        spec = inputs[self.input_name]
        if spec.type not in _ORT_DTYPES:
            raise ModelLoadError(f"ONNX {self.onnx_path}: expected a float32/float16 input, got {spec.type}")
        self._input_dtype = _ORT_DTYPES[spec.type]
        self.sample_shape = tuple(d if isinstance(d, int) else None for d in spec.shape[1:])
        # a model exported with a fixed batch (e.g. 1) runs in chunks of exactly that size (Backend.infer splits)
        self.fixed_batch = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
        self.max_batch = self.fixed_batch
        self.providers = session.get_providers()
        self.session = session

    def _infer_impl(self, x: np.ndarray) -> np.ndarray:
        assert self.session is not None
        if self.fixed_batch is not None and len(x) != self.fixed_batch:
            raise InputValidationError(
                f"ONNX {self.onnx_path}: the model has a fixed batch of {self.fixed_batch}, got {len(x)} sample(s) in "
                f"the last chunk; pass a multiple of {self.fixed_batch} samples or export with a dynamic batch"
            )
        feed = {self.input_name: x.astype(self._input_dtype, copy=False)}
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float32)

    def _close_impl(self) -> None:
        self.session = None
