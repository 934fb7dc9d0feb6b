// How fuzz_codec.cpp reads one fuzz input as a *stream* of payloads, shared with the seed builder
// so that seeds land exactly on payload boundaries.
//
//   input   := config:u8  length:u16le{payloads - 1}  payload bytes...
//   config  := bits 0-2  payloads - 1 (1..8)
//              bit  3    decode the stream with small Limits (to reach the limit checks)
//              bit  4    re-encode with zstd (level 1) in the round-trip check
//              bit  5    re-encode without kFrameDeltaSame (reuse_masks = false)
//              bits 6-7  re-encode key interval: 1, 3, 25 or "never" (1 << 30)
//
// Payload i takes length[i] bytes (or what is left, if less); the last payload takes the rest.
// Any byte string is a valid input: the fuzzer is free to move split points by mutating lengths.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace avatarkit::fuzz {

inline constexpr std::size_t kMaxPayloads = 8;
inline constexpr std::uint8_t kConfigSmallLimits = 0x08;
inline constexpr std::uint8_t kConfigZstd = 0x10;
inline constexpr std::uint8_t kConfigNoMaskReuse = 0x20;

struct Span {
    const std::uint8_t* data;
    std::size_t size;
};

struct StreamInput {
    std::uint8_t config = 0;
    std::vector<Span> payloads;
};

inline int config_key_interval(std::uint8_t config) {
    static constexpr int kIntervals[4] = {1, 3, 25, 1 << 30};
    return kIntervals[config >> 6];
}

inline StreamInput split_stream(const std::uint8_t* data, std::size_t size) {
    StreamInput in;
    if (size == 0) return in;
    in.config = data[0];
    const std::size_t count = (in.config & 7u) + 1;
    std::size_t pos = 1;
    std::size_t lengths[kMaxPayloads] = {};
    for (std::size_t i = 0; i + 1 < count; ++i) {
        if (size - pos >= 2) {
            lengths[i] = static_cast<std::size_t>(data[pos]) | (static_cast<std::size_t>(data[pos + 1]) << 8);
            pos += 2;
        } else {
            pos = size;  // a short header leaves every payload empty
        }
    }
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t left = size - pos;
        const std::size_t n = i + 1 == count ? left : std::min(lengths[i], left);
        in.payloads.push_back(Span{data + pos, n});
        pos += n;
    }
    return in;
}

// The inverse of split_stream, for building seeds: payloads.size() must be 1..8, each < 64 KiB
// except the last.
inline std::vector<std::uint8_t> join_stream(std::uint8_t config_bits,
                                             const std::vector<std::vector<std::uint8_t>>& payloads) {
    std::vector<std::uint8_t> out;
    out.push_back(static_cast<std::uint8_t>((config_bits & ~7u) | ((payloads.size() - 1) & 7u)));
    for (std::size_t i = 0; i + 1 < payloads.size(); ++i) {
        out.push_back(static_cast<std::uint8_t>(payloads[i].size() & 0xFFu));
        out.push_back(static_cast<std::uint8_t>((payloads[i].size() >> 8) & 0xFFu));
    }
    for (const auto& p : payloads) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace avatarkit::fuzz
