// PyYAML's YAML 1.1 implicit resolver (yaml/resolver.py), with OmegaConf's
// float resolver added for loading.
#include "omegaconf/yaml_scalar.h"

namespace ckpt::omegaconf {

bool is_yaml_bool_word(std::string_view s) {
  static constexpr std::string_view words[] = {
      "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
      "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N"};
  for (auto w : words)
    if (s == w) return true;
  return false;
}

namespace {


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

// [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)? : the alternative both
// float patterns open with; PyYAML's wants the exponent's sign, OmegaConf's not.
bool match_point_float(std::string_view s, bool exponent_sign_optional) {
  Cursor c{s};
  c.eat_sign();
  if (!c.eat_one(d09)) return false;
  c.eat_many(d09u);
  if (!c.eat('.')) return false;
  c.eat_many(d09u);
  return eat_exponent(c, exponent_sign_optional) && c.done();
}

// PyYAML's float pattern.
bool match_float(std::string_view s) {
  if (match_point_float(s, false)) return true;
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
  if (match_point_float(s, true)) return true;
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
}  // namespace

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

}  // namespace ckpt::omegaconf
