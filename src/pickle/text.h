// Text codecs the pickle formats need: UTF-8 validation (with CPython's
// "surrogatepass"), raw-unicode-escape (protocol 0 UNICODE), Python bytes
// escapes (protocol 0 STRING), latin-1, and decimal integers of any size.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "util/utf8.h"  // valid_utf8, append_utf8

namespace ckpt::pickle {

// Each byte as the code point of the same value, in UTF-8.
std::string latin1_to_utf8(std::string_view s);

// Decodes CPython's raw-unicode-escape into UTF-8. Returns an error text, or
// an empty string on success.
std::string decode_raw_unicode_escape(std::string_view in, std::string& out);

// Decodes the argument of a protocol 0 STRING: a quoted Python bytes literal
// body ('...' or "...") with backslash escapes. Returns an error text or "".
std::string decode_string_literal(std::string_view quoted, std::string& out);

// Parses an optionally signed decimal integer of any length (at most
// kMaxDecimalDigits digits, CPython's int() limit). On success returns "" and
// sets either `small` (fits int64, big empty) or `big` (minimal little-endian
// two's complement bytes, as LONG1 stores them).
inline constexpr size_t kMaxDecimalDigits = 4300;
std::string parse_decimal(std::string_view text, int64_t& small, std::string& big);

// The argument of a protocol 0 INT or LONG opcode (the line without its
// '\n'), read as CPython's _pickle.c reads it. INT (load_int): C strtol with
// base 0 first (leading whitespace, sign, 0x hex, a leading 0 for octal; the
// line may stop at a NUL; an empty line is an error), a 2-character line holding 0 or 1 is
// False / True (`as_bool` 0 or 1, else -1); when strtol fails or overflows,
// PyLong_FromString(s, NULL, 0): Python's int literal syntax (0x/0o/0b,
// underscores between digits, surrounding whitespace, a NUL ends it, at most
// 4300 decimal digits). LONG (load_long): a 'L' before the newline dropped,
// then PyLong_FromString(s, NULL, 0). Returns "" or an error text.
std::string parse_int_opcode_text(std::string_view arg, bool long_opcode, int64_t& small, std::string& big,
                                  int& as_bool);

// Normalizes little-endian two's complement bytes: sets `small` and clears
// `big` when the value fits int64, otherwise leaves the minimal encoding in `big`.
void normalize_long(std::string& big, int64_t& small);

// Decimal text of little-endian two's complement bytes (a LONG payload;
// empty is 0): what Python's str(int) prints.
std::string long_to_decimal(std::string_view bytes);

// Minimal little-endian two's complement encoding of v (empty for 0), as
// CPython's encode_long.
std::string encode_long(int64_t v);

}  // namespace ckpt::pickle
