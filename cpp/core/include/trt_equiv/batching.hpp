// Splitting N samples into batches: every sample is processed, the last batch may be partial.
//
// The pipeline this replaces ran 100 samples at batch 32 as 3 batches and reported "96 processed"; here the
// plan always covers [0, N) exactly, and the runner checks the row count again after running.
#pragma once

#include <cstdint>
#include <vector>

namespace trt_equiv {

struct BatchSlice {
    std::int64_t start = 0;     // first sample of the batch
    std::int64_t rows = 0;      // samples taken from the input (the last batch may have fewer)
    std::int64_t run_rows = 0;  // rows actually run: rows, or the engine's minimum batch when rows is below it
                                // (the extra rows are zero padding whose outputs are dropped)
};

/// Consecutive batches of ``batch_size`` covering samples [0, n); a partial last batch is padded up to
/// ``min_batch`` (engines with a fixed batch or a profile minimum above 1 cannot run fewer rows).
/// Throws UsageError for n < 1, batch_size < 1, or min_batch outside [1, batch_size].
std::vector<BatchSlice> plan_batches(std::int64_t n, std::int64_t batch_size, std::int64_t min_batch = 1);

}  // namespace trt_equiv
