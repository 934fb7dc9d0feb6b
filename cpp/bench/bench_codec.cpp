// Google Benchmark microbenchmarks of the AK1 codec and the FlameAnimation reader.
//
//   cmake -S . -B build-bench -G Ninja -DAVATARKIT_BENCH=ON -DAVATARKIT_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release
//   cmake --build build-bench --target bench_codec && build-bench/bench_codec
//   (or scripts/bench-cpp.sh)
//
// Every benchmark reports items_per_second = frames (keyframes for FlameAnimation) and bytes_per_second
// = float32 output bytes, so BM_Decode can be read against BM_Memcpy, which copies the same output
// bytes in the same chunks: the memory bandwidth limit of producing that output.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "avatarkit/channels.hpp"
#include "avatarkit/codec.hpp"
#include "avatarkit/flame.hpp"

namespace {

using namespace avatarkit;

constexpr std::size_t kFrames = 1500;  // 60 s at 25 fps
constexpr double kFps = 25.0;
constexpr double kPi = 3.14159265358979323846;
constexpr int kZstdLevel = 3;

const codec::Schema& canonical() {
    static const codec::Schema schema = channels::canonical_schema();
    return schema;
}

std::size_t column(std::string_view name) {
    for (std::size_t c = 0; c < canonical().channels.size(); ++c) {
        if (canonical().channels[c].name == name) return c;
    }
    throw std::invalid_argument("no canonical channel " + std::string(name));
}

// Smoothing by a normalised Hann window of `width` taps, as the Python generator does.
std::vector<double> smooth(const std::vector<double>& x, int width) {
    std::vector<double> kernel(static_cast<std::size_t>(width));
    double sum = 0;
    for (int i = 0; i < width; ++i) {
        const double s = std::sin(kPi * (i + 1) / (width + 1));
        sum += kernel[static_cast<std::size_t>(i)] = s * s;
    }
    std::vector<double> out(x.size(), 0.0);
    for (std::size_t f = 0; f < x.size(); ++f) {
        for (int i = 0; i < width; ++i) {
            const auto src = static_cast<std::ptrdiff_t>(f) + i - width / 2;
            if (src >= 0 && src < static_cast<std::ptrdiff_t>(x.size())) {
                out[f] += x[static_cast<std::size_t>(src)] * kernel[static_cast<std::size_t>(i)] / sum;
            }
        }
    }
    return out;
}

// Frames x 73 canonical channels that move like a talking face, deterministically: syllables every
// 150-350 ms open the jaw and pick a viseme, blinks every 2-6 s, the head sways slowly; most ARKit
// channels stay idle. The same statistics as avatarkit._synthetic.speech_like, not the same values.
std::vector<float> speech_frames(std::size_t n, std::uint32_t seed = 0) {
    const std::size_t k = canonical().channels.size();
    const std::size_t nv = channels::kVisemes.size();
    std::mt19937 rng(seed);
    auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
    const double seconds = static_cast<double>(n) / kFps;

    std::vector<double> energy(n, 0.0);
    std::vector<std::vector<double>> visemes(nv, std::vector<double>(n, 0.0));
    for (double onset = 0.1; onset < seconds; onset += uniform(0.15, 0.35)) {
        auto start = static_cast<std::size_t>(onset * kFps);
        auto length = static_cast<std::size_t>(uniform(2, 6));
        auto viseme = static_cast<std::size_t>(uniform(1, static_cast<double>(nv)));
        double e = uniform(0.4, 1.0);
        for (std::size_t f = start; f < std::min(n, start + length); ++f) {
            visemes[viseme][f] = 1.0;
            energy[f] = e;
        }
    }
    for (auto& v : visemes) v = smooth(v, 3);
    const std::vector<double> jaw = smooth(energy, 3);
    const std::vector<double> brow = smooth(energy, 9);

    std::vector<double> blink(n, 0.0);
    for (double at = uniform(0.5, 2.0); at < seconds; at += uniform(2.0, 6.0)) {
        auto start = static_cast<std::size_t>(at * kFps);
        const std::array<double, 4> shape = {0.5, 1.0, 1.0, 0.5};
        for (std::size_t i = 0; i < shape.size() && start + i < n; ++i) blink[start + i] = shape[i];
    }
    std::array<double, 6> phase{};
    for (double& p : phase) p = uniform(0, 2 * kPi);

    const std::size_t viseme0 = column("viseme_sil");
    const std::size_t head0 = column("headPitch");
    std::vector<float> out(n * k, 0.0f);
    for (std::size_t f = 0; f < n; ++f) {
        float* row = out.data() + f * k;
        const double t = static_cast<double>(f) / kFps;
        auto set = [&](std::string_view name, double v) { row[column(name)] = static_cast<float>(v); };
        double speaking = 0;
        for (std::size_t v = 1; v < nv; ++v) {
            row[viseme0 + v] = static_cast<float>(visemes[v][f]);
            speaking += visemes[v][f];
        }
        row[viseme0] = static_cast<float>(std::clamp(1.0 - speaking, 0.0, 1.0));
        const double open = std::clamp(jaw[f] * 0.7, 0.0, 1.0);
        set("jawOpen", open);
        set("mouthFunnel", visemes[13][f] * 0.6);  // viseme_O
        set("mouthPucker", visemes[14][f] * 0.8);  // viseme_U
        set("mouthClose", visemes[1][f] * 0.5);    // viseme_PP
        const double smile = 0.15 + 0.05 * std::sin(2 * kPi * 0.2 * t);
        set("mouthSmileLeft", smile);
        set("mouthSmileRight", smile);
        set("mouthLowerDownLeft", open * 0.3);
        set("mouthLowerDownRight", open * 0.3);
        set("eyeBlinkLeft", blink[f]);
        set("eyeBlinkRight", blink[f]);
        set("browInnerUp", brow[f] * 0.3);
        for (std::size_t j = 0; j < phase.size(); ++j) {
            const double amplitude = j < 3 ? 0.05 : 0.005;
            row[head0 + j] = static_cast<float>(amplitude * std::sin(2 * kPi * (0.15 + 0.07 * static_cast<double>(j)) * t + phase[j]));
        }
    }
    return out;
}

const std::vector<float>& speech() {
    static const std::vector<float> frames = speech_frames(kFrames);
    return frames;
}

std::vector<std::int64_t> indices(std::size_t first, std::size_t count) {
    std::vector<std::int64_t> out(count);
    for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<std::int64_t>(first + i);
    return out;
}

std::vector<std::vector<std::uint8_t>> encode_stream(std::size_t frames_per_payload, int zstd_level) {
    const codec::Schema schema = channels::canonical_schema();
    const std::size_t k = schema.channels.size();
    codec::EncoderOptions options;
    options.zstd_level = zstd_level;
    codec::StreamEncoder encoder(schema, options);
    std::vector<std::vector<std::uint8_t>> payloads;
    for (std::size_t f = 0; f < kFrames; f += frames_per_payload) {
        const std::size_t n = std::min(frames_per_payload, kFrames - f);
        payloads.push_back(encoder.encode(speech().data() + f * k, n, k, indices(f, n).data()));
    }
    return payloads;
}

void report(benchmark::State& state, std::size_t frames, std::size_t channels) {
    const auto rounds = static_cast<std::int64_t>(state.iterations());
    state.SetItemsProcessed(rounds * static_cast<std::int64_t>(frames));
    state.SetBytesProcessed(rounds * static_cast<std::int64_t>(frames * channels * sizeof(float)));
}

// Decode the 60 s stream, cut into payloads of range(0) frames, raw or zstd (range(1)), with a fresh
// decoder per round: what a receiver does with one request.
void BM_Decode(benchmark::State& state) {
    const auto payloads = encode_stream(static_cast<std::size_t>(state.range(0)), state.range(1) ? kZstdLevel : 0);
    std::size_t bytes = 0;
    for (const auto& p : payloads) bytes += p.size();
    std::size_t channels = 0;
    for (auto _ : state) {
        codec::StreamDecoder decoder;
        for (const auto& p : payloads) {
            codec::DecodedChunk chunk = decoder.decode(p.data(), p.size());
            benchmark::DoNotOptimize(chunk.values.data());
            channels = chunk.channels;
        }
        benchmark::ClobberMemory();
    }
    report(state, kFrames, channels);
    state.counters["payload_bytes_per_frame"] = static_cast<double>(bytes) / kFrames;
}
BENCHMARK(BM_Decode)
    ->ArgNames({"frames_per_payload", "zstd"})
    ->ArgsProduct({{1, 25, 100}, {0, 1}});

// The hardware limit for BM_Decode: copy the same float32 output, in the same chunks, into a fresh
// buffer per payload as the decoder does (the allocation is part of producing a decoded chunk).
void BM_Memcpy(benchmark::State& state) {
    const std::size_t per_payload = static_cast<std::size_t>(state.range(0));
    const std::size_t k = canonical().channels.size();
    const std::vector<float>& source = speech();
    for (auto _ : state) {
        for (std::size_t f = 0; f < kFrames; f += per_payload) {
            const std::size_t n = std::min(per_payload, kFrames - f);
            std::vector<float> out(n * k);  // value-initialized, as std::vector::resize in the decoder
            std::memcpy(out.data(), source.data() + f * k, n * k * sizeof(float));
            benchmark::DoNotOptimize(out.data());
        }
        benchmark::ClobberMemory();
    }
    report(state, kFrames, k);
}
BENCHMARK(BM_Memcpy)->ArgNames({"frames_per_payload"})->Arg(1)->Arg(25)->Arg(100);

// Encode the 60 s stream into payloads of range(0) frames, raw or zstd, with a fresh encoder per round.
void BM_Encode(benchmark::State& state) {
    const std::size_t per_payload = static_cast<std::size_t>(state.range(0));
    const codec::Schema schema = channels::canonical_schema();
    const std::size_t k = schema.channels.size();
    codec::EncoderOptions options;
    options.zstd_level = state.range(1) ? kZstdLevel : 0;
    const std::vector<std::int64_t> all = indices(0, kFrames);
    for (auto _ : state) {
        codec::StreamEncoder encoder(schema, options);
        for (std::size_t f = 0; f < kFrames; f += per_payload) {
            const std::size_t n = std::min(per_payload, kFrames - f);
            auto payload = encoder.encode(speech().data() + f * k, n, k, all.data() + f);
            benchmark::DoNotOptimize(payload.data());
        }
    }
    report(state, kFrames, k);
}
BENCHMARK(BM_Encode)
    ->ArgNames({"frames_per_payload", "zstd"})
    ->ArgsProduct({{1, 25, 100}, {0, 1}});

// Read a FlameAnimation of range(0) keyframes x 120 smooth non-zero floats (the commercial payload).
void BM_FlameDecode(benchmark::State& state) {
    const auto keyframes = static_cast<std::size_t>(state.range(0));
    std::mt19937 rng(1);
    std::uniform_real_distribution<double> frequency(0.1, 2.0), phase(0.0, 2 * kPi);
    std::vector<float> values(keyframes * flame::kValuesPerKeyframe);
    for (std::size_t c = 0; c < flame::kValuesPerKeyframe; ++c) {
        const double w = frequency(rng), p = phase(rng);
        for (std::size_t f = 0; f < keyframes; ++f) {
            values[f * flame::kValuesPerKeyframe + c] =
                static_cast<float>(0.5 * std::sin(2 * kPi * w * static_cast<double>(f) / kFps + p));
        }
    }
    const std::vector<std::uint8_t> payload = flame::encode(values.data(), keyframes);
    for (auto _ : state) {
        flame::Keyframes decoded = flame::decode(payload.data(), payload.size());
        benchmark::DoNotOptimize(decoded.values.data());
    }
    report(state, keyframes, flame::kValuesPerKeyframe);
    state.counters["payload_bytes_per_frame"] = static_cast<double>(payload.size()) / static_cast<double>(keyframes);
}
BENCHMARK(BM_FlameDecode)->ArgNames({"keyframes"})->Arg(1)->Arg(100);

}  // namespace

BENCHMARK_MAIN();
