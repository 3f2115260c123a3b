#include "torch/module.h"

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/error.h"

namespace ckpt::torch {

using pickle::Kind;
using pickle::Node;

namespace {

constexpr size_t kMaxModuleDepth = 1000;

const Node* attr(const Node* module, const char* name) {
  return module && module->kind == Kind::Object ? pickle::get_item(module->state, name) : nullptr;
}

// The str items of a set: a SET node, or REDUCE of builtins.set with a list
// (protocol 2 has no set opcodes).
std::unordered_set<std::string> str_set(const Node* n) {
  std::unordered_set<std::string> out;
  if (!n) return out;
  const Node* items = n;
  if (n->kind == Kind::Object && (n->is_instance_of("builtins", "set") || n->is_instance_of("__builtin__", "set")))
    items = n->args && !n->args->items.empty() ? n->args->items[0] : nullptr;
  if (items && (items->kind == Kind::Set || items->kind == Kind::FrozenSet || items->kind == Kind::List ||
                items->kind == Kind::Tuple))
    for (const Node* i : items->items)
      if (i->kind == Kind::Str) out.insert(i->text);
  return out;
}

}  // namespace

bool is_module(const Node* n) {
  if (!n || n->kind != Kind::Object || !pickle::is_mapping(n->state)) return false;
  for (const char* a : {"_parameters", "_buffers", "_modules"})
    if (!pickle::is_mapping(attr(n, a))) return false;
  return true;
}

Node* module_state_dict(pickle::Graph& g, const Node* module) {
  Node* out = g.dict();
  std::unordered_map<std::string, size_t> index;
  auto add = [&](const std::string& name, Node* value) {
    auto [it, fresh] = index.emplace(name, out->entries.size());
    if (fresh) out->entries.emplace_back(g.str(name), value);
    else out->entries[it->second].second = value;
  };
  constexpr size_t kMaxEntries = 1'000'000;
  // Depth first in _modules order. torch recurses (Python's limit is about
  // 1,000 frames): deeper nesting, a module containing itself included, is refused.
  struct Item { const Node* m; std::string prefix; size_t depth; };
  std::vector<Item> stack{{module, "", 0}};
  size_t visits = 0;
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    if (++visits > kMaxEntries || out->entries.size() > kMaxEntries)
      throw FormatError("the pickled module's state dict has more than 1,000,000 entries");
    auto* params = pickle::entries_of(attr(it.m, "_parameters"));
    if (params)
      for (auto& [k, v] : *params)
        if (v->kind != Kind::None) add(it.prefix + pickle::key_text(k), v);
    auto non_persistent = str_set(attr(it.m, "_non_persistent_buffers_set"));
    if (auto* bufs = pickle::entries_of(attr(it.m, "_buffers")))
      for (auto& [k, v] : *bufs) {
        std::string name = pickle::key_text(k);
        if (v->kind != Kind::None && !non_persistent.count(name)) add(it.prefix + name, v);
      }
    auto* subs = pickle::entries_of(attr(it.m, "_modules"));
    if (!subs) continue;
    for (auto i = subs->rbegin(); i != subs->rend(); ++i) {
      const Node* child = i->second;
      if (child->kind == Kind::None || !is_module(child)) continue;
      if (it.depth + 1 > kMaxModuleDepth)
        throw FormatError("the pickled module nests submodules deeper than " + std::to_string(kMaxModuleDepth) +
                          " levels (or contains itself) at '" + it.prefix + pickle::key_text(i->first) + "'");
      stack.push_back({child, it.prefix + pickle::key_text(i->first) + ".", it.depth + 1});
    }
  }
  return out;
}

std::optional<ScriptClass> parse_script_class(std::string_view src, std::string_view name) {
  std::string head = "class " + std::string(name) + "(";
  size_t at = 0;
  for (;;) {
    at = src.find(head, at);
    if (at == std::string_view::npos) return std::nullopt;
    if (at == 0 || src[at - 1] == '\n') break;
    at += head.size();
  }
  size_t end = src.find("\nclass ", at + head.size());
  std::string_view body = src.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
  auto names = [&](std::string_view key, std::vector<std::string>& out) {
    size_t p = body.find("\n  " + std::string(key) + " = [");
    if (p == std::string_view::npos) return false;
    size_t close = body.find(']', p);
    if (close == std::string_view::npos) return false;
    std::string_view list = body.substr(p, close - p);
    size_t q = list.find('"');
    while (q != std::string_view::npos) {
      size_t e = list.find('"', q + 1);
      if (e == std::string_view::npos) break;
      out.emplace_back(list.substr(q + 1, e - q - 1));
      q = list.find('"', e + 1);
    }
    return true;
  };
  ScriptClass c;
  if (!names("__parameters__", c.parameters)) return std::nullopt;
  names("__buffers__", c.buffers);
  return c;
}

Node* script_module_state_dict(pickle::Graph& g, const Node* root, const ScriptClassLookup& class_of) {
  Node* out = g.dict();
  auto declared = [&](const Node* n) -> std::optional<ScriptClass> {
    if (!n || n->kind != Kind::Object || !n->callable || n->callable->kind != Kind::Global) return std::nullopt;
    if (n->callable->text.rfind("__torch__", 0) != 0) return std::nullopt;
    return class_of(n->callable->text, n->callable->name);
  };
  constexpr size_t kMaxEntries = 1'000'000;
  struct Item { const Node* m; std::string prefix; size_t depth; };
  std::vector<Item> stack{{root, "", 0}};
  size_t visits = 0;
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    if (++visits > kMaxEntries || out->entries.size() > kMaxEntries)
      throw FormatError("the TorchScript module's state dict has more than 1,000,000 entries");
    auto cls = declared(it.m);
    auto* attrs = cls ? pickle::entries_of(it.m->state) : nullptr;
    if (!attrs) continue;
    auto in = [](const std::vector<std::string>& v, const std::string& s) {
      for (const auto& x : v)
        if (x == s) return true;
      return false;
    };
    for (const auto* list : {&cls->parameters, &cls->buffers})
      for (auto& [k, v] : *attrs) {
        std::string name = pickle::key_text(k);
        if (v->kind != Kind::None && in(*list, name)) out->entries.emplace_back(g.str(it.prefix + name), v);
      }
    for (auto i = attrs->rbegin(); i != attrs->rend(); ++i) {
      const Node* child = i->second;
      if (!declared(child)) continue;
      if (it.depth + 1 > kMaxModuleDepth)
        throw FormatError("the TorchScript module nests submodules deeper than " + std::to_string(kMaxModuleDepth) +
                          " levels (or contains itself)");
      stack.push_back({child, it.prefix + pickle::key_text(i->first) + ".", it.depth + 1});
    }
  }
  return out;
}

}  // namespace ckpt::torch
