#include "cpu_engine.hpp"

#include <fstream>
#include <sstream>

#include "trt_equiv/errors.hpp"
#include "trt_equiv/half.hpp"

namespace trt_equiv::testing {
namespace {

constexpr const char* kMagic = "trt-equiv-cpu-engine";

class AffineCpuEngine final : public InferenceEngine {
public:
    std::string path;
    TensorDesc in{"x", {}, DType::kFloat32};
    TensorDesc out{"y", {3}, DType::kFloat32};
    BatchLimits limits;
    double scale = 1.0, bias = 0.0, copy_scale = 1.0;
    long long fail_after_calls = -1;
    long long drop_rows = 0;

    std::string describe() const override { return "trt-equiv CPU test engine (affine map) from " + path; }
    TensorDesc input() const override { return in; }
    TensorDesc output() const override { return out; }
    BatchLimits batch_limits() const override { return limits; }

    void prepare(std::int64_t max_rows) override {
        if (max_rows < limits.min || (limits.max && max_rows > limits.max)) {
            throw EngineError("prepare(" + std::to_string(max_rows) + ") outside the engine's batch range");
        }
        prepared_rows_ = max_rows;
    }

    std::int64_t infer(const float* x, std::int64_t rows, float* y) override {
        if (rows < 1 || rows > prepared_rows_) {
            throw EngineError("infer() with " + std::to_string(rows) + " rows, prepared for " +
                              std::to_string(prepared_rows_));
        }
        if (fail_after_calls >= 0 && calls_++ >= fail_after_calls) {
            throw EngineError("CPU test engine: failing on purpose after " + std::to_string(fail_after_calls) +
                              " call(s) (fail_after_calls)");
        }
        const auto elems = static_cast<std::size_t>(shape_elements(in.sample_shape));
        for (std::int64_t i = 0; i < rows; ++i) {
            const float* row = x + static_cast<std::size_t>(i) * elems;
            const auto value = [&](std::size_t k) {
                return in.dtype == DType::kFloat16 ? half_bits_to_float(float_to_half_bits(row[k])) : row[k];
            };
            double sum = 0.0;
            for (std::size_t k = 0; k < elems; ++k) sum += static_cast<double>(value(k));
            float* o = y + static_cast<std::size_t>(i) * 3;
            o[0] = static_cast<float>(scale * sum + bias);
            o[1] = static_cast<float>(copy_scale * static_cast<double>(value(0)));
            o[2] = value(elems - 1);
        }
        return rows - drop_rows;
    }

private:
    std::int64_t prepared_rows_ = 0;
    long long calls_ = 0;
};

}  // namespace

std::unique_ptr<InferenceEngine> load_cpu_engine(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw EngineError("cannot open engine file " + path);
    auto e = std::make_unique<AffineCpuEngine>();
    e->path = path;
    std::string line;
    int line_no = 0;
    bool have_magic = false;
    const auto bad = [&](const std::string& why) {
        return EngineError(path + ":" + std::to_string(line_no) + ": " + why);
    };
    while (std::getline(file, line)) {
        ++line_no;
        if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream words(line);
        std::string key;
        if (!(words >> key)) continue;
        if (!have_magic) {
            int version = 0;
            if (key != kMagic || !(words >> version) || version != 1) {
                throw bad(std::string("not a CPU test engine (expected first line '") + kMagic + " 1')");
            }
            have_magic = true;
            continue;
        }
        const auto number = [&]() {
            double v = 0;
            if (!(words >> v)) throw bad("'" + key + "' needs a number");
            return v;
        };
        if (key == "input_shape") {
            long long d = 0;
            while (words >> d) {
                if (d < 1) throw bad("input_shape dimensions must be >= 1");
                e->in.sample_shape.push_back(d);
            }
        } else if (key == "input_name") {
            words >> e->in.name;
        } else if (key == "output_name") {
            words >> e->out.name;
        } else if (key == "input_dtype") {
            std::string t;
            words >> t;
            if (t == "float16") {
                e->in.dtype = DType::kFloat16;
            } else if (t != "float32") {
                throw bad("input_dtype must be float32 or float16, got '" + t + "'");
            }
        } else if (key == "min_batch") {
            e->limits.min = static_cast<std::int64_t>(number());
        } else if (key == "max_batch") {
            e->limits.max = static_cast<std::int64_t>(number());
        } else if (key == "scale") {
            e->scale = number();
        } else if (key == "bias") {
            e->bias = number();
        } else if (key == "copy_scale") {
            e->copy_scale = number();
        } else if (key == "fail_after_calls") {
            e->fail_after_calls = static_cast<long long>(number());
        } else if (key == "drop_rows") {
            e->drop_rows = static_cast<long long>(number());
        } else {
            throw bad("unknown key '" + key + "'");
        }
    }
    if (!have_magic) throw EngineError(path + ": empty engine file (expected first line '" + std::string(kMagic) + " 1')");
    if (e->in.sample_shape.empty()) throw EngineError(path + ": missing 'input_shape'");
    if (e->limits.min < 1 || (e->limits.max && e->limits.max < e->limits.min)) {
        throw EngineError(path + ": need 1 <= min_batch <= max_batch (or max_batch 0)");
    }
    return e;
}

}  // namespace trt_equiv::testing
