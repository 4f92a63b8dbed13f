// The runner's command line, shared by trt-equiv-runner (TensorRT) and trt-equiv-runner-cpu (test engine).
#include <charconv>
#include <filesystem>
#include <system_error>
#include <iostream>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "trt_equiv/errors.hpp"
#include "trt_equiv/npy.hpp"
#include "trt_equiv/runner.hpp"
#include "trt_equiv/timing.hpp"

namespace trt_equiv {
namespace {

std::int64_t parse_int(const std::string& option, const std::string& text, std::int64_t min, std::int64_t max) {
    std::int64_t value = 0;
    const char* first = text.data();
    const char* last = first + text.size();
    const auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec != std::errc() || ptr != last || text.empty()) {
        throw UsageError(option + " expects an integer, got '" + text + "'");
    }
    if (value < min || value > max) {
        throw UsageError(option + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + text);
    }
    return value;
}

constexpr std::int64_t kMaxPasses = 1000000;  // keeps warmup + iterations well inside an int

}  // namespace

std::string cli_usage(const std::string& program) {
    return "usage: " + program +
           " --engine PLAN --input [NAME=]IN.npy... (--output OUT.npy | --output-dir DIR) [--batch-size N]"
           " [--warmup K] [--iterations K] [--timing-json FILE]\n"
           "       " + program + " --engine PLAN --describe\n"
           "\n"
           "Runs every sample of the inputs (one .npy per engine input, C order, shape (N, *per-sample shape);\n"
           "float32, float16, int32, int64 or bool) through the engine in batches of N (default: the engine's\n"
           "maximum batch, else 32; the last batch may be partial) and writes every output, in input order.\n"
           "  --input NAME=F   the .npy for engine input NAME (repeat for each input); a single-input engine also\n"
           "                   takes --input F. NAME is matched against the engine's input names.\n"
           "  --output F       the output .npy (engines with one output)\n"
           "  --output-dir D   one <name>.npy per output in D (created if missing); names outside\n"
           "                   [A-Za-z0-9._-] become '_' (--describe lists each output's file)\n"
           "  float outputs are written as float32, integer and bool outputs in their own dtype; float32 data\n"
           "  feeds float16 inputs (and back), int64 data feeds int32 inputs when every value fits\n"
           "  --warmup K       untimed passes over the whole input first (default 0)\n"
           "  --iterations K   timed passes; the output comes from the last one (default 1)\n"
           "  --timing-json F  write batch latency median/p90/p99 and samples/s as JSON\n"
           "  --describe       print every input/output tensor and the batch range as JSON, run nothing\n"
           "exit codes: 0 ok, 1 internal error, 2 usage error, 3 input error (bad/missing .npy, shape mismatch,\n"
           "output not writable), 4 engine error (engine file, TensorRT or CUDA failure)\n";
}

CliOptions parse_cli(const std::vector<std::string>& args) {
    CliOptions o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string key = args[i];
        std::string value;
        bool inline_value = false;
        if (key == "-h" || key == "--help") {
            o.help = true;
            continue;
        }
        if (key == "--describe") {
            o.describe = true;
            continue;
        }
        if (key.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + key + "'");
        if (const auto eq = key.find('='); eq != std::string::npos) {
            value = key.substr(eq + 1);
            key = key.substr(0, eq);
            inline_value = true;
        }
        const auto take = [&]() -> std::string {
            if (inline_value) return value;
            if (i + 1 >= args.size()) throw UsageError(key + " needs a value");
            return args[++i];
        };
        if (key == "--engine") {
            o.engine = take();
        } else if (key == "--input") {
            o.inputs.push_back(take());
        } else if (key == "--output") {
            o.output = take();
        } else if (key == "--output-dir") {
            o.output_dir = take();
        } else if (key == "--timing-json") {
            o.timing_json = take();
        } else if (key == "--batch-size") {
            o.run.batch_size = parse_int(key, take(), 1, std::numeric_limits<std::int32_t>::max());
        } else if (key == "--warmup") {
            o.run.warmup = static_cast<int>(parse_int(key, take(), 0, kMaxPasses));
        } else if (key == "--iterations") {
            o.run.iterations = static_cast<int>(parse_int(key, take(), 1, kMaxPasses));
        } else {
            throw UsageError("unknown option '" + key + "'");
        }
    }
    if (o.help) return o;
    std::string missing;
    if (o.engine.empty()) missing += " --engine";
    if (o.describe) {
        if (!missing.empty()) throw UsageError("--describe needs --engine");
        return o;
    }
    if (o.inputs.empty()) missing += " --input";
    if (o.output.empty() && o.output_dir.empty()) missing += " --output or --output-dir";
    if (!missing.empty()) throw UsageError("missing required option(s):" + missing);
    if (!o.output.empty() && !o.output_dir.empty()) throw UsageError("give --output or --output-dir, not both");
    return o;
}

std::vector<std::pair<std::string, std::string>> resolve_inputs(const std::vector<std::string>& values,
                                                                const std::vector<TensorDesc>& engine_inputs) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const std::string& v : values) {
        std::string name, path = v;
        for (std::size_t eq = v.find('='); eq != std::string::npos; eq = v.find('=', eq + 1)) {
            const std::string prefix = v.substr(0, eq);
            for (const auto& t : engine_inputs) {
                if (t.name == prefix && name.empty()) {
                    name = prefix;
                    path = v.substr(eq + 1);
                }
            }
        }
        if (name.empty()) {
            if (engine_inputs.size() != 1 || values.size() != 1) {
                std::string names;
                for (const auto& t : engine_inputs) names += (names.empty() ? "'" : ", '") + t.name + "'";
                throw UsageError("--input '" + v + "' names no engine input; the engine's inputs are " + names +
                                 ": pass --input NAME=FILE for each");
            }
            name = engine_inputs.front().name;
        }
        for (const auto& [seen, _] : out) {
            if (seen == name) throw UsageError("input '" + name + "' is given twice");
        }
        out.emplace_back(name, path);
    }
    return out;
}

namespace {

/// Float outputs as float32 (the Python side compares float32), others in their own dtype.
void write_output(const std::string& path, const OutputArray& o) {
    if (o.desc.dtype == DType::kFloat16) {
        NpyArray a;
        a.dtype = DType::kFloat16;
        a.shape = o.shape;
        a.data = o.data;
        const NpyArray f = convert_dtype(a, DType::kFloat32, "output '" + o.desc.name + "'");
        write_npy(path, DType::kFloat32, o.shape, f.data.data());
    } else {
        write_npy(path, o.desc.dtype, o.shape, o.data.data());
    }
}

}  // namespace

int run_cli(int argc, const char* const argv[], const std::string& program, const EngineFactory& make_engine) noexcept {
    try {
        try {
            const CliOptions o = parse_cli(std::vector<std::string>(argv + 1, argv + argc));
            if (o.help) {
                std::cout << cli_usage(program);
                return static_cast<int>(ExitCode::kOk);
            }
            const std::unique_ptr<InferenceEngine> engine = make_engine(o.engine);
            if (o.describe) {
                std::cout << describe_json(*engine);
                return static_cast<int>(ExitCode::kOk);
            }
            std::vector<NamedArray> inputs;
            for (const auto& [name, path] : resolve_inputs(o.inputs, engine->inputs())) {
                inputs.push_back({name, read_npy(path), path});
            }
            const RunResult r = run_batches(*engine, inputs, o.run);
            if (!o.output.empty()) {
                if (r.outputs.size() != 1) {
                    throw UsageError("--output takes one file but the engine has " + std::to_string(r.outputs.size()) +
                                     " outputs; use --output-dir DIR");
                }
                write_output(o.output, r.outputs.front());
            } else {
                std::error_code ec;
                std::filesystem::create_directories(o.output_dir, ec);
                if (ec) throw InputError("cannot create --output-dir " + o.output_dir + ": " + ec.message());
                std::vector<TensorDesc> descs;
                for (const auto& out : r.outputs) descs.push_back(out.desc);
                const std::vector<std::string> files = output_file_names(descs);
                for (std::size_t j = 0; j < r.outputs.size(); ++j) {
                    write_output((std::filesystem::path(o.output_dir) / files[j]).string(), r.outputs[j]);
                }
            }
            if (!o.timing_json.empty()) {
                write_file_atomically(o.timing_json, timing_json(r, o.run, o.engine, engine->describe()), "timing JSON");
            }
            std::cout << program << ": " << r.samples << " samples, " << r.inputs.size() << " input(s), "
                      << r.plan.size() << " batch(es) of up to " << r.batch_size << ", last " << r.plan.back().rows
                      << "; " << r.outputs.size() << " output(s) -> " << (o.output.empty() ? o.output_dir : o.output)
                      << "\n";
            return static_cast<int>(ExitCode::kOk);
        } catch (const RunnerError& e) {
            std::cerr << program << ": " << exit_code_meaning(e.code()) << ": " << e.what() << "\n";
            if (e.code() == ExitCode::kUsage) std::cerr << "run '" << program << " --help' for usage\n";
            return static_cast<int>(e.code());
        } catch (const std::bad_alloc&) {
            std::cerr << program << ": internal error: out of host memory\n";
        } catch (const std::exception& e) {
            std::cerr << program << ": internal error: " << e.what() << "\n";
        }
    } catch (...) {  // printing itself failed; nothing more can be said
    }
    return static_cast<int>(ExitCode::kInternal);
}

}  // namespace trt_equiv
