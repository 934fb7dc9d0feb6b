// A streaming engine session: features -> 10 ms viseme probabilities -> 40 ms frames -> the face.
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string_view>

#include "avatarkit/channels.hpp"
#include "avatarkit/engine.hpp"

namespace avatarkit::engine {

namespace {

constexpr int index_of(std::string_view name) {
    for (std::size_t i = 0; i < channels::kArkit.size(); ++i)
        if (channels::kArkit[i] == name) return static_cast<int>(i);
    for (std::size_t i = 0; i < channels::kVisemes.size(); ++i)
        if (channels::kVisemes[i] == name) return static_cast<int>(channels::kArkit.size() + i);
    for (std::size_t i = 0; i < channels::kHeadRotation.size(); ++i)
        if (channels::kHeadRotation[i] == name) return static_cast<int>(channels::kArkit.size() + channels::kVisemes.size() + i);
    return -1;
}

static_assert(channels::kArkit.size() + channels::kVisemes.size() + 6 == kChannels);
static_assert(channels::kVisemes.size() == kVisemes);

constexpr int kVisemeBase = index_of("viseme_sil");
constexpr int kJawOpen = index_of("jawOpen");
constexpr int kMouthClose = index_of("mouthClose");
constexpr int kHeadPitch = index_of("headPitch");
constexpr int kHeadYaw = index_of("headYaw");
constexpr int kHeadRoll = index_of("headRoll");
constexpr int kBrowInnerUp = index_of("browInnerUp");
constexpr int kBrowOuterUpLeft = index_of("browOuterUpLeft");
constexpr int kBrowOuterUpRight = index_of("browOuterUpRight");
constexpr int kBlinkLeft = index_of("eyeBlinkLeft");
constexpr int kBlinkRight = index_of("eyeBlinkRight");
constexpr int kLookUpLeft = index_of("eyeLookUpLeft");
constexpr int kLookUpRight = index_of("eyeLookUpRight");
constexpr int kLookDownLeft = index_of("eyeLookDownLeft");
constexpr int kLookDownRight = index_of("eyeLookDownRight");
constexpr int kLookInLeft = index_of("eyeLookInLeft");
constexpr int kLookInRight = index_of("eyeLookInRight");
constexpr int kLookOutLeft = index_of("eyeLookOutLeft");
constexpr int kLookOutRight = index_of("eyeLookOutRight");
static_assert(kVisemeBase >= 0 && kJawOpen >= 0 && kHeadPitch >= 0 && kBrowInnerUp >= 0 && kLookOutRight >= 0);

enum Viseme { kSil, kPP, kFF, kTH, kDD, kKK, kCH, kSS, kNN, kRR, kAA, kE, kI, kO, kU };

// How far each viseme opens the jaw (0..1); the harness's truth uses the same table (docs/lipsync.md).
constexpr std::array<float, kVisemes> kOpenness = {0.0f, 0.0f, 0.15f, 0.25f, 0.3f, 0.35f, 0.25f, 0.15f,
                                                   0.3f, 0.3f, 1.0f, 0.6f, 0.4f, 0.7f, 0.3f};

struct PoseValue {
    int viseme;
    int channel;
    float value;
};

// The lip shape of each viseme as ARKit weights (the jaw comes from kOpenness).
constexpr PoseValue kPoses[] = {
    {kPP, index_of("mouthPressLeft"), 0.45f}, {kPP, index_of("mouthPressRight"), 0.45f},
    {kPP, index_of("mouthRollLower"), 0.15f}, {kPP, index_of("mouthRollUpper"), 0.1f},
    {kFF, index_of("mouthRollLower"), 0.65f}, {kFF, index_of("mouthUpperUpLeft"), 0.2f},
    {kFF, index_of("mouthUpperUpRight"), 0.2f}, {kFF, index_of("mouthPressLeft"), 0.1f},
    {kFF, index_of("mouthPressRight"), 0.1f},
    {kTH, index_of("tongueOut"), 0.45f}, {kTH, index_of("mouthLowerDownLeft"), 0.1f},
    {kTH, index_of("mouthLowerDownRight"), 0.1f},
    {kDD, index_of("mouthStretchLeft"), 0.1f}, {kDD, index_of("mouthStretchRight"), 0.1f},
    {kDD, index_of("mouthLowerDownLeft"), 0.1f}, {kDD, index_of("mouthLowerDownRight"), 0.1f},
    {kKK, index_of("mouthStretchLeft"), 0.1f}, {kKK, index_of("mouthStretchRight"), 0.1f},
    {kCH, index_of("mouthFunnel"), 0.55f}, {kCH, index_of("mouthPucker"), 0.35f},
    {kCH, index_of("mouthUpperUpLeft"), 0.1f}, {kCH, index_of("mouthUpperUpRight"), 0.1f},
    {kSS, index_of("mouthStretchLeft"), 0.35f}, {kSS, index_of("mouthStretchRight"), 0.35f},
    {kSS, index_of("mouthSmileLeft"), 0.2f}, {kSS, index_of("mouthSmileRight"), 0.2f},
    {kNN, index_of("mouthStretchLeft"), 0.1f}, {kNN, index_of("mouthStretchRight"), 0.1f},
    {kRR, index_of("mouthPucker"), 0.35f}, {kRR, index_of("mouthFunnel"), 0.3f},
    {kAA, index_of("mouthLowerDownLeft"), 0.3f}, {kAA, index_of("mouthLowerDownRight"), 0.3f},
    {kAA, index_of("mouthUpperUpLeft"), 0.1f}, {kAA, index_of("mouthUpperUpRight"), 0.1f},
    {kE, index_of("mouthStretchLeft"), 0.35f}, {kE, index_of("mouthStretchRight"), 0.35f},
    {kE, index_of("mouthSmileLeft"), 0.2f}, {kE, index_of("mouthSmileRight"), 0.2f},
    {kE, index_of("mouthLowerDownLeft"), 0.2f}, {kE, index_of("mouthLowerDownRight"), 0.2f},
    {kI, index_of("mouthStretchLeft"), 0.3f}, {kI, index_of("mouthStretchRight"), 0.3f},
    {kI, index_of("mouthSmileLeft"), 0.35f}, {kI, index_of("mouthSmileRight"), 0.35f},
    {kO, index_of("mouthFunnel"), 0.6f}, {kO, index_of("mouthPucker"), 0.3f},
    {kU, index_of("mouthPucker"), 0.75f}, {kU, index_of("mouthFunnel"), 0.35f},
};

constexpr float kJawGain = 0.8f;
constexpr float kQuietDb = 35.0f;  // a frame this far under the running speech level is quiet
constexpr float kOnsetClosure = 0.06f;  // PP peak that closes the lips on the first frame after a pause
constexpr float kPi = 3.14159265f;

// SplitMix64: a small, well-mixed, portable random sequence.
struct Random {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform(float lo, float hi) {
        return lo + (hi - lo) * static_cast<float>(next() >> 40) / static_cast<float>(1ull << 24);
    }
};

float clamp01(float x) { return std::min(1.0f, std::max(0.0f, x)); }

}  // namespace

// Everything that carries over from one 40 ms frame to the next.
struct Session::Face {
    Random rng;
    float level_ref = -30.0f;      // running speech level (dB), a slow peak follower
    float accent_ref = -30.0f;     // running level of syllable peaks (dB)
    std::int64_t last_nod = -1000, last_brow = -1000;
    int silent_frames = 1000;      // frames of silence since the last syllable peak
    float brow_target = 0.0f, brow = 0.0f;
    std::vector<std::pair<std::int64_t, float>> nods;  // (start frame, strength)
    float activity = 0.0f;         // smoothed speech probability
    float prev_speech = 0.0f;
    std::int64_t next_blink = 0, blink_start = -100, last_blink = -1000;
    std::int64_t next_gaze = 0;
    float gaze_x = 0.0f, gaze_y = 0.0f, gaze_tx = 0.0f, gaze_ty = 0.0f;
    std::array<float, 4> phase{};
    float prev_level = -84.0f;
    int quiet_frames = 4;          // consecutive frames far under the running speech level (a stream starts after a pause)
};

Session::Session(std::shared_ptr<const Model> model, int sample_rate, FaceOptions options)
    : model_(model ? std::move(model) : throw std::invalid_argument("engine session needs a model")),
      rate_(sample_rate),
      options_(options),
      features_(sample_rate, static_cast<bool>(model_->spec().acoustic)),
      normalizer_(model_->spec().stream) {
    if (options_.smoothing < 0 || options_.smoothing > 8) throw std::invalid_argument("smoothing must be 0..8");
    if (options_.smoothing_ahead < 0 || options_.smoothing_ahead > 8)
        throw std::invalid_argument("smoothing_ahead must be 0..8");
    const std::size_t p = static_cast<std::size_t>(model_->projection_size());
    projections_.assign(kRing * p, 0.0f);
    loudness_.assign(kRing, -84.0f);
    posteriors_.assign(static_cast<std::size_t>(kRing * model_->heads() * kVisemes), 0.0f);
    silence_projection_.resize(p);
    // Before the start: digital silence, and the acoustic model's row before it has heard anything.
    const auto silence = FeatureExtractor::silence();
    input_.assign(silence.begin(), silence.end());
    if (model_->spec().acoustic) {
        acoustic_ = std::make_unique<AcousticScorer>(model_->spec().acoustic, model_->spec().acoustic_causal);
        const int senones = acoustic_->senones();  // the scorer's first rows
        input_.resize(input_.size() + static_cast<std::size_t>(senones), -std::log(static_cast<float>(senones)));
    }
    model_->project(input_.data(), silence_projection_.data());
    splice_.resize(p * model_->spec().offsets.size());
    state_ = model_->initial_state();  // a recurrent model's first state (empty otherwise)
    face_ = std::make_shared<Face>();
    face_->rng.state = options_.seed;
    for (float& ph : face_->phase) ph = face_->rng.uniform(0.0f, 2.0f * kPi);
    face_->next_blink = static_cast<std::int64_t>(face_->rng.uniform(25.0f, 90.0f));
    face_->next_gaze = static_cast<std::int64_t>(face_->rng.uniform(30.0f, 80.0f));
}

double Session::lookahead_ms() const {
    return 1000.0 * (options_.smoothing_ahead + model_->future()) / kFeatureRate;
}

float Session::loudness_db(std::int64_t j) const {
    if (j < 0) return -84.0f;
    return loudness_[static_cast<std::size_t>(j % kRing)];
}

// Classifies the `count` feature frames just extracted into feat_buf_ (and cepstra_buf_).
void Session::on_features(std::size_t count) {
    const std::size_t p = static_cast<std::size_t>(model_->projection_size());
    const auto& offsets = model_->spec().offsets;
    const int future = model_->future();
    const std::size_t heads = static_cast<std::size_t>(model_->heads());
    for (std::size_t i = 0; i < count; ++i) {
        const float* f = feat_buf_.data() + i * kMels;
        const std::int64_t j = features_done_++;
        const float level = frame_loudness_db(f);
        loudness_[static_cast<std::size_t>(j % kRing)] = level;
        input_.assign(f, f + kMels);
        normalizer_.apply(input_.data(), level);
        if (acoustic_) acoustic_->push(cepstra_buf_.data() + i * kCepstra, input_);
        model_->project(input_.data(), projections_.data() + static_cast<std::size_t>(j % kRing) * p);
        // The subframe whose future context just completed.
        const std::int64_t s = j - future;
        if (s < 0) continue;
        for (std::size_t o = 0; o < offsets.size(); ++o) {
            const std::int64_t at = s + offsets[o];
            const float* src = at < 0 ? silence_projection_.data() : projections_.data() + static_cast<std::size_t>(at % kRing) * p;
            std::copy(src, src + p, splice_.begin() + static_cast<std::ptrdiff_t>(o * p));
        }
        model_->classify(splice_.data(), posteriors_.data() + static_cast<std::size_t>(s % kRing) * heads * kVisemes, scratch_, state_.data());
        subframes_done_ = s + 1;
    }
}

void Session::extract(const float* samples, std::size_t n) {
    feat_buf_.clear();
    cepstra_buf_.clear();
    on_features(features_.push(samples, n, feat_buf_, acoustic_ ? &cepstra_buf_ : nullptr));
}

std::size_t Session::push(const std::int16_t* pcm, std::size_t n, std::vector<float>& out) {
    std::vector<float> samples(n);
    for (std::size_t i = 0; i < n; ++i) samples[i] = static_cast<float>(pcm[i]) * (1.0f / 32768.0f);
    return push_float(samples.data(), n, out);
}

std::size_t Session::push_float(const float* samples, std::size_t n, std::vector<float>& out) {
    if (finished_) throw std::logic_error("engine session already flushed");
    // Bounded pieces keep the feature buffer small whatever the chunk size.
    constexpr std::size_t kPiece = 4096;
    std::vector<float> clean;
    std::size_t made = 0;
    for (std::size_t at = 0; at < n; at += kPiece) {
        std::size_t len = std::min(kPiece, n - at);
        clean.assign(samples + at, samples + at + len);
        for (float& x : clean) x = std::isfinite(x) ? std::min(1.0f, std::max(-1.0f, x)) : 0.0f;
        extract(clean.data(), len);
        made += emit_ready(-1, out);
    }
    return made;
}

std::size_t Session::flush(std::vector<float>& out) {
    if (finished_) return 0;
    const std::int64_t total = features_.samples();
    const std::int64_t frames = (total * kFps + rate_ - 1) / rate_;
    const std::int64_t need_features = kSubframes * frames + options_.smoothing_ahead + model_->future();
    std::size_t made = 0;
    std::vector<float> zeros(static_cast<std::size_t>(rate_ / kFeatureRate + 1), 0.0f);
    while (features_.frames() < need_features) {
        extract(zeros.data(), zeros.size());
    }
    made += emit_ready(frames, out);
    finished_ = true;
    return made;
}

std::size_t Session::emit_ready(std::int64_t limit, std::vector<float>& out) {
    std::size_t made = 0;
    while (true) {
        const std::int64_t k = emitted_;
        if (limit >= 0 && k >= limit) break;
        if (subframes_done_ < kSubframes * k + kSubframes + options_.smoothing_ahead) break;
        std::size_t at = out.size();
        out.resize(at + kChannels, 0.0f);
        frame(k, out.data() + at);
        ++emitted_;
        ++made;
    }
    return made;
}

void Session::frame(std::int64_t k, float* out) {
    Face& face = *face_;
    const int before = options_.smoothing, ahead = options_.smoothing_ahead;
    // Feature frames known whatever the chunking: those the look-ahead guarantees at emission.
    const std::int64_t horizon = kSubframes * k + kSubframes + ahead + model_->future();

    // 1. Viseme probabilities of the frame: its four subframes, plus a tapered margin each side.
    // Each subframe's reading is the one with the most context the emission guarantees: with
    // several heads, head d of the subframe classified d steps later, up to the last one classified
    // when the frame is emitted (kSubframes * k + kSubframes + ahead - 1).
    const std::int64_t last = kSubframes * k + kSubframes + ahead - 1;
    const auto heads = static_cast<std::size_t>(model_->heads());
    // Head d's reading of subframe j (it was classified with subframe j + d).
    const auto reading = [&](std::int64_t j, std::int64_t d) {
        return posteriors_.data() + (static_cast<std::size_t>((j + d) % kRing) * heads + static_cast<std::size_t>(d)) * kVisemes;
    };
    std::array<float, kVisemes> p{};
    float total_w = 0.0f, pp_peak = 0.0f;
    for (int s = -before; s < kSubframes + ahead; ++s) {
        const std::int64_t j = kSubframes * k + s;
        const int distance = s < 0 ? -s : (s >= kSubframes ? s - kSubframes + 1 : 0);
        const int side = s < 0 ? before : ahead;
        const float w = static_cast<float>(side + 1 - distance) / static_cast<float>(side + 1);
        total_w += w;
        if (j < 0) {
            p[kSil] += w;
            continue;
        }
        const std::int64_t d = std::min<std::int64_t>(static_cast<std::int64_t>(heads) - 1, last - j);
        const float* q = reading(j, d);
        for (int v = 0; v < kVisemes; ++v) p[static_cast<std::size_t>(v)] += w * q[v];
        // The PP peak counts every reading of the frame's own subframes (each head's, not only the
        // one chosen above): a closure is short and silent until its burst, and the readings
        // disagree on it. Chosen on the dev split (docs/lipsync.md, the low-latency engine).
        if (distance == 0)
            for (std::int64_t e = 0; e <= d; ++e) pp_peak = std::max(pp_peak, reading(j, e)[kPP]);
    }
    for (float& v : p) v /= total_w;
    // A lip closure is short: where the level dips (a closure, or the murmur of an m), let the PP
    // peak inside the frame count, so that the lips do meet.
    float dip_low = 0.0f, dip_high = -200.0f;
    for (int s = 0; s < kSubframes; ++s) dip_low = std::min(dip_low, loudness_db(kSubframes * k + s));
    for (int s = -kSubframes; s < 2 * kSubframes; ++s) {
        const std::int64_t j = kSubframes * k + s;
        if (j < horizon) dip_high = std::max(dip_high, loudness_db(j));
    }
    // Not where the frame reads as f/v: teeth on the lip dip the level too.
    const bool dip = dip_low < dip_high - 6.0f && p[kFF] < p[kPP];
    const float closure = dip ? options_.closure * pp_peak : 0.0f;
    if (closure > p[kPP]) {
        const float rest = 1.0f - p[kPP];
        const float scale = rest > 1e-6f ? (1.0f - closure) / rest : 0.0f;
        for (int v = 0; v < kVisemes; ++v) p[static_cast<std::size_t>(v)] = v == kPP ? closure : p[static_cast<std::size_t>(v)] * scale;
    }

    // 2. Loudness of the frame relative to the running speech level.
    float level = -84.0f;
    for (int s = 0; s < kSubframes; ++s) level = std::max(level, loudness_db(kSubframes * k + s));
    float next_level = -84.0f;
    for (int s = kSubframes; s < 2 * kSubframes && kSubframes * k + s < horizon; ++s)
        next_level = std::max(next_level, loudness_db(kSubframes * k + s));
    float speech = 1.0f - p[kSil];
    if (speech > 0.5f) {
        if (level > face.level_ref) face.level_ref += 0.3f * (level - face.level_ref);
        else face.level_ref += 0.01f * (level - face.level_ref);
    }
    const float intensity = clamp01((level - (face.level_ref - 25.0f)) / 22.0f);

    // A pause rests the face: once the level has stayed kQuietDb under the running speech level for
    // more than two frames (a stop's closure is shorter, so its PP frames stay), what the
    // classifier reads in breath, room noise or a faint background fades to silence over two frames.
    const bool after_pause = face.quiet_frames >= 2;
    if (level < face.level_ref - kQuietDb) ++face.quiet_frames;
    else face.quiet_frames = 0;
    const float rest = clamp01(static_cast<float>(face.quiet_frames - 2) / 2.0f);
    // Speech that starts on p/b/m: the lips closed in the silence before the burst, so the first
    // loud frame still carries the pause's sil in its smoothing. Where PP is the strongest reading
    // of speech there, the lips meet instead of resting.
    if (after_pause && face.quiet_frames == 0 && pp_peak >= kOnsetClosure) {
        float other = 0.0f;
        for (int v = 0; v < kVisemes; ++v)
            if (v != kSil && v != kPP) other = std::max(other, p[static_cast<std::size_t>(v)]);
        if (p[kPP] >= other) {
            p[kPP] += p[kSil];
            p[kSil] = 0.0f;
            speech = 1.0f;
        }
    }
    if (rest > 0.0f) {
        for (int v = 0; v < kVisemes; ++v) p[static_cast<std::size_t>(v)] *= 1.0f - rest;
        p[kSil] += rest;
        speech = 1.0f - p[kSil];
    }

    std::fill(out, out + kChannels, 0.0f);

    // 3. Visemes and the mouth.
    for (int v = 0; v < kVisemes; ++v) out[kVisemeBase + v] = p[static_cast<std::size_t>(v)];
    float open = 0.0f;
    for (int v = 0; v < kVisemes; ++v) open += p[static_cast<std::size_t>(v)] * kOpenness[static_cast<std::size_t>(v)];
    const float jaw = clamp01(kJawGain * open * (0.55f + 0.45f * intensity));
    out[kJawOpen] = jaw;
    const float mouth_gain = 0.6f + 0.4f * intensity;
    for (const PoseValue& pv : kPoses) out[pv.channel] += mouth_gain * p[static_cast<std::size_t>(pv.viseme)] * pv.value;
    out[kMouthClose] = clamp01(1.5f * p[kPP]) * jaw;  // the lips meet over whatever jaw is left
    for (int c = 0; c < kChannels; ++c)
        if (c < kVisemeBase) out[c] = clamp01(out[c]);

    if (!options_.nonverbal) return;

    // 4. Stress: a loud vowel peak above the running syllable level raises the brows and nods.
    const float vowel = p[kAA] + p[kE] + p[kI] + p[kO] + p[kU];
    face.activity += (speech - face.activity) * 0.08f;
    const bool peak = vowel > 0.35f && level >= face.prev_level && level >= next_level && level > -60.0f;
    if (speech < 0.3f) ++face.silent_frames;
    if (peak) {
        const float above = level - face.accent_ref;
        const bool phrase_start = face.silent_frames >= 12;  // first syllable after 0.5 s of silence
        if ((above > 1.5f || phrase_start) && k - face.last_nod >= 10) {
            face.nods.emplace_back(k, std::min(1.0f, std::max(0.3f, above / 6.0f)));
            face.last_nod = k;
        }
        if ((above > 4.0f || phrase_start) && k - face.last_brow >= 25) {
            face.brow_target = std::max(face.brow_target, std::min(1.0f, std::max(0.5f, above / 8.0f)));
            face.last_brow = k;
        }
        face.accent_ref += 0.25f * (level - face.accent_ref);
        face.silent_frames = 0;
    }
    face.prev_level = level;
    face.brow += (face.brow_target - face.brow) * 0.45f;
    face.brow_target *= 0.85f;
    out[kBrowInnerUp] = clamp01(0.45f * face.brow);
    out[kBrowOuterUpLeft] = clamp01(0.3f * face.brow);
    out[kBrowOuterUpRight] = clamp01(0.3f * face.brow);

    // 5. Head: slow sway that grows while speaking, plus the nods (pitch down is positive).
    const float t = static_cast<float>(k) / kFps;
    const float sway = 0.5f + 0.5f * face.activity;
    float pitch = sway * (0.012f * std::sin(2.0f * kPi * 0.13f * t + face.phase[0]) +
                          0.006f * std::sin(2.0f * kPi * 0.31f * t + face.phase[1]));
    float yaw = sway * (0.025f * std::sin(2.0f * kPi * 0.09f * t + face.phase[2]) +
                        0.01f * std::sin(2.0f * kPi * 0.23f * t + face.phase[1]));
    float roll = sway * 0.01f * std::sin(2.0f * kPi * 0.07f * t + face.phase[3]);
    for (const auto& [start, strength] : face.nods) {
        const float x = static_cast<float>(k - start) / 3.0f;  // peaks 3 frames (120 ms) in
        pitch += 0.05f * strength * x * std::exp(1.0f - x);
    }
    face.nods.erase(std::remove_if(face.nods.begin(), face.nods.end(), [k](const auto& n) { return k - n.first > 25; }),
                    face.nods.end());
    out[kHeadPitch] = pitch;
    out[kHeadYaw] = yaw;
    out[kHeadRoll] = roll;

    // 6. Blinks: every 2.5-6 s, and at the end of a phrase if none was recent.
    const bool phrase_end = face.prev_speech > 0.5f && speech < 0.2f;
    face.prev_speech = speech;
    if (k >= face.next_blink || (phrase_end && k - face.last_blink > 30 && face.rng.uniform(0.0f, 1.0f) < 0.6f)) {
        face.blink_start = k;
        face.last_blink = k;
        face.next_blink = k + static_cast<std::int64_t>(face.rng.uniform(62.0f, 150.0f));
    }
    static constexpr float kBlink[] = {0.55f, 1.0f, 0.75f, 0.35f, 0.1f};
    const std::int64_t b = k - face.blink_start;
    if (b >= 0 && b < 5) {
        out[kBlinkLeft] = kBlink[b];
        out[kBlinkRight] = kBlink[b];
    }

    // 7. Gaze: small saccades every 1.2-4 s, mostly near the centre, some glances away.
    if (k >= face.next_gaze) {
        const float r = face.rng.uniform(0.0f, 1.0f);
        if (r < 0.55f) {
            face.gaze_tx = face.rng.uniform(-0.08f, 0.08f);
            face.gaze_ty = face.rng.uniform(-0.05f, 0.05f);
        } else {
            face.gaze_tx = face.rng.uniform(-0.35f, 0.35f);
            face.gaze_ty = face.rng.uniform(-0.15f, 0.25f);
        }
        face.next_gaze = k + static_cast<std::int64_t>(face.rng.uniform(30.0f, 100.0f));
    }
    face.gaze_x += (face.gaze_tx - face.gaze_x) * 0.6f;
    face.gaze_y += (face.gaze_ty - face.gaze_y) * 0.6f;
    // Looking to the avatar's left: left eye out, right eye in.
    out[kLookOutLeft] = clamp01(face.gaze_x);
    out[kLookInRight] = clamp01(face.gaze_x);
    out[kLookInLeft] = clamp01(-face.gaze_x);
    out[kLookOutRight] = clamp01(-face.gaze_x);
    out[kLookUpLeft] = out[kLookUpRight] = clamp01(face.gaze_y);
    out[kLookDownLeft] = out[kLookDownRight] = clamp01(-face.gaze_y);
}

}  // namespace avatarkit::engine
