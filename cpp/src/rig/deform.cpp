#include "avatarkit/deform.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace avatarkit::rig {

MorphMesh::MorphMesh(const float* positions, const float* normals, std::size_t vertex_count)
    : vertex_count_(vertex_count), base_positions_(positions, positions + 3 * vertex_count) {
    if (vertex_count == 0) throw DeformError("a mesh needs at least one vertex");
    if (vertex_count > (std::size_t{1} << 31)) throw DeformError("too many vertices");
    if (normals != nullptr) base_normals_.assign(normals, normals + 3 * vertex_count);
}

std::size_t MorphMesh::add_sparse_target(const std::uint32_t* indices, const float* position_deltas,
                                         const float* normal_deltas, std::size_t count) {
    if (frozen_) throw DeformError("this mesh is part of a Poser: no targets can be added to it");
    Target t;
    t.indices.assign(indices, indices + count);
    for (std::size_t i = 0; i < count; ++i) {
        if (t.indices[i] >= vertex_count_) {
            throw DeformError("target vertex index " + std::to_string(t.indices[i]) + " is out of range (" +
                              std::to_string(vertex_count_) + " vertices)");
        }
        if (i > 0 && t.indices[i] <= t.indices[i - 1]) throw DeformError("target vertex indices must increase");
    }
    t.has_normal_deltas = normal_deltas != nullptr && has_normals();
    const std::size_t stride = t.has_normal_deltas ? 6 : 3;
    t.deltas.resize(stride * count);
    for (std::size_t i = 0; i < count; ++i) {
        std::memcpy(&t.deltas[stride * i], position_deltas + 3 * i, 3 * sizeof(float));
        if (t.has_normal_deltas) std::memcpy(&t.deltas[stride * i + 3], normal_deltas + 3 * i, 3 * sizeof(float));
    }
    targets_.push_back(std::move(t));
    return targets_.size() - 1;
}

std::size_t MorphMesh::add_dense_target(const float* position_deltas, const float* normal_deltas, float epsilon) {
    if (frozen_) throw DeformError("this mesh is part of a Poser: no targets can be added to it");
    std::vector<std::uint32_t> moved;
    for (std::size_t v = 0; v < vertex_count_; ++v) {
        bool moves = false;
        for (int c = 0; c < 3; ++c) {
            moves = moves || std::fabs(position_deltas[3 * v + c]) > epsilon;
            if (normal_deltas != nullptr) moves = moves || std::fabs(normal_deltas[3 * v + c]) > epsilon;
        }
        if (moves) moved.push_back(static_cast<std::uint32_t>(v));
    }
    // Dense when most vertices move: the contiguous fused loop beats the scatter there.
    if (moved.size() * 2 > vertex_count_) {
        Target t;
        t.dense = true;
        t.deltas.assign(position_deltas, position_deltas + 3 * vertex_count_);
        if (normal_deltas != nullptr && has_normals()) {
            t.has_normal_deltas = true;
            t.normal_deltas.assign(normal_deltas, normal_deltas + 3 * vertex_count_);
        }
        targets_.push_back(std::move(t));
        return targets_.size() - 1;
    }
    std::vector<float> dp(3 * moved.size()), dn(normal_deltas != nullptr ? 3 * moved.size() : 0);
    for (std::size_t i = 0; i < moved.size(); ++i) {
        std::memcpy(&dp[3 * i], position_deltas + 3 * moved[i], 3 * sizeof(float));
        if (normal_deltas != nullptr) std::memcpy(&dn[3 * i], normal_deltas + 3 * moved[i], 3 * sizeof(float));
    }
    return add_sparse_target(moved.data(), dp.data(), normal_deltas != nullptr ? dn.data() : nullptr, moved.size());
}

std::size_t MorphMesh::target_size(std::size_t k) const {
    const Target& t = targets_.at(k);
    return t.dense ? vertex_count_ : t.indices.size();
}

std::size_t MorphMesh::bytes_touched(const float* weights, std::size_t weight_count) const {
    if (weight_count != targets_.size()) throw DeformError("one weight per target");
    const std::size_t attrs = has_normals() ? 2 : 1;
    std::size_t bytes = 2 * attrs * 12 * vertex_count_;  // read the base, write the output
    for (std::size_t k = 0; k < targets_.size(); ++k) {
        if (weights[k] == 0.0f) continue;
        const Target& t = targets_[k];
        const std::size_t n = t.dense ? vertex_count_ : t.indices.size();
        const std::size_t nattr = t.has_normal_deltas ? 2 : 1;
        bytes += n * 12 * nattr + (t.dense ? 0 : n * 4);
        if (!t.dense) bytes += n * 12 * attrs;  // the scattered read-modify-write of the output
    }
    return bytes;
}

namespace {

// out[i] += sum of up to four weighted dense delta arrays, one pass over out.
void fused_add(float* out, std::size_t n3, const float* const* d, const float* w, std::size_t count) {
    switch (count) {
        case 4: {
            const float *a = d[0], *b = d[1], *c = d[2], *e = d[3];
            const float wa = w[0], wb = w[1], wc = w[2], we = w[3];
            for (std::size_t i = 0; i < n3; ++i) out[i] += wa * a[i] + wb * b[i] + wc * c[i] + we * e[i];
            break;
        }
        case 3: {
            const float *a = d[0], *b = d[1], *c = d[2];
            const float wa = w[0], wb = w[1], wc = w[2];
            for (std::size_t i = 0; i < n3; ++i) out[i] += wa * a[i] + wb * b[i] + wc * c[i];
            break;
        }
        case 2: {
            const float *a = d[0], *b = d[1];
            const float wa = w[0], wb = w[1];
            for (std::size_t i = 0; i < n3; ++i) out[i] += wa * a[i] + wb * b[i];
            break;
        }
        case 1: {
            const float* a = d[0];
            const float wa = w[0];
            for (std::size_t i = 0; i < n3; ++i) out[i] += wa * a[i];
            break;
        }
        default: break;
    }
}

}  // namespace

void MorphMesh::apply(const float* weights, std::size_t weight_count, float* out_positions, float* out_normals) const {
    if (weight_count != targets_.size()) {
        throw DeformError("got " + std::to_string(weight_count) + " weights for " + std::to_string(targets_.size()) +
                          " targets");
    }
    const std::size_t n3 = 3 * vertex_count_;
    std::memcpy(out_positions, base_positions_.data(), n3 * sizeof(float));
    const bool normals = out_normals != nullptr && has_normals();
    if (normals) std::memcpy(out_normals, base_normals_.data(), n3 * sizeof(float));

    const float* dense_pos[4];
    float dense_w[4];
    std::size_t pending = 0, pending_nrm = 0;
    const float* dense_nrm_only[4];
    float dense_nrm_w[4];
    auto flush = [&]() {
        fused_add(out_positions, n3, dense_pos, dense_w, pending);
        if (normals) fused_add(out_normals, n3, dense_nrm_only, dense_nrm_w, pending_nrm);
        pending = pending_nrm = 0;
    };
    for (std::size_t k = 0; k < targets_.size(); ++k) {
        const float w = weights[k];
        if (w == 0.0f || !std::isfinite(w)) continue;  // zero weights cost nothing; NaN never spreads
        const Target& t = targets_[k];
        if (t.dense) {
            dense_pos[pending] = t.deltas.data();
            dense_w[pending] = w;
            ++pending;
            if (normals && t.has_normal_deltas) {
                dense_nrm_only[pending_nrm] = t.normal_deltas.data();
                dense_nrm_w[pending_nrm] = w;
                ++pending_nrm;
            }
            if (pending == 4 || pending_nrm == 4) flush();
            continue;
        }
        const std::size_t n = t.indices.size();
        const std::uint32_t* idx = t.indices.data();
        const float* d = t.deltas.data();
        if (t.has_normal_deltas && normals) {
            // Indices strictly increase, so the entries never alias: load a pair before storing it.
            float* __restrict op = out_positions;
            float* __restrict on = out_normals;
            std::size_t i = 0;
            for (; i + 1 < n; i += 2, d += 12) {
                const std::size_t a = 3 * static_cast<std::size_t>(idx[i]);
                const std::size_t b = 3 * static_cast<std::size_t>(idx[i + 1]);
                const float pa0 = op[a] + w * d[0], pa1 = op[a + 1] + w * d[1], pa2 = op[a + 2] + w * d[2];
                const float na0 = on[a] + w * d[3], na1 = on[a + 1] + w * d[4], na2 = on[a + 2] + w * d[5];
                const float pb0 = op[b] + w * d[6], pb1 = op[b + 1] + w * d[7], pb2 = op[b + 2] + w * d[8];
                const float nb0 = on[b] + w * d[9], nb1 = on[b + 1] + w * d[10], nb2 = on[b + 2] + w * d[11];
                op[a] = pa0, op[a + 1] = pa1, op[a + 2] = pa2;
                on[a] = na0, on[a + 1] = na1, on[a + 2] = na2;
                op[b] = pb0, op[b + 1] = pb1, op[b + 2] = pb2;
                on[b] = nb0, on[b + 1] = nb1, on[b + 2] = nb2;
            }
            if (i < n) {
                const std::size_t a = 3 * static_cast<std::size_t>(idx[i]);
                op[a] += w * d[0], op[a + 1] += w * d[1], op[a + 2] += w * d[2];
                on[a] += w * d[3], on[a + 1] += w * d[4], on[a + 2] += w * d[5];
            }
        } else {
            const std::size_t stride = t.has_normal_deltas ? 6 : 3;
            for (std::size_t i = 0; i < n; ++i, d += stride) {
                float* o = out_positions + 3 * static_cast<std::size_t>(idx[i]);
                o[0] += w * d[0];
                o[1] += w * d[1];
                o[2] += w * d[2];
            }
        }
    }
    flush();
}

bool skin_joints_in_range(const std::uint16_t* joints, const float* weights, std::size_t vertex_count,
                          std::size_t joint_count) {
    for (std::size_t i = 0; i < 4 * vertex_count; ++i) {
        if (joints[i] >= joint_count && weights[i] != 0.0f) return false;
    }
    return true;
}

void skin(const float* positions, const float* normals, std::size_t vertex_count, const std::uint16_t* joints,
          const float* weights, const float* m, std::size_t joint_count, float* out_positions, float* out_normals) {
    for (std::size_t i = 0; i < 4 * vertex_count; ++i) {
        if (joints[i] >= joint_count && weights[i] != 0.0f) {
            throw DeformError("vertex " + std::to_string(i / 4) + " uses joint " + std::to_string(joints[i]) + " of " +
                              std::to_string(joint_count));
        }
    }
    skin_unchecked(positions, normals, vertex_count, joints, weights, m, out_positions, out_normals);
}

void skin_unchecked(const float* positions, const float* normals, std::size_t vertex_count,
                    const std::uint16_t* joints, const float* weights, const float* m, float* out_positions,
                    float* out_normals) {
    for (std::size_t v = 0; v < vertex_count; ++v) {
        // Blend the matrices first (12 useful numbers), then transform once.
        float b[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        float total = 0.0f;
        for (int i = 0; i < 4; ++i) {
            const float w = weights[4 * v + i];
            if (w == 0.0f) continue;
            const float* j = m + 16 * static_cast<std::size_t>(joints[4 * v + i]);
            total += w;
            for (int c = 0; c < 3; ++c) {
                b[c] += w * j[c];          // column 0
                b[3 + c] += w * j[4 + c];  // column 1
                b[6 + c] += w * j[8 + c];  // column 2
                b[9 + c] += w * j[12 + c]; // column 3 (translation)
            }
        }
        const float* p = positions + 3 * v;
        float* o = out_positions + 3 * v;
        if (total == 0.0f) {  // unskinned vertex: keep it where it is
            o[0] = p[0];
            o[1] = p[1];
            o[2] = p[2];
            if (normals != nullptr && out_normals != nullptr) std::memcpy(out_normals + 3 * v, normals + 3 * v, 12);
            continue;
        }
        for (int c = 0; c < 3; ++c) o[c] = b[c] * p[0] + b[3 + c] * p[1] + b[6 + c] * p[2] + b[9 + c];
        if (normals != nullptr && out_normals != nullptr) {
            const float* n = normals + 3 * v;
            float* on = out_normals + 3 * v;
            for (int c = 0; c < 3; ++c) on[c] = b[c] * n[0] + b[3 + c] * n[1] + b[6 + c] * n[2];
        }
    }
}

}  // namespace avatarkit::rig
