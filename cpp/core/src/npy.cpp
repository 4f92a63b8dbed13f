#include "trt_equiv/npy.hpp"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <system_error>

#include "trt_equiv/errors.hpp"
#include "trt_equiv/half.hpp"

namespace trt_equiv {
namespace {

constexpr unsigned char kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMagicSize = sizeof kMagic;
constexpr std::size_t kAlign = 64;  // NumPy aligns the data start to 64 bytes
// NumPy leaves room in the header for the first dimension to grow to this many digits (in-place appends).
constexpr std::size_t kGrowthAxisMaxDigits = 21;

bool host_is_little_endian() noexcept {
    const std::uint16_t probe = 1;
    unsigned char first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

std::uint32_t read_le(const unsigned char* p, std::size_t n) noexcept {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
    return v;
}

/// A strict parser for the Python literal NumPy writes as the header: a dict of 'descr' (str),
/// 'fortran_order' (bool) and 'shape' (tuple of ints). Anything else is an error, never a guess.
class HeaderParser {
public:
    HeaderParser(std::string text, std::string what) : s_(std::move(text)), what_(std::move(what)) {}

    void parse(std::string& descr, bool& fortran_order, std::vector<std::int64_t>& shape) {
        bool have_descr = false, have_fortran = false, have_shape = false;
        expect('{');
        while (true) {
            skip_ws();
            if (peek() == '}') {
                ++pos_;
                break;
            }
            const std::string key = parse_string();
            expect(':');
            if (key == "descr") {
                descr = parse_string();
                have_descr = true;
            } else if (key == "fortran_order") {
                fortran_order = parse_bool();
                have_fortran = true;
            } else if (key == "shape") {
                shape = parse_shape();
                have_shape = true;
            } else {
                fail("unexpected key '" + key + "' (expected only 'descr', 'fortran_order', 'shape')");
            }
            skip_ws();
            if (peek() == ',') {
                ++pos_;
            } else if (peek() != '}') {
                fail("expected ',' or '}'");
            }
        }
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the header dict");
        if (!have_descr || !have_fortran || !have_shape) {
            fail("missing key(s):" + std::string(have_descr ? "" : " 'descr'") +
                 (have_fortran ? "" : " 'fortran_order'") + (have_shape ? "" : " 'shape'"));
        }
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw InputError(what_ + ": malformed .npy header (" + why + " at offset " + std::to_string(pos_) +
                         "): " + s_);
    }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void skip_ws() {
        while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    void expect(char c) {
        skip_ws();
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    std::string parse_string() {
        skip_ws();
        const char quote = peek();
        if (quote != '\'' && quote != '"') fail("expected a quoted string");
        const std::size_t end = s_.find(quote, pos_ + 1);
        if (end == std::string::npos) fail("unterminated string");
        std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        return out;
    }
    bool parse_bool() {
        skip_ws();
        if (s_.compare(pos_, 4, "True") == 0) {
            pos_ += 4;
            return true;
        }
        if (s_.compare(pos_, 5, "False") == 0) {
            pos_ += 5;
            return false;
        }
        fail("expected True or False");
    }
    std::vector<std::int64_t> parse_shape() {
        expect('(');
        std::vector<std::int64_t> shape;
        while (true) {
            skip_ws();
            if (peek() == ')') {
                ++pos_;
                return shape;
            }
            if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer dimension");
            std::int64_t v = 0;
            while (std::isdigit(static_cast<unsigned char>(peek()))) {
                const int digit = s_[pos_++] - '0';
                if (v > (std::numeric_limits<std::int64_t>::max() - digit) / 10) fail("dimension too large");
                v = v * 10 + digit;
            }
            // NumPy writes Python ints; tolerate the 'L' suffix of Python 2 era files.
            if (peek() == 'L') ++pos_;
            shape.push_back(v);
            skip_ws();
            if (peek() == ',') {
                ++pos_;
            } else if (peek() != ')') {
                fail("expected ',' or ')' in shape");
            }
        }
    }

    std::string s_;
    std::string what_;
    std::size_t pos_ = 0;
};

DType dtype_from_descr(const std::string& descr, const std::string& what) {
    if (descr == "<f4") return DType::kFloat32;
    if (descr == "<f2") return DType::kFloat16;
    if (descr == "<i4") return DType::kInt32;
    if (descr == "<i8") return DType::kInt64;
    if (descr == "|b1") return DType::kBool;
    std::string hint;
    if (descr.size() >= 2 && descr[0] == '>') {
        hint = " (big-endian; convert with x.astype(x.dtype.newbyteorder('<')))";
    } else if (descr == "<f8") {
        hint = " (float64; convert with x.astype(np.float32))";
    } else if (!descr.empty() && (descr[0] == '|' || descr[0] == '<') && descr.size() >= 2) {
        hint = descr[1] == 'i' || descr[1] == 'u' ? " (an integer type of another width or signedness)" : "";
    } else if (!descr.empty() && (descr[0] == '[' || descr[0] == '{')) {
        hint = " (a structured type)";
    }
    throw InputError(what + ": unsupported dtype '" + descr + "'" + hint +
                     "; expected float32 '<f4', float16 '<f2', int32 '<i4', int64 '<i8' or bool '|b1'");
}

}  // namespace

std::size_t dtype_size(DType dtype) noexcept {
    switch (dtype) {
        case DType::kFloat16: return 2;
        case DType::kInt64: return 8;
        case DType::kBool: return 1;
        case DType::kFloat32:
        case DType::kInt32: break;
    }
    return 4;
}

const char* dtype_name(DType dtype) noexcept {
    switch (dtype) {
        case DType::kFloat16: return "float16";
        case DType::kInt32: return "int32";
        case DType::kInt64: return "int64";
        case DType::kBool: return "bool";
        case DType::kFloat32: break;
    }
    return "float32";
}

const char* dtype_descr(DType dtype) noexcept {
    switch (dtype) {
        case DType::kFloat16: return "<f2";
        case DType::kInt32: return "<i4";
        case DType::kInt64: return "<i8";
        case DType::kBool: return "|b1";
        case DType::kFloat32: break;
    }
    return "<f4";
}

bool is_float(DType dtype) noexcept { return dtype == DType::kFloat32 || dtype == DType::kFloat16; }

NpyArray convert_dtype(const NpyArray& a, DType target, const std::string& what) {
    if (a.dtype == target) return a;
    NpyArray out;
    out.dtype = target;
    out.shape = a.shape;
    out.version_major = a.version_major;
    const auto n = static_cast<std::size_t>(a.elements());
    out.data.resize(n * dtype_size(target));
    if (a.dtype == DType::kFloat32 && target == DType::kFloat16) {
        std::vector<float> f(n);
        if (n) std::memcpy(f.data(), a.data.data(), n * sizeof(float));
        std::vector<std::uint16_t> h(n);
        floats_to_halves(f.data(), h.data(), n);
        if (n) std::memcpy(out.data.data(), h.data(), n * sizeof(std::uint16_t));
    } else if (a.dtype == DType::kFloat16 && target == DType::kFloat32) {
        const std::vector<float> f = a.to_float32();
        if (n) std::memcpy(out.data.data(), f.data(), n * sizeof(float));
    } else if (a.dtype == DType::kInt32 && target == DType::kInt64) {
        for (std::size_t i = 0; i < n; ++i) {
            std::int32_t v = 0;
            std::memcpy(&v, a.data.data() + i * 4, 4);
            const std::int64_t w = v;
            std::memcpy(out.data.data() + i * 8, &w, 8);
        }
    } else if (a.dtype == DType::kInt64 && target == DType::kInt32) {
        for (std::size_t i = 0; i < n; ++i) {
            std::int64_t v = 0;
            std::memcpy(&v, a.data.data() + i * 8, 8);
            if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max()) {
                throw InputError(what + ": int64 value " + std::to_string(v) + " at flat index " + std::to_string(i) +
                                 " does not fit the engine's int32 tensor; rebuild the engine with int64 input");
            }
            const auto w = static_cast<std::int32_t>(v);
            std::memcpy(out.data.data() + i * 4, &w, 4);
        }
    } else {
        throw InputError(what + ": the engine tensor is " + dtype_name(target) + ", the array is " +
                         dtype_name(a.dtype) + " (the runner converts only float32<->float16 and int32<->int64)");
    }
    return out;
}

std::string format_shape(const std::vector<std::int64_t>& shape) {
    std::string out = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(shape[i]);
    }
    if (shape.size() == 1) out += ",";
    return out + ")";
}

std::int64_t shape_elements(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (const std::int64_t d : shape) {
        if (d < 0) throw InputError("negative dimension in shape " + format_shape(shape));
        if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d) {
            throw InputError("shape " + format_shape(shape) + " has too many elements");
        }
        n *= d;
    }
    return n;
}

std::vector<float> NpyArray::to_float32() const {
    if (!is_float(dtype)) throw InputError(std::string("expected a float array, got ") + dtype_name(dtype));
    const auto n = static_cast<std::size_t>(elements());
    std::vector<float> out(n);
    if (dtype == DType::kFloat32) {
        if (n) std::memcpy(out.data(), data.data(), n * sizeof(float));
    } else {
        std::vector<std::uint16_t> halves(n);
        if (n) std::memcpy(halves.data(), data.data(), n * sizeof(std::uint16_t));
        halves_to_floats(halves.data(), out.data(), n);
    }
    return out;
}

NpyArray parse_npy(const unsigned char* bytes, std::size_t size, const std::string& what) {
    if (!host_is_little_endian()) throw InputError(what + ": this runner supports little-endian hosts only");
    if (size < kMagicSize + 2 || std::memcmp(bytes, kMagic, kMagicSize) != 0) {
        throw InputError(what + ": not a .npy file (bad magic: expected the 6 bytes \\x93NUMPY at the start, "
                                "file has " + std::to_string(size) + " bytes)");
    }
    NpyArray arr;
    arr.version_major = bytes[kMagicSize];
    const int minor = bytes[kMagicSize + 1];
    std::size_t len_size = 0;
    switch (arr.version_major) {
        case 1: len_size = 2; break;
        case 2:
        case 3: len_size = 4; break;  // 3.0 only changes the header encoding to UTF-8
        default:
            throw InputError(what + ": unsupported .npy format version " + std::to_string(arr.version_major) + "." +
                             std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)");
    }
    const std::size_t prefix = kMagicSize + 2 + len_size;
    if (size < prefix) throw InputError(what + ": truncated .npy file (ends inside the header length)");
    const std::size_t header_len = read_le(bytes + kMagicSize + 2, len_size);
    if (size - prefix < header_len) {
        throw InputError(what + ": truncated .npy file (header says " + std::to_string(header_len) +
                         " header bytes, file has " + std::to_string(size - prefix) + " after the prefix)");
    }
    std::string header(reinterpret_cast<const char*>(bytes + prefix), header_len);
    std::string descr;
    bool fortran_order = false;
    HeaderParser(header, what).parse(descr, fortran_order, arr.shape);
    arr.dtype = dtype_from_descr(descr, what);
    if (fortran_order) {
        // NumPy writes True only for data that is column-major and not also row-major; reading it as C order
        // would silently transpose every sample, so refuse.
        throw InputError(what + ": Fortran-order (column-major) arrays are not supported; save with "
                                "np.save(path, np.ascontiguousarray(x))");
    }
    std::int64_t elements = 0;
    try {
        elements = shape_elements(arr.shape);
    } catch (const InputError& e) {
        throw InputError(what + ": " + e.what());
    }
    const std::size_t item = dtype_size(arr.dtype);
    if (static_cast<std::uint64_t>(elements) > std::numeric_limits<std::size_t>::max() / item) {
        throw InputError(what + ": shape " + format_shape(arr.shape) + " is too large");
    }
    const std::size_t want = static_cast<std::size_t>(elements) * item;
    const std::size_t have = size - prefix - header_len;
    if (have < want) {
        throw InputError(what + ": truncated .npy file: shape " + format_shape(arr.shape) + " " +
                         dtype_name(arr.dtype) + " needs " + std::to_string(want) + " data bytes, file has " +
                         std::to_string(have));
    }
    if (have > want) {
        throw InputError(what + ": .npy file has " + std::to_string(have - want) +
                         " unexpected trailing bytes after the data of shape " + format_shape(arr.shape));
    }
    arr.data.assign(bytes + prefix + header_len, bytes + size);
    return arr;
}

NpyArray read_npy(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        throw InputError(path + ": " + (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path + ": cannot open for reading");
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw InputError(path + ": read error");
    return parse_npy(bytes.data(), bytes.size(), path);
}

std::string npy_header(DType dtype, const std::vector<std::int64_t>& shape, int version) {
    // Same text and padding as numpy.lib.format so files are byte-identical to np.save's.
    std::string dict = std::string("{'descr': '") + dtype_descr(dtype) + "', 'fortran_order': False, 'shape': " +
                       format_shape(shape) + ", }";
    if (!shape.empty()) {
        const std::size_t digits = std::to_string(shape[0]).size();
        if (digits < kGrowthAxisMaxDigits) dict.append(kGrowthAxisMaxDigits - digits, ' ');
    }
    const auto wrap = [&](int major) {
        const std::size_t len_size = major == 1 ? 2 : 4;
        const std::size_t hlen = dict.size() + 1;  // + the final newline
        const std::size_t pad = kAlign - (kMagicSize + 2 + len_size + hlen) % kAlign;
        const std::size_t total = hlen + pad;
        if (major == 1 && total > 0xffffu) return std::string();
        std::string out(reinterpret_cast<const char*>(kMagic), kMagicSize);
        out += static_cast<char>(major);
        out += '\0';
        for (std::size_t i = 0; i < len_size; ++i) out += static_cast<char>((total >> (8 * i)) & 0xffu);
        out += dict;
        out.append(pad, ' ');
        out += '\n';
        return out;
    };
    if (version == 0) {
        std::string v1 = wrap(1);
        return v1.empty() ? wrap(2) : v1;
    }
    if (version < 1 || version > 3) throw InputError("npy_header: version must be 1, 2 or 3, got " + std::to_string(version));
    std::string out = wrap(version);
    if (out.empty()) throw InputError("npy_header: header too long for format version 1.0; use 2.0");
    return out;
}

void write_file_atomically(const std::string& path, const std::string& content, const std::string& what) {
    const std::string tmp = path + ".partial";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw InputError("cannot write " + what + " file " + path + ": cannot open " + tmp);
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
        out.flush();
        if (!out) {
            std::error_code ignored;
            std::filesystem::remove(tmp, ignored);
            throw InputError("cannot write " + what + " file " + path + " (disk full?)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw InputError("cannot write " + what + " file " + path + ": " + ec.message());
    }
}

void write_npy(const std::string& path, DType dtype, const std::vector<std::int64_t>& shape, const void* data,
               int version) {
    if (!host_is_little_endian()) throw InputError(path + ": this runner supports little-endian hosts only");
    const auto bytes = static_cast<std::size_t>(shape_elements(shape)) * dtype_size(dtype);
    std::string content = npy_header(dtype, shape, version);
    if (bytes) content.append(static_cast<const char*>(data), bytes);
    write_file_atomically(path, content, "output .npy");
}

}  // namespace trt_equiv
