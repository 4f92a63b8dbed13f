#include "tensorrt_engine.hpp"

// The runtime header is all a runner needs (NvInfer.h adds the builder and network API).
#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <type_traits>
#include <vector>

#include "cuda_util.hpp"
#include "trt_equiv/errors.hpp"

namespace trt_equiv {
namespace {

namespace nv = nvinfer1;

/// Forwards TensorRT's warnings and errors to stderr (info/verbose would drown the runner's own output).
class StderrLogger final : public nv::ILogger {
public:
    void log(Severity severity, const char* msg) noexcept override {
        if (severity > Severity::kWARNING) return;
        const char* level = severity == Severity::kWARNING ? "WARNING"
                            : severity == Severity::kERROR ? "ERROR"
                                                           : "INTERNAL_ERROR";
        std::cerr << "[TensorRT] " << level << ": " << msg << "\n";
    }
};

std::string version_string(std::int32_t v) {
    // getInferLibVersion() is major*1000 + minor*100 + patch up to 8.x, major*10000 + minor*100 + patch from 10.
    const std::int32_t major_scale = v >= 100000 ? 10000 : 1000;
    return std::to_string(v / major_scale) + "." + std::to_string((v % major_scale) / 100) + "." +
           std::to_string(v % 100);
}

const std::string kCompiledVersion = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) +
                                     "." + std::to_string(NV_TENSORRT_PATCH);

std::string data_type_name(nv::DataType t) {
    switch (t) {
        case nv::DataType::kFLOAT: return "FLOAT";
        case nv::DataType::kHALF: return "HALF";
        case nv::DataType::kINT8: return "INT8";
        case nv::DataType::kINT32: return "INT32";
        case nv::DataType::kBOOL: return "BOOL";
        case nv::DataType::kUINT8: return "UINT8";
#if NV_TENSORRT_MAJOR >= 10
        case nv::DataType::kINT64: return "INT64";
#endif
        default: return "DataType(" + std::to_string(static_cast<int>(t)) + ")";
    }
}

/// The runner's element type for an engine tensor type; false for types it cannot serve (INT8, BF16, FP8, ...).
bool runner_dtype(nv::DataType t, DType& out) {
    switch (t) {
        case nv::DataType::kFLOAT: out = DType::kFloat32; return true;
        case nv::DataType::kHALF: out = DType::kFloat16; return true;
        case nv::DataType::kINT32: out = DType::kInt32; return true;
        case nv::DataType::kBOOL: out = DType::kBool; return true;
#if NV_TENSORRT_MAJOR >= 10
        case nv::DataType::kINT64: out = DType::kInt64; return true;
#endif
        default: return false;
    }
}

std::vector<std::int64_t> dims_vector(const nv::Dims& d) {
    // Dims holds int32_t (8.6) or int64_t (10+) extents; either widens losslessly.
    std::vector<std::int64_t> out;
    for (std::int32_t i = 0; i < d.nbDims; ++i) out.push_back(static_cast<std::int64_t>(d.d[i]));
    return out;
}

struct IoTensor {
    std::string name;
    nv::DataType type = nv::DataType::kFLOAT;
    DType dtype = DType::kFloat32;
    std::vector<std::int64_t> engine_shape;  // as the engine declares it, -1 for dynamic
    std::vector<std::int64_t> lo, hi;        // profile 0 min/max shapes (inputs with dynamic dimensions)
    std::vector<std::int64_t> sample;        // per-sample shape in use (after prepare)
    std::size_t row_bytes = 0;               // bytes per sample (after prepare)
    cuda::DevicePtr device;
    cuda::PinnedPtr pinned;
};

class TensorRTEngine final : public InferenceEngine {
public:
    explicit TensorRTEngine(const std::string& plan_path) : path_(plan_path) {
        int devices = 0;
        const cudaError_t err = cudaGetDeviceCount(&devices);
        if (err != cudaSuccess || devices < 1) {
            // Never go on to deserialize after a failed CUDA initialisation: some runtimes crash there.
            throw EngineError(std::string("no usable CUDA device: ") +
                              (err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount returned 0"));
        }
        TRT_EQUIV_CUDA_CHECK(cudaSetDevice(0));
        cudaDeviceProp props{};
        TRT_EQUIV_CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
        device_ = std::string(props.name) + " (sm_" + std::to_string(props.major) + std::to_string(props.minor) + ")";

        const std::vector<char> plan = read_plan(plan_path);
        runtime_.reset(nv::createInferRuntime(logger_));
        if (!runtime_) throw EngineError("createInferRuntime failed (see the TensorRT messages above)");
        engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
        if (!engine_) {
            throw EngineError("could not deserialize " + plan_path + " (" + std::to_string(plan.size()) +
                              " bytes); see the TensorRT messages above. An engine loads only with the TensorRT "
                              "version it was built with (this runner: library " +
                              version_string(getInferLibVersion()) + ", headers " + kCompiledVersion +
                              ") on a compatible GPU (" + device_ + ")");
        }
        discover_io();
        context_.reset(engine_->createExecutionContext());
        if (!context_) throw EngineError("createExecutionContext failed (out of GPU memory? see the TensorRT messages above)");
        stream_ = cuda::make_stream();
        start_ = cuda::make_event();
        stop_ = cuda::make_event();
    }

    std::string describe() const override {
        return "TensorRT " + version_string(getInferLibVersion()) + " engine " + path_ + " on " + device_;
    }

    std::vector<TensorDesc> inputs() const override {
        std::vector<TensorDesc> out;
        for (const auto& t : in_) out.push_back({t.name, {t.engine_shape.begin() + 1, t.engine_shape.end()}, t.dtype});
        return out;
    }

    std::vector<TensorDesc> outputs() const override {
        std::vector<TensorDesc> out;
        for (const auto& t : out_) {
            out.push_back({t.name, prepared_rows_ ? t.sample : std::vector<std::int64_t>(t.engine_shape.begin() + 1,
                                                                                         t.engine_shape.end()),
                           t.dtype});
        }
        return out;
    }

    BatchLimits batch_limits() const override { return limits_; }

    void prepare(const std::vector<std::vector<std::int64_t>>& sample_shapes, std::int64_t max_rows) override {
        if (sample_shapes.size() != in_.size()) throw InternalError("prepare() with the wrong number of input shapes");
        for (std::size_t i = 0; i < in_.size(); ++i) in_[i].sample = sample_shapes[i];
        set_shapes(max_rows);  // every buffer is sized for the largest batch, with these per-sample shapes
        for (auto& t : out_) {
            const auto dims = dims_vector(context_->getTensorShape(t.name.c_str()));
            t.sample.assign(dims.begin() + 1, dims.end());
        }
        for (auto* group : {&in_, &out_}) {
            for (auto& t : *group) {
                t.row_bytes = static_cast<std::size_t>(shape_elements(t.sample)) * dtype_size(t.dtype);
                const std::size_t bytes = std::max<std::size_t>(static_cast<std::size_t>(max_rows) * t.row_bytes, 1);
                t.device = cuda::device_alloc(bytes);
                t.pinned = cuda::pinned_alloc(bytes);
                // Addresses never change after this: the buffers are sized for the largest batch.
                if (!context_->setTensorAddress(t.name.c_str(), t.device.get())) {
                    throw EngineError("setTensorAddress('" + t.name + "') failed (see the TensorRT messages above)");
                }
            }
        }
        prepared_rows_ = max_rows;
    }

    std::int64_t infer(const std::vector<const void*>& in, std::int64_t rows, const std::vector<void*>& out) override {
        if (rows < 1 || rows > prepared_rows_ || in.size() != in_.size() || out.size() != out_.size()) {
            throw InternalError("infer() with " + std::to_string(rows) + " rows / " + std::to_string(in.size()) +
                                " inputs, buffers sized for " + std::to_string(prepared_rows_) + " / " +
                                std::to_string(in_.size()));
        }
        const std::int64_t out_rows = set_shapes(rows);
        const auto r = static_cast<std::size_t>(rows);
        for (std::size_t i = 0; i < in_.size(); ++i) {
            auto& t = in_[i];
            std::memcpy(t.pinned.get(), in[i], r * t.row_bytes);
            TRT_EQUIV_CUDA_CHECK(
                cudaMemcpyAsync(t.device.get(), t.pinned.get(), r * t.row_bytes, cudaMemcpyHostToDevice, stream_.get()));
        }
        TRT_EQUIV_CUDA_CHECK(cudaEventRecord(start_.get(), stream_.get()));
        if (!context_->enqueueV3(stream_.get())) {
            throw EngineError("enqueueV3 failed for a batch of " + std::to_string(rows) +
                              " (see the TensorRT messages above)");
        }
        TRT_EQUIV_CUDA_CHECK(cudaEventRecord(stop_.get(), stream_.get()));
        for (auto& t : out_) {
            TRT_EQUIV_CUDA_CHECK(
                cudaMemcpyAsync(t.pinned.get(), t.device.get(), r * t.row_bytes, cudaMemcpyDeviceToHost, stream_.get()));
        }
        TRT_EQUIV_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        float elapsed = 0.0f;
        TRT_EQUIV_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start_.get(), stop_.get()));
        last_compute_ms_ = static_cast<double>(elapsed);
        for (std::size_t j = 0; j < out_.size(); ++j) std::memcpy(out[j], out_[j].pinned.get(), r * out_[j].row_bytes);
        return out_rows;
    }

    std::optional<double> last_compute_ms() const override { return last_compute_ms_; }

private:
    static std::vector<char> read_plan(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw EngineError("cannot open engine file " + path);
        std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in.bad()) throw EngineError("read error on engine file " + path);
        if (bytes.empty()) throw EngineError("engine file " + path + " is empty");
        return bytes;
    }

    void discover_io() {
        std::string listing;
        for (std::int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            IoTensor t;
            t.name = engine_->getIOTensorName(i);
            t.type = engine_->getTensorDataType(t.name.c_str());
            t.engine_shape = dims_vector(engine_->getTensorShape(t.name.c_str()));
            const bool is_input = engine_->getTensorIOMode(t.name.c_str()) == nv::TensorIOMode::kINPUT;
            listing += std::string(listing.empty() ? "" : ", ") + (is_input ? "input '" : "output '") + t.name + "' " +
                       data_type_name(t.type) + format_shape(t.engine_shape);
            (is_input ? in_ : out_).push_back(std::move(t));
        }
        if (in_.empty() || out_.empty()) {
            throw EngineError("this runner serves engines with at least one input and one output; " + path_ +
                              " has " + listing);
        }
        limits_ = {1, 0};
        for (auto* group : {&in_, &out_}) {
            for (auto& t : *group) {
                if (!runner_dtype(t.type, t.dtype)) {
                    throw EngineError("tensor '" + t.name + "' has type " + data_type_name(t.type) +
                                      "; the runner supports FLOAT, HALF, INT32, INT64 and BOOL I/O (" + listing + ")");
                }
                if (engine_->getTensorFormat(t.name.c_str()) != nv::TensorFormat::kLINEAR) {
                    throw EngineError("tensor '" + t.name + "' uses a vectorized format; build the engine with linear I/O");
                }
                if (t.engine_shape.empty()) throw EngineError("tensor '" + t.name + "' has no batch dimension");
            }
        }
        bool first = true;
        for (auto& t : in_) {
            BatchLimits b;
            if (t.engine_shape.front() >= 1 && std::none_of(t.engine_shape.begin(), t.engine_shape.end(),
                                                             [](std::int64_t d) { return d < 0; })) {
                b = {t.engine_shape.front(), t.engine_shape.front()};  // fully fixed shape
                t.lo = t.hi = t.engine_shape;
            } else {
                if (engine_->getNbOptimizationProfiles() < 1) throw EngineError("dynamic input but no optimization profile");
                // Profile 0 is the one a fresh execution context uses.
                t.lo = dims_vector(engine_->getProfileShape(t.name.c_str(), 0, nv::OptProfileSelector::kMIN));
                t.hi = dims_vector(engine_->getProfileShape(t.name.c_str(), 0, nv::OptProfileSelector::kMAX));
                if (t.lo.size() != t.engine_shape.size() || t.hi.size() != t.lo.size() || t.lo.front() < 1 ||
                    t.hi.front() < t.lo.front()) {
                    throw EngineError("cannot read the profile 0 range of input '" + t.name + "'");
                }
                b = {t.lo.front(), t.hi.front()};
            }
            limits_.min = first ? b.min : std::max(limits_.min, b.min);
            limits_.max = first ? b.max : std::min(limits_.max, b.max);
            first = false;
        }
        if (limits_.max < limits_.min) throw EngineError("the inputs' batch ranges do not overlap (" + listing + ")");
    }

    /// Set every input's shape for a batch of ``rows``; returns the outputs' batch, which must follow it.
    std::int64_t set_shapes(std::int64_t rows) {
        if (rows != current_rows_) {
            for (const auto& t : in_) {
                std::vector<std::int64_t> want = {rows};
                want.insert(want.end(), t.sample.begin(), t.sample.end());
                for (std::size_t d = 0; d < want.size(); ++d) {
                    if (want[d] < t.lo[d] || want[d] > t.hi[d]) {
                        throw InputError("input '" + t.name + "' shape " + format_shape(want) +
                                         " is outside the engine profile " + format_shape(t.lo) + " .. " +
                                         format_shape(t.hi));
                    }
                }
                nv::Dims dims = engine_->getTensorShape(t.name.c_str());
                for (std::size_t d = 0; d < want.size(); ++d) {
                    dims.d[d] = static_cast<std::remove_reference_t<decltype(dims.d[0])>>(want[d]);  // int32 (8.6) or int64
                }
                if (!context_->setInputShape(t.name.c_str(), dims)) {
                    throw EngineError("setInputShape(" + t.name + ", " + format_shape(want) +
                                      ") failed (see the TensorRT messages above)");
                }
            }
            current_rows_ = rows;
        }
        for (const auto& t : out_) {
            const auto out_dims = dims_vector(context_->getTensorShape(t.name.c_str()));
            for (const std::int64_t d : out_dims) {
                if (d < 0) {
                    throw EngineError("output '" + t.name + "' shape " + format_shape(out_dims) +
                                      " is not determined by the input shapes (a data-dependent size)");
                }
            }
            if (out_dims.front() != rows) {
                throw EngineError("output '" + t.name + "' batch " + std::to_string(out_dims.front()) +
                                  " does not follow the input batch " + std::to_string(rows));
            }
        }
        return rows;
    }

    std::string path_;
    std::string device_;
    // Declaration order is destruction order reversed: context before engine before runtime, and the logger
    // outlives all three (TensorRT keeps a reference to it). Device buffers (in the IoTensors) go first.
    StderrLogger logger_;
    std::unique_ptr<nv::IRuntime> runtime_;       // TensorRT 8+ objects are destroyed with delete
    std::unique_ptr<nv::ICudaEngine> engine_;
    std::unique_ptr<nv::IExecutionContext> context_;
    cuda::StreamPtr stream_;
    cuda::EventPtr start_, stop_;
    std::vector<IoTensor> in_, out_;
    BatchLimits limits_;
    std::int64_t prepared_rows_ = 0;
    std::int64_t current_rows_ = -1;
    std::optional<double> last_compute_ms_;
};

}  // namespace

std::unique_ptr<InferenceEngine> load_tensorrt_engine(const std::string& plan_path) {
    return std::make_unique<TensorRTEngine>(plan_path);
}

}  // namespace trt_equiv
