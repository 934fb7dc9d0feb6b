// The OpenGL 3.3 core renderer. GL entry points are loaded through a proc-address function handed
// in at construction (eglGetProcAddress, glfwGetProcAddress, ...): the library never links libGL.
//
// A Renderer belongs to the thread on which its context is current: every call, including the
// destructor, must come from that thread. No GL header leaks out of this file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace avatarkit::render {

class RenderError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class AlphaMode : std::uint8_t { kOpaque = 0, kMask = 1, kBlend = 2 };

// A glTF 2.0 metallic-roughness material (factors multiply their textures, as in glTF).
struct MaterialDesc {
    float base_color[4] = {1.0f, 1.0f, 1.0f, 1.0f};  // linear RGBA
    int base_color_texture = -1;                     // texture id (sRGB), or -1
    int normal_texture = -1;                         // texture id (linear), or -1
    float normal_scale = 1.0f;
    int metallic_roughness_texture = -1;             // texture id (linear; G roughness, B metalness), or -1
    int occlusion_texture = -1;                      // texture id (linear; R), or -1
    float occlusion_strength = 1.0f;
    int emissive_texture = -1;                       // texture id (sRGB), or -1
    float emissive[3] = {0.0f, 0.0f, 0.0f};
    float metallic = 0.0f;
    float roughness = 0.6f;
    AlphaMode alpha_mode = AlphaMode::kOpaque;
    float alpha_cutoff = 0.5f;
    bool double_sided = false;
    bool unlit = false;  // KHR_materials_unlit: the base colour as it is, without light
};

// Counts of live GL objects this renderer created (for leak checks).
struct Stats {
    int programs = 0, shaders = 0, buffers = 0, vertex_arrays = 0, textures = 0, framebuffers = 0,
        renderbuffers = 0;
    int total() const { return programs + shaders + buffers + vertex_arrays + textures + framebuffers + renderbuffers; }
};

class Renderer {
public:
    // proc_address: the address of a `void* (*)(const char*)` that returns GL entry points; the
    // context must be current on this thread and support OpenGL 3.3 core.
    Renderer(std::uintptr_t proc_address, int width, int height, int samples = 4);
    ~Renderer();
    Renderer(const Renderer&) = delete;
    Renderer& operator=(const Renderer&) = delete;

    // rgba: height x width x 4 bytes, top row first. srgb: colour data (base colour, emissive).
    int add_texture(const std::uint8_t* rgba, int width, int height, bool srgb);
    int add_material(const MaterialDesc& material);
    // positions, normals: n x 3; texcoords: n x 2 or null; indices: m (triangles, m % 3 == 0).
    int add_mesh(const float* positions, const float* normals, const float* texcoords, std::size_t n,
                 const std::uint32_t* indices, std::size_t m, int material);
    void update_mesh(int mesh, const float* positions, const float* normals);
    void set_mesh_transform(int mesh, const float* matrix);  // column-major 4x4, model to world
    void set_mesh_visible(int mesh, bool visible);
    std::size_t mesh_vertex_count(int mesh) const;

    // Column-major view and projection matrices; eye: the camera position in world space.
    void set_camera(const float* view, const float* projection, const float* eye);
    void set_background(float r, float g, float b, float a);
    // rgba: height x width x 4 (sRGB); it covers the frame, cropped to keep its aspect. Null clears it.
    void set_background_image(const std::uint8_t* rgba, int width, int height);
    // The commercial SDK's content transform: x, y in [-1, 1] move the avatar in the frame, scale > 0.
    void set_content_transform(float x, float y, float scale);
    void resize(int width, int height);
    // Anti-aliasing: MSAA with `samples` (0 or 1 turns it off; clamped to what the GL offers) and/or
    // a post-process edge filter (FXAA-like), which costs far less than MSAA on software rasterizers.
    void set_antialiasing(int samples, bool fxaa);
    bool fxaa() const;
    // Pixels the edge filter covered in the last frame: the 16-pixel tiles that a silhouette or a
    // mesh border crosses, and those under alpha-tested or blended meshes (0 without the filter).
    std::int64_t filtered_pixels() const;
    // Whether the context renders in software (Mesa llvmpipe or softpipe, SwiftShader).
    bool software() const;

    void render();
    // The last rendered frame: height x width x 4 bytes, top row first, straight (not
    // premultiplied) alpha. Blocks until the GPU has finished it.
    void read_pixels(std::uint8_t* out);
    // Pipelined readback through pixel buffer objects: start copying the last rendered frame, and
    // later fetch the oldest copy started (false when none is pending).
    void start_readback();
    bool finish_readback(std::uint8_t* out);
    // Copy the last frame to the default framebuffer (a window), scaled to width x height.
    void present(int width, int height);

    int width() const;
    int height() const;
    int samples() const;
    Stats stats() const;
    // glGetError(): 0 when no error happened since the last call.
    unsigned gl_error();
    std::string gl_renderer() const;
    std::string gl_version() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace avatarkit::render
