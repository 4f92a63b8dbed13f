"""trt_equiv: prove a TensorFlow model gives the same answers after conversion to ONNX and TensorRT.

Importing this package imports no heavy runtime; TensorFlow, ONNX Runtime, TensorRT and CUDA are loaded
lazily by the modules that need them (see ``trt_equiv.runtime``).
"""

from __future__ import annotations

__version__ = "0.1.0"
