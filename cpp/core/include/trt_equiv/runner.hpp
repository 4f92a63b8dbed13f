// Running a whole input array through an InferenceEngine in batches, with timing, and the CLI around it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trt_equiv/batching.hpp"
#include "trt_equiv/engine.hpp"

namespace trt_equiv {

/// Used when neither --batch-size nor an engine maximum says otherwise.
constexpr std::int64_t kDefaultBatchSize = 32;

struct RunOptions {
    std::int64_t batch_size = 0;  // 0: the engine's maximum batch, or kDefaultBatchSize when it has none
    int warmup = 0;               // untimed passes over the whole input
    int iterations = 1;           // timed passes; the output comes from the last one
};

struct RunResult {
    std::int64_t batch_size = 0;
    std::vector<BatchSlice> plan;
    TensorDesc input_desc, output_desc;
    std::vector<std::int64_t> output_shape;  // (N, output sample shape...)
    std::vector<float> output;
    std::vector<double> pass_ms;     // host time of each timed pass
    std::vector<double> batch_ms;    // host time of each timed batch (copies and conversions included)
    std::vector<double> compute_ms;  // device time of each timed batch, when the engine measures it
};

/// Checks the input's per-sample shape against the engine, picks the batch size, runs warm-up and timed
/// passes, and checks that exactly N rows came back in input order.
RunResult run_batches(InferenceEngine& engine, const std::vector<float>& input,
                      const std::vector<std::int64_t>& input_shape, const RunOptions& options);

/// The timing report written by --timing-json (schema "trt-equiv-runner-timing/1").
std::string timing_json(const RunResult& result, const RunOptions& options, const std::string& engine_path,
                        const std::string& engine_description);

/// The engine's I/O as JSON (schema "trt-equiv-runner-engine/1"), printed by --describe so callers learn
/// the input's per-sample shape and the batch range without running anything. Calls engine.prepare().
std::string describe_json(InferenceEngine& engine);

struct CliOptions {
    std::string engine, input, output, timing_json;
    RunOptions run;
    bool help = false;
    bool describe = false;  // print describe_json() and exit; needs only --engine
};

/// Parse argv[1..]; UsageError on unknown options, missing values, bad numbers or missing required options.
CliOptions parse_cli(const std::vector<std::string>& args);

std::string cli_usage(const std::string& program);

using EngineFactory = std::function<std::unique_ptr<InferenceEngine>(const std::string& engine_path)>;

/// The whole program: parse, read input, load engine, run, write output and timing. Returns the exit code
/// (see ExitCode) and prints errors as "<program>: error: ..." on stderr. Never throws.
int run_cli(int argc, const char* const argv[], const std::string& program, const EngineFactory& make_engine) noexcept;

}  // namespace trt_equiv
