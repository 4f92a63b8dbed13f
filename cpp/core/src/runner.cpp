#include "trt_equiv/runner.hpp"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "trt_equiv/errors.hpp"
#include "trt_equiv/npy.hpp"
#include "trt_equiv/timing.hpp"

namespace trt_equiv {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void check_sample_shape(const std::vector<std::int64_t>& input_shape, const TensorDesc& engine_input) {
    const std::vector<std::int64_t> sample(input_shape.begin() + 1, input_shape.end());
    if (sample == engine_input.sample_shape) return;
    std::string msg = "input per-sample shape " + format_shape(sample) + " (array shape " +
                      format_shape(input_shape) + ") does not match the engine input '" + engine_input.name +
                      "' per-sample shape " + format_shape(engine_input.sample_shape);
    auto a = sample, b = engine_input.sample_shape;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a == b) msg += " -- the same sizes in another order: an NHWC/NCHW layout mix-up?";
    throw InputError(msg);
}

std::int64_t pick_batch_size(const RunOptions& options, const BatchLimits& limits) {
    const std::string range = "[" + std::to_string(limits.min) + ", " +
                              (limits.max ? std::to_string(limits.max) : std::string("unlimited")) + "]";
    if (options.batch_size == 0) return limits.max ? limits.max : std::max(kDefaultBatchSize, limits.min);
    if (limits.max && options.batch_size > limits.max) {
        throw UsageError("--batch-size " + std::to_string(options.batch_size) +
                         " exceeds the engine's maximum batch " + std::to_string(limits.max) +
                         " (optimization profile range " + range + ")");
    }
    if (options.batch_size < limits.min) {
        throw UsageError("--batch-size " + std::to_string(options.batch_size) + " is below the engine's minimum batch " +
                         std::to_string(limits.min) + " (optimization profile range " + range + ")");
    }
    return options.batch_size;
}

}  // namespace

RunResult run_batches(InferenceEngine& engine, const std::vector<float>& input,
                      const std::vector<std::int64_t>& input_shape, const RunOptions& options) {
    if (input_shape.empty()) throw InputError("input must have a batch dimension, got a 0-d array");
    if (options.warmup < 0 || options.iterations < 1) {
        throw UsageError("need --warmup >= 0 and --iterations >= 1");
    }
    RunResult r;
    r.input_desc = engine.input();
    check_sample_shape(input_shape, r.input_desc);
    const std::int64_t n = input_shape[0];
    r.batch_size = pick_batch_size(options, engine.batch_limits());
    r.plan = plan_batches(n, r.batch_size, engine.batch_limits().min);

    std::int64_t max_run_rows = 0;
    for (const auto& b : r.plan) max_run_rows = std::max(max_run_rows, b.run_rows);
    engine.prepare(max_run_rows);  // buffers sized once, for the largest batch actually run
    r.output_desc = engine.output();

    const auto in_elems = static_cast<std::size_t>(shape_elements(r.input_desc.sample_shape));
    const auto out_elems = static_cast<std::size_t>(shape_elements(r.output_desc.sample_shape));
    if (input.size() != static_cast<std::size_t>(n) * in_elems) {
        throw InternalError("input holds " + std::to_string(input.size()) + " values, shape " +
                            format_shape(input_shape) + " needs " + std::to_string(n * in_elems));
    }
    r.output_shape = {n};
    r.output_shape.insert(r.output_shape.end(), r.output_desc.sample_shape.begin(), r.output_desc.sample_shape.end());
    r.output.assign(static_cast<std::size_t>(n) * out_elems, 0.0f);

    // Zero-padded staging for a last batch smaller than the engine's minimum; allocated once.
    std::vector<float> pad_in, pad_out;
    if (r.plan.back().run_rows > r.plan.back().rows) {
        pad_in.assign(static_cast<std::size_t>(r.plan.back().run_rows) * in_elems, 0.0f);
        pad_out.assign(static_cast<std::size_t>(r.plan.back().run_rows) * out_elems, 0.0f);
    }

    const int passes = options.warmup + options.iterations;
    for (int pass = 0; pass < passes; ++pass) {
        const bool timed = pass >= options.warmup;
        std::int64_t done = 0;
        const auto pass_t0 = Clock::now();
        for (const auto& b : r.plan) {
            const float* src = input.data() + static_cast<std::size_t>(b.start) * in_elems;
            float* dst = r.output.data() + static_cast<std::size_t>(b.start) * out_elems;
            const bool padded = b.run_rows > b.rows;
            if (padded) std::copy(src, src + static_cast<std::size_t>(b.rows) * in_elems, pad_in.begin());
            const auto t0 = Clock::now();
            const std::int64_t produced =
                engine.infer(padded ? pad_in.data() : src, b.run_rows, padded ? pad_out.data() : dst);
            const double batch_ms = ms_since(t0);
            if (produced != b.run_rows) {
                throw InternalError("the engine returned " + std::to_string(produced) + " rows for a batch of " +
                                    std::to_string(b.run_rows) + " (samples " + std::to_string(b.start) + ".." +
                                    std::to_string(b.start + b.rows - 1) + ")");
            }
            if (padded) {
                std::copy(pad_out.begin(), pad_out.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(b.rows) * out_elems), dst);
            }
            done += b.rows;
            if (timed) {
                r.batch_ms.push_back(batch_ms);
                if (const auto c = engine.last_compute_ms()) r.compute_ms.push_back(*c);
            }
        }
        if (timed) r.pass_ms.push_back(ms_since(pass_t0));
        // The count check the old pipeline lacked ("100 samples, batch 32 -> 96 processed").
        if (done != n) {
            throw InternalError("processed " + std::to_string(done) + " of " + std::to_string(n) + " samples");
        }
    }
    return r;
}

namespace {

std::string shape_json(const std::vector<std::int64_t>& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

}  // namespace

std::string describe_json(InferenceEngine& engine) {
    const BatchLimits limits = engine.batch_limits();
    engine.prepare(limits.min);  // some engines know their output shape only once an input shape is set
    const auto tensor = [](const TensorDesc& t) {
        return "{\"name\": " + json_string(t.name) + ", \"sample_shape\": " + shape_json(t.sample_shape) +
               ", \"dtype\": " + json_string(dtype_name(t.dtype)) + "}";
    };
    return "{\n  \"schema\": \"trt-equiv-runner-engine/1\",\n  \"description\": " + json_string(engine.describe()) +
           ",\n  \"input\": " + tensor(engine.input()) + ",\n  \"output\": " + tensor(engine.output()) +
           ",\n  \"min_batch\": " + std::to_string(limits.min) +
           ",\n  \"max_batch\": " + (limits.max ? std::to_string(limits.max) : std::string("null")) + "\n}\n";
}

std::string timing_json(const RunResult& r, const RunOptions& options, const std::string& engine_path,
                        const std::string& engine_description) {
    const std::int64_t n = r.output_shape.empty() ? 0 : r.output_shape.front();
    double total_ms = 0;
    for (const double ms : r.pass_ms) total_ms += ms;
    const double samples_per_s =
        total_ms > 0 ? static_cast<double>(n) * static_cast<double>(r.pass_ms.size()) / (total_ms / 1000.0) : 0.0;
    std::vector<std::int64_t> input_shape = {n};
    input_shape.insert(input_shape.end(), r.input_desc.sample_shape.begin(), r.input_desc.sample_shape.end());
    const auto tensor_json = [&](const TensorDesc& t, const std::vector<std::int64_t>& shape) {
        return "{\"name\": " + json_string(t.name) + ", \"shape\": " + shape_json(shape) +
               ", \"engine_dtype\": " + json_string(dtype_name(t.dtype)) + "}";
    };
    std::ostringstream o;
    o << "{\n"
      << "  \"schema\": \"trt-equiv-runner-timing/1\",\n"
      << "  \"engine\": " << json_string(engine_path) << ",\n"
      << "  \"engine_description\": " << json_string(engine_description) << ",\n"
      << "  \"input\": " << tensor_json(r.input_desc, input_shape) << ",\n"
      << "  \"output\": " << tensor_json(r.output_desc, r.output_shape) << ",\n"
      << "  \"samples\": " << n << ",\n"
      << "  \"batch_size\": " << r.batch_size << ",\n"
      << "  \"batches_per_pass\": " << r.plan.size() << ",\n"
      << "  \"last_batch_rows\": " << (r.plan.empty() ? 0 : r.plan.back().rows) << ",\n"
      << "  \"warmup\": " << options.warmup << ",\n"
      << "  \"iterations\": " << options.iterations << ",\n"
      << "  \"samples_per_s\": " << json_number(samples_per_s) << ",\n"
      << "  \"pass_ms\": " << json_array(r.pass_ms) << ",\n"
      << "  \"batch_latency_ms\": " << json_summary(summarize(r.batch_ms)) << ",\n"
      << "  \"batch_latencies_ms\": " << json_array(r.batch_ms) << ",\n"
      << "  \"compute_ms\": " << (r.compute_ms.empty() ? std::string("null") : json_summary(summarize(r.compute_ms)))
      << "\n}\n";
    return o.str();
}

}  // namespace trt_equiv
