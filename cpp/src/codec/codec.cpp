#include "avatarkit/codec.hpp"

#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <new>

#include "bytes.hpp"

namespace avatarkit::codec {

using detail::Reader;
using detail::Writer;

namespace {

constexpr std::size_t kMaxNameLength = 64;
// Channel ranges stay within +-1e38 so that dequantizing, lo + q * (hi - lo) / M in float32, never
// meets an intermediate over the float32 maximum (3.4e38): wider ranges decoded to infinity.
constexpr float kMaxRangeEnd = 1e38f;
constexpr std::uint32_t kMaxFpsTerm = 1000;
constexpr std::int64_t kMaxFrameIndex = std::int64_t{1} << 53;  // exact in a double

[[noreturn]] void fail(ErrorCode code, const std::string& message) { throw CodecError(code, message); }

bool valid_name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

void write_schema(Writer& w, const Schema& s) {
    std::vector<std::uint8_t> block;
    Writer b(block);
    b.varint(s.fps_num);
    b.varint(s.fps_den);
    b.varint(s.channels.size());
    for (const Channel& ch : s.channels) {
        b.u8(static_cast<std::uint8_t>(ch.name.size()));
        b.bytes(ch.name.data(), ch.name.size());
        b.u8(static_cast<std::uint8_t>(ch.quant));
        b.f32(ch.lo);
        b.f32(ch.hi);
    }
    w.varint(block.size());
    w.bytes(block.data(), block.size());
}

Schema read_schema(Reader& r, const Limits& limits) {
    std::uint64_t length = r.varint("schema length");
    if (length > r.remaining()) fail(ErrorCode::kTruncated, "truncated payload: schema block is longer than the payload");
    Reader s(r.bytes(static_cast<std::size_t>(length), "schema block"), static_cast<std::size_t>(length));
    Schema schema;
    std::uint64_t num = s.varint("fps numerator");
    std::uint64_t den = s.varint("fps denominator");
    if (num < 1 || num > kMaxFpsTerm || den < 1 || den > kMaxFpsTerm) {
        fail(ErrorCode::kBadSchema, "schema fps " + std::to_string(num) + "/" + std::to_string(den) +
                                        " is outside 1..1000 / 1..1000");
    }
    schema.fps_num = static_cast<std::uint32_t>(num);
    schema.fps_den = static_cast<std::uint32_t>(den);
    std::uint64_t count = s.varint("channel count");
    if (count > limits.max_channels) {
        fail(ErrorCode::kLimitExceeded, "schema has " + std::to_string(count) + " channels, limit " +
                                            std::to_string(limits.max_channels));
    }
    // Each channel needs at least 11 bytes: reject impossible counts before reserving.
    if (count > s.remaining() / 11) fail(ErrorCode::kTruncated, "truncated payload: schema lists more channels than it holds");
    schema.channels.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
        Channel ch;
        std::size_t len = s.u8("channel name length");
        const std::uint8_t* name = s.bytes(len, "channel name");
        ch.name.assign(reinterpret_cast<const char*>(name), len);
        std::uint8_t q = s.u8("channel quantization");
        if (q != static_cast<std::uint8_t>(Quant::kU8) && q != static_cast<std::uint8_t>(Quant::kU16)) {
            fail(ErrorCode::kBadSchema, "channel " + std::to_string(i) + " has unknown quantization " + std::to_string(q));
        }
        ch.quant = static_cast<Quant>(q);
        ch.lo = s.f32("channel range");
        ch.hi = s.f32("channel range");
        schema.channels.push_back(std::move(ch));
    }
    if (!s.done()) fail(ErrorCode::kBadSchema, "schema block has " + std::to_string(s.remaining()) + " unread bytes");
    validate_schema(schema, limits.max_channels);
    return schema;
}

struct Dequant {
    std::vector<float> offset, scale;
    std::vector<std::uint32_t> maxq;
    std::vector<std::uint8_t> width;
    std::size_t key_bytes = 0;  // the values of a key frame
    bool all_u16 = true;
    explicit Dequant(const Schema& s) {
        const std::size_t k = s.channels.size();
        offset.resize(k);
        scale.resize(k);
        maxq.resize(k);
        width.resize(k);
        for (std::size_t i = 0; i < k; ++i) {
            const Channel& ch = s.channels[i];
            maxq[i] = quant_max(ch.quant);
            width[i] = static_cast<std::uint8_t>(quant_bytes(ch.quant));
            offset[i] = ch.lo;
            scale[i] = static_cast<float>((static_cast<double>(ch.hi) - ch.lo) / maxq[i]);
            key_bytes += width[i];
            all_u16 = all_u16 && ch.quant == Quant::kU16;
        }
    }
};

// The channels a change mask names, in channel order, and the bytes their differences take: built
// once per explicit mask and reused by every kFrameDeltaSame frame after it.
struct ChangeList {
    std::vector<std::uint32_t> channels;
    std::size_t bytes = 0;
    bool valid = false;

    void assign(const std::uint8_t* mask, std::size_t mask_bytes, const Dequant& dq) {
        channels.clear();
        channels.reserve(mask_bytes * 8);
        bytes = 0;
        for (std::size_t b = 0; b < mask_bytes; ++b) {
            for (unsigned bits = mask[b], bit = 0; bits != 0; bits >>= 1, ++bit) {
                if ((bits & 1u) == 0) continue;
                const std::size_t c = b * 8 + bit;
                channels.push_back(static_cast<std::uint32_t>(c));
                bytes += dq.width[c];
            }
        }
        valid = true;
    }
};

// One zstd decompression context per thread, reused: ZSTD_decompress() allocates and frees a fresh
// one (over 100 KB) on every call, which costs more than decoding a 100-frame payload.
ZSTD_DCtx* thread_dctx() {
    struct Free {
        void operator()(ZSTD_DCtx* ctx) const noexcept { ZSTD_freeDCtx(ctx); }
    };
    thread_local std::unique_ptr<ZSTD_DCtx, Free> ctx(ZSTD_createDCtx());
    if (!ctx) throw std::bad_alloc();
    return ctx.get();
}

}  // namespace

const char* error_code_name(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::kTruncated: return "truncated";
        case ErrorCode::kBadMagic: return "bad_magic";
        case ErrorCode::kUnsupportedVersion: return "unsupported_version";
        case ErrorCode::kUnsupportedFlags: return "unsupported_flags";
        case ErrorCode::kBadSchema: return "bad_schema";
        case ErrorCode::kLimitExceeded: return "limit_exceeded";
        case ErrorCode::kMissingSchema: return "missing_schema";
        case ErrorCode::kMissingKeyFrame: return "missing_key_frame";
        case ErrorCode::kBadFrame: return "bad_frame";
        case ErrorCode::kCompression: return "compression";
        case ErrorCode::kTrailingBytes: return "trailing_bytes";
        case ErrorCode::kInvalidValue: return "invalid_value";
        case ErrorCode::kBadProtobuf: return "bad_protobuf";
    }
    return "unknown";
}

CodecError::CodecError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

void validate_schema(const Schema& schema, std::size_t max_channels) {
    if (schema.fps_num < 1 || schema.fps_num > kMaxFpsTerm || schema.fps_den < 1 || schema.fps_den > kMaxFpsTerm) {
        fail(ErrorCode::kBadSchema, "fps must be num/den with both in 1..1000");
    }
    if (schema.channels.empty()) fail(ErrorCode::kBadSchema, "schema has no channels");
    if (schema.channels.size() > max_channels) {
        fail(ErrorCode::kLimitExceeded, "schema has " + std::to_string(schema.channels.size()) +
                                            " channels, limit " + std::to_string(max_channels));
    }
    std::vector<std::string_view> names;
    names.reserve(schema.channels.size());
    for (const Channel& ch : schema.channels) {
        if (ch.name.empty() || ch.name.size() > kMaxNameLength) {
            fail(ErrorCode::kBadSchema, "channel name must be 1..64 bytes, got " + std::to_string(ch.name.size()));
        }
        for (unsigned char c : ch.name) {
            if (!valid_name_char(c)) fail(ErrorCode::kBadSchema, "channel name has a character outside [A-Za-z0-9_.:-]");
        }
        if (ch.quant != Quant::kU8 && ch.quant != Quant::kU16) fail(ErrorCode::kBadSchema, "unknown quantization");
        if (!(std::fabs(ch.lo) <= kMaxRangeEnd) || !(std::fabs(ch.hi) <= kMaxRangeEnd) || !(ch.lo < ch.hi)) {
            fail(ErrorCode::kBadSchema, "channel '" + ch.name + "' needs finite lo < hi, both within +-1e38");
        }
        names.push_back(ch.name);
    }
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) fail(ErrorCode::kBadSchema, "channel '" + std::string(*dup) + "' appears twice");
}

std::uint32_t quantize(const Channel& channel, float value) {
    if (std::isnan(value)) fail(ErrorCode::kInvalidValue, "NaN in channel '" + channel.name + "'");
    const std::uint32_t maxq = quant_max(channel.quant);
    if (value <= channel.lo) return 0;
    if (value >= channel.hi) return maxq;
    double t = (static_cast<double>(value) - channel.lo) / (static_cast<double>(channel.hi) - channel.lo);
    double q = std::nearbyint(t * maxq);
    if (q < 0.0) q = 0.0;
    if (q > maxq) q = maxq;
    return static_cast<std::uint32_t>(q);
}

float dequantize(const Channel& channel, std::uint32_t q) {
    const std::uint32_t maxq = quant_max(channel.quant);
    float scale = static_cast<float>((static_cast<double>(channel.hi) - channel.lo) / maxq);
    return channel.lo + static_cast<float>(std::min(q, maxq)) * scale;
}

// ------------------------------------------------------------------------------------------------
// Decoder

StreamDecoder::StreamDecoder(Limits limits) : limits_(limits) {}

void StreamDecoder::reset() {
    schema_.reset();
    state_.clear();
    mask_.clear();
    have_reference_ = false;
    have_mask_ = false;
    last_index_ = -1;
}

DecodedChunk StreamDecoder::decode(const std::uint8_t* data, std::size_t size) {
    if (size > limits_.max_payload_bytes) {
        fail(ErrorCode::kLimitExceeded, "payload of " + std::to_string(size) + " bytes is over the limit of " +
                                            std::to_string(limits_.max_payload_bytes));
    }
    Reader header(data, size);
    if (header.remaining() < 4) fail(ErrorCode::kTruncated, "truncated payload: header needs 4 bytes, got " + std::to_string(size));
    if (header.u8("magic") != kMagic0 || header.u8("magic") != kMagic1) {
        fail(ErrorCode::kBadMagic, "not an AvatarKit animation payload (bad magic)");
    }
    std::uint8_t version = header.u8("version");
    if (version != kFormatVersion) fail(ErrorCode::kUnsupportedVersion, "unsupported format version " + std::to_string(version));
    std::uint8_t flags = header.u8("flags");
    if (flags & ~kKnownFlags) fail(ErrorCode::kUnsupportedFlags, "unsupported flags 0x" + std::to_string(flags));

    const std::uint8_t* content = header.position();
    std::size_t content_size = header.remaining();
    if (flags & kFlagZstd) {
        std::uint64_t raw = header.varint("decompressed size");
        if (raw > limits_.max_decompressed_bytes) {
            fail(ErrorCode::kLimitExceeded, "declared decompressed size " + std::to_string(raw) + " is over the limit of " +
                                                std::to_string(limits_.max_decompressed_bytes));
        }
        const std::uint8_t* frame = header.position();
        std::size_t frame_size = header.remaining();
        std::size_t compressed = ZSTD_findFrameCompressedSize(frame, frame_size);
        if (ZSTD_isError(compressed)) fail(ErrorCode::kCompression, std::string("corrupt zstd section: ") + ZSTD_getErrorName(compressed));
        if (compressed != frame_size) fail(ErrorCode::kTrailingBytes, "bytes after the zstd section");
        unsigned long long declared = ZSTD_getFrameContentSize(frame, frame_size);
        if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN || declared != raw) {
            fail(ErrorCode::kCompression, "zstd section does not declare the payload's decompressed size");
        }
        scratch_.resize(static_cast<std::size_t>(raw));
        std::size_t got = ZSTD_decompressDCtx(thread_dctx(), scratch_.data(), scratch_.size(), frame, frame_size);
        if (ZSTD_isError(got)) fail(ErrorCode::kCompression, std::string("corrupt zstd section: ") + ZSTD_getErrorName(got));
        if (got != raw) fail(ErrorCode::kCompression, "zstd section decompressed to the wrong size");
        content = scratch_.data();
        content_size = got;
    }

    Reader r(content, content_size);
    std::shared_ptr<const Schema> schema = schema_;
    bool schema_changed = false;
    bool have_reference = have_reference_;
    bool have_mask = have_mask_;
    if (flags & kFlagSchema) {
        Schema parsed = read_schema(r, limits_);
        if (!schema || *schema != parsed) {
            schema = std::make_shared<const Schema>(std::move(parsed));
            schema_changed = true;
        }
        have_reference = false;  // the first frame after a schema block is a key frame
        have_mask = false;
    }

    std::uint64_t frame_count = r.varint("frame count");
    if (frame_count > limits_.max_frames) {
        fail(ErrorCode::kLimitExceeded, "payload has " + std::to_string(frame_count) + " frames, limit " +
                                            std::to_string(limits_.max_frames));
    }
    if (frame_count > 0 && !schema) fail(ErrorCode::kMissingSchema, "frames before any schema");
    if (frame_count > r.remaining() / 2) fail(ErrorCode::kTruncated, "truncated payload: fewer bytes than frames declared");

    DecodedChunk out;
    out.schema = schema;
    out.schema_changed = schema_changed;
    out.frames = static_cast<std::size_t>(frame_count);
    out.channels = schema ? schema->channels.size() : 0;
    if (frame_count == 0) {
        if (!r.done()) fail(ErrorCode::kTrailingBytes, std::to_string(r.remaining()) + " bytes after the last frame");
        schema_ = schema;
        have_reference_ = have_reference;
        have_mask_ = have_mask;
        if (schema_changed) state_.assign(out.channels, 0);
        return out;
    }

    const std::size_t k = out.channels;
    if (out.frames > limits_.max_output_values / k) {
        fail(ErrorCode::kLimitExceeded, "payload decodes to more than " + std::to_string(limits_.max_output_values) + " values");
    }
    const Dequant dq(*schema);
    const std::size_t mask_bytes = (k + 7) / 8;
    std::vector<std::uint32_t> state = schema_changed || state_.size() != k ? std::vector<std::uint32_t>(k, 0) : state_;
    std::vector<std::uint8_t> mask = mask_.size() == mask_bytes ? mask_ : std::vector<std::uint8_t>(mask_bytes, 0);
    std::int64_t last = last_index_;
    ChangeList changed;

    out.values.resize(out.frames * k);
    out.frame_indices.resize(out.frames);
    for (std::size_t f = 0; f < out.frames; ++f) {
        std::uint8_t type = r.u8("frame type");
        std::int64_t index;
        if (type == kFrameKey) {
            std::uint64_t v = r.varint("frame index");
            if (v > static_cast<std::uint64_t>(kMaxFrameIndex)) fail(ErrorCode::kBadFrame, "frame index over 2^53");
            index = static_cast<std::int64_t>(v);
            if (index <= last) {
                fail(ErrorCode::kBadFrame, "frame index " + std::to_string(index) + " does not follow " + std::to_string(last));
            }
            const std::uint8_t* p = r.bytes(dq.key_bytes, "key frame values");  // one bounds check per frame
            if (dq.all_u16) {
                for (std::size_t c = 0; c < k; ++c) state[c] = p[2 * c] | (static_cast<std::uint32_t>(p[2 * c + 1]) << 8);
            } else {
                for (std::size_t c = 0; c < k; ++c) {
                    std::uint32_t q = *p++;
                    if (dq.width[c] == 2) q |= static_cast<std::uint32_t>(*p++) << 8;
                    state[c] = q;
                }
            }
            have_reference = true;
        } else if (type == kFrameDelta || type == kFrameDeltaSame) {
            if (!have_reference) fail(ErrorCode::kMissingKeyFrame, "delta frame without a preceding key frame");
            std::uint64_t step = r.varint("frame index step");
            if (step < 1 || step > static_cast<std::uint64_t>(kMaxFrameIndex - last)) {
                fail(ErrorCode::kBadFrame, "frame index step " + std::to_string(step) + " is out of range");
            }
            index = last + static_cast<std::int64_t>(step);
            if (type == kFrameDelta) {
                const std::uint8_t* m = r.bytes(mask_bytes, "change mask");
                if (k % 8 != 0 && (m[mask_bytes - 1] >> (k % 8)) != 0) {
                    fail(ErrorCode::kBadFrame, "change mask names channels beyond the schema");
                }
                std::copy(m, m + mask_bytes, mask.begin());
                have_mask = true;
                changed.assign(mask.data(), mask_bytes, dq);
            } else if (!have_mask) {
                fail(ErrorCode::kBadFrame, "delta frame reuses a change mask that was never sent");
            } else if (!changed.valid) {
                changed.assign(mask.data(), mask_bytes, dq);  // the mask came with an earlier payload
            }
            const std::uint8_t* p = r.bytes(changed.bytes, "delta values");  // one bounds check per frame
            for (std::uint32_t c : changed.channels) {
                std::uint32_t d = *p++;
                if (dq.width[c] == 2) d |= static_cast<std::uint32_t>(*p++) << 8;
                state[c] = (state[c] + d) & dq.maxq[c];
            }
        } else {
            fail(ErrorCode::kBadFrame, "unknown frame type " + std::to_string(type));
        }
        last = index;
        out.frame_indices[f] = index;
        float* row = out.values.data() + f * k;
        const float* off = dq.offset.data();
        const float* sc = dq.scale.data();
        const std::uint32_t* st = state.data();
        // q <= 65535 fits int32, whose conversion to float is one instruction (unsigned needs several).
        for (std::size_t c = 0; c < k; ++c) row[c] = off[c] + static_cast<float>(static_cast<std::int32_t>(st[c])) * sc[c];
    }
    if (!r.done()) fail(ErrorCode::kTrailingBytes, std::to_string(r.remaining()) + " bytes after the last frame");

    schema_ = std::move(schema);
    state_ = std::move(state);
    mask_ = std::move(mask);
    have_reference_ = have_reference;
    have_mask_ = have_mask;
    last_index_ = last;
    return out;
}

// ------------------------------------------------------------------------------------------------
// Encoder

StreamEncoder::StreamEncoder(Schema schema, EncoderOptions options) : schema_(std::move(schema)), options_(options) {
    validate_schema(schema_, std::numeric_limits<std::size_t>::max());
    if (options_.key_interval < 1) fail(ErrorCode::kInvalidValue, "key_interval must be >= 1");
    if (options_.zstd_level < 0 || options_.zstd_level > ZSTD_maxCLevel()) {
        fail(ErrorCode::kInvalidValue, "zstd_level must be 0 (off) or 1.." + std::to_string(ZSTD_maxCLevel()));
    }
}

void StreamEncoder::set_schema(Schema schema) {
    validate_schema(schema, std::numeric_limits<std::size_t>::max());
    if (schema != schema_) {
        schema_ = std::move(schema);
        send_schema_ = true;
        force_key_ = true;
        state_.clear();
        have_mask_ = false;
    }
}

std::vector<std::uint8_t> StreamEncoder::encode(const float* values, std::size_t frames, std::size_t channels,
                                                const std::int64_t* frame_indices) {
    const std::size_t k = schema_.channels.size();
    if (channels != k) {
        fail(ErrorCode::kInvalidValue, "frames have " + std::to_string(channels) + " channels, the schema has " + std::to_string(k));
    }
    // Validate and quantize everything first so a bad frame leaves the encoder untouched.
    std::vector<std::uint32_t> q(frames * k);
    std::int64_t last = last_index_;
    for (std::size_t f = 0; f < frames; ++f) {
        std::int64_t idx = frame_indices[f];
        if (idx <= last || idx > kMaxFrameIndex) {
            fail(ErrorCode::kInvalidValue, "frame index " + std::to_string(idx) + " does not follow " + std::to_string(last));
        }
        last = idx;
        for (std::size_t c = 0; c < k; ++c) q[f * k + c] = quantize(schema_.channels[c], values[f * k + c]);
    }

    const std::size_t mask_bytes = (k + 7) / 8;
    std::vector<std::uint32_t> state = state_.size() == k ? state_ : std::vector<std::uint32_t>(k, 0);
    std::vector<std::uint8_t> mask = have_mask_ ? mask_ : std::vector<std::uint8_t>(mask_bytes, 0);
    bool have_mask = have_mask_ && !send_schema_;
    bool need_key = force_key_ || send_schema_ || state_.size() != k;
    int since_key = since_key_;
    last = last_index_;

    std::vector<std::uint8_t> content;
    content.reserve(16 + frames * (k * 2 + 4) + (send_schema_ ? k * 32 : 0));
    Writer w(content);
    if (send_schema_) write_schema(w, schema_);
    w.varint(frames);
    std::vector<std::uint8_t> changed(mask_bytes);
    for (std::size_t f = 0; f < frames; ++f) {
        const std::uint32_t* row = q.data() + f * k;
        std::int64_t idx = frame_indices[f];
        if (need_key || since_key >= options_.key_interval) {
            w.u8(kFrameKey);
            w.varint(static_cast<std::uint64_t>(idx));
            for (std::size_t c = 0; c < k; ++c) {
                if (schema_.channels[c].quant == Quant::kU8) w.u8(static_cast<std::uint8_t>(row[c]));
                else w.u16(static_cast<std::uint16_t>(row[c]));
                state[c] = row[c];
            }
            need_key = false;
            since_key = 1;
        } else {
            std::fill(changed.begin(), changed.end(), 0);
            std::size_t changed_cost = mask_bytes, same_cost = 0;
            bool same_possible = have_mask && options_.reuse_masks;
            for (std::size_t c = 0; c < k; ++c) {
                std::size_t width = quant_bytes(schema_.channels[c].quant);
                bool in_last = (mask[c / 8] >> (c % 8)) & 1u;
                if (row[c] != state[c]) {
                    changed[c / 8] = static_cast<std::uint8_t>(changed[c / 8] | (1u << (c % 8)));
                    changed_cost += width;
                    if (!in_last) same_possible = false;
                }
                if (in_last) same_cost += width;
            }
            bool reuse = same_possible && same_cost <= changed_cost;
            w.u8(reuse ? kFrameDeltaSame : kFrameDelta);
            w.varint(static_cast<std::uint64_t>(idx - last));
            if (!reuse) {
                w.bytes(changed.data(), mask_bytes);
                mask = changed;
                have_mask = true;
            }
            for (std::size_t c = 0; c < k; ++c) {
                if (!((mask[c / 8] >> (c % 8)) & 1u)) continue;
                std::uint32_t maxq = quant_max(schema_.channels[c].quant);
                std::uint32_t d = (row[c] - state[c]) & maxq;
                if (maxq == 255u) w.u8(static_cast<std::uint8_t>(d));
                else w.u16(static_cast<std::uint16_t>(d));
                state[c] = row[c];
            }
            ++since_key;
        }
        last = idx;
    }

    std::vector<std::uint8_t> out;
    Writer h(out);
    std::uint8_t flags = static_cast<std::uint8_t>((send_schema_ ? kFlagSchema : 0) | (options_.zstd_level > 0 ? kFlagZstd : 0));
    h.u8(kMagic0);
    h.u8(kMagic1);
    h.u8(kFormatVersion);
    h.u8(flags);
    if (options_.zstd_level > 0) {
        h.varint(content.size());
        std::size_t bound = ZSTD_compressBound(content.size());
        std::size_t start = out.size();
        out.resize(start + bound);
        std::size_t n = ZSTD_compress(out.data() + start, bound, content.data(), content.size(), options_.zstd_level);
        if (ZSTD_isError(n)) fail(ErrorCode::kCompression, std::string("zstd: ") + ZSTD_getErrorName(n));
        out.resize(start + n);
    } else {
        h.bytes(content.data(), content.size());
    }

    state_ = std::move(state);
    mask_ = std::move(mask);
    have_mask_ = have_mask;
    since_key_ = since_key;
    last_index_ = last;
    send_schema_ = false;
    force_key_ = need_key;  // an empty chunk sent no key frame: the next chunk still owes one
    return out;
}

}  // namespace avatarkit::codec
