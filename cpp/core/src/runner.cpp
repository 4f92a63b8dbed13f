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

void check_sample_shape(const NamedArray& in, const TensorDesc& engine_input) {
    const std::vector<std::int64_t>& shape = in.array.shape;
    const std::vector<std::int64_t> sample(shape.begin() + 1, shape.end());
    bool ok = sample.size() == engine_input.sample_shape.size();
    for (std::size_t i = 0; ok && i < sample.size(); ++i) {
        ok = engine_input.sample_shape[i] < 0 || engine_input.sample_shape[i] == sample[i];
    }
    if (ok) return;
    std::string msg = in.source + ": per-sample shape " + format_shape(sample) + " (array shape " + format_shape(shape) +
                      ") does not match the engine input '" + engine_input.name + "' per-sample shape " +
                      format_shape(engine_input.sample_shape) + " (-1: any size)";
    auto a = sample, b = engine_input.sample_shape;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a == b) msg += " -- the same sizes in another order: an NHWC/NCHW layout mix-up?";
    throw InputError(msg);
}

std::string names_of(const std::vector<TensorDesc>& tensors) {
    std::string out;
    for (const auto& t : tensors) out += (out.empty() ? "'" : ", '") + t.name + "'";
    return out;
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

RunResult run_batches(InferenceEngine& engine, const std::vector<NamedArray>& inputs, const RunOptions& options) {
    if (options.warmup < 0 || options.iterations < 1) {
        throw UsageError("need --warmup >= 0 and --iterations >= 1");
    }
    RunResult r;
    r.inputs = engine.inputs();
    const std::size_t n_in = r.inputs.size();
    // Match by name (an unnamed array feeds a single-input engine), convert to the engine's dtype, check shapes.
    std::vector<NpyArray> data(n_in);
    std::vector<bool> given(n_in, false);
    for (const NamedArray& in : inputs) {
        std::size_t k = n_in;
        for (std::size_t i = 0; i < n_in; ++i) {
            if (r.inputs[i].name == in.name || (in.name.empty() && n_in == 1)) k = i;
        }
        if (k == n_in) {
            throw UsageError(in.name.empty() ? "an unnamed input was given but the engine has " + std::to_string(n_in) +
                                                   " inputs (" + names_of(r.inputs) + "): pass --input NAME=FILE"
                                             : "the engine has no input '" + in.name + "'; its inputs are " +
                                                   names_of(r.inputs));
        }
        if (given[k]) throw UsageError("input '" + r.inputs[k].name + "' is given twice");
        given[k] = true;
        if (in.array.shape.empty()) throw InputError(in.source + ": expected a batch dimension, got a 0-d array");
        if (in.array.shape[0] < 1) {
            throw InputError(in.source + ": expected at least one sample, got shape " + format_shape(in.array.shape));
        }
        check_sample_shape(in, r.inputs[k]);
        data[k] = convert_dtype(in.array, r.inputs[k].dtype, in.source + " (engine input '" + r.inputs[k].name + "')");
        r.inputs[k].sample_shape.assign(in.array.shape.begin() + 1, in.array.shape.end());
    }
    for (std::size_t i = 0; i < n_in; ++i) {
        if (!given[i]) {
            throw UsageError("missing input '" + r.inputs[i].name + "'; the engine's inputs are " + names_of(r.inputs) +
                             " (pass --input NAME=FILE for each)");
        }
    }
    const std::int64_t n = data[0].shape[0];
    for (std::size_t i = 1; i < n_in; ++i) {
        if (data[i].shape[0] != n) {
            std::string counts;
            for (std::size_t j = 0; j < n_in; ++j) {
                counts += (j ? ", '" : "'") + r.inputs[j].name + "': " + std::to_string(data[j].shape[0]);
            }
            throw InputError("every input must have the same number of samples, got " + counts);
        }
    }
    r.samples = n;
    r.batch_size = pick_batch_size(options, engine.batch_limits());
    r.plan = plan_batches(n, r.batch_size, engine.batch_limits().min);

    std::int64_t max_run_rows = 0;
    for (const auto& b : r.plan) max_run_rows = std::max(max_run_rows, b.run_rows);
    std::vector<std::vector<std::int64_t>> samples(n_in);
    for (std::size_t i = 0; i < n_in; ++i) samples[i] = r.inputs[i].sample_shape;
    engine.prepare(samples, max_run_rows);  // buffers sized once, for the largest batch actually run
    const std::vector<TensorDesc> outs = engine.outputs();
    const std::size_t n_out = outs.size();

    std::vector<std::size_t> in_row(n_in), out_row(n_out);  // bytes per sample
    for (std::size_t i = 0; i < n_in; ++i) {
        in_row[i] = static_cast<std::size_t>(shape_elements(r.inputs[i].sample_shape)) * dtype_size(r.inputs[i].dtype);
    }
    r.outputs.resize(n_out);
    for (std::size_t j = 0; j < n_out; ++j) {
        OutputArray& o = r.outputs[j];
        o.desc = outs[j];
        for (const std::int64_t d : o.desc.sample_shape) {
            if (d < 0) {
                throw EngineError("output '" + o.desc.name + "' per-sample shape " + format_shape(o.desc.sample_shape) +
                                  " is not determined by the input shapes");
            }
        }
        out_row[j] = static_cast<std::size_t>(shape_elements(o.desc.sample_shape)) * dtype_size(o.desc.dtype);
        o.shape = {n};
        o.shape.insert(o.shape.end(), o.desc.sample_shape.begin(), o.desc.sample_shape.end());
        o.data.assign(static_cast<std::size_t>(n) * out_row[j], 0);
    }

    // Zero-padded staging for a last batch smaller than the engine's minimum; allocated once.
    const BatchSlice& last = r.plan.back();
    std::vector<std::vector<unsigned char>> pad_in(n_in), pad_out(n_out);
    if (last.run_rows > last.rows) {
        for (std::size_t i = 0; i < n_in; ++i) pad_in[i].assign(static_cast<std::size_t>(last.run_rows) * in_row[i], 0);
        for (std::size_t j = 0; j < n_out; ++j) pad_out[j].assign(static_cast<std::size_t>(last.run_rows) * out_row[j], 0);
    }

    std::vector<const void*> in_ptrs(n_in);
    std::vector<void*> out_ptrs(n_out);
    const int passes = options.warmup + options.iterations;
    for (int pass = 0; pass < passes; ++pass) {
        const bool timed = pass >= options.warmup;
        std::int64_t done = 0;
        const auto pass_t0 = Clock::now();
        for (const auto& b : r.plan) {
            const bool padded = b.run_rows > b.rows;
            const auto start = static_cast<std::size_t>(b.start);
            const auto rows = static_cast<std::size_t>(b.rows);
            for (std::size_t i = 0; i < n_in; ++i) {
                const unsigned char* src = data[i].data.data() + start * in_row[i];
                if (padded) std::copy(src, src + rows * in_row[i], pad_in[i].begin());
                in_ptrs[i] = padded ? static_cast<const void*>(pad_in[i].data()) : static_cast<const void*>(src);
            }
            for (std::size_t j = 0; j < n_out; ++j) {
                out_ptrs[j] = padded ? static_cast<void*>(pad_out[j].data())
                                     : static_cast<void*>(r.outputs[j].data.data() + start * out_row[j]);
            }
            const auto t0 = Clock::now();
            const std::int64_t produced = engine.infer(in_ptrs, b.run_rows, out_ptrs);
            const double batch_ms = ms_since(t0);
            if (produced != b.run_rows) {
                throw InternalError("the engine returned " + std::to_string(produced) + " rows for a batch of " +
                                    std::to_string(b.run_rows) + " (samples " + std::to_string(b.start) + ".." +
                                    std::to_string(b.start + b.rows - 1) + ")");
            }
            if (padded) {
                for (std::size_t j = 0; j < n_out; ++j) {
                    std::copy(pad_out[j].begin(), pad_out[j].begin() + static_cast<std::ptrdiff_t>(rows * out_row[j]),
                              r.outputs[j].data.begin() + static_cast<std::ptrdiff_t>(start * out_row[j]));
                }
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

std::vector<std::string> output_file_names(const std::vector<TensorDesc>& outputs) {
    std::vector<std::string> names;
    for (std::size_t j = 0; j < outputs.size(); ++j) {
        std::string base;
        for (const char c : outputs[j].name) {
            const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                            c == '_' || c == '-';
            base += ok ? c : '_';
        }
        if (base.empty() || base[0] == '.') base = "_" + base;
        std::string name = base + ".npy";
        if (std::find(names.begin(), names.end(), name) != names.end()) name = base + "__" + std::to_string(j) + ".npy";
        names.push_back(name);
    }
    return names;
}

namespace {

std::string shape_json(const std::vector<std::int64_t>& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

}  // namespace

std::string describe_json(const InferenceEngine& engine) {
    const BatchLimits limits = engine.batch_limits();
    const auto tensor = [](const TensorDesc& t, const std::string& file) {
        return "{\"name\": " + json_string(t.name) + ", \"sample_shape\": " + shape_json(t.sample_shape) +
               ", \"dtype\": " + json_string(dtype_name(t.dtype)) + (file.empty() ? "" : ", \"file\": " + json_string(file)) +
               "}";
    };
    const std::vector<TensorDesc> outs = engine.outputs();
    const std::vector<std::string> files = output_file_names(outs);
    std::string ins_json, outs_json;
    for (const auto& t : engine.inputs()) ins_json += (ins_json.empty() ? "\n    " : ",\n    ") + tensor(t, "");
    for (std::size_t j = 0; j < outs.size(); ++j) outs_json += (j ? ",\n    " : "\n    ") + tensor(outs[j], files[j]);
    return "{\n  \"schema\": \"trt-equiv-runner-engine/2\",\n  \"description\": " + json_string(engine.describe()) +
           ",\n  \"inputs\": [" + ins_json + "\n  ],\n  \"outputs\": [" + outs_json + "\n  ]" +
           ",\n  \"min_batch\": " + std::to_string(limits.min) +
           ",\n  \"max_batch\": " + (limits.max ? std::to_string(limits.max) : std::string("null")) + "\n}\n";
}

std::string timing_json(const RunResult& r, const RunOptions& options, const std::string& engine_path,
                        const std::string& engine_description) {
    const std::int64_t n = r.samples;
    double total_ms = 0;
    for (const double ms : r.pass_ms) total_ms += ms;
    const double samples_per_s =
        total_ms > 0 ? static_cast<double>(n) * static_cast<double>(r.pass_ms.size()) / (total_ms / 1000.0) : 0.0;
    const auto tensor_json = [&](const TensorDesc& t) {
        std::vector<std::int64_t> shape = {n};
        shape.insert(shape.end(), t.sample_shape.begin(), t.sample_shape.end());
        return "{\"name\": " + json_string(t.name) + ", \"shape\": " + shape_json(shape) +
               ", \"engine_dtype\": " + json_string(dtype_name(t.dtype)) + "}";
    };
    std::string ins, outs;
    for (const auto& t : r.inputs) ins += (ins.empty() ? "" : ", ") + tensor_json(t);
    for (const auto& o : r.outputs) outs += (outs.empty() ? "" : ", ") + tensor_json(o.desc);
    std::ostringstream o;
    o << "{\n"
      << "  \"schema\": \"trt-equiv-runner-timing/2\",\n"
      << "  \"engine\": " << json_string(engine_path) << ",\n"
      << "  \"engine_description\": " << json_string(engine_description) << ",\n"
      << "  \"inputs\": [" << ins << "],\n"
      << "  \"outputs\": [" << outs << "],\n"
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
