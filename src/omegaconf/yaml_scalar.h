// Internal to the YAML reader and writer: how PyYAML's YAML 1.1 resolver
// types a plain scalar (yaml_resolve.cc) and how SafeConstructor builds its
// value (yaml_construct.cc).
#pragma once
#include <string>
#include <string_view>

#include "omegaconf/value.h"

namespace ckpt::omegaconf {

enum class Tag { Null, Bool, Int, Float, Str, Merge, ValueKey, Timestamp, Map, Seq };

// The implicit tag of plain scalar `s`: the SafeLoader's (plus OmegaConf's
// float resolver) when `loader`, else the SafeDumper's (which also knows
// timestamps, so that the emitter quotes them).
Tag resolve_plain(std::string_view s, bool loader);

// One of PyYAML's YAML 1.1 boolean words (yes, No, ON, y, ...).
bool is_yaml_bool_word(std::string_view s);

// SafeConstructor's value for a scalar of `tag`; Str for any other tag.
// Throws FormatError naming `where` on invalid text.
Value construct(Tag tag, std::string_view text, const std::string& where);

}  // namespace ckpt::omegaconf
