// YAML as OmegaConf writes and reads it.
//
// Emitting: a port of the parts of PyYAML's pure-Python emitter
// (yaml/emitter.py) that yaml.dump(..., default_flow_style=False,
// allow_unicode=True) reaches. libyaml's C emitter was the first choice but it
// differs from PyYAML on text OmegaConf can hold: it escapes every character
// outside the BMP ("\U0001F600" where PyYAML writes the emoji), escapes NEL
// (U+0085) and omits the "..." PyYAML writes after a top-level plain scalar.
// Columns count code points, as Python's len() does, so scalars are decoded
// to UTF-32 before analysis.
//
// Reading: libyaml's parser (events), with PyYAML's SafeLoader resolver and
// constructors plus OmegaConf's loader changes made here.
#include "omegaconf/yaml.h"

#include <yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "util/error.h"

namespace ckpt::omegaconf {
namespace {

// ---------------------------------------------------------------- UTF-8

// Decodes UTF-8; lone surrogates encoded as 3 bytes (CPython's
// surrogatepass) decode to themselves; an invalid byte b decodes to U+DC00+b
// (surrogateescape) so that it ends up escaped rather than dropped.
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    char32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
    bool ok = extra >= 0 && i + static_cast<size_t>(extra) < s.size();
    for (int k = 1; ok && k <= extra; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (d & 0x3F);
    }
    if (ok && extra >= 1) {
      static constexpr char32_t min_for[] = {0, 0x80, 0x800, 0x10000};
      if (cp < min_for[extra] || cp > 0x10FFFF) ok = false;
    }
    if (!ok) {
      out.push_back(0xDC00 + c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += 1 + extra;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// ------------------------------------------------- Python number syntax

// str.isspace() / the whitespace int() and float() strip.
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

// digit (_? digit)* starting at i; advances i. ASCII digits only (Python also
// takes other Unicode decimal digits; OmegaConf configs do not use them).
bool eat_py_digits(const std::u32string& s, size_t& i) {
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

std::u32string py_strip(std::string_view text) {
  std::u32string s = decode_utf8(text);
  size_t b = 0, e = s.size();
  while (b < e && py_isspace(s[b])) ++b;
  while (e > b && py_isspace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// int(text) succeeds.
bool python_int_accepts(std::string_view text) {
  std::u32string s = py_strip(text);
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  return eat_py_digits(s, i) && i == s.size();
}

bool ieq_ascii(const std::u32string& s, size_t from, std::string_view word) {
  if (s.size() - from != word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k) {
    char32_t c = s[from + k];
    if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
    if (c != static_cast<unsigned char>(word[k])) return false;
  }
  return true;
}

// float(text) succeeds.
bool python_float_accepts(std::string_view text) {
  std::u32string s = py_strip(text);
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
}

bool is_yaml_bool_word(std::string_view s) {
  static constexpr std::string_view words[] = {
      "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
      "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N"};
  for (auto w : words)
    if (s == w) return true;
  return false;
}

// ------------------------------------------------ the YAML 1.1 resolver

enum class Tag { Null, Bool, Int, Float, Str, Merge, ValueKey, Timestamp, Map, Seq };

// A cursor for hand-written versions of PyYAML's resolver regexes (std::regex
// recurses per character, which long input would turn into a stack overflow).
struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool done() const { return i == s.size(); }
  bool peek(char c) const { return i < s.size() && s[i] == c; }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++i;
    return true;
  }
  template <class Pred>
  bool eat_one(Pred p) {
    if (i < s.size() && p(s[i])) {
      ++i;
      return true;
    }
    return false;
  }
  template <class Pred>
  size_t eat_many(Pred p) {
    size_t n = 0;
    while (i < s.size() && p(s[i])) ++i, ++n;
    return n;
  }
  void eat_sign() { if (!eat('-')) eat('+'); }
};

bool d09(char c) { return c >= '0' && c <= '9'; }
bool d09u(char c) { return d09(c) || c == '_'; }
bool d05(char c) { return c >= '0' && c <= '5'; }

// (?::[0-5]?[0-9])+ ; at least one group.
bool eat_sexagesimal_groups(Cursor& c) {
  int groups = 0;
  while (c.peek(':')) {
    ++c.i;
    if (c.i + 1 < c.s.size() && d05(c.s[c.i]) && d09(c.s[c.i + 1])) c.i += 2;
    else if (!c.eat_one(d09)) return false;
    ++groups;
  }
  return groups > 0;
}

bool match_int(std::string_view s) {
  {  // [-+]?0b[0-1_]+
    Cursor c{s};
    c.eat_sign();
    if (c.eat('0') && c.eat('b') && c.eat_many([](char x) { return x == '0' || x == '1' || x == '_'; }) && c.done()) return true;
  }
  {  // [-+]?0[0-7_]+
    Cursor c{s};
    c.eat_sign();
    if (c.eat('0') && c.eat_many([](char x) { return (x >= '0' && x <= '7') || x == '_'; }) && c.done()) return true;
  }
  {  // [-+]?(?:0|[1-9][0-9_]*)
    Cursor c{s};
    c.eat_sign();
    if (c.eat('0')) {
      if (c.done()) return true;
    } else if (c.eat_one([](char x) { return x >= '1' && x <= '9'; })) {
      c.eat_many(d09u);
      if (c.done()) return true;
    }
  }
  {  // [-+]?0x[0-9a-fA-F_]+
    Cursor c{s};
    c.eat_sign();
    if (c.eat('0') && c.eat('x') &&
        c.eat_many([](char x) { return std::isxdigit(static_cast<unsigned char>(x)) || x == '_'; }) && c.done())
      return true;
  }
  {  // [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
    Cursor c{s};
    c.eat_sign();
    if (c.eat_one([](char x) { return x >= '1' && x <= '9'; })) {
      c.eat_many(d09u);
      if (eat_sexagesimal_groups(c) && c.done()) return true;
    }
  }
  return false;
}

// [eE][-+][0-9]+ (sign_optional: [eE][-+]?[0-9]+); absent is fine.
bool eat_exponent(Cursor& c, bool sign_optional) {
  if (!c.eat('e') && !c.eat('E')) return true;
  if (!c.eat('-') && !c.eat('+') && !sign_optional) return false;
  return c.eat_many(d09) > 0;
}

bool match_inf_nan(std::string_view s) {
  Cursor c{s};
  c.eat_sign();
  std::string_view rest = s.substr(c.i);
  if (rest == ".inf" || rest == ".Inf" || rest == ".INF") return true;
  return s == ".nan" || s == ".NaN" || s == ".NAN";
}

// [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
bool match_sexagesimal_float(std::string_view s) {
  Cursor c{s};
  c.eat_sign();
  if (!c.eat_one(d09)) return false;
  c.eat_many(d09u);
  if (!eat_sexagesimal_groups(c)) return false;
  if (!c.eat('.')) return false;
  c.eat_many(d09u);
  return c.done();
}

// PyYAML's float pattern.
bool match_float(std::string_view s) {
  {  // [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    Cursor c{s};
    c.eat_sign();
    if (c.eat_one(d09)) {
      c.eat_many(d09u);
      if (c.eat('.')) {
        c.eat_many(d09u);
        if (eat_exponent(c, false) && c.done()) return true;
      }
    }
  }
  {  // \.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    Cursor c{s};
    if (c.eat('.') && c.eat_one(d09)) {
      c.eat_many(d09u);
      if (eat_exponent(c, false) && c.done()) return true;
    }
  }
  return match_sexagesimal_float(s) || match_inf_nan(s);
}

// The float pattern OmegaConf's loader adds.
bool match_omegaconf_float(std::string_view s) {
  {  // [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    Cursor c{s};
    c.eat_sign();
    if (c.eat_one(d09)) {
      c.eat_many(d09u);
      if (c.eat('.')) {
        c.eat_many(d09u);
        if (eat_exponent(c, true) && c.done()) return true;
      }
    }
  }
  {  // [-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    Cursor c{s};
    c.eat_sign();
    if (c.eat_one(d09)) {
      c.eat_many(d09u);
      if ((c.peek('e') || c.peek('E')) && eat_exponent(c, true) && c.done()) return true;
    }
  }
  {  // \.[0-9_]+(?:[eE][-+][0-9]+)?
    Cursor c{s};
    if (c.eat('.') && c.eat_many(d09u) > 0 && eat_exponent(c, false) && c.done()) return true;
  }
  return match_sexagesimal_float(s) || match_inf_nan(s);
}

bool match_timestamp(std::string_view s) {
  Cursor c{s};
  auto digits = [&](int n) {
    for (int k = 0; k < n; ++k)
      if (!c.eat_one(d09)) return false;
    return true;
  };
  auto one_or_two = [&] {
    if (!c.eat_one(d09)) return false;
    c.eat_one(d09);
    return true;
  };
  // [0-9]{4}-[0-9]{2}-[0-9]{2}
  if (digits(4) && c.eat('-') && digits(2) && c.eat('-') && digits(2) && c.done()) return true;
  c.i = 0;
  if (!(digits(4) && c.eat('-') && one_or_two() && c.eat('-') && one_or_two())) return false;
  if (!c.eat('T') && !c.eat('t')) {
    if (c.eat_many([](char x) { return x == ' ' || x == '\t'; }) == 0) return false;
  }
  if (!(one_or_two() && c.eat(':') && digits(2) && c.eat(':') && digits(2))) return false;
  if (c.eat('.')) c.eat_many(d09);
  if (c.done()) return true;
  c.eat_many([](char x) { return x == ' ' || x == '\t'; });
  if (c.eat('Z')) return c.done();
  if (!c.eat('-') && !c.eat('+')) return false;
  if (!one_or_two()) return false;
  if (c.eat(':') && !digits(2)) return false;
  return c.done();
}

bool match_null(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool match_bool(std::string_view s) {
  static constexpr std::string_view words[] = {"yes", "Yes", "YES", "no", "No", "NO",
                                               "true", "True", "TRUE", "false", "False", "FALSE",
                                               "on", "On", "ON", "off", "Off", "OFF"};
  for (auto w : words)
    if (s == w) return true;
  return false;
}

// PyYAML's Resolver.resolve for a plain scalar. `loader`: OmegaConf's loader
// (its extra float pattern, no timestamps); otherwise yaml.Dumper's resolver.
// Registration order is bool, float, int, merge, null, timestamp, value, then
// OmegaConf's float; the first match wins.
Tag resolve_plain(std::string_view s, bool loader) {
  if (match_bool(s)) return Tag::Bool;
  if (match_float(s)) return Tag::Float;
  if (match_int(s)) return Tag::Int;
  if (s == "<<") return Tag::Merge;
  if (match_null(s)) return Tag::Null;
  if (!loader && match_timestamp(s)) return Tag::Timestamp;
  if (s == "=") return Tag::ValueKey;
  if (loader && match_omegaconf_float(s)) return Tag::Float;
  return Tag::Str;
}

// ------------------------------------------------------ constructors

std::string without_underscores(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_') out.push_back(c);
  return out;
}

// Unsigned big number in base 1e9 limbs, little-endian, for ints past int64.
struct BigUint {
  std::vector<uint32_t> limbs;
  void mul_add(uint32_t mul, uint32_t add) {
    uint64_t carry = add;
    for (auto& l : limbs) {
      uint64_t v = static_cast<uint64_t>(l) * mul + carry;
      l = static_cast<uint32_t>(v % 1000000000u);
      carry = v / 1000000000u;
    }
    while (carry) {
      limbs.push_back(static_cast<uint32_t>(carry % 1000000000u));
      carry /= 1000000000u;
    }
  }
  void add(const BigUint& o) {
    uint64_t carry = 0;
    if (limbs.size() < o.limbs.size()) limbs.resize(o.limbs.size(), 0);
    for (size_t k = 0; k < limbs.size(); ++k) {
      uint64_t v = static_cast<uint64_t>(limbs[k]) + (k < o.limbs.size() ? o.limbs[k] : 0) + carry;
      limbs[k] = static_cast<uint32_t>(v % 1000000000u);
      carry = v / 1000000000u;
    }
    if (carry) limbs.push_back(static_cast<uint32_t>(carry));
  }
  std::string decimal() const {
    size_t top = limbs.size();
    while (top > 0 && limbs[top - 1] == 0) --top;
    if (top == 0) return "0";
    std::string out = std::to_string(limbs[top - 1]);
    for (size_t k = top - 1; k-- > 0;) {
      std::string part = std::to_string(limbs[k]);
      out += std::string(9 - part.size(), '0') + part;
    }
    return out;
  }
};

// An Int Value from a sign and the magnitude's decimal digits.
Value int_from_decimal(bool negative, const std::string& digits) {
  std::string text = (negative ? "-" : "") + digits;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  Value out = Value::of_int(0);
  if (ec == std::errc() && p == text.data() + text.size()) {
    out.integer = v;
  } else {
    out.big_int = text;
  }
  return out;
}

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

// SafeConstructor.construct_yaml_int.
Value construct_int(std::string_view text, const std::string& where) {
  std::string v = without_underscores(text);
  bool negative = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    negative = v[0] == '-';
    v.erase(0, 1);
  }
  auto fail = [&]() -> Value { throw FormatError(where + ": invalid integer '" + std::string(text) + "'"); };
  if (v.empty()) return fail();
  if (v == "0") return Value::of_int(0);
  auto in_base = [&](std::string_view digits, int base) {
    if (digits.empty()) fail();
    BigUint n;
    for (char c : digits) {
      int d = digit_value(c);
      if (d >= base) fail();
      n.mul_add(static_cast<uint32_t>(base), static_cast<uint32_t>(d));
    }
    return n;
  };
  BigUint magnitude;
  if (v.starts_with("0b")) {
    magnitude = in_base(std::string_view(v).substr(2), 2);
  } else if (v.starts_with("0x")) {
    magnitude = in_base(std::string_view(v).substr(2), 16);
  } else if (v[0] == '0') {
    magnitude = in_base(std::string_view(v).substr(1), 8);
  } else if (v.find(':') != std::string::npos) {
    // Horner over the base-60 parts: value = ((p0*60)+p1)*60+...
    size_t start = 0;
    bool first = true;
    while (true) {
      size_t colon = v.find(':', start);
      std::string_view part = std::string_view(v).substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      BigUint p = in_base(part, 10);
      if (!first) magnitude.mul_add(60, 0);
      magnitude.add(p);
      first = false;
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  } else {
    magnitude = in_base(v, 10);
  }
  return int_from_decimal(negative, magnitude.decimal());
}

double parse_python_float(const std::string& s, const std::string& where, std::string_view text) {
  double d = 0;
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, d);
  if (p != e || s.empty() || (ec != std::errc() && ec != std::errc::result_out_of_range))
    throw FormatError(where + ": invalid float '" + std::string(text) + "'");
  if (ec == std::errc::result_out_of_range) {
    // Python's float() gives inf on overflow and 0.0 (or a denormal) on underflow.
    d = std::strtod(s.c_str(), nullptr);
  }
  return d;
}

// SafeConstructor.construct_yaml_float.
Value construct_float(std::string_view text, const std::string& where) {
  std::string v = without_underscores(text);
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double sign = 1.0;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    if (v[0] == '-') sign = -1.0;
    v.erase(0, 1);
  }
  if (v == ".inf") return Value::of_float(sign * std::numeric_limits<double>::infinity());
  // PyYAML's nan_value is -inf/inf: the CPU's default NaN, sign bit set on x86
  // (and what OmegaConf.create gives); float('nan') is the positive one.
  if (v == ".nan") return Value::of_float(-std::numeric_limits<double>::quiet_NaN());
  if (v.find(':') != std::string::npos) {
    std::vector<double> parts;
    size_t start = 0;
    while (true) {
      size_t colon = v.find(':', start);
      parts.push_back(parse_python_float(v.substr(start, colon == std::string::npos ? std::string::npos : colon - start), where, text));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    double base = 1, value = 0.0;
    for (size_t k = parts.size(); k-- > 0;) {
      value += parts[k] * base;
      base *= 60;
    }
    return Value::of_float(sign * value);
  }
  if (!v.empty() && v[0] == '+') throw FormatError(where + ": invalid float '" + std::string(text) + "'");
  return Value::of_float(sign * parse_python_float(v, where, text));
}

Value construct_bool(std::string_view text, const std::string& where) {
  std::string v(text);
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "yes" || v == "true" || v == "on") return Value::of_bool(true);
  if (v == "no" || v == "false" || v == "off") return Value::of_bool(false);
  throw FormatError(where + ": invalid boolean '" + std::string(text) + "'");
}

Value construct(Tag tag, std::string_view text, const std::string& where) {
  switch (tag) {
    case Tag::Null: return Value::null();
    case Tag::Bool: return construct_bool(text, where);
    case Tag::Int: return construct_int(text, where);
    case Tag::Float: return construct_float(text, where);
    default: return Value::of_str(std::string(text));
  }
}

// ------------------------------------------------------ float repr

// Python's repr(float): the shortest round-trip digits, positional when the
// decimal exponent is in [-4, 16), scientific otherwise.
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

// SafeRepresenter.represent_float.
std::string yaml_float_text(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  std::string v = python_float_repr(d);
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v.find('.') == std::string::npos) {
    size_t e = v.find('e');
    if (e != std::string::npos) v.insert(e, ".0");
  }
  return v;
}

// ------------------------------------------------------ the emitter

struct ScalarEvent {
  std::u32string text;
  std::string_view tag;  // the short form PyYAML's prepare_tag gives: "!!str"
  bool plain_implicit = false;
  bool quoted_implicit = false;
  bool single_quote_requested = false;  // OmegaConf's rule
};

// The representer's decisions for a scalar Value.
ScalarEvent represent(const Value& v) {
  ScalarEvent ev;
  std::string text;
  switch (v.type) {
    case Value::Type::Null: ev.tag = "!!null"; text = "null"; break;
    case Value::Type::Bool: ev.tag = "!!bool"; text = v.boolean ? "true" : "false"; break;
    case Value::Type::Int:
      ev.tag = "!!int";
      text = v.big_int.empty() ? std::to_string(v.integer) : v.big_int;
      break;
    case Value::Type::Float: ev.tag = "!!float"; text = yaml_float_text(v.real); break;
    case Value::Type::Str:
      ev.tag = "!!str";
      ev.plain_implicit = resolve_plain(v.str, false) == Tag::Str;
      ev.quoted_implicit = true;
      ev.single_quote_requested = is_yaml_bool_word(v.str) || python_int_accepts(v.str) ||
                                  python_float_accepts(v.str);
      ev.text = decode_utf8(v.str);
      return ev;
    default: break;
  }
  ev.plain_implicit = true;  // these texts always resolve back to their own type
  ev.text = decode_utf8(text);
  return ev;
}

struct Analysis {
  bool empty = false, multiline = false;
  bool allow_flow_plain = true, allow_block_plain = true;
  bool allow_single_quoted = true, allow_double_quoted = true, allow_block = true;
};

bool is_break(char32_t c) { return c == '\n' || c == 0x85 || c == 0x2028 || c == 0x2029; }
bool is_ws_or_break(char32_t c) { return c == 0 || c == ' ' || c == '\t' || c == '\r' || is_break(c); }

// Emitter.analyze_scalar.
Analysis analyze_scalar(const std::u32string& s) {
  Analysis a;
  if (s.empty()) {
    a.empty = true;
    a.allow_flow_plain = false;
    a.allow_block = false;
    return a;
  }
  bool block_indicators = false, flow_indicators = false, line_breaks = false, special = false;
  bool leading_space = false, leading_break = false, trailing_space = false, trailing_break = false;
  bool break_space = false, space_break = false;
  auto starts = [&](std::u32string_view p) { return s.size() >= 3 && std::u32string_view(s).substr(0, 3) == p; };
  if (starts(U"---") || starts(U"...")) block_indicators = flow_indicators = true;
  bool preceded_by_ws = true;
  bool followed_by_ws = s.size() == 1 || is_ws_or_break(s[1]);
  bool previous_space = false, previous_break = false;
  auto in = [](char32_t c, std::u32string_view set) { return set.find(c) != std::u32string_view::npos; };
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t ch = s[i];
    if (i == 0) {
      if (in(ch, U"#,[]{}&*!|>'\"%@`")) flow_indicators = block_indicators = true;
      if (ch == '?' || ch == ':') {
        flow_indicators = true;
        if (followed_by_ws) block_indicators = true;
      }
      if (ch == '-' && followed_by_ws) flow_indicators = block_indicators = true;
    } else {
      if (in(ch, U",?[]{}")) flow_indicators = true;
      if (ch == ':') {
        flow_indicators = true;
        if (followed_by_ws) block_indicators = true;
      }
      if (ch == '#' && preceded_by_ws) flow_indicators = block_indicators = true;
    }
    if (is_break(ch)) line_breaks = true;
    if (!(ch == '\n' || (ch >= 0x20 && ch <= 0x7E))) {
      bool printable_unicode = (ch == 0x85 || (ch >= 0xA0 && ch <= 0xD7FF) || (ch >= 0xE000 && ch <= 0xFFFD) ||
                                (ch >= 0x10000 && ch < 0x10FFFF)) && ch != 0xFEFF;
      if (!printable_unicode) special = true;  // allow_unicode: other unicode is fine
    }
    if (ch == ' ') {
      if (i == 0) leading_space = true;
      if (i == s.size() - 1) trailing_space = true;
      if (previous_break) break_space = true;
      previous_space = true;
      previous_break = false;
    } else if (is_break(ch)) {
      if (i == 0) leading_break = true;
      if (i == s.size() - 1) trailing_break = true;
      if (previous_space) space_break = true;
      previous_space = false;
      previous_break = true;
    } else {
      previous_space = previous_break = false;
    }
    preceded_by_ws = is_ws_or_break(ch);
    followed_by_ws = i + 2 >= s.size() || is_ws_or_break(s[i + 2]);
  }
  if (leading_space || leading_break || trailing_space || trailing_break)
    a.allow_flow_plain = a.allow_block_plain = false;
  if (trailing_space) a.allow_block = false;
  if (break_space) a.allow_flow_plain = a.allow_block_plain = a.allow_single_quoted = false;
  if (space_break || special)
    a.allow_flow_plain = a.allow_block_plain = a.allow_single_quoted = a.allow_block = false;
  if (line_breaks) a.allow_flow_plain = a.allow_block_plain = false;
  if (flow_indicators) a.allow_flow_plain = false;
  if (block_indicators) a.allow_block_plain = false;
  a.multiline = line_breaks;
  return a;
}

class Emitter {
 public:
  std::string out;

  void emit_document(const Value& root) {
    emit_tree(root);
    write_indent();  // document end (implicit)
    if (open_ended_) {  // stream end
      write_indicator("...", true);
      write_indent();
    }
  }

 private:
  static constexpr int kBestIndent = 2;
  static constexpr size_t kBestWidth = 80;
  static constexpr int kNone = -1;

  size_t column_ = 0;
  bool whitespace_ = true;
  bool indention_ = true;
  bool open_ended_ = false;
  int flow_level_ = 0;
  int indent_ = kNone;
  std::vector<int> indents_;

  struct Context {
    bool root = false, sequence = false, mapping = false, simple_key = false;
  };

  void write_raw(std::u32string_view data) {
    for (char32_t c : data) append_utf8(out, c);
    column_ += data.size();
  }

  void write_indicator(std::string_view indicator, bool need_whitespace, bool whitespace = false,
                       bool indention = false) {
    if (!whitespace_ && need_whitespace) {
      out.push_back(' ');
      ++column_;
    }
    out += indicator;
    column_ += indicator.size();
    whitespace_ = whitespace;
    indention_ = indention_ && indention;
    open_ended_ = false;
  }

  void write_indent() {
    size_t indent = indent_ == kNone ? 0 : static_cast<size_t>(indent_);
    if (!indention_ || column_ > indent || (column_ == indent && !whitespace_)) write_line_break();
    if (column_ < indent) {
      whitespace_ = true;
      out.append(indent - column_, ' ');
      column_ = indent;
    }
  }

  void write_line_break(char32_t br = '\n') {
    whitespace_ = true;
    indention_ = true;
    column_ = 0;
    append_utf8(out, br);
  }

  void increase_indent(bool flow, bool indentless = false) {
    indents_.push_back(indent_);
    if (indent_ == kNone) indent_ = flow ? kBestIndent : 0;
    else if (!indentless) indent_ += kBestIndent;
  }

  void pop_indent() {
    indent_ = indents_.back();
    indents_.pop_back();
  }

  // Emitter.choose_scalar_style: 0 plain, '\'' or '"'.
  char choose_style(const ScalarEvent& ev, const Analysis& a, const Context& ctx) const {
    if (!ev.single_quote_requested && ev.plain_implicit) {
      if (!(ctx.simple_key && (a.empty || a.multiline)) &&
          ((flow_level_ && a.allow_flow_plain) || (!flow_level_ && a.allow_block_plain)))
        return 0;
    }
    if (a.allow_single_quoted && !(ctx.simple_key && a.multiline)) return '\'';
    return '"';
  }

  void emit_scalar(const ScalarEvent& ev, const Context& ctx) {
    Analysis a = analyze_scalar(ev.text);
    increase_indent(true);
    char style = choose_style(ev, a, ctx);
    // Emitter.process_tag: the tag is written only when the chosen style
    // would not read back as the right type.
    if (!((style == 0 && ev.plain_implicit) || (style != 0 && ev.quoted_implicit)))
      write_indicator(ev.tag, true);
    bool split = !ctx.simple_key;
    if (style == '"') write_double_quoted(ev.text, split);
    else if (style == '\'') write_single_quoted(ev.text, split);
    else write_plain(ev.text, split, ctx.root);
    pop_indent();
  }

  // Emitter.check_simple_key for a scalar key.
  bool simple_key(const ScalarEvent& ev) const {
    Analysis a = analyze_scalar(ev.text);
    size_t length = ev.tag.size() + ev.text.size();
    return length < 128 && !a.empty && !a.multiline;
  }

  struct Frame {
    const Value* v;
    size_t next = 0;
  };

  // Starts a node: scalars and empty containers are written completely;
  // a non-empty container gets a frame on the stack.
  void start_node(const Value& v, const Context& ctx, std::vector<Frame>& stack) {
    if (v.type == Value::Type::Seq || v.type == Value::Type::Map) {
      bool is_map = v.type == Value::Type::Map;
      bool empty = is_map ? v.map.empty() : v.seq.empty();
      if (flow_level_ || empty) {
        write_indicator(is_map ? "{" : "[", true, true);
        ++flow_level_;
        increase_indent(true);
        // Only empty containers are written in flow style here.
        pop_indent();
        --flow_level_;
        write_indicator(is_map ? "}" : "]", false);
        return;
      }
      if (is_map) increase_indent(false);
      else increase_indent(false, ctx.mapping && !indention_);
      stack.push_back({&v, 0});
      return;
    }
    emit_scalar(represent(v), ctx);
  }

  void emit_tree(const Value& root) {
    std::vector<Frame> stack;
    Context root_ctx;
    root_ctx.root = true;
    start_node(root, root_ctx, stack);
    while (!stack.empty()) {
      Frame& f = stack.back();
      const Value& v = *f.v;
      size_t size = v.type == Value::Type::Map ? v.map.size() : v.seq.size();
      if (f.next == size) {
        pop_indent();
        stack.pop_back();
        continue;
      }
      size_t i = f.next++;
      if (v.type == Value::Type::Seq) {
        write_indent();
        write_indicator("-", true, false, true);
        Context ctx;
        ctx.sequence = true;
        start_node(v.seq[i], ctx, stack);  // may invalidate f
      } else {
        const auto& [key, value] = v.map[i];
        write_indent();
        Context ctx;
        ctx.mapping = true;
        if (key.is_container())
          throw UsageError("to_yaml: a mapping key is a container");
        ScalarEvent key_ev = represent(key);
        if (simple_key(key_ev)) {
          Context kctx = ctx;
          kctx.simple_key = true;
          emit_scalar(key_ev, kctx);
          write_indicator(":", false);
        } else {
          write_indicator("?", true, false, true);
          emit_scalar(key_ev, ctx);
          write_indent();
          write_indicator(":", true, false, true);
        }
        start_node(value, ctx, stack);
      }
    }
  }

  void write_plain(const std::u32string& text, bool split, bool root) {
    if (root) open_ended_ = true;
    if (text.empty()) return;
    if (!whitespace_) {
      out.push_back(' ');
      ++column_;
    }
    whitespace_ = false;
    indention_ = false;
    bool spaces = false, breaks = false;
    size_t start = 0, end = 0;
    std::u32string_view t(text);
    while (end <= t.size()) {
      char32_t ch = end < t.size() ? t[end] : 0;
      bool have = end < t.size();
      if (spaces) {
        if (!have || ch != ' ') {
          if (start + 1 == end && column_ > kBestWidth && split) {
            write_indent();
            whitespace_ = false;
            indention_ = false;
          } else {
            write_raw(t.substr(start, end - start));
          }
          start = end;
        }
      } else if (breaks) {
        if (!have || !is_break(ch)) {
          if (t[start] == '\n') write_line_break();
          for (char32_t br : t.substr(start, end - start)) write_line_break(br);
          write_indent();
          whitespace_ = false;
          indention_ = false;
          start = end;
        }
      } else {
        if (!have || ch == ' ' || is_break(ch)) {
          write_raw(t.substr(start, end - start));
          start = end;
        }
      }
      if (have) {
        spaces = ch == ' ';
        breaks = is_break(ch);
      }
      ++end;
    }
  }

  void write_single_quoted(const std::u32string& text, bool split) {
    write_indicator("'", true);
    bool spaces = false, breaks = false;
    size_t start = 0, end = 0;
    std::u32string_view t(text);
    while (end <= t.size()) {
      bool have = end < t.size();
      char32_t ch = have ? t[end] : 0;
      if (spaces) {
        if (!have || ch != ' ') {
          if (start + 1 == end && column_ > kBestWidth && split && start != 0 && end != t.size()) {
            write_indent();
          } else {
            write_raw(t.substr(start, end - start));
          }
          start = end;
        }
      } else if (breaks) {
        if (!have || !is_break(ch)) {
          if (t[start] == '\n') write_line_break();
          for (char32_t br : t.substr(start, end - start)) write_line_break(br);
          write_indent();
          start = end;
        }
      } else {
        if (!have || ch == ' ' || is_break(ch) || ch == '\'') {
          if (start < end) {
            write_raw(t.substr(start, end - start));
            start = end;
          }
        }
      }
      if (have && ch == '\'') {
        out += "''";
        column_ += 2;
        start = end + 1;
      }
      if (have) {
        spaces = ch == ' ';
        breaks = is_break(ch);
      }
      ++end;
    }
    write_indicator("'", false);
  }

  void write_double_quoted(const std::u32string& text, bool split) {
    write_indicator("\"", true);
    size_t start = 0, end = 0;
    std::u32string_view t(text);
    while (end <= t.size()) {
      bool have = end < t.size();
      char32_t ch = have ? t[end] : 0;
      if (!have || ch == '"' || ch == '\\' || ch == 0x85 || ch == 0x2028 || ch == 0x2029 || ch == 0xFEFF ||
          !((ch >= 0x20 && ch <= 0x7E) || (ch >= 0xA0 && ch <= 0xD7FF) || (ch >= 0xE000 && ch <= 0xFFFD))) {
        if (start < end) {
          write_raw(t.substr(start, end - start));
          start = end;
        }
        if (have) {
          std::string data;
          const char* rep = nullptr;
          switch (ch) {
            case 0: rep = "0"; break;
            case 0x07: rep = "a"; break;
            case 0x08: rep = "b"; break;
            case 0x09: rep = "t"; break;
            case 0x0A: rep = "n"; break;
            case 0x0B: rep = "v"; break;
            case 0x0C: rep = "f"; break;
            case 0x0D: rep = "r"; break;
            case 0x1B: rep = "e"; break;
            case '"': rep = "\""; break;
            case '\\': rep = "\\"; break;
            case 0x85: rep = "N"; break;
            case 0xA0: rep = "_"; break;
            case 0x2028: rep = "L"; break;
            case 0x2029: rep = "P"; break;
            default: break;
          }
          char buf[16];
          if (rep) {
            data = std::string("\\") + rep;
          } else if (ch <= 0xFF) {
            std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(ch));
            data = buf;
          } else if (ch <= 0xFFFF) {
            std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(ch));
            data = buf;
          } else {
            std::snprintf(buf, sizeof buf, "\\U%08X", static_cast<unsigned>(ch));
            data = buf;
          }
          out += data;
          column_ += data.size();
          start = end + 1;
        }
      }
      // Python's column + (end - start) may be column - 1 right after an escape.
      if (end > 0 && end + 1 < t.size() && (ch == ' ' || start >= end) &&
          static_cast<long long>(column_) + static_cast<long long>(end) - static_cast<long long>(start) >
              static_cast<long long>(kBestWidth) &&
          split) {
        // end >= start here only when ch was not just escaped; mirror Python's
        // text[start:end] which is empty when start > end.
        if (start < end) {
          write_raw(t.substr(start, end - start));
          start = end;
        }
        out.push_back('\\');
        ++column_;
        write_indent();
        whitespace_ = false;
        indention_ = false;
        if (t[start] == ' ') {
          out.push_back('\\');
          ++column_;
        }
      }
      ++end;
    }
    write_indicator("\"", false);
  }
};

// ------------------------------------------------------ the parser

constexpr size_t kMaxDepth = 512;
constexpr size_t kMaxAliasNodes = 1'000'000;

std::string where(const yaml_mark_t& m) {
  return "yaml: line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1);
}

size_t count_nodes(const Value& v) {
  size_t n = 0;
  std::vector<const Value*> todo{&v};
  while (!todo.empty()) {
    const Value* x = todo.back();
    todo.pop_back();
    ++n;
    for (const auto& [k, c] : x->map) todo.push_back(&c), ++n;
    for (const auto& c : x->seq) todo.push_back(&c);
  }
  return n;
}

struct Anchored {
  Value value;
  Tag tag;
  size_t nodes;
};

struct Frame {
  Value v;
  Tag tag;
  std::string anchor;
  yaml_mark_t mark;
  bool have_key = false;
  Value key;
  Tag key_tag = Tag::Str;
  yaml_mark_t key_mark{};
  std::vector<std::pair<Value, Value>> merged;  // SafeConstructor.flatten_mapping
  std::vector<std::pair<Value, Value>> own;
  std::unordered_set<std::string> str_keys;     // OmegaConf's duplicate check
};

// Python dict semantics for the constructed mapping: a later value for an
// equal key replaces the earlier one, which keeps its position.
Value build_mapping(std::vector<std::pair<Value, Value>>&& merged, std::vector<std::pair<Value, Value>>&& own) {
  Value m = Value::empty_map();
  std::unordered_map<std::string, size_t> str_index;
  auto put = [&](Value&& k, Value&& v) {
    if (k.type == Value::Type::Str) {
      auto [it, inserted] = str_index.emplace(k.str, m.map.size());
      if (!inserted) {
        m.map[it->second].second = std::move(v);
        return;
      }
    } else {
      for (auto& kv : m.map)
        if (kv.first.type != Value::Type::Str && kv.first == k) {
          kv.second = std::move(v);
          return;
        }
    }
    m.map.emplace_back(std::move(k), std::move(v));
  };
  for (auto& [k, v] : merged) put(std::move(k), std::move(v));
  for (auto& [k, v] : own) put(std::move(k), std::move(v));
  return m;
}

class Parser {
 public:
  explicit Parser(std::string_view text) {
    if (!yaml_parser_initialize(&p_)) throw Error("yaml: cannot initialize libyaml parser");
    yaml_parser_set_input_string(&p_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~Parser() { yaml_parser_delete(&p_); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  std::optional<Value> run() {
    int documents = 0;
    while (true) {
      yaml_event_t ev;
      if (!yaml_parser_parse(&p_, &ev)) {
        std::string msg = where(p_.problem_mark) + ": " + (p_.problem ? p_.problem : "invalid YAML");
        if (p_.context) msg += " (" + std::string(p_.context) + ")";
        throw FormatError(msg);
      }
      std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> guard(&ev, yaml_event_delete);
      switch (ev.type) {
        case YAML_STREAM_END_EVENT: return std::move(root_);
        case YAML_DOCUMENT_START_EVENT:
          if (++documents > 1) throw FormatError(where(ev.start_mark) + ": expected a single document in the stream");
          break;
        case YAML_SCALAR_EVENT: on_scalar(ev); break;
        case YAML_ALIAS_EVENT: on_alias(ev); break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: on_start(ev); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: on_end(); break;
        default: break;
      }
    }
  }

 private:
  yaml_parser_t p_;
  std::vector<Frame> stack_;
  std::optional<Value> root_;
  std::unordered_map<std::string, Anchored> anchors_;
  std::unordered_set<std::string> open_anchors_;
  size_t alias_nodes_ = 0;

  static std::string_view cstr(const yaml_char_t* s) {
    return s ? std::string_view(reinterpret_cast<const char*>(s)) : std::string_view();
  }

  void on_scalar(const yaml_event_t& ev) {
    std::string_view text(reinterpret_cast<const char*>(ev.data.scalar.value), ev.data.scalar.length);
    std::string_view tag = cstr(ev.data.scalar.tag);
    std::string w = where(ev.start_mark);
    Tag t;
    if (tag.empty() || tag == "!") {
      t = ev.data.scalar.plain_implicit ? resolve_plain(text, true) : Tag::Str;
    } else if (tag == YAML_STR_TAG) {
      t = Tag::Str;
    } else if (tag == YAML_INT_TAG) {
      t = Tag::Int;
    } else if (tag == YAML_FLOAT_TAG) {
      t = Tag::Float;
    } else if (tag == YAML_BOOL_TAG) {
      t = Tag::Bool;
    } else if (tag == YAML_NULL_TAG) {
      t = Tag::Null;
    } else {
      throw FormatError(w + ": unsupported tag '" + std::string(tag) + "'");
    }
    Value v;
    if (t == Tag::Merge || t == Tag::ValueKey) {
      v = Value::of_str(std::string(text));
      // '=' is a str as a key (flatten_mapping); as a value SafeLoader has
      // no constructor for it.
      bool is_key = !stack_.empty() && stack_.back().v.type == Value::Type::Map && !stack_.back().have_key;
      if (!is_key) throw FormatError(w + ": could not determine a constructor for the tag 'tag:yaml.org,2002:" +
                                     (t == Tag::Merge ? "merge" : "value") + "'");
      if (t == Tag::ValueKey) t = Tag::Str;
    } else {
      v = construct(t, text, w);
    }
    add(std::move(v), t, cstr(ev.data.scalar.anchor), ev.start_mark);
  }

  void on_alias(const yaml_event_t& ev) {
    std::string name(cstr(ev.data.alias.anchor));
    auto it = anchors_.find(name);
    if (it == anchors_.end()) {
      if (open_anchors_.count(name))
        throw FormatError(where(ev.start_mark) + ": alias '*" + name + "' refers to a node that contains it");
      throw FormatError(where(ev.start_mark) + ": found undefined alias '" + name + "'");
    }
    alias_nodes_ += it->second.nodes;
    if (alias_nodes_ > kMaxAliasNodes)
      throw FormatError(where(ev.start_mark) + ": aliases expand to more than " + std::to_string(kMaxAliasNodes) +
                        " nodes (limit reached)");
    add(Value(it->second.value), it->second.tag, {}, ev.start_mark);
  }

  void on_start(const yaml_event_t& ev) {
    if (stack_.size() >= kMaxDepth)
      throw FormatError(where(ev.start_mark) + ": nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    bool is_map = ev.type == YAML_MAPPING_START_EVENT;
    std::string_view tag = cstr(is_map ? ev.data.mapping_start.tag : ev.data.sequence_start.tag);
    std::string_view anchor = cstr(is_map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor);
    if (!tag.empty() && tag != "!" && tag != (is_map ? YAML_MAP_TAG : YAML_SEQ_TAG))
      throw FormatError(where(ev.start_mark) + ": unsupported tag '" + std::string(tag) + "'");
    Frame f;
    f.v = is_map ? Value::empty_map() : Value::empty_seq();
    f.tag = is_map ? Tag::Map : Tag::Seq;
    f.anchor = anchor;
    f.mark = ev.start_mark;
    if (!f.anchor.empty()) open_anchors_.insert(f.anchor);
    stack_.push_back(std::move(f));
  }

  void on_end() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.tag == Tag::Map) f.v = build_mapping(std::move(f.merged), std::move(f.own));
    if (!f.anchor.empty()) open_anchors_.erase(f.anchor);
    add(std::move(f.v), f.tag, f.anchor, f.mark);
  }

  void add(Value v, Tag tag, std::string_view anchor, const yaml_mark_t& mark) {
    if (!anchor.empty()) {
      size_t nodes = count_nodes(v);
      anchors_[std::string(anchor)] = Anchored{v, tag, nodes};
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      return;
    }
    Frame& f = stack_.back();
    if (f.tag == Tag::Seq) {
      f.v.seq.push_back(std::move(v));
      return;
    }
    if (!f.have_key) {
      if (v.is_container())
        throw FormatError(where(mark) + ": found unhashable key (a mapping or list used as a key)");
      if (tag == Tag::Str) {
        if (!f.str_keys.insert(v.str).second)
          throw FormatError(where(mark) + ": found duplicate key " + v.str);
      }
      f.key = std::move(v);
      f.key_tag = tag;
      f.key_mark = mark;
      f.have_key = true;
      return;
    }
    f.have_key = false;
    if (f.key_tag == Tag::Merge) {
      if (v.type == Value::Type::Map) {
        for (auto& kv : v.map) f.merged.push_back(std::move(kv));
      } else if (v.type == Value::Type::Seq) {
        for (const auto& sub : v.seq)
          if (sub.type != Value::Type::Map)
            throw FormatError(where(mark) + ": expected a mapping for merging");
        for (size_t k = v.seq.size(); k-- > 0;)
          for (auto& kv : v.seq[k].map) f.merged.push_back(std::move(kv));
      } else {
        throw FormatError(where(mark) + ": expected a mapping or list of mappings for merging");
      }
      return;
    }
    f.own.emplace_back(std::move(f.key), std::move(v));
  }
};

}  // namespace

std::string to_yaml(const Value& v) {
  Emitter e;
  e.emit_document(v);
  return std::move(e.out);
}

Value parse_yaml(std::string_view text) {
  Parser parser(text);
  std::optional<Value> root = parser.run();
  if (!root || root->type == Value::Type::Null) return Value::empty_map();
  if (root->type == Value::Type::Str) {
    // OmegaConf.create("abc") gives {"abc": None}.
    Value m = Value::empty_map();
    m.map.emplace_back(std::move(*root), Value::null());
    return m;
  }
  if (!root->is_container())
    throw FormatError("yaml: the document is a scalar, not a mapping or a list");
  return std::move(*root);
}

Value resolve_plain_scalar(std::string_view text) {
  Tag t = resolve_plain(text, true);
  if (t == Tag::Merge || t == Tag::ValueKey) t = Tag::Str;
  return construct(t, text, "value '" + std::string(text) + "'");
}

namespace detail {
// Exposed for tests.
std::string python_float_repr(double d) { return omegaconf::python_float_repr(d); }
bool python_float_accepts(std::string_view s) { return omegaconf::python_float_accepts(s); }
bool python_int_accepts(std::string_view s) { return omegaconf::python_int_accepts(s); }
}  // namespace detail

}  // namespace ckpt::omegaconf
