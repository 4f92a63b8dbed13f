// The runner's command line, shared by trt-equiv-runner (TensorRT) and trt-equiv-runner-cpu (test engine).
#include <charconv>
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
           " --engine PLAN --input IN.npy --output OUT.npy [--batch-size N] [--warmup K] [--iterations K]"
           " [--timing-json FILE]\n"
           "       " + program + " --engine PLAN --describe\n"
           "\n"
           "Runs every sample of IN.npy (float32 or float16, C order, shape (N, *engine input sample shape))\n"
           "through the engine in batches of N (default: the engine's maximum batch, else 32; the last batch\n"
           "may be partial) and writes the outputs, in input order, to OUT.npy as float32.\n"
           "  --warmup K       untimed passes over the whole input first (default 0)\n"
           "  --iterations K   timed passes; the output comes from the last one (default 1)\n"
           "  --timing-json F  write batch latency median/p90/p99 and samples/s as JSON\n"
           "  --describe       print the engine's input/output tensors and batch range as JSON, run nothing\n"
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
            o.input = take();
        } else if (key == "--output") {
            o.output = take();
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
    if (o.input.empty()) missing += " --input";
    if (o.output.empty()) missing += " --output";
    if (!missing.empty()) throw UsageError("missing required option(s):" + missing);
    return o;
}

int run_cli(int argc, const char* const argv[], const std::string& program, const EngineFactory& make_engine) noexcept {
    try {
        try {
            const CliOptions o = parse_cli(std::vector<std::string>(argv + 1, argv + argc));
            if (o.help) {
                std::cout << cli_usage(program);
                return static_cast<int>(ExitCode::kOk);
            }
            if (o.describe) {
                const std::unique_ptr<InferenceEngine> engine = make_engine(o.engine);
                std::cout << describe_json(*engine);
                return static_cast<int>(ExitCode::kOk);
            }
            const NpyArray in = read_npy(o.input);
            const std::vector<float> x = in.to_float32();
            const std::unique_ptr<InferenceEngine> engine = make_engine(o.engine);
            RunResult r;
            try {
                r = run_batches(*engine, x, in.shape, o.run);
            } catch (const InputError& e) {  // run_batches' input errors are about this file: name it
                throw InputError(o.input + ": " + e.what());
            }
            write_npy(o.output, DType::kFloat32, r.output_shape, r.output.data());
            if (!o.timing_json.empty()) {
                write_file_atomically(o.timing_json, timing_json(r, o.run, o.engine, engine->describe()), "timing JSON");
            }
            std::cout << program << ": " << r.output_shape.front() << " samples (" << dtype_name(in.dtype) << " "
                      << format_shape(in.shape) << ") in " << r.plan.size() << " batch(es) of up to " << r.batch_size
                      << ", last " << r.plan.back().rows << "; output " << format_shape(r.output_shape) << " -> "
                      << o.output << "\n";
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
