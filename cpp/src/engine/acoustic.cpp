// Senone scores of a phone model trained on recorded speech (see AcousticScorer in engine.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "avatarkit/engine.hpp"

namespace avatarkit::engine {

namespace {

constexpr int kStreams = 3;
constexpr int kStates = 3;
constexpr int kSpan = 2 * kAcousticLag + 1;
constexpr int kMaxDensities = 1024;
constexpr std::size_t kLanes = 8;  // Gaussians scored together (a multiple of the SIMD width)

// The scoring loops are compiled twice on x86 with GCC or Clang: for the baseline (SSE2) and for
// AVX2, chosen at run time. No FMA contraction in either (ISO C++ mode: -ffp-contract=off), and
// the same order of operations, so both give the same bits.
#if defined(__GNUC__)
#define AK_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define AK_ALWAYS_INLINE inline
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define AK_AVX2_DISPATCH 1
#endif

// out[i] = exp(in[i] - shift) for in[i] <= shift (0 below -87), to float precision: Cody-Waite
// reduction by ln 2 and Cephes' polynomial, written as plain loops over arrays so that they
// vectorize (std::exp is a call). `bits` is scratch of n values.
AK_ALWAYS_INLINE void exp_shifted(const float* in, float shift, float* out, std::int32_t* bits, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const float y = in[i] - shift + 87.0f;
        const float x = 0.5f * (y + std::fabs(y)) - 87.0f;  // max(x, -87) without a comparison, which
                                                             // would keep the loop from vectorizing
        const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 x 2^23)
        const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        out[i] = p * r * r + r + 1.0f;
        bits[i] = (static_cast<std::int32_t>(k) + 127) * (1 << 23);  // the float 2^k, k in [-126, 0]
    }
    for (std::size_t i = 0; i < n; ++i) {
        float scale;
        std::memcpy(&scale, bits + i, sizeof scale);
        out[i] *= scale;
    }
}

void check_values(const std::vector<float>& v, std::size_t size, const char* what) {
    if (v.size() != size) throw std::invalid_argument(std::string("acoustic model: bad size of ") + what);
    for (float x : v)
        if (!std::isfinite(x)) throw std::invalid_argument(std::string("acoustic model: non-finite value in ") + what);
}

}  // namespace

void AcousticSpec::validate() const {
    if (codebooks < 1 || codebooks > 256 || densities < 1 || densities > kMaxDensities)
        throw std::invalid_argument("acoustic model: codebooks and densities out of range");
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
    padded_ = (d + kLanes - 1) / kLanes * kLanes;
#if defined(AK_AVX2_DISPATCH)
    avx2_ = __builtin_cpu_supports("avx2");
#endif
    const std::size_t dp = padded_;
    const std::size_t blocks = static_cast<std::size_t>(spec_.codebooks) * kStreams;
    quadratic_.assign(blocks * kCepstra * dp, 0.0f);
    linear_.assign(blocks * kCepstra * dp, 0.0f);
    offset_.assign(blocks * dp, -1e30f);  // a padding Gaussian is never near, and weighs nothing
    weights_.assign(blocks * kStates * dp, 0.0f);
    for (std::size_t b = 0; b < blocks; ++b) {
        for (std::size_t g = 0; g < d; ++g) {
            const float* mu = spec_.means.data() + (b * d + g) * kCepstra;
            const float* prec = spec_.precisions.data() + (b * d + g) * kCepstra;
            double c = spec_.constants[b * d + g];
            for (std::size_t i = 0; i < kCepstra; ++i) {
                quadratic_[(b * kCepstra + i) * dp + g] = prec[i];
                linear_[(b * kCepstra + i) * dp + g] = prec[i] * mu[i];
                c -= 0.5 * static_cast<double>(prec[i]) * mu[i] * mu[i];
            }
            offset_[b * dp + g] = static_cast<float>(c);
            // log_weights is (stream, codebook, density, state); blocks are (codebook, stream).
            const std::size_t cb = b / kStreams, st = b % kStreams;
            for (std::size_t state = 0; state < kStates; ++state)
                weights_[(b * kStates + state) * dp + g] =
                    std::exp(spec_.log_weights[((st * static_cast<std::size_t>(spec_.codebooks) + cb) * d + g) * kStates + state]);
        }
    }
}

namespace {

// One (codebook, stream) block: each state's log of sum_g w_g N_g(x) over the block's Gaussians,
// added to out[0..2]. The Gaussians' terms are stored by coefficient, so the loops over them
// vectorize: log N(x) = c - 0.5 sum p x^2 + sum p mu x.
AK_ALWAYS_INLINE void score_block(const float* x, const float* quad, const float* lin, const float* offset,
                                  const float* w, std::size_t d, float* ll, float* e, std::int32_t* bits, float* out) {
    std::copy_n(offset, d, ll);
    for (std::size_t i = 0; i < kCepstra; ++i) {
        const float xi = x[i], half_sq = -0.5f * x[i] * x[i];
        const float* q = quad + i * d;
        const float* l = lin + i * d;
        for (std::size_t g = 0; g < d; ++g) ll[g] += half_sq * q[g] + xi * l[g];
    }
    const float peak = *std::max_element(ll, ll + d);
    exp_shifted(ll, peak, e, bits, d);
    for (std::size_t state = 0; state < kStates; ++state) {
        const float* ws = w + state * d;
        std::array<float, kLanes> sum{};
        for (std::size_t g = 0; g < d; g += kLanes)
            for (std::size_t j = 0; j < kLanes; ++j) sum[j] += ws[g + j] * e[g + j];
        float total = 0.0f;
        for (float v : sum) total += v;
        out[state] += peak + std::log(std::max(total, 1e-30f));
    }
}

AK_ALWAYS_INLINE void score_all(const AcousticModel::Tables& t, const float* streams, float* out, float* ll, float* e) {
    std::array<std::int32_t, kMaxDensities> bits;
    const std::size_t d = t.padded;
    for (std::size_t cb = 0; cb < t.codebooks; ++cb)
        for (std::size_t st = 0; st < kStreams; ++st) {
            const std::size_t block = cb * kStreams + st;
            score_block(streams + st * kCepstra, t.quadratic + block * kCepstra * d, t.linear + block * kCepstra * d,
                        t.offset + block * d, t.weights + block * kStates * d, d, ll, e, bits.data(), out + cb * kStates);
        }
}

void score_all_baseline(const AcousticModel::Tables& t, const float* streams, float* out, float* ll, float* e) {
    score_all(t, streams, out, ll, e);
}

#if defined(AK_AVX2_DISPATCH)
__attribute__((target("avx2"))) void score_all_avx2(const AcousticModel::Tables& t, const float* streams, float* out,
                                                     float* ll, float* e) {
    score_all(t, streams, out, ll, e);
}
#endif

}  // namespace

void AcousticModel::likelihoods(const float* streams, float* out, std::vector<float>& scratch) const {
    const Tables t{quadratic_.data(), linear_.data(), offset_.data(), weights_.data(), padded_,
                   static_cast<std::size_t>(spec_.codebooks)};
    scratch.resize(2 * padded_);
    std::fill(out, out + spec_.senones(), 0.0f);
#if defined(AK_AVX2_DISPATCH)
    if (avx2_) return score_all_avx2(t, streams, out, scratch.data(), scratch.data() + padded_);
#endif
    score_all_baseline(t, streams, out, scratch.data(), scratch.data() + padded_);
}

AcousticScorer::AcousticScorer(std::shared_ptr<const AcousticModel> model, bool causal)
    : model_(std::move(model)), causal_(causal) {
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
    const std::int64_t centre = frames_ - lag();
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
    // The delta is taken about frame d, the double delta about frame dd: the row's own frame, or in
    // a causal scorer the newest frames whose windows end at it.
    const std::int64_t d = causal_ ? centre - 2 : centre;
    const std::int64_t dd = causal_ ? centre - kAcousticLag : centre;
    std::array<float, kStreams * kCepstra> streams{};
    for (int i = 0; i < kCepstra; ++i) {
        const auto u = static_cast<std::size_t>(i);
        streams[u] = frame(centre)[u];
        streams[kCepstra + u] = frame(d + 2)[u] - frame(d - 2)[u];
        streams[2 * kCepstra + u] = (frame(dd + 3)[u] - frame(dd - 1)[u]) - (frame(dd + 1)[u] - frame(dd - 3)[u]);
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
                                     std::shared_ptr<const AcousticModel> model, std::size_t* frames, bool causal) {
    AcousticScorer scorer(std::move(model), causal);
    FeatureExtractor fx(sample_rate, true);
    std::vector<float> mel, cep, out;
    *frames = fx.push(samples, n, mel, &cep);
    out.reserve(*frames * static_cast<std::size_t>(scorer.senones()));
    for (std::size_t j = 0; j < *frames; ++j) scorer.push(cep.data() + j * kCepstra, out);
    return out;
}

}  // namespace avatarkit::engine
