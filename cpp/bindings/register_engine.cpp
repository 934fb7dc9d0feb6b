// avatarkit._core.engine: the audio-to-animation signal path (features, classifier, face).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "avatarkit/engine.hpp"

namespace py = pybind11;
using namespace avatarkit;

namespace {

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

engine::Layer make_layer(const F32Array& weight, const F32Array& bias, const char* what) {
    if (weight.ndim() != 2 || bias.ndim() != 1 || bias.shape(0) != weight.shape(1))
        throw py::value_error(std::string(what) + ": weight must be (in, out) and bias (out,)");
    engine::Layer l;
    l.in = static_cast<int>(weight.shape(0));
    l.out = static_cast<int>(weight.shape(1));
    l.weight.assign(weight.data(), weight.data() + weight.size());
    l.bias.assign(bias.data(), bias.data() + bias.size());
    return l;
}

std::vector<float> as_vector(const F32Array& a) { return {a.data(), a.data() + a.size()}; }

// A whole-utterance feature function of mono samples, run without the GIL: frames x width.
template <typename Compute>
py::array_t<float> utterance_features(const F32Array& samples, int sample_rate, int width, Compute compute) {
    if (samples.ndim() != 1) throw py::value_error("samples must be one-dimensional");
    if (!engine::supported_rate(sample_rate)) throw py::value_error("unsupported sample rate");
    std::size_t frames = 0;
    std::vector<float> values;
    {
        py::gil_scoped_release release;
        values = compute(samples.data(), static_cast<std::size_t>(samples.size()), &frames);
    }
    py::array_t<float> out({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(width)});
    if (frames) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(float));
    return out;
}

engine::StreamNorm stream_norm(const F32Array& prior, const std::vector<float>& params) {
    if (prior.ndim() != 1 || prior.shape(0) != engine::kMels) throw py::value_error("stream_prior must have N_MELS values");
    if (params.size() > 4) throw py::value_error("stream_params: at most [prior_frames, memory_frames, gate_db, floor_db]");
    engine::StreamNorm norm;
    norm.prior = as_vector(prior);
    float* fields[] = {&norm.prior_frames, &norm.memory_frames, &norm.gate_db, &norm.floor_db};
    for (std::size_t i = 0; i < params.size(); ++i) *fields[i] = params[i];
    try {
        norm.validate();
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return norm;
}

py::array_t<float> frames_array(const std::vector<float>& values, std::size_t frames) {
    py::array_t<float> out({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(engine::kChannels)});
    if (frames) std::memcpy(out.mutable_data(), values.data(), frames * engine::kChannels * sizeof(float));
    return out;
}

}  // namespace

void register_engine(py::module_& m) {
    m.attr("FPS") = engine::kFps;
    m.attr("FEATURE_RATE") = engine::kFeatureRate;
    m.attr("N_MELS") = engine::kMels;
    m.attr("N_VISEMES") = engine::kVisemes;
    m.attr("N_CHANNELS") = engine::kChannels;

    m.def("supported_rate", &engine::supported_rate, py::arg("sample_rate"),
          "Whether the engine takes audio at this rate (8000, 16000, 22050, 24000, 32000, 44100, 48000 Hz).");

    m.def(
        "log_mel",
        [](const F32Array& samples, int sample_rate) {
            return utterance_features(samples, sample_rate, engine::kMels, [&](const float* x, std::size_t n, std::size_t* frames) {
                return engine::log_mel(x, n, sample_rate, frames);
            });
        },
        py::arg("samples"), py::arg("sample_rate"),
        "Log-mel features (frames x N_MELS, float32) of mono samples in [-1, 1]: 25 ms Hann windows every\n"
        "10 ms; frame j ends at sample round((j + 1) * rate / 100). The same features a Session computes.");

    m.attr("N_CEPSTRA") = engine::kCepstra;
    m.attr("ACOUSTIC_LAG") = engine::kAcousticLag;

    m.def(
        "cepstra",
        [](const F32Array& samples, int sample_rate) {
            return utterance_features(samples, sample_rate, engine::kCepstra, [&](const float* x, std::size_t n, std::size_t* frames) {
                return engine::cepstra(x, n, sample_rate, frames);
            });
        },
        py::arg("samples"), py::arg("sample_rate"),
        "Acoustic cepstra (frames x N_CEPSTRA, float32) of mono samples in [-1, 1], the frames of log_mel:\n"
        "CMU Sphinx's front end (25 mel bands 130-6800 Hz, log, DCT, lifter 22) with one LSB of dither.");

    py::class_<engine::AcousticModel, std::shared_ptr<engine::AcousticModel>>(
        m, "AcousticModel", "A phone model trained on recorded speech (context-independent senones; immutable).")
        .def(py::init([](const F32Array& means, const F32Array& precisions, const F32Array& constants,
                         const F32Array& log_weights, const F32Array& cmn_prior, float cmn_prior_frames,
                         float cmn_memory_frames) {
                 if (means.ndim() != 4 || means.shape(1) != 3 || means.shape(3) != engine::kCepstra)
                     throw py::value_error("means must be (codebooks, 3, densities, N_CEPSTRA)");
                 engine::AcousticSpec spec;
                 spec.codebooks = static_cast<int>(means.shape(0));
                 spec.densities = static_cast<int>(means.shape(2));
                 spec.means = as_vector(means);
                 spec.precisions = as_vector(precisions);
                 spec.constants = as_vector(constants);
                 spec.log_weights = as_vector(log_weights);
                 spec.cmn_prior = as_vector(cmn_prior);
                 spec.cmn_prior_frames = cmn_prior_frames;
                 spec.cmn_memory_frames = cmn_memory_frames;
                 try {
                     return std::make_shared<engine::AcousticModel>(std::move(spec));
                 } catch (const std::invalid_argument& e) {
                     throw py::value_error(e.what());
                 }
             }),
             py::arg("means"), py::arg("precisions"), py::arg("constants"), py::arg("log_weights"), py::arg("cmn_prior"),
             py::arg("cmn_prior_frames") = 100.0f, py::arg("cmn_memory_frames") = 500.0f,
             "``means``/``precisions`` (codebooks, 3, densities, N_CEPSTRA), ``constants`` (codebooks, 3,\n"
             "densities), ``log_weights`` (3, codebooks, densities, 3), ``cmn_prior`` (N_CEPSTRA,).")
        .def_property_readonly("senones", &engine::AcousticModel::senones, "Context-independent senones (3 per phone).")
        .def(
            "likelihoods",
            [](const engine::AcousticModel& model, const F32Array& streams) {
                if (streams.ndim() != 2 || streams.shape(1) != 3 * engine::kCepstra)
                    throw py::value_error("streams must be frames x (3 * N_CEPSTRA)");
                const auto frames = static_cast<std::size_t>(streams.shape(0));
                const auto n = static_cast<std::size_t>(model.senones());
                py::array_t<float> out({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(n)});
                float* dst = out.mutable_data();
                const float* src = streams.data();
                {
                    py::gil_scoped_release release;
                    std::vector<float> scratch;
                    for (std::size_t t = 0; t < frames; ++t) model.likelihoods(src + t * 3 * engine::kCepstra, dst + t * n, scratch);
                }
                return out;
            },
            py::arg("streams"),
            "Senone log-likelihoods (frames x senones) of mean-normalised cepstra with deltas and double deltas.");

    m.def(
        "acoustic_features",
        [](const F32Array& samples, int sample_rate, std::shared_ptr<engine::AcousticModel> model, bool causal) {
            return utterance_features(samples, sample_rate, model->senones(), [&](const float* x, std::size_t n, std::size_t* frames) {
                return engine::acoustic_features(x, n, sample_rate, model, frames, causal);
            });
        },
        py::arg("samples"), py::arg("sample_rate"), py::arg("model").none(false), py::arg("causal") = false,
        "Senone log-posteriors (frames x senones, the frames of log_mel) of mono samples in [-1, 1]: running\n"
        "cepstral mean removed, deltas over +-3 frames, flat prior, floored at -40. Row j is frame\n"
        "j - ACOUSTIC_LAG's (the first ACOUSTIC_LAG rows are uniform). ``causal``: row j is frame j's own,\n"
        "its static cepstra with the delta of frame j - 2 and the double delta of frame j - 3 (no frame\n"
        "after j is read).");

    py::class_<engine::Model, std::shared_ptr<engine::Model>>(m, "Model", "The viseme classifier's weights (immutable, shared by sessions).")
        .def(py::init([](const F32Array& mean, const F32Array& inv_std, const F32Array& projection_weight,
                         const F32Array& projection_bias, std::vector<int> offsets, const std::vector<F32Array>& weights,
                         const std::vector<F32Array>& biases, const std::optional<F32Array>& stream_prior,
                         const std::vector<float>& stream_params, const std::optional<std::shared_ptr<engine::AcousticModel>>& acoustic,
                         int heads, bool acoustic_causal, const std::optional<std::vector<F32Array>>& recurrent,
                         std::vector<int> recurrent_blocks, const std::optional<F32Array>& recurrent_initial) {
                 if (weights.size() != biases.size()) throw py::value_error("one bias per weight matrix");
                 if (acoustic_causal && !acoustic) throw py::value_error("acoustic_causal needs an acoustic model");
                 engine::ModelSpec spec;
                 if (acoustic) spec.acoustic = *acoustic;
                 spec.acoustic_causal = acoustic_causal;
                 if (stream_prior) spec.stream = stream_norm(*stream_prior, stream_params);
                 spec.mean = as_vector(mean);
                 spec.inv_std = as_vector(inv_std);
                 spec.projection = make_layer(projection_weight, projection_bias, "projection");
                 spec.offsets = std::move(offsets);
                 spec.heads = heads;
                 for (std::size_t i = 0; i < weights.size(); ++i) spec.layers.push_back(make_layer(weights[i], biases[i], "layer"));
                 if (recurrent) {
                     if (recurrent->size() != 4)
                         throw py::value_error("recurrent: [input_weight, input_bias, state_weight, state_bias]");
                     spec.recurrent.input = make_layer((*recurrent)[0], (*recurrent)[1], "recurrent input");
                     spec.recurrent.state = make_layer((*recurrent)[2], (*recurrent)[3], "recurrent state");
                     spec.recurrent.blocks = recurrent_blocks.empty() ? std::vector<int>{spec.recurrent.state.in} : std::move(recurrent_blocks);
                     if (recurrent_initial) spec.recurrent.initial = as_vector(*recurrent_initial);
                 } else if (!recurrent_blocks.empty() || recurrent_initial) {
                     throw py::value_error("recurrent_blocks or recurrent_initial without a recurrent layer");
                 }
                 try {
                     return std::make_shared<engine::Model>(std::move(spec));
                 } catch (const std::invalid_argument& e) {
                     throw py::value_error(e.what());
                 }
             }),
             py::arg("mean"), py::arg("inv_std"), py::arg("projection_weight"), py::arg("projection_bias"), py::arg("offsets"),
             py::arg("weights"), py::arg("biases"), py::arg("stream_prior") = py::none(),
             py::arg("stream_params") = std::vector<float>{}, py::arg("acoustic") = py::none(), py::arg("heads") = 1,
             py::arg("acoustic_causal") = false, py::arg("recurrent") = py::none(),
             py::arg("recurrent_blocks") = std::vector<int>{}, py::arg("recurrent_initial") = py::none(),
             "``mean``/``inv_std`` and the projection's rows: one per input, the N_MELS log-mel values, then,\n"
             "with an ``acoustic`` model, its senone scores (the rows of acoustic_features, with ``causal`` when\n"
             "``acoustic_causal``). The last layer gives N_VISEMES logits per head; head d reads the subframe d\n"
             "steps (10 ms) before the one classified. ``recurrent``: a GRU between the splice and the layers,\n"
             "[input_weight (splice x 3H), input_bias, state_weight (H x 3H), state_bias], gates r, u, n laid out\n"
             "per block of ``recurrent_blocks`` (units per merged network; default one block of H); a stream\n"
             "starts from ``recurrent_initial`` (H values in [-1, 1]; default zeros).")
        .def_property_readonly(
            "acoustic_causal", [](const engine::Model& m) { return m.spec().acoustic_causal; },
            "Whether the network reads causal acoustic rows (acoustic_features(..., causal=True)).")
        .def_property_readonly("recurrent_size", &engine::Model::recurrent_size,
                               "Units of the recurrent layer's state (0: no recurrent layer).")
        .def(
            "project",
            [](const engine::Model& m, const F32Array& inputs) {
                if (inputs.ndim() != 2 || inputs.shape(1) != m.inputs()) throw py::value_error("inputs must be frames x inputs");
                const auto frames = static_cast<std::size_t>(inputs.shape(0));
                const auto p = static_cast<std::size_t>(m.projection_size());
                py::array_t<float> out({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(p)});
                float* o = out.mutable_data();
                const float* x = inputs.data();
                py::gil_scoped_release release;
                for (std::size_t j = 0; j < frames; ++j) m.project(x + j * static_cast<std::size_t>(m.inputs()), o + j * p);
                return out;
            },
            py::arg("inputs"), "Each feature frame's projection (frames x P): normalised, dense, ReLU.")
        .def(
            "classify_sequence",
            [](const engine::Model& m, const F32Array& spliced) {
                const auto width = static_cast<py::ssize_t>(m.projection_size()) * static_cast<py::ssize_t>(m.spec().offsets.size());
                if (spliced.ndim() != 2 || spliced.shape(1) != width) throw py::value_error("spliced must be steps x (P * offsets)");
                const auto steps = static_cast<std::size_t>(spliced.shape(0));
                const auto per = static_cast<std::size_t>(m.heads() * engine::kVisemes);
                py::array_t<float> out({static_cast<py::ssize_t>(steps), static_cast<py::ssize_t>(m.heads()),
                                        static_cast<py::ssize_t>(engine::kVisemes)});
                float* o = out.mutable_data();
                const float* x = spliced.data();
                py::gil_scoped_release release;
                std::vector<float> scratch, state = m.initial_state();
                for (std::size_t s = 0; s < steps; ++s)
                    m.classify(x + s * static_cast<std::size_t>(width), o + s * per, scratch, state.data());
                return out;
            },
            py::arg("spliced"),
            "Viseme probabilities (steps x heads x N_VISEMES) of consecutive splices of projections, as a\n"
            "session classifies its subframes (a recurrent model's state starts where a session's does).")
        .def_property_readonly("past", &engine::Model::past, "Feature frames of past context.")
        .def_property_readonly("future", &engine::Model::future, "Feature frames of future context (10 ms each).")
        .def_property_readonly("heads", &engine::Model::heads,
                               "Output heads: head d reads the subframe d steps (10 ms) before the one classified.")
        .def_property_readonly("parameter_count", &engine::Model::parameter_count,
                               "Number of weights and biases (not the zeros outside each weight row's non-zero span, such as a merged ensemble's off-diagonal blocks).")
        .def_property_readonly("inputs", &engine::Model::inputs, "Values per feature frame: N_MELS, plus the acoustic model's senones.")
        .def_property_readonly(
            "acoustic",
            [](const engine::Model& m) -> std::optional<std::shared_ptr<engine::AcousticModel>> {
                if (!m.spec().acoustic) return std::nullopt;
                return std::const_pointer_cast<engine::AcousticModel>(m.spec().acoustic);
            },
            "The acoustic model whose scores the network reads, or None.")
        .def_property_readonly(
            "stream_normalized", [](const engine::Model& m) { return m.spec().stream.enabled(); },
            "Whether sessions normalise each stream's features (see normalize_stream).");

    m.def(
        "normalize_stream",
        [](const F32Array& log_mel, const F32Array& prior, const std::vector<float>& params) {
            if (log_mel.ndim() != 2 || log_mel.shape(1) != engine::kMels) throw py::value_error("log_mel must be frames x N_MELS");
            const engine::StreamNorm norm = stream_norm(prior, params);
            const auto frames = static_cast<std::size_t>(log_mel.shape(0));
            std::vector<float> values;
            {
                py::gil_scoped_release release;
                values = engine::normalize_stream(log_mel.data(), frames, norm);
            }
            py::array_t<float> out({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(engine::kMels)});
            if (frames) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(float));
            return out;
        },
        py::arg("log_mel"), py::arg("prior"), py::arg("params") = std::vector<float>{},
        "Per-stream normalisation of log-mel frames, as a Session applies it for a model made with\n"
        "``stream_prior``: each band minus the running mean of the stream's speech frames plus ``prior``.\n"
        "``params``: [prior_frames, memory_frames, gate_db, floor_db] (defaults 30, 300, 20, -75).");

    py::class_<engine::Session>(m, "Session", "One request's streaming engine state; not thread-safe.")
        .def(py::init([](std::shared_ptr<engine::Model> model, int sample_rate, int smoothing, bool nonverbal, std::uint64_t seed,
                         float closure, int smoothing_ahead) {
                 if (!engine::supported_rate(sample_rate)) throw py::value_error("unsupported sample rate");
                 if (smoothing < 0 || smoothing > 8) throw py::value_error("smoothing must be 0..8");
                 if (smoothing_ahead < 0 || smoothing_ahead > 8) throw py::value_error("smoothing_ahead must be 0..8");
                 engine::FaceOptions options;
                 options.smoothing = smoothing;
                 options.smoothing_ahead = smoothing_ahead;
                 options.nonverbal = nonverbal;
                 options.seed = seed;
                 if (!(closure >= 0.0f && closure <= 1.0f)) throw py::value_error("closure must be in [0, 1]");
                 options.closure = closure;
                 return std::make_unique<engine::Session>(std::move(model), sample_rate, options);
             }),
             py::arg("model"), py::arg("sample_rate"), py::arg("smoothing") = 2, py::arg("nonverbal") = true,
             py::arg("seed") = 0x5eed, py::arg("closure") = 0.95f, py::arg("smoothing_ahead") = 2)
        .def_property_readonly("sample_rate", &engine::Session::sample_rate, "Input rate in Hz.")
        .def_property_readonly("lookahead_ms", &engine::Session::lookahead_ms,
                               "Audio after a frame's end needed before it is emitted, in milliseconds.")
        .def_property_readonly("frames_emitted", &engine::Session::frames_emitted, "Frames returned so far.")
        .def_property_readonly("samples_pushed", &engine::Session::samples_pushed, "Samples received so far.")
        .def_property_readonly("finished", &engine::Session::finished, "Whether flush() was called.")
        .def(
            "push",
            [](engine::Session& s, const py::array_t<std::int16_t, py::array::c_style | py::array::forcecast>& pcm) {
                if (pcm.ndim() != 1) throw py::value_error("pcm must be one-dimensional");
                if (s.finished()) throw py::value_error("the session was flushed");
                std::vector<float> out;
                std::size_t frames;
                {
                    py::gil_scoped_release release;
                    frames = s.push(pcm.data(), static_cast<std::size_t>(pcm.size()), out);
                }
                return frames_array(out, frames);
            },
            py::arg("pcm"), "Add int16 samples; returns the frames that became ready (frames x N_CHANNELS, float32).")
        .def(
            "push_float",
            [](engine::Session& s, const F32Array& samples) {
                if (samples.ndim() != 1) throw py::value_error("samples must be one-dimensional");
                if (s.finished()) throw py::value_error("the session was flushed");
                std::vector<float> out;
                std::size_t frames;
                {
                    py::gil_scoped_release release;
                    frames = s.push_float(samples.data(), static_cast<std::size_t>(samples.size()), out);
                }
                return frames_array(out, frames);
            },
            py::arg("samples"), "Add float samples in [-1, 1]; returns the frames that became ready.")
        .def(
            "flush",
            [](engine::Session& s) {
                std::vector<float> out;
                std::size_t frames;
                {
                    py::gil_scoped_release release;
                    frames = s.flush(out);
                }
                return frames_array(out, frames);
            },
            "End of the request: the remaining frames (ceil(duration / 40 ms) in all). Later calls return none.");
}
