// avatarkit._core: the C++ core's Python face. One register_<area>.cpp per area.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_codec(py::module_& m);
void register_rig(py::module_& m);
void register_render(py::module_& m);
void register_engine(py::module_& m);

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "AvatarKit C++ core: driving-stream codec, mesh deformation, GL renderer.";
    m.attr("__version__") = AVATARKIT_VERSION;
    py::module_ codec = m.def_submodule("codec", "Animation stream codec and the FlameAnimation reader.");
    register_codec(codec);
    py::module_ rig = m.def_submodule("rig", "Mesh deformation: morph targets and linear blend skinning.");
    register_rig(rig);
    py::module_ render = m.def_submodule("render", "OpenGL 3.3 core renderer (GL loaded from a proc address).");
    register_render(render);
    py::module_ engine = m.def_submodule("engine", "Audio to animation: log-mel features, viseme classifier, face.");
    register_engine(engine);
}
