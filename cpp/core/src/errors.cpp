#include "trt_equiv/errors.hpp"

namespace trt_equiv {

const char* exit_code_meaning(ExitCode code) noexcept {
    switch (code) {
        case ExitCode::kOk: return "ok";
        case ExitCode::kInternal: return "internal error";
        case ExitCode::kUsage: return "usage error";
        case ExitCode::kInput: return "input error";
        case ExitCode::kEngine: return "engine error";
    }
    return "unknown";
}

}  // namespace trt_equiv
