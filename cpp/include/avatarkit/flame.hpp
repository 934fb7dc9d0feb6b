// Reader for the commercial service's animation payload: the FlameAnimation protobuf
//   message FlameAnimation { repeated Flame keyframes = 1; }
//   message Flame { repeated float translation = 1; rotation = 2; neck_pose = 3; jaw_pose = 4;
//                   eye_pose = 5; eye_lid = 6; expression = 7; }
// A small bounds-checked protobuf wire reader, so the core needs no protobuf runtime.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "avatarkit/codec.hpp"

namespace avatarkit::flame {

// Values per keyframe field, in field order 1..7; 120 in all.
inline constexpr std::array<std::size_t, 7> kFieldSizes = {3, 3, 3, 3, 6, 2, 100};
inline constexpr std::array<const char*, 7> kFieldNames = {
    "translation", "rotation", "neck_pose", "jaw_pose", "eye_pose", "eye_lid", "expression"};
inline constexpr std::size_t kValuesPerKeyframe = 120;

// Channel names of a decoded keyframe row: flame_translation_0 ... flame_expression_99.
std::vector<std::string> channel_names();

struct Limits {
    std::size_t max_keyframes = 16384;
    std::size_t max_bytes = 64u << 20;
};

struct Keyframes {
    std::size_t frames = 0;
    std::vector<float> values;  // frames x 120, row-major; fields shorter than their size are zero-padded
};

// Throws codec::CodecError(kBadProtobuf / kLimitExceeded) on malformed input. Unknown fields are
// skipped as protobuf requires; a known field with more values than its size is an error.
Keyframes decode(const std::uint8_t* data, std::size_t size, const Limits& limits = {});

// The inverse, for tests and tools: packed float fields, zeros omitted per field when all zero.
std::vector<std::uint8_t> encode(const float* values, std::size_t frames);

}  // namespace avatarkit::flame
