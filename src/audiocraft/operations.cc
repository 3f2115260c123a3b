#include "audiocraft/operations.h"


#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "omegaconf/dictconfig.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "pickle/allowlist.h"
#include "util/error.h"
#include "util/glob.h"
#include "util/suggest.h"

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

CompiledRename compile_python_rename(const std::string& pat, const std::string& repl, const char* flag) {
  auto where = [&] { return std::string(flag) + " '" + pat + "=" + repl + "': "; };
  CompiledRename c;
  std::map<std::string, size_t> names;
  auto number_of = [&](const std::string& name) -> size_t {
    auto it = names.find(name);
    if (it == names.end()) throw UsageError(where() + "unknown group name '" + name + "'");
    return it->second;
  };
  // The pattern: Python's named groups become plain ones (std::regex has none).
  bool in_class = false;
  for (size_t i = 0; i < pat.size(); ++i) {
    char ch = pat[i];
    if (ch == '\\') {
      c.pattern += ch;
      if (i + 1 < pat.size()) c.pattern += pat[++i];
      continue;
    }
    if (in_class) {
      if (ch == ']') in_class = false;
      c.pattern += ch;
      continue;
    }
    if (ch == '[') {
      in_class = true;
      c.pattern += ch;
      if (i + 1 < pat.size() && pat[i + 1] == '^') c.pattern += pat[++i];
      if (i + 1 < pat.size() && pat[i + 1] == ']') c.pattern += "\\]", ++i;  // Python: a literal ']'
      continue;
    }
    if (ch == '(' && pat.compare(i, 4, "(?P<") == 0) {
      size_t end = pat.find('>', i + 4);
      if (end == std::string::npos) throw UsageError(where() + "unterminated group name");
      names[pat.substr(i + 4, end - i - 4)] = ++c.groups;
      c.pattern += '(';
      i = end;
      continue;
    }
    if (ch == '(' && pat.compare(i, 4, "(?P=") == 0) {
      size_t end = pat.find(')', i + 4);
      if (end == std::string::npos) throw UsageError(where() + "unterminated group name");
      c.pattern += "(?:\\" + std::to_string(number_of(pat.substr(i + 4, end - i - 4))) + ")";
      i = end;
      continue;
    }
    if (ch == '(' && (i + 1 == pat.size() || pat[i + 1] != '?')) ++c.groups;
    c.pattern += ch;
  }
  auto group_ref = [&](size_t n) {
    if (n > c.groups || n > 99)
      throw UsageError(where() + "invalid group reference " + std::to_string(n) + ": the regex has " +
                       std::to_string(c.groups) + " group(s)");
    c.replacement += '$';
    c.replacement += char('0' + n / 10);
    c.replacement += char('0' + n % 10);
  };
  const std::string hint = "the replacement is Python's re.sub syntax: \\1, \\g<1> or \\g<name> for a group";
  for (size_t i = 0; i < repl.size(); ++i) {
    char ch = repl[i];
    if (ch == '$') {
      char nx = i + 1 < repl.size() ? repl[i + 1] : '\0';
      if ((nx >= '0' && nx <= '9') || nx == '{' || nx == '&' || nx == '`' || nx == '\'')
        throw UsageError(where() + "'$" + std::string(1, nx) + "' is not a group reference: " + hint +
                         " (write \\1 for $1)");
      c.replacement += "$$";  // a literal '$', as in Python
      continue;
    }
    if (ch != '\\') {
      c.replacement += ch;
      continue;
    }
    if (i + 1 == repl.size()) throw UsageError(where() + "a trailing backslash (\\\\ is a literal one)");
    char nx = repl[++i];
    if (nx >= '1' && nx <= '9') {
      size_t n = size_t(nx - '0');
      if (i + 1 < repl.size() && repl[i + 1] >= '0' && repl[i + 1] <= '9') n = n * 10 + size_t(repl[++i] - '0');
      group_ref(n);
    } else if (nx == '0') {
      throw UsageError(where() + "\\0 is not a group (" + hint + ")");
    } else if (nx == 'g') {
      size_t end = repl.find('>', i + 1);
      if (i + 1 >= repl.size() || repl[i + 1] != '<' || end == std::string::npos)
        throw UsageError(where() + "\\g needs <number> or <name> (" + hint + ")");
      std::string name = repl.substr(i + 2, end - i - 2);
      i = end;
      if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
        if (name.size() > 2) throw UsageError(where() + "invalid group reference " + name);
        group_ref(std::stoul(name));
      } else {
        group_ref(number_of(name));
      }
    } else if (nx == '\\') {
      c.replacement += '\\';
    } else if (nx == 'n' || nx == 't' || nx == 'r' || nx == 'f' || nx == 'v' || nx == 'a') {
      static const std::map<char, char> kEscapes{{'n', '\n'}, {'t', '\t'}, {'r', '\r'},
                                                 {'f', '\f'}, {'v', '\v'}, {'a', '\a'}};
      c.replacement += kEscapes.at(nx);
    } else if ((nx >= 'a' && nx <= 'z') || (nx >= 'A' && nx <= 'Z')) {
      throw UsageError(where() + "bad escape \\" + std::string(1, nx) + " (" + hint + ")");
    } else {
      c.replacement += '\\';  // Python keeps an unknown non-letter escape as it is
      c.replacement += nx;
    }
  }
  return c;
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
    if (!s.strict || hits != 0) return;
    // A glob matches whole names: 'condition_provider' meant its subtree.
    std::string hint;
    if (std::string(flag) != "rename" && pattern.find_first_of("*?[") == std::string::npos) {
      std::vector<std::string> keys;
      bool prefix = false;
      for (const auto& kv : *entries) {
        if (kv.first->kind != Kind::Str) continue;
        keys.push_back(kv.first->text);
        if (kv.first->text.rfind(pattern + ".", 0) == 0) prefix = true;
      }
      hint = prefix ? "; did you mean '" + pattern + ".*'? (a glob matches whole key names)"
                    : did_you_mean(pattern, keys);
    } else if (std::string(flag) != "rename") {
      // A misspelt glob ('conditon_provider.*'): the closest spelling of its
      // literal start among the keys' starts with as many components.
      size_t wild = pattern.find_first_of("*?[");
      std::string literal = pattern.substr(0, wild);
      size_t dots = static_cast<size_t>(std::count(literal.begin(), literal.end(), '.'));
      std::vector<std::string> starts;
      for (const auto& kv : *entries) {
        if (kv.first->kind != Kind::Str) continue;
        const std::string& k = kv.first->text;
        size_t end = std::string::npos, from = 0;
        for (size_t d = 0; d < dots; ++d) {
          end = k.find('.', from);
          if (end == std::string::npos) break;
          from = end + 1;
        }
        if (dots > 0 && end == std::string::npos) continue;
        std::string start = dots == 0 ? k.substr(0, k.find('.')) : k.substr(0, end + 1);
        if (!literal.empty() && std::find(starts.begin(), starts.end(), start) == starts.end()) starts.push_back(start);
      }
      std::string m = literal.empty() ? "" : closest_match(literal, starts);
      if (!m.empty() && m != literal) hint = "; did you mean '" + m + pattern.substr(wild) + "'?";
    }
    throw UsageError(option_name(flag) + " '" + pattern + "' matches no key of " +
                     (where.empty() ? std::string("the top-level state dict") : "'" + where + "'") + hint + " (" +
                     option_set("allow_no_match") + " accepts that)");
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
    std::vector<std::string> formats;
    for (auto& [pattern, repl] : s.renames) {
      CompiledRename c = compile_python_rename(pattern, repl);
      formats.push_back(c.replacement);
      try {
        res.emplace_back(c.pattern, std::regex::ECMAScript);
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
        name = std::regex_replace(name, res[i], formats[i]);
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

namespace {

bool is_training_state_key(const std::string& k) {
  for (const char* t : kTrainingStateKeys)
    if (k == t) return true;
  return false;
}

}  // namespace

std::vector<std::string> training_state_present(const Node* root) {
  std::vector<std::string> out;
  auto* entries = pickle::entries_of(root);
  if (!entries) return out;
  for (const auto& [k, v] : *entries) {
    if (k->kind != Kind::Str || !is_training_state_key(k->text)) continue;
    if (v->kind == Kind::None) continue;  // e.g. lr_scheduler None: nothing to restore
    if (k->text == "history") {
      auto* items = v->kind == Kind::List ? &v->items : nullptr;
      if (!items || items->empty()) continue;  // an empty history starts at epoch 1
      out.push_back("history (" + std::to_string(items->size()) + (items->size() == 1 ? " epoch" : " epochs") + ")");
      continue;
    }
    out.push_back(k->text);
  }
  return out;
}

std::vector<std::string> strip_training_state(Node* root) {
  std::vector<std::string> removed;
  auto* entries = pickle::entries_of(root);
  if (!entries) throw UsageError(option_name("for_finetune") + " needs a training checkpoint (a dict at the top)");
  for (const auto& [k, v] : *entries)
    if (k->kind == Kind::Str && is_training_state_key(k->text)) removed.push_back(k->text);
  for (const auto& k : removed) pickle::erase_item(root, k);
  return removed;
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
