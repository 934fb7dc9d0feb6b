#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <unordered_map>

#include "avatarkit/channels.hpp"
#include "avatarkit/codec.hpp"
#include "avatarkit/flame.hpp"

namespace py = pybind11;
using namespace avatarkit;

namespace {

// A decoded payload that owns its arrays; numpy views point into it (zero copy).
struct PyDecoded {
    codec::DecodedChunk chunk;
};

struct Bytes {
    const std::uint8_t* data;
    std::size_t size;
};

// Borrow a contiguous byte buffer (bytes, bytearray, memoryview, numpy uint8).
Bytes view_bytes(const py::buffer& buf, py::buffer_info& info) {
    info = buf.request();
    if (info.ndim > 1) {
        bool contiguous = true;
        py::ssize_t expect = info.itemsize;
        for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
            if (info.strides[static_cast<std::size_t>(d)] != expect) contiguous = false;
            expect *= info.shape[static_cast<std::size_t>(d)];
        }
        if (!contiguous) throw py::value_error("payload buffer must be C-contiguous");
    } else if (info.ndim == 1 && info.strides[0] != info.itemsize) {
        throw py::value_error("payload buffer must be C-contiguous");
    }
    return {static_cast<const std::uint8_t*>(info.ptr), static_cast<std::size_t>(info.size * info.itemsize)};
}

py::array_t<float> values_view(const PyDecoded& d, py::handle owner) {
    const auto& c = d.chunk;
    return py::array_t<float>({static_cast<py::ssize_t>(c.frames), static_cast<py::ssize_t>(c.channels)},
                              {static_cast<py::ssize_t>(c.channels * sizeof(float)), static_cast<py::ssize_t>(sizeof(float))},
                              c.values.data(), owner);
}

std::vector<std::string> names_of(const codec::Schema& s) {
    std::vector<std::string> names;
    names.reserve(s.channels.size());
    for (const auto& ch : s.channels) names.push_back(ch.name);
    return names;
}

}  // namespace

void register_codec(py::module_& m) {
    PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> error_type;
    error_type.call_once_and_store_result([&]() {
        return py::object(py::exception<codec::CodecError>(m, "CodecError", PyExc_ValueError));
    });
    m.attr("CodecError").attr("__doc__") =
        "A payload or argument the codec cannot take. `code` names the reason (truncated, bad_magic, ...).";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const codec::CodecError& e) {
            py::object type = error_type.get_stored();
            py::object inst = type(e.what());
            inst.attr("code") = codec::error_code_name(e.code());
            PyErr_SetObject(type.ptr(), inst.ptr());
        }
    });

    py::enum_<codec::Quant>(m, "Quant", "Quantization of one channel: unsigned 8 or 16 bits over [lo, hi].")
        .value("U8", codec::Quant::kU8)
        .value("U16", codec::Quant::kU16);

    py::class_<codec::Channel>(m, "Channel", "One channel of the stream: a name and its quantization range.")
        .def(py::init([](std::string name, codec::Quant quant, float lo, float hi) {
                 return codec::Channel{std::move(name), quant, lo, hi};
             }),
             py::arg("name"), py::arg("quant") = codec::Quant::kU16, py::arg("lo") = 0.0f, py::arg("hi") = 1.0f)
        .def_readonly("name", &codec::Channel::name, "The channel's name (an ARKit, viseme or head name for the canonical set).")
        .def_readonly("quant", &codec::Channel::quant, "How its values are quantized (8 or 16 bits).")
        .def_readonly("lo", &codec::Channel::lo, "The value of quantized 0.")
        .def_readonly("hi", &codec::Channel::hi, "The value of the largest quantized step.")
        .def_property_readonly("step", [](const codec::Channel& c) {
            return (static_cast<double>(c.hi) - c.lo) / codec::quant_max(c.quant);
        }, "One quantization step in channel units.")
        .def("__eq__", [](const codec::Channel& a, const py::object& b) -> py::object {
            if (!py::isinstance<codec::Channel>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
            return py::bool_(a == b.cast<const codec::Channel&>());
        }, py::arg("other"))
        .def("__hash__", [](const codec::Channel& c) { return py::hash(py::make_tuple(c.name, static_cast<int>(c.quant), c.lo, c.hi)); })
        .def("__repr__", [](const codec::Channel& c) {
            return "Channel('" + c.name + "', " + (c.quant == codec::Quant::kU8 ? "U8" : "U16") + ", " +
                   std::to_string(c.lo) + ", " + std::to_string(c.hi) + ")";
        });

    py::class_<codec::Schema>(m, "Schema", "Frame rate and channels of a stream.")
        .def(py::init([](std::vector<codec::Channel> channels, std::uint32_t fps_num, std::uint32_t fps_den) {
                 codec::Schema s;
                 s.channels = std::move(channels);
                 s.fps_num = fps_num;
                 s.fps_den = fps_den;
                 codec::validate_schema(s, 1u << 16);
                 return s;
             }),
             py::arg("channels"), py::arg("fps_num") = 25, py::arg("fps_den") = 1)
        .def_readonly("channels", &codec::Schema::channels, "The channels in stream order.")
        .def_readonly("fps_num", &codec::Schema::fps_num, "Frame rate numerator (fps = fps_num / fps_den).")
        .def_readonly("fps_den", &codec::Schema::fps_den, "Frame rate denominator.")
        .def_property_readonly("fps", &codec::Schema::fps, "Frames per second.")
        .def_property_readonly("names", &names_of, "Channel names in stream order.")
        .def("__len__", [](const codec::Schema& s) { return s.channels.size(); })
        .def("__eq__", [](const codec::Schema& a, const py::object& b) -> py::object {
            if (!py::isinstance<codec::Schema>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
            return py::bool_(a == b.cast<const codec::Schema&>());
        }, py::arg("other"))
        .def("__hash__", [](const codec::Schema& s) {
            py::list items;
            for (const auto& c : s.channels) items.append(py::make_tuple(c.name, static_cast<int>(c.quant), c.lo, c.hi));
            return py::hash(py::make_tuple(s.fps_num, s.fps_den, py::tuple(items)));
        })
        .def("__repr__", [](const codec::Schema& s) {
            return "Schema(" + std::to_string(s.channels.size()) + " channels, fps=" + std::to_string(s.fps_num) + "/" +
                   std::to_string(s.fps_den) + ")";
        });

    py::class_<PyDecoded>(m, "DecodedFrames", "Frames decoded from one payload.")
        .def_property_readonly("values", [](py::object self) { return values_view(self.cast<const PyDecoded&>(), self); },
                               "float32 array, frames x channels; a view that keeps this object alive.")
        .def_property_readonly("frame_indices", [](py::object self) {
            const auto& c = self.cast<const PyDecoded&>().chunk;
            return py::array_t<std::int64_t>({static_cast<py::ssize_t>(c.frames)}, {static_cast<py::ssize_t>(sizeof(std::int64_t))},
                                             c.frame_indices.data(), self);
        }, "int64 array, the index of each frame in its stream.")
        .def_property_readonly("names", [](const PyDecoded& d) {
            return d.chunk.schema ? names_of(*d.chunk.schema) : std::vector<std::string>{};
        }, "Channel names, one per column of `values`.")
        .def_property_readonly("fps", [](const PyDecoded& d) { return d.chunk.schema ? d.chunk.schema->fps() : 0.0; },
                               "Frames per second of the stream (0.0 before any schema).")
        .def_property_readonly("schema", [](const PyDecoded& d) -> std::optional<codec::Schema> {
            if (!d.chunk.schema) return std::nullopt;
            return *d.chunk.schema;
        }, "The schema these frames were decoded with (None before any).")
        .def_property_readonly("schema_changed", [](const PyDecoded& d) { return d.chunk.schema_changed; },
                               "Whether this payload carried a new schema.")
        .def("__len__", [](const PyDecoded& d) { return d.chunk.frames; })
        .def("select", [](const PyDecoded& d, const std::vector<std::string>& names, float fill) {
            // Map by name: columns in the order asked for; names the stream lacks get `fill`.
            const auto& c = d.chunk;
            std::unordered_map<std::string, std::size_t> column;
            if (c.schema) {
                for (std::size_t i = 0; i < c.schema->channels.size(); ++i) column.emplace(c.schema->channels[i].name, i);
            }
            std::vector<std::ptrdiff_t> src(names.size(), -1);
            for (std::size_t j = 0; j < names.size(); ++j) {
                auto it = column.find(names[j]);
                if (it != column.end()) src[j] = static_cast<std::ptrdiff_t>(it->second);
            }
            py::array_t<float> out({static_cast<py::ssize_t>(c.frames), static_cast<py::ssize_t>(names.size())});
            float* o = out.mutable_data();
            for (std::size_t f = 0; f < c.frames; ++f) {
                const float* row = c.values.data() + f * c.channels;
                for (std::size_t j = 0; j < names.size(); ++j) o[f * names.size() + j] = src[j] < 0 ? fill : row[src[j]];
            }
            return out;
        }, py::arg("names"), py::arg("fill") = 0.0f,
           "Columns for `names` in that order; names this stream does not carry are filled with `fill`.");

    py::class_<codec::StreamDecoder>(m, "StreamDecoder",
                                     "Decodes the payloads of one stream in order (delta frames refer to earlier payloads).")
        .def(py::init([](std::size_t max_channels, std::size_t max_frames, std::size_t max_payload_bytes,
                         std::size_t max_decompressed_bytes, std::size_t max_output_values) {
                 codec::Limits l;
                 l.max_channels = max_channels;
                 l.max_frames = max_frames;
                 l.max_payload_bytes = max_payload_bytes;
                 l.max_decompressed_bytes = max_decompressed_bytes;
                 l.max_output_values = max_output_values;
                 return codec::StreamDecoder(l);
             }),
             py::arg("max_channels") = codec::Limits{}.max_channels, py::arg("max_frames") = codec::Limits{}.max_frames,
             py::arg("max_payload_bytes") = codec::Limits{}.max_payload_bytes,
             py::arg("max_decompressed_bytes") = codec::Limits{}.max_decompressed_bytes,
             py::arg("max_output_values") = codec::Limits{}.max_output_values)
        .def("decode", [](codec::StreamDecoder& self, const py::buffer& payload) {
            py::buffer_info info;
            Bytes b = view_bytes(payload, info);
            PyDecoded out;
            {
                py::gil_scoped_release release;
                out.chunk = self.decode(b.data, b.size);
            }
            return out;
        }, py::arg("payload"), "Decode one payload; raises CodecError and keeps the decoder's state when it is malformed.")
        .def("reset", &codec::StreamDecoder::reset, "Forget the schema and reference frame (start a new stream).")
        .def_property_readonly("schema", [](const codec::StreamDecoder& d) -> std::optional<codec::Schema> {
            auto s = d.schema();
            if (!s) return std::nullopt;
            return *s;
        }, "The stream's current schema (None before its first key payload).")
        .def_property_readonly("last_frame_index", &codec::StreamDecoder::last_frame_index,
                               "The index of the last frame decoded (-1 before any).");

    py::class_<codec::StreamEncoder>(m, "StreamEncoder", "Encodes a stream of frames into payloads.")
        .def(py::init([](codec::Schema schema, int key_interval, int zstd_level, bool reuse_masks) {
                 codec::EncoderOptions o;
                 o.key_interval = key_interval;
                 o.zstd_level = zstd_level;
                 o.reuse_masks = reuse_masks;
                 return codec::StreamEncoder(std::move(schema), o);
             }),
             py::arg("schema"), py::arg("key_interval") = 25, py::arg("zstd_level") = 0, py::arg("reuse_masks") = true)
        .def("encode", [](codec::StreamEncoder& self, py::array_t<float, py::array::c_style | py::array::forcecast> values,
                          std::optional<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>> frame_indices) {
            if (values.ndim() != 2) throw codec::CodecError(codec::ErrorCode::kInvalidValue, "values must be 2-D: frames x channels");
            auto frames = static_cast<std::size_t>(values.shape(0));
            auto channels = static_cast<std::size_t>(values.shape(1));
            std::vector<std::int64_t> idx(frames);
            if (frame_indices) {
                if (frame_indices->ndim() != 1 || static_cast<std::size_t>(frame_indices->shape(0)) != frames) {
                    throw codec::CodecError(codec::ErrorCode::kInvalidValue, "frame_indices needs one index per frame");
                }
                std::memcpy(idx.data(), frame_indices->data(), frames * sizeof(std::int64_t));
            } else {
                for (std::size_t f = 0; f < frames; ++f) idx[f] = self.last_frame_index() + 1 + static_cast<std::int64_t>(f);
            }
            std::vector<std::uint8_t> out;
            {
                py::gil_scoped_release release;
                out = self.encode(values.data(), frames, channels, idx.data());
            }
            return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
        }, py::arg("values"), py::arg("frame_indices") = py::none(),
           "Encode frames (float32, frames x channels) into one payload. Indices default to the next ones.")
        .def("set_schema", &codec::StreamEncoder::set_schema, py::arg("schema"),
             "Switch schema; the next payload carries it and starts with a key frame.")
        .def("force_key_frame", &codec::StreamEncoder::force_key_frame, "Make the next frame a key frame.")
        .def_property_readonly("schema", &codec::StreamEncoder::schema, "The schema frames are encoded with.")
        .def_property_readonly("last_frame_index", &codec::StreamEncoder::last_frame_index,
                               "The index of the last frame encoded (-1 before any).");

    m.def("canonical_schema", &channels::canonical_schema, py::arg("quant") = codec::Quant::kU16, py::arg("fps") = 25,
          "The canonical 73-channel schema: ARKit-52, 15 visemes, head rotation (rad), head translation (m).");
    auto to_list = [](const auto& arr) {
        py::list out;
        for (auto n : arr) out.append(py::str(std::string(n)));
        return py::tuple(out);
    };
    m.attr("ARKIT_NAMES") = to_list(channels::kArkit);
    m.attr("VISEME_NAMES") = to_list(channels::kVisemes);
    m.attr("HEAD_ROTATION_NAMES") = to_list(channels::kHeadRotation);
    m.attr("HEAD_TRANSLATION_NAMES") = to_list(channels::kHeadTranslation);

    m.def("decode_flame", [](const py::buffer& payload) {
        py::buffer_info info;
        Bytes b = view_bytes(payload, info);
        auto* kf = new flame::Keyframes();
        try {
            py::gil_scoped_release release;
            *kf = flame::decode(b.data, b.size);
        } catch (...) {
            delete kf;
            throw;
        }
        py::capsule owner(kf, [](void* p) { delete static_cast<flame::Keyframes*>(p); });
        return py::array_t<float>({static_cast<py::ssize_t>(kf->frames), static_cast<py::ssize_t>(flame::kValuesPerKeyframe)},
                                  {static_cast<py::ssize_t>(flame::kValuesPerKeyframe * sizeof(float)), static_cast<py::ssize_t>(sizeof(float))},
                                  kf->values.data(), owner);
    }, py::arg("payload"),
       "Decode a FlameAnimation protobuf into float32 keyframes x 120 (columns: flame_channel_names()).");
    m.def("encode_flame", [](py::array_t<float, py::array::c_style | py::array::forcecast> values) {
        if (values.ndim() != 2 || static_cast<std::size_t>(values.shape(1)) != flame::kValuesPerKeyframe) {
            throw codec::CodecError(codec::ErrorCode::kInvalidValue, "values must be keyframes x 120");
        }
        auto out = flame::encode(values.data(), static_cast<std::size_t>(values.shape(0)));
        return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
    }, py::arg("values"), "Encode keyframes x 120 as a FlameAnimation protobuf.");
    m.def("flame_channel_names", &flame::channel_names, "Column names of decode_flame(): flame_translation_0 ... flame_expression_99.");
}
