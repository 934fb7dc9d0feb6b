// The canonical channel set of the driving stream. Names travel on the wire; receivers map by name.
#pragma once

#include <array>
#include <string_view>

#include "avatarkit/codec.hpp"

namespace avatarkit::channels {

// The 52 ARKit blend shapes, in Apple's documented order.
inline constexpr std::array<std::string_view, 52> kArkit = {
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut"};

// The 15 Oculus visemes.
inline constexpr std::array<std::string_view, 15> kVisemes = {
    "viseme_sil", "viseme_PP", "viseme_FF", "viseme_TH", "viseme_DD", "viseme_kk", "viseme_CH",
    "viseme_SS", "viseme_nn", "viseme_RR", "viseme_aa", "viseme_E", "viseme_I", "viseme_O",
    "viseme_U"};

// Head rotation in radians (pitch: nod down positive, yaw: turn left positive, roll) and head
// translation in metres.
inline constexpr std::array<std::string_view, 3> kHeadRotation = {"headPitch", "headYaw", "headRoll"};
inline constexpr std::array<std::string_view, 3> kHeadTranslation = {"headX", "headY", "headZ"};

inline constexpr float kRotationRange = 1.0f;     // +-1 rad (57 degrees)
inline constexpr float kTranslationRange = 0.25f; // +-25 cm

// The canonical schema: 73 channels, u16, [0, 1] for weights, the ranges above for the head.
codec::Schema canonical_schema(codec::Quant quant = codec::Quant::kU16, std::uint32_t fps = 25);

}  // namespace avatarkit::channels
