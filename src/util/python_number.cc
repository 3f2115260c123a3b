#include "util/python_number.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "util/utf8.h"

namespace ckpt {

namespace {

// str.isspace() / the whitespace int() and float() strip.
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

// digit (_? digit)* starting at i; advances i. ASCII digits only (Python also
// takes other Unicode decimal digits; OmegaConf configs do not use them).
// S is std::u32string_view, or std::string_view holding only ASCII (one code
// point a byte: the same answers without decoding, the common case).
template <class S>
bool eat_py_digits(S s, size_t& i) {
  if (i >= s.size() || !is_digit(s[i])) return false;
  ++i;
  while (i < s.size()) {
    if (is_digit(s[i])) {
      ++i;
    } else if (s[i] == '_' && i + 1 < s.size() && is_digit(s[i + 1])) {
      i += 2;
    } else {
      break;
    }
  }
  return true;
}

template <class S>
S py_strip(S s) {
  size_t b = 0, e = s.size();
  while (b < e && py_isspace(static_cast<char32_t>(s[b]))) ++b;
  while (e > b && py_isspace(static_cast<char32_t>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// f(stripped text) with text as an ASCII string_view or decoded to UTF-32.
template <class F>
bool on_stripped(std::string_view text, F&& f) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return f(py_strip(text));
  std::u32string s = decode_utf8(text);
  return f(py_strip(std::u32string_view(s)));
}

}  // namespace

bool python_int_accepts(std::string_view text) {
  return on_stripped(text, [](auto s) {
    size_t i = 0;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    return eat_py_digits(s, i) && i == s.size();
  });
}

namespace {

template <class S>
bool ieq_ascii(S s, size_t from, std::string_view word) {
  if (s.size() - from != word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k) {
    char32_t c = static_cast<char32_t>(s[from + k]);
    if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
    if (c != static_cast<unsigned char>(word[k])) return false;
  }
  return true;
}

}  // namespace

bool python_float_accepts(std::string_view text) {
  return on_stripped(text, [](auto s) {
    size_t i = 0;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (ieq_ascii(s, i, "inf") || ieq_ascii(s, i, "infinity") || ieq_ascii(s, i, "nan")) return true;
    bool int_part = eat_py_digits(s, i);
    bool frac_part = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      frac_part = eat_py_digits(s, i);
    }
    if (!int_part && !frac_part) return false;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (!eat_py_digits(s, i)) return false;
    }
    return i == s.size();
  });
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, end);  // e.g. "-1.2345e+15"
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  int exp10 = std::stoi(sci.substr(epos + 1));
  int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(-decpt, '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(decpt - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    int e = decpt - 1;
    out += e < 0 ? "e-" : "e+";
    std::string es = std::to_string(std::abs(e));
    if (es.size() < 2) es = "0" + es;
    out += es;
  }
  return out;
}

}  // namespace ckpt
