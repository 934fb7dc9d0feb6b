// Mesh deformation on the CPU: morph targets applied from weights, then linear blend skinning.
//
// Morph targets are stored sparse (vertex index + position and normal deltas) when they move less
// than half of the vertices, dense otherwise. apply() skips zero weights, scatters sparse targets and
// fuses dense targets four at a time so the output is streamed once per four targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace avatarkit::rig {

class DeformError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

class MorphMesh {
public:
    // positions, normals: vertex_count x 3 floats (normals may be null: the mesh has none).
    MorphMesh(const float* positions, const float* normals, std::size_t vertex_count);

    // A target touching `count` vertices; indices must be < vertex_count and strictly increasing.
    // normal_deltas may be null. Returns the target's index.
    std::size_t add_sparse_target(const std::uint32_t* indices, const float* position_deltas,
                                  const float* normal_deltas, std::size_t count);
    // A target given for every vertex; stored sparse when few vertices move (|delta| > epsilon).
    std::size_t add_dense_target(const float* position_deltas, const float* normal_deltas, float epsilon = 0.0f);

    // out = base + sum_k weights[k] * delta_k; weight_count must equal target_count().
    // out_normals may be null; normals are not renormalized (the shader does it).
    void apply(const float* weights, std::size_t weight_count, float* out_positions, float* out_normals) const;

    // After freeze(), adding a target throws: the mesh is shared with a Poser that relies on its
    // target count (and may read it on another thread while poses run without the GIL).
    void freeze() { frozen_ = true; }
    bool frozen() const { return frozen_; }

    std::size_t vertex_count() const { return vertex_count_; }
    std::size_t target_count() const { return targets_.size(); }
    bool has_normals() const { return !base_normals_.empty(); }
    // Entries (vertices) a target moves: vertex_count for dense targets.
    std::size_t target_size(std::size_t k) const;
    bool target_is_dense(std::size_t k) const { return targets_.at(k).dense; }
    // Bytes apply() reads and writes for these weights (for bandwidth-bound reporting).
    std::size_t bytes_touched(const float* weights, std::size_t weight_count) const;

private:
    struct Target {
        bool dense = false;
        bool has_normal_deltas = false;
        std::vector<std::uint32_t> indices;  // sparse only
        // Sparse: one record per entry, the position delta then (with normals) the normal delta, so
        // one pass reads the index once and streams a single array. Dense: position deltas only.
        std::vector<float> deltas;
        std::vector<float> normal_deltas;  // dense only: 3 per vertex, or empty
    };
    std::size_t vertex_count_;
    bool frozen_ = false;
    std::vector<float> base_positions_;
    std::vector<float> base_normals_;
    std::vector<Target> targets_;
};

// Linear blend skinning: for each vertex, p' = sum_i w_i * M[j_i] * p, n' likewise with the upper 3x3.
// joint_matrices: joint_count column-major 4x4 matrices (already multiplied by the inverse bind
// matrices). joints/weights: 4 per vertex. Throws DeformError when a joint index is out of range.
void skin(const float* positions, const float* normals, std::size_t vertex_count, const std::uint16_t* joints,
          const float* weights, const float* joint_matrices, std::size_t joint_count, float* out_positions,
          float* out_normals);

// Whether every joint index a vertex gives weight to is < joint_count (what skin() checks first).
bool skin_joints_in_range(const std::uint16_t* joints, const float* weights, std::size_t vertex_count,
                          std::size_t joint_count);
// skin() without that check: the caller has made it.
void skin_unchecked(const float* positions, const float* normals, std::size_t vertex_count,
                    const std::uint16_t* joints, const float* weights, const float* joint_matrices,
                    float* out_positions, float* out_normals);

}  // namespace avatarkit::rig
