// UTF-8 for every layer: strict validation (optionally with CPython's
// "surrogatepass"), encoding one code point, and decoding with CPython's
// "surrogateescape" so that no byte is lost.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt {

// True if `s` is UTF-8 (no overlongs, nothing past U+10FFFF); with
// allow_surrogates, encoded U+D800..U+DFFF are accepted as CPython's
// surrogatepass error handler does.
bool valid_utf8(std::string_view s, bool allow_surrogates = false);

// Appends code point `cp` (<= 0x10FFFF; surrogates encoded as 3 bytes).
void append_utf8(std::string& out, uint32_t cp);

// Decodes UTF-8 to code points; lone surrogates encoded as 3 bytes decode to
// themselves; an invalid byte b decodes to U+DC00+b (surrogateescape).
std::u32string decode_utf8(std::string_view s);

}  // namespace ckpt
