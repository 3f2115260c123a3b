// OmegaConf.to_yaml: a port of the parts of PyYAML's pure-Python emitter
// (yaml/emitter.py) that yaml.dump(..., default_flow_style=False,
// allow_unicode=True) reaches. libyaml's C emitter was the first choice but it
// differs from PyYAML on text OmegaConf can hold: it escapes every character
// outside the BMP ("\U0001F600" where PyYAML writes the emoji), escapes NEL
// (U+0085) and omits the "..." PyYAML writes after a top-level plain scalar.
// Columns count code points, as Python's len() does, so scalars are decoded
// to UTF-32 before analysis.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "omegaconf/yaml.h"
#include "omegaconf/yaml_scalar.h"
#include "util/error.h"
#include "util/python_number.h"
#include "util/utf8.h"

namespace ckpt::omegaconf {
namespace {

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

// The text is kept as UTF-8 when it is plain ASCII (one code point a byte,
// so the emitter's columns and decisions are the same on either form) and
// decoded to UTF-32 only otherwise: most config scalars are short ASCII.
struct ScalarEvent {
  std::string ascii;     // the text, when is_ascii
  std::u32string wide;   // the text, otherwise
  bool is_ascii = false;
  size_t size() const { return is_ascii ? ascii.size() : wide.size(); }
  std::string_view tag;  // the short form PyYAML's prepare_tag gives: "!!str"
  bool plain_implicit = false;
  bool quoted_implicit = false;
  bool single_quote_requested = false;  // OmegaConf's rule
};

void set_text(ScalarEvent& ev, std::string text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    ev.ascii = std::move(text);
    ev.is_ascii = true;
  } else {
    ev.wide = decode_utf8(text);
  }
}

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
      set_text(ev, v.str);
      return ev;
    default: break;
  }
  ev.plain_implicit = true;  // these texts always resolve back to their own type
  set_text(ev, std::move(text));
  return ev;
}

struct Analysis {
  bool empty = false, multiline = false;
  bool allow_flow_plain = true, allow_block_plain = true;
  bool allow_single_quoted = true, allow_double_quoted = true, allow_block = true;
};

bool is_break(char32_t c) { return c == '\n' || c == 0x85 || c == 0x2028 || c == 0x2029; }
bool is_ws_or_break(char32_t c) { return c == 0 || c == ' ' || c == '\t' || c == '\r' || is_break(c); }

// Emitter.analyze_scalar's character sets: '#,[]{}&*!|>\'"%@`' (first
// character) and ',?[]{}' (the others).
bool is_leading_indicator(char32_t c) {
  switch (c) {
    case '#': case ',': case '[': case ']': case '{': case '}': case '&': case '*':
    case '!': case '|': case '>': case '\'': case '"': case '%': case '@': case '`':
      return true;
    default:
      return false;
  }
}

bool is_flow_indicator(char32_t c) {
  switch (c) {
    case ',': case '?': case '[': case ']': case '{': case '}': return true;
    default: return false;
  }
}

// Emitter.analyze_scalar.
// S is std::u32string_view, or std::string_view holding only ASCII.
template <class S>
Analysis analyze_scalar(S s) {
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
  auto starts = [&](char32_t c) {
    return s.size() >= 3 && char32_t(s[0]) == c && char32_t(s[1]) == c && char32_t(s[2]) == c;
  };
  if (starts('-') || starts('.')) block_indicators = flow_indicators = true;
  bool preceded_by_ws = true;
  bool followed_by_ws = s.size() == 1 || is_ws_or_break(s[1]);
  bool previous_space = false, previous_break = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t ch = static_cast<char32_t>(s[i]);
    if (i == 0) {
      if (is_leading_indicator(ch)) flow_indicators = block_indicators = true;
      if (ch == '?' || ch == ':') {
        flow_indicators = true;
        if (followed_by_ws) block_indicators = true;
      }
      if (ch == '-' && followed_by_ws) flow_indicators = block_indicators = true;
    } else {
      if (is_flow_indicator(ch)) flow_indicators = true;
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

  void write_raw(std::string_view ascii) {
    out += ascii;
    column_ += ascii.size();
  }

  // f(text) with the event's text as a u32string_view or an ASCII string_view.
  template <class F>
  static decltype(auto) with_text(const ScalarEvent& ev, F&& f) {
    return ev.is_ascii ? f(std::string_view(ev.ascii)) : f(std::u32string_view(ev.wide));
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
    Analysis a = with_text(ev, [](auto t) { return analyze_scalar(t); });
    increase_indent(true);
    char style = choose_style(ev, a, ctx);
    // Emitter.process_tag: the tag is written only when the chosen style
    // would not read back as the right type.
    if (!((style == 0 && ev.plain_implicit) || (style != 0 && ev.quoted_implicit)))
      write_indicator(ev.tag, true);
    bool split = !ctx.simple_key;
    with_text(ev, [&](auto t) {
      if (style == '"') write_double_quoted(t, split);
      else if (style == '\'') write_single_quoted(t, split);
      else write_plain(t, split, ctx.root);
    });
    pop_indent();
  }

  // Emitter.check_simple_key for a scalar key.
  bool simple_key(const ScalarEvent& ev) const {
    Analysis a = with_text(ev, [](auto t) { return analyze_scalar(t); });
    size_t length = ev.tag.size() + ev.size();
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

  template <class S>
  void write_plain(S t, bool split, bool root) {
    if (root) open_ended_ = true;
    if (t.empty()) return;
    if (!whitespace_) {
      out.push_back(' ');
      ++column_;
    }
    whitespace_ = false;
    indention_ = false;
    bool spaces = false, breaks = false;
    size_t start = 0, end = 0;
    while (end <= t.size()) {
      char32_t ch = end < t.size() ? static_cast<char32_t>(t[end]) : 0;
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

  template <class S>
  void write_single_quoted(S t, bool split) {
    write_indicator("'", true);
    bool spaces = false, breaks = false;
    size_t start = 0, end = 0;
    while (end <= t.size()) {
      bool have = end < t.size();
      char32_t ch = have ? static_cast<char32_t>(t[end]) : 0;
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

  template <class S>
  void write_double_quoted(S t, bool split) {
    write_indicator("\"", true);
    size_t start = 0, end = 0;
    while (end <= t.size()) {
      bool have = end < t.size();
      char32_t ch = have ? static_cast<char32_t>(t[end]) : 0;
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

}  // namespace

std::string to_yaml(const Value& v) {
  Emitter e;
  e.emit_document(v);
  return std::move(e.out);
}

}  // namespace ckpt::omegaconf
