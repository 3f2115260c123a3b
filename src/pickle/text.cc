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

std::string long_to_decimal(std::string_view bytes) {
  const bool negative = !bytes.empty() && (static_cast<unsigned char>(bytes.back()) & 0x80);
  std::string magnitude(bytes);
  if (negative) negate_in_place(magnitude);
  std::string digits = BigUint::from_le_bytes(magnitude).decimal();
  return negative ? "-" + digits : digits;
}

}  // namespace ckpt::pickle
