// IEEE 754 binary16 <-> binary32 conversion on the host.
//
// Engines built for fp16 I/O want half inputs; converting here (round to nearest even, like numpy's
// astype(np.float16) and CUDA's __float2half_rn) keeps the C++ runner's inputs bit-identical to what the
// Python runner feeds the same engine, so the two can be compared exactly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace trt_equiv {

/// float -> half bits, round to nearest even; overflow gives +-inf; NaN stays a (quiet) NaN.
std::uint16_t float_to_half_bits(float value) noexcept;

/// half bits -> float; exact (every half is representable as a float).
float half_bits_to_float(std::uint16_t bits) noexcept;

void floats_to_halves(const float* src, std::uint16_t* dst, std::size_t count) noexcept;
void halves_to_floats(const std::uint16_t* src, float* dst, std::size_t count) noexcept;

}  // namespace trt_equiv
