// Senone scores of a phone model trained on recorded speech (see AcousticScorer in engine.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "avatarkit/engine.hpp"

namespace avatarkit::engine {

namespace {

constexpr int kStreams = 3;
constexpr int kStates = 3;
constexpr int kSpan = 2 * kAcousticLag + 1;
constexpr int kMaxTop = 16;

void check_values(const std::vector<float>& v, std::size_t size, const char* what) {
    if (v.size() != size) throw std::invalid_argument(std::string("acoustic model: bad size of ") + what);
    for (float x : v)
        if (!std::isfinite(x)) throw std::invalid_argument(std::string("acoustic model: non-finite value in ") + what);
}

}  // namespace

void AcousticSpec::validate() const {
    if (codebooks < 1 || codebooks > 256 || densities < 1 || densities > 1024)
        throw std::invalid_argument("acoustic model: codebooks and densities out of range");
    if (top < 1 || top > std::min(densities, kMaxTop))
        throw std::invalid_argument("acoustic model: top must be in [1, min(densities, 16)]");
    const auto cb = static_cast<std::size_t>(codebooks), d = static_cast<std::size_t>(densities);
    check_values(means, cb * kStreams * d * kCepstra, "means");
    check_values(precisions, cb * kStreams * d * kCepstra, "precisions");
    check_values(constants, cb * kStreams * d, "constants");
    check_values(log_weights, kStreams * cb * d * kStates, "log_weights");
    check_values(cmn_prior, kCepstra, "cmn_prior");
    for (float p : precisions)
        if (p <= 0.0f) throw std::invalid_argument("acoustic model: precisions must be positive");
    if (!(cmn_prior_frames >= 1.0f && cmn_memory_frames >= cmn_prior_frames && cmn_memory_frames <= 1e6f))
        throw std::invalid_argument("acoustic model: need 1 <= cmn_prior_frames <= cmn_memory_frames <= 1e6");
}

AcousticModel::AcousticModel(AcousticSpec spec) : spec_(std::move(spec)) {
    spec_.validate();
    const std::size_t d = static_cast<std::size_t>(spec_.densities);
    const std::size_t blocks = static_cast<std::size_t>(spec_.codebooks) * kStreams;
    quadratic_.resize(blocks * kCepstra * d);
    linear_.resize(blocks * kCepstra * d);
    offset_.resize(blocks * d);
    for (std::size_t b = 0; b < blocks; ++b) {
        for (std::size_t g = 0; g < d; ++g) {
            const float* mu = spec_.means.data() + (b * d + g) * kCepstra;
            const float* prec = spec_.precisions.data() + (b * d + g) * kCepstra;
            double c = spec_.constants[b * d + g];
            for (std::size_t i = 0; i < kCepstra; ++i) {
                quadratic_[(b * kCepstra + i) * d + g] = prec[i];
                linear_[(b * kCepstra + i) * d + g] = prec[i] * mu[i];
                c -= 0.5 * static_cast<double>(prec[i]) * mu[i] * mu[i];
            }
            offset_[b * d + g] = static_cast<float>(c);
        }
    }
}

void AcousticModel::likelihoods(const float* streams, float* out, std::vector<float>& scratch) const {
    const AcousticSpec& s = spec_;
    const std::size_t d = static_cast<std::size_t>(s.densities);
    const std::size_t top = static_cast<std::size_t>(s.top);
    scratch.resize(d);
    std::fill(out, out + s.senones(), 0.0f);
    for (int cb = 0; cb < s.codebooks; ++cb) {
        for (int st = 0; st < kStreams; ++st) {
            const float* x = streams + st * kCepstra;
            // log N(x) = c - 0.5 sum p x^2 + sum p mu x, with the terms stored by coefficient so
            // that the loop over Gaussians vectorizes.
            const std::size_t block = static_cast<std::size_t>(cb * kStreams + st);
            const float* quad = quadratic_.data() + block * kCepstra * d;
            const float* lin = linear_.data() + block * kCepstra * d;
            std::copy_n(offset_.data() + block * d, d, scratch.data());
            for (int i = 0; i < kCepstra; ++i) {
                const float xi = x[i], half_sq = -0.5f * x[i] * x[i];
                const float* q = quad + static_cast<std::size_t>(i) * d;
                const float* l = lin + static_cast<std::size_t>(i) * d;
                for (std::size_t g = 0; g < d; ++g) scratch[g] += half_sq * q[g] + xi * l[g];
            }
            // Sphinx sums only the best few Gaussians of a codebook: the rest are negligible.
            std::array<std::size_t, kMaxTop> best{};
            std::array<float, kMaxTop> best_ll;
            best_ll.fill(-std::numeric_limits<float>::infinity());
            for (std::size_t g = 0; g < d; ++g) {
                if (scratch[g] <= best_ll[top - 1]) continue;
                std::size_t at = top - 1;
                while (at > 0 && best_ll[at - 1] < scratch[g]) {
                    best_ll[at] = best_ll[at - 1];
                    best[at] = best[at - 1];
                    --at;
                }
                best_ll[at] = scratch[g];
                best[at] = g;
            }
            const float* w = s.log_weights.data() +
                             ((static_cast<std::size_t>(st) * static_cast<std::size_t>(s.codebooks) + static_cast<std::size_t>(cb)) * d) * kStates;
            for (int state = 0; state < kStates; ++state) {
                float peak = -std::numeric_limits<float>::infinity();
                for (std::size_t k = 0; k < top; ++k) peak = std::max(peak, best_ll[k] + w[best[k] * kStates + static_cast<std::size_t>(state)]);
                float sum = 0.0f;
                for (std::size_t k = 0; k < top; ++k)
                    sum += std::exp(best_ll[k] + w[best[k] * kStates + static_cast<std::size_t>(state)] - peak);
                out[cb * kStates + state] += peak + std::log(sum);
            }
        }
    }
}

AcousticScorer::AcousticScorer(std::shared_ptr<const AcousticModel> model) : model_(std::move(model)) {
    if (!model_) throw std::invalid_argument("acoustic model: none given");
    const AcousticSpec& spec = model_->spec();
    std::copy(spec.cmn_prior.begin(), spec.cmn_prior.end(), mean_.begin());
    count_ = spec.cmn_prior_frames;
    ring_.resize(kSpan);
}

void AcousticScorer::push(const float* cepstra, std::vector<float>& out) {
    // Running cepstral mean: the prior, then a cumulative mean up to cmn_memory_frames, then an
    // exponential one (every frame counts, as in Sphinx's live CMN).
    count_ = std::min(count_ + 1.0f, model_->spec().cmn_memory_frames);
    std::array<float, kCepstra> c{};
    for (int i = 0; i < kCepstra; ++i) {
        mean_[static_cast<std::size_t>(i)] += (cepstra[i] - mean_[static_cast<std::size_t>(i)]) / count_;
        c[static_cast<std::size_t>(i)] = cepstra[i] - mean_[static_cast<std::size_t>(i)];
    }
    ring_[static_cast<std::size_t>(frames_ % kSpan)] = c;
    const std::int64_t centre = frames_ - kAcousticLag;
    ++frames_;
    const std::size_t at = out.size();
    const auto n = static_cast<std::size_t>(senones());
    out.resize(at + n);
    float* row = out.data() + at;
    if (centre < 0) {  // nothing to say yet
        std::fill(row, row + n, -std::log(static_cast<float>(n)));
        return;
    }
    // Frames before the first are copies of it (the deltas' window at the start).
    auto frame = [&](std::int64_t t) -> const std::array<float, kCepstra>& {
        return ring_[static_cast<std::size_t>(std::max<std::int64_t>(t, 0) % kSpan)];
    };
    std::array<float, kStreams * kCepstra> streams{};
    for (int i = 0; i < kCepstra; ++i) {
        const auto u = static_cast<std::size_t>(i);
        streams[u] = frame(centre)[u];
        streams[kCepstra + u] = frame(centre + 2)[u] - frame(centre - 2)[u];
        streams[2 * kCepstra + u] = (frame(centre + 3)[u] - frame(centre - 1)[u]) - (frame(centre + 1)[u] - frame(centre - 3)[u]);
    }
    model_->likelihoods(streams.data(), row, scratch_);
    float peak = -std::numeric_limits<float>::infinity();
    for (std::size_t k = 0; k < n; ++k) peak = std::max(peak, row[k]);
    float sum = 0.0f;
    for (std::size_t k = 0; k < n; ++k) sum += std::exp(row[k] - peak);
    const float norm = peak + std::log(sum);
    for (std::size_t k = 0; k < n; ++k) row[k] = std::max(row[k] - norm, kAcousticFloor);
}

std::vector<float> acoustic_features(const float* samples, std::size_t n, int sample_rate,
                                     std::shared_ptr<const AcousticModel> model, std::size_t* frames) {
    AcousticScorer scorer(std::move(model));
    FeatureExtractor fx(sample_rate, true);
    std::vector<float> mel, cep, out;
    *frames = fx.push(samples, n, mel, &cep);
    out.reserve(*frames * static_cast<std::size_t>(scorer.senones()));
    for (std::size_t j = 0; j < *frames; ++j) scorer.push(cep.data() + j * kCepstra, out);
    return out;
}

}  // namespace avatarkit::engine
