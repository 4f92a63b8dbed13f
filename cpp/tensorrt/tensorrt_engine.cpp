#include "tensorrt_engine.hpp"

// The runtime header is all a runner needs (NvInfer.h adds the builder and network API).
#include <NvInferRuntime.h>
#include <NvInferVersion.h>

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
#include "trt_equiv/half.hpp"

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
        default: return "DataType(" + std::to_string(static_cast<int>(t)) + ")";
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
    std::vector<std::int64_t> engine_shape;  // as the engine declares it, -1 for dynamic
};

class TensorRTEngine final : public InferenceEngine {
public:
    explicit TensorRTEngine(const std::string& plan_path) : path_(plan_path) {
        int devices = 0;
        const cudaError_t err = cudaGetDeviceCount(&devices);
        if (err != cudaSuccess || devices < 1) {
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

    TensorDesc input() const override { return desc(in_, in_sample_); }
    TensorDesc output() const override { return desc(out_, out_sample_); }
    BatchLimits batch_limits() const override { return limits_; }

    void prepare(std::int64_t max_rows) override {
        set_batch(max_rows);
        const std::vector<std::int64_t> out_dims = dims_vector(context_->getTensorShape(out_.name.c_str()));
        out_sample_.assign(out_dims.begin() + 1, out_dims.end());
        in_elems_ = static_cast<std::size_t>(shape_elements(in_sample_));
        out_elems_ = static_cast<std::size_t>(shape_elements(out_sample_));
        const std::size_t in_bytes = static_cast<std::size_t>(max_rows) * in_elems_ * type_size(in_.type);
        const std::size_t out_bytes = static_cast<std::size_t>(max_rows) * out_elems_ * type_size(out_.type);
        d_in_ = cuda::device_alloc(in_bytes);
        d_out_ = cuda::device_alloc(out_bytes);
        h_in_ = cuda::pinned_alloc(in_bytes);
        h_out_ = cuda::pinned_alloc(out_bytes);
        // Addresses never change after this: the buffers are sized for the largest batch.
        if (!context_->setTensorAddress(in_.name.c_str(), d_in_.get()) ||
            !context_->setTensorAddress(out_.name.c_str(), d_out_.get())) {
            throw EngineError("setTensorAddress failed (see the TensorRT messages above)");
        }
        prepared_rows_ = max_rows;
    }

    std::int64_t infer(const float* x, std::int64_t rows, float* y) override {
        if (rows < 1 || rows > prepared_rows_) {
            throw InternalError("infer() with " + std::to_string(rows) + " rows, buffers sized for " +
                                std::to_string(prepared_rows_));
        }
        const std::int64_t out_rows = set_batch(rows);
        const std::size_t in_count = static_cast<std::size_t>(rows) * in_elems_;
        const std::size_t out_count = static_cast<std::size_t>(rows) * out_elems_;
        if (in_.type == nv::DataType::kHALF) {
            floats_to_halves(x, static_cast<std::uint16_t*>(h_in_.get()), in_count);
        } else {
            std::memcpy(h_in_.get(), x, in_count * sizeof(float));
        }
        const std::size_t in_bytes = in_count * type_size(in_.type);
        const std::size_t out_bytes = out_count * type_size(out_.type);
        TRT_EQUIV_CUDA_CHECK(cudaMemcpyAsync(d_in_.get(), h_in_.get(), in_bytes, cudaMemcpyHostToDevice, stream_.get()));
        TRT_EQUIV_CUDA_CHECK(cudaEventRecord(start_.get(), stream_.get()));
        if (!context_->enqueueV3(stream_.get())) {
            throw EngineError("enqueueV3 failed for a batch of " + std::to_string(rows) +
                              " (see the TensorRT messages above)");
        }
        TRT_EQUIV_CUDA_CHECK(cudaEventRecord(stop_.get(), stream_.get()));
        TRT_EQUIV_CUDA_CHECK(cudaMemcpyAsync(h_out_.get(), d_out_.get(), out_bytes, cudaMemcpyDeviceToHost, stream_.get()));
        TRT_EQUIV_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        float elapsed = 0.0f;
        TRT_EQUIV_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start_.get(), stop_.get()));
        last_compute_ms_ = static_cast<double>(elapsed);
        if (out_.type == nv::DataType::kHALF) {
            halves_to_floats(static_cast<const std::uint16_t*>(h_out_.get()), y, out_count);
        } else {
            std::memcpy(y, h_out_.get(), out_count * sizeof(float));
        }
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

    static std::size_t type_size(nv::DataType t) { return t == nv::DataType::kHALF ? 2 : 4; }

    static TensorDesc desc(const IoTensor& t, const std::vector<std::int64_t>& sample) {
        return {t.name, sample, t.type == nv::DataType::kHALF ? DType::kFloat16 : DType::kFloat32};
    }

    void discover_io() {
        std::vector<IoTensor> inputs, outputs;
        std::string listing;
        for (std::int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            IoTensor t;
            t.name = engine_->getIOTensorName(i);
            t.type = engine_->getTensorDataType(t.name.c_str());
            t.engine_shape = dims_vector(engine_->getTensorShape(t.name.c_str()));
            const bool is_input = engine_->getTensorIOMode(t.name.c_str()) == nv::TensorIOMode::kINPUT;
            listing += std::string(listing.empty() ? "" : ", ") + (is_input ? "input '" : "output '") + t.name + "' " +
                       data_type_name(t.type) + format_shape(t.engine_shape);
            (is_input ? inputs : outputs).push_back(t);
        }
        if (inputs.size() != 1 || outputs.size() != 1) {
            throw EngineError("this runner serves engines with exactly one input and one output; " + path_ + " has " +
                              listing);
        }
        in_ = inputs.front();
        out_ = outputs.front();
        for (const IoTensor* t : {&in_, &out_}) {
            if (t->type != nv::DataType::kFLOAT && t->type != nv::DataType::kHALF) {
                throw EngineError("tensor '" + t->name + "' has type " + data_type_name(t->type) +
                                  "; the runner supports FLOAT and HALF I/O (" + listing + ")");
            }
            if (engine_->getTensorFormat(t->name.c_str()) != nv::TensorFormat::kLINEAR) {
                throw EngineError("tensor '" + t->name + "' uses a vectorized format; build the engine with linear I/O");
            }
            if (t->engine_shape.empty()) throw EngineError("tensor '" + t->name + "' has no batch dimension");
        }
        in_sample_.assign(in_.engine_shape.begin() + 1, in_.engine_shape.end());
        for (const std::int64_t d : in_sample_) {
            if (d < 1) {
                throw EngineError("input '" + in_.name + "' " + format_shape(in_.engine_shape) +
                                  " has a dynamic non-batch dimension; only the batch (first) dimension may be dynamic");
            }
        }
        if (in_.engine_shape.front() >= 1) {
            limits_ = {in_.engine_shape.front(), in_.engine_shape.front()};  // fixed batch
        } else {
            if (engine_->getNbOptimizationProfiles() < 1) throw EngineError("dynamic batch but no optimization profile");
            // Profile 0 is the one a fresh execution context uses.
            const auto lo = dims_vector(engine_->getProfileShape(in_.name.c_str(), 0, nv::OptProfileSelector::kMIN));
            const auto hi = dims_vector(engine_->getProfileShape(in_.name.c_str(), 0, nv::OptProfileSelector::kMAX));
            if (lo.empty() || hi.empty() || lo.front() < 1 || hi.front() < lo.front()) {
                throw EngineError("cannot read the batch range of profile 0 for input '" + in_.name + "'");
            }
            limits_ = {lo.front(), hi.front()};
        }
    }

    /// Set the input batch; returns the output's batch, which must follow it.
    std::int64_t set_batch(std::int64_t rows) {
        if (rows != current_rows_) {
            nv::Dims dims = engine_->getTensorShape(in_.name.c_str());
            dims.d[0] = static_cast<std::remove_reference_t<decltype(dims.d[0])>>(rows);  // int32 (8.6) or int64
            if (!context_->setInputShape(in_.name.c_str(), dims)) {
                throw EngineError("setInputShape(" + in_.name + ", batch " + std::to_string(rows) +
                                  ") failed: outside the engine's batch range [" + std::to_string(limits_.min) + ", " +
                                  std::to_string(limits_.max) + "]?");
            }
            current_rows_ = rows;
        }
        const auto out_dims = dims_vector(context_->getTensorShape(out_.name.c_str()));
        for (const std::int64_t d : out_dims) {
            if (d < 0) {
                throw EngineError("output '" + out_.name + "' shape " + format_shape(out_dims) +
                                  " is not fully determined by the input shape");
            }
        }
        if (out_dims.front() != rows) {
            throw EngineError("output '" + out_.name + "' batch " + std::to_string(out_dims.front()) +
                              " does not follow the input batch " + std::to_string(rows));
        }
        return out_dims.front();
    }

    std::string path_;
    std::string device_;
    // Declaration order is destruction order reversed: context before engine before runtime, and the logger
    // outlives all three (TensorRT keeps a reference to it).
    StderrLogger logger_;
    std::unique_ptr<nv::IRuntime> runtime_;       // TensorRT 8+ objects are destroyed with delete
    std::unique_ptr<nv::ICudaEngine> engine_;
    std::unique_ptr<nv::IExecutionContext> context_;
    cuda::StreamPtr stream_;
    cuda::EventPtr start_, stop_;
    cuda::DevicePtr d_in_, d_out_;
    cuda::PinnedPtr h_in_, h_out_;

    IoTensor in_, out_;
    std::vector<std::int64_t> in_sample_, out_sample_;
    std::size_t in_elems_ = 0, out_elems_ = 0;
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
