#include "pickle/text.h"

#include <vector>

#include "util/big_uint.h"

namespace ckpt::pickle {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Two's complement negation of little-endian bytes: invert and add one.
void negate_in_place(std::string& bytes) {
  unsigned carry = 1;
  for (char& c : bytes) {
    unsigned v = (~static_cast<unsigned>(static_cast<uint8_t>(c)) & 0xFF) + carry;
    c = static_cast<char>(v & 0xFF);
    carry = v >> 8;
  }
}

}  // namespace

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) append_utf8(out, static_cast<uint8_t>(c));
  return out;
}

// Follows CPython's _PyUnicode_DecodeRawUnicodeEscape: \u and \U escapes
// count only after an odd number of backslashes; every other byte is latin-1.
std::string decode_raw_unicode_escape(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  size_t i = 0, n = in.size();
  while (i < n) {
    if (in[i] != '\\') {
      append_utf8(out, static_cast<uint8_t>(in[i++]));
      continue;
    }
    size_t run = 0;
    while (i < n && in[i] == '\\') {
      out += '\\';
      ++run;
      ++i;
    }
    if ((run & 1) == 0 || i >= n || (in[i] != 'u' && in[i] != 'U')) continue;
    out.pop_back();  // that backslash starts the escape
    size_t digits = in[i] == 'u' ? 4 : 8;
    ++i;
    uint32_t cp = 0;
    for (size_t k = 0; k < digits; ++k, ++i) {
      if (i >= n || hex_value(in[i]) < 0)
        return digits == 4 ? "truncated \\uXXXX escape" : "truncated \\UXXXXXXXX escape";
      cp = cp * 16 + static_cast<uint32_t>(hex_value(in[i]));
      if (cp > 0x10FFFF) return "\\Uxxxxxxxx out of range";
    }
    append_utf8(out, cp);
  }
  return {};
}

// Follows CPython's _PyBytes_DecodeEscape (unknown escapes keep their backslash).
std::string decode_string_literal(std::string_view quoted, std::string& out) {
  out.clear();
  if (quoted.size() < 2 || quoted.front() != quoted.back() ||
      (quoted.front() != '\'' && quoted.front() != '"'))
    return "the STRING opcode argument must be quoted";
  std::string_view s = quoted.substr(1, quoted.size() - 2);
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  while (i < n) {
    char c = s[i++];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= n) return "trailing \\ in STRING";
    c = s[i++];
    switch (c) {
      case '\n': break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 'v': out += '\v'; break;
      case 'a': out += '\a'; break;
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        unsigned v = static_cast<unsigned>(c - '0');
        for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; ++k)
          v = v * 8 + static_cast<unsigned>(s[i++] - '0');
        out += static_cast<char>(v & 0xFF);
        break;
      }
      case 'x': {
        if (i + 2 > n || hex_value(s[i]) < 0 || hex_value(s[i + 1]) < 0)
          return "invalid \\x escape in STRING";
        out += static_cast<char>(hex_value(s[i]) * 16 + hex_value(s[i + 1]));
        i += 2;
        break;
      }
      default:
        out += '\\';
        out += c;
    }
  }
  return {};
}

void normalize_long(std::string& big, int64_t& small) {
  while (big.size() > 1) {
    uint8_t last = static_cast<uint8_t>(big.back());
    uint8_t prev = static_cast<uint8_t>(big[big.size() - 2]);
    if ((last == 0x00 && !(prev & 0x80)) || (last == 0xFF && (prev & 0x80)))
      big.pop_back();
    else
      break;
  }
  if (big.size() <= 8) {
    uint64_t v = 0;
    for (size_t i = big.size(); i-- > 0;) v = (v << 8) | static_cast<uint8_t>(big[i]);
    if (!big.empty() && (static_cast<uint8_t>(big.back()) & 0x80) && big.size() < 8)
      v |= ~uint64_t{0} << (8 * big.size());  // sign-extend
    small = static_cast<int64_t>(v);
    big.clear();
  }
}

std::string encode_long(int64_t v) {
  if (v == 0) return {};
  std::string b(8, '\0');
  auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((u >> (8 * i)) & 0xFF);
  while (b.size() > 1) {
    uint8_t last = static_cast<uint8_t>(b.back());
    uint8_t prev = static_cast<uint8_t>(b[b.size() - 2]);
    if ((last == 0x00 && !(prev & 0x80)) || (last == 0xFF && (prev & 0x80)))
      b.pop_back();
    else
      break;
  }
  return b;
}

std::string parse_decimal(std::string_view text, int64_t& small, std::string& big) {
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return "empty integer text";
  if (text.size() > kMaxDecimalDigits)
    return "integer text longer than " + std::to_string(kMaxDecimalDigits) + " digits";
  for (char c : text)
    if (c < '0' || c > '9') return "integer text is not decimal";
  big = BigUint::from_digits(text, 10).le_bytes();
  big += '\0';  // room for the sign bit
  if (negative) negate_in_place(big);
  normalize_long(big, small);
  return {};
}

namespace {

bool c_isspace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// The value of `digits` in `base` with a sign, as small/big.
void set_value(std::string_view digits, unsigned base, bool negative, int64_t& small, std::string& big) {
  big = BigUint::from_digits(digits, base).le_bytes();
  big += '\0';  // room for the sign bit
  if (negative) negate_in_place(big);
  normalize_long(big, small);
}

// C strtol(s, &end, 0) on a NUL-terminated line: true with the value when it
// converts without overflow and stops at '\n' or NUL (load_int's test).
bool strtol_line(std::string_view s, int64_t& value) {
  size_t i = 0;
  while (i < s.size() && c_isspace(s[i])) ++i;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  unsigned base = 10;
  if (i < s.size() && s[i] == '0') {
    if (i + 2 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X') && digit_value(s[i + 2]) < 16) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  const size_t first = i;
  unsigned __int128 v = 0;
  bool overflow = false;
  while (i < s.size() && digit_value(s[i]) < static_cast<int>(base)) {
    v = v * base + static_cast<unsigned>(digit_value(s[i]));
    if (v > (static_cast<unsigned __int128>(1) << 64)) overflow = true, v = static_cast<unsigned __int128>(1) << 64;
    ++i;
  }
  // No digits: strtol converts nothing and sets end to the start of s.
  const size_t end = i == first ? 0 : i;
  const char stop = end < s.size() ? s[end] : '\0';
  if (stop != '\n' && stop != '\0') return false;
  if (i == first) {
    value = 0;
    return true;
  }
  const unsigned __int128 limit = negative ? (static_cast<unsigned __int128>(1) << 63)
                                           : (static_cast<unsigned __int128>(1) << 63) - 1;
  if (overflow || v > limit) return false;  // ERANGE
  value = negative ? static_cast<int64_t>(-static_cast<__int128>(v)) : static_cast<int64_t>(v);
  return true;
}

// PyLong_FromString(s, NULL, 0) on a NUL-terminated line.
std::string pylong_from_string(std::string_view s, int64_t& small, std::string& big) {
  s = s.substr(0, std::min(s.size(), s.find('\0')));
  size_t i = 0;
  while (i < s.size() && c_isspace(s[i])) ++i;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  unsigned base = 10;
  bool error_if_nonzero = false;
  auto at = [&](size_t k) { return k < s.size() ? s[k] : '\0'; };
  if (at(i) != '0') {
    base = 10;
  } else if (at(i + 1) == 'x' || at(i + 1) == 'X') {
    base = 16;
  } else if (at(i + 1) == 'o' || at(i + 1) == 'O') {
    base = 8;
  } else if (at(i + 1) == 'b' || at(i + 1) == 'B') {
    base = 2;
  } else {
    error_if_nonzero = true;  // "old" C-style octal: only zero is valid
  }
  if (base != 10) {
    i += 2;
    if (at(i) == '_') ++i;  // one underscore allowed after the prefix
  }
  if (at(i) == '_') return "invalid literal (leading underscore)";
  std::string digits;
  bool prev_underscore = false;
  while (i < s.size()) {
    char c = s[i];
    if (c == '_') {
      if (prev_underscore) return "invalid literal (double underscore)";
      prev_underscore = true;
      ++i;
      continue;
    }
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : c >= 'A' && c <= 'Z' ? c - 'A' + 10 : 99;
    if (d >= static_cast<int>(base)) break;
    digits += c;
    prev_underscore = false;
    ++i;
  }
  if (prev_underscore) return "invalid literal (trailing underscore)";
  if (digits.empty()) return "invalid literal for int() with base 0";
  if (base == 10 && digits.size() > kMaxDecimalDigits)
    return "integer text longer than " + std::to_string(kMaxDecimalDigits) + " digits";
  while (i < s.size() && c_isspace(s[i])) ++i;
  if (i != s.size()) return "invalid literal for int() with base 0";
  if (error_if_nonzero && digits.find_first_not_of('0') != std::string::npos)
    return "invalid literal for int() with base 0 (leading zeros)";
  set_value(digits, base, negative, small, big);
  return {};
}

}  // namespace

std::string parse_int_opcode_text(std::string_view arg, bool long_opcode, int64_t& small, std::string& big,
                                  int& as_bool) {
  as_bool = -1;
  small = 0;
  big.clear();
  if (arg.empty()) return "empty line (pickle data was truncated)";  // load_int / load_long: len < 2
  std::string line(arg);
  line += '\n';
  if (long_opcode) {
    if (line.size() >= 2 && line[line.size() - 2] == 'L') line[line.size() - 2] = '\0';
    return pylong_from_string(line, small, big);
  }
  int64_t v = 0;
  if (strtol_line(line, v)) {
    if (line.size() == 3 && (v == 0 || v == 1)) as_bool = static_cast<int>(v);
    small = v;
    return {};
  }
  return pylong_from_string(line, small, big);
}

std::string long_to_decimal(std::string_view bytes) {
  const bool negative = !bytes.empty() && (static_cast<unsigned char>(bytes.back()) & 0x80);
  std::string magnitude(bytes);
  if (negative) negate_in_place(magnitude);
  std::string digits = BigUint::from_le_bytes(magnitude).decimal();
  return negative ? "-" + digits : digits;
}

}  // namespace ckpt::pickle
