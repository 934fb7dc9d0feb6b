#include "avatarkit/channels.hpp"

namespace avatarkit::channels {

codec::Schema canonical_schema(codec::Quant quant, std::uint32_t fps) {
    codec::Schema schema;
    schema.fps_num = fps;
    schema.fps_den = 1;
    auto add = [&](std::string_view name, float lo, float hi) {
        schema.channels.push_back(codec::Channel{std::string(name), quant, lo, hi});
    };
    for (auto name : kArkit) add(name, 0.0f, 1.0f);
    for (auto name : kVisemes) add(name, 0.0f, 1.0f);
    for (auto name : kHeadRotation) add(name, -kRotationRange, kRotationRange);
    for (auto name : kHeadTranslation) add(name, -kTranslationRange, kTranslationRange);
    return schema;
}

}  // namespace avatarkit::channels
