#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <optional>

#include "avatarkit/renderer.hpp"
#include "avatarkit/yuv.hpp"

namespace py = pybind11;
using namespace avatarkit;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

// Owns the renderer so close() can free the GL objects deterministically, on the render thread.
struct PyRenderer {
    std::unique_ptr<render::Renderer> r;
    render::Renderer& get() {
        if (!r) throw render::RenderError("the renderer is closed");
        return *r;
    }
};

// numpy matrices are written as in maths (row-major, M @ v); GL wants column-major.
std::array<float, 16> column_major(const Array<float>& m, const char* name) {
    if (m.ndim() != 2 || m.shape(0) != 4 || m.shape(1) != 4) throw render::RenderError(std::string(name) + " must be 4x4");
    std::array<float, 16> out{};
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) out[static_cast<std::size_t>(c * 4 + r)] = m.at(r, c);
    return out;
}

void check_image(const Array<std::uint8_t>& img, const char* name) {
    if (img.ndim() != 3 || img.shape(2) != 4) throw render::RenderError(std::string(name) + " must be (height, width, 4) uint8");
}

// A writable uint8 plane of exactly rows x cols whose samples are adjacent (rows may be padded).
render::Plane out_plane(py::array& a, py::ssize_t rows, py::ssize_t cols, const char* name) {
    if (!a.dtype().is(py::dtype::of<std::uint8_t>()) || a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols ||
        (cols > 1 && a.strides(1) != 1) || a.strides(0) < cols || !a.writeable())
        throw py::value_error(std::string(name) + " must be a writable uint8 array of shape (" + std::to_string(rows) +
                              ", " + std::to_string(cols) + ") with adjacent samples in each row");
    return {static_cast<std::uint8_t*>(a.mutable_data()), a.strides(0)};
}

}  // namespace

void register_render(py::module_& m) {
    m.def("rgba_to_i420", [](const Array<std::uint8_t>& rgba, py::array y, py::array u, py::array v) {
        check_image(rgba, "rgba");
        const py::ssize_t h = rgba.shape(0), w = rgba.shape(1);
        if (h > (1 << 20) || w > (1 << 20)) throw py::value_error("rgba is larger than 2^20 pixels on a side");
        const render::Plane py_ = out_plane(y, h, w, "y"), pu = out_plane(u, (h + 1) / 2, (w + 1) / 2, "u"),
                            pv = out_plane(v, (h + 1) / 2, (w + 1) / 2, "v");
        const std::uint8_t* src = rgba.data();
        py::gil_scoped_release release;
        render::rgba_to_i420(src, w * 4, static_cast<int>(w), static_cast<int>(h), py_, pu, pv);
    }, py::arg("rgba"), py::arg("y"), py::arg("u"), py::arg("v"),
    "Convert a straight-alpha RGBA frame (uint8 (height, width, 4)) to planar YUV 4:2:0 in place: "
    "BT.601 limited range, as swscale's yuv420p, each chroma sample the mean of its 2x2 pixels, pixels "
    "that are not opaque composited over black. ``y`` is (height, width); ``u`` and ``v`` are "
    "(ceil(height / 2), ceil(width / 2)); rows may be padded (PyAV's planes are). Without the GIL.");
    py::register_exception<render::RenderError>(m, "RenderError", PyExc_RuntimeError);
    m.attr("RenderError").attr("__doc__") = "A GL call failed or the renderer was used wrongly (closed, bad ids, bad sizes).";

    py::enum_<render::AlphaMode>(m, "AlphaMode", "glTF alpha modes.")
        .value("OPAQUE", render::AlphaMode::kOpaque)
        .value("MASK", render::AlphaMode::kMask)
        .value("BLEND", render::AlphaMode::kBlend);

    py::class_<PyRenderer>(m, "Renderer",
                           "OpenGL 3.3 core renderer. Create, use and close it on the thread whose context is current.")
        .def(py::init([](std::uintptr_t proc_address, int width, int height, int samples) {
                 return PyRenderer{std::make_unique<render::Renderer>(proc_address, width, height, samples)};
             }),
             py::arg("proc_address"), py::arg("width"), py::arg("height"), py::arg("samples") = 4,
             "proc_address: address of eglGetProcAddress / glfwGetProcAddress (an int).")
        .def("close", [](PyRenderer& self) { self.r.reset(); }, "Delete every GL object (idempotent).")
        .def_property_readonly("closed", [](const PyRenderer& self) { return !self.r; }, "Whether close() was called.")
        .def("add_texture", [](PyRenderer& self, Array<std::uint8_t> rgba, bool srgb) {
            check_image(rgba, "rgba");
            return self.get().add_texture(rgba.data(), static_cast<int>(rgba.shape(1)), static_cast<int>(rgba.shape(0)), srgb);
        }, py::arg("rgba"), py::arg("srgb") = true, "Upload an RGBA image (top row first); returns its id.")
        .def("add_material", [](PyRenderer& self, std::array<float, 4> base_color, int base_color_texture, int normal_texture,
                                float normal_scale, int metallic_roughness_texture, int occlusion_texture,
                                float occlusion_strength, int emissive_texture, std::array<float, 3> emissive, float metallic,
                                float roughness, render::AlphaMode alpha_mode, float alpha_cutoff, bool double_sided, bool unlit) {
            render::MaterialDesc d;
            std::copy(base_color.begin(), base_color.end(), d.base_color);
            d.base_color_texture = base_color_texture;
            d.normal_texture = normal_texture;
            d.normal_scale = normal_scale;
            d.metallic_roughness_texture = metallic_roughness_texture;
            d.occlusion_texture = occlusion_texture;
            d.occlusion_strength = occlusion_strength;
            d.emissive_texture = emissive_texture;
            std::copy(emissive.begin(), emissive.end(), d.emissive);
            d.metallic = metallic;
            d.roughness = roughness;
            d.alpha_mode = alpha_mode;
            d.alpha_cutoff = alpha_cutoff;
            d.double_sided = double_sided;
            d.unlit = unlit;
            return self.get().add_material(d);
        }, py::arg("base_color") = std::array<float, 4>{1, 1, 1, 1}, py::arg("base_color_texture") = -1,
           py::arg("normal_texture") = -1, py::arg("normal_scale") = 1.0f, py::arg("metallic_roughness_texture") = -1,
           py::arg("occlusion_texture") = -1, py::arg("occlusion_strength") = 1.0f, py::arg("emissive_texture") = -1,
           py::arg("emissive") = std::array<float, 3>{0, 0, 0}, py::arg("metallic") = 0.0f, py::arg("roughness") = 0.6f,
           py::arg("alpha_mode") = render::AlphaMode::kOpaque, py::arg("alpha_cutoff") = 0.5f, py::arg("double_sided") = false,
           py::arg("unlit") = false, "Add a glTF metallic-roughness material (linear colours and factors, which multiply their textures; "
           "texture ids from add_texture: base colour and emissive sRGB, the others linear); returns its id.")
        .def("add_mesh", [](PyRenderer& self, Array<float> positions, Array<float> normals, std::optional<Array<float>> texcoords,
                            Array<std::uint32_t> indices, int material) {
            if (positions.ndim() != 2 || positions.shape(1) != 3) throw render::RenderError("positions must be (N, 3)");
            const auto n = positions.shape(0);
            if (normals.ndim() != 2 || normals.shape(0) != n || normals.shape(1) != 3) throw render::RenderError("normals must be (N, 3)");
            if (texcoords && (texcoords->ndim() != 2 || texcoords->shape(0) != n || texcoords->shape(1) != 2)) {
                throw render::RenderError("texcoords must be (N, 2)");
            }
            return self.get().add_mesh(positions.data(), normals.data(), texcoords ? texcoords->data() : nullptr,
                                       static_cast<std::size_t>(n), indices.data(), static_cast<std::size_t>(indices.size()),
                                       material);
        }, py::arg("positions"), py::arg("normals"), py::arg("texcoords"), py::arg("indices"), py::arg("material"),
           "Upload a triangle mesh; returns its id.")
        .def("update_mesh", [](PyRenderer& self, int mesh, Array<float> positions, Array<float> normals) {
            auto& r = self.get();
            const auto n = static_cast<py::ssize_t>(r.mesh_vertex_count(mesh));
            if (positions.ndim() != 2 || positions.shape(0) != n || positions.shape(1) != 3 || normals.ndim() != 2 ||
                normals.shape(0) != n || normals.shape(1) != 3) {
                throw render::RenderError("positions and normals must be (" + std::to_string(n) + ", 3)");
            }
            const float* p = positions.data();
            const float* q = normals.data();
            r.update_mesh(mesh, p, q);
        }, py::arg("mesh"), py::arg("positions"), py::arg("normals"), "Replace a mesh's vertices (same count).")
        .def("set_mesh_transform", [](PyRenderer& self, int mesh, Array<float> matrix) {
            auto cm = column_major(matrix, "matrix");
            self.get().set_mesh_transform(mesh, cm.data());
        }, py::arg("mesh"), py::arg("matrix"), "Model-to-world matrix (4x4, as in maths: M @ v).")
        .def("set_mesh_visible", [](PyRenderer& self, int mesh, bool visible) { self.get().set_mesh_visible(mesh, visible); },
             py::arg("mesh"), py::arg("visible"))
        .def("set_camera", [](PyRenderer& self, Array<float> view, Array<float> projection, std::array<float, 3> eye) {
            auto v = column_major(view, "view");
            auto p = column_major(projection, "projection");
            self.get().set_camera(v.data(), p.data(), eye.data());
        }, py::arg("view"), py::arg("projection"), py::arg("eye"), "View and projection matrices (4x4, M @ v), eye position.")
        .def("set_background", [](PyRenderer& self, float r, float g, float b, float a) { self.get().set_background(r, g, b, a); },
             py::arg("r"), py::arg("g"), py::arg("b"), py::arg("a") = 1.0f, "Clear colour (sRGB 0..1); a = 0 for transparent.")
        .def("set_background_image", [](PyRenderer& self, std::optional<Array<std::uint8_t>> rgba) {
            if (!rgba) {
                self.get().set_background_image(nullptr, 0, 0);
                return;
            }
            check_image(*rgba, "rgba");
            self.get().set_background_image(rgba->data(), static_cast<int>(rgba->shape(1)), static_cast<int>(rgba->shape(0)));
        }, py::arg("rgba"), "An image behind the avatar (cover fit), or None.")
        .def("set_content_transform", [](PyRenderer& self, float x, float y, float scale) {
            self.get().set_content_transform(x, y, scale);
        }, py::arg("x"), py::arg("y"), py::arg("scale"), "Move (x, y in [-1, 1]) and scale (> 0) the avatar in the frame.")
        .def("resize", [](PyRenderer& self, int w, int h) { self.get().resize(w, h); }, py::arg("width"), py::arg("height"))
        .def("set_antialiasing", [](PyRenderer& self, int samples, bool fxaa) { self.get().set_antialiasing(samples, fxaa); },
             py::arg("samples"), py::arg("fxaa"),
             "MSAA with ``samples`` (0 turns it off) and/or the post-process edge filter (FXAA-like).")
        .def("render", [](PyRenderer& self) {
            auto& r = self.get();
            py::gil_scoped_release release;
            r.render();
        }, "Draw a frame (without the GIL).")
        .def("read_pixels", [](PyRenderer& self) {
            auto& r = self.get();
            py::array_t<std::uint8_t> out({r.height(), r.width(), 4});
            std::uint8_t* p = out.mutable_data();
            {
                py::gil_scoped_release release;
                r.read_pixels(p);
            }
            return out;
        }, "The last frame: uint8 (height, width, 4), top row first, straight alpha.")
        .def("start_readback", [](PyRenderer& self) { self.get().start_readback(); },
             "Start copying the last frame into a pixel buffer object (no wait).")
        .def("finish_readback", [](PyRenderer& self) -> std::optional<py::array_t<std::uint8_t>> {
            auto& r = self.get();
            py::array_t<std::uint8_t> out({r.height(), r.width(), 4});
            std::uint8_t* p = out.mutable_data();
            bool ok;
            {
                py::gil_scoped_release release;
                ok = r.finish_readback(p);
            }
            if (!ok) return std::nullopt;
            return out;
        }, "The oldest frame start_readback() copied, or None.")
        .def("present", [](PyRenderer& self, int width, int height) { self.get().present(width, height); },
             py::arg("width"), py::arg("height"), "Copy the last frame to the window's default framebuffer.")
        .def_property_readonly("width", [](PyRenderer& self) { return self.get().width(); }, "Frame width in pixels.")
        .def_property_readonly("height", [](PyRenderer& self) { return self.get().height(); }, "Frame height in pixels.")
        .def_property_readonly("samples", [](PyRenderer& self) { return self.get().samples(); },
                               "MSAA samples per pixel (1: none).")
        .def_property_readonly("fxaa", [](PyRenderer& self) { return self.get().fxaa(); },
                               "Whether the post-process edge filter runs.")
        .def_property_readonly("filtered_pixels", [](PyRenderer& self) { return self.get().filtered_pixels(); },
                               "Pixels the edge filter covered in the last frame: the 8-pixel tiles that a "
                               "silhouette or a mesh border crosses, and those under alpha-tested or blended "
                               "meshes (0 without the filter).")
        .def_property_readonly("software", [](PyRenderer& self) { return self.get().software(); },
                               "Whether the GL renders in software (llvmpipe, softpipe, SwiftShader).")
        .def("stats", [](PyRenderer& self) {
            render::Stats s = self.get().stats();
            py::dict d;
            d["programs"] = s.programs;
            d["shaders"] = s.shaders;
            d["buffers"] = s.buffers;
            d["vertex_arrays"] = s.vertex_arrays;
            d["textures"] = s.textures;
            d["framebuffers"] = s.framebuffers;
            d["renderbuffers"] = s.renderbuffers;
            d["total"] = s.total();
            return d;
        }, "Live GL objects this renderer created, by kind.")
        .def("gl_error", [](PyRenderer& self) { return self.get().gl_error(); }, "glGetError(); 0 means none.")
        .def_property_readonly("gl_renderer", [](PyRenderer& self) { return self.get().gl_renderer(); },
                               "GL_RENDERER of the context (llvmpipe, a GPU's name).")
        .def_property_readonly("gl_version", [](PyRenderer& self) { return self.get().gl_version(); },
                               "GL_VERSION of the context.");
}
