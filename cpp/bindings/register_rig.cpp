#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "avatarkit/deform.hpp"
#include "avatarkit/pose.hpp"

namespace py = pybind11;
using namespace avatarkit;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

void check_rows(const py::array& a, py::ssize_t rows, py::ssize_t cols, const char* name) {
    if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols) {
        throw rig::DeformError(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                               std::to_string(cols) + ")");
    }
}

template <std::size_t N>
std::array<double, N * N> square(const Array<double>& a, const char* name) {
    if (a.ndim() != 2 || a.shape(0) != static_cast<py::ssize_t>(N) || a.shape(1) != static_cast<py::ssize_t>(N)) {
        throw rig::DeformError(std::string(name) + " must be a " + std::to_string(N) + "x" + std::to_string(N) +
                               " matrix");
    }
    std::array<double, N * N> out{};
    std::memcpy(out.data(), a.data(), sizeof(out));
    return out;
}

// (n, 4, 4) float64 matrices, row-major.
std::vector<rig::Mat4> matrices(const Array<double>& a, py::ssize_t n, const char* name) {
    if (a.ndim() != 3 || a.shape(0) != n || a.shape(1) != 4 || a.shape(2) != 4) {
        throw rig::DeformError(std::string(name) + " must have shape (" + std::to_string(n) + ", 4, 4)");
    }
    std::vector<rig::Mat4> out(static_cast<std::size_t>(n));
    if (n > 0) std::memcpy(out.data(), a.data(), out.size() * sizeof(rig::Mat4));
    return out;
}

std::vector<std::int64_t> vector_of(const Array<std::int64_t>& a, const char* name) {
    if (a.ndim() != 1) throw rig::DeformError(std::string(name) + " must be 1-D");
    return {a.data(), a.data() + a.shape(0)};
}

std::vector<rig::ChannelTerm> channel_terms(const std::vector<std::pair<std::int64_t, double>>& given) {
    std::vector<rig::ChannelTerm> out;
    for (const auto& [column, coefficient] : given) out.push_back({column, coefficient});
    return out;
}

// A read-only numpy view of memory the Poser owns; the array keeps the Poser alive.
template <typename T>
py::array_t<T> view(rig::Poser& owner, std::vector<py::ssize_t> shape, const T* data) {
    py::array_t<T> a(std::move(shape), data, py::cast(&owner, py::return_value_policy::reference));
    a.attr("setflags")(py::arg("write") = false);
    return a;
}

}  // namespace

void register_rig(py::module_& m) {
    py::register_exception<rig::DeformError>(m, "DeformError", PyExc_ValueError);
    m.attr("DeformError").attr("__doc__") = "Arrays of the wrong shape, type or size for a mesh, or indices out of range.";

    py::class_<rig::MorphMesh, std::shared_ptr<rig::MorphMesh>>(m, "MorphMesh",
                               "A mesh's base vertices and its morph targets; apply() blends them on the CPU.")
        .def(py::init([](Array<float> positions, std::optional<Array<float>> normals) {
                 if (positions.ndim() != 2 || positions.shape(1) != 3) throw rig::DeformError("positions must be (N, 3)");
                 if (normals) check_rows(*normals, positions.shape(0), 3, "normals");
                 return rig::MorphMesh(positions.data(), normals ? normals->data() : nullptr,
                                       static_cast<std::size_t>(positions.shape(0)));
             }),
             py::arg("positions"), py::arg("normals") = py::none())
        .def("add_sparse_target", [](rig::MorphMesh& self, Array<std::uint32_t> indices, Array<float> position_deltas,
                                     std::optional<Array<float>> normal_deltas) {
            if (indices.ndim() != 1) throw rig::DeformError("indices must be 1-D");
            check_rows(position_deltas, indices.shape(0), 3, "position_deltas");
            if (normal_deltas) check_rows(*normal_deltas, indices.shape(0), 3, "normal_deltas");
            return self.add_sparse_target(indices.data(), position_deltas.data(),
                                          normal_deltas ? normal_deltas->data() : nullptr,
                                          static_cast<std::size_t>(indices.shape(0)));
        }, py::arg("indices"), py::arg("position_deltas"), py::arg("normal_deltas") = py::none(),
           "Add a target that moves the vertices `indices` (strictly increasing); returns its index.")
        .def("add_dense_target", [](rig::MorphMesh& self, Array<float> position_deltas,
                                    std::optional<Array<float>> normal_deltas, float epsilon) {
            auto n = static_cast<py::ssize_t>(self.vertex_count());
            check_rows(position_deltas, n, 3, "position_deltas");
            if (normal_deltas) check_rows(*normal_deltas, n, 3, "normal_deltas");
            return self.add_dense_target(position_deltas.data(), normal_deltas ? normal_deltas->data() : nullptr,
                                         epsilon);
        }, py::arg("position_deltas"), py::arg("normal_deltas") = py::none(), py::arg("epsilon") = 0.0f,
           "Add a target given for every vertex; kept sparse when at most half the vertices move more than "
           "`epsilon`. Returns its index.")
        .def("apply", [](const rig::MorphMesh& self, Array<float> weights, std::optional<py::array_t<float>> out_positions,
                         std::optional<py::array_t<float>> out_normals) {
            if (weights.ndim() != 1) throw rig::DeformError("weights must be 1-D");
            auto n = static_cast<py::ssize_t>(self.vertex_count());
            auto out_of = [&](std::optional<py::array_t<float>>& given, const char* name) {
                if (!given) return py::array_t<float>({n, py::ssize_t{3}});
                check_rows(*given, n, 3, name);
                if (!(given->flags() & py::array::c_style) || !given->writeable()) {
                    throw rig::DeformError(std::string(name) + " must be a writable C-contiguous float32 array");
                }
                return *given;
            };
            py::array_t<float> pos = out_of(out_positions, "out_positions");
            std::optional<py::array_t<float>> nrm;
            if (self.has_normals()) nrm = out_of(out_normals, "out_normals");
            float* p = pos.mutable_data();
            float* q = nrm ? nrm->mutable_data() : nullptr;
            {
                py::gil_scoped_release release;
                self.apply(weights.data(), static_cast<std::size_t>(weights.shape(0)), p, q);
            }
            return py::make_tuple(pos, nrm ? py::object(*nrm) : py::object(py::none()));
        }, py::arg("weights"), py::arg("out_positions") = py::none(), py::arg("out_normals") = py::none(),
           "Blend the targets with `weights` (one per target). Returns (positions, normals or None); pass "
           "out arrays to reuse them. Runs without the GIL.")
        .def("bytes_touched", [](const rig::MorphMesh& self, Array<float> weights) {
            return self.bytes_touched(weights.data(), static_cast<std::size_t>(weights.size()));
        }, py::arg("weights"), "Bytes apply() reads and writes for these weights.")
        .def("target_size", &rig::MorphMesh::target_size, py::arg("target"), "Vertices the target moves.")
        .def("target_is_dense", &rig::MorphMesh::target_is_dense, py::arg("target"))
        .def_property_readonly("vertex_count", &rig::MorphMesh::vertex_count, "Vertices of the base mesh.")
        .def_property_readonly("target_count", &rig::MorphMesh::target_count, "Morph targets added so far.")
        .def_property_readonly("has_normals", &rig::MorphMesh::has_normals, "Whether normals are blended too.")
        .def_property_readonly("frozen", &rig::MorphMesh::frozen,
                               "Whether the mesh belongs to a Poser (no targets can be added any more).");

    m.def("skin", [](Array<float> positions, std::optional<Array<float>> normals, Array<std::uint16_t> joints,
                     Array<float> weights, Array<float> joint_matrices) {
        if (positions.ndim() != 2 || positions.shape(1) != 3) throw rig::DeformError("positions must be (N, 3)");
        const py::ssize_t n = positions.shape(0);
        if (normals) check_rows(*normals, n, 3, "normals");
        check_rows(joints, n, 4, "joints");
        check_rows(weights, n, 4, "weights");
        if (joint_matrices.ndim() != 3 || joint_matrices.shape(1) != 4 || joint_matrices.shape(2) != 4) {
            throw rig::DeformError("joint_matrices must be (J, 4, 4), column-major per glTF");
        }
        py::array_t<float> out_p({n, py::ssize_t{3}});
        std::optional<py::array_t<float>> out_n;
        if (normals) out_n = py::array_t<float>({n, py::ssize_t{3}});
        float* op = out_p.mutable_data();
        float* on = out_n ? out_n->mutable_data() : nullptr;
        {
            py::gil_scoped_release release;
            rig::skin(positions.data(), normals ? normals->data() : nullptr, static_cast<std::size_t>(n), joints.data(),
                      weights.data(), joint_matrices.data(), static_cast<std::size_t>(joint_matrices.shape(0)), op, on);
        }
        return py::make_tuple(out_p, out_n ? py::object(*out_n) : py::object(py::none()));
    }, py::arg("positions"), py::arg("normals"), py::arg("joints"), py::arg("weights"), py::arg("joint_matrices"),
       "Linear blend skinning. joint_matrices[j] is joint j's world matrix times its inverse bind matrix, "
       "stored column-major (as glTF and GL do: joint_matrices[j][3][:3] is the translation).");

    py::class_<rig::Term>(m, "Term",
                          "One rotation of a Poser rule: about `axis` by constant + sum(coefficient * value[column] for "
                          "channels) + sum(coefficient * clip(value[column], 0, 1) for clamped) + amplitude * "
                          "sin(2 pi t / period), the last only when the frame has a time.")
        .def(py::init([](std::array<double, 3> axis, double constant,
                         const std::vector<std::pair<std::int64_t, double>>& channels,
                         const std::vector<std::pair<std::int64_t, double>>& clamped, double amplitude, double period) {
                 rig::Term t;
                 t.axis = axis;
                 t.constant = constant;
                 t.channels = channel_terms(channels);
                 t.clamped = channel_terms(clamped);
                 t.amplitude = amplitude;
                 t.period = period;
                 return t;
             }),
             py::arg("axis"), py::kw_only(), py::arg("constant") = 0.0,
             py::arg("channels") = std::vector<std::pair<std::int64_t, double>>{},
             py::arg("clamped") = std::vector<std::pair<std::int64_t, double>>{}, py::arg("amplitude") = 0.0,
             py::arg("period") = 0.0)
        .def_readonly("axis", &rig::Term::axis)
        .def_readonly("constant", &rig::Term::constant)
        .def_property_readonly("channels", [](const rig::Term& t) {
            std::vector<std::pair<std::int64_t, double>> out;
            for (const auto& c : t.channels) out.emplace_back(c.column, c.coefficient);
            return out;
        })
        .def_property_readonly("clamped", [](const rig::Term& t) {
            std::vector<std::pair<std::int64_t, double>> out;
            for (const auto& c : t.clamped) out.emplace_back(c.column, c.coefficient);
            return out;
        })
        .def_readonly("amplitude", &rig::Term::amplitude)
        .def_readonly("period", &rig::Term::period);

    py::class_<rig::Poser>(m, "Poser",
                           "A rigged avatar posed a whole frame per call: channel values to node world matrices, "
                           "skinning matrices, and the morphed and skinned vertices of every primitive added. The "
                           "setup (rules, skins, primitives) is checked as it is added; pose() runs without the GIL "
                           "and writes into the arrays that world, positions() and normals() return (read-only "
                           "views, overwritten by each pose).")
        .def(py::init([](std::size_t channel_count, Array<std::int64_t> parents, Array<double> local_matrices,
                         Array<bool> has_trs, Array<double> translations, Array<double> rotations, Array<double> scales,
                         Array<double> turn, Array<double> rest_world) {
                 if (parents.ndim() != 1) throw rig::DeformError("parents must be 1-D");
                 const py::ssize_t n = parents.shape(0);
                 std::vector<rig::Mat4> local = matrices(local_matrices, n, "local_matrices");
                 std::vector<rig::Mat4> rest = matrices(rest_world, n, "rest_world");
                 if (has_trs.ndim() != 1 || has_trs.shape(0) != n) throw rig::DeformError("has_trs must be (n,)");
                 check_rows(translations, n, 3, "translations");
                 check_rows(rotations, n, 4, "rotations");
                 check_rows(scales, n, 3, "scales");
                 std::vector<rig::NodeTransform> nodes(static_cast<std::size_t>(n));
                 for (py::ssize_t i = 0; i < n; ++i) {
                     auto& node = nodes[static_cast<std::size_t>(i)];
                     node.parent = parents.data()[i];
                     node.matrix = local[static_cast<std::size_t>(i)];
                     node.has_trs = has_trs.data()[i];
                     std::memcpy(node.translation.data(), translations.data() + 3 * i, 3 * sizeof(double));
                     std::memcpy(node.rotation.data(), rotations.data() + 4 * i, 4 * sizeof(double));
                     std::memcpy(node.scale.data(), scales.data() + 3 * i, 3 * sizeof(double));
                 }
                 return std::make_unique<rig::Poser>(channel_count, std::move(nodes), square<4>(turn, "turn"), rest);
             }),
             py::arg("channel_count"), py::arg("parents"), py::arg("local_matrices"), py::arg("has_trs"),
             py::arg("translations"), py::arg("rotations"), py::arg("scales"), py::arg("turn"), py::arg("rest_world"),
             "The node forest: parents (-1 for a root), local matrices (n, 4, 4) and, where has_trs, translation, "
             "rotation (x, y, z, w) and scale; turn multiplies the roots; rest_world is what world holds until the "
             "first pose. Raises DeformError on wrong shapes, parents out of range or a cycle.")
        .def("add_rule", [](rig::Poser& self, std::size_t node, Array<double> pre, Array<double> post,
                            std::vector<rig::Term> terms, bool timed) {
            return self.add_rule(node, square<3>(pre, "pre"), square<3>(post, "post"), std::move(terms), timed);
        }, py::arg("node"), py::arg("pre"), py::arg("post"), py::arg("terms"), py::kw_only(), py::arg("timed") = false,
           "Turn `node` by pre @ R(terms[0]) @ ... @ post between its rotation and scale (after its matrix). For "
           "each node the last rule added wins; a timed rule applies only to frames with a time. Returns its index.")
        .def("set_translation", [](rig::Poser& self, std::int64_t carrier, std::array<std::int64_t, 3> columns) {
            self.set_translation(carrier, columns);
        }, py::arg("carrier"), py::arg("columns"),
           "The node (-1: none) whose world position moves by the values of three channel columns (-1: none).")
        .def("set_zeroed", [](rig::Poser& self, Array<std::int64_t> columns) {
            self.set_zeroed(vector_of(columns, "columns"));
        }, py::arg("columns"), "Channel columns read as zero whatever the frame says.")
        .def("add_skin", [](rig::Poser& self, Array<std::int64_t> joints, Array<double> inverse_bind_matrices) {
            std::vector<std::int64_t> j = vector_of(joints, "joints");
            return self.add_skin(std::move(j), matrices(inverse_bind_matrices, joints.shape(0),
                                                        "inverse_bind_matrices"));
        }, py::arg("joints"), py::arg("inverse_bind_matrices"),
           "A skin: joint node indices and their inverse bind matrices (J, 4, 4), row-major. Returns its index.")
        .def("add_primitive", [](rig::Poser& self, std::optional<std::shared_ptr<rig::MorphMesh>> morph,
                                 Array<std::int64_t> target_channels, Array<float> positions, Array<float> normals,
                                 std::int64_t skin, std::optional<Array<std::uint16_t>> joints,
                                 std::optional<Array<float>> weights) {
            if (positions.ndim() != 2 || positions.shape(1) != 3) throw rig::DeformError("positions must be (N, 3)");
            const py::ssize_t n = positions.shape(0);
            check_rows(normals, n, 3, "normals");
            if (joints) check_rows(*joints, n, 4, "joints");
            if (weights) check_rows(*weights, n, 4, "weights");
            return self.add_primitive(morph ? *morph : nullptr, vector_of(target_channels, "target_channels"),
                                      positions.data(), normals.data(), static_cast<std::size_t>(n), skin,
                                      joints ? joints->data() : nullptr, weights ? weights->data() : nullptr);
        }, py::arg("morph"), py::arg("target_channels"), py::arg("positions"), py::arg("normals"), py::kw_only(),
           py::arg("skin") = -1, py::arg("joints") = py::none(), py::arg("weights") = py::none(),
           "A primitive: its MorphMesh (or None) with the channel column of each target (-1: none), its rest "
           "positions and normals, and skin (an add_skin index, -1 for none) with JOINTS_0 and WEIGHTS_0. The "
           "morph mesh is frozen. Returns its index.")
        .def("pose", [](rig::Poser& self, Array<float> values, std::optional<double> t) {
            if (values.ndim() != 1) throw rig::DeformError("values must be 1-D");
            std::vector<float> copy(values.data(), values.data() + values.shape(0));
            py::gil_scoped_release release;
            self.pose(copy.data(), copy.size(), t);
        }, py::arg("values"), py::arg("t") = py::none(),
           "Pose one frame: one value per channel, and the clock time (seconds) or None. Runs without the GIL.")
        .def_property_readonly("world", [](rig::Poser& self) {
            const auto n = static_cast<py::ssize_t>(self.node_count());
            return view(self, {n, 4, 4}, self.world());
        }, "The node world matrices (n, 4, 4) float64 of the last pose (a read-only view).")
        .def("positions", [](rig::Poser& self, std::size_t prim) {
            if (prim >= self.primitive_count()) throw py::index_error("no such primitive");
            return view(self, {static_cast<py::ssize_t>(self.vertex_count(prim)), 3}, self.positions(prim));
        }, py::arg("prim"), "A primitive's posed positions (N, 3) float32 (a read-only view).")
        .def("normals", [](rig::Poser& self, std::size_t prim) {
            if (prim >= self.primitive_count()) throw py::index_error("no such primitive");
            return view(self, {static_cast<py::ssize_t>(self.vertex_count(prim)), 3}, self.normals(prim));
        }, py::arg("prim"), "A primitive's posed normals (N, 3) float32, not renormalized (a read-only view).")
        .def_property_readonly("channel_count", &rig::Poser::channel_count)
        .def_property_readonly("node_count", &rig::Poser::node_count)
        .def_property_readonly("primitive_count", &rig::Poser::primitive_count)
        .def_property_readonly("rule_count", &rig::Poser::rule_count);
}
