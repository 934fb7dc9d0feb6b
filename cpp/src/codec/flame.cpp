#include "avatarkit/flame.hpp"

#include <cmath>
#include <cstring>

#include "bytes.hpp"

namespace avatarkit::flame {

using codec::CodecError;
using codec::ErrorCode;
using detail::Reader;
using detail::Writer;

namespace {

constexpr std::array<std::size_t, 7> kFieldOffsets = {0, 3, 6, 9, 12, 18, 20};

[[noreturn]] void fail(const std::string& message) { throw CodecError(ErrorCode::kBadProtobuf, message); }

// Skips one field's payload of the given wire type.
void skip_field(Reader& r, unsigned wire_type) {
    switch (wire_type) {
        case 0: r.varint("varint field"); return;
        case 1: r.skip(8, "fixed64 field"); return;
        case 2: {
            std::uint64_t n = r.varint("field length");
            if (n > r.remaining()) fail("length-delimited field runs past the end of its message");
            r.skip(static_cast<std::size_t>(n), "length-delimited field");
            return;
        }
        case 5: r.skip(4, "fixed32 field"); return;
        default: fail("unsupported protobuf wire type " + std::to_string(wire_type));
    }
}

void read_flame(Reader& r, float* row) {
    std::array<std::size_t, 7> filled{};
    while (!r.done()) {
        std::uint64_t tag = r.varint("field tag");
        std::uint64_t field = tag >> 3;
        unsigned wire = static_cast<unsigned>(tag & 7u);
        if (field == 0) fail("field number 0 in Flame");
        if (field > 7) {
            skip_field(r, wire);
            continue;
        }
        std::size_t i = static_cast<std::size_t>(field - 1);
        std::size_t count;
        const std::uint8_t* src;
        if (wire == 2) {
            std::uint64_t n = r.varint("packed length");
            if (n > r.remaining()) fail(std::string("packed field ") + kFieldNames[i] + " runs past the end of its keyframe");
            if (n % 4 != 0) fail(std::string("packed field ") + kFieldNames[i] + " is not a whole number of floats");
            count = static_cast<std::size_t>(n / 4);
            src = r.bytes(static_cast<std::size_t>(n), "packed floats");
        } else if (wire == 5) {
            count = 1;
            src = r.bytes(4, "float");
        } else {
            fail(std::string("field ") + kFieldNames[i] + " has wire type " + std::to_string(wire) + ", expected floats");
        }
        if (count > kFieldSizes[i] - filled[i]) {
            fail(std::string("field ") + kFieldNames[i] + " has more than " + std::to_string(kFieldSizes[i]) + " values");
        }
        float* dst = row + kFieldOffsets[i] + filled[i];
        for (std::size_t j = 0; j < count; ++j) {
            std::uint32_t bits = static_cast<std::uint32_t>(src[4 * j]) | (static_cast<std::uint32_t>(src[4 * j + 1]) << 8) |
                                 (static_cast<std::uint32_t>(src[4 * j + 2]) << 16) |
                                 (static_cast<std::uint32_t>(src[4 * j + 3]) << 24);
            std::memcpy(dst + j, &bits, 4);
        }
        filled[i] += count;
    }
}

void write_packed(Writer& w, unsigned field, const float* v, std::size_t n) {
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) any = any || v[i] != 0.0f || std::signbit(v[i]);
    if (!any) return;
    w.varint((field << 3) | 2u);
    w.varint(n * 4);
    for (std::size_t i = 0; i < n; ++i) w.f32(v[i]);
}

}  // namespace

std::vector<std::string> channel_names() {
    std::vector<std::string> names;
    names.reserve(kValuesPerKeyframe);
    for (std::size_t i = 0; i < kFieldNames.size(); ++i) {
        for (std::size_t j = 0; j < kFieldSizes[i]; ++j) {
            names.push_back(std::string("flame_") + kFieldNames[i] + "_" + std::to_string(j));
        }
    }
    return names;
}

Keyframes decode(const std::uint8_t* data, std::size_t size, const Limits& limits) try {
    if (size > limits.max_bytes) {
        throw CodecError(ErrorCode::kLimitExceeded, "FlameAnimation of " + std::to_string(size) + " bytes is over the limit");
    }
    Keyframes out;
    Reader r(data, size);
    while (!r.done()) {
        std::uint64_t tag = r.varint("field tag");
        std::uint64_t field = tag >> 3;
        unsigned wire = static_cast<unsigned>(tag & 7u);
        if (field == 0) fail("field number 0 in FlameAnimation");
        if (field != 1) {
            skip_field(r, wire);
            continue;
        }
        if (wire != 2) fail("keyframes field has wire type " + std::to_string(wire) + ", expected a message");
        std::uint64_t n = r.varint("keyframe length");
        if (n > r.remaining()) fail("keyframe runs past the end of the FlameAnimation");
        if (out.frames >= limits.max_keyframes) {
            throw CodecError(ErrorCode::kLimitExceeded, "FlameAnimation has more than " + std::to_string(limits.max_keyframes) + " keyframes");
        }
        Reader kf(r.bytes(static_cast<std::size_t>(n), "keyframe"), static_cast<std::size_t>(n));
        out.values.resize(out.values.size() + kValuesPerKeyframe, 0.0f);
        read_flame(kf, out.values.data() + out.frames * kValuesPerKeyframe);
        ++out.frames;
    }
    return out;
} catch (const CodecError& e) {
    // The shared Reader reports a short input as kTruncated and a varint over 64 bits as kBadFrame,
    // the AK1 codes; decode() promises kBadProtobuf for every wire format error.
    if (e.code() == ErrorCode::kTruncated || e.code() == ErrorCode::kBadFrame) fail(e.what());
    throw;
}

std::vector<std::uint8_t> encode(const float* values, std::size_t frames) {
    std::vector<std::uint8_t> out;
    Writer w(out);
    std::vector<std::uint8_t> kf;
    for (std::size_t f = 0; f < frames; ++f) {
        kf.clear();
        Writer k(kf);
        const float* row = values + f * kValuesPerKeyframe;
        for (std::size_t i = 0; i < kFieldSizes.size(); ++i) {
            write_packed(k, static_cast<unsigned>(i + 1), row + kFieldOffsets[i], kFieldSizes[i]);
        }
        w.varint((1u << 3) | 2u);
        w.varint(kf.size());
        w.bytes(kf.data(), kf.size());
    }
    return out;
}

}  // namespace avatarkit::flame
