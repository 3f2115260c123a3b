#include "util/error.h"

namespace ckpt {

namespace {

bool is_field_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

}  // namespace

std::string spell_options(std::string_view message, const OptionSpeller& spell) {
  std::string out;
  size_t i = 0;
  while (i < message.size()) {
    size_t open = message.find('`', i);
    size_t close = open == std::string_view::npos ? open : message.find('`', open + 1);
    if (close == std::string_view::npos) break;
    std::string_view inner = message.substr(open + 1, close - open - 1);
    size_t n = 0;
    while (n < inner.size() && is_field_char(inner[n])) ++n;
    bool is_ref = n > 0 && inner[0] >= 'a' && inner[0] <= 'z' && (n == inner.size() || inner[n] == '=');
    out.append(message.substr(i, open - i));
    if (is_ref) {
      bool set = n < inner.size();
      out += spell(std::string(inner.substr(0, n)), set ? std::string(inner.substr(n + 1)) : std::string(), set);
      i = close + 1;
    } else {
      out += '`';  // not an option: keep the text, look again after this backquote
      i = open + 1;
    }
  }
  out.append(message.substr(i));
  return out;
}

}  // namespace ckpt
