// Valid inputs for fuzz_codec, built with the real encoders so that mutations start deep inside
// the decoders: AK1 payloads (u8 / u16, with and without zstd, key, delta and delta_same frames,
// schema changes, index gaps) and FlameAnimation payloads. Deterministic: the same bytes every run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace avatarkit::fuzz {

struct Seed {
    std::string name;  // a file name: [a-z0-9-]
    std::vector<std::uint8_t> bytes;
};

std::vector<Seed> build_seeds();

}  // namespace avatarkit::fuzz
