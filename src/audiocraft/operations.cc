#include "audiocraft/operations.h"


#include <map>
#include <regex>
#include <set>

#include "omegaconf/dictconfig.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "pickle/allowlist.h"
#include "util/error.h"
#include "util/glob.h"

namespace ckpt::audiocraft {

using pickle::Kind;
using pickle::Node;

namespace {

constexpr const char* kConfigKey = "xp.cfg";

Node* config_node(const Node* root) {
  Node* cfg = pickle::get_item(root, kConfigKey);
  if (!cfg) throw UsageError("the checkpoint has no 'xp.cfg'");
  return cfg;
}

}  // namespace

omegaconf::Value config_tree(const Node* root) {
  const Node* cfg = config_node(root);
  if (cfg->kind == Kind::Str) return omegaconf::parse_yaml(cfg->text);
  if (omegaconf::is_config_node(cfg)) return omegaconf::to_value(cfg);
  throw UsageError("'xp.cfg' is neither a DictConfig nor a YAML string");
}

omegaconf::Value config_tree_at(Node* root, const std::string& path) {
  if (path.empty()) return config_tree(root);
  const Node* cfg = resolve_path(root, path);
  if (!cfg) throw UsageError("no object at '" + path + "'");
  if (cfg->kind == Kind::Str) return omegaconf::parse_yaml(cfg->text);
  if (omegaconf::is_config_node(cfg)) return omegaconf::to_value(cfg);
  throw UsageError("'" + path + "' is neither a DictConfig nor a YAML string");
}

CompressionSource compression_from_config(const Node* root) {
  constexpr const char* kKey = "compression_model_checkpoint";
  std::optional<omegaconf::Value> v = omegaconf::select_resolved(config_tree(root), kKey);
  if (!v || v->type != omegaconf::Value::Type::Str || v->str.empty())
    throw UsageError(std::string("xp.cfg has no ") + kKey + " naming the compression model; give " + option_set("compression", "CKPT_OR_NAME"));
  CompressionSource src;
  src.configured = v->str;
  const std::string pretrained = "//pretrained/";
  if (v->str.rfind(pretrained, 0) == 0) {
    src.pretrained = true;
    src.name_or_path = v->str.substr(pretrained.size());
  } else if (v->str.rfind("//", 0) == 0) {
    // //sig/SIG (a dora experiment) and //reference/... resolve through
    // AudioCraft's environment, which ckpt does not have.
    throw UsageError(std::string("xp.cfg's ") + kKey + " is '" + v->str +
                     "', resolved by AudioCraft's environment (dora experiment or reference folder); "
                     "give that checkpoint with " + option_set("compression", "FILE"));
  } else {
    src.name_or_path = v->str;
  }
  return src;
}

std::string config_yaml(const Node* root) { return omegaconf::to_yaml(config_tree(root)); }

void apply_overrides(pickle::Graph& g, Node* root, const std::vector<omegaconf::Override>& overrides) {
  if (overrides.empty()) return;
  Node* cfg = config_node(root);
  if (cfg->kind == Kind::Str) {
    omegaconf::Value tree = omegaconf::parse_yaml(cfg->text);
    for (const auto& o : overrides) omegaconf::apply_override(tree, o);
    pickle::set_item(g, root, kConfigKey, g.str(omegaconf::to_yaml(tree)));
    return;
  }
  if (!omegaconf::is_config_node(cfg)) throw UsageError("'xp.cfg' is neither a DictConfig nor a YAML string");
  for (const auto& o : overrides) omegaconf::apply_override(g, cfg, o);
}

SurgeryReport apply_surgery(pickle::Graph& g, Node* sd, const KeySurgery& s, const std::string& where) {
  auto* entries = pickle::entries_of(sd);
  if (!entries) throw UsageError("'" + where + "' is not a state dict");
  SurgeryReport report;
  report.before = entries->size();
  auto key_of = [&](const Node* k) -> std::string {
    if (k->kind != Kind::Str) throw UsageError("state dict '" + where + "' has a key that is not a string");
    return k->text;
  };
  auto check_used = [&](const char* flag, const std::string& pattern, size_t hits) {
    if (s.strict && hits == 0)
      throw UsageError(option_name(flag) + " '" + pattern + "' matches no key of '" + where + "' (" + option_set("allow_no_match") + " accepts that)");
  };

  // --keep keeps the keys that match a pattern, --drop drops them.
  auto filter = [&](const std::vector<std::pair<Node*, Node*>>& in, const std::vector<std::string>& patterns,
                    bool keep_matches, const char* flag) {
    std::vector<size_t> hits(patterns.size());
    std::vector<std::pair<Node*, Node*>> out;
    for (const auto& kv : in) {
      bool matched = false;
      for (size_t i = 0; i < patterns.size(); ++i)
        if (glob_match(patterns[i], key_of(kv.first))) {
          matched = true;
          ++hits[i];
        }
      if (matched == keep_matches)
        out.push_back(kv);
      else
        report.dropped_keys.push_back(key_of(kv.first));
    }
    for (size_t i = 0; i < patterns.size(); ++i) check_used(flag, patterns[i], hits[i]);
    return out;
  };
  std::vector<std::pair<Node*, Node*>> kept = s.keep.empty() ? *entries : filter(*entries, s.keep, true, "keep");
  if (!s.drop.empty()) kept = filter(kept, s.drop, false, "drop");
  report.dropped = report.before - kept.size();
  if (!s.renames.empty()) {
    std::vector<std::regex> res;
    for (auto& [pattern, repl] : s.renames) {
      try {
        res.emplace_back(pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        throw UsageError(option_name("rename") + " '" + pattern + "=" + repl + "': invalid regular expression: " + e.what());
      }
    }
    std::vector<size_t> hits(res.size());
    std::map<std::string, std::string> origin;  // new key -> old key
    for (auto& kv : kept) {
      std::string old = key_of(kv.first), name = old;
      for (size_t i = 0; i < res.size(); ++i) {
        if (!std::regex_search(name, res[i])) continue;
        ++hits[i];
        name = std::regex_replace(name, res[i], s.renames[i].second);
      }
      auto [it, fresh] = origin.emplace(name, old);
      if (!fresh)
        throw UsageError(option_name("rename") + " makes '" + it->second + "' and '" + old + "' both '" + name + "' in '" + where + "'");
      if (name != old) {
        kv.first = g.str(name);  // a new string: the old one may be shared elsewhere
        ++report.renamed;
        report.renamed_keys.emplace_back(old, name);
      }
    }
    for (size_t i = 0; i < res.size(); ++i) check_used("rename", s.renames[i].first, hits[i]);
  }
  *entries = std::move(kept);
  return report;
}

std::optional<std::string> version_of(const Node* root) {
  const Node* v = pickle::get_item(root, "version");
  if (v && v->kind == Kind::Str) return v->text;
  return std::nullopt;
}

pickle::Node* make_export(pickle::Graph& g, Node* root, Layout layout, const std::optional<std::string>& version) {
  if (layout == Layout::Exported || layout == Layout::ExportedPointer)
    throw UsageError("the checkpoint is already exported");
  if (layout == Layout::FsdpShard)
    throw UsageError("this file is one rank's shard of an FSDP checkpoint (AudioCraft writes rank N's as "
                     "checkpoint.th.N); the full state is fsdp_best_state in rank 0's checkpoint.th in the same "
                     "folder: export that file");
  if (layout != Layout::Training)
    throw UsageError(std::string("export needs an AudioCraft training checkpoint, not '") + to_string(layout) + "'");
  auto path = best_state_path(root, layout);
  Node* best = resolve_path(root, *path);
  if (!best || !pickle::is_mapping(best)) throw UsageError("no best state at '" + *path + "'");
  std::string yaml = config_yaml(root);
  Node* out = g.dict();
  pickle::set_item(g, out, "best_state", best);
  pickle::set_item(g, out, kConfigKey, g.str(yaml));
  pickle::set_item(g, out, "version", g.str(version.value_or(version_of(root).value_or(kDefaultVersion))));
  pickle::set_item(g, out, "exported", g.boolean(true));
  return out;
}

pickle::Node* make_wrap(pickle::Graph& g, Node* root, Layout layout) {
  if (layout != Layout::Exported)
    throw UsageError(std::string("wrap needs an exported checkpoint, not '") + to_string(layout) + "'");
  Node* best = pickle::get_item(root, "best_state");
  omegaconf::Value tree = config_tree(root);
  if (tree.type != omegaconf::Value::Type::Map) throw UsageError("'xp.cfg' is not a mapping");
  Node* out = g.dict();
  Node* best_state = g.dict();
  pickle::set_item(g, best_state, "model", best);
  pickle::set_item(g, out, "best_state", best_state);
  pickle::set_item(g, out, "fsdp_best_state", g.dict());
  pickle::set_item(g, out, kConfigKey, omegaconf::build_dictconfig(g, tree));
  return out;
}

pickle::Node* make_pointer(pickle::Graph& g, const std::string& name, const std::string& version) {
  Node* out = g.dict();
  pickle::set_item(g, out, "pretrained", g.str(name));
  pickle::set_item(g, out, "exported", g.boolean(true));
  pickle::set_item(g, out, "version", g.str(version));
  return out;
}

Sanitized make_sanitized(pickle::Graph& g, Node* root) {
  Sanitized result;
  result.root = root;
  if (Node* cfg = pickle::get_item(root, kConfigKey); cfg && omegaconf::is_config_node(cfg))
    pickle::set_item(g, root, kConfigKey, g.str(config_yaml(root)));
  // Walk what is reachable now; the old DictConfig is not. Paths are kept as
  // links to the parent's step, not strings: copying the parent's path into
  // every child is quadratic in the depth (a 400,000-deep tuple took 20 s).
  struct Step { size_t parent; std::string key; };
  constexpr size_t kRoot = static_cast<size_t>(-1);
  std::vector<Step> steps;
  auto path_of = [&](size_t s) {
    std::vector<const std::string*> keys;
    for (; s != kRoot && keys.size() < 32; s = steps[s].parent) keys.push_back(&steps[s].key);
    std::string path = s != kRoot ? ".../" : "";
    for (size_t i = keys.size(); i-- > 0;) path += *keys[i] + (i ? "/" : "");
    return path;
  };
  struct Item { Node* n; size_t step; };
  std::vector<Item> stack{{root, kRoot}};
  std::set<const Node*> seen;
  std::set<std::string> reported;
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    Node* n = it.n;
    if (!n || !seen.insert(n).second) continue;
    if (n->is_instance_of("collections", "defaultdict")) {
      // defaultdict(factory, {...}) -> a dict with the same items.
      n->kind = Kind::Dict;
      n->callable = n->args = n->kwargs = n->state = nullptr;
    }
    if (n->kind == Kind::Global && !pickle::torch_weights_only_allows(n->text, n->name)) {
      std::string what = n->text + "." + n->name;
      if (reported.insert(what).second)
        result.refused.push_back(what + " (at /" + path_of(it.step) + ")");
    }
    auto child = [&](Node* c, std::string key) {
      if (!c || seen.count(c)) return;
      steps.push_back({it.step, std::move(key)});
      stack.push_back({c, steps.size() - 1});
    };
    // Items and entries add a step to the path; the other edges do not.
    pickle::for_each_child(n, pickle::kCallEdges | pickle::kStateEdge | pickle::kPidEdge,
                           [&](Node* c) { stack.push_back({c, it.step}); });
    for (size_t i = 0; i < n->items.size(); ++i) child(n->items[i], std::to_string(i));
    for (auto& [k, v] : n->entries) {
      child(k, "");
      child(v, k->kind == Kind::Str ? k->text : (k->kind == Kind::Int ? std::to_string(k->integer) : "?"));
    }
  }
  return result;
}

}  // namespace ckpt::audiocraft
