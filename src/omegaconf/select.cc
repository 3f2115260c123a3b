#include "omegaconf/select.h"

#include <charconv>

namespace ckpt::omegaconf {

namespace {

std::optional<size_t> parse_index(const std::string& s) {
  size_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return i;
}

}  // namespace

// Splits an OmegaConf.select key: "a.b", "a[0].b", "a.0".
std::vector<std::string> split_select_key(std::string_view key) {
  std::vector<std::string> out;
  std::string cur;
  bool have = false;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c == '.') {
      if (have) out.push_back(cur);
      cur.clear();
      have = true;  // an element follows a dot, even an empty one
    } else if (c == '[') {
      if (have || !cur.empty()) out.push_back(cur);
      size_t close = key.find(']', i);
      if (close == std::string_view::npos) return {};
      out.emplace_back(key.substr(i + 1, close - i - 1));
      cur.clear();
      have = false;
      i = close;
    } else {
      cur.push_back(c);
      have = true;
    }
  }
  if (have) out.push_back(cur);
  return out;
}

const Value* child_of(const Value& v, const std::string& element) {
  if (v.type == Value::Type::Map) {
    if (const Value* x = v.find(element)) return x;
    if (auto i = parse_index(element))
      for (const auto& [k, x] : v.map)
        if (k.type == Value::Type::Int && k.big_int.empty() && k.integer >= 0 && static_cast<size_t>(k.integer) == *i)
          return &x;
    return nullptr;
  }
  if (v.type == Value::Type::Seq) {
    auto i = parse_index(element);
    if (i && *i < v.seq.size()) return &v.seq[*i];
  }
  return nullptr;
}

const Value* select(const Value& tree, std::string_view key) {
  if (key.empty()) return &tree;
  std::vector<std::string> parts = split_select_key(key);
  if (parts.empty()) return nullptr;
  const Value* cur = &tree;
  for (const auto& p : parts) {
    if (p.empty()) return nullptr;
    cur = child_of(*cur, p);
    if (!cur) return nullptr;
  }
  return cur;
}

}  // namespace ckpt::omegaconf
