// RGBA to the planar YUV 4:2:0 that H.264 encoders take, with no GL and no FFmpeg involved: the
// rendered frame goes to the encoder without a swscale pass.
#pragma once

#include <cstddef>
#include <cstdint>

namespace avatarkit::render {

// One plane of bytes: `width x height` samples, rows `stride` bytes apart.
struct Plane {
    std::uint8_t* data;
    std::ptrdiff_t stride;
};

// Straight-alpha RGBA rows (top first, `rgba_stride` bytes apart) to BT.601 limited-range YUV 4:2:0
// (what FFmpeg calls yuv420p, and swscale produces by default): full-size Y, chroma planes of
// ceil(width / 2) x ceil(height / 2), each chroma sample from the mean of its 2x2 pixels (an odd
// last column or row repeats its edge). Pixels that are not opaque are composited over black, as a
// format without alpha shows them.
void rgba_to_i420(const std::uint8_t* rgba, std::ptrdiff_t rgba_stride, int width, int height, Plane y, Plane u,
                  Plane v);

}  // namespace avatarkit::render
