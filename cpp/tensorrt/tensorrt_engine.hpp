// The TensorRT adapter: a serialized engine behind the InferenceEngine interface.
//
// Uses only the name-based tensor API (getNbIOTensors / getIOTensorName / getTensorIOMode / getTensorShape /
// getTensorDataType, setInputShape, setTensorAddress, enqueueV3), which TensorRT 8.6, 10.x and 11.x share;
// the removed bindings API (getBindingIndex, enqueueV2, executeV2) is never used.
#pragma once

#include <memory>
#include <string>

#include "trt_equiv/engine.hpp"

namespace trt_equiv {

/// Deserialize the engine at ``plan_path`` on CUDA device 0. EngineError (exit 4) when there is no usable
/// device, the file is missing or does not deserialize, or the engine's I/O is not one float32/float16
/// input with a batch-first shape and one float32/float16 output.
std::unique_ptr<InferenceEngine> load_tensorrt_engine(const std::string& plan_path);

}  // namespace trt_equiv
