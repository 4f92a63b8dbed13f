#include "trt_equiv/half.hpp"

#include <cstring>

namespace trt_equiv {

std::uint16_t float_to_half_bits(float value) noexcept {
    std::uint32_t f = 0;
    std::memcpy(&f, &value, sizeof f);
    const auto sign = static_cast<std::uint16_t>((f >> 16) & 0x8000u);
    const std::uint32_t exp = (f >> 23) & 0xffu;
    std::uint32_t mant = f & 0x7fffffu;

    if (exp == 0xffu) {
        if (mant == 0) return static_cast<std::uint16_t>(sign | 0x7c00u);  // +-inf
        // NaN: keep the top payload bits and force the quiet bit, as the hardware converters do.
        return static_cast<std::uint16_t>(sign | 0x7e00u | (mant >> 13));
    }
    const int e = static_cast<int>(exp) - 127 + 15;  // re-biased exponent
    if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
    if (e <= 0) {
        // Subnormal half (or zero): shift the significand, with its implicit bit, right by 14 - e.
        if (e < -10) return sign;  // below half the smallest subnormal: rounds to zero
        mant |= 0x800000u;
        const int shift = 14 - e;
        std::uint32_t half_mant = mant >> shift;
        const std::uint32_t rem = mant & ((1u << shift) - 1u);
        const std::uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;  // a carry gives the smallest normal: correct
        return static_cast<std::uint16_t>(sign | half_mant);
    }
    std::uint32_t half = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
    const std::uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // a carry into the exponent is correct; past 65504 it yields inf
    return static_cast<std::uint16_t>(sign | half);
}

float half_bits_to_float(std::uint16_t bits) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
    const std::uint32_t exp = (bits >> 10) & 0x1fu;
    std::uint32_t mant = bits & 0x3ffu;
    std::uint32_t f = 0;
    if (exp == 0x1fu) {
        f = sign | 0x7f800000u | (mant << 13);  // inf or NaN (payload kept)
    } else if (exp != 0) {
        f = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    } else if (mant == 0) {
        f = sign;  // +-0
    } else {
        // Subnormal half: normalise into a float.
        int e = 127 - 15 + 1;
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            --e;
        }
        f = sign | (static_cast<std::uint32_t>(e) << 23) | ((mant & 0x3ffu) << 13);
    }
    float out = 0.0f;
    std::memcpy(&out, &f, sizeof out);
    return out;
}

void floats_to_halves(const float* src, std::uint16_t* dst, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i) dst[i] = float_to_half_bits(src[i]);
}

void halves_to_floats(const std::uint16_t* src, float* dst, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i) dst[i] = half_bits_to_float(src[i]);
}

}  // namespace trt_equiv
