// A whole frame of a rigged avatar in one call: channel values in, node world matrices, skinning
// matrices and the morphed and skinned vertices of every primitive out.
//
// The setup (done once, from Python) describes the rig:
// - the node forest: each node's parent, its local matrix and, for nodes given as TRS, the
//   translation, rotation and scale, so that a rotation can be put between R and S as glTF does;
// - rules: a node's extra rotation E = pre * R(term 1) * ... * R(term k) * post, put into its local
//   transform (T * R * E * S, or M * E for a matrix node). Each term turns about a fixed axis by
//       angle = constant + sum coefficient * value[column]
//                        + sum coefficient * clamp(value[column], 0, 1)
//                        + amplitude * sin(2 pi t / period)      (the last only when t is given)
//   With pre = Q^T and post = Q (Q a joint's rest orientation) and the avatar frame's axes, a rule
//   turns a joint in the avatar's frame about its own pivot; with pre = post = I and the node's own
//   axes, it is a data-driven drive; with no terms, pre alone is a constant turn (a rest pose).
//   Rules are applied as assignments in the order added: for each node, the last rule added that
//   applies (every rule always, a `timed` rule only when the frame has a time) wins;
// - the node that carries head translation and the three channels that move it (avatar frame);
// - the channel columns that are always zero (the mouth set an avatar does not use);
// - skins (joint nodes, inverse bind matrices) and primitives (a MorphMesh with the channel column
//   of each target, and optionally a skin with JOINTS_0/WEIGHTS_0).
// Everything is checked when it is added; pose() then fails only on a wrong number of values.
// pose() serializes with every other member on an internal mutex, so calls from several threads
// are safe (they take turns). Readers of the outputs on other threads may see a frame half written.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "avatarkit/deform.hpp"

namespace avatarkit::rig {

using Mat3 = std::array<double, 9>;    // row-major
using Mat4 = std::array<double, 16>;   // row-major: m[4 * row + col]

struct ChannelTerm {
    std::int64_t column;  // checked when the rule is added
    double coefficient;
};

struct Term {
    std::array<double, 3> axis{0.0, 0.0, 0.0};  // any length; zero turns nothing
    double constant = 0.0;
    std::vector<ChannelTerm> channels;          // coefficient * value
    std::vector<ChannelTerm> clamped;           // coefficient * clamp(value, 0, 1)
    double amplitude = 0.0;                     // amplitude * sin(2 pi t / period), with a time only
    double period = 0.0;
};

struct NodeTransform {
    std::int64_t parent = -1;  // -1: a root
    Mat4 matrix{};             // the local matrix (used as is when no rule applies)
    bool has_trs = false;      // the node was given as T, R, S (else E goes after the matrix)
    std::array<double, 3> translation{0.0, 0.0, 0.0};
    std::array<double, 4> rotation{0.0, 0.0, 0.0, 1.0};  // x, y, z, w (normalized here)
    std::array<double, 3> scale{1.0, 1.0, 1.0};
};

class Poser {
public:
    // `turn` multiplies every root from the left (the VRM 0.x half turn, or identity);
    // `rest_world` (one matrix per node) is what world() holds until the first pose().
    Poser(std::size_t channel_count, std::vector<NodeTransform> nodes, const Mat4& turn,
          const std::vector<Mat4>& rest_world);

    // Adds a rule for `node` (see above). Returns its index.
    std::size_t add_rule(std::size_t node, const Mat3& pre, const Mat3& post, std::vector<Term> terms, bool timed);
    // The node whose world translation moves by (value[x], value[y], value[z]); -1 for no column.
    void set_translation(std::int64_t carrier, std::array<std::int64_t, 3> columns);
    // Columns forced to zero before anything reads the values.
    void set_zeroed(const std::vector<std::int64_t>& columns);
    // A skin: its joints (node indices) and one inverse bind matrix each (row-major).
    std::size_t add_skin(std::vector<std::int64_t> joints, std::vector<Mat4> inverse_bind);
    // A primitive with `vertex_count` vertices: positions and normals (3 floats each) are its rest
    // vertices (the outputs start as them). `morph` may be null (then target_columns is empty);
    // target_columns has one channel column per target, -1 for none. The morph is frozen: no
    // targets can be added to it from then on. skin = -1: not skinned; else joints and weights
    // hold 4 per vertex.
    std::size_t add_primitive(std::shared_ptr<MorphMesh> morph, std::vector<std::int64_t> target_columns,
                              const float* positions, const float* normals, std::size_t vertex_count,
                              std::int64_t skin, const std::uint16_t* joints, const float* weights);

    // Poses one frame: values holds channel_count() floats; time is the clock (body life) or none.
    void pose(const float* values, std::size_t value_count, std::optional<double> time);

    std::size_t channel_count() const { return channel_count_; }
    std::size_t node_count() const { return nodes_.size(); }
    std::size_t primitive_count() const { return prims_.size(); }
    std::size_t rule_count() const;
    // The outputs, at stable addresses for the Poser's lifetime (pose() overwrites them in place).
    const double* world() const { return world_.data(); }          // node_count x 16, row-major
    const float* positions(std::size_t prim) const;                // vertex_count x 3
    const float* normals(std::size_t prim) const;                  // vertex_count x 3
    std::size_t vertex_count(std::size_t prim) const;

private:
    struct Rule {
        Mat3 pre, post;
        std::vector<Term> terms;
        std::vector<std::array<double, 3>> unit_axes;  // normalized; zero for a zero axis
    };
    struct Skin {
        std::vector<std::size_t> joints;
        std::vector<Mat4> inverse_bind;
        std::vector<float> matrices;  // per joint: world * inverse bind, column-major (GL order)
    };
    struct Prim {
        std::shared_ptr<const MorphMesh> morph;
        std::vector<std::int64_t> target_columns;
        std::vector<float> weights;  // per target, this frame
        std::size_t vertex_count = 0;
        std::int64_t skin = -1;
        std::vector<std::uint16_t> joints;
        std::vector<float> joint_weights;
        std::vector<float> base_positions, base_normals;  // skinned without a morph: what is skinned
        std::vector<float> morphed_positions, morphed_normals;  // skinned with a morph: scratch
        std::vector<float> out_positions, out_normals;
    };

    Mat3 evaluate(const Rule& rule, const float* values, std::optional<double> time) const;

    mutable std::mutex mutex_;
    std::size_t channel_count_;
    std::vector<NodeTransform> nodes_;
    std::vector<std::size_t> order_;  // parents before children
    Mat4 turn_;
    std::vector<Rule> rules_;
    std::vector<std::int64_t> still_rule_, timed_rule_;  // per node: the rule that applies, or -1
    std::int64_t carrier_ = -1;
    std::array<std::int64_t, 3> translation_columns_{-1, -1, -1};
    std::vector<std::size_t> zeroed_;
    std::vector<Skin> skins_;
    std::vector<std::unique_ptr<Prim>> prims_;
    std::vector<float> values_;  // this frame's values, zeroed columns applied
    std::vector<double> world_;  // node_count x 16
};

}  // namespace avatarkit::rig
