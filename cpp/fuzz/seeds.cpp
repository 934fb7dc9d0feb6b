#include "seeds.hpp"

#include <cmath>
#include <cstring>
#include <utility>

#include "avatarkit/channels.hpp"
#include "avatarkit/codec.hpp"
#include "avatarkit/flame.hpp"
#include "fuzz_format.hpp"

namespace avatarkit::fuzz {

namespace {

using codec::Channel;
using codec::EncoderOptions;
using codec::Quant;
using codec::Schema;
using codec::StreamEncoder;
using Bytes = std::vector<std::uint8_t>;

Schema small_schema() {
    Schema s;
    s.fps_num = 30;
    s.fps_den = 1;
    s.channels = {Channel{"jawOpen", Quant::kU16, 0.0f, 1.0f}, Channel{"headYaw", Quant::kU8, -1.0f, 1.0f},
                  Channel{"x.y:z-9_", Quant::kU16, -1000.0f, 1000.0f}};
    return s;
}

// Nine channels: the change mask has a partial second byte, where bits past the schema must be 0.
Schema nine_channel_schema() {
    Schema s;
    s.fps_num = 1000;
    s.fps_den = 40;
    for (int i = 0; i < 9; ++i) {
        s.channels.push_back(Channel{"c" + std::to_string(i), i % 2 ? Quant::kU8 : Quant::kU16,
                                     static_cast<float>(-i), static_cast<float>(i + 1)});
    }
    return s;
}

// Smooth motion on two channels in three, the rest still: the moving set repeats, so the encoder
// emits delta_same frames, and u8 channels sometimes stand still, which changes the mask.
std::vector<float> motion(const Schema& s, std::size_t frames, std::size_t first_frame) {
    const std::size_t k = s.channels.size();
    std::vector<float> v(frames * k);
    for (std::size_t f = 0; f < frames; ++f) {
        for (std::size_t c = 0; c < k; ++c) {
            const Channel& ch = s.channels[c];
            const double t = static_cast<double>(first_frame + f);
            double u = c % 3 == 0 ? 0.25 : 0.5 + 0.5 * std::sin(0.3 * t + static_cast<double>(c));
            v[f * k + c] = static_cast<float>(ch.lo + (static_cast<double>(ch.hi) - ch.lo) * u);
        }
    }
    return v;
}

std::vector<std::int64_t> indices(std::size_t frames, std::int64_t first, std::int64_t step) {
    std::vector<std::int64_t> out(frames);
    for (std::size_t f = 0; f < frames; ++f) out[f] = first + static_cast<std::int64_t>(f) * step;
    return out;
}

Bytes encode(StreamEncoder& enc, std::size_t frames, std::int64_t first, std::int64_t step = 1) {
    const Schema& s = enc.schema();
    const std::vector<float> v = motion(s, frames, static_cast<std::size_t>(first));
    const std::vector<std::int64_t> idx = indices(frames, first, step);
    return enc.encode(v.data(), frames, s.channels.size(), idx.data());
}

EncoderOptions options(int key_interval, int zstd_level, bool reuse_masks = true) {
    EncoderOptions o;
    o.key_interval = key_interval;
    o.zstd_level = zstd_level;
    o.reuse_masks = reuse_masks;
    return o;
}

void add_single_payloads(std::vector<Seed>& out) {
    {
        StreamEncoder e(channels::canonical_schema(Quant::kU16), options(25, 0));
        out.push_back({"ak1-canonical-u16", encode(e, 30, 0)});
    }
    {
        StreamEncoder e(channels::canonical_schema(Quant::kU8), options(25, 0));
        out.push_back({"ak1-canonical-u8", encode(e, 30, 0)});
    }
    {
        StreamEncoder e(channels::canonical_schema(Quant::kU16), options(25, 3));
        out.push_back({"ak1-canonical-u16-zstd", encode(e, 100, 0)});
    }
    {
        StreamEncoder e(small_schema(), options(4, 0));
        out.push_back({"ak1-small-key4", encode(e, 12, 0)});
    }
    {
        StreamEncoder e(small_schema(), options(25, 1));
        out.push_back({"ak1-small-zstd", encode(e, 40, 7)});
    }
    {
        StreamEncoder e(small_schema(), options(25, 0));
        out.push_back({"ak1-schema-only", e.encode(nullptr, 0, 3, nullptr)});
    }
    {
        // Index gaps and indices next to the 2^53 ceiling.
        StreamEncoder e(small_schema(), options(1000, 0));
        out.push_back({"ak1-index-gaps", encode(e, 6, (std::int64_t{1} << 53) - 600, 100)});
    }
    {
        // The widest ranges a schema may have, and a range whose step is subnormal.
        Schema s;
        s.channels = {Channel{"wide", Quant::kU8, -1e38f, 1e38f}, Channel{"wide16", Quant::kU16, -1e38f, 1e38f},
                      Channel{"tiny", Quant::kU16, 0.0f, 1e-36f}};
        StreamEncoder e(s, options(25, 0));
        out.push_back({"ak1-extreme-ranges", encode(e, 8, 0)});
    }
    {
        StreamEncoder e(nine_channel_schema(), options(25, 0, false));
        out.push_back({"ak1-nine-no-reuse", encode(e, 20, 3)});
    }
    {
        StreamEncoder e(nine_channel_schema(), options(1, 0));
        out.push_back({"ak1-nine-all-key", encode(e, 5, 0)});
    }
}

void add_streams(std::vector<Seed>& out) {
    {
        StreamEncoder e(small_schema(), options(25, 0));
        std::vector<Bytes> p;
        for (int i = 0; i < 4; ++i) p.push_back(encode(e, 5, i * 5));
        out.push_back({"stream-small-4x5", join_stream(0x80, p)});
    }
    {
        StreamEncoder e(channels::canonical_schema(Quant::kU8), options(25, 1));
        std::vector<Bytes> p;
        for (int i = 0; i < 3; ++i) p.push_back(encode(e, 10, i * 10));
        out.push_back({"stream-canonical-u8-zstd", join_stream(0x80 | kConfigZstd, p)});
    }
    for (std::uint8_t config : {std::uint8_t{0x80}, std::uint8_t{0x80 | kConfigSmallLimits}, std::uint8_t{0x40 | kConfigNoMaskReuse}}) {
        // Schema A, then B (nine channels), then A again: every change resets the delta reference.
        StreamEncoder e(small_schema(), options(25, 0));
        std::vector<Bytes> p;
        p.push_back(encode(e, 3, 0));
        p.push_back(encode(e, 2, 3));
        e.set_schema(nine_channel_schema());
        p.push_back(encode(e, 3, 5));
        p.push_back(encode(e, 2, 8));
        e.set_schema(small_schema());
        p.push_back(encode(e, 3, 20, 2));
        out.push_back({"stream-schema-change-" + std::to_string(config), join_stream(config, p)});
    }
    {
        // A sender that announces the schema in an empty payload before the first frames.
        StreamEncoder e(small_schema(), options(25, 0));
        std::vector<Bytes> p;
        p.push_back(e.encode(nullptr, 0, 3, nullptr));
        p.push_back(encode(e, 4, 0));
        p.push_back(e.encode(nullptr, 0, 3, nullptr));
        p.push_back(encode(e, 4, 4));
        out.push_back({"stream-schema-first", join_stream(0x80, p)});
    }
    {
        // One frame per payload: every delta frame refers to the previous payload.
        StreamEncoder e(nine_channel_schema(), options(25, 0));
        std::vector<Bytes> p;
        for (int i = 0; i < 8; ++i) p.push_back(encode(e, 1, i));
        out.push_back({"stream-one-frame-each", join_stream(0xC0, p)});
    }
}

// A hand-written FlameAnimation that uses what flame::encode never writes: unpacked floats, short
// fields, unknown fields of every wire type, at both levels.
Bytes flame_by_hand() {
    Bytes kf;
    auto u8 = [](Bytes& b, unsigned v) { b.push_back(static_cast<std::uint8_t>(v)); };
    auto f32 = [](Bytes& b, float v) {
        std::uint8_t raw[4];
        std::memcpy(raw, &v, 4);
        b.insert(b.end(), raw, raw + 4);
    };
    u8(kf, (2u << 3) | 5u);  // rotation[0], unpacked
    f32(kf, 0.5f);
    u8(kf, (2u << 3) | 5u);  // rotation[1], unpacked
    f32(kf, -0.25f);
    u8(kf, (6u << 3) | 2u);  // eye_lid, packed, one of two values
    u8(kf, 4);
    f32(kf, 1.0f);
    u8(kf, (9u << 3) | 0u);  // unknown varint
    u8(kf, 0x96);
    u8(kf, 0x01);
    u8(kf, (10u << 3) | 1u);  // unknown fixed64
    for (int i = 0; i < 8; ++i) u8(kf, 0xAA);
    u8(kf, (11u << 3) | 5u);  // unknown fixed32
    f32(kf, 3.0f);

    Bytes msg;
    u8(msg, (2u << 3) | 2u);  // unknown length-delimited field before the keyframes
    u8(msg, 3);
    msg.insert(msg.end(), {'a', 'b', 'c'});
    for (int i = 0; i < 2; ++i) {
        u8(msg, (1u << 3) | 2u);
        u8(msg, static_cast<unsigned>(kf.size()));
        msg.insert(msg.end(), kf.begin(), kf.end());
    }
    return msg;
}

void add_flame(std::vector<Seed>& out) {
    std::vector<float> v(3 * flame::kValuesPerKeyframe, 0.0f);
    for (std::size_t f = 0; f < 3; ++f) {
        for (std::size_t i = 0; i < flame::kValuesPerKeyframe; ++i) {
            // Frame 1 leaves translation..jaw_pose at zero, so encode() omits them.
            if (f == 1 && i < 12) continue;
            v[f * flame::kValuesPerKeyframe + i] = static_cast<float>(std::sin(0.1 * static_cast<double>(i + 7 * f)));
        }
    }
    out.push_back({"flame-encoded-3", flame::encode(v.data(), 3)});
    out.push_back({"flame-by-hand", flame_by_hand()});
    out.push_back({"empty", {}});
}

}  // namespace

std::vector<Seed> build_seeds() {
    std::vector<Seed> out;
    add_single_payloads(out);
    add_streams(out);
    add_flame(out);
    return out;
}

}  // namespace avatarkit::fuzz
