// Bounds-checked little-endian reading and writing shared by the decoders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "avatarkit/codec.hpp"

namespace avatarkit::detail {

class Reader {
public:
    Reader(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    bool done() const noexcept { return p_ == end_; }
    const std::uint8_t* position() const noexcept { return p_; }

    void need(std::size_t n, const char* what) const {
        if (remaining() < n) {
            throw codec::CodecError(codec::ErrorCode::kTruncated,
                                    std::string("truncated payload: ") + what + " needs " +
                                        std::to_string(n) + " bytes, " +
                                        std::to_string(remaining()) + " left");
        }
    }

    std::uint8_t u8(const char* what) {
        need(1, what);
        return *p_++;
    }

    std::uint16_t u16(const char* what) {
        need(2, what);
        std::uint16_t v = static_cast<std::uint16_t>(p_[0] | (p_[1] << 8));
        p_ += 2;
        return v;
    }

    float f32(const char* what) {
        need(4, what);
        std::uint32_t bits = static_cast<std::uint32_t>(p_[0]) | (static_cast<std::uint32_t>(p_[1]) << 8) |
                             (static_cast<std::uint32_t>(p_[2]) << 16) |
                             (static_cast<std::uint32_t>(p_[3]) << 24);
        p_ += 4;
        float v;
        std::memcpy(&v, &bits, sizeof v);
        return v;
    }

    // LEB128 unsigned varint of at most 10 bytes that fits in 64 bits.
    std::uint64_t varint(const char* what) {
        std::uint64_t result = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            std::uint8_t byte = u8(what);
            std::uint64_t bits = byte & 0x7Fu;
            if (shift == 63 && bits > 1) {
                throw codec::CodecError(codec::ErrorCode::kBadFrame,
                                        std::string("varint overflows 64 bits in ") + what);
            }
            result |= bits << shift;
            if ((byte & 0x80u) == 0) return result;
        }
        throw codec::CodecError(codec::ErrorCode::kBadFrame, std::string("varint longer than 10 bytes in ") + what);
    }

    const std::uint8_t* bytes(std::size_t n, const char* what) {
        need(n, what);
        const std::uint8_t* out = p_;
        p_ += n;
        return out;
    }

    void skip(std::size_t n, const char* what) { bytes(n, what); }

private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

class Writer {
public:
    explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}

    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) {
        out_.push_back(static_cast<std::uint8_t>(v & 0xFFu));
        out_.push_back(static_cast<std::uint8_t>(v >> 8));
    }
    void f32(float v) {
        std::uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        for (int i = 0; i < 4; ++i) out_.push_back(static_cast<std::uint8_t>((bits >> (8 * i)) & 0xFFu));
    }
    void varint(std::uint64_t v) {
        while (v >= 0x80u) {
            out_.push_back(static_cast<std::uint8_t>((v & 0x7Fu) | 0x80u));
            v >>= 7;
        }
        out_.push_back(static_cast<std::uint8_t>(v));
    }
    void bytes(const void* data, std::size_t n) {
        const auto* p = static_cast<const std::uint8_t*>(data);
        out_.insert(out_.end(), p, p + n);
    }
    std::size_t size() const { return out_.size(); }

private:
    std::vector<std::uint8_t>& out_;
};

}  // namespace avatarkit::detail
