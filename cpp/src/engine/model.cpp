// The viseme classifier: per-frame projection, splice over context offsets, dense layers, softmax.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "avatarkit/engine.hpp"

namespace avatarkit::engine {

namespace {

void check_layer(const Layer& l, const char* what) {
    if (l.in <= 0 || l.out <= 0 || l.weight.size() != static_cast<std::size_t>(l.in) * static_cast<std::size_t>(l.out) ||
        l.bias.size() != static_cast<std::size_t>(l.out))
        throw std::invalid_argument(std::string("model: bad shape of ") + what);
    for (float v : l.weight)
        if (!std::isfinite(v)) throw std::invalid_argument(std::string("model: non-finite weight in ") + what);
    for (float v : l.bias)
        if (!std::isfinite(v)) throw std::invalid_argument(std::string("model: non-finite bias in ") + what);
}

// Each row's span of non-zero weights, packed back to back (Layer::first, last, at, packed); the
// dense matrix is then released (only `packed` is read), so a model holds each weight once.
void find_spans(Layer& l) {
    const std::size_t in = static_cast<std::size_t>(l.in), out = static_cast<std::size_t>(l.out);
    l.first.assign(in, 0);
    l.last.assign(in, 0);
    l.at.assign(in, 0);
    l.packed.clear();
    for (std::size_t i = 0; i < in; ++i) {
        const float* w = l.weight.data() + i * out;
        std::size_t a = 0, b = out;
        while (a < out && w[a] == 0.0f) ++a;
        while (b > a && w[b - 1] == 0.0f) --b;
        l.first[i] = static_cast<std::int32_t>(a);
        l.last[i] = static_cast<std::int32_t>(b);
        l.at[i] = l.packed.size();
        l.packed.insert(l.packed.end(), w + a, w + b);
    }
    l.packed.shrink_to_fit();
    std::vector<float>().swap(l.weight);
}

// y = act(x W + b), W input-major: the inner loop runs over outputs, so it vectorizes.
void dense(const Layer& l, const float* x, float* y) {
    std::copy(l.bias.begin(), l.bias.end(), y);
    for (std::size_t i = 0; i < static_cast<std::size_t>(l.in); ++i) {
        const float xi = x[i];
        if (xi == 0.0f) continue;  // ReLU outputs are often exactly zero
        const float* w = l.packed.data() + l.at[i];
        float* yo = y + l.first[i];
        const std::size_t n = static_cast<std::size_t>(l.last[i] - l.first[i]);
        for (std::size_t o = 0; o < n; ++o) yo[o] += xi * w[o];
    }
    if (l.relu)
        for (std::size_t o = 0; o < static_cast<std::size_t>(l.out); ++o) y[o] = std::max(y[o], 0.0f);
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// The GRU's update of `h` from input x (struct Recurrent); gx and gh hold 3 * size values each.
void gru_step(const Recurrent& g, const float* x, float* h, float* gx, float* gh) {
    dense(g.input, x, gx);
    dense(g.state, h, gh);  // reads the whole old state before any unit changes
    std::size_t at = 0;
    for (int units : g.blocks) {
        const auto b = static_cast<std::size_t>(units);
        const float* xs = gx + 3 * at;
        const float* hs = gh + 3 * at;
        for (std::size_t i = 0; i < b; ++i) {
            const float r = sigmoid(xs[i] + hs[i]);
            const float u = sigmoid(xs[b + i] + hs[b + i]);
            const float n = std::tanh(xs[2 * b + i] + r * hs[2 * b + i]);
            h[at + i] = (1.0f - u) * n + u * h[at + i];
        }
        at += b;
    }
}

}  // namespace

Model::Model(ModelSpec spec) : spec_(std::move(spec)) {
    const auto inputs = static_cast<std::size_t>(spec_.inputs());
    if (spec_.mean.size() != inputs || spec_.inv_std.size() != inputs)
        throw std::invalid_argument("model: mean/inv_std must have one value per input (kMels, plus the acoustic model's senones)");
    for (float v : spec_.mean)
        if (!std::isfinite(v)) throw std::invalid_argument("model: non-finite mean");
    for (float v : spec_.inv_std)
        if (!std::isfinite(v)) throw std::invalid_argument("model: non-finite inv_std");
    spec_.stream.validate();
    if (spec_.projection.in != spec_.inputs()) throw std::invalid_argument("model: the projection must take one weight row per input");
    check_layer(spec_.projection, "projection");
    if (spec_.offsets.empty() || !std::is_sorted(spec_.offsets.begin(), spec_.offsets.end()) ||
        std::adjacent_find(spec_.offsets.begin(), spec_.offsets.end()) != spec_.offsets.end())
        throw std::invalid_argument("model: offsets must be strictly ascending");
    if (spec_.offsets.front() > 0 || spec_.offsets.back() < 0 || spec_.offsets.front() < -(Session::kRing / 2) ||
        spec_.offsets.back() > Session::kRing / 4)
        throw std::invalid_argument("model: offsets out of range");
    if (spec_.layers.empty()) throw std::invalid_argument("model: no layers");
    int width = spec_.projection.out * static_cast<int>(spec_.offsets.size());
    Recurrent& g = spec_.recurrent;
    if (g.input.in != 0 || g.input.out != 0 || g.state.in != 0 || g.state.out != 0 || !g.blocks.empty()) {
        check_layer(g.input, "recurrent input");
        check_layer(g.state, "recurrent state");
        const int size = g.state.in;
        long long units = 0;
        for (int b : g.blocks) {
            if (b <= 0) throw std::invalid_argument("model: recurrent blocks must have units");
            units += b;
        }
        if (g.input.in != width || g.input.out != 3 * size || g.state.out != 3 * size || units != size)
            throw std::invalid_argument("model: the recurrent layer's shapes do not chain (splice -> 3 x state, blocks summing to the state)");
        if (g.initial.empty()) g.initial.assign(static_cast<std::size_t>(size), 0.0f);
        if (g.initial.size() != static_cast<std::size_t>(size)) throw std::invalid_argument("model: the recurrent initial state must have one value per unit");
        for (float v : g.initial)
            if (!std::isfinite(v) || v < -1.0f || v > 1.0f) throw std::invalid_argument("model: the recurrent initial state must be finite, in [-1, 1]");
        g.input.relu = g.state.relu = false;
        find_spans(g.input);
        find_spans(g.state);
        width = size;
    }
    for (std::size_t i = 0; i < spec_.layers.size(); ++i) {
        check_layer(spec_.layers[i], "layer");
        if (spec_.layers[i].in != width) throw std::invalid_argument("model: layer widths do not chain");
        width = spec_.layers[i].out;
    }
    if (spec_.heads < 1 || spec_.heads > kSubframes) throw std::invalid_argument("model: heads must be 1..kSubframes");
    if (width != kVisemes * spec_.heads) throw std::invalid_argument("model: the last layer must give kVisemes outputs per head");
    spec_.layers.back().relu = false;
    spec_.projection.relu = true;
    find_spans(spec_.projection);
    for (Layer& l : spec_.layers) find_spans(l);
}

void Model::project(const float* features, float* out) const {
    thread_local std::vector<float> z;
    z.resize(spec_.mean.size());
    for (std::size_t m = 0; m < z.size(); ++m) z[m] = (features[m] - spec_.mean[m]) * spec_.inv_std[m];
    dense(spec_.projection, z.data(), out);
}

void Model::classify(const float* spliced, float* probabilities, std::vector<float>& scratch, float* state) const {
    std::size_t widest = 0;
    for (const Layer& l : spec_.layers) widest = std::max(widest, static_cast<std::size_t>(l.out));
    const auto gates = static_cast<std::size_t>(3 * recurrent_size());
    scratch.resize(2 * widest + 2 * gates);
    const float* x = spliced;
    if (gates) {
        if (!state) throw std::logic_error("model: a recurrent model needs its state");
        gru_step(spec_.recurrent, spliced, state, scratch.data() + 2 * widest, scratch.data() + 2 * widest + gates);
        x = state;
    }
    float* bufs[2] = {scratch.data(), scratch.data() + widest};
    for (std::size_t i = 0; i < spec_.layers.size(); ++i) {
        float* y = bufs[i % 2];
        dense(spec_.layers[i], x, y);
        x = y;
    }
    for (int h = 0; h < spec_.heads; ++h, x += kVisemes, probabilities += kVisemes) {
        const float top = *std::max_element(x, x + kVisemes);
        float sum = 0.0f;
        for (int v = 0; v < kVisemes; ++v) {
            probabilities[v] = std::exp(x[v] - top);
            sum += probabilities[v];
        }
        for (int v = 0; v < kVisemes; ++v) probabilities[v] /= sum;
    }
}

std::size_t Model::parameter_count() const {
    // The weights in the non-zero spans (a merged ensemble's zero blocks are not parameters).
    std::size_t n = spec_.projection.packed.size() + spec_.projection.bias.size();
    for (const Layer& l : spec_.layers) n += l.packed.size() + l.bias.size();
    for (const Layer* l : {&spec_.recurrent.input, &spec_.recurrent.state}) n += l->packed.size() + l->bias.size();
    return n;
}

}  // namespace avatarkit::engine
