// The animation ("driving") stream codec: schema, per-channel quantization, key and delta frames,
// optional zstd over multi-frame chunks. The byte layout is specified in docs/codec.md.
//
// Pure C++17: no Python, no GL. Every decoder entry point bounds-checks its input and throws
// CodecError for anything malformed; nothing here reads out of bounds or allocates more than the
// configured Limits allow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace avatarkit::codec {

inline constexpr std::uint8_t kMagic0 = 0x41;  // 'A'
inline constexpr std::uint8_t kMagic1 = 0x4B;  // 'K'
inline constexpr std::uint8_t kFormatVersion = 1;

// Header flag bits.
inline constexpr std::uint8_t kFlagSchema = 0x01;  // a schema block precedes the frames
inline constexpr std::uint8_t kFlagZstd = 0x02;    // schema + frames are one zstd frame
inline constexpr std::uint8_t kKnownFlags = kFlagSchema | kFlagZstd;

// Frame type byte.
inline constexpr std::uint8_t kFrameKey = 0;        // every channel, absolute values
inline constexpr std::uint8_t kFrameDelta = 1;      // change mask + wrapped differences
inline constexpr std::uint8_t kFrameDeltaSame = 2;  // differences, reusing the last change mask

enum class ErrorCode : int {
    kTruncated = 1,         // the input ends inside a field
    kBadMagic = 2,          // not an AvatarKit animation payload
    kUnsupportedVersion = 3,
    kUnsupportedFlags = 4,
    kBadSchema = 5,         // a schema field is out of its domain
    kLimitExceeded = 6,     // a count or size is over the configured limit
    kMissingSchema = 7,     // frames arrived before any schema
    kMissingKeyFrame = 8,   // a delta frame has nothing to apply to
    kBadFrame = 9,          // unknown frame type, index not increasing, ...
    kCompression = 10,      // the zstd section is corrupt or lies about its size
    kTrailingBytes = 11,    // bytes left after the last frame
    kInvalidValue = 12,     // encoder input: NaN, wrong shape
    kBadProtobuf = 13,      // FlameAnimation wire format errors
};

const char* error_code_name(ErrorCode code) noexcept;

class CodecError : public std::runtime_error {
public:
    CodecError(ErrorCode code, const std::string& message);
    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

enum class Quant : std::uint8_t { kU8 = 1, kU16 = 2 };

inline std::uint32_t quant_max(Quant q) noexcept { return q == Quant::kU8 ? 255u : 65535u; }
inline std::size_t quant_bytes(Quant q) noexcept { return q == Quant::kU8 ? 1u : 2u; }

struct Channel {
    std::string name;  // 1..64 bytes of [A-Za-z0-9_.:-]
    Quant quant = Quant::kU16;
    float lo = 0.0f;  // value of quantized 0
    float hi = 1.0f;  // value of quantized max; lo < hi, both finite and within +-1e38

    bool operator==(const Channel& o) const {
        return name == o.name && quant == o.quant && lo == o.lo && hi == o.hi;
    }
};

struct Schema {
    std::uint32_t fps_num = 25;  // frames per second as a fraction, 1..1000 each
    std::uint32_t fps_den = 1;
    std::vector<Channel> channels;

    double fps() const noexcept { return static_cast<double>(fps_num) / fps_den; }
    bool operator==(const Schema& o) const {
        return fps_num == o.fps_num && fps_den == o.fps_den && channels == o.channels;
    }
    bool operator!=(const Schema& o) const { return !(*this == o); }
};

// Throws CodecError(kBadSchema) when the schema could not travel on the wire.
void validate_schema(const Schema& schema, std::size_t max_channels);

struct Limits {
    std::size_t max_channels = 1024;
    std::size_t max_frames = 16384;                  // per payload (10.9 min at 25 fps)
    std::size_t max_payload_bytes = 16u << 20;       // compressed or not
    std::size_t max_decompressed_bytes = 16u << 20;  // size of the zstd content
    std::size_t max_output_values = 16u << 20;       // frames x channels per payload (64 MiB of f32)
};

// Frames decoded from one payload: row-major float32 values, frames x channels.
struct DecodedChunk {
    std::shared_ptr<const Schema> schema;
    bool schema_changed = false;  // this payload carried a schema that differs from the previous one
    std::size_t frames = 0;
    std::size_t channels = 0;
    std::vector<float> values;
    std::vector<std::int64_t> frame_indices;
};

// Decodes the payloads of one stream (one request) in order. Delta frames refer to the last
// frame of the previous payload, so payloads must be fed in the order they were produced.
// A payload that fails to decode leaves the decoder as it was before that payload.
class StreamDecoder {
public:
    explicit StreamDecoder(Limits limits = {});

    DecodedChunk decode(const std::uint8_t* data, std::size_t size);
    void reset();

    std::shared_ptr<const Schema> schema() const { return schema_; }
    const Limits& limits() const { return limits_; }
    // Index of the last decoded frame, or -1 before the first.
    std::int64_t last_frame_index() const { return last_index_; }

private:
    Limits limits_;
    std::shared_ptr<const Schema> schema_;
    std::vector<std::uint32_t> state_;  // last quantized value per channel
    std::vector<std::uint8_t> mask_;    // last explicit change mask
    bool have_reference_ = false;
    bool have_mask_ = false;
    std::int64_t last_index_ = -1;
    std::vector<std::uint8_t> scratch_;  // decompression buffer, reused
};

struct EncoderOptions {
    int key_interval = 25;      // a key frame at least this often (frames); >= 1
    int zstd_level = 0;         // 0 = no compression, 1..22 = zstd level
    bool reuse_masks = true;    // emit kFrameDeltaSame when the change mask repeats
};

// Encodes a stream. The first payload, and the first after set_schema() with a different schema,
// carries the schema and starts with a key frame.
class StreamEncoder {
public:
    StreamEncoder(Schema schema, EncoderOptions options = {});

    // values: frames x channels (row-major), frame_indices: one per frame, strictly increasing
    // across the whole stream. Values outside [lo, hi] are clamped; NaN is rejected.
    std::vector<std::uint8_t> encode(const float* values, std::size_t frames, std::size_t channels,
                                     const std::int64_t* frame_indices);

    void set_schema(Schema schema);
    void force_key_frame() { force_key_ = true; }
    const Schema& schema() const { return schema_; }
    std::int64_t last_frame_index() const { return last_index_; }

private:
    Schema schema_;
    EncoderOptions options_;
    bool send_schema_ = true;
    bool force_key_ = true;
    int since_key_ = 0;
    std::vector<std::uint32_t> state_;
    std::vector<std::uint8_t> mask_;
    bool have_mask_ = false;
    std::int64_t last_index_ = -1;
};

// Inclusive quantize / dequantize of one value for a channel (exposed for tests and tools).
std::uint32_t quantize(const Channel& channel, float value);
float dequantize(const Channel& channel, std::uint32_t q);

}  // namespace avatarkit::codec
