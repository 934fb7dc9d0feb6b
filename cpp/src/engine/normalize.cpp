// Per-stream normalisation of log-mel frames (see StreamNorm in engine.hpp).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "avatarkit/engine.hpp"

namespace avatarkit::engine {

namespace {
// How fast the running peak level falls (dB per 10 ms frame): 5 dB per second.
constexpr float kPeakDecayDb = 0.05f;
}  // namespace

void StreamNorm::validate() const {
    if (prior.empty()) return;
    if (prior.size() != kMels) throw std::invalid_argument("stream norm: prior must have kMels values");
    for (float v : prior)
        if (!std::isfinite(v)) throw std::invalid_argument("stream norm: non-finite prior");
    if (!(prior_frames >= 1.0f && prior_frames <= 1e6f)) throw std::invalid_argument("stream norm: prior_frames must be in [1, 1e6]");
    if (!(memory_frames >= prior_frames && memory_frames <= 1e6f))
        throw std::invalid_argument("stream norm: memory_frames must be in [prior_frames, 1e6]");
    if (!(gate_db >= 0.0f && gate_db <= 200.0f)) throw std::invalid_argument("stream norm: gate_db must be in [0, 200]");
    if (!(floor_db >= -300.0f && floor_db <= 100.0f)) throw std::invalid_argument("stream norm: floor_db must be in [-300, 100]");
}

float frame_loudness_db(const float* log_mel) {
    float power = 0.0f;
    for (int m = 0; m < kMels; ++m) power += std::exp(log_mel[m]);
    return 10.0f * std::log10(power + 1e-12f);
}

StreamNormalizer::StreamNormalizer(const StreamNorm& params) : params_(&params) {
    if (params.enabled()) {
        std::copy(params.prior.begin(), params.prior.end(), mean_.begin());
        count_ = params.prior_frames;
    }
}

void StreamNormalizer::apply(float* frame, float level) {
    const StreamNorm& p = *params_;
    if (!p.enabled()) return;
    peak_db_ = std::max(level, peak_db_ - kPeakDecayDb);
    if (level > p.floor_db && level > peak_db_ - p.gate_db) {
        count_ = std::min(count_ + 1.0f, p.memory_frames);
        const float a = 1.0f / count_;
        for (int m = 0; m < kMels; ++m) mean_[static_cast<std::size_t>(m)] += a * (frame[m] - mean_[static_cast<std::size_t>(m)]);
    }
    for (int m = 0; m < kMels; ++m)
        frame[m] += p.prior[static_cast<std::size_t>(m)] - mean_[static_cast<std::size_t>(m)];
}

std::vector<float> normalize_stream(const float* log_mel, std::size_t frames, const StreamNorm& params) {
    params.validate();
    std::vector<float> out(log_mel, log_mel + frames * kMels);
    StreamNormalizer norm(params);
    for (std::size_t j = 0; j < frames; ++j) {
        float* frame = out.data() + j * kMels;
        norm.apply(frame, frame_loudness_db(frame));
    }
    return out;
}

}  // namespace avatarkit::engine
