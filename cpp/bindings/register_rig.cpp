#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "avatarkit/deform.hpp"

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

}  // namespace

void register_rig(py::module_& m) {
    py::register_exception<rig::DeformError>(m, "DeformError", PyExc_ValueError);
    m.attr("DeformError").attr("__doc__") = "Arrays of the wrong shape, type or size for a mesh, or indices out of range.";

    py::class_<rig::MorphMesh>(m, "MorphMesh",
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
        .def_property_readonly("has_normals", &rig::MorphMesh::has_normals, "Whether normals are blended too.");

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
}
