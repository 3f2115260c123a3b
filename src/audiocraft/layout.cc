#include "audiocraft/layout.h"

#include "util/error.h"

namespace ckpt::audiocraft {

using pickle::Kind;
using pickle::Node;

const char* to_string(Layout l) {
  switch (l) {
    case Layout::Training: return "audiocraft-training";
    case Layout::Exported: return "audiocraft-exported";
    case Layout::ExportedPointer: return "audiocraft-exported-pointer";
    case Layout::StateDict: return "state-dict";
    case Layout::FsdpShard: return "audiocraft-fsdp-shard";
    case Layout::MultiBandDiffusion: return "audiocraft-multibanddiffusion";
    case Layout::AudioSeal: return "audioseal";
    case Layout::Other: break;
  }
  return "other";
}

namespace {

bool nonempty_mapping(const Node* n) {
  auto* e = pickle::entries_of(n);
  return e && !e->empty();
}

}  // namespace

Layout detect_layout(const Node* root, const TensorTest& tensors) {
  auto* entries = pickle::entries_of(root);
  if (!entries) return Layout::Other;
  const Node* exported = pickle::get_item(root, "exported");
  const Node* best = pickle::get_item(root, "best_state");
  if (exported && exported->kind == Kind::Bool && exported->boolean) {
    if (pickle::get_item(root, "pretrained")) return Layout::ExportedPointer;
    if (pickle::is_mapping(best)) return Layout::Exported;
  }
  const Node* fsdp = pickle::get_item(root, "fsdp_best_state");
  if ((pickle::is_mapping(best) && pickle::get_item(best, "model")) ||
      (nonempty_mapping(fsdp) && pickle::get_item(fsdp, "model")))
    return Layout::Training;
  // MultiBandDiffusion: bands under int keys 0..n-1, each with its cfg.
  {
    size_t bands = 0;
    bool other_keys_ok = true;
    for (auto& [k, v] : *entries) {
      if (k->kind == Kind::Int) {
        if (pickle::is_mapping(v) && pickle::get_item(v, "cfg") && pickle::get_item(v, "model_state")) ++bands;
        else other_keys_ok = false;
      }
    }
    if (bands > 0 && other_keys_ok) return Layout::MultiBandDiffusion;
  }
  // AudioSeal: {'model': state dict} and nothing else.
  if (entries->size() == 1 && entries->front().first->is_str("model")) {
    const Node* m = entries->front().second;
    auto* me = pickle::entries_of(m);
    bool sd = me && !me->empty();
    if (me)
      for (auto& [k, v] : *me)
        if (k->kind != Kind::Str || !tensors.is_tensor(v)) sd = false;
    if (sd) return Layout::AudioSeal;
  }
  if (!entries->empty()) {
    bool all_tensors = true;
    for (auto& [k, v] : *entries)
      if (k->kind != Kind::Str || !tensors.is_tensor(v)) {
        all_tensors = false;
        break;
      }
    if (all_tensors) return Layout::StateDict;
  }
  return Layout::Other;
}

std::optional<std::string> best_state_path(const Node* root, Layout layout) {
  switch (layout) {
    case Layout::Training: {
      const Node* fsdp = pickle::get_item(root, "fsdp_best_state");
      if (nonempty_mapping(fsdp) && pickle::is_mapping(pickle::get_item(fsdp, "model")))
        return "fsdp_best_state/model";
      return "best_state/model";
    }
    case Layout::Exported: return "best_state";
    case Layout::StateDict: return "";
    case Layout::AudioSeal: return "model";
    default: return std::nullopt;
  }
}

std::optional<int> fsdp_rank_of(std::string_view file_name) {
  size_t slash = file_name.rfind('/');
  std::string_view base = slash == std::string_view::npos ? file_name : file_name.substr(slash + 1);
  size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot + 1 >= base.size()) return std::nullopt;
  std::string_view digits = base.substr(dot + 1);
  if (digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  std::string_view stem = base.substr(0, dot);
  if (stem.size() < 4 || stem.substr(stem.size() - 3) != ".th") return std::nullopt;
  return std::stoi(std::string(digits));
}

std::string fsdp_rank0_file(std::string_view file_name) {
  return std::string(file_name.substr(0, file_name.rfind('.')));
}

namespace {

std::string config_solver(const Node* root) {
  const Node* cfg = pickle::get_item(root, "xp.cfg");
  if (!cfg) return "";
  // The solver name is a top-level scalar: read it without building the tree.
  if (cfg->kind == Kind::Str) {
    std::string_view t = cfg->text;
    size_t pos = t.compare(0, 8, "solver: ") == 0 ? 0 : t.find("\nsolver: ");
    if (pos == std::string_view::npos) return "";
    if (pos != 0) ++pos;
    size_t end = t.find('\n', pos);
    return std::string(t.substr(pos + 8, end == std::string_view::npos ? std::string_view::npos : end - pos - 8));
  }
  const Node* content = cfg->kind == Kind::Object && cfg->state ? pickle::get_item(cfg->state, "_content") : nullptr;
  const Node* node = content ? pickle::get_item(content, "solver") : nullptr;
  const Node* val = node && node->kind == Kind::Object && node->state ? pickle::get_item(node->state, "_val") : nullptr;
  return val && val->kind == Kind::Str ? val->text : "";
}

}  // namespace

std::string describe_kind(const Node* root, Layout layout, std::string_view file_name) {
  std::string solver = config_solver(root);
  std::string s = solver.empty() ? "" : "solver " + solver;
  auto add = [&](const std::string& more) { s += (s.empty() ? "" : "; ") + more; };
  switch (layout) {
    case Layout::FsdpShard: {
      int rank = fsdp_rank_of(file_name).value_or(0);
      add("rank " + std::to_string(rank) + "'s shard of an FSDP checkpoint; the full state is fsdp_best_state in rank 0's " +
          fsdp_rank0_file(file_name));
      break;
    }
    case Layout::MultiBandDiffusion: {
      size_t bands = 0;
      for (auto& [k, v] : *pickle::entries_of(root))
        if (k->kind == Kind::Int) ++bands;
      add(std::to_string(bands) + " band(s): configs at N/cfg (ckpt cfg --path N/cfg), weights at N/model_state");
      break;
    }
    case Layout::AudioSeal: add("AudioSeal weights; its config is a separate YAML file"); break;
    case Layout::ExportedPointer: {
      const Node* name = pickle::get_item(root, "pretrained");
      if (name && name->kind == Kind::Str) add("a pointer to the pretrained model '" + name->text + "'");
      break;
    }
    case Layout::Training:
      if (pickle::get_item(root, "adv_losses")) add("compression solver (adversarial losses in adv_losses)");
      break;
    default: break;
  }
  return s;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) parts.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

Node* resolve_path(Node* root, std::string_view path) {
  Node* cur = root;
  for (const std::string& part : split_path(path)) {
    if (!cur) return nullptr;
    if (auto* e = pickle::entries_of(cur)) {
      Node* found = nullptr;
      for (auto& [k, v] : *e) {
        if ((k->kind == Kind::Str && k->text == part) ||
            (k->kind == Kind::Int && !k->is_big_int() && std::to_string(k->integer) == part)) {
          found = v;
          break;
        }
      }
      cur = found;
    } else if (cur->kind == Kind::List || cur->kind == Kind::Tuple) {
      size_t idx = 0;
      if (part.empty() || part.size() > 18 || part.find_first_not_of("0123456789") != std::string::npos)
        return nullptr;
      idx = std::stoull(part);
      cur = idx < cur->items.size() ? cur->items[idx] : nullptr;
    } else {
      return nullptr;
    }
  }
  return cur;
}

}  // namespace ckpt::audiocraft
