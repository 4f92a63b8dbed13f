"""ONNX Runtime backend: runs the fp32, fp16 and int8 Q/DQ ONNX files, every input and output by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.backends.base import Backend, TensorSpec
from trt_equiv.errors import InputValidationError, MissingRuntimeError, ModelLoadError
from trt_equiv.runtime import onnxruntime_cuda_unavailable_reason, require

#: Preferred execution providers, best first; the first available ones are used unless chosen explicitly.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CUDA_PROVIDER = "CUDAExecutionProvider"

#: ONNX Runtime's type strings for the input dtypes a model may have
ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
}  # fmt: skip


def choose_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """Explicit providers when given (each must be available), else the preferred ones that are."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelLoadError(f"ONNX Runtime: expected providers from {list(available)}, got unavailable {missing}")
        return list(requested)
    return [p for p in PROVIDER_PREFERENCE if p in available]


def ort_spec(arg: object, where: str) -> TensorSpec:
    """TensorSpec (batch dimension dropped, symbolic dims None) of an ORT ``NodeArg``."""
    type_str = arg.type  # type: ignore[attr-defined]
    if type_str not in ORT_DTYPES:
        raise ModelLoadError(f"{where}: tensor {arg.name!r} has type {type_str}; expected one of {sorted(ORT_DTYPES)}")  # type: ignore[attr-defined]
    shape = arg.shape  # type: ignore[attr-defined]
    dims = None if shape is None else tuple(d if isinstance(d, int) and d > 0 else None for d in shape[1:])
    return TensorSpec(arg.name, np.dtype(ORT_DTYPES[type_str]), dims)  # type: ignore[attr-defined]


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX file with ONNX Runtime; ``precision`` labels which recipe produced the file."""

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        precision: str = "fp32",
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        super().__init__(precision, None)
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ModelLoadError(f"ONNX Runtime: expected an ONNX file, got a path that does not exist: {onnx_path}")
        self.requested_providers = list(providers) if providers else None
        self.intra_op_threads = intra_op_threads
        self.session: Any = None
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
        self._set_session(session)

    def _set_session(self, session: Any) -> None:
        """Specs and providers from an open ``InferenceSession``."""
        where = f"ONNX {self.onnx_path}"
        self.input_specs = tuple(ort_spec(i, where) for i in session.get_inputs())
        self.output_specs = tuple(TensorSpec(o.name, None, None) for o in session.get_outputs())
        # a model exported with a fixed batch (e.g. 1) runs in chunks of exactly that size (Backend.infer splits)
        dims = [i.shape[0] for i in session.get_inputs() if i.shape]
        batches = {d for d in dims if isinstance(d, int) and d > 0}
        self.fixed_batch = min(batches) if batches else None
        self.max_batch = self.fixed_batch
        self.providers = session.get_providers()
        self.session = session

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.session is not None
        n = len(next(iter(inputs.values())))
        if self.fixed_batch is not None and n != self.fixed_batch:
            raise InputValidationError(
                f"ONNX {self.onnx_path}: the model has a fixed batch of {self.fixed_batch}, got {n} sample(s) in "
                f"the last chunk; pass a multiple of {self.fixed_batch} samples or export with a dynamic batch"
            )
        names = self.output_names
        return dict(zip(names, self.session.run(names, inputs), strict=True))

    def _close_impl(self) -> None:
        self.session = None


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    """The same ONNX files on ONNX Runtime's CUDA execution provider: its own row ("ortcuda-<precision>").

    The backend name has no "-" because labels are "<backend>-<precision>" split on the first "-". TF32 is
    switched off (``use_tf32=0``) so "fp32" means IEEE fp32 and the fp32 tolerance applies. A session that
    silently fell back to the CPU (the CUDA provider failed to load) is refused rather than reported as CUDA.
    """

    name = "ortcuda"

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        precision: str = "fp32",
        device_id: int = 0,
        intra_op_threads: int | None = None,
    ) -> None:
        super().__init__(onnx_path, precision=precision, providers=[CUDA_PROVIDER], intra_op_threads=intra_op_threads)
        self.device_id = device_id

    def _open_impl(self) -> None:
        reason = onnxruntime_cuda_unavailable_reason()
        if reason:
            raise MissingRuntimeError(f"{self.name}: {reason}")
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        cuda_options = {"device_id": str(self.device_id), "use_tf32": "0"}
        try:
            session = ort.InferenceSession(
                str(self.onnx_path), sess_options=options,
                providers=[(CUDA_PROVIDER, cuda_options), "CPUExecutionProvider"],
            )  # fmt: skip
        except Exception as exc:  # ORT raises its own exception types
            raise ModelLoadError(f"ONNX Runtime CUDA: could not load {self.onnx_path} ({exc})") from exc
        if CUDA_PROVIDER not in session.get_providers():
            raise MissingRuntimeError(
                f"{self.name}: ONNX Runtime fell back to {session.get_providers()} for {self.onnx_path}; "
                "the CUDA provider did not load (see ONNX Runtime's log above for the missing library)"
            )
        self._set_session(session)
