"""TensorFlow SavedModel backend: the reference every conversion is compared against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trt_equiv.backends.base import Backend
from trt_equiv.errors import ModelLoadError
from trt_equiv.runtime import require


def check_savedmodel_dir(path: str | Path) -> Path:
    """Fail early, before TensorFlow is imported, when ``path`` cannot be a SavedModel."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"SavedModel: expected a SavedModel directory, got a path that does not exist: {path}")
    if not path.is_dir() or not any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelLoadError(f"SavedModel: expected a directory containing saved_model.pb, got {path} without one")
    return path


class SavedModelBackend(Backend):
    """Runs a TensorFlow 2.x / Keras 3 SavedModel through one of its signatures.

    The single float input and output are found from the signature; pass ``input_name`` /
    ``output_name`` when the signature has several.
    """

    name = "savedmodel"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        signature: str = "serving_default",
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        super().__init__("fp32", None)
        self.model_dir = check_savedmodel_dir(model_dir)
        self.signature_name = signature
        self.input_name = input_name
        self.output_name = output_name

    def _open_impl(self) -> None:
        tf = require("tensorflow")
        try:
            loaded = tf.saved_model.load(str(self.model_dir))
        except Exception as exc:  # TF raises a zoo of types for unreadable protos
            raise ModelLoadError(f"SavedModel {self.model_dir}: could not be loaded ({exc})") from exc
        if self.signature_name not in loaded.signatures:
            raise ModelLoadError(
                f"SavedModel {self.model_dir}: expected signature {self.signature_name!r}, "
                f"got {sorted(loaded.signatures) or 'no signatures'}"
            )
        fn = loaded.signatures[self.signature_name]
        inputs = fn.structured_input_signature[1]
        outputs = fn.structured_outputs
        self.input_name = _pick(self.input_name, inputs, "input", self.model_dir)
        self.output_name = _pick(self.output_name, outputs, "output", self.model_dir)
        shape = inputs[self.input_name].shape
        self.sample_shape = tuple(None if d is None else int(d) for d in shape[1:])
        self._loaded = loaded  # keeps the variables the concrete function captures alive
        self._fn = fn
        self._tf = tf

    def _infer_impl(self, x: np.ndarray) -> np.ndarray:
        assert self.input_name is not None and self.output_name is not None  # set by _open_impl
        out = self._fn(**{self.input_name: self._tf.constant(x)})[self.output_name]
        return np.asarray(out.numpy(), dtype=np.float32)

    def _close_impl(self) -> None:
        self._fn = self._loaded = None


def _pick(requested: str | None, specs: dict[str, object], kind: str, where: Path) -> str:
    """The requested tensor name, or the only one there is."""
    names = sorted(specs)
    if requested is not None:
        if requested not in specs:
            raise ModelLoadError(f"SavedModel {where}: expected {kind} {requested!r}, got {names}")
        return requested
    if len(names) != 1:
        raise ModelLoadError(f"SavedModel {where}: expected a single {kind}, got {names}; pass {kind}_name")
    return names[0]
