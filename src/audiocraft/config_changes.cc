#include "audiocraft/config_changes.h"

#include "omegaconf/yaml.h"

namespace ckpt::audiocraft {

using omegaconf::Value;

std::string value_repr(const Value& v) {
  switch (v.type) {
    case Value::Type::Null: return "None";
    case Value::Type::Bool: return v.boolean ? "True" : "False";
    case Value::Type::Int: return v.big_int.empty() ? std::to_string(v.integer) : v.big_int;
    case Value::Type::Float: return omegaconf::detail::python_float_repr(v.real);
    case Value::Type::Str: {
      std::string out = "'";
      for (char c : v.str) {
        if (c == '\'' || c == '\\') out += '\\';
        if (c == '\n') { out += "\\n"; continue; }
        if (c == '\t') { out += "\\t"; continue; }
        out += c;
      }
      return out + "'";
    }
    case Value::Type::Map: return "{" + std::to_string(v.map.size()) + (v.map.size() == 1 ? " key}" : " keys}");
    case Value::Type::Seq: return "[" + std::to_string(v.seq.size()) + (v.seq.size() == 1 ? " item]" : " items]");
  }
  return "?";
}

namespace {

std::string key_of(const Value& k) { return k.type == Value::Type::Str ? k.str : value_repr(k); }

const Value* find_key(const Value& map, const Value& key) {
  for (const auto& [k, v] : map.map)
    if (k == key) return &v;
  return nullptr;
}

// Explicit stack: config depth is input-controlled.
void walk(const Value& root_before, const Value& root_after, std::vector<ConfigChange>& out) {
  struct Item { const Value* before; const Value* after; std::string key; };
  std::vector<Item> stack{{&root_before, &root_after, ""}};
  auto join = [](const std::string& base, const std::string& k) { return base.empty() ? k : base + "." + k; };
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    const Value *b = it.before, *a = it.after;
    if (!b || !a) {
      out.push_back({it.key, b ? value_repr(*b) : "(absent)", a ? value_repr(*a) : "(absent)"});
      continue;
    }
    if (b->type == Value::Type::Map && a->type == Value::Type::Map) {
      std::vector<Item> kids;
      for (const auto& [k, v] : a->map) kids.push_back({find_key(*b, k), &v, join(it.key, key_of(k))});
      for (const auto& [k, v] : b->map)
        if (!find_key(*a, k)) kids.push_back({&v, nullptr, join(it.key, key_of(k))});
      for (auto i = kids.rbegin(); i != kids.rend(); ++i) stack.push_back(*i);
      continue;
    }
    if (b->type == Value::Type::Seq && a->type == Value::Type::Seq && b->seq.size() == a->seq.size()) {
      for (size_t i = a->seq.size(); i-- > 0;)
        stack.push_back({&b->seq[i], &a->seq[i], it.key + "[" + std::to_string(i) + "]"});
      continue;
    }
    if (!(*b == *a)) out.push_back({it.key, value_repr(*b), value_repr(*a)});
  }
}

}  // namespace

std::vector<ConfigChange> config_changes(const Value& before, const Value& after) {
  std::vector<ConfigChange> out;
  walk(before, after, out);
  return out;
}

}  // namespace ckpt::audiocraft
