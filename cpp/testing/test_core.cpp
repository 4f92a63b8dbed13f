// Unit tests of the runner core (no TensorRT, no GPU). A plain binary registered with ctest: it prints each
// failed check and exits non-zero when any failed. No test framework, so the build needs no download.
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "trt_equiv/batching.hpp"
#include "trt_equiv/errors.hpp"
#include "trt_equiv/half.hpp"
#include "trt_equiv/npy.hpp"
#include "trt_equiv/runner.hpp"
#include "trt_equiv/timing.hpp"

namespace {

int g_failures = 0;
int g_checks = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        ++g_checks;                                                                     \
        if (!(cond)) {                                                                  \
            ++g_failures;                                                               \
            std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond "\n"; \
        }                                                                               \
    } while (0)

/// Expect ``fn`` to throw ExceptionT whose message contains ``needle``.
template <typename ExceptionT>
void check_throws(const std::function<void()>& fn, const std::string& needle, int line) {
    ++g_checks;
    try {
        fn();
    } catch (const ExceptionT& e) {
        if (std::string(e.what()).find(needle) == std::string::npos) {
            ++g_failures;
            std::cerr << __FILE__ << ":" << line << ": message lacks '" << needle << "': " << e.what() << "\n";
        }
        return;
    } catch (const std::exception& e) {
        ++g_failures;
        std::cerr << __FILE__ << ":" << line << ": wrong exception type: " << e.what() << "\n";
        return;
    }
    ++g_failures;
    std::cerr << __FILE__ << ":" << line << ": expected an exception containing '" << needle << "'\n";
}
#define CHECK_THROWS(Type, expr, needle) check_throws<Type>([&] { expr; }, needle, __LINE__)

float bits_to_float(std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

void test_half() {
    // Every half survives half -> float -> half; NaNs stay NaN.
    int mismatches = 0;
    for (std::uint32_t h = 0; h <= 0xffffu; ++h) {
        const float f = trt_equiv::half_bits_to_float(static_cast<std::uint16_t>(h));
        const std::uint16_t back = trt_equiv::float_to_half_bits(f);
        const bool is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (is_nan ? !std::isnan(f) || (back & 0x7c00u) != 0x7c00u || !(back & 0x3ffu) : back != h) ++mismatches;
    }
    CHECK(mismatches == 0);
    // Midpoints between neighbouring finite halves round to the even one; just above rounds up.
    int rounding_errors = 0;
    for (std::uint32_t h = 0; h < 0x7bffu; ++h) {
        const double lo = trt_equiv::half_bits_to_float(static_cast<std::uint16_t>(h));
        const double hi = trt_equiv::half_bits_to_float(static_cast<std::uint16_t>(h + 1));
        const auto mid = static_cast<float>((lo + hi) / 2);  // exact: a half midpoint fits in a float
        const std::uint16_t even = (h & 1u) ? static_cast<std::uint16_t>(h + 1) : static_cast<std::uint16_t>(h);
        if (trt_equiv::float_to_half_bits(mid) != even) ++rounding_errors;
        if (trt_equiv::float_to_half_bits(std::nextafter(mid, 1e9f)) != h + 1) ++rounding_errors;
        if (trt_equiv::float_to_half_bits(-mid) != (even | 0x8000u)) ++rounding_errors;
    }
    CHECK(rounding_errors == 0);
    const double max_half = trt_equiv::half_bits_to_float(0x7bffu);
    const double ulp_at_max = max_half - trt_equiv::half_bits_to_float(0x7bfeu);
    CHECK(trt_equiv::float_to_half_bits(static_cast<float>(max_half + ulp_at_max / 2)) == 0x7c00u);  // ties up: inf
    CHECK(trt_equiv::float_to_half_bits(1e30f) == 0x7c00u);
    CHECK(trt_equiv::float_to_half_bits(-1e30f) == 0xfc00u);
    CHECK(trt_equiv::float_to_half_bits(bits_to_float(0x7f800000u)) == 0x7c00u);
    CHECK((trt_equiv::float_to_half_bits(bits_to_float(0x7fc00000u)) & 0x7e00u) == 0x7e00u);
    CHECK(trt_equiv::float_to_half_bits(bits_to_float(0x7f800001u)) != 0x7c00u);  // a tiny-payload NaN stays NaN
    CHECK(trt_equiv::float_to_half_bits(-0.0f) == 0x8000u);
    CHECK(trt_equiv::float_to_half_bits(1e-10f) == 0u);  // far below the smallest subnormal
}

std::vector<unsigned char> bytes_of(const std::string& header, const std::vector<unsigned char>& data) {
    std::vector<unsigned char> out(header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

void test_npy() {
    using trt_equiv::DType;
    using trt_equiv::InputError;
    for (int version : {0, 1, 2, 3}) {
        for (const auto& shape : std::vector<std::vector<std::int64_t>>{{}, {0}, {5}, {2, 3, 4}, {1000000000, 0}}) {
            for (const DType dtype : {DType::kFloat32, DType::kFloat16}) {
                const std::string header = trt_equiv::npy_header(dtype, shape, version);
                CHECK(header.size() % 64 == 0);
                const auto n = static_cast<std::size_t>(trt_equiv::shape_elements(shape));
                std::vector<unsigned char> data(n * trt_equiv::dtype_size(dtype));
                for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 37 + 11);
                const auto file = bytes_of(header, data);
                const auto arr = trt_equiv::parse_npy(file.data(), file.size(), "mem");
                CHECK(arr.dtype == dtype);
                CHECK(arr.shape == shape);
                CHECK(arr.data == data);
                CHECK(arr.version_major == (version == 0 ? 1 : version));
            }
        }
    }
    const std::vector<float> values = {1.0f, -2.5f, 3.25f, 1e-40f};
    std::vector<unsigned char> raw(values.size() * 4);
    std::memcpy(raw.data(), values.data(), raw.size());
    const auto good = bytes_of(trt_equiv::npy_header(DType::kFloat32, {2, 2}), raw);
    CHECK(trt_equiv::parse_npy(good.data(), good.size(), "mem").to_float32() == values);

    auto truncated = good;
    truncated.pop_back();
    CHECK_THROWS(InputError, trt_equiv::parse_npy(truncated.data(), truncated.size(), "t.npy"), "truncated");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(good.data(), 20, "t.npy"), "truncated");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(good.data(), 7, "t.npy"), "bad magic");
    auto trailing = good;
    trailing.push_back(0);
    CHECK_THROWS(InputError, trt_equiv::parse_npy(trailing.data(), trailing.size(), "t.npy"), "trailing");
    auto bad_magic = good;
    bad_magic[1] = 'X';
    CHECK_THROWS(InputError, trt_equiv::parse_npy(bad_magic.data(), bad_magic.size(), "t.npy"), "bad magic");
    auto bad_version = good;
    bad_version[6] = 4;
    CHECK_THROWS(InputError, trt_equiv::parse_npy(bad_version.data(), bad_version.size(), "t.npy"), "version 4.0");

    const auto with_dict = [&](const std::string& dict) {
        std::string h = "\x93NUMPY";
        h += '\x01';
        h += '\x00';
        const std::size_t len = dict.size() + 1;
        h += static_cast<char>(len & 0xff);
        h += static_cast<char>(len >> 8);
        h += dict + "\n";
        return bytes_of(h, raw);
    };
    const auto f64 = with_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(f64.data(), f64.size(), "t.npy"), "float64");
    const auto fortran = with_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(fortran.data(), fortran.size(), "t.npy"), "Fortran");
    const auto big_endian = with_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(big_endian.data(), big_endian.size(), "t.npy"), "big-endian");
    const auto no_shape = with_dict("{'descr': '<f4', 'fortran_order': False, }");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(no_shape.data(), no_shape.size(), "t.npy"), "'shape'");
    const auto garbage = with_dict("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,)}");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(garbage.data(), garbage.size(), "t.npy"), "True or False");
    const auto negative = with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}");
    CHECK_THROWS(InputError, trt_equiv::parse_npy(negative.data(), negative.size(), "t.npy"), "non-negative");
    const auto dq = with_dict("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (4,)}");
    CHECK(trt_equiv::parse_npy(dq.data(), dq.size(), "t.npy").shape == std::vector<std::int64_t>{4});
    CHECK_THROWS(InputError, trt_equiv::read_npy("/nonexistent/dir/x.npy"), "no such file");
    CHECK(trt_equiv::format_shape({5}) == "(5,)");
    CHECK(trt_equiv::format_shape({2, 3}) == "(2, 3)");
}

void test_batching() {
    for (std::int64_t n = 1; n <= 70; ++n) {
        for (std::int64_t b = 1; b <= 33; ++b) {
            const auto plan = trt_equiv::plan_batches(n, b);
            std::int64_t next = 0;
            bool ok = true;
            for (std::size_t i = 0; i < plan.size(); ++i) {
                ok = ok && plan[i].start == next && plan[i].rows >= 1 && plan[i].rows <= b && plan[i].run_rows == plan[i].rows;
                ok = ok && (i + 1 == plan.size() || plan[i].rows == b);  // only the last may be partial
                next += plan[i].rows;
            }
            CHECK(ok && next == n);
        }
    }
    const auto p = trt_equiv::plan_batches(100, 32);
    CHECK(p.size() == 4 && p.back().start == 96 && p.back().rows == 4);
    const auto padded = trt_equiv::plan_batches(10, 8, 8);  // fixed-batch engine
    CHECK(padded.size() == 2 && padded[1].rows == 2 && padded[1].run_rows == 8);
    CHECK_THROWS(trt_equiv::InputError, trt_equiv::plan_batches(0, 8), "at least one sample");
    CHECK_THROWS(trt_equiv::UsageError, trt_equiv::plan_batches(5, 0), "batch size");
    CHECK_THROWS(trt_equiv::UsageError, trt_equiv::plan_batches(5, 4, 8), "minimum batch");
}

void test_timing() {
    std::vector<double> v;
    for (int i = 100; i >= 1; --i) v.push_back(i);  // unsorted on purpose
    // numpy.percentile(np.arange(1, 101), q) == 1 + 0.99 * q (linear interpolation)
    for (const double q : {0.0, 12.5, 50.0, 90.0, 99.0, 100.0}) CHECK(std::fabs(trt_equiv::percentile(v, q) - (1 + 0.99 * q)) < 1e-9);
    const auto s = trt_equiv::summarize({4.0, 1.0, 3.0, 2.0});
    CHECK(s.count == 4 && s.min == 1.0 && s.max == 4.0 && s.mean == 2.5 && s.median == 2.5);
    CHECK(trt_equiv::summarize({7.0}).p99 == 7.0);
    CHECK_THROWS(trt_equiv::InternalError, trt_equiv::summarize({}), "empty");
    CHECK(trt_equiv::json_string("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
    CHECK(trt_equiv::json_number(0.1) == "0.10000000000000001");
    CHECK(trt_equiv::json_number(std::nan("")) == "null");
}

void test_cli_parse() {
    using trt_equiv::UsageError;
    const auto o = trt_equiv::parse_cli({"--engine", "e", "--input=i.npy", "--output", "o.npy", "--batch-size", "7",
                                         "--warmup", "2", "--iterations", "3", "--timing-json", "t.json"});
    CHECK(o.engine == "e" && o.inputs == std::vector<std::string>{"i.npy"} && o.output == "o.npy" && o.timing_json == "t.json");
    CHECK(o.run.batch_size == 7 && o.run.warmup == 2 && o.run.iterations == 3);
    CHECK(trt_equiv::parse_cli({"--help"}).help);
    const auto multi = trt_equiv::parse_cli({"--engine", "e", "--input", "ids=a.npy", "--input", "mask=b.npy",
                                             "--output-dir", "out"});
    CHECK(multi.inputs == (std::vector<std::string>{"ids=a.npy", "mask=b.npy"}) && multi.output_dir == "out");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"--engine", "e"}), "--input --output or --output-dir");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"--engine", "e", "--input", "i", "--output", "o", "--output-dir", "d"}), "not both");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"--engine", "e", "--input", "i", "--output", "o", "--bogus", "1"}), "unknown option");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"--engine", "e", "--input", "i", "--output", "o", "--batch-size", "3x"}), "integer");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"--engine", "e", "--input", "i", "--output", "o", "--batch-size", "0"}), "must be in");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"--engine"}), "needs a value");
    CHECK_THROWS(UsageError, trt_equiv::parse_cli({"stray"}), "unexpected argument");

    using P = std::vector<std::pair<std::string, std::string>>;
    const std::vector<trt_equiv::TensorDesc> one = {{"x", {2}, trt_equiv::DType::kFloat32}};
    const std::vector<trt_equiv::TensorDesc> two = {{"ids:0", {-1}, trt_equiv::DType::kInt32},
                                                    {"a=b", {-1}, trt_equiv::DType::kBool}};
    CHECK(trt_equiv::resolve_inputs({"dir/x=1.npy"}, one) == (P{{"x", "dir/x=1.npy"}}));  // a path with '=' is a path
    CHECK(trt_equiv::resolve_inputs({"x=in.npy"}, one) == (P{{"x", "in.npy"}}));
    CHECK(trt_equiv::resolve_inputs({"a=b=m.npy", "ids:0=t=1.npy"}, two) == (P{{"a=b", "m.npy"}, {"ids:0", "t=1.npy"}}));
    CHECK_THROWS(UsageError, trt_equiv::resolve_inputs({"t.npy", "a=b=m.npy"}, two), "names no engine input");
    CHECK_THROWS(UsageError, trt_equiv::resolve_inputs({"a.npy", "b.npy"}, one), "names no engine input");
    CHECK_THROWS(UsageError, trt_equiv::resolve_inputs({"ids:0=a.npy", "ids:0=b.npy"}, two), "given twice");

    const auto files = trt_equiv::output_file_names({{"probs", {}, trt_equiv::DType::kFloat32},
                                                     {"out/../x:0", {}, trt_equiv::DType::kFloat32},
                                                     {".hidden", {}, trt_equiv::DType::kFloat32},
                                                     {"probs", {}, trt_equiv::DType::kFloat32}});
    CHECK(files == (std::vector<std::string>{"probs.npy", "out_.._x_0.npy", "_.hidden.npy", "probs__3.npy"}));
}

/// Two inputs a (N, 2) float32 and b (N, 1) int32 -> sum (N, 1) = a0*2 + a1 + b, copy (N, 1) int64 = b:
/// row identity survives, so order, count and pairing of the inputs' rows are visible.
class FakeEngine final : public trt_equiv::InferenceEngine {
public:
    trt_equiv::BatchLimits limits;
    std::int64_t short_by = 0;
    std::vector<std::int64_t> seen_rows;
    std::int64_t prepared = 0;

    std::string describe() const override { return "fake"; }
    std::vector<trt_equiv::TensorDesc> inputs() const override {
        return {{"a", {2}, trt_equiv::DType::kFloat32}, {"b", {1}, trt_equiv::DType::kInt32}};
    }
    std::vector<trt_equiv::TensorDesc> outputs() const override {
        return {{"sum", {1}, trt_equiv::DType::kFloat32}, {"copy", {1}, trt_equiv::DType::kInt64}};
    }
    trt_equiv::BatchLimits batch_limits() const override { return limits; }
    void prepare(const std::vector<std::vector<std::int64_t>>& shapes, std::int64_t max_rows) override {
        CHECK(shapes.size() == 2);
        prepared = max_rows;
    }
    std::int64_t infer(const std::vector<const void*>& in, std::int64_t rows, const std::vector<void*>& out) override {
        seen_rows.push_back(rows);
        const auto* a = static_cast<const float*>(in[0]);
        const auto* b = static_cast<const std::int32_t*>(in[1]);
        for (std::int64_t i = 0; i < rows; ++i) {
            static_cast<float*>(out[0])[i] = a[2 * i] * 2 + a[2 * i + 1] + static_cast<float>(b[i]);
            static_cast<std::int64_t*>(out[1])[i] = b[i];
        }
        return rows - short_by;
    }
};

trt_equiv::NpyArray make_array(trt_equiv::DType dtype, std::vector<std::int64_t> shape, const void* values) {
    trt_equiv::NpyArray a;
    a.dtype = dtype;
    a.shape = std::move(shape);
    const auto bytes = static_cast<std::size_t>(a.elements()) * trt_equiv::dtype_size(dtype);
    a.data.resize(bytes);
    std::memcpy(a.data.data(), values, bytes);
    return a;
}

void test_run_batches() {
    using trt_equiv::DType;
    const std::int64_t n = 11;
    std::vector<float> av;
    std::vector<std::int64_t> bv;  // int64 data for the engine's int32 input: converted, range-checked
    for (std::int64_t i = 0; i < n; ++i) {
        av.push_back(static_cast<float>(i));
        av.push_back(static_cast<float>(-i));
        bv.push_back(100 * i);
    }
    const std::vector<trt_equiv::NamedArray> in = {{"b", make_array(DType::kInt64, {n, 1}, bv.data()), "b.npy"},
                                                   {"a", make_array(DType::kFloat32, {n, 2}, av.data()), "a.npy"}};
    const auto sum_ok = [&](const trt_equiv::RunResult& r) {
        bool ok = r.outputs.size() == 2 && r.outputs[0].shape == (std::vector<std::int64_t>{n, 1});
        for (std::int64_t i = 0; ok && i < n; ++i) {
            float s = 0;
            std::int64_t c = 0;
            std::memcpy(&s, r.outputs[0].data.data() + 4 * i, 4);
            std::memcpy(&c, r.outputs[1].data.data() + 8 * i, 8);
            ok = s == static_cast<float>(i + 100 * i) && c == 100 * i;
        }
        return ok;
    };
    {
        FakeEngine e;
        trt_equiv::RunOptions opt;
        opt.batch_size = 4;
        opt.warmup = 1;
        opt.iterations = 2;
        const auto r = trt_equiv::run_batches(e, in, opt);  // given in another order than the engine's: by name
        CHECK(sum_ok(r));
        CHECK(r.outputs[1].desc.dtype == DType::kInt64 && r.inputs[1].dtype == DType::kInt32);
        CHECK(e.prepared == 4);
        CHECK(e.seen_rows == (std::vector<std::int64_t>{4, 4, 3, 4, 4, 3, 4, 4, 3}));  // 3 passes, last batch partial
        CHECK(r.pass_ms.size() == 2 && r.batch_ms.size() == 6 && r.compute_ms.empty());
        const std::string json = trt_equiv::timing_json(r, opt, "e.plan", "fake");
        CHECK(json.find("\"samples\": 11") != std::string::npos);
        CHECK(json.find("\"last_batch_rows\": 3") != std::string::npos);
        CHECK(json.find("\"name\": \"copy\", \"shape\": [11, 1], \"engine_dtype\": \"int64\"") != std::string::npos);
        const std::string desc = trt_equiv::describe_json(e);
        CHECK(desc.find("\"file\": \"copy.npy\"") != std::string::npos && desc.find("\"name\": \"b\"") != std::string::npos);
    }
    {
        FakeEngine e;  // fixed batch 4: the last 3 samples of every input run padded to 4; only 3 rows come back
        e.limits = {4, 4};
        const auto r = trt_equiv::run_batches(e, in, {});
        CHECK(r.batch_size == 4 && e.seen_rows == (std::vector<std::int64_t>{4, 4, 4}));
        CHECK(sum_ok(r));
    }
    {
        FakeEngine e;
        e.limits = {1, 8};
        CHECK(trt_equiv::run_batches(e, in, {}).batch_size == 8);  // default: the engine's maximum
        trt_equiv::RunOptions opt;
        opt.batch_size = 9;
        CHECK_THROWS(trt_equiv::UsageError, trt_equiv::run_batches(e, in, opt), "maximum batch 8");
    }
    {
        FakeEngine e;
        e.short_by = 1;
        CHECK_THROWS(trt_equiv::InternalError, trt_equiv::run_batches(e, in, {}), "rows for a batch of");
    }
    {
        FakeEngine e;
        auto bad = in;
        bad[1].array.shape = {n, 1, 2};
        CHECK_THROWS(trt_equiv::InputError, trt_equiv::run_batches(e, bad, {}), "a.npy: per-sample shape (1, 2)");
        bad = in;
        bad[1].array.shape = {n - 1, 2};
        bad[1].array.data.resize(static_cast<std::size_t>(2 * (n - 1)) * 4);
        CHECK_THROWS(trt_equiv::InputError, trt_equiv::run_batches(e, bad, {}), "same number of samples");
        CHECK_THROWS(trt_equiv::UsageError, trt_equiv::run_batches(e, {in[0]}, {}), "missing input 'a'");
        bad = in;
        bad[1].name = "c";
        CHECK_THROWS(trt_equiv::UsageError, trt_equiv::run_batches(e, bad, {}), "no input 'c'; its inputs are 'a', 'b'");
        bad = in;
        const std::int64_t huge[] = {std::int64_t{1} << 40};
        bad[0].array = make_array(DType::kInt64, {1, 1}, huge);
        bad[1].array = make_array(DType::kFloat32, {1, 2}, av.data());
        CHECK_THROWS(trt_equiv::InputError, trt_equiv::run_batches(e, bad, {}), "does not fit the engine's int32");
        bad = in;
        bad[1].array = make_array(DType::kInt32, {n, 2}, av.data());
        CHECK_THROWS(trt_equiv::InputError, trt_equiv::run_batches(e, bad, {}), "the engine tensor is float32, the array is int32");
    }
}

void test_npy_dtypes() {
    using trt_equiv::DType;
    const std::int32_t ints[] = {1, -2, 3};
    const bool flags[] = {true, false, true};
    for (const auto& [dtype, values] : {std::pair<DType, const void*>{DType::kInt32, ints}, {DType::kBool, flags}}) {
        const std::string bytes = trt_equiv::npy_header(dtype, {3}) +
                                  std::string(static_cast<const char*>(values), 3 * trt_equiv::dtype_size(dtype));
        const auto a = trt_equiv::parse_npy(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "t");
        CHECK(a.dtype == dtype && a.shape == std::vector<std::int64_t>{3});
        CHECK(std::memcmp(a.data.data(), values, 3 * trt_equiv::dtype_size(dtype)) == 0);
    }
    CHECK(std::string(trt_equiv::dtype_descr(DType::kBool)) == "|b1" && std::string(trt_equiv::dtype_descr(DType::kInt64)) == "<i8");
    const auto wide = trt_equiv::convert_dtype(make_array(DType::kInt32, {3}, ints), DType::kInt64, "t");
    std::int64_t back[3] = {};
    std::memcpy(back, wide.data.data(), sizeof back);
    CHECK(back[0] == 1 && back[1] == -2 && back[2] == 3);
}

}  // namespace

int main() {
    test_half();
    test_npy();
    test_batching();
    test_timing();
    test_cli_parse();
    test_run_batches();
    test_npy_dtypes();
    std::cout << g_checks - g_failures << "/" << g_checks << " checks passed\n";
    return g_failures == 0 ? 0 : 1;
}
