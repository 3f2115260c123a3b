// Hydra's override grammar (hydra/grammar/OverrideLexer.g4, OverrideParser.g4
// and the visitor in hydra/core/override_parser), for single values: sweeps
// (a,b) and functions (choice(...), range(...)) are rejected.
//
// A primitive is a run of tokens (ID, INT, FLOAT, BOOL, NULL, ':', the
// unquoted characters / - \ + . $ % * @ ? |, escapes, whitespace,
// interpolations). Hydra types it only when it is a single token: then INT ->
// int, FLOAT -> float, BOOL -> bool, NULL -> None; otherwise it is the text
// with escapes undone and outer whitespace trimmed. Because the lexer takes
// the longest match, "a single INT token" is the same as "the whole trimmed
// text matches INT", which is how it is checked here.
#include "omegaconf/override.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace ckpt::omegaconf {
namespace {

constexpr size_t kMaxNesting = 256;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Characters a primitive may hold outside quotes and interpolations.
bool is_primitive_char(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  if (static_cast<unsigned char>(c) >= 0x80) return true;  // Hydra 1.3 IDs take Unicode letters
  switch (c) {
    case '_': case '$': case '-': case '/': case '\\': case '+': case '.': case '%': case '*':
    case '@': case '?': case '|': case ':': case ' ': case '\t':
      return true;
    default:
      return false;
  }
}

// DIGIT ('_'? DIGIT)* at i.
bool eat_digits(std::string_view s, size_t& i) {
  if (i >= s.size() || !is_digit(s[i])) return false;
  ++i;
  while (i < s.size()) {
    if (is_digit(s[i])) ++i;
    else if (s[i] == '_' && i + 1 < s.size() && is_digit(s[i + 1])) i += 2;
    else break;
  }
  return true;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
    if (x != b[i]) return false;
  }
  return true;
}

// INT: [+-]? ('0' | [1-9] ('_'? DIGIT)*)
bool is_int_token(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '0') return i + 1 == s.size();
  if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;
  return eat_digits(s, i) && i == s.size();
}

// FLOAT: [+-]? (POINT_FLOAT | EXPONENT_FLOAT | inf | nan)
bool is_float_token(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::string_view rest = s.substr(i);
  if (ieq(rest, "inf") || ieq(rest, "nan")) return true;
  bool int_part = eat_digits(s, i);
  bool point = false, fraction = false;
  if (i < s.size() && s[i] == '.') {
    point = true;
    ++i;
    fraction = eat_digits(s, i);
  }
  bool point_float = (point && fraction) || (int_part && point);
  bool exponent = false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E') && (int_part || point_float)) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!eat_digits(s, i)) return false;
    exponent = true;
  }
  return i == s.size() && (point_float || exponent);
}

std::string strip_underscores(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_') out.push_back(c);
  return out;
}

Value int_value(std::string_view text) {
  std::string s = strip_underscores(text);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  Value v = Value::of_int(0);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v.integer);
  if (ec != std::errc() || p != s.data() + s.size()) {
    v.integer = 0;
    v.big_int = s;
  }
  return v;
}

Value float_value(std::string_view text) {
  std::string s = strip_underscores(text);
  double sign = 1.0;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    if (s[0] == '-') sign = -1.0;
    s.erase(0, 1);
  }
  if (ieq(s, "inf")) return Value::of_float(sign * std::numeric_limits<double>::infinity());
  // float('-nan') keeps the sign bit (a product with -1.0 would not on x86).
  if (ieq(s, "nan")) return Value::of_float(std::copysign(std::numeric_limits<double>::quiet_NaN(), sign));
  double d = std::strtod(s.c_str(), nullptr);  // Python's float(): overflow gives inf
  return Value::of_float(sign * d);
}

class ValueParser {
 public:
  ValueParser(std::string_view text, size_t offset, std::string_view whole)
      : s_(text), offset_(offset), whole_(whole) {}

  Value parse() {
    struct Frame {
      Value v;
      bool have_key = false;
      std::string key;
    };
    std::vector<Frame> stack;
    Value result;
    while (true) {
      size_t element_start = pos_;
      skip_ws();
      // An element (or a key first, inside a dict).
      if (!stack.empty() && stack.back().v.type == Value::Type::Map && !stack.back().have_key) {
        stack.back().key = parse_dict_key();
        stack.back().have_key = true;
        skip_ws();
      }
      Value element;
      bool have_element = false;
      if (peek('[') || peek('{')) {
        if (stack.size() >= kMaxNesting) fail("lists and dicts nested deeper than " + std::to_string(kMaxNesting));
        bool is_map = peek('{');
        ++pos_;
        stack.push_back({is_map ? Value::empty_map() : Value::empty_seq(), false, {}});
        skip_ws();
        if (peek(is_map ? '}' : ']')) {
          ++pos_;
          element = std::move(stack.back().v);
          stack.pop_back();
          have_element = true;
        } else {
          continue;
        }
      } else {
        element = parse_primitive(stack.empty() ? 0 : stack.back().v.type == Value::Type::Map ? '}' : ']',
                                  element_start);
        have_element = true;
      }
      // Place the finished element, closing containers it completes.
      while (have_element) {
        if (stack.empty()) {
          result = std::move(element);
          skip_ws();
          if (pos_ < s_.size()) {
            if (s_[pos_] == ',') fail("sweeps (a,b) are not supported; quote the value or use a list [a,b]");
            fail(std::string("unexpected '") + s_[pos_] + "'");
          }
          return result;
        }
        Frame& f = stack.back();
        if (f.v.type == Value::Type::Map) {
          f.v.map.emplace_back(Value::of_str(f.key), std::move(element));
          f.have_key = false;
        } else {
          f.v.seq.push_back(std::move(element));
        }
        skip_ws();
        char close = f.v.type == Value::Type::Map ? '}' : ']';
        if (peek(',')) {
          ++pos_;
          have_element = false;
        } else if (peek(close)) {
          ++pos_;
          element = std::move(f.v);
          stack.pop_back();
        } else if (pos_ >= s_.size()) {
          fail(std::string("missing '") + close + "'");
        } else {
          fail(std::string("expected ',' or '") + close + "' at '" + s_[pos_] + "'");
        }
      }
    }
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  size_t offset_;
  std::string_view whole_;

  [[noreturn]] void fail(const std::string& what) const {
    throw UsageError("override '" + std::string(whole_) + "': " + what + " (at column " +
                     std::to_string(offset_ + pos_ + 1) + ")");
  }

  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }

  // '${' ... '}' with nesting, copied verbatim.
  void scan_interpolation(std::string& out) {
    size_t depth = 0;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '$' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{') {
        out += "${";
        pos_ += 2;
        ++depth;
        continue;
      }
      out.push_back(c);
      ++pos_;
      if (c == '{') ++depth;
      if (c == '}' && --depth == 0) return;
    }
    fail("unterminated interpolation '${'");
  }

  // Text of an unquoted run; sets had_escape. Stops at a delimiter.
  std::string scan_unquoted(bool for_key, bool& had_escape) {
    std::string out;
    // Hydra trims whitespace tokens at both ends; escaped blanks stay.
    size_t lead = 0, keep_end = 0;
    bool only_ws = true;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ',' || c == ']' || c == '}') break;
      if (for_key && c == ':') break;
      if (c == '$' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{') {
        scan_interpolation(out);
        only_ws = false;
        keep_end = out.size();
        continue;
      }
      if (c == '\\' && pos_ + 1 < s_.size()) {
        char n = s_[pos_ + 1];
        static constexpr std::string_view escapable = "\\()[]{}:=, \t";
        if (escapable.find(n) != std::string_view::npos) {
          out.push_back(n);
          pos_ += 2;
          had_escape = true;
          only_ws = false;
          keep_end = out.size();
          continue;
        }
      }
      if (c == '[' || c == '{') fail(std::string("unexpected '") + c + "' inside a value (quote it)");
      if (c == '(' || c == ')') fail("functions (choice, range, ...) are not supported");
      if (!is_primitive_char(c)) fail(std::string("unexpected character '") + c + "' (quote the value)");
      out.push_back(c);
      ++pos_;
      bool blank = c == ' ' || c == '\t';
      if (blank && only_ws) lead = out.size();
      if (!blank) {
        only_ws = false;
        keep_end = out.size();
      }
    }
    if (only_ws) return {};
    return out.substr(lead, keep_end - lead);
  }

  std::string parse_quoted() {
    char q = s_[pos_++];
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '\\' && pos_ + 1 < s_.size() && (s_[pos_ + 1] == q || s_[pos_ + 1] == '\\')) {
        out.push_back(s_[pos_ + 1]);
        pos_ += 2;
        continue;
      }
      if (c == q) {
        ++pos_;
        return out;
      }
      out.push_back(c);
      ++pos_;
    }
    fail(std::string("unterminated quoted string (missing ") + q + ")");
  }

  std::string parse_dict_key() {
    bool esc = false;
    std::string key = scan_unquoted(true, esc);
    if (key.empty()) fail("empty dict key");
    if (!peek(':')) fail("expected ':' after dict key '" + key + "'");
    ++pos_;
    return key;
  }

  Value parse_primitive(char close, size_t element_start) {
    skip_ws();
    if (peek('\'') || peek('"')) {
      std::string text = parse_quoted();
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != close)
        fail("unexpected text after a quoted string");
      return Value::of_str(std::move(text));
    }
    bool had_escape = false;
    std::string text = scan_unquoted(false, had_escape);
    if (text.empty()) {
      if (close == 0 && s_.empty()) return Value::of_str("");  // "key=" sets ''
      fail(pos_ > element_start ? "a value is all whitespace" : "missing value");
    }
    if (!had_escape) {
      if (is_int_token(text)) return int_value(text);
      if (is_float_token(text)) return float_value(text);
      if (ieq(text, "true")) return Value::of_bool(true);
      if (ieq(text, "false")) return Value::of_bool(false);
      if (ieq(text, "null")) return Value::null();
    }
    return Value::of_str(std::move(text));
  }
};

}  // namespace

Override parse_override(std::string_view text) {
  Override o;
  o.text = std::string(text);
  auto fail = [&](const std::string& what) -> void {
    throw UsageError("override '" + std::string(text) + "': " + what);
  };
  size_t pos = 0;
  if (text.starts_with("++")) {
    o.op = Override::Op::ForceAdd;
    pos = 2;
  } else if (text.starts_with("+")) {
    o.op = Override::Op::Add;
    pos = 1;
  } else if (text.starts_with("~")) {
    o.op = Override::Op::Delete;
    pos = 1;
  }
  size_t eq = text.find('=', pos);
  std::string_view key = text.substr(pos, eq == std::string_view::npos ? std::string_view::npos : eq - pos);
  if (eq == std::string_view::npos && o.op != Override::Op::Delete)
    fail("missing '=' (use key=value, +key=value, ++key=value or ~key)");
  if (key.empty()) fail("empty key");
  o.key = std::string(key);
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string_view element = key.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (element.empty()) fail("empty key element");
    for (char c : element)
      if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == '$' || c == '/' ||
            static_cast<unsigned char>(c) >= 0x80))
        fail(std::string("invalid character '") + c + "' in key");
    o.path.emplace_back(element);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (eq != std::string_view::npos) {
    std::string_view value_text = text.substr(eq + 1);
    o.value = ValueParser(value_text, eq + 1, text).parse();
  }
  return o;
}

}  // namespace ckpt::omegaconf
