// Timing statistics and the small JSON writer the timing report needs.
//
// Percentiles use linear interpolation between closest ranks, NumPy's default, so numbers computed here
// and by the Python benchmarks over the same samples agree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trt_equiv {

/// q-th percentile (0..100) of ``values`` with linear interpolation (numpy.percentile's default method).
/// Throws InternalError on an empty vector or q outside [0, 100].
double percentile(std::vector<double> values, double q);

struct Summary {
    std::int64_t count = 0;
    double min = 0, mean = 0, median = 0, p90 = 0, p99 = 0, max = 0;
};

/// count/min/mean/median/p90/p99/max of ``values`` (which must not be empty).
Summary summarize(const std::vector<double>& values);

/// JSON string literal for ``s`` (quotes included; control characters escaped).
std::string json_string(const std::string& s);
/// JSON number for ``v`` with round-trip precision; non-finite values become null (JSON has no NaN).
std::string json_number(double v);
/// JSON array of numbers.
std::string json_array(const std::vector<double>& values);
/// JSON object {"count":..,"min":..,...,"max":..} for a Summary.
std::string json_summary(const Summary& s);

}  // namespace trt_equiv
