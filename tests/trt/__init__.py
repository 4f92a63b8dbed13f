"""Tests of the TensorRT layer: builder, engine cache, CUDA memory and the Python runner."""
