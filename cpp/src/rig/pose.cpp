#include "avatarkit/pose.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace avatarkit::rig {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

Mat3 mul3(const Mat3& a, const Mat3& b) {
    Mat3 out{};
    for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) {
            out[3 * r + c] = a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c];
        }
    }
    return out;
}

void mul4(const double* a, const double* b, double* out) {
    for (int r = 0; r < 4; ++r) {
        for (int c = 0; c < 4; ++c) {
            out[4 * r + c] =
                a[4 * r] * b[c] + a[4 * r + 1] * b[4 + c] + a[4 * r + 2] * b[8 + c] + a[4 * r + 3] * b[12 + c];
        }
    }
}

// The rotation of the quaternion (x, y, z, w), normalized (a zero quaternion gives the identity).
Mat3 quat_matrix(double x, double y, double z, double w) {
    double n = std::sqrt(x * x + y * y + z * z + w * w);
    if (n == 0.0) n = 1.0;
    x /= n, y /= n, z /= n, w /= n;
    return {1 - 2 * (y * y + z * z), 2 * (x * y - z * w),     2 * (x * z + y * w),
            2 * (x * y + z * w),     1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w),     2 * (y * z + x * w),     1 - 2 * (x * x + y * y)};
}

bool finite(double v) { return std::isfinite(v); }

template <typename Array>
bool all_finite(const Array& a) {
    return std::all_of(a.begin(), a.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

Poser::Poser(std::size_t channel_count, std::vector<NodeTransform> nodes, const Mat4& turn,
             const std::vector<Mat4>& rest_world)
    : channel_count_(channel_count), nodes_(std::move(nodes)), turn_(turn) {
    const std::size_t n = nodes_.size();
    if (rest_world.size() != n) {
        throw DeformError("rest_world has " + std::to_string(rest_world.size()) + " matrices for " +
                          std::to_string(n) + " nodes");
    }
    // Parents before children: a walk down from the roots must reach every node exactly once.
    std::vector<std::vector<std::size_t>> children(n);
    std::vector<std::size_t> stack;
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t p = nodes_[i].parent;
        if (p == -1) {
            stack.push_back(i);
        } else if (p < 0 || static_cast<std::uint64_t>(p) >= n) {
            throw DeformError("node " + std::to_string(i) + " has parent " + std::to_string(p) + " of " +
                              std::to_string(n) + " nodes");
        } else {
            children[static_cast<std::size_t>(p)].push_back(i);
        }
    }
    order_.reserve(n);
    while (!stack.empty()) {
        const std::size_t i = stack.back();
        stack.pop_back();
        order_.push_back(i);
        for (std::size_t c : children[i]) stack.push_back(c);
    }
    if (order_.size() != n) throw DeformError("the node hierarchy has a cycle: it must be a forest");
    still_rule_.assign(n, -1);
    timed_rule_.assign(n, -1);
    world_.resize(16 * n);
    for (std::size_t i = 0; i < n; ++i) std::memcpy(&world_[16 * i], rest_world[i].data(), 16 * sizeof(double));
    values_.assign(channel_count_, 0.0f);
}

std::size_t Poser::add_rule(std::size_t node, const Mat3& pre, const Mat3& post, std::vector<Term> terms, bool timed) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (node >= nodes_.size()) {
        throw DeformError("rule for node " + std::to_string(node) + " of " + std::to_string(nodes_.size()));
    }
    if (!all_finite(pre) || !all_finite(post)) throw DeformError("a rule's pre and post matrices must be finite");
    Rule rule{pre, post, {}, {}};
    for (const Term& t : terms) {
        if (!all_finite(t.axis) || !finite(t.constant) || !finite(t.amplitude) || !finite(t.period)) {
            throw DeformError("a term's axis, constant, amplitude and period must be finite");
        }
        if (t.amplitude != 0.0 && t.period == 0.0) throw DeformError("a term with an amplitude needs a period");
        for (const auto* list : {&t.channels, &t.clamped}) {
            for (const ChannelTerm& c : *list) {
                if (c.column < 0 || static_cast<std::uint64_t>(c.column) >= channel_count_) {
                    throw DeformError("channel column " + std::to_string(c.column) + " of " +
                                      std::to_string(channel_count_));
                }
                if (!finite(c.coefficient)) throw DeformError("a term's coefficients must be finite");
            }
        }
        // Normalized without overflow: divided by its largest component first.
        const double big = std::max({std::fabs(t.axis[0]), std::fabs(t.axis[1]), std::fabs(t.axis[2])});
        std::array<double, 3> unit{0.0, 0.0, 0.0};
        if (big > 0.0) {
            const double x = t.axis[0] / big, y = t.axis[1] / big, z = t.axis[2] / big;
            const double len = std::sqrt(x * x + y * y + z * z);
            unit = {x / len, y / len, z / len};
        }
        rule.unit_axes.push_back(unit);
    }
    rule.terms = std::move(terms);
    rules_.push_back(std::move(rule));
    const auto index = static_cast<std::int64_t>(rules_.size() - 1);
    timed_rule_[node] = index;
    if (!timed) still_rule_[node] = index;
    return rules_.size() - 1;
}

std::size_t Poser::rule_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return rules_.size();
}

void Poser::set_translation(std::int64_t carrier, std::array<std::int64_t, 3> columns) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (carrier < -1 || (carrier >= 0 && static_cast<std::uint64_t>(carrier) >= nodes_.size())) {
        throw DeformError("translation carrier " + std::to_string(carrier) + " of " + std::to_string(nodes_.size()) +
                          " nodes");
    }
    for (std::int64_t c : columns) {
        if (c < -1 || (c >= 0 && static_cast<std::uint64_t>(c) >= channel_count_)) {
            throw DeformError("translation column " + std::to_string(c) + " of " + std::to_string(channel_count_));
        }
    }
    carrier_ = carrier;
    translation_columns_ = columns;
}

void Poser::set_zeroed(const std::vector<std::int64_t>& columns) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::size_t> checked;
    for (std::int64_t c : columns) {
        if (c < 0 || static_cast<std::uint64_t>(c) >= channel_count_) {
            throw DeformError("zeroed column " + std::to_string(c) + " of " + std::to_string(channel_count_));
        }
        checked.push_back(static_cast<std::size_t>(c));
    }
    zeroed_ = std::move(checked);
}

std::size_t Poser::add_skin(std::vector<std::int64_t> joints, std::vector<Mat4> inverse_bind) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (joints.size() != inverse_bind.size()) {
        throw DeformError("a skin needs one inverse bind matrix per joint (" + std::to_string(joints.size()) +
                          " joints, " + std::to_string(inverse_bind.size()) + " matrices)");
    }
    Skin skin;
    for (std::int64_t j : joints) {
        if (j < 0 || static_cast<std::uint64_t>(j) >= nodes_.size()) {
            throw DeformError("skin joint " + std::to_string(j) + " of " + std::to_string(nodes_.size()) + " nodes");
        }
        skin.joints.push_back(static_cast<std::size_t>(j));
    }
    skin.inverse_bind = std::move(inverse_bind);
    skin.matrices.assign(16 * skin.joints.size(), 0.0f);
    skins_.push_back(std::move(skin));
    return skins_.size() - 1;
}

std::size_t Poser::add_primitive(std::shared_ptr<MorphMesh> morph, std::vector<std::int64_t> target_columns,
                                 const float* positions, const float* normals, std::size_t vertex_count,
                                 std::int64_t skin, const std::uint16_t* joints, const float* weights) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (vertex_count == 0) throw DeformError("a primitive needs at least one vertex");
    if (vertex_count > (std::size_t{1} << 31)) throw DeformError("too many vertices");
    auto prim = std::make_unique<Prim>();
    if (morph) {
        if (morph->vertex_count() != vertex_count) {
            throw DeformError("the morph mesh has " + std::to_string(morph->vertex_count()) + " vertices, the primitive " +
                              std::to_string(vertex_count));
        }
        if (target_columns.size() != morph->target_count()) {
            throw DeformError("got " + std::to_string(target_columns.size()) + " target columns for " +
                              std::to_string(morph->target_count()) + " targets");
        }
    } else if (!target_columns.empty()) {
        throw DeformError("target columns without a morph mesh");
    }
    for (std::int64_t c : target_columns) {
        if (c < -1 || (c >= 0 && static_cast<std::uint64_t>(c) >= channel_count_)) {
            throw DeformError("target column " + std::to_string(c) + " of " + std::to_string(channel_count_));
        }
    }
    if (skin < -1 || (skin >= 0 && static_cast<std::uint64_t>(skin) >= skins_.size())) {
        throw DeformError("skin " + std::to_string(skin) + " of " + std::to_string(skins_.size()));
    }
    const std::size_t n3 = 3 * vertex_count;
    if (skin >= 0) {
        if (joints == nullptr || weights == nullptr) throw DeformError("a skinned primitive needs joints and weights");
        const std::size_t joint_count = skins_[static_cast<std::size_t>(skin)].joints.size();
        if (!skin_joints_in_range(joints, weights, vertex_count, joint_count)) {
            throw DeformError("a vertex uses a joint beyond the skin's " + std::to_string(joint_count));
        }
        prim->joints.assign(joints, joints + 4 * vertex_count);
        prim->joint_weights.assign(weights, weights + 4 * vertex_count);
        if (morph) {
            prim->morphed_positions.assign(positions, positions + n3);
            prim->morphed_normals.assign(normals, normals + n3);
        } else {
            prim->base_positions.assign(positions, positions + n3);
            prim->base_normals.assign(normals, normals + n3);
        }
    }
    prim->vertex_count = vertex_count;
    prim->skin = skin;
    prim->weights.assign(target_columns.size(), 0.0f);
    prim->target_columns = std::move(target_columns);
    prim->out_positions.assign(positions, positions + n3);
    prim->out_normals.assign(normals, normals + n3);
    if (morph) morph->freeze();
    prim->morph = std::move(morph);
    prims_.push_back(std::move(prim));
    return prims_.size() - 1;
}

const float* Poser::positions(std::size_t prim) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return prims_.at(prim)->out_positions.data();
}

const float* Poser::normals(std::size_t prim) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return prims_.at(prim)->out_normals.data();
}

std::size_t Poser::vertex_count(std::size_t prim) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return prims_.at(prim)->vertex_count;
}

Mat3 Poser::evaluate(const Rule& rule, const float* values, std::optional<double> time) const {
    Mat3 m = rule.pre;
    for (std::size_t k = 0; k < rule.terms.size(); ++k) {
        const Term& t = rule.terms[k];
        const auto& u = rule.unit_axes[k];
        if (u[0] == 0.0 && u[1] == 0.0 && u[2] == 0.0) continue;
        double angle = t.constant;
        for (const ChannelTerm& c : t.channels) angle += c.coefficient * static_cast<double>(values[static_cast<std::size_t>(c.column)]);
        for (const ChannelTerm& c : t.clamped) {
            const double v = std::min(1.0, std::max(0.0, static_cast<double>(values[static_cast<std::size_t>(c.column)])));
            angle += c.coefficient * v;
        }
        if (time && t.amplitude != 0.0) angle += t.amplitude * std::sin(kTwoPi * *time / t.period);
        const double s = std::sin(angle / 2), c = std::cos(angle / 2);
        m = mul3(m, quat_matrix(u[0] * s, u[1] * s, u[2] * s, c));
    }
    return mul3(m, rule.post);
}

void Poser::pose(const float* values, std::size_t value_count, std::optional<double> time) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (value_count != channel_count_) {
        throw DeformError("got " + std::to_string(value_count) + " channel values for " +
                          std::to_string(channel_count_) + " channels");
    }
    std::copy(values, values + value_count, values_.begin());
    for (std::size_t c : zeroed_) values_[c] = 0.0f;
    const float* v = values_.data();

    double shift[3] = {0.0, 0.0, 0.0};
    for (int k = 0; k < 3; ++k) {
        if (translation_columns_[static_cast<std::size_t>(k)] >= 0) {
            shift[k] = static_cast<double>(v[static_cast<std::size_t>(translation_columns_[static_cast<std::size_t>(k)])]);
        }
    }
    const std::vector<std::int64_t>& rule_of = time ? timed_rule_ : still_rule_;
    Mat4 local;
    for (std::size_t i : order_) {
        const NodeTransform& node = nodes_[i];
        const std::int64_t r = rule_of[i];
        if (r < 0) {
            local = node.matrix;
        } else {
            const Mat3 e = evaluate(rules_[static_cast<std::size_t>(r)], v, time);
            if (node.has_trs) {
                // T * R * E * S.
                const Mat3 re = mul3(quat_matrix(node.rotation[0], node.rotation[1], node.rotation[2], node.rotation[3]), e);
                for (int row = 0; row < 3; ++row) {
                    for (int col = 0; col < 3; ++col) {
                        local[static_cast<std::size_t>(4 * row + col)] =
                            re[static_cast<std::size_t>(3 * row + col)] * node.scale[static_cast<std::size_t>(col)];
                    }
                    local[static_cast<std::size_t>(4 * row + 3)] = node.translation[static_cast<std::size_t>(row)];
                }
                local[12] = local[13] = local[14] = 0.0;
                local[15] = 1.0;
            } else {
                // M * E (E has no translation).
                const Mat4& mm = node.matrix;
                for (std::size_t row = 0; row < 4; ++row) {
                    for (std::size_t col = 0; col < 3; ++col) {
                        local[4 * row + col] =
                            mm[4 * row] * e[col] + mm[4 * row + 1] * e[3 + col] + mm[4 * row + 2] * e[6 + col];
                    }
                    local[4 * row + 3] = mm[4 * row + 3];
                }
            }
        }
        const double* parent = node.parent < 0 ? turn_.data() : &world_[16 * static_cast<std::size_t>(node.parent)];
        double* out = &world_[16 * i];
        mul4(parent, local.data(), out);
        if (static_cast<std::int64_t>(i) == carrier_) {
            out[3] += shift[0];
            out[7] += shift[1];
            out[11] += shift[2];
        }
    }

    for (Skin& skin : skins_) {
        double m[16];
        for (std::size_t j = 0; j < skin.joints.size(); ++j) {
            mul4(&world_[16 * skin.joints[j]], skin.inverse_bind[j].data(), m);
            float* o = &skin.matrices[16 * j];
            for (int r = 0; r < 4; ++r) {
                for (int c = 0; c < 4; ++c) o[4 * c + r] = static_cast<float>(m[4 * r + c]);  // column-major
            }
        }
    }

    for (auto& owned : prims_) {
        Prim& p = *owned;
        const float* src_p = p.base_positions.data();
        const float* src_n = p.base_normals.data();
        if (p.morph) {
            for (std::size_t k = 0; k < p.target_columns.size(); ++k) {
                const std::int64_t c = p.target_columns[k];
                p.weights[k] = c >= 0 ? v[static_cast<std::size_t>(c)] : 0.0f;
            }
            float* dst_p = p.skin >= 0 ? p.morphed_positions.data() : p.out_positions.data();
            float* dst_n = p.skin >= 0 ? p.morphed_normals.data() : p.out_normals.data();
            p.morph->apply(p.weights.data(), p.weights.size(), dst_p, p.morph->has_normals() ? dst_n : nullptr);
            src_p = dst_p;
            src_n = dst_n;
        }
        if (p.skin >= 0) {
            const Skin& skin = skins_[static_cast<std::size_t>(p.skin)];
            skin_unchecked(src_p, src_n, p.vertex_count, p.joints.data(), p.joint_weights.data(), skin.matrices.data(),
                           p.out_positions.data(), p.out_normals.data());
        }
    }
}

}  // namespace avatarkit::rig
