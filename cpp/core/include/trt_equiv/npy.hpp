// Reading and writing NumPy .npy files: float32, float16, int32, int64 and bool, little-endian, C order.
//
// .npy replaces the old CSV exchange, which lost precision and took 5.8 MB for 100 CIFAR images: the bytes
// of the array travel unchanged. Anything else (other dtypes, Fortran order, big-endian, truncated or
// over-long files, bad magic) is rejected with an InputError that says what was expected and what came.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace trt_equiv {

/// Element types of model inputs and outputs: images and features, token ids, masks.
enum class DType { kFloat32, kFloat16, kInt32, kInt64, kBool };

std::size_t dtype_size(DType dtype) noexcept;
/// "float32" / "float16" / "int32" / "int64" / "bool"
const char* dtype_name(DType dtype) noexcept;
/// NumPy's descr: "<f4" / "<f2" / "<i4" / "<i8" / "|b1"
const char* dtype_descr(DType dtype) noexcept;
bool is_float(DType dtype) noexcept;

/// Shape as NumPy prints it, e.g. "(100, 32, 32, 3)" or "(5,)".
std::string format_shape(const std::vector<std::int64_t>& shape);
/// Number of elements; throws InputError on overflow or a negative dimension.
std::int64_t shape_elements(const std::vector<std::int64_t>& shape);

struct NpyArray {
    DType dtype = DType::kFloat32;
    std::vector<std::int64_t> shape;
    std::vector<unsigned char> data;  // raw little-endian element bytes, C order
    int version_major = 1;            // header version the file had (1, 2 or 3)

    std::int64_t elements() const { return shape_elements(shape); }
    /// The values as float32 (float16 widens exactly); InputError for a non-float array.
    std::vector<float> to_float32() const;
};

/// ``a`` as ``target``: unchanged when equal; float32 <-> float16 (round to nearest even); int32 -> int64; int64
/// -> int32 only when every value fits (else InputError naming the first value that does not). Any other pair
/// is an InputError. ``what`` names the array ("ids.npy for engine input 'ids'").
NpyArray convert_dtype(const NpyArray& a, DType target, const std::string& what);

/// Parse a whole .npy file already in memory; ``what`` names it in error messages.
NpyArray parse_npy(const unsigned char* bytes, std::size_t size, const std::string& what);
/// Read and parse ``path``; InputError if it is missing, unreadable or malformed.
NpyArray read_npy(const std::string& path);

/// The header bytes (magic .. trailing newline) NumPy itself would write for this array, padded so the data
/// starts on a 64-byte boundary. ``version`` 0 picks 1.0 unless the header needs 2.0.
std::string npy_header(DType dtype, const std::vector<std::int64_t>& shape, int version = 0);

/// Write ``data`` (``shape_elements(shape) * dtype_size(dtype)`` bytes) to ``path`` via a temporary file and a
/// rename, so a reader never sees a half-written file. InputError if it cannot be written.
void write_npy(const std::string& path, DType dtype, const std::vector<std::int64_t>& shape, const void* data,
               int version = 0);

/// Write ``content`` to ``path`` through a temporary file and a rename; InputError on failure. ``what``
/// names the file in messages ("output", "timing JSON").
void write_file_atomically(const std::string& path, const std::string& content, const std::string& what);

}  // namespace trt_equiv
