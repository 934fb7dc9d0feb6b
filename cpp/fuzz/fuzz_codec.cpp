// Fuzz target for every byte parser of the C++ core: codec::StreamDecoder (AK1) and flame::decode.
//
// Built with clang's libFuzzer (-fsanitize=fuzzer) or, elsewhere, behind standalone_driver.cpp.
// Every input is used four ways:
//   1. the whole input as one AK1 payload, with the default Limits and with small ones;
//   2. the whole input as one FlameAnimation, with the default Limits and with small ones;
//   3. the input split into up to 8 payloads (layout in fuzz_format.hpp) fed in order to one
//      stateful decoder, as a stream of one request is;
//   4. for every payload that decodes: its values re-encoded with a StreamEncoder (alone, and as
//      part of a re-encoded stream) and decoded again.
// A CodecError is the expected outcome for bad input. Anything else is a bug and aborts: another
// exception type, a broken documented property (below), or what the sanitizers report.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "avatarkit/codec.hpp"
#include "avatarkit/flame.hpp"
#include "fuzz_format.hpp"

namespace codec = avatarkit::codec;
namespace flame = avatarkit::flame;
namespace fuzz = avatarkit::fuzz;

namespace {

// Small enough that short inputs can cross each limit on its own.
const codec::Limits kSmallLimits = [] {
    codec::Limits l;
    l.max_channels = 8;
    l.max_frames = 6;
    l.max_payload_bytes = 2048;
    l.max_decompressed_bytes = 1024;
    l.max_output_values = 40;
    return l;
}();

const flame::Limits kSmallFlameLimits = [] {
    flame::Limits l;
    l.max_keyframes = 2;
    l.max_bytes = 1024;
    return l;
}();

// Re-encoding costs about as much as decoding; a zstd payload can declare 16 MiB of frames, and
// re-encoding that on every such input would only slow the search down.
constexpr std::size_t kMaxRoundTripValues = std::size_t{1} << 20;
constexpr std::int64_t kMaxFrameIndex = std::int64_t{1} << 53;

[[noreturn]] void violation(const char* what) {
    std::fprintf(stderr, "fuzz_codec: property violated: %s\n", what);
    std::fflush(stderr);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) violation(what);
}

// The decoder computes lo + q * scale in float32 with scale = (hi - lo) / M rounded to float32, so
// on top of the half step the spec promises (exact arithmetic) allow a few float32 roundings at the
// magnitude of those terms, and the absolute error of a subnormal scale (ranges under ~1e-33)
// multiplied by q <= M.
double tolerance(const codec::Channel& ch) {
    const double m = codec::quant_max(ch.quant);
    const double range = static_cast<double>(ch.hi) - static_cast<double>(ch.lo);
    const double magnitude = std::max({std::fabs(static_cast<double>(ch.lo)), std::fabs(static_cast<double>(ch.hi)), range});
    const double subnormal_ulp = std::numeric_limits<float>::denorm_min();
    return range / (2.0 * m) + 4.0 * magnitude * std::numeric_limits<float>::epsilon() + (m + 2.0) * subnormal_ulp;
}

bool is_decoder_error(codec::ErrorCode code) {
    switch (code) {
        case codec::ErrorCode::kTruncated:
        case codec::ErrorCode::kBadMagic:
        case codec::ErrorCode::kUnsupportedVersion:
        case codec::ErrorCode::kUnsupportedFlags:
        case codec::ErrorCode::kBadSchema:
        case codec::ErrorCode::kLimitExceeded:
        case codec::ErrorCode::kMissingSchema:
        case codec::ErrorCode::kMissingKeyFrame:
        case codec::ErrorCode::kBadFrame:
        case codec::ErrorCode::kCompression:
        case codec::ErrorCode::kTrailingBytes:
            return true;
        case codec::ErrorCode::kInvalidValue:  // encoder arguments only
        case codec::ErrorCode::kBadProtobuf:   // flame::decode only
            return false;
    }
    return false;
}

void check_decoder_error(const codec::CodecError& e) {
    check(is_decoder_error(e.code()), "StreamDecoder threw an error code outside the documented set");
    check(e.what() != nullptr && e.what()[0] != '\0', "CodecError without a message");
}

// Invariants of any chunk a decoder returns; `last_before` is the decoder's last index before it.
void check_chunk(const codec::DecodedChunk& chunk, std::int64_t last_before, const codec::StreamDecoder& decoder) {
    check(chunk.frame_indices.size() == chunk.frames, "frame_indices.size() != frames");
    check(chunk.values.size() == chunk.frames * chunk.channels, "values.size() != frames * channels");
    check(chunk.frames == 0 || chunk.schema != nullptr, "frames without a schema");
    check(decoder.schema() == chunk.schema, "decoder schema differs from the chunk's");
    if (!chunk.schema) return;
    const codec::Schema& s = *chunk.schema;
    check(chunk.channels == s.channels.size(), "channels != schema size");
    try {
        codec::validate_schema(s, decoder.limits().max_channels);
    } catch (const codec::CodecError&) {
        violation("the decoder accepted a schema that validate_schema rejects");
    }
    check(chunk.frames <= decoder.limits().max_frames, "more frames than Limits::max_frames");
    check(chunk.values.size() <= decoder.limits().max_output_values, "more values than Limits::max_output_values");
    std::int64_t last = last_before;
    for (std::int64_t index : chunk.frame_indices) {
        check(index > last, "frame indices do not strictly increase");
        check(index <= kMaxFrameIndex, "frame index over 2^53");
        last = index;
    }
    check(decoder.last_frame_index() == last, "last_frame_index() is not the last decoded index");
    for (std::size_t f = 0; f < chunk.frames; ++f) {
        for (std::size_t c = 0; c < chunk.channels; ++c) {
            const codec::Channel& ch = s.channels[c];
            const float v = chunk.values[f * chunk.channels + c];
            const double tol = tolerance(ch);
            if (!std::isfinite(v) || !(v >= ch.lo - tol && v <= ch.hi + tol)) {
                std::fprintf(stderr, "fuzz_codec: channel '%s' (%s, lo %.9g, hi %.9g) frame %zu decoded to %.9g\n",
                             ch.name.c_str(), ch.quant == codec::Quant::kU8 ? "u8" : "u16", static_cast<double>(ch.lo),
                             static_cast<double>(ch.hi), f, static_cast<double>(v));
                violation(std::isfinite(v) ? "decoded value outside [lo, hi]" : "decoded value is not finite");
            }
        }
    }
}

// `again` decoded the same frames as `chunk` from a re-encoding: same shape, same indices, values
// within half a step.
void check_round_trip(const codec::DecodedChunk& chunk, const codec::DecodedChunk& again) {
    check(again.frames == chunk.frames && again.channels == chunk.channels, "round trip changed the shape");
    check(again.frame_indices == chunk.frame_indices, "round trip changed the frame indices");
    check(again.schema != nullptr && *again.schema == *chunk.schema, "round trip changed the schema");
    const codec::Schema& s = *chunk.schema;
    for (std::size_t c = 0; c < chunk.channels; ++c) {
        const double tol = tolerance(s.channels[c]);
        for (std::size_t f = 0; f < chunk.frames; ++f) {
            const std::size_t i = f * chunk.channels + c;
            const double diff = std::fabs(static_cast<double>(again.values[i]) - static_cast<double>(chunk.values[i]));
            if (!(diff <= tol)) {
                const codec::Channel& ch = s.channels[c];
                std::fprintf(stderr, "fuzz_codec: channel '%s' (%s, lo %.9g, hi %.9g) frame %zu: %.9g became %.9g\n",
                             ch.name.c_str(), ch.quant == codec::Quant::kU8 ? "u8" : "u16", static_cast<double>(ch.lo),
                             static_cast<double>(ch.hi), f, static_cast<double>(chunk.values[i]), static_cast<double>(again.values[i]));
                violation("round trip moved a value by more than half a quantization step");
            }
        }
    }
}

std::vector<std::uint8_t> encode_or_die(codec::StreamEncoder& encoder, const codec::DecodedChunk& chunk) {
    try {
        return encoder.encode(chunk.values.data(), chunk.frames, chunk.channels, chunk.frame_indices.data());
    } catch (const codec::CodecError&) {
        violation("StreamEncoder rejected frames the decoder produced");
    }
}

codec::DecodedChunk decode_or_die(codec::StreamDecoder& decoder, const std::vector<std::uint8_t>& bytes, const char* what) {
    try {
        return decoder.decode(bytes.data(), bytes.size());
    } catch (const codec::CodecError& e) {
        std::fprintf(stderr, "fuzz_codec: %s\n", e.what());
        violation(what);
    }
}

// Property 4a: one payload, re-encoded alone.
void round_trip_alone(const codec::DecodedChunk& chunk, const codec::EncoderOptions& options) {
    if (chunk.frames == 0 || chunk.values.size() > kMaxRoundTripValues) return;
    std::optional<codec::StreamEncoder> encoder;
    try {
        encoder.emplace(*chunk.schema, options);
    } catch (const codec::CodecError&) {
        violation("StreamEncoder rejected a schema the decoder accepted");
    }
    const std::vector<std::uint8_t> bytes = encode_or_die(*encoder, chunk);
    codec::StreamDecoder decoder;
    const codec::DecodedChunk again = decode_or_die(decoder, bytes, "a re-encoded payload does not decode");
    check_round_trip(chunk, again);
}

// Property 4b: the accepted payloads of a stream, re-encoded in order by one encoder (so schema
// changes, empty payloads and delta frames across payloads go through the encoder's state too).
class StreamRoundTrip {
public:
    explicit StreamRoundTrip(codec::EncoderOptions options) : options_(options) {}

    void feed(const codec::DecodedChunk& chunk) {
        if (!chunk.schema || chunk.values.size() > kMaxRoundTripValues) return;
        try {
            if (encoder_) encoder_->set_schema(*chunk.schema);
            else encoder_.emplace(*chunk.schema, options_);
        } catch (const codec::CodecError&) {
            violation("StreamEncoder rejected a schema the decoder accepted");
        }
        const std::vector<std::uint8_t> bytes = encode_or_die(*encoder_, chunk);
        const codec::DecodedChunk again = decode_or_die(decoder_, bytes, "a re-encoded stream does not decode");
        check_round_trip(chunk, again);
    }

private:
    codec::EncoderOptions options_;
    std::optional<codec::StreamEncoder> encoder_;
    codec::StreamDecoder decoder_;
};

codec::EncoderOptions options_from(std::uint8_t config) {
    codec::EncoderOptions o;
    o.key_interval = fuzz::config_key_interval(config);
    o.zstd_level = (config & fuzz::kConfigZstd) ? 1 : 0;
    o.reuse_masks = (config & fuzz::kConfigNoMaskReuse) == 0;
    return o;
}

// Properties 1 and 3: payloads fed in order to one decoder.
void fuzz_stream(const std::vector<fuzz::Span>& payloads, const codec::Limits& limits, const codec::EncoderOptions& options) {
    codec::StreamDecoder decoder(limits);
    // Sees only the payloads `decoder` accepted: a failed payload must leave no trace, so both
    // must agree on every later payload.
    codec::StreamDecoder shadow(limits);
    StreamRoundTrip stream_round_trip(options);
    for (const fuzz::Span& p : payloads) {
        const std::int64_t last_before = decoder.last_frame_index();
        const std::shared_ptr<const codec::Schema> schema_before = decoder.schema();
        codec::DecodedChunk chunk;
        try {
            chunk = decoder.decode(p.data, p.size);
        } catch (const codec::CodecError& e) {
            check_decoder_error(e);
            check(decoder.last_frame_index() == last_before && decoder.schema() == schema_before,
                  "a payload that failed changed the decoder");
            continue;
        }
        check_chunk(chunk, last_before, decoder);

        const std::vector<std::uint8_t> copy(p.data, p.data + p.size);
        const codec::DecodedChunk same =
            decode_or_die(shadow, copy, "a decoder that never saw the failed payloads rejects an accepted one");
        check(same.frames == chunk.frames && same.channels == chunk.channels && same.frame_indices == chunk.frame_indices &&
                  same.schema_changed == chunk.schema_changed,
              "a failed payload changed how a later payload decodes");
        check(std::equal(same.values.begin(), same.values.end(), chunk.values.begin(),
                         [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }),
              "a failed payload changed the values of a later payload");

        round_trip_alone(chunk, options);
        stream_round_trip.feed(chunk);
    }
}

// Property 2.
void fuzz_flame(const std::uint8_t* data, std::size_t size) {
    flame::Keyframes kf;
    try {
        kf = flame::decode(data, size);
    } catch (const codec::CodecError& e) {
        check(e.code() == codec::ErrorCode::kBadProtobuf || e.code() == codec::ErrorCode::kLimitExceeded,
              "flame::decode threw an error code other than bad_protobuf / limit_exceeded");
        return;
    }
    check(kf.values.size() == kf.frames * flame::kValuesPerKeyframe, "flame values.size() != frames * 120");
    // encode() writes what decode() read (all-zero fields omitted): decoding it again must give
    // the same bits, NaN payloads and negative zeros included.
    const std::vector<std::uint8_t> bytes = flame::encode(kf.values.data(), kf.frames);
    flame::Keyframes again;
    try {
        again = flame::decode(bytes.data(), bytes.size());
    } catch (const codec::CodecError&) {
        violation("flame::encode output does not decode");
    }
    check(again.frames == kf.frames && again.values.size() == kf.values.size() &&
              (kf.values.empty() || std::memcmp(again.values.data(), kf.values.data(), kf.values.size() * sizeof(float)) == 0),
          "flame round trip changed the keyframes");

    try {
        (void)flame::decode(data, size, kSmallFlameLimits);
    } catch (const codec::CodecError& e) {
        check(e.code() == codec::ErrorCode::kBadProtobuf || e.code() == codec::ErrorCode::kLimitExceeded,
              "flame::decode threw an error code other than bad_protobuf / limit_exceeded");
    }
}

void fuzz_one(const std::uint8_t* data, std::size_t size) {
    const std::vector<fuzz::Span> whole{fuzz::Span{data, size}};
    fuzz_stream(whole, codec::Limits{}, codec::EncoderOptions{});
    fuzz_stream(whole, kSmallLimits, codec::EncoderOptions{});
    fuzz_flame(data, size);
    const fuzz::StreamInput stream = fuzz::split_stream(data, size);
    if (!stream.payloads.empty()) {
        fuzz_stream(stream.payloads, (stream.config & fuzz::kConfigSmallLimits) ? kSmallLimits : codec::Limits{},
                    options_from(stream.config));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        fuzz_one(data, size);
    } catch (const codec::CodecError& e) {
        // Every expected CodecError is caught where it can occur; one escaping means a parser threw
        // from a place the harness does not expect (for example an encoder step on decoded data).
        std::fprintf(stderr, "fuzz_codec: CodecError escaped (%s): %s\n", codec::error_code_name(e.code()), e.what());
        std::abort();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_codec: unexpected exception: %s\n", e.what());
        std::abort();
    } catch (...) {
        std::fprintf(stderr, "fuzz_codec: unexpected non-std exception\n");
        std::abort();
    }
    return 0;
}
