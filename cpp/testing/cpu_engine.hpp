// A deterministic CPU "engine" for tests: lets the whole runner (CLI, npy I/O, batching, timing, exit codes)
// run on machines without a GPU or TensorRT.
//
// The engine file is a small text description of an affine map. Each output row depends only on its own
// input row and identifies it, so a dropped, duplicated or reordered row shows up in the output:
//   out[i] = [scale * sum(x_i) + bias, copy_scale * x_i[0], x_i[last]]      (computed in double, stored as float)
// where x_i is rounded through float16 first when input_dtype is float16 (as a half-input engine sees it).
#pragma once

#include <memory>
#include <string>

#include "trt_equiv/engine.hpp"

namespace trt_equiv::testing {

/// Engine file format, one "key value..." per line, '#' comments:
///   trt-equiv-cpu-engine 1            (first line, required)
///   input_shape 4 3                   (per-sample shape, required)
///   input_name x / output_name y      (optional)
///   input_dtype float32|float16       (optional, default float32)
///   min_batch N / max_batch N         (optional, default 1 / 0 = unlimited)
///   scale A / bias B / copy_scale C   (optional, default 1 / 0 / 1)
///   fail_after_calls K                (test hook: the (K+1)-th infer() fails with an engine error)
///   drop_rows K                       (test hook: infer() claims K fewer rows than asked, a broken engine)
std::unique_ptr<InferenceEngine> load_cpu_engine(const std::string& path);

}  // namespace trt_equiv::testing
