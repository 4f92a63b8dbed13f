// The inference-engine interface the runner is generic over.
//
// The same batching, timing and CLI code drives the TensorRT adapter and a CPU test engine, so everything
// except the few hundred lines that touch TensorRT and CUDA is built and tested on machines without a GPU.
// Tensors are identified by name; an engine has one or more inputs and one or more outputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trt_equiv/npy.hpp"

namespace trt_equiv {

struct TensorDesc {
    std::string name;
    std::vector<std::int64_t> sample_shape;  // without the batch dimension; -1 where the engine lets it vary
    DType dtype = DType::kFloat32;           // the engine's element type; the runner converts host data to it
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
    /// Every input, in the engine's order.
    virtual std::vector<TensorDesc> inputs() const = 0;
    virtual BatchLimits batch_limits() const = 0;

    /// Fix every input's per-sample shape (``sample_shapes[i]`` for ``inputs()[i]``, dynamic dimensions resolved)
    /// and allocate every buffer for batches of up to ``max_rows``, once, before the first infer().
    virtual void prepare(const std::vector<std::vector<std::int64_t>>& sample_shapes, std::int64_t max_rows) = 0;
    /// Every output, in the engine's order. Before prepare() a shape may hold -1 (known once input shapes are
    /// set); after it, the concrete per-sample shapes.
    virtual std::vector<TensorDesc> outputs() const = 0;

    /// Run ``rows`` samples: ``in[i]`` holds rows * elements of input i, ``out[j]`` receives rows * elements of
    /// output j, each in its tensor's dtype, C order. Returns the number of rows the engine produced (checked).
    virtual std::int64_t infer(const std::vector<const void*>& in, std::int64_t rows, const std::vector<void*>& out) = 0;

    /// Device execution time of the last infer() (CUDA events), when the engine can measure it.
    virtual std::optional<double> last_compute_ms() const { return std::nullopt; }
};

}  // namespace trt_equiv
