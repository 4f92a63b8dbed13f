// Exit codes and the exception types that carry them.
//
// The runner's exit status is its contract with callers (trt_equiv.backends.cpp maps each code to a
// message), so every deliberate failure throws one of these and main() turns it into its code.
#pragma once

#include <stdexcept>
#include <string>

namespace trt_equiv {

enum class ExitCode : int {
    kOk = 0,
    kInternal = 1,  // a bug or host out-of-memory: the count check failed, an unexpected exception
    kUsage = 2,     // bad command line: unknown option, missing value, --batch-size outside the engine's range
    kInput = 3,     // data: input .npy missing/malformed/wrong dtype, shape mismatch, output cannot be written
    kEngine = 4,    // engine: file missing/corrupt, TensorRT or CUDA call failed, unsupported engine I/O
};

/// Short human meaning of an exit code, used in the runner's own messages.
const char* exit_code_meaning(ExitCode code) noexcept;

/// Base of every deliberate runner failure; ``code()`` is the process exit status to use.
class RunnerError : public std::runtime_error {
public:
    RunnerError(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const noexcept { return code_; }

private:
    ExitCode code_;
};

class UsageError : public RunnerError {
public:
    explicit UsageError(const std::string& message) : RunnerError(ExitCode::kUsage, message) {}
};

/// Input/output data problems: .npy files and shape agreement between data and engine.
class InputError : public RunnerError {
public:
    explicit InputError(const std::string& message) : RunnerError(ExitCode::kInput, message) {}
};

/// Engine problems: loading, TensorRT and CUDA calls, engine I/O the runner cannot serve.
class EngineError : public RunnerError {
public:
    explicit EngineError(const std::string& message) : RunnerError(ExitCode::kEngine, message) {}
};

/// A broken invariant of the runner itself (e.g. fewer output rows than input rows).
class InternalError : public RunnerError {
public:
    explicit InternalError(const std::string& message) : RunnerError(ExitCode::kInternal, message) {}
};

}  // namespace trt_equiv
