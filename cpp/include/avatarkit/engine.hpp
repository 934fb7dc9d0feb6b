// The audio-to-animation engine: speech PCM in, 25 fps canonical channel frames out, streaming.
//
// Signal path: log-mel features every 10 ms at the input's own rate (no resampling: the filterbank
// is laid out in Hz and normalised so that features do not depend on the rate), a small network
// over a window of past and future feature frames that gives viseme probabilities every 10 ms, a
// smoothing window per 40 ms frame, then the face: visemes, ARKit weights, head pose and the
// non-verbal layer (stress accents on brows and head, blinks, gaze), all deterministic.
#pragma once

#include <array>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace avatarkit::engine {

inline constexpr int kFps = 25;             // output frames per second
inline constexpr int kFeatureRate = 100;    // feature frames per second (10 ms hop)
inline constexpr int kSubframes = kFeatureRate / kFps;
inline constexpr int kMels = 40;            // log-mel bands
inline constexpr int kVisemes = 15;         // Oculus visemes, sil first
inline constexpr int kChannels = 73;        // the codec's canonical channels
inline constexpr float kWindowSeconds = 0.025f;
inline constexpr float kMelLowHz = 60.0f;
inline constexpr float kMelHighHz = 7800.0f;
inline constexpr float kPowerFloor = 1e-10f;

// The rates the driving protocol allows.
bool supported_rate(int sample_rate);

// Real-input FFT power spectrum of a fixed power-of-two size.
class PowerSpectrum {
public:
    explicit PowerSpectrum(std::size_t n);
    std::size_t size() const { return n_; }
    // in: n samples; out: n / 2 + 1 values |X_k|^2.
    void operator()(const float* in, float* out);

private:
    std::size_t n_, half_;
    std::vector<std::complex<float>> twiddle_, post_, buf_;
    std::vector<std::uint32_t> reverse_;
};

// Acoustic cepstra (the front end of the phone model below, see AcousticScorer): 25 mel bands from
// 130 to 6800 Hz (unit area), log, orthonormal DCT to kCepstra values, sinusoidal lifter 22, the
// way CMU Sphinx computes them; one LSB of deterministic dither (by absolute sample index) keeps
// digital silence from being an extreme point.
inline constexpr int kCepstra = 13;
inline constexpr int kAcousticBands = 25;
inline constexpr float kAcousticLowHz = 130.0f;
inline constexpr float kAcousticHighHz = 6800.0f;

// Log-mel frames of 25 ms (Hann) every 10 ms. Frame j covers the samples that end at
// round((j + 1) * rate / 100); audio before the first sample is taken as silence.
class FeatureExtractor {
public:
    // With `cepstra`, push() can also give each frame's acoustic cepstra.
    explicit FeatureExtractor(int sample_rate, bool cepstra = false);
    int sample_rate() const { return rate_; }
    // Appends kMels log-mel values per completed frame to `out` (and kCepstra acoustic cepstra to
    // `cepstra` when given; the extractor must have been made with them); returns the frame count.
    std::size_t push(const float* samples, std::size_t n, std::vector<float>& out, std::vector<float>* cepstra = nullptr);
    std::int64_t frames() const { return next_frame_; }
    std::int64_t samples() const { return total_; }
    // End sample (exclusive) of frame j.
    std::int64_t frame_end(std::int64_t j) const;
    // The log-mel vector of digital silence (what frames before the start look like).
    static std::array<float, kMels> silence();

private:
    void compute(const float* frame, float* out);
    void compute_cepstra(const float* frame, std::int64_t first_sample, float* out);

    int rate_;
    std::size_t window_;
    PowerSpectrum fft_;
    std::vector<float> hann_;
    float norm_;
    struct Band {
        std::size_t first;
        std::vector<float> weights;
    };
    std::vector<Band> bands_;
    std::vector<Band> acoustic_bands_;  // empty unless made with cepstra
    std::vector<float> dct_;            // kCepstra x kAcousticBands, lifter included
    std::vector<float> history_;  // samples from history_start_ on
    std::int64_t history_start_ = 0;
    std::int64_t total_ = 0;
    std::int64_t next_frame_ = 0;
    std::vector<float> frame_buf_, power_buf_;
};

// Whole-utterance features (what the training script sees): frames x kMels, row-major.
std::vector<float> log_mel(const float* samples, std::size_t n, int sample_rate, std::size_t* frames);
// Whole-utterance acoustic cepstra: frames x kCepstra, row-major (same frames as log_mel).
std::vector<float> cepstra(const float* samples, std::size_t n, int sample_rate, std::size_t* frames);

// A phone model trained on recorded speech: pocketsphinx's US English acoustic model (BSD
// licence), its context-independent part: `codebooks` base phones x 3 states ("senones"), each a
// mixture over its phone's codebook of `densities` diagonal Gaussians per stream (cepstra, their
// deltas, their double deltas: CMU Sphinx's 1s_c_d_dd). Made by scripts/convert_acoustic_model.py.
struct AcousticSpec {
    int codebooks = 0;
    int densities = 0;
    std::vector<float> means, precisions;  // codebooks x 3 x densities x kCepstra (precision = 1 / variance)
    std::vector<float> constants;          // codebooks x 3 x densities: each Gaussian's log normaliser
    std::vector<float> log_weights;        // 3 x codebooks x densities x 3: stream, codebook, density, state
    std::vector<float> cmn_prior;          // kCepstra: the running cepstral mean starts here
    float cmn_prior_frames = 100.0f;       // what the prior is worth, in frames
    float cmn_memory_frames = 500.0f;      // cumulative mean up to this many frames, exponential after
    int senones() const { return 3 * codebooks; }
    void validate() const;  // throws std::invalid_argument
};

// The acoustic model ready to score (immutable, shared by sessions): the spec, validated, with
// each Gaussian's terms laid out by (codebook, stream) block and coefficient for vectorized scoring.
class AcousticModel {
public:
    explicit AcousticModel(AcousticSpec spec);  // throws std::invalid_argument
    const AcousticSpec& spec() const { return spec_; }
    int senones() const { return spec_.senones(); }
    // Log-likelihoods (senones() values) of one frame of normalised streams (3 x kCepstra).
    void likelihoods(const float* streams, float* out, std::vector<float>& scratch) const;

    // The precomputed terms, as the scoring loops read them.
    struct Tables {
        const float *quadratic, *linear, *offset, *weights;
        std::size_t padded, codebooks;
    };

private:
    AcousticSpec spec_;
    std::vector<float> quadratic_, linear_, offset_;  // precision, precision x mean, constant - mean's part
    std::vector<float> weights_;                       // mixture weights by (codebook, stream) block, state, density
    std::size_t padded_ = 0;                           // densities rounded up to whole groups of 8
    bool avx2_ = false;                                // score with the AVX2 build of the loops
};

// Streaming senone scores: per frame of cepstra, the running cepstral mean is removed, deltas and
// double deltas are taken over +-3 frames (so a frame's scores come kAcousticLag frames after it),
// and each senone's log-likelihood becomes a log-posterior under a flat prior, floored at
// kAcousticFloor. The row given for frame j is that of frame j - kAcousticLag; the first
// kAcousticLag rows carry no information (uniform: -log(senones) each).
// A causal scorer (for a model without look-ahead) gives frame j's own row instead: its static
// cepstra with the delta and double delta of the frames before (those of frames j - 2 and j - 3,
// the newest that need no later frame), so no row waits for audio after its frame.
inline constexpr int kAcousticLag = 3;
inline constexpr float kAcousticFloor = -40.0f;

class AcousticScorer {
public:
    explicit AcousticScorer(std::shared_ptr<const AcousticModel> model, bool causal = false);
    int senones() const { return model_->senones(); }
    int lag() const { return causal_ ? 0 : kAcousticLag; }  // frames between a row's frame and the newest
    // One frame of kCepstra in; appends senones() values (the row for this frame) to `out`.
    void push(const float* cepstra, std::vector<float>& out);

private:
    std::shared_ptr<const AcousticModel> model_;
    std::array<float, kCepstra> mean_{};
    float count_ = 0.0f;
    std::vector<std::array<float, kCepstra>> ring_;  // normalised cepstra, last 2 * kAcousticLag + 1 frames
    std::int64_t frames_ = 0;
    bool causal_ = false;
    std::vector<float> scratch_;
};

// Whole-utterance acoustic rows (what the training script sees): frames x senones, row-major, the
// rows a session computes for the same audio.
std::vector<float> acoustic_features(const float* samples, std::size_t n, int sample_rate,
                                     std::shared_ptr<const AcousticModel> model, std::size_t* frames,
                                     bool causal = false);

// Per-stream normalisation of log-mel frames: each band minus the running mean of this stream's
// speech frames, plus the training speech mean (`prior`), so that a voice's or a microphone's
// spectral envelope and the level move the features far less. The mean starts at the prior (worth
// `prior_frames` frames) and then follows the stream's own frames: a cumulative mean up to
// `memory_frames`, an exponential one after. Frames more than `gate_db` under the running peak
// level, or under `floor_db`, are pauses and do not count. Empty `prior`: off.
struct StreamNorm {
    std::vector<float> prior;   // kMels, or empty
    float prior_frames = 30.0f;
    float memory_frames = 300.0f;
    float gate_db = 20.0f;
    float floor_db = -75.0f;
    bool enabled() const { return !prior.empty(); }
    void validate() const;  // throws std::invalid_argument
};

class StreamNormalizer {
public:
    explicit StreamNormalizer(const StreamNorm& params);
    // Normalise one frame of kMels values in place, given its frame_loudness_db (identity when
    // the parameters are off).
    void apply(float* frame, float level_db);

private:
    const StreamNorm* params_;
    std::array<float, kMels> mean_{};
    float count_ = 0.0f;
    float peak_db_ = -1000.0f;
};

// The loudness (dB) of a log-mel frame: 10 log10 of its summed band power.
float frame_loudness_db(const float* log_mel);

// Whole-stream normalisation (what the training script applies): frames x kMels, row-major.
std::vector<float> normalize_stream(const float* log_mel, std::size_t frames, const StreamNorm& params);

// A dense layer, y = act(x W + b) with W stored input-major (in x out).
struct Layer {
    int in = 0, out = 0;
    std::vector<float> weight, bias;  // `weight` in x out; Model packs it (below) and releases it
    bool relu = true;
    // Set by Model: per input row, the span of outputs whose weights are not zero ([first, last)
    // columns) and where that span starts in `packed` (the spans back to back). A block-diagonal
    // layer (two networks merged into one, an ensemble) costs and reads only its blocks.
    std::vector<std::int32_t> first, last;
    std::vector<std::size_t> at;
    std::vector<float> packed;
};

// A gated recurrent unit (GRU) layer between the splice and the dense layers: its state carries
// what the stream has said so far, with no fixed end to its context. For input x and state h, per
// unit: r = sigmoid(x Wr + br + h Ur + cr), u = sigmoid(x Wu + bu + h Uu + cu),
// n = tanh(x Wn + bn + r * (h Un + cn)), h' = (1 - u) n + u h; the dense layers read h'. The units
// come in `blocks` (one per network of a merged ensemble, whose weights do not cross blocks), and
// the gates' 3 * size columns are laid out block by block: [r u n] of the first block's units,
// then of the next, so that each block's weights are one span per row (Layer).
struct Recurrent {
    Layer input;                 // P * offsets -> 3 * size (linear)
    Layer state;                 // size -> 3 * size (linear)
    std::vector<int> blocks;     // units per block, summing to size
    std::vector<float> initial;  // the state a stream starts from (size values; empty: zeros)
    int size() const { return state.in; }
};

// The classifier: normalise each feature frame, project it (per frame, shared), splice the
// projections at the context offsets (with a recurrent layer, update its state from the splice),
// then dense layers to kVisemes logits per head. A feature
// frame is kMels log-mel values (stream-normalised), followed, with an acoustic model, by that
// model's senone row for the same frame (AcousticScorer: the scores of the frame kAcousticLag
// earlier). Head d (0 <= d < heads) reads the subframe d steps before the one classified: a
// causal model with heads still sees the rest of a 40 ms frame's audio for the frame's earlier
// subframes when the frame is emitted, without waiting for any audio after the frame.
struct ModelSpec {
    std::vector<float> mean, inv_std;  // inputs() each
    Layer projection;                  // inputs() -> P, ReLU
    std::vector<int> offsets;          // ascending, in feature frames, includes 0
    Recurrent recurrent;               // optional (size 0: none): P * offsets -> its state, read by `layers`
    std::vector<Layer> layers;         // P * offsets (or the recurrent size) -> ... -> kVisemes * heads (last one linear)
    int heads = 1;                     // 1 .. kSubframes
    StreamNorm stream;                 // applied to the log-mel values before `mean`/`inv_std` (off when empty)
    std::shared_ptr<const AcousticModel> acoustic;  // or none
    bool acoustic_causal = false;                   // its rows from a causal scorer (AcousticScorer)
    int inputs() const { return kMels + (acoustic ? acoustic->senones() : 0); }
};

class Model {
public:
    explicit Model(ModelSpec spec);
    const ModelSpec& spec() const { return spec_; }
    int past() const { return -spec_.offsets.front(); }
    int future() const { return spec_.offsets.back(); }
    int projection_size() const { return spec_.projection.out; }
    int inputs() const { return spec_.inputs(); }
    // One projected frame (P values) from one feature frame (inputs() values).
    void project(const float* features, float* out) const;
    int heads() const { return spec_.heads; }
    // Units of the recurrent layer's state (0: none; the model is then a function of each splice).
    int recurrent_size() const { return spec_.recurrent.size(); }
    const std::vector<float>& initial_state() const { return spec_.recurrent.initial; }
    // Viseme probabilities (kVisemes per head, head 0 first) from spliced projections (P * offsets
    // values). A recurrent model reads and updates `state` (recurrent_size() values, initial_state()
    // at the start of a stream): call it once per subframe, in order.
    void classify(const float* spliced, float* probabilities, std::vector<float>& scratch, float* state = nullptr) const;
    std::size_t parameter_count() const;

private:
    ModelSpec spec_;
};

// How the viseme probabilities become a face: documented in docs/lipsync.md.
struct FaceOptions {
    int smoothing = 2;           // extra 10 ms subframes before a 40 ms frame that blend into it
    int smoothing_ahead = 2;     // and after it (each one adds 10 ms of look-ahead)
    float closure = 0.95f;       // weight of the PP peak inside a frame (lips must meet on short closures)
    bool nonverbal = true;       // brows, nods, blinks, gaze, head sway
    std::uint64_t seed = 0x5eed; // the idle behaviour's random sequence (deterministic per seed)
};

// One request's streaming state. push() returns whole frames as soon as the audio they need has
// arrived; flush() ends the request (pads with silence) so that ceil(duration / 40 ms) frames
// come out in all.
class Session {
public:
    Session(std::shared_ptr<const Model> model, int sample_rate, FaceOptions options = {});
    int sample_rate() const { return rate_; }
    // Audio after a frame's end needed before the frame is emitted, in milliseconds.
    double lookahead_ms() const;
    std::int64_t frames_emitted() const { return emitted_; }
    std::int64_t samples_pushed() const { return features_.samples(); }
    bool finished() const { return finished_; }
    // Appends kChannels floats per emitted frame to `out`; returns the number of frames.
    std::size_t push(const std::int16_t* pcm, std::size_t n, std::vector<float>& out);
    std::size_t push_float(const float* samples, std::size_t n, std::vector<float>& out);
    std::size_t flush(std::vector<float>& out);

    // The 10 ms viseme probabilities computed so far that are still buffered (for diagnostics).
    static constexpr int kRing = 128;

private:
    void extract(const float* samples, std::size_t n);
    void on_features(std::size_t count);
    std::size_t emit_ready(std::int64_t limit, std::vector<float>& out);
    void frame(std::int64_t k, float* out);
    float loudness_db(std::int64_t j) const;

    std::shared_ptr<const Model> model_;
    int rate_;
    FaceOptions options_;
    FeatureExtractor features_;
    std::vector<float> feat_buf_, cepstra_buf_, splice_, scratch_, input_, state_;
    std::unique_ptr<AcousticScorer> acoustic_;  // when the model has an acoustic model
    std::vector<float> projections_;  // ring of kRing x P, by feature frame
    std::vector<float> loudness_;     // ring of kRing, dB, by feature frame
    std::vector<float> posteriors_;   // ring of kRing x heads x kVisemes, by classified subframe
    std::vector<float> silence_projection_;
    StreamNormalizer normalizer_;
    std::int64_t features_done_ = 0;  // feature frames processed
    std::int64_t subframes_done_ = 0; // subframes classified
    std::int64_t emitted_ = 0;
    bool finished_ = false;

    // Face state.
    struct Face;
    std::shared_ptr<Face> face_;
};

}  // namespace avatarkit::engine
