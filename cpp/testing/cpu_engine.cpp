#include "cpu_engine.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

#include "trt_equiv/errors.hpp"
#include "trt_equiv/half.hpp"

namespace trt_equiv::testing {
namespace {

constexpr const char* kMagic = "trt-equiv-cpu-engine";

double element(DType dtype, const unsigned char* p) {
    switch (dtype) {
        case DType::kFloat32: {
            float v = 0;
            std::memcpy(&v, p, sizeof v);
            return static_cast<double>(v);
        }
        case DType::kFloat16: {
            std::uint16_t h = 0;
            std::memcpy(&h, p, sizeof h);
            return static_cast<double>(half_bits_to_float(h));
        }
        case DType::kInt32: {
            std::int32_t v = 0;
            std::memcpy(&v, p, sizeof v);
            return static_cast<double>(v);
        }
        case DType::kInt64: {
            std::int64_t v = 0;
            std::memcpy(&v, p, sizeof v);
            return static_cast<double>(v);
        }
        case DType::kBool: return *p ? 1.0 : 0.0;
    }
    return 0.0;
}

class AffineCpuEngine final : public InferenceEngine {
public:
    std::string path;
    std::vector<TensorDesc> ins;
    TensorDesc out{"y", {3}, DType::kFloat32};
    std::string out2_name;  // empty: no second output
    BatchLimits limits;
    double scale = 1.0, bias = 0.0, copy_scale = 1.0;
    long long fail_after_calls = -1;
    long long drop_rows = 0;

    std::string describe() const override { return "trt-equiv CPU test engine (affine map) from " + path; }
    std::vector<TensorDesc> inputs() const override { return ins; }
    std::vector<TensorDesc> outputs() const override {
        std::vector<TensorDesc> o = {out};
        if (!out2_name.empty()) o.push_back({out2_name, {static_cast<std::int64_t>(ins.size())}, DType::kFloat32});
        return o;
    }
    BatchLimits batch_limits() const override { return limits; }

    void prepare(const std::vector<std::vector<std::int64_t>>& sample_shapes, std::int64_t max_rows) override {
        if (max_rows < limits.min || (limits.max && max_rows > limits.max)) {
            throw EngineError("prepare(" + std::to_string(max_rows) + ") outside the engine's batch range");
        }
        if (sample_shapes.size() != ins.size()) throw EngineError("prepare() with the wrong number of inputs");
        for (std::size_t k = 0; k < ins.size(); ++k) {
            const auto& want = ins[k].sample_shape;
            bool ok = sample_shapes[k].size() == want.size();
            for (std::size_t d = 0; ok && d < want.size(); ++d) ok = want[d] < 0 || want[d] == sample_shapes[k][d];
            if (!ok) throw EngineError("prepare(): input '" + ins[k].name + "' shape does not fit the engine");
            const std::int64_t elems = shape_elements(sample_shapes[k]);
            if (elems < 1) throw EngineError("prepare(): input '" + ins[k].name + "' has no elements per sample");
            elems_.push_back(static_cast<std::size_t>(elems));
        }
        prepared_rows_ = max_rows;
    }

    std::int64_t infer(const std::vector<const void*>& in, std::int64_t rows, const std::vector<void*>& y) override {
        if (rows < 1 || rows > prepared_rows_) {
            throw EngineError("infer() with " + std::to_string(rows) + " rows, prepared for " +
                              std::to_string(prepared_rows_));
        }
        if (in.size() != ins.size() || y.size() != outputs().size()) throw EngineError("infer(): wrong tensor count");
        if (fail_after_calls >= 0 && calls_++ >= fail_after_calls) {
            throw EngineError("CPU test engine: failing on purpose after " + std::to_string(fail_after_calls) +
                              " call(s) (fail_after_calls)");
        }
        for (std::int64_t i = 0; i < rows; ++i) {
            double sum = 0.0, first = 0.0, last = 0.0;
            std::vector<double> per_input(ins.size(), 0.0);
            for (std::size_t k = 0; k < ins.size(); ++k) {
                const std::size_t item = dtype_size(ins[k].dtype);
                const auto* row = static_cast<const unsigned char*>(in[k]) + static_cast<std::size_t>(i) * elems_[k] * item;
                for (std::size_t e = 0; e < elems_[k]; ++e) {
                    const double v = element(ins[k].dtype, row + e * item);
                    per_input[k] += v;
                    if (k == 0 && e == 0) first = v;
                    last = v;
                }
                sum += per_input[k];
            }
            float* o = static_cast<float*>(y[0]) + static_cast<std::size_t>(i) * 3;
            o[0] = static_cast<float>(scale * sum + bias);
            o[1] = static_cast<float>(copy_scale * first);
            o[2] = static_cast<float>(last);
            if (!out2_name.empty()) {
                float* o2 = static_cast<float*>(y[1]) + static_cast<std::size_t>(i) * ins.size();
                for (std::size_t k = 0; k < ins.size(); ++k) o2[k] = static_cast<float>(per_input[k]);
            }
        }
        return rows - drop_rows;
    }

private:
    std::vector<std::size_t> elems_;
    std::int64_t prepared_rows_ = 0;
    long long calls_ = 0;
};

DType parse_dtype(const std::string& t, bool& ok) {
    ok = true;
    if (t == "float32") return DType::kFloat32;
    if (t == "float16") return DType::kFloat16;
    if (t == "int32") return DType::kInt32;
    if (t == "int64") return DType::kInt64;
    if (t == "bool") return DType::kBool;
    ok = false;
    return DType::kFloat32;
}

}  // namespace

std::unique_ptr<InferenceEngine> load_cpu_engine(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw EngineError("cannot open engine file " + path);
    auto e = std::make_unique<AffineCpuEngine>();
    e->path = path;
    TensorDesc single{"x", {}, DType::kFloat32};
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
                single.sample_shape.push_back(d);
            }
        } else if (key == "input_name") {
            words >> single.name;
        } else if (key == "output_name") {
            words >> e->out.name;
        } else if (key == "output2") {
            words >> e->out2_name;
        } else if (key == "input_dtype") {
            std::string t;
            words >> t;
            bool ok = false;
            single.dtype = parse_dtype(t, ok);
            if (!ok || (t != "float32" && t != "float16")) throw bad("input_dtype must be float32 or float16, got '" + t + "'");
        } else if (key == "input") {
            TensorDesc t;
            std::string type;
            bool ok = false;
            if (!(words >> t.name >> type)) throw bad("input needs NAME DTYPE DIM...");
            t.dtype = parse_dtype(type, ok);
            if (!ok) throw bad("input dtype must be float32, float16, int32, int64 or bool, got '" + type + "'");
            long long d = 0;
            while (words >> d) {
                if (d < 1 && d != -1) throw bad("input dimensions must be >= 1 or -1 (dynamic)");
                t.sample_shape.push_back(d);
            }
            if (t.sample_shape.empty()) throw bad("input '" + t.name + "' needs at least one dimension");
            e->ins.push_back(t);
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
    if (!single.sample_shape.empty()) {
        if (!e->ins.empty()) throw EngineError(path + ": give either 'input_shape' or 'input' lines, not both");
        e->ins.push_back(single);
    }
    if (e->ins.empty()) throw EngineError(path + ": missing 'input_shape' (or 'input' lines)");
    if (e->limits.min < 1 || (e->limits.max && e->limits.max < e->limits.min)) {
        throw EngineError(path + ": need 1 <= min_batch <= max_batch (or max_batch 0)");
    }
    return e;
}

}  // namespace trt_equiv::testing
