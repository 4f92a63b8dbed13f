"""TensorRT layer: ``build`` (ONNX → serialized engine), ``cache`` (content-keyed engine cache), ``cuda``
(device/pinned memory, streams, events). Nothing heavy is imported here; each module imports TensorRT and
CUDA lazily through ``trt_equiv.runtime``."""
