// avatarkit._core: the C++ core's Python face. One register_<area>.cpp per area.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_codec(py::module_& m);

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "AvatarKit C++ core: driving-stream codec (more areas register here as they land).";
    m.attr("__version__") = AVATARKIT_VERSION;
    py::module_ codec = m.def_submodule("codec", "Animation stream codec and the FlameAnimation reader.");
    register_codec(codec);
}
