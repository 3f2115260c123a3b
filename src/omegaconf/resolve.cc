#include "omegaconf/resolve.h"

#include <memory>
#include <string>
#include <vector>

#include "omegaconf/dictconfig.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::omegaconf {
namespace {

// Interpolations may point at interpolations; deeper than this is a cycle
// (OmegaConf recurses until Python's recursion limit).
constexpr int kMaxDepth = 64;

// A node and the containers that lead to it from the root (the last one
// holds it), so that relative interpolations can climb.
struct Located {
  const Value* value = nullptr;
  std::vector<const Value*> parents;
  std::string path;
};

bool has_interpolation(const Value& v) {
  return v.type == Value::Type::Str && v.str.find("${") != std::string::npos;
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

class Resolver {
 public:
  explicit Resolver(const Value& root) : root_(root) {}

  // Walks `parts` from `from`, resolving interpolated containers on the way.
  std::optional<Located> walk(Located from, const std::vector<std::string>& parts, int depth) {
    Located cur = std::move(from);
    for (const auto& part : parts) {
      if (part.empty()) return std::nullopt;
      if (has_interpolation(*cur.value)) {
        Located target = follow(cur, depth + 1);
        cur = std::move(target);
      }
      const Value* child = detail::child_of(*cur.value, part);
      if (!child) return std::nullopt;
      cur.parents.push_back(cur.value);
      cur.value = child;
      cur.path = join(cur.path, part);
    }
    return cur;
  }

  // The node a full interpolation "${key}" designates, followed until it is
  // no longer one; a string interpolation gives a new string, held in owned_.
  Located follow(const Located& at, int depth) {
    if (depth > kMaxDepth)
      throw UsageError("config key '" + at.path + "': interpolation loop (or more than " +
                       std::to_string(kMaxDepth) + " levels)");
    const std::string& text = at.value->str;
    size_t end = 0;
    if (text.size() >= 3 && text.compare(0, 2, "${") == 0 && (end = closing(text, 2, at)) == text.size() - 1) {
      std::string inner = text.substr(2, end - 2);
      refuse_resolver(inner, at);
      std::string key = substitute(inner, at, depth + 1);
      Located target = node_at(key, at, depth + 1);
      if (target.value->type == Value::Type::Str && target.value->str == "???")
        throw UsageError("config key '" + at.path + "': interpolation '" + text + "' points at '" + target.path +
                         "', which is missing ('?\?\?')");
      if (has_interpolation(*target.value)) return follow(target, depth + 1);
      return target;
    }
    Located out = at;
    owned_.push_back(std::make_unique<Value>(Value::of_str(substitute(text, at, depth))));
    out.value = owned_.back().get();
    return out;
  }

 private:
  // Index of the '}' closing the '${' whose body starts at `from`.
  size_t closing(const std::string& s, size_t from, const Located& at) {
    int open = 1;
    for (size_t i = from; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) {
        ++i;
      } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
        ++open;
        ++i;
      } else if (s[i] == '}' && --open == 0) {
        return i;
      }
    }
    throw UsageError("config key '" + at.path + "': unterminated interpolation in '" + s + "'");
  }

  void refuse_resolver(const std::string& inner, const Located& at) {
    int open = 0;
    for (size_t i = 0; i < inner.size(); ++i) {
      if (inner[i] == '$' && i + 1 < inner.size() && inner[i + 1] == '{') ++open, ++i;
      else if (inner[i] == '}') --open;
      else if (inner[i] == ':' && open == 0) {
        std::string name = inner.substr(0, i);
        while (!name.empty() && name.back() == ' ') name.pop_back();
        while (!name.empty() && name.front() == ' ') name.erase(0, 1);
        throw UsageError("config key '" + at.path + "': '${" + inner + "}' calls the resolver '" + name +
                         "'; ckpt does not run resolvers (" + option_set("raw") + " prints the text)");
      }
    }
  }

  // The text with each ${...} replaced by str() of what it designates and
  // each \${ unescaped.
  std::string substitute(const std::string& text, const Located& at, int depth) {
    if (depth > kMaxDepth)
      throw UsageError("config key '" + at.path + "': interpolation loop (or more than " + std::to_string(kMaxDepth) +
                       " levels)");
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\\' && i + 2 < text.size() && text[i + 1] == '$' && text[i + 2] == '{') {
        out += "${";
        i += 2;
      } else if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
        size_t end = closing(text, i + 2, at);
        std::string inner = text.substr(i + 2, end - i - 2);
        refuse_resolver(inner, at);
        Located target = node_at(substitute(inner, at, depth + 1), at, depth + 1);
        if (has_interpolation(*target.value)) target = follow(target, depth + 1);
        out += python_str(*target.value, at, target.path);
        i = end;
      } else {
        out.push_back(text[i]);
      }
    }
    return out;
  }

  // Resolves an interpolation key relative to the node `at`.
  Located node_at(const std::string& key, const Located& at, int depth) {
    Located from;
    std::string rest = key;
    while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
    while (!rest.empty() && rest.back() == ' ') rest.pop_back();
    if (!rest.empty() && rest.front() == '.') {
      // ".x": in the container holding `at`; each further dot climbs one level.
      size_t dots = rest.find_first_not_of('.');
      if (dots == std::string::npos) dots = rest.size();
      rest.erase(0, dots);
      if (at.parents.size() < dots)
        throw UsageError("config key '" + at.path + "': interpolation '${" + key + "}' climbs above the root");
      from.parents.assign(at.parents.begin(), at.parents.end() - static_cast<std::ptrdiff_t>(dots));
      from.value = at.parents[at.parents.size() - dots];
      std::string path = at.path;
      for (size_t k = 0; k < dots && !path.empty(); ++k) {
        size_t dot = path.rfind('.');
        path = dot == std::string::npos ? "" : path.substr(0, dot);
      }
      from.path = path;
    } else {
      from.value = &root_;
    }
    std::vector<std::string> parts = rest.empty() ? std::vector<std::string>{} : detail::split_select_key(rest);
    std::optional<Located> found;
    if (rest.empty() || !parts.empty()) found = walk(from, parts, depth);
    if (!found)
      throw UsageError("config key '" + at.path + "': interpolation '${" + key + "}' points at a key that does not exist");
    return *found;
  }

  std::string python_str(const Value& v, const Located& at, const std::string& target) {
    switch (v.type) {
      case Value::Type::Null: return "None";
      case Value::Type::Bool: return v.boolean ? "True" : "False";
      case Value::Type::Int: return v.big_int.empty() ? std::to_string(v.integer) : v.big_int;
      case Value::Type::Float: return detail::python_float_repr(v.real);
      case Value::Type::Str:
        if (v.str == "???")
          throw UsageError("config key '" + at.path + "': interpolation of '" + target + "', which is missing ('?\?\?')");
        return v.str;
      default:
        throw UsageError("config key '" + at.path + "': a dict or list ('" + target +
                         "') interpolated into a string is not supported");
    }
  }

  const Value& root_;
  std::vector<std::unique_ptr<Value>> owned_;
};

}  // namespace

std::optional<Value> select_resolved(const Value& tree, std::string_view key) {
  Resolver r(tree);
  std::vector<std::string> parts;
  if (!key.empty()) {
    parts = detail::split_select_key(key);
    if (parts.empty()) return std::nullopt;
  }
  Located start;
  start.value = &tree;
  const std::string named = "config key '" + std::string(key) + "'";
  try {
    std::optional<Located> at = r.walk(start, parts, 0);
    if (!at) return std::nullopt;
    if (has_interpolation(*at->value)) return *r.follow(*at, 1).value;
  } catch (const UsageError& e) {
    // Name the key asked for when the problem lies further down the chain.
    std::string m = e.what();
    if (m.rfind(named, 0) == 0) throw;
    throw UsageError(named + " -> " + m);
  }
  std::optional<Located> at = r.walk(start, parts, 0);
  if (at->value->type == Value::Type::Str && at->value->str == "???")
    throw UsageError("config key '" + std::string(key) + "' is missing ('?\?\?')");
  return *at->value;
}

std::string scalar_text(const Value& v) {
  if (v.type == Value::Type::Str) return v.str;
  std::string y = to_yaml(v);
  // yaml.dump of a scalar: "TEXT\n...\n".
  if (y.size() >= 4 && y.compare(y.size() - 4, 4, "...\n") == 0) y.resize(y.size() - 4);
  while (!y.empty() && y.back() == '\n') y.pop_back();
  return y;
}

}  // namespace ckpt::omegaconf
