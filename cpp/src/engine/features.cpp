// Log-mel features at the input's own sample rate.
//
// Rate independence: the window is 25 ms at every rate, the FFT is the next power of two, the mel
// filters are triangles laid out in Hz, and the power spectrum is divided by N * sum(w^2). By
// Parseval a sinusoid of amplitude A then puts A^2 / 4 into the bins around it and white noise of
// one-sided density S puts S * bandwidth into a band, whatever the rate and FFT size.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "avatarkit/engine.hpp"

namespace avatarkit::engine {

namespace {

constexpr double kPi = 3.14159265358979323846;

double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

std::size_t next_pow2(std::size_t n) {
    std::size_t p = 4;
    while (p < n) p <<= 1;
    return p;
}

// Triangular filters with mel-spaced edges from lo_hz to hi_hz over the bins of an n-point FFT at
// `rate`; `scale(f, left, right)` multiplies the triangle's weight at f Hz.
template <typename Band, typename Scale>
std::vector<Band> mel_bands(double lo_hz, double hi_hz, int count, int rate, std::size_t n, Scale scale) {
    const double lo = hz_to_mel(lo_hz), hi = hz_to_mel(hi_hz);
    const double bin_hz = static_cast<double>(rate) / static_cast<double>(n);
    std::vector<Band> bands(static_cast<std::size_t>(count));
    for (int m = 0; m < count; ++m) {
        double left = mel_to_hz(lo + (hi - lo) * m / (count + 1));
        double centre = mel_to_hz(lo + (hi - lo) * (m + 1) / (count + 1));
        double right = mel_to_hz(lo + (hi - lo) * (m + 2) / (count + 1));
        Band& band = bands[static_cast<std::size_t>(m)];
        band.first = static_cast<std::size_t>(std::ceil(left / bin_hz));
        for (std::size_t k = band.first; k <= n / 2; ++k) {
            double f = static_cast<double>(k) * bin_hz;
            if (f >= right) break;
            double w = f < centre ? (f - left) / (centre - left) : (right - f) / (right - centre);
            band.weights.push_back(static_cast<float>(std::max(0.0, w) * scale(f, left, right)));
        }
    }
    return bands;
}

// Uniform in [-1, 1) from an absolute sample index (splitmix64): the same dither at any chunking.
float dither(std::int64_t index) {
    std::uint64_t z = static_cast<std::uint64_t>(index) * 0x9E3779B97F4A7C15ull + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) / static_cast<float>(1u << 23) - 1.0f;
}

}  // namespace

bool supported_rate(int sample_rate) {
    switch (sample_rate) {
        case 8000: case 16000: case 22050: case 24000: case 32000: case 44100: case 48000: return true;
        default: return false;
    }
}

// ------------------------------------------------------------------------------------------ FFT

PowerSpectrum::PowerSpectrum(std::size_t n) : n_(n), half_(n / 2) {
    if (n < 4 || (n & (n - 1)) != 0) throw std::invalid_argument("FFT size must be a power of two >= 4");
    twiddle_.resize(half_ / 2);
    for (std::size_t k = 0; k < half_ / 2; ++k) {
        double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(half_);
        twiddle_[k] = {static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))};
    }
    post_.resize(half_ + 1);
    for (std::size_t k = 0; k <= half_; ++k) {
        double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(n_);
        post_[k] = {static_cast<float>(std::cos(a)), static_cast<float>(std::sin(a))};
    }
    reverse_.resize(half_);
    unsigned bits = 0;
    while ((std::size_t{1} << bits) < half_) ++bits;
    for (std::size_t i = 0; i < half_; ++i) {
        std::uint32_t r = 0;
        for (unsigned b = 0; b < bits; ++b)
            if (i & (std::size_t{1} << b)) r |= 1u << (bits - 1 - b);
        reverse_[i] = r;
    }
    buf_.resize(half_);
}

void PowerSpectrum::operator()(const float* in, float* out) {
    // Pack the real input as half_ complex values, transform, then split even and odd parts.
    for (std::size_t i = 0; i < half_; ++i) buf_[reverse_[i]] = {in[2 * i], in[2 * i + 1]};
    for (std::size_t len = 2; len <= half_; len <<= 1) {
        std::size_t step = half_ / len;
        for (std::size_t start = 0; start < half_; start += len) {
            for (std::size_t k = 0; k < len / 2; ++k) {
                std::complex<float> t = twiddle_[k * step] * buf_[start + k + len / 2];
                std::complex<float> u = buf_[start + k];
                buf_[start + k] = u + t;
                buf_[start + k + len / 2] = u - t;
            }
        }
    }
    for (std::size_t k = 0; k <= half_; ++k) {
        std::complex<float> zk = buf_[k % half_];
        std::complex<float> zc = std::conj(buf_[(half_ - k) % half_]);
        std::complex<float> even = 0.5f * (zk + zc);
        std::complex<float> odd = std::complex<float>(0.0f, -0.5f) * (zk - zc);
        std::complex<float> x = even + post_[k] * odd;
        out[k] = x.real() * x.real() + x.imag() * x.imag();
    }
}

// ------------------------------------------------------------------------------------- features

FeatureExtractor::FeatureExtractor(int sample_rate, bool cepstra)
    : rate_(sample_rate),
      window_(static_cast<std::size_t>(std::lround(kWindowSeconds * static_cast<float>(sample_rate)))),
      fft_(next_pow2(window_)) {
    if (!supported_rate(sample_rate)) throw std::invalid_argument("unsupported sample rate");
    hann_.resize(window_);
    double sum_sq = 0.0;
    for (std::size_t i = 0; i < window_; ++i) {
        double w = 0.5 - 0.5 * std::cos(2.0 * kPi * (static_cast<double>(i) + 0.5) / static_cast<double>(window_));
        hann_[i] = static_cast<float>(w);
        sum_sq += w * w;
    }
    const std::size_t n = fft_.size();
    norm_ = static_cast<float>(1.0 / (static_cast<double>(n) * sum_sq));
    bands_ = mel_bands<Band>(kMelLowHz, kMelHighHz, kMels, sample_rate, n, [](double, double, double) { return 1.0; });
    if (cepstra) {
        // Sphinx's filters: unit area in Hz, so each band gives a mean power density whatever the
        // rate; its pre-emphasis (1 - 0.97 z^-1 at 16 kHz) folded in as a response in Hz.
        acoustic_bands_ = mel_bands<Band>(
            kAcousticLowHz, kAcousticHighHz, kAcousticBands, sample_rate, n, [](double f, double left, double right) {
                return (1.0 + 0.97 * 0.97 - 2.0 * 0.97 * std::cos(2.0 * kPi * f / 16000.0)) * 2.0 / (right - left);
            });
        dct_.resize(static_cast<std::size_t>(kCepstra) * kAcousticBands);
        for (int i = 0; i < kCepstra; ++i) {
            const double lifter = 1.0 + 11.0 * std::sin(kPi * i / 22.0);
            const double scale = std::sqrt((i == 0 ? 1.0 : 2.0) / kAcousticBands) * lifter;
            for (int m = 0; m < kAcousticBands; ++m)
                dct_[static_cast<std::size_t>(i * kAcousticBands + m)] =
                    static_cast<float>(scale * std::cos(kPi * i * (m + 0.5) / kAcousticBands));
        }
    }
    frame_buf_.resize(n, 0.0f);
    power_buf_.resize(n / 2 + 1);
    history_.assign(window_, 0.0f);  // silence before the start
    history_start_ = -static_cast<std::int64_t>(window_);
}

std::int64_t FeatureExtractor::frame_end(std::int64_t j) const {
    return ((j + 1) * rate_ + kFeatureRate / 2) / kFeatureRate;
}

std::array<float, kMels> FeatureExtractor::silence() {
    std::array<float, kMels> s{};
    s.fill(std::log(kPowerFloor));
    return s;
}

void FeatureExtractor::compute(const float* frame, float* out) {
    for (std::size_t i = 0; i < window_; ++i) frame_buf_[i] = frame[i] * hann_[i];
    fft_(frame_buf_.data(), power_buf_.data());
    for (std::size_t m = 0; m < bands_.size(); ++m) {
        const Band& band = bands_[m];
        float e = 0.0f;
        for (std::size_t i = 0; i < band.weights.size(); ++i) e += band.weights[i] * power_buf_[band.first + i];
        out[m] = std::log(e * norm_ + kPowerFloor);
    }
}

void FeatureExtractor::compute_cepstra(const float* frame, std::int64_t first_sample, float* out) {
    constexpr float kLsb = 1.0f / 32768.0f;
    for (std::size_t i = 0; i < window_; ++i)
        frame_buf_[i] = (frame[i] + kLsb * dither(first_sample + static_cast<std::int64_t>(i))) * hann_[i];
    fft_(frame_buf_.data(), power_buf_.data());
    std::array<float, kAcousticBands> logs{};
    for (std::size_t m = 0; m < acoustic_bands_.size(); ++m) {
        const Band& band = acoustic_bands_[m];
        float e = 0.0f;
        for (std::size_t i = 0; i < band.weights.size(); ++i) e += band.weights[i] * power_buf_[band.first + i];
        logs[m] = std::log(e * norm_ + 1e-30f);  // the dither keeps e well above this
    }
    for (int i = 0; i < kCepstra; ++i) {
        const float* row = dct_.data() + static_cast<std::size_t>(i) * kAcousticBands;
        float c = 0.0f;
        for (int m = 0; m < kAcousticBands; ++m) c += row[m] * logs[static_cast<std::size_t>(m)];
        out[i] = c;
    }
}

std::size_t FeatureExtractor::push(const float* samples, std::size_t n, std::vector<float>& out, std::vector<float>* cepstra) {
    if (cepstra && acoustic_bands_.empty()) throw std::logic_error("FeatureExtractor made without cepstra");
    history_.insert(history_.end(), samples, samples + n);
    total_ += static_cast<std::int64_t>(n);
    std::size_t made = 0;
    while (frame_end(next_frame_) <= total_) {
        std::int64_t end = frame_end(next_frame_);
        std::int64_t start = end - static_cast<std::int64_t>(window_);
        std::size_t at = out.size();
        out.resize(at + kMels);
        compute(history_.data() + (start - history_start_), out.data() + at);
        if (cepstra) {
            std::size_t c_at = cepstra->size();
            cepstra->resize(c_at + kCepstra);
            compute_cepstra(history_.data() + (start - history_start_), start, cepstra->data() + c_at);
        }
        ++next_frame_;
        ++made;
    }
    // Keep what the next frame still needs.
    std::int64_t keep_from = frame_end(next_frame_) - static_cast<std::int64_t>(window_);
    if (keep_from > history_start_) {
        std::size_t drop = static_cast<std::size_t>(keep_from - history_start_);
        drop = std::min(drop, history_.size());
        history_.erase(history_.begin(), history_.begin() + static_cast<std::ptrdiff_t>(drop));
        history_start_ += static_cast<std::int64_t>(drop);
    }
    return made;
}

std::vector<float> log_mel(const float* samples, std::size_t n, int sample_rate, std::size_t* frames) {
    FeatureExtractor fx(sample_rate);
    std::vector<float> out;
    *frames = fx.push(samples, n, out);
    return out;
}

std::vector<float> cepstra(const float* samples, std::size_t n, int sample_rate, std::size_t* frames) {
    FeatureExtractor fx(sample_rate, true);
    std::vector<float> mel, out;
    *frames = fx.push(samples, n, mel, &out);
    return out;
}

}  // namespace avatarkit::engine
