#include "trt_equiv/timing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "trt_equiv/errors.hpp"

namespace trt_equiv {

double percentile(std::vector<double> values, double q) {
    if (values.empty()) throw InternalError("percentile of an empty set of timings");
    if (!(q >= 0.0 && q <= 100.0)) throw InternalError("percentile rank must be in [0, 100]");
    std::sort(values.begin(), values.end());
    const double pos = q / 100.0 * static_cast<double>(values.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, values.size() - 1);
    const double frac = pos - static_cast<double>(lo);
    return values[lo] + (values[hi] - values[lo]) * frac;
}

Summary summarize(const std::vector<double>& values) {
    if (values.empty()) throw InternalError("summary of an empty set of timings");
    Summary s;
    s.count = static_cast<std::int64_t>(values.size());
    const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
    s.min = *mn;
    s.max = *mx;
    s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    s.median = percentile(values, 50.0);
    s.p90 = percentile(values, 90.0);
    s.p99 = percentile(values, 99.0);
    return s;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

std::string json_array(const std::vector<double>& values) {
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ", ";
        out += json_number(values[i]);
    }
    return out + "]";
}

std::string json_summary(const Summary& s) {
    return "{\"count\": " + std::to_string(s.count) + ", \"min\": " + json_number(s.min) +
           ", \"mean\": " + json_number(s.mean) + ", \"median\": " + json_number(s.median) +
           ", \"p90\": " + json_number(s.p90) + ", \"p99\": " + json_number(s.p99) +
           ", \"max\": " + json_number(s.max) + "}";
}

}  // namespace trt_equiv
