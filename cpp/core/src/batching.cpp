#include "trt_equiv/batching.hpp"

#include <algorithm>
#include <string>

#include "trt_equiv/errors.hpp"

namespace trt_equiv {

std::vector<BatchSlice> plan_batches(std::int64_t n, std::int64_t batch_size, std::int64_t min_batch) {
    if (n < 1) throw InputError("expected at least one sample, got " + std::to_string(n));
    if (batch_size < 1) throw UsageError("batch size must be >= 1, got " + std::to_string(batch_size));
    if (min_batch < 1 || min_batch > batch_size) {
        throw UsageError("the engine's minimum batch " + std::to_string(min_batch) + " does not fit batch size " +
                         std::to_string(batch_size));
    }
    std::vector<BatchSlice> plan;
    plan.reserve(static_cast<std::size_t>((n + batch_size - 1) / batch_size));
    for (std::int64_t start = 0; start < n; start += batch_size) {
        const std::int64_t rows = std::min(batch_size, n - start);
        plan.push_back({start, rows, std::max(rows, min_batch)});
    }
    return plan;
}

}  // namespace trt_equiv
