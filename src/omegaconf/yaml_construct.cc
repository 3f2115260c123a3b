// PyYAML's SafeConstructor for scalars (int in any base and base 60, float,
// bool), as OmegaConf.create reaches it.
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "omegaconf/yaml.h"
#include "omegaconf/yaml_scalar.h"
#include "util/big_uint.h"
#include "util/error.h"

namespace ckpt::omegaconf {

namespace {

std::string without_underscores(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_') out.push_back(c);
  return out;
}

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
    for (char c : digits)
      if (digit_value(c) >= base) fail();
    return BigUint::from_digits(digits, static_cast<unsigned>(base));
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

}  // namespace

Value construct(Tag tag, std::string_view text, const std::string& where) {
  switch (tag) {
    case Tag::Null: return Value::null();
    case Tag::Bool: return construct_bool(text, where);
    case Tag::Int: return construct_int(text, where);
    case Tag::Float: return construct_float(text, where);
    default: return Value::of_str(std::string(text));
  }
}

Value resolve_plain_scalar(std::string_view text) {
  Tag t = resolve_plain(text, true);
  if (t == Tag::Merge || t == Tag::ValueKey) t = Tag::Str;
  return construct(t, text, "value '" + std::string(text) + "'");
}

}  // namespace ckpt::omegaconf
