// A deterministic CPU "engine" for tests: lets the whole runner (CLI, npy I/O, several inputs and outputs,
// batching, timing, exit codes) run on machines without a GPU or TensorRT.
//
// The engine file is a small text description of an affine map over one or more inputs. Each output row depends
// only on its own input rows and identifies them, so a dropped, duplicated, reordered or mismatched row (one
// input's row i paired with another input's row j) shows up in the output. With x_i the concatenation of every
// input's row i (each element as a double: float16 as the engine sees it, ints exactly, bool as 0/1):
//   output 0 = [scale * sum(x_i) + bias, copy_scale * x_i[0], x_i[last]]        (computed in double, stored float32)
//   output 1 (when output2 is set) = [sum of input k's row i, for each input k]  (float32, one per input)
#pragma once

#include <memory>
#include <string>

#include "trt_equiv/engine.hpp"

namespace trt_equiv::testing {

/// Engine file format, one "key value..." per line, '#' comments:
///   trt-equiv-cpu-engine 1            (first line, required)
///   input_shape 4 3                   (single-input form: the per-sample shape)
///   input_name x / input_dtype float32|float16        (single-input form, optional)
///   input NAME DTYPE DIM...           (several-input form, repeatable; DTYPE float32|float16|int32|int64|bool;
///                                      a DIM of -1 is dynamic: any size the data has)
///   output_name y                     (optional, default y)
///   output2 NAME                      (optional: a second output with the per-input row sums)
///   min_batch N / max_batch N         (optional, default 1 / 0 = unlimited)
///   scale A / bias B / copy_scale C   (optional, default 1 / 0 / 1)
///   fail_after_calls K                (test hook: the (K+1)-th infer() fails with an engine error)
///   drop_rows K                       (test hook: infer() claims K fewer rows than asked, a broken engine)
std::unique_ptr<InferenceEngine> load_cpu_engine(const std::string& path);

}  // namespace trt_equiv::testing
