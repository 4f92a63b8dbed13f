// Running whole input arrays through an InferenceEngine in batches, with timing, and the CLI around it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "trt_equiv/batching.hpp"
#include "trt_equiv/engine.hpp"
#include "trt_equiv/npy.hpp"

namespace trt_equiv {

/// Used when neither --batch-size nor an engine maximum says otherwise.
constexpr std::int64_t kDefaultBatchSize = 32;

struct RunOptions {
    std::int64_t batch_size = 0;  // 0: the engine's maximum batch, or kDefaultBatchSize when it has none
    int warmup = 0;               // untimed passes over the whole input
    int iterations = 1;           // timed passes; the output comes from the last one
};

/// One input array and the engine input it feeds. An empty ``name`` is the single-input form (--input FILE).
struct NamedArray {
    std::string name;
    NpyArray array;
    std::string source;  // where it came from, for messages (a file path)
};

struct OutputArray {
    TensorDesc desc;                  // the engine output (concrete per-sample shape)
    std::vector<std::int64_t> shape;  // (N, sample shape...)
    std::vector<unsigned char> data;  // N rows in desc.dtype, C order
};

struct RunResult {
    std::int64_t samples = 0;
    std::int64_t batch_size = 0;
    std::vector<BatchSlice> plan;
    std::vector<TensorDesc> inputs;  // the engine inputs, with the per-sample shapes actually run
    std::vector<OutputArray> outputs;
    std::vector<double> pass_ms;     // host time of each timed pass
    std::vector<double> batch_ms;    // host time of each timed batch (copies and conversions included)
    std::vector<double> compute_ms;  // device time of each timed batch, when the engine measures it
};

/// Matches ``inputs`` to the engine's inputs by name (every engine input exactly once), converts each to the
/// engine's dtype, checks one sample count across inputs and every per-sample shape against the engine, picks
/// the batch size, runs warm-up and timed passes over all inputs together (the last batch may be partial), and
/// checks that exactly N rows came back for every output, in input order.
RunResult run_batches(InferenceEngine& engine, const std::vector<NamedArray>& inputs, const RunOptions& options);

/// The timing report written by --timing-json (schema "trt-equiv-runner-timing/2").
std::string timing_json(const RunResult& result, const RunOptions& options, const std::string& engine_path,
                        const std::string& engine_description);

/// The .npy file name an output is written to under --output-dir: the name with every character outside
/// [A-Za-z0-9._-] replaced by '_' (a leading '.' too, so no hidden or parent-directory names), plus ".npy";
/// a name that collides with an earlier output's gets "__<index>" before the suffix.
std::vector<std::string> output_file_names(const std::vector<TensorDesc>& outputs);

/// The engine's I/O as JSON (schema "trt-equiv-runner-engine/2"), printed by --describe so callers learn every
/// tensor's name, dtype, per-sample shape (-1: dynamic) and output file name, and the batch range, without
/// running anything.
std::string describe_json(const InferenceEngine& engine);

struct CliOptions {
    std::string engine, output, output_dir, timing_json;
    std::vector<std::string> inputs;  // --input values as given: FILE, or NAME=FILE (resolved against the engine)
    RunOptions run;
    bool help = false;
    bool describe = false;  // print describe_json() and exit; needs only --engine
};

/// Parse argv[1..]; UsageError on unknown options, missing values, bad numbers or missing required options.
CliOptions parse_cli(const std::vector<std::string>& args);

/// Resolve --input values against the engine's input names: "NAME=FILE" when the text before some '=' is an
/// input's name, else FILE alone (only for a single-input engine). Returns (name, path) pairs; UsageError for
/// an unknown name, a name given twice, a bare FILE for a several-input engine, or a missing input.
std::vector<std::pair<std::string, std::string>> resolve_inputs(const std::vector<std::string>& values,
                                                                const std::vector<TensorDesc>& engine_inputs);

std::string cli_usage(const std::string& program);

using EngineFactory = std::function<std::unique_ptr<InferenceEngine>(const std::string& engine_path)>;

/// The whole program: parse, load engine, read inputs, run, write outputs and timing. Returns the exit code
/// (see ExitCode) and prints errors as "<program>: error: ..." on stderr. Never throws.
int run_cli(int argc, const char* const argv[], const std::string& program, const EngineFactory& make_engine) noexcept;

}  // namespace trt_equiv
