"""TensorFlow SavedModel backend: the reference every conversion is compared against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trt_equiv.backends.base import Backend, TensorSpec
from trt_equiv.errors import ModelLoadError
from trt_equiv.runtime import require

#: the reference runs in chunks of this many samples, so memory does not grow with the data set
REFERENCE_CHUNK = 256


def check_savedmodel_dir(path: str | Path) -> Path:
    """Fail early, before TensorFlow is imported, when ``path`` cannot be a SavedModel."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"SavedModel: expected a SavedModel directory, got a path that does not exist: {path}")
    if not path.is_dir() or not any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelLoadError(f"SavedModel: expected a directory containing saved_model.pb, got {path} without one")
    return path


class SavedModelBackend(Backend):
    """Runs a TensorFlow 2.x / Keras 3 SavedModel through one of its signatures, every input and output by name.

    The signature's input and output keys are the tensor names (tf2onnx keeps them, so the ONNX file and the
    engine use the same ones). ``max_batch`` bounds memory: large data sets run in chunks.
    """

    name = "savedmodel"

    def __init__(
        self, model_dir: str | Path, *, signature: str = "serving_default", max_batch: int | None = REFERENCE_CHUNK
    ) -> None:
        super().__init__("fp32", max_batch)
        self.model_dir = check_savedmodel_dir(model_dir)
        self.signature_name = signature

    def _open_impl(self) -> None:
        tf = require("tensorflow")
        try:
            loaded = tf.saved_model.load(str(self.model_dir))
        except Exception as exc:  # TF raises a zoo of types for unreadable protos
            raise ModelLoadError(f"SavedModel {self.model_dir}: could not be loaded ({exc})") from exc
        if self.signature_name not in loaded.signatures:
            raise ModelLoadError(
                f"SavedModel {self.model_dir}: expected signature {self.signature_name!r} (--signature), "
                f"got {sorted(loaded.signatures) or 'no signatures'}"
            )
        fn = loaded.signatures[self.signature_name]
        args, inputs = fn.structured_input_signature
        if args:
            raise ModelLoadError(f"SavedModel {self.model_dir}: expected keyword inputs in the signature, got {args}")
        outputs = fn.structured_outputs
        if not isinstance(outputs, dict):
            raise ModelLoadError(f"SavedModel {self.model_dir}: expected named outputs, got {type(outputs).__name__}")
        # sorted by name: a signature's dict order changes with PYTHONHASHSEED; tf2onnx's ONNX order is sorted too
        self.input_specs = tuple(_spec(name, inputs[name]) for name in sorted(inputs))
        self.output_specs = tuple(_spec(name, outputs[name]) for name in sorted(outputs))
        self._loaded = loaded  # keeps the variables the concrete function captures alive
        self._fn = fn
        self._tf = tf

    def _infer_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._fn(**{name: self._tf.constant(x) for name, x in inputs.items()})
        return {name: np.asarray(out[name].numpy()) for name in self.output_names}

    def _close_impl(self) -> None:
        self._fn = self._loaded = None


def _spec(name: str, spec: object) -> TensorSpec:
    """A TensorSpec (batch dimension dropped) from a ``tf.TensorSpec``."""
    dims = list(spec.shape)  # type: ignore[attr-defined]
    shape = None if spec.shape.rank is None else tuple(None if d is None else int(d) for d in dims[1:])  # type: ignore[attr-defined]
    return TensorSpec(name, np.dtype(spec.dtype.as_numpy_dtype), shape)  # type: ignore[attr-defined]
