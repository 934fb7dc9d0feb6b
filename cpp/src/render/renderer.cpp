#include "avatarkit/renderer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#define GLAD_GL_IMPLEMENTATION
#include <glad/gl.h>

namespace avatarkit::render {

namespace {

// Shading: glTF 2.0 metallic-roughness with the BRDF of the Khronos sample viewer (Trowbridge-Reitz
// / GGX distribution, height-correlated Smith-GGX visibility, Schlick's Fresnel with
// F0 = mix(0.04, base, metallic), Lambert diffuse weighted by (1 - F) and (1 - metallic)) under a
// studio setup: three directional lights (a key from above, in front and to the avatar's right,
// the viewer's left; a weaker, slightly cooler fill from the other side; a rim from behind and
// above) and a hemisphere environment (sky above, ground below) whose diffuse term is exact for
// such an environment and whose specular term is the split-sum approximation (radiance in the
// reflected direction times Karis' analytic fit of the pre-integrated BRDF). Linear light goes
// through ACES (Narkowicz's fit) and display gamma 1/2.2. docs/concepts.md lists the constants;
// tests/test_materials.py holds a numpy reference renderer with the same formulas.
//
// The work is split for speed on software rasterizers (llvmpipe runs every fragment instruction on
// the CPU), in three variants chosen per material:
// - VERTEX_LIGHT: a rough dielectric without maps that change the shading per pixel (roughness
//   above kVertexRoughnessMin): every term per vertex, where the meshes are dense enough
//   for lobes this broad; the fragment shader multiplies the base colour by the diffuse light and
//   adds the specular light. llvmpipe spends about as much on interpolating a value as on the
//   arithmetic that made it, so the fragments get two.
// - the glossy dielectric (neither define): as above, except the key light's specular lobe, whose
//   distribution term is evaluated per pixel (the highlight along a rolled fringe or on an eye is a
//   few vertices across); its Fresnel and visibility terms are smooth and stay per vertex.
// - PIXEL_LIGHT: metals, metallic-roughness, normal or occlusion maps: everything per pixel (and
//   unlit materials, which the fragment shader does not light at all).
// The shaders are compiled in variants (textures present, alpha mask, where the light is computed)
// rather than branching on uniforms: a software rasterizer executes both sides of a branch.
// kMeshCommon follows a "#version" line and the variant's #defines in both stages.
const char* kMeshCommon = R"(
const float INV_PI = 0.31830989;
// The studio lights: directions towards the light (world space; the avatar faces +Z) and their
// irradiance on a surface facing them (linear RGB). A white Lambertian surface facing a light
// reflects irradiance / pi.
const vec3 KEY_DIR = vec3(-0.5265, 0.5736, 0.6275);  // 40 degrees to the face's right, 35 up
const vec3 KEY = vec3(3.25, 3.1, 2.9);
const vec3 FILL_DIR = vec3(0.8067, 0.1736, 0.5649);  // 55 degrees to the face's left, 10 up
const vec3 FILL = vec3(0.8, 0.82, 0.88);
const vec3 RIM_DIR = vec3(0.3971, 0.3420, -0.8516);  // 155 degrees round on the fill's side, 20 up
const vec3 RIM = vec3(1.6, 1.6, 1.7);
// The environment's radiance: above the horizon (sky) and below it (ground).
const vec3 SKY = vec3(0.23, 0.235, 0.25);
const vec3 GROUND = vec3(0.12, 0.105, 0.09);

float pow5(float x) { float x2 = x * x; return x2 * x2 * x; }
// Trowbridge-Reitz (GGX) distribution; a2 = alpha^2 = roughness^4.
float ggx(float ndh, float a2) {
    float k = ndh * ndh * (a2 - 1.0) + 1.0;
    return a2 * INV_PI / (k * k);
}
// Height-correlated Smith-GGX visibility, G / (4 n.l n.v).
float smith(float ndl, float ndv, float a2) {
    float gv = ndl * sqrt(ndv * ndv * (1.0 - a2) + a2);
    float gl = ndv * sqrt(ndl * ndl * (1.0 - a2) + a2);
    return 0.5 / max(gv + gl, 1e-6);
}
// One directional light: its diffuse light (to be multiplied by the diffuse colour) and specular.
void light(vec3 n, vec3 v, float ndv, vec3 dir, vec3 e, vec3 f0, float a2, inout vec3 diffuse, inout vec3 spec) {
    float ndl = max(dot(n, dir), 0.0);
    vec3 h = normalize(dir + v);
    vec3 f = f0 + (1.0 - f0) * pow5(1.0 - max(dot(v, h), 0.0));
    diffuse += (1.0 - f) * e * (ndl * INV_PI);
    spec += f * e * (ggx(max(dot(n, h), 0.0), a2) * smith(ndl, ndv, a2) * ndl);
}
vec3 hemisphere(vec3 d) { return mix(GROUND, SKY, d.y * 0.5 + 0.5); }
// The environment: diffuse irradiance / pi and the specular split sum, scaled by occlusion.
void environment(vec3 n, vec3 v, float ndv, vec3 f0, float rough, float ao, inout vec3 diffuse, inout vec3 spec) {
    diffuse += hemisphere(n) * ao;
    // Karis' fit of the pre-integrated GGX BRDF: F0 * a + b.
    vec4 r = rough * vec4(-1.0, -0.0275, -0.572, 0.022) + vec4(1.0, 0.0425, 1.04, -0.04);
    float a004 = min(r.x * r.x, exp2(-9.28 * ndv)) * r.x + r.y;
    vec2 ab = vec2(-1.04, 1.04) * a004 + r.zw;
    spec += hemisphere(reflect(-v, n)) * (f0 * ab.x + ab.y) * ao;
}
)";

const char* kMeshVertex = R"(
layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec2 a_uv;
uniform mat4 u_model;
uniform mat4 u_view;
uniform mat4 u_proj;
uniform mat3 u_normal_matrix;
uniform vec3 u_content;  // x, y, scale
uniform vec3 u_eye;
uniform vec3 u_f0;       // specular reflectance at normal incidence (0.04: these are dielectrics)
uniform float u_rough;   // perceptual roughness, clamped
uniform float u_a2;      // its alpha^2
uniform float u_two_sided;  // 1: a double-sided material, lit on the side facing the eye
out vec3 v_world;
out vec3 v_normal;
out vec2 v_uv;
#ifndef PIXEL_LIGHT
out vec3 v_light;  // diffuse light: the fragment shader multiplies it by the base colour
out vec3 v_add;    // specular light, added as it is
#ifndef VERTEX_LIGHT
out vec3 v_half;   // the key light's half vector
out float v_key;   // the key light's Fresnel x visibility x n.l: the fragment shader adds D
#endif
#endif
void main() {
    vec4 world = u_model * vec4(a_position, 1.0);
    v_world = world.xyz;
    vec3 n = normalize(u_normal_matrix * a_normal);
    v_uv = a_uv;
#ifndef PIXEL_LIGHT
    vec3 v = normalize(u_eye - world.xyz);
    // A double-sided surface shows the eye the side its normal faces, flipped if need be (the
    // fragment shader's gl_FrontFacing, decided per vertex: it differs only where a triangle
    // crosses the outline).
    n = dot(n, v) < 0.0 && u_two_sided > 0.5 ? -n : n;
    float ndv = max(dot(n, v), 1e-4);
    vec3 diffuse = vec3(0.0), spec = vec3(0.0);
#ifdef VERTEX_LIGHT
    light(n, v, ndv, KEY_DIR, KEY, u_f0, u_a2, diffuse, spec);
#else
    float ndl = max(dot(n, KEY_DIR), 0.0);
    vec3 h = normalize(KEY_DIR + v);
    float f = u_f0.x + (1.0 - u_f0.x) * pow5(1.0 - max(dot(v, h), 0.0));
    diffuse += (1.0 - f) * KEY * (ndl * INV_PI);
    v_half = h;
    v_key = f * smith(ndl, ndv, u_a2) * ndl;
#endif
    light(n, v, ndv, FILL_DIR, FILL, u_f0, u_a2, diffuse, spec);
    light(n, v, ndv, RIM_DIR, RIM, u_f0, u_a2, diffuse, spec);
    environment(n, v, ndv, u_f0, u_rough, 1.0, diffuse, spec);
    v_light = diffuse;
    v_add = spec;
#endif
    v_normal = n;
    vec4 clip = u_proj * u_view * world;
    clip.xy = clip.xy * u_content.z + u_content.xy * clip.w;
    gl_Position = clip;
}
)";

// Further variants by #define: BASE_TEX, NORMAL_TEX, MR_TEX, OCCLUSION_TEX, EMISSIVE_TEX, UNLIT,
// ALPHA_MASK (which discards: a shader that can discard turns off early depth testing on software
// rasterizers).
const char* kMeshFragment = R"(
in vec3 v_world;
in vec3 v_normal;
in vec2 v_uv;
#ifndef PIXEL_LIGHT
in vec3 v_light;
in vec3 v_add;
#ifndef VERTEX_LIGHT
in vec3 v_half;
in float v_key;
#endif
#endif
uniform vec4 u_base_color;
uniform sampler2D u_base_tex;
uniform sampler2D u_normal_tex;
uniform float u_normal_scale;
uniform sampler2D u_mr_tex;
uniform sampler2D u_occlusion_tex;
uniform float u_occlusion_strength;
uniform sampler2D u_emissive_tex;
uniform vec3 u_emissive;
uniform float u_metallic;
uniform float u_rough;
uniform float u_a2;
uniform vec3 u_eye;
uniform int u_alpha_mode;
uniform float u_alpha_cutoff;
out vec4 o_color;

#ifdef NORMAL_TEX
vec3 perturb(vec3 n, vec3 p, vec2 uv) {
    // Cotangent frame from screen-space derivatives (the glTF TANGENT attribute is not used; a
    // frame from the texture coordinates as drawn also follows mirrored coordinates).
    vec3 dp1 = dFdx(p), dp2 = dFdy(p);
    vec2 duv1 = dFdx(uv), duv2 = dFdy(uv);
    vec3 dp2perp = cross(dp2, n), dp1perp = cross(n, dp1);
    vec3 t = dp2perp * duv1.x + dp1perp * duv2.x;
    vec3 b = dp2perp * duv1.y + dp1perp * duv2.y;
    float invmax = inversesqrt(max(dot(t, t), dot(b, b)) + 1e-12);
    vec3 m = texture(u_normal_tex, uv).xyz * 2.0 - 1.0;
    m.xy *= u_normal_scale;
    // t points along increasing u, b along increasing v; glTF's tangent-space +Y (green) points
    // along decreasing v, up in the image (the sample viewer's n x t on unmirrored coordinates).
    return normalize(mat3(t * invmax, -b * invmax, n) * m);
}
#endif

void main() {
    vec4 base = u_base_color;
#ifdef BASE_TEX
    base *= texture(u_base_tex, v_uv);
#endif
    float alpha = base.a;
#ifdef ALPHA_MASK
    if (alpha < u_alpha_cutoff) discard;
    alpha = 1.0;
#else
    alpha = u_alpha_mode == 0 ? 1.0 : alpha;
#endif
#ifdef UNLIT
    // KHR_materials_unlit: the base colour as it is, encoded for display; no light, no tone curve.
    o_color = vec4(pow(clamp(base.rgb, 0.0, 1.0), vec3(1.0 / 2.2)), alpha);
#else
#if defined(VERTEX_LIGHT)
    vec3 color = base.rgb * v_light + v_add;
#elif !defined(PIXEL_LIGHT)
    // n and h interpolated, normalized together here.
    float ndh = max(dot(v_normal, v_half), 0.0) * inversesqrt(max(dot(v_normal, v_normal) * dot(v_half, v_half), 1e-12));
    vec3 color = base.rgb * v_light + v_add + KEY * (v_key * ggx(ndh, u_a2));
#else
    vec3 n = normalize(gl_FrontFacing ? v_normal : -v_normal);
#ifdef NORMAL_TEX
    n = perturb(n, v_world, v_uv);
#endif
    float metallic = u_metallic, rough = u_rough, a2 = u_a2;
#ifdef MR_TEX
    vec4 mr = texture(u_mr_tex, v_uv);  // green: roughness, blue: metalness
    metallic *= mr.b;
    rough = clamp(rough * mr.g, 0.08, 1.0);
    a2 = rough * rough * rough * rough;
#endif
    float ao = 1.0;
#ifdef OCCLUSION_TEX
    ao = 1.0 + u_occlusion_strength * (texture(u_occlusion_tex, v_uv).r - 1.0);
#endif
    vec3 v = normalize(u_eye - v_world);
    float ndv = max(dot(n, v), 1e-4);
    vec3 f0 = mix(vec3(0.04), base.rgb, metallic);
    vec3 diffuse = vec3(0.0), spec = vec3(0.0);
    light(n, v, ndv, KEY_DIR, KEY, f0, a2, diffuse, spec);
    light(n, v, ndv, FILL_DIR, FILL, f0, a2, diffuse, spec);
    light(n, v, ndv, RIM_DIR, RIM, f0, a2, diffuse, spec);
    environment(n, v, ndv, f0, rough, ao, diffuse, spec);
    vec3 color = base.rgb * (1.0 - metallic) * diffuse + spec;
#endif
#ifdef EMISSIVE_TEX
    color += u_emissive * texture(u_emissive_tex, v_uv).rgb;
#else
    color += u_emissive;
#endif
    // ACES filmic tone mapping (Narkowicz's fit) followed by display gamma 1/2.2, as one rational
    // function under a square root: within 0.73 / 255 of the two applied in turn, without pow().
    vec3 c = max(color, vec3(0.0));
    o_color = vec4(sqrt(clamp(c * (2.6524 * c + 0.06784) / (c * (2.5921 * c + 0.59665) + 0.13490), 0.0, 1.0)), alpha);
#endif
}
)";

const char* kBackgroundVertex = R"(#version 330 core
uniform vec4 u_uv_rect;  // offset.xy, scale.xy
out vec2 v_uv;
void main() {
    vec2 p = vec2((gl_VertexID == 1) ? 3.0 : -1.0, (gl_VertexID == 2) ? 3.0 : -1.0);
    vec2 uv = p * 0.5 + 0.5;
    v_uv = u_uv_rect.xy + vec2(uv.x, 1.0 - uv.y) * u_uv_rect.zw;
    gl_Position = vec4(p, 1.0, 1.0);
}
)";

const char* kBackgroundFragment = R"(#version 330 core
in vec2 v_uv;
uniform sampler2D u_tex;
out vec4 o_color;
void main() { o_color = vec4(texture(u_tex, v_uv).rgb, 1.0); }
)";

// Post-process anti-aliasing: an edge-directed filter in the manner of FXAA's fast variant. Four
// bilinear taps around the pixel estimate the edge's direction from luma gradients; two and four
// taps along that direction are averaged, and the wider average is kept unless it overshoots the
// local luma range (which means it crossed another edge). Alpha goes into the luma, so silhouettes
// against a transparent background are smoothed too. On software rasterizers this costs a small
// fraction of what MSAA does.
const char* kFxaaVertex = R"(#version 330 core
layout(location = 0) in vec2 a_position;  // the centres of the tiles to filter, in clip space
void main() { gl_Position = vec4(a_position, 0.0, 1.0); }
)";

const char* kFxaaFragment = R"(#version 330 core
uniform sampler2D u_tex;
uniform vec2 u_texel;  // 1 / size
out vec4 o_color;
const float SPAN = 4.0;
float luma(vec4 c) { return dot(c.rgb, vec3(0.299, 0.587, 0.114)) * 0.75 + c.a * 0.25; }
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec4 m = texelFetch(u_tex, p, 0);
    float l_n = luma(texelFetch(u_tex, p + ivec2(0, 1), 0));
    float l_s = luma(texelFetch(u_tex, p - ivec2(0, 1), 0));
    float l_e = luma(texelFetch(u_tex, p + ivec2(1, 0), 0));
    float l_w = luma(texelFetch(u_tex, p - ivec2(1, 0), 0));
    float l_m = luma(m);
    float lo = min(l_m, min(min(l_n, l_s), min(l_e, l_w)));
    float hi = max(l_m, max(max(l_n, l_s), max(l_e, l_w)));
    // Along the edge: perpendicular to the luma gradient, stretched towards the nearer axis.
    vec2 dir = vec2(l_s - l_n, l_e - l_w);
    float reduce = max((l_n + l_s + l_e + l_w) * (0.25 / 8.0), 1.0 / 128.0);
    dir = clamp(dir / (min(abs(dir.x), abs(dir.y)) + reduce), -SPAN, SPAN) * u_texel;
    vec2 uv = gl_FragCoord.xy * u_texel;
    vec4 a = 0.5 * (texture(u_tex, uv - dir * (1.0 / 6.0)) + texture(u_tex, uv + dir * (1.0 / 6.0)));
    vec4 b = 0.5 * a + 0.25 * (texture(u_tex, uv - dir * 0.5) + texture(u_tex, uv + dir * 0.5));
    float l_b = luma(b);
    vec4 filtered = (l_b < lo || l_b > hi) ? a : b;
    // Flat areas (a small luma range) keep the pixel as it is.
    o_color = (hi - lo) < max(1.0 / 16.0, hi * 0.166) ? m : filtered;
}
)";

struct Mesh {
    GLuint vao = 0, vbo_dynamic = 0, vbo_uv = 0, ebo = 0;
    std::size_t vertices = 0, indices = 0;
    int material = -1;
    bool visible = true;
    std::array<float, 16> model{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    std::array<float, 3> center{0, 0, 0};  // object-space centre, for sorting blended meshes
    std::vector<float> interleaved;        // the current vertices (position, normal), as uploaded
    // Each edge once: its two vertices and the triangles on either side (kNoTriangle on a border),
    // for finding silhouettes on the CPU.
    std::vector<std::array<std::uint32_t, 4>> edges;
    std::vector<std::uint32_t> triangles;  // the index buffer, 3 per triangle
};

constexpr std::uint32_t kNoTriangle = 0xffffffffu;

std::vector<std::array<std::uint32_t, 4>> mesh_edges(const std::uint32_t* indices, std::size_t m) {
    struct Half {
        std::uint32_t a, b, tri;
    };
    std::vector<Half> half;
    half.reserve(m);
    for (std::size_t i = 0; i < m; i += 3) {
        for (int k = 0; k < 3; ++k) {
            std::uint32_t a = indices[i + static_cast<std::size_t>(k)], b = indices[i + static_cast<std::size_t>((k + 1) % 3)];
            if (a > b) std::swap(a, b);
            if (a != b) half.push_back({a, b, static_cast<std::uint32_t>(i / 3)});
        }
    }
    std::sort(half.begin(), half.end(), [](const Half& x, const Half& y) { return x.a != y.a ? x.a < y.a : x.b < y.b; });
    std::vector<std::array<std::uint32_t, 4>> edges;
    for (std::size_t i = 0; i < half.size();) {
        std::size_t j = i + 1;
        while (j < half.size() && half[j].a == half[i].a && half[j].b == half[i].b) ++j;
        // Two triangles: an inner edge. One, or more than two (non-manifold): treat as a border.
        const std::uint32_t other = j - i == 2 ? half[i + 1].tri : kNoTriangle;
        edges.push_back({half[i].a, half[i].b, half[i].tri, other});
        i = j;
    }
    return edges;
}

struct Uniforms {
    GLint model, view, proj, normal_matrix, content, base_color, base_tex, normal_tex, normal_scale, mr_tex, occlusion_tex,
        occlusion_strength, emissive_tex, emissive, metallic, rough, a2, f0, alpha_mode, alpha_cutoff, eye, two_sided;
};

// A shader variant: which textures the material has, whether it discards, and where its light is
// computed (see kMeshCommon).
enum VariantBits : unsigned {
    kMaskBit = 1,
    kBaseTexBit = 2,
    kNormalTexBit = 4,
    kEmissiveTexBit = 8,
    kMrTexBit = 16,
    kOcclusionTexBit = 32,
    kVertexLightBit = 64,
    kPixelLightBit = 128,
    kUnlitBit = 256,
    kVariants = 512
};
// The lowest roughness whose specular lobes are all shaded per vertex: GGX at roughness 0.52
// (alpha 0.27) falls to half its peak 10 degrees off the half vector.
constexpr float kVertexRoughnessMin = 0.52f;
// The lowest roughness shaded: below it the lobe of a directional light is a speck under a pixel.
constexpr float kMinRoughness = 0.08f;

float roughness_of(const MaterialDesc& mat) { return std::clamp(mat.roughness, kMinRoughness, 1.0f); }

struct Program {
    GLuint id = 0;
    Uniforms u{};
};

void normal_matrix(const float* m, float* out) {
    // Inverse transpose of the upper 3x3 (column-major in and out).
    const float a = m[0], b = m[4], c = m[8], d = m[1], e = m[5], f = m[9], g = m[2], h = m[6], i = m[10];
    const float A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
    float det = a * A + b * B + c * C;
    if (std::fabs(det) < 1e-20f) det = 1e-20f;
    const float inv = 1.0f / det;
    // Inverse is adj^T / det; its transpose is adj / det with adj the cofactor matrix.
    const float cof[9] = {A, B, C, -(b * i - c * h), a * i - c * g, -(a * h - b * g), b * f - c * e, -(a * f - c * d),
                          a * e - b * d};
    // cof is row-major cofactors [r][c]; column-major output of the cofactor matrix / det.
    for (int r = 0; r < 3; ++r)
        for (int col = 0; col < 3; ++col) out[col * 3 + r] = cof[r * 3 + col] * inv;
}

}  // namespace

struct Renderer::Impl {
    GladGLContext gl{};
    int width = 0, height = 0, samples = 0;
    Stats stats;
    std::array<Program, kVariants> programs{};  // compiled on first use by a material
    GLuint bg_program = 0, fxaa_program = 0, empty_vao = 0;
    GLuint fxaa_vao = 0, fxaa_vbo = 0;  // the tiles to filter: a square point per tile
    std::vector<float> fxaa_points;
    std::vector<float> scratch_x, scratch_y;  // edge_rects(): vertices on screen
    std::vector<std::int8_t> scratch_facing;  // edge_rects(): which way each triangle faces
    GLint fxaa_texel_loc = -1;
    bool fxaa = false;
    std::int64_t filtered_pixels = 0;  // the edge filter's area in the last frame
    GLuint post_fbo = 0, post_color = 0, post_depth = 0;  // the frame before FXAA
    const Program* current = nullptr;
    GLint bg_tex_loc = -1, bg_rect_loc = -1;
    GLuint msaa_fbo = 0, msaa_color = 0, msaa_depth = 0;
    GLuint resolve_fbo = 0, resolve_color = 0, resolve_depth = 0;
    std::array<GLuint, 2> pbo{0, 0};
    std::array<bool, 2> pbo_pending{false, false};
    int pbo_next = 0;
    std::vector<GLuint> textures;  // index = texture id; 0 = deleted
    std::vector<MaterialDesc> materials;
    std::vector<Mesh> meshes;
    std::array<float, 16> view{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    std::array<float, 16> proj{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    std::array<float, 3> eye{0, 0, 1};
    std::array<float, 4> background{0, 0, 0, 0};
    GLuint bg_texture = 0;
    int bg_w = 0, bg_h = 0;
    std::array<float, 3> content{0, 0, 1};
    std::vector<std::uint8_t> scratch;

    GLuint gen_buffer() {
        GLuint b = 0;
        gl.GenBuffers(1, &b);
        ++stats.buffers;
        return b;
    }
    void del_buffer(GLuint& b) {
        if (b) {
            gl.DeleteBuffers(1, &b);
            --stats.buffers;
            b = 0;
        }
    }
    GLuint gen_texture() {
        GLuint t = 0;
        gl.GenTextures(1, &t);
        ++stats.textures;
        return t;
    }
    void del_texture(GLuint& t) {
        if (t) {
            gl.DeleteTextures(1, &t);
            --stats.textures;
            t = 0;
        }
    }
    GLuint gen_renderbuffer() {
        GLuint r = 0;
        gl.GenRenderbuffers(1, &r);
        ++stats.renderbuffers;
        return r;
    }
    void del_renderbuffer(GLuint& r) {
        if (r) {
            gl.DeleteRenderbuffers(1, &r);
            --stats.renderbuffers;
            r = 0;
        }
    }
    GLuint gen_framebuffer() {
        GLuint f = 0;
        gl.GenFramebuffers(1, &f);
        ++stats.framebuffers;
        return f;
    }
    void del_framebuffer(GLuint& f) {
        if (f) {
            gl.DeleteFramebuffers(1, &f);
            --stats.framebuffers;
            f = 0;
        }
    }

    GLuint compile(GLenum type, const char* source) {
        GLuint s = gl.CreateShader(type);
        ++stats.shaders;
        gl.ShaderSource(s, 1, &source, nullptr);
        gl.CompileShader(s);
        GLint ok = 0;
        gl.GetShaderiv(s, GL_COMPILE_STATUS, &ok);
        if (!ok) {
            char log[2048];
            gl.GetShaderInfoLog(s, sizeof log, nullptr, log);
            gl.DeleteShader(s);
            --stats.shaders;
            throw RenderError(std::string("shader compile failed: ") + log);
        }
        return s;
    }

    GLuint link(const char* vs, const char* fs) {
        GLuint v = compile(GL_VERTEX_SHADER, vs);
        GLuint f = 0;
        try {
            f = compile(GL_FRAGMENT_SHADER, fs);
        } catch (...) {
            gl.DeleteShader(v);
            --stats.shaders;
            throw;
        }
        GLuint p = gl.CreateProgram();
        ++stats.programs;
        gl.AttachShader(p, v);
        gl.AttachShader(p, f);
        gl.LinkProgram(p);
        gl.DetachShader(p, v);
        gl.DetachShader(p, f);
        gl.DeleteShader(v);
        gl.DeleteShader(f);
        stats.shaders -= 2;
        GLint ok = 0;
        gl.GetProgramiv(p, GL_LINK_STATUS, &ok);
        if (!ok) {
            char log[2048];
            gl.GetProgramInfoLog(p, sizeof log, nullptr, log);
            gl.DeleteProgram(p);
            --stats.programs;
            throw RenderError(std::string("shader link failed: ") + log);
        }
        return p;
    }

    void create_targets() {
        destroy_targets();
        resolve_fbo = gen_framebuffer();
        gl.BindFramebuffer(GL_FRAMEBUFFER, resolve_fbo);
        resolve_color = gen_renderbuffer();
        gl.BindRenderbuffer(GL_RENDERBUFFER, resolve_color);
        gl.RenderbufferStorage(GL_RENDERBUFFER, GL_RGBA8, width, height);
        gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, resolve_color);
        if (samples <= 1 && !fxaa) {
            resolve_depth = gen_renderbuffer();
            gl.BindRenderbuffer(GL_RENDERBUFFER, resolve_depth);
            gl.RenderbufferStorage(GL_RENDERBUFFER, GL_DEPTH_COMPONENT24, width, height);
            gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER, resolve_depth);
        }
        check_framebuffer("resolve");
        if (samples > 1) {
            msaa_fbo = gen_framebuffer();
            gl.BindFramebuffer(GL_FRAMEBUFFER, msaa_fbo);
            msaa_color = gen_renderbuffer();
            gl.BindRenderbuffer(GL_RENDERBUFFER, msaa_color);
            gl.RenderbufferStorageMultisample(GL_RENDERBUFFER, samples, GL_RGBA8, width, height);
            gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, msaa_color);
            msaa_depth = gen_renderbuffer();
            gl.BindRenderbuffer(GL_RENDERBUFFER, msaa_depth);
            gl.RenderbufferStorageMultisample(GL_RENDERBUFFER, samples, GL_DEPTH_COMPONENT24, width, height);
            gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER, msaa_depth);
            check_framebuffer("multisample");
        }
        if (fxaa) {
            post_fbo = gen_framebuffer();
            gl.BindFramebuffer(GL_FRAMEBUFFER, post_fbo);
            post_color = gen_texture();
            gl.BindTexture(GL_TEXTURE_2D, post_color);
            gl.TexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
            gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
            gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
            gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
            gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
            gl.FramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, post_color, 0);
            if (samples <= 1) {
                post_depth = gen_renderbuffer();
                gl.BindRenderbuffer(GL_RENDERBUFFER, post_depth);
                gl.RenderbufferStorage(GL_RENDERBUFFER, GL_DEPTH_COMPONENT24, width, height);
                gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER, post_depth);
            }
            check_framebuffer("post-process");
        }
        for (auto& b : pbo) {
            if (!b) b = gen_buffer();
            gl.BindBuffer(GL_PIXEL_PACK_BUFFER, b);
            gl.BufferData(GL_PIXEL_PACK_BUFFER, static_cast<GLsizeiptr>(width) * height * 4, nullptr, GL_STREAM_READ);
        }
        gl.BindBuffer(GL_PIXEL_PACK_BUFFER, 0);
        pbo_pending = {false, false};
        gl.BindFramebuffer(GL_FRAMEBUFFER, 0);
    }

    void destroy_targets() {
        del_framebuffer(msaa_fbo);
        del_renderbuffer(msaa_color);
        del_renderbuffer(msaa_depth);
        del_framebuffer(resolve_fbo);
        del_renderbuffer(resolve_color);
        del_renderbuffer(resolve_depth);
        del_framebuffer(post_fbo);
        del_texture(post_color);
        del_renderbuffer(post_depth);
    }

    void check_framebuffer(const char* what) {
        GLenum status = gl.CheckFramebufferStatus(GL_FRAMEBUFFER);
        if (status != GL_FRAMEBUFFER_COMPLETE) {
            throw RenderError(std::string(what) + " framebuffer incomplete (0x" + std::to_string(status) + ")");
        }
    }

    void use(const Program& program) {
        if (current == &program) return;
        gl.UseProgram(program.id);
        current = &program;
        gl.UniformMatrix4fv(program.u.view, 1, GL_FALSE, view.data());
        gl.UniformMatrix4fv(program.u.proj, 1, GL_FALSE, proj.data());
        gl.Uniform3fv(program.u.eye, 1, eye.data());
        gl.Uniform3fv(program.u.content, 1, content.data());
    }

    static unsigned variant(const MaterialDesc& mat) {
        // Light per vertex needs a dielectric (a metal's reflectance is its textured colour)
        // without maps whose detail is per pixel.
        const bool pixel = mat.unlit || mat.metallic > 0.0f || mat.normal_texture >= 0 || mat.metallic_roughness_texture >= 0 ||
                           mat.occlusion_texture >= 0;
        const bool vertex = !pixel && roughness_of(mat) >= kVertexRoughnessMin;
        return (mat.alpha_mode == AlphaMode::kMask ? kMaskBit : 0u) | (mat.base_color_texture >= 0 ? kBaseTexBit : 0u) |
               (mat.normal_texture >= 0 ? kNormalTexBit : 0u) | (mat.emissive_texture >= 0 ? kEmissiveTexBit : 0u) |
               (mat.metallic_roughness_texture >= 0 ? kMrTexBit : 0u) |
               (mat.occlusion_texture >= 0 ? kOcclusionTexBit : 0u) | (vertex ? kVertexLightBit : 0u) |
               (pixel ? kPixelLightBit : 0u) | (mat.unlit ? kUnlitBit : 0u);
    }

    const Program& program_for(unsigned bits) {
        Program& program = programs[bits];
        if (program.id) return program;
        std::string defines = "#version 330 core\n";
        if (bits & kMaskBit) defines += "#define ALPHA_MASK 1\n";
        if (bits & kBaseTexBit) defines += "#define BASE_TEX 1\n";
        if (bits & kNormalTexBit) defines += "#define NORMAL_TEX 1\n";
        if (bits & kEmissiveTexBit) defines += "#define EMISSIVE_TEX 1\n";
        if (bits & kMrTexBit) defines += "#define MR_TEX 1\n";
        if (bits & kOcclusionTexBit) defines += "#define OCCLUSION_TEX 1\n";
        if (bits & kVertexLightBit) defines += "#define VERTEX_LIGHT 1\n";
        if (bits & kPixelLightBit) defines += "#define PIXEL_LIGHT 1\n";
        if (bits & kUnlitBit) defines += "#define UNLIT 1\n";
        defines += kMeshCommon;
        program.id = link((defines + kMeshVertex).c_str(), (defines + kMeshFragment).c_str());
        auto loc = [&](const char* name) { return gl.GetUniformLocation(program.id, name); };
        program.u = Uniforms{loc("u_model"), loc("u_view"), loc("u_proj"), loc("u_normal_matrix"), loc("u_content"),
                             loc("u_base_color"), loc("u_base_tex"), loc("u_normal_tex"), loc("u_normal_scale"),
                             loc("u_mr_tex"), loc("u_occlusion_tex"), loc("u_occlusion_strength"),
                             loc("u_emissive_tex"), loc("u_emissive"), loc("u_metallic"), loc("u_rough"), loc("u_a2"),
                             loc("u_f0"), loc("u_alpha_mode"), loc("u_alpha_cutoff"), loc("u_eye"),
                             loc("u_two_sided")};
        gl.UseProgram(program.id);
        gl.Uniform1i(program.u.base_tex, 0);
        gl.Uniform1i(program.u.normal_tex, 1);
        gl.Uniform1i(program.u.emissive_tex, 2);
        gl.Uniform1i(program.u.mr_tex, 3);
        gl.Uniform1i(program.u.occlusion_tex, 4);
        current = nullptr;
        return program;
    }

    void bind_texture(int unit, int id) {
        if (id < 0) return;
        gl.ActiveTexture(static_cast<GLenum>(GL_TEXTURE0 + unit));
        gl.BindTexture(GL_TEXTURE_2D, textures[static_cast<std::size_t>(id)]);
    }

    void draw_mesh(const Mesh& mesh) {
        const MaterialDesc& mat = materials[static_cast<std::size_t>(mesh.material)];
        use(program_for(variant(mat)));
        const Uniforms& u = current->u;
        float nm[9];
        normal_matrix(mesh.model.data(), nm);
        gl.UniformMatrix4fv(u.model, 1, GL_FALSE, mesh.model.data());
        gl.UniformMatrix3fv(u.normal_matrix, 1, GL_FALSE, nm);
        gl.Uniform4fv(u.base_color, 1, mat.base_color);
        bind_texture(0, mat.base_color_texture);
        bind_texture(1, mat.normal_texture);
        bind_texture(2, mat.emissive_texture);
        bind_texture(3, mat.metallic_roughness_texture);
        bind_texture(4, mat.occlusion_texture);
        gl.Uniform1f(u.normal_scale, mat.normal_scale);
        gl.Uniform1f(u.occlusion_strength, mat.occlusion_strength);
        gl.Uniform3fv(u.emissive, 1, mat.emissive);
        gl.Uniform1f(u.metallic, mat.metallic);
        // With a metallic-roughness map the shader scales the factor by the map, then clamps.
        const float rough = mat.metallic_roughness_texture >= 0 ? std::clamp(mat.roughness, 0.0f, 1.0f) : roughness_of(mat);
        gl.Uniform1f(u.rough, rough);
        gl.Uniform1f(u.a2, rough * rough * rough * rough);
        float f0[3];
        for (int c = 0; c < 3; ++c) f0[c] = 0.04f + (mat.base_color[c] - 0.04f) * mat.metallic;
        gl.Uniform3fv(u.f0, 1, f0);
        gl.Uniform1i(u.alpha_mode, static_cast<int>(mat.alpha_mode));
        gl.Uniform1f(u.alpha_cutoff, mat.alpha_cutoff);
        gl.Uniform1f(u.two_sided, mat.double_sided ? 1.0f : 0.0f);
        if (mat.double_sided) gl.Disable(GL_CULL_FACE);
        else gl.Enable(GL_CULL_FACE);
        gl.BindVertexArray(mesh.vao);
        gl.DrawElements(GL_TRIANGLES, static_cast<GLsizei>(mesh.indices), GL_UNSIGNED_INT, nullptr);
    }

    float view_depth(const Mesh& mesh) const {
        const float* m = mesh.model.data();
        const float* c = mesh.center.data();
        float w[3];
        for (int r = 0; r < 3; ++r) w[r] = m[r] * c[0] + m[4 + r] * c[1] + m[8 + r] * c[2] + m[12 + r];
        return view[2] * w[0] + view[6] * w[1] + view[10] * w[2] + view[14];  // z in view space
    }

    // Where the edge filter has work: the tiles (kTile pixels square) that a silhouette or a border
    // of a mesh crosses, found on the CPU from the vertices as drawn (an edge between a triangle
    // facing the eye and one facing away, or an edge with one triangle), plus every tile that an
    // alpha-tested or blended mesh covers (its edges are in the texture). Elsewhere the frame is
    // smooth shading inside a surface, or background: the filter would leave it as it is, and a
    // software rasterizer spends as much on such a pixel as on an edge. Rectangles as x, y, w, h
    // from the bottom left.
    static constexpr int kTile = 8;  // edge_rects()' grid: the side of a tile, in pixels

    std::vector<std::array<int, 4>> edge_rects(const std::vector<const Mesh*>& drawn) {
        constexpr float kPad = 2.0f;  // the filter changes pixels next to an edge, on both sides
        const int gw = (width + kTile - 1) / kTile, gh = (height + kTile - 1) / kTile;
        std::vector<std::uint8_t> grid(static_cast<std::size_t>(gw) * static_cast<std::size_t>(gh), 0);
        const float inv_tile = 1.0f / kTile;
        auto mark = [&](float x0, float y0, float x1, float y1) {
            if (!(x1 >= -kPad && y1 >= -kPad && x0 <= static_cast<float>(width) + kPad && y0 <= static_cast<float>(height) + kPad)) return;
            const int tx0 = std::clamp(static_cast<int>((std::max(x0, 0.0f) - kPad) * inv_tile), 0, gw - 1);
            const int tx1 = std::clamp(static_cast<int>(std::min(x1 + kPad, static_cast<float>(width)) * inv_tile), 0, gw - 1);
            const int ty0 = std::clamp(static_cast<int>((std::max(y0, 0.0f) - kPad) * inv_tile), 0, gh - 1);
            const int ty1 = std::clamp(static_cast<int>(std::min(y1 + kPad, static_cast<float>(height)) * inv_tile), 0, gh - 1);
            for (int ty = ty0; ty <= ty1; ++ty)
                for (int tx = tx0; tx <= tx1; ++tx) grid[static_cast<std::size_t>(ty * gw + tx)] = 1;
        };
        // A segment: boxes along it, each under a tile long, so a long edge marks only its tiles.
        auto mark_segment = [&](float ax, float ay, float bx, float by) {
            const float boxes = std::max(std::fabs(bx - ax), std::fabs(by - ay)) * (2.0f / kTile);
            const int steps = boxes < 4095.0f ? 1 + static_cast<int>(boxes) : 4096;  // also when NaN
            float px = ax, py = ay;
            for (int k = 1; k <= steps; ++k) {
                const float t = static_cast<float>(k) / static_cast<float>(steps);
                const float qx = ax + (bx - ax) * t, qy = ay + (by - ay) * t;
                mark(std::min(px, qx), std::min(py, qy), std::max(px, qx), std::max(py, qy));
                px = qx, py = qy;
            }
        };
        auto& sx = scratch_x;
        auto& sy = scratch_y;
        auto& facing = scratch_facing;
        const float hw = 0.5f * static_cast<float>(width), hh = 0.5f * static_cast<float>(height);
        for (const Mesh* mesh : drawn) {
            // clip = proj * view * model, then the content transform, as the vertex shader does.
            float mvp[16];
            float mv[16];
            const float* m = mesh->model.data();
            for (int c = 0; c < 4; ++c)
                for (int r = 0; r < 4; ++r) mv[4 * c + r] = view[r] * m[4 * c] + view[4 + r] * m[4 * c + 1] + view[8 + r] * m[4 * c + 2] + view[12 + r] * m[4 * c + 3];
            for (int c = 0; c < 4; ++c)
                for (int r = 0; r < 4; ++r) mvp[4 * c + r] = proj[r] * mv[4 * c] + proj[4 + r] * mv[4 * c + 1] + proj[8 + r] * mv[4 * c + 2] + proj[12 + r] * mv[4 * c + 3];
            const std::size_t n = mesh->vertices;
            sx.resize(n);
            sy.resize(n);
            const float* v = mesh->interleaved.data();
            for (std::size_t i = 0; i < n; ++i, v += 6) {
                const float cx = mvp[0] * v[0] + mvp[4] * v[1] + mvp[8] * v[2] + mvp[12];
                const float cy = mvp[1] * v[0] + mvp[5] * v[1] + mvp[9] * v[2] + mvp[13];
                const float cw = mvp[3] * v[0] + mvp[7] * v[1] + mvp[11] * v[2] + mvp[15];
                if (!(cw > 1e-6f) || !std::isfinite(cx) || !std::isfinite(cy)) {
                    return {{0, 0, width, height}};  // a vertex at or behind the eye: filter everything
                }
                const float inv = 1.0f / cw;
                sx[i] = ((cx * content[2]) * inv + content[0] + 1.0f) * hw;
                sy[i] = ((cy * content[2]) * inv + content[1] + 1.0f) * hh;
                if (!std::isfinite(sx[i]) || !std::isfinite(sy[i])) return {{0, 0, width, height}};
            }
            const std::uint32_t* tri = mesh->triangles.data();
            const std::size_t nt = mesh->triangles.size() / 3;
            const AlphaMode alpha = materials[static_cast<std::size_t>(mesh->material)].alpha_mode;
            if (alpha != AlphaMode::kOpaque) {
                for (std::size_t t = 0; t < nt; ++t) {
                    const std::uint32_t a = tri[3 * t], b = tri[3 * t + 1], c = tri[3 * t + 2];
                    mark(std::min({sx[a], sx[b], sx[c]}), std::min({sy[a], sy[b], sy[c]}), std::max({sx[a], sx[b], sx[c]}),
                         std::max({sy[a], sy[b], sy[c]}));
                }
                continue;
            }
            facing.resize(nt);
            for (std::size_t t = 0; t < nt; ++t) {
                const std::uint32_t a = tri[3 * t], b = tri[3 * t + 1], c = tri[3 * t + 2];
                const float area = (sx[b] - sx[a]) * (sy[c] - sy[a]) - (sx[c] - sx[a]) * (sy[b] - sy[a]);
                facing[t] = area > 0.0f ? 1 : (area < 0.0f ? -1 : 0);
            }
            for (const auto& e : mesh->edges) {
                if (e[3] != kNoTriangle && facing[e[2]] == facing[e[3]] && facing[e[2]] != 0) continue;
                mark_segment(sx[e[0]], sy[e[0]], sx[e[1]], sy[e[1]]);
            }
        }
        // Runs of marked tiles per row; a run repeated in the next row grows the same rectangle.
        std::vector<std::array<int, 4>> rects, open, next;
        for (int ty = 0; ty <= gh; ++ty) {
            next.clear();
            for (int tx = 0; ty < gh && tx < gw;) {
                if (!grid[static_cast<std::size_t>(ty * gw + tx)]) {
                    ++tx;
                    continue;
                }
                int end = tx;
                while (end < gw && grid[static_cast<std::size_t>(ty * gw + end)]) ++end;
                std::array<int, 4> run{tx, ty, end - tx, 1};
                for (auto& o : open) {
                    if (o[0] == tx && o[2] == end - tx && o[3] > 0) {
                        run = {o[0], o[1], o[2], o[3] + 1};
                        o[3] = 0;  // carried into this row
                        break;
                    }
                }
                next.push_back(run);
                tx = end;
            }
            for (const auto& o : open) {
                if (o[3] > 0) rects.push_back(o);
            }
            open.swap(next);
        }
        for (auto& r : rects) {
            r = {r[0] * kTile, r[1] * kTile, std::min(r[2] * kTile, width - r[0] * kTile), std::min(r[3] * kTile, height - r[1] * kTile)};
        }
        return rects;
    }

    Mesh& mesh_at(int id) {
        if (id < 0 || static_cast<std::size_t>(id) >= meshes.size() || meshes[static_cast<std::size_t>(id)].vao == 0) {
            throw RenderError("no mesh " + std::to_string(id));
        }
        return meshes[static_cast<std::size_t>(id)];
    }
};

Renderer::Renderer(std::uintptr_t proc_address, int width, int height, int samples) : impl_(std::make_unique<Impl>()) {
    if (proc_address == 0) throw RenderError("no GL proc address");
    if (width < 1 || height < 1 || width > 16384 || height > 16384) throw RenderError("frame size must be 1..16384");
    auto& I = *impl_;
    int version = gladLoadGLContext(&I.gl, reinterpret_cast<GLADloadfunc>(proc_address));
    if (version == 0 || GLAD_VERSION_MAJOR(version) < 3 ||
        (GLAD_VERSION_MAJOR(version) == 3 && GLAD_VERSION_MINOR(version) < 3)) {
        throw RenderError("the current context does not provide OpenGL 3.3 core");
    }
    I.width = width;
    I.height = height;
    GLint max_samples = 0;
    I.gl.GetIntegerv(GL_MAX_SAMPLES, &max_samples);
    I.samples = std::clamp(samples, 0, std::max(0, static_cast<int>(max_samples)));
    I.program_for(0);  // the plain variant, so a GL that cannot compile the shaders fails here
    I.bg_program = I.link(kBackgroundVertex, kBackgroundFragment);
    I.fxaa_program = I.link(kFxaaVertex, kFxaaFragment);
    auto& gl = I.gl;
    gl.UseProgram(I.fxaa_program);
    gl.Uniform1i(gl.GetUniformLocation(I.fxaa_program, "u_tex"), 0);
    I.fxaa_texel_loc = gl.GetUniformLocation(I.fxaa_program, "u_texel");
    I.bg_tex_loc = gl.GetUniformLocation(I.bg_program, "u_tex");
    I.bg_rect_loc = gl.GetUniformLocation(I.bg_program, "u_uv_rect");
    gl.GenVertexArrays(1, &I.empty_vao);
    ++I.stats.vertex_arrays;
    gl.GenVertexArrays(1, &I.fxaa_vao);
    ++I.stats.vertex_arrays;
    gl.BindVertexArray(I.fxaa_vao);
    I.fxaa_vbo = I.gen_buffer();
    gl.BindBuffer(GL_ARRAY_BUFFER, I.fxaa_vbo);
    gl.VertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 8, reinterpret_cast<void*>(0));
    gl.EnableVertexAttribArray(0);
    gl.BindVertexArray(0);
    I.create_targets();
    gl.PixelStorei(GL_UNPACK_ALIGNMENT, 1);
    gl.PixelStorei(GL_PACK_ALIGNMENT, 1);
}

Renderer::~Renderer() {
    auto& I = *impl_;
    auto& gl = I.gl;
    for (auto& m : I.meshes) {
        if (m.vao) {
            gl.DeleteVertexArrays(1, &m.vao);
            --I.stats.vertex_arrays;
        }
        I.del_buffer(m.vbo_dynamic);
        I.del_buffer(m.vbo_uv);
        I.del_buffer(m.ebo);
    }
    for (auto& t : I.textures) I.del_texture(t);
    I.del_texture(I.bg_texture);
    for (auto& b : I.pbo) I.del_buffer(b);
    I.destroy_targets();
    for (GLuint* vao : {&I.empty_vao, &I.fxaa_vao}) {
        if (*vao) {
            gl.DeleteVertexArrays(1, vao);
            --I.stats.vertex_arrays;
            *vao = 0;
        }
    }
    I.del_buffer(I.fxaa_vbo);
    for (GLuint* p : {&I.bg_program, &I.fxaa_program}) {
        if (*p) {
            gl.DeleteProgram(*p);
            --I.stats.programs;
            *p = 0;
        }
    }
    for (Program& p : I.programs) {
        if (p.id) {
            gl.DeleteProgram(p.id);
            --I.stats.programs;
            p.id = 0;
        }
    }
    gl.Finish();
}

int Renderer::add_texture(const std::uint8_t* rgba, int width, int height, bool srgb) {
    if (width < 1 || height < 1 || width > 16384 || height > 16384) throw RenderError("texture size must be 1..16384");
    auto& I = *impl_;
    auto& gl = I.gl;
    GLuint t = I.gen_texture();
    gl.BindTexture(GL_TEXTURE_2D, t);
    // glTF puts texture coordinate (0, 0) at the first (top) row of the image, and GL samples
    // t = 0 from the first row uploaded: upload the rows as they are.
    gl.TexImage2D(GL_TEXTURE_2D, 0, srgb ? GL_SRGB8_ALPHA8 : GL_RGBA8, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, rgba);
    gl.GenerateMipmap(GL_TEXTURE_2D);
    gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR_MIPMAP_NEAREST);
    gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_REPEAT);
    gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_REPEAT);
    I.textures.push_back(t);
    return static_cast<int>(I.textures.size() - 1);
}

int Renderer::add_material(const MaterialDesc& material) {
    auto& I = *impl_;
    for (int tex : {material.base_color_texture, material.normal_texture, material.emissive_texture,
                    material.metallic_roughness_texture, material.occlusion_texture}) {
        if (tex >= static_cast<int>(I.textures.size())) throw RenderError("material names texture " + std::to_string(tex) + " that does not exist");
    }
    I.program_for(Impl::variant(material));  // compile errors surface here, not mid-frame
    I.materials.push_back(material);
    return static_cast<int>(I.materials.size() - 1);
}

int Renderer::add_mesh(const float* positions, const float* normals, const float* texcoords, std::size_t n,
                       const std::uint32_t* indices, std::size_t m, int material) {
    auto& I = *impl_;
    auto& gl = I.gl;
    if (n == 0 || m == 0 || m % 3 != 0) throw RenderError("a mesh needs vertices and whole triangles");
    if (material < 0 || material >= static_cast<int>(I.materials.size())) throw RenderError("no material " + std::to_string(material));
    for (std::size_t i = 0; i < m; ++i) {
        if (indices[i] >= n) throw RenderError("index " + std::to_string(indices[i]) + " is past the " + std::to_string(n) + " vertices");
    }
    Mesh mesh;
    mesh.vertices = n;
    mesh.indices = m;
    mesh.material = material;
    float lo[3] = {positions[0], positions[1], positions[2]}, hi[3] = {lo[0], lo[1], lo[2]};
    for (std::size_t v = 0; v < n; ++v) {
        for (int c = 0; c < 3; ++c) {
            lo[c] = std::min(lo[c], positions[3 * v + c]);
            hi[c] = std::max(hi[c], positions[3 * v + c]);
        }
    }
    for (int c = 0; c < 3; ++c) mesh.center[static_cast<std::size_t>(c)] = 0.5f * (lo[c] + hi[c]);
    mesh.triangles.assign(indices, indices + m);
    mesh.edges = mesh_edges(indices, m);
    gl.GenVertexArrays(1, &mesh.vao);
    ++I.stats.vertex_arrays;
    gl.BindVertexArray(mesh.vao);
    mesh.vbo_dynamic = I.gen_buffer();
    gl.BindBuffer(GL_ARRAY_BUFFER, mesh.vbo_dynamic);
    gl.BufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(n * 24), nullptr, GL_DYNAMIC_DRAW);
    gl.VertexAttribPointer(0, 3, GL_FLOAT, GL_FALSE, 24, reinterpret_cast<void*>(0));
    gl.VertexAttribPointer(1, 3, GL_FLOAT, GL_FALSE, 24, reinterpret_cast<void*>(12));
    gl.EnableVertexAttribArray(0);
    gl.EnableVertexAttribArray(1);
    mesh.vbo_uv = I.gen_buffer();
    gl.BindBuffer(GL_ARRAY_BUFFER, mesh.vbo_uv);
    std::vector<float> uv(texcoords ? texcoords : nullptr, texcoords ? texcoords + 2 * n : nullptr);
    if (!texcoords) uv.assign(2 * n, 0.0f);
    gl.BufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(n * 8), uv.data(), GL_STATIC_DRAW);
    gl.VertexAttribPointer(2, 2, GL_FLOAT, GL_FALSE, 8, reinterpret_cast<void*>(0));
    gl.EnableVertexAttribArray(2);
    mesh.ebo = I.gen_buffer();
    gl.BindBuffer(GL_ELEMENT_ARRAY_BUFFER, mesh.ebo);
    gl.BufferData(GL_ELEMENT_ARRAY_BUFFER, static_cast<GLsizeiptr>(m * 4), indices, GL_STATIC_DRAW);
    gl.BindVertexArray(0);
    I.meshes.push_back(std::move(mesh));
    int id = static_cast<int>(I.meshes.size() - 1);
    update_mesh(id, positions, normals);
    return id;
}

void Renderer::update_mesh(int id, const float* positions, const float* normals) {
    auto& I = *impl_;
    Mesh& mesh = I.mesh_at(id);
    mesh.interleaved.resize(mesh.vertices * 6);
    float* out = mesh.interleaved.data();
    for (std::size_t v = 0; v < mesh.vertices; ++v) {
        std::memcpy(out + 6 * v, positions + 3 * v, 12);
        if (normals) std::memcpy(out + 6 * v + 3, normals + 3 * v, 12);
        else out[6 * v + 3] = 0.0f, out[6 * v + 4] = 0.0f, out[6 * v + 5] = 1.0f;
    }
    I.gl.BindBuffer(GL_ARRAY_BUFFER, mesh.vbo_dynamic);
    I.gl.BufferSubData(GL_ARRAY_BUFFER, 0, static_cast<GLsizeiptr>(mesh.vertices * 24), out);
}

void Renderer::set_mesh_transform(int id, const float* matrix) {
    std::memcpy(impl_->mesh_at(id).model.data(), matrix, 64);
}

void Renderer::set_mesh_visible(int id, bool visible) { impl_->mesh_at(id).visible = visible; }

std::size_t Renderer::mesh_vertex_count(int id) const { return impl_->mesh_at(id).vertices; }

void Renderer::set_camera(const float* view, const float* projection, const float* eye) {
    std::memcpy(impl_->view.data(), view, 64);
    std::memcpy(impl_->proj.data(), projection, 64);
    std::memcpy(impl_->eye.data(), eye, 12);
}

void Renderer::set_background(float r, float g, float b, float a) { impl_->background = {r, g, b, a}; }

void Renderer::set_background_image(const std::uint8_t* rgba, int width, int height) {
    auto& I = *impl_;
    I.del_texture(I.bg_texture);
    if (rgba == nullptr) return;
    if (width < 1 || height < 1 || width > 16384 || height > 16384) throw RenderError("image size must be 1..16384");
    I.bg_texture = I.gen_texture();
    I.gl.BindTexture(GL_TEXTURE_2D, I.bg_texture);
    I.gl.TexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, rgba);
    I.gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    I.gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    I.gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    I.gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    I.bg_w = width;
    I.bg_h = height;
}

void Renderer::set_content_transform(float x, float y, float scale) {
    if (!(scale > 0.0f) || !std::isfinite(scale) || !std::isfinite(x) || !std::isfinite(y)) {
        throw RenderError("content transform needs finite x, y and scale > 0");
    }
    impl_->content = {x, y, scale};
}

void Renderer::set_antialiasing(int samples, bool fxaa) {
    auto& I = *impl_;
    GLint max_samples = 0;
    I.gl.GetIntegerv(GL_MAX_SAMPLES, &max_samples);
    const int clamped = std::clamp(samples, 0, std::max(0, static_cast<int>(max_samples)));
    if (clamped == I.samples && fxaa == I.fxaa) return;
    I.samples = clamped;
    I.fxaa = fxaa;
    I.create_targets();
}

bool Renderer::fxaa() const { return impl_->fxaa; }

std::int64_t Renderer::filtered_pixels() const { return impl_->fxaa ? impl_->filtered_pixels : 0; }

bool Renderer::software() const {
    const auto* s = impl_->gl.GetString(GL_RENDERER);
    if (s == nullptr) return false;
    const std::string name = reinterpret_cast<const char*>(s);
    for (const char* soft : {"llvmpipe", "softpipe", "SwiftShader", "swrast", "Software Rasterizer"}) {
        if (name.find(soft) != std::string::npos) return true;
    }
    return false;
}

void Renderer::resize(int width, int height) {
    if (width < 1 || height < 1 || width > 16384 || height > 16384) throw RenderError("frame size must be 1..16384");
    auto& I = *impl_;
    if (width == I.width && height == I.height) return;
    I.width = width;
    I.height = height;
    I.create_targets();
}

void Renderer::render() {
    auto& I = *impl_;
    auto& gl = I.gl;
    const GLuint frame_fbo = I.fxaa ? I.post_fbo : I.resolve_fbo;  // where the finished scene goes
    gl.BindFramebuffer(GL_FRAMEBUFFER, I.samples > 1 ? I.msaa_fbo : frame_fbo);
    gl.Viewport(0, 0, I.width, I.height);
    const auto& bg = I.background;
    // The colour buffer holds premultiplied alpha; read_pixels() converts back to straight alpha.
    gl.ClearColor(bg[0] * bg[3], bg[1] * bg[3], bg[2] * bg[3], bg[3]);
    gl.ClearDepth(1.0);
    gl.DepthMask(GL_TRUE);
    gl.Clear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT);
    if (I.bg_texture) {
        // Cover the frame, keeping the image's aspect: crop the longer side.
        float frame = static_cast<float>(I.width) / static_cast<float>(I.height);
        float image = static_cast<float>(I.bg_w) / static_cast<float>(I.bg_h);
        float sx = 1.0f, sy = 1.0f;
        if (image > frame) sx = frame / image;
        else sy = image / frame;
        gl.Disable(GL_DEPTH_TEST);
        gl.Disable(GL_BLEND);
        gl.UseProgram(I.bg_program);
        gl.Uniform1i(I.bg_tex_loc, 0);
        gl.Uniform4f(I.bg_rect_loc, 0.5f - 0.5f * sx, 0.5f - 0.5f * sy, sx, sy);
        gl.ActiveTexture(GL_TEXTURE0);
        gl.BindTexture(GL_TEXTURE_2D, I.bg_texture);
        gl.BindVertexArray(I.empty_vao);
        gl.DrawArrays(GL_TRIANGLES, 0, 3);
    }
    gl.Enable(GL_DEPTH_TEST);
    gl.DepthFunc(GL_LEQUAL);
    gl.CullFace(GL_BACK);
    gl.FrontFace(GL_CCW);
    I.current = nullptr;  // camera uniforms are set again on first use of each program
    std::vector<const Mesh*> opaque, blended;
    for (const Mesh& mesh : I.meshes) {
        if (!mesh.vao || !mesh.visible) continue;
        const bool blend = I.materials[static_cast<std::size_t>(mesh.material)].alpha_mode == AlphaMode::kBlend;
        (blend ? blended : opaque).push_back(&mesh);
    }
    // Opaque meshes near to far, so the depth test rejects hidden pixels before they are shaded.
    std::sort(opaque.begin(), opaque.end(), [&](const Mesh* a, const Mesh* b) { return I.view_depth(*a) > I.view_depth(*b); });
    // Without blending: opaque and alpha-tested meshes write alpha 1, so blending would give the
    // same pixels, and a software rasterizer would read and mix the colour buffer for every one.
    gl.Disable(GL_BLEND);
    for (const Mesh* mesh : opaque) I.draw_mesh(*mesh);
    // Blended meshes far to near (view-space z grows towards the camera).
    std::sort(blended.begin(), blended.end(), [&](const Mesh* a, const Mesh* b) { return I.view_depth(*a) < I.view_depth(*b); });
    gl.Enable(GL_BLEND);
    gl.BlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ONE, GL_ONE_MINUS_SRC_ALPHA);
    gl.DepthMask(GL_FALSE);
    for (const Mesh* mesh : blended) I.draw_mesh(*mesh);
    gl.DepthMask(GL_TRUE);
    gl.BindVertexArray(0);
    if (I.samples > 1) {
        gl.BindFramebuffer(GL_READ_FRAMEBUFFER, I.msaa_fbo);
        gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, frame_fbo);
        gl.BlitFramebuffer(0, 0, I.width, I.height, 0, 0, I.width, I.height, GL_COLOR_BUFFER_BIT, GL_NEAREST);
    }
    if (I.fxaa) {
        // Copy the frame as it is (a plain copy), then filter only the tiles edge_rects() picks.
        // Flushing first lets a software rasterizer draw the scene while the CPU finds the tiles.
        gl.Flush();
        std::vector<const Mesh*> drawn(opaque);
        drawn.insert(drawn.end(), blended.begin(), blended.end());
        const auto rects = I.edge_rects(drawn);
        gl.BindFramebuffer(GL_READ_FRAMEBUFFER, I.post_fbo);
        gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, I.resolve_fbo);
        gl.BlitFramebuffer(0, 0, I.width, I.height, 0, 0, I.width, I.height, GL_COLOR_BUFFER_BIT, GL_NEAREST);
        gl.BindFramebuffer(GL_FRAMEBUFFER, I.resolve_fbo);
        gl.Disable(GL_DEPTH_TEST);
        gl.Disable(GL_BLEND);
        gl.Disable(GL_CULL_FACE);
        gl.UseProgram(I.fxaa_program);
        gl.Uniform2f(I.fxaa_texel_loc, 1.0f / static_cast<float>(I.width), 1.0f / static_cast<float>(I.height));
        gl.ActiveTexture(GL_TEXTURE0);
        gl.BindTexture(GL_TEXTURE_2D, I.post_color);
        // One draw for all the tiles (a draw per rectangle costs more than the pixels it saves), each
        // a square point a tile wide. Points, not two triangles per rectangle: a software rasterizer
        // shades pixels in 4x4 blocks, and shades twice every block that a quad's diagonal cuts.
        // A tile sticking out of the frame moves back inside it (a point whose centre is outside
        // the frame is dropped whole); filtering a pixel twice writes the same value.
        auto& q = I.fxaa_points;
        q.clear();
        const float sx = 2.0f / static_cast<float>(I.width), sy = 2.0f / static_cast<float>(I.height);
        constexpr float kHalf = 0.5f * Impl::kTile;
        const float max_x = I.width >= Impl::kTile ? static_cast<float>(I.width) - kHalf : 0.5f * static_cast<float>(I.width);
        const float max_y = I.height >= Impl::kTile ? static_cast<float>(I.height) - kHalf : 0.5f * static_cast<float>(I.height);
        for (const auto& r : rects) {
            for (int y = r[1]; y < r[1] + r[3]; y += Impl::kTile) {
                for (int x = r[0]; x < r[0] + r[2]; x += Impl::kTile) {
                    const float cx = std::min(static_cast<float>(x) + kHalf, max_x);
                    const float cy = std::min(static_cast<float>(y) + kHalf, max_y);
                    q.insert(q.end(), {cx * sx - 1.0f, cy * sy - 1.0f});
                }
            }
        }
        gl.PointSize(static_cast<float>(Impl::kTile));
        gl.BindVertexArray(I.fxaa_vao);
        gl.BindBuffer(GL_ARRAY_BUFFER, I.fxaa_vbo);
        gl.BufferData(GL_ARRAY_BUFFER, static_cast<GLsizeiptr>(q.size() * sizeof(float)), q.data(), GL_STREAM_DRAW);
        if (!q.empty()) gl.DrawArrays(GL_POINTS, 0, static_cast<GLsizei>(q.size() / 2));
        I.filtered_pixels = 0;
        for (const auto& r : rects) I.filtered_pixels += static_cast<std::int64_t>(r[2]) * r[3];
        gl.BindVertexArray(0);
        I.current = nullptr;
    }
    gl.BindFramebuffer(GL_FRAMEBUFFER, 0);
    gl.Flush();  // start drawing now: the caller may have CPU work before it reads the frame back
}

namespace {

// Bottom-up premultiplied rows in, top-down straight-alpha rows out.
void copy_out(const std::uint8_t* src, std::uint8_t* out, int width, int height) {
    const std::size_t row = static_cast<std::size_t>(width) * 4;
    for (int y = 0; y < height; ++y) {
        const std::uint8_t* s = src + static_cast<std::size_t>(height - 1 - y) * row;
        std::uint8_t* d = out + static_cast<std::size_t>(y) * row;
        // An opaque row (every row, on a solid background) is a plain copy: find out with one
        // vectorizable AND over its alpha bytes, then copy it whole.
        std::uint8_t alpha = 255;
        for (std::size_t x = 3; x < row; x += 4) alpha &= s[x];
        if (alpha == 255) {
            std::memcpy(d, s, row);
            continue;
        }
        for (std::size_t x = 0; x < row; x += 4) {
            const unsigned a = s[x + 3];
            if (a == 255 || a == 0) {
                std::memcpy(d + x, s + x, 4);
            } else {
                for (int c = 0; c < 3; ++c) d[x + c] = static_cast<std::uint8_t>(std::min(255u, (s[x + c] * 255u + a / 2) / a));
                d[x + 3] = static_cast<std::uint8_t>(a);
            }
        }
    }
}

}  // namespace

void Renderer::start_readback() {
    auto& I = *impl_;
    auto& gl = I.gl;
    int slot = I.pbo_next;
    if (I.pbo_pending[static_cast<std::size_t>(slot)]) throw RenderError("both readback buffers are pending: finish one first");
    gl.BindFramebuffer(GL_READ_FRAMEBUFFER, I.resolve_fbo);
    gl.BindBuffer(GL_PIXEL_PACK_BUFFER, I.pbo[static_cast<std::size_t>(slot)]);
    gl.ReadPixels(0, 0, I.width, I.height, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    gl.BindBuffer(GL_PIXEL_PACK_BUFFER, 0);
    gl.BindFramebuffer(GL_READ_FRAMEBUFFER, 0);
    I.pbo_pending[static_cast<std::size_t>(slot)] = true;
    I.pbo_next = 1 - slot;
}

bool Renderer::finish_readback(std::uint8_t* out) {
    auto& I = *impl_;
    auto& gl = I.gl;
    // The oldest pending copy is the one after the slot that will be written next.
    int slot = I.pbo_pending[static_cast<std::size_t>(I.pbo_next)] ? I.pbo_next : 1 - I.pbo_next;
    if (!I.pbo_pending[static_cast<std::size_t>(slot)]) return false;
    gl.BindBuffer(GL_PIXEL_PACK_BUFFER, I.pbo[static_cast<std::size_t>(slot)]);
    const auto* data = static_cast<const std::uint8_t*>(
        gl.MapBufferRange(GL_PIXEL_PACK_BUFFER, 0, static_cast<GLsizeiptr>(I.width) * I.height * 4, GL_MAP_READ_BIT));
    if (data == nullptr) {
        gl.BindBuffer(GL_PIXEL_PACK_BUFFER, 0);
        throw RenderError("mapping the readback buffer failed");
    }
    copy_out(data, out, I.width, I.height);
    gl.UnmapBuffer(GL_PIXEL_PACK_BUFFER);
    gl.BindBuffer(GL_PIXEL_PACK_BUFFER, 0);
    I.pbo_pending[static_cast<std::size_t>(slot)] = false;
    return true;
}

void Renderer::read_pixels(std::uint8_t* out) {
    auto& I = *impl_;
    // Drop stale pipelined copies, then copy this frame and wait for it.
    I.pbo_pending = {false, false};
    start_readback();
    if (!finish_readback(out)) throw RenderError("readback failed");
}

void Renderer::present(int width, int height) {
    auto& I = *impl_;
    auto& gl = I.gl;
    gl.BindFramebuffer(GL_READ_FRAMEBUFFER, I.resolve_fbo);
    gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, 0);
    gl.ClearColor(0.0f, 0.0f, 0.0f, 1.0f);
    gl.Clear(GL_COLOR_BUFFER_BIT);
    gl.BlitFramebuffer(0, 0, I.width, I.height, 0, 0, width, height, GL_COLOR_BUFFER_BIT, GL_LINEAR);
    gl.BindFramebuffer(GL_FRAMEBUFFER, 0);
}

int Renderer::width() const { return impl_->width; }
int Renderer::height() const { return impl_->height; }
int Renderer::samples() const { return impl_->samples; }

Stats Renderer::stats() const { return impl_->stats; }

unsigned Renderer::gl_error() { return impl_->gl.GetError(); }

std::string Renderer::gl_renderer() const {
    const auto* s = impl_->gl.GetString(GL_RENDERER);
    return s ? reinterpret_cast<const char*>(s) : "";
}

std::string Renderer::gl_version() const {
    const auto* s = impl_->gl.GetString(GL_VERSION);
    return s ? reinterpret_cast<const char*>(s) : "";
}

}  // namespace avatarkit::render
