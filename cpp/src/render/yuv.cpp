#include "avatarkit/yuv.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace avatarkit::render {

namespace {

// BT.601 in limited range (Y 16..235, Cb and Cr 16..240), scaled by 2^16: the rows of
// 219/255 and 224/255 times the luma and colour-difference matrices. Each chroma row sums to 0,
// so a grey pixel has Cb = Cr = 128 exactly.
constexpr int kYR = 16829, kYG = 33039, kYB = 6416;
constexpr int kUR = -9714, kUG = -19070, kUB = 28784;
constexpr int kVR = 28784, kVG = -24103, kVB = -4681;

bool opaque(const std::uint8_t* row, int width) {
    std::uint8_t alpha = 255;
    for (std::size_t x = 3; x < static_cast<std::size_t>(width) * 4; x += 4) alpha &= row[x];
    return alpha == 255;
}

// Over black: colour times alpha, rounded.
void composite(const std::uint8_t* row, int width, std::uint8_t* out) {
    for (std::size_t x = 0; x < static_cast<std::size_t>(width) * 4; x += 4) {
        const unsigned a = row[x + 3];
        for (int c = 0; c < 3; ++c) out[x + c] = static_cast<std::uint8_t>((row[x + c] * a + 127u) / 255u);
        out[x + 3] = 255;
    }
}

void luma_row(const std::uint8_t* row, int width, std::uint8_t* out) {
    for (int x = 0; x < width; ++x) {
        const std::uint8_t* p = row + static_cast<std::size_t>(x) * 4;
        const int value = kYR * p[0] + kYG * p[1] + kYB * p[2] + (16 << 16) + (1 << 15);
        out[x] = static_cast<std::uint8_t>(value >> 16);
    }
}

// Four pixels' channel sums to one Cb and one Cr: scaled by 2^18, offset by 128, rounded. The sum
// is never negative, so the shift is a plain division.
inline void chroma(int r, int g, int b, std::uint8_t* cb, std::uint8_t* cr) {
    *cb = static_cast<std::uint8_t>((kUR * r + kUG * g + kUB * b + (128 << 18) + (1 << 17)) >> 18);
    *cr = static_cast<std::uint8_t>((kVR * r + kVG * g + kVB * b + (128 << 18) + (1 << 17)) >> 18);
}

// `pair`: two rows' RGBA summed channel by channel.
void chroma_row(const std::uint16_t* pair, int width, std::uint8_t* cb, std::uint8_t* cr) {
    const int whole = width / 2;
    for (int cx = 0; cx < whole; ++cx) {
        const std::uint16_t* p = pair + static_cast<std::size_t>(cx) * 8;
        chroma(p[0] + p[4], p[1] + p[5], p[2] + p[6], cb + cx, cr + cx);
    }
    if (width % 2) {  // an odd last column counts twice
        const std::uint16_t* p = pair + static_cast<std::size_t>(width - 1) * 4;
        chroma(2 * p[0], 2 * p[1], 2 * p[2], cb + whole, cr + whole);
    }
}

}  // namespace

void rgba_to_i420(const std::uint8_t* rgba, std::ptrdiff_t rgba_stride, int width, int height, Plane y, Plane u,
                  Plane v) {
    if (width <= 0 || height <= 0) return;
    const std::size_t row_bytes = static_cast<std::size_t>(width) * 4;
    std::vector<std::uint8_t> scratch;  // composited rows, only for rows that are not opaque
    std::vector<std::uint16_t> pair(row_bytes);
    for (int top = 0; top < height; top += 2) {
        const int bottom = std::min(top + 1, height - 1);
        const std::uint8_t* rows[2] = {rgba + top * rgba_stride, rgba + bottom * rgba_stride};
        for (int i = 0; i < 2; ++i) {
            if (opaque(rows[i], width)) continue;
            scratch.resize(2 * row_bytes);
            composite(rows[i], width, scratch.data() + static_cast<std::size_t>(i) * row_bytes);
            rows[i] = scratch.data() + static_cast<std::size_t>(i) * row_bytes;
        }
        luma_row(rows[0], width, y.data + top * y.stride);
        if (bottom != top) luma_row(rows[1], width, y.data + bottom * y.stride);
        // The two rows summed (vectorizes), then each chroma sample from two adjacent sums.
        for (std::size_t i = 0; i < row_bytes; ++i)
            pair[i] = static_cast<std::uint16_t>(rows[0][i] + rows[1][i]);
        chroma_row(pair.data(), width, u.data + (top / 2) * u.stride, v.data + (top / 2) * v.stride);
    }
}

}  // namespace avatarkit::render
