// The inference-engine interface the runner is generic over.
//
// The same batching, timing and CLI code drives the TensorRT adapter and a CPU test engine, so everything
// except the ~300 lines that touch TensorRT and CUDA is built and tested on machines without a GPU.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trt_equiv/npy.hpp"

namespace trt_equiv {

struct TensorDesc {
    std::string name;
    std::vector<std::int64_t> sample_shape;  // without the batch dimension
    DType dtype = DType::kFloat32;           // what the engine uses; host-side data is always float32
};

struct BatchLimits {
    std::int64_t min = 1;  // smallest batch the engine runs (profile minimum, or a fixed batch)
    std::int64_t max = 0;  // largest batch; 0 means no limit
};

class InferenceEngine {
public:
    virtual ~InferenceEngine() = default;

    /// One line for logs and the timing report, e.g. "TensorRT 10.11.0 engine on NVIDIA H100".
    virtual std::string describe() const = 0;
    virtual TensorDesc input() const = 0;
    virtual BatchLimits batch_limits() const = 0;

    /// Allocate every buffer for batches of up to ``max_rows``, once, before the first infer().
    virtual void prepare(std::int64_t max_rows) = 0;
    /// The output tensor; valid after prepare() (an engine may only know it once shapes are set).
    virtual TensorDesc output() const = 0;

    /// Run ``rows`` samples: ``in`` holds rows * input elements, ``out`` receives rows * output elements,
    /// both float32 in C order. Returns the number of rows the engine produced (the runner checks it).
    virtual std::int64_t infer(const float* in, std::int64_t rows, float* out) = 0;

    /// Device execution time of the last infer() (CUDA events), when the engine can measure it.
    virtual std::optional<double> last_compute_ms() const { return std::nullopt; }
};

}  // namespace trt_equiv
