#include "audiocraft/layout.h"

#include "torch/module.h"
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
    case Layout::Lightning: return "lightning";
    case Layout::Module: return "torch-module";
    case Layout::TorchScript: return "torchscript";
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

namespace {

// Lightning's checkpoint (lightning/pytorch/trainer/connectors/
// checkpoint_connector.py dump_checkpoint): its version key, or a state_dict
// with the epoch and global step beside it.
bool is_lightning(const Node* root) {
  if (pickle::get_item(root, "pytorch-lightning_version")) return true;
  return pickle::is_mapping(pickle::get_item(root, "state_dict")) && pickle::get_item(root, "epoch") &&
         pickle::get_item(root, "global_step");
}

}  // namespace

Layout detect_layout(const Node* root, const TensorTest& tensors) {
  if (torch::is_module(root)) return Layout::Module;
  auto* entries = pickle::entries_of(root);
  if (!entries) return Layout::Other;
  if (is_lightning(root)) return Layout::Lightning;
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
    case Layout::Module:
    case Layout::TorchScript: return "";
    case Layout::Lightning:
      if (pickle::is_mapping(pickle::get_item(root, "state_dict"))) return "state_dict";
      return std::nullopt;
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

std::string int_text(const Node* n) {
  if (!n) return "?";
  if (n->kind == Kind::Int || n->kind == Kind::Bool || n->kind == Kind::Float || n->kind == Kind::Str)
    return pickle::key_text(n);
  return "?";
}

// A mapping's string keys, comma separated ("lr, hidden"); an
// AttributeDict (a dict subclass) is a mapping too.
std::string key_list(const Node* m) {
  std::string s;
  if (auto* e = pickle::entries_of(m))
    for (auto& [k, v] : *e) s += (s.empty() ? "" : ", ") + pickle::key_text(k);
  return s;
}

size_t count_of(const Node* n) {
  if (!n) return 0;
  if (auto* e = pickle::entries_of(n)) return e->size();
  return n->kind == Kind::List || n->kind == Kind::Tuple ? n->items.size() : 0;
}

std::string lightning_summary(const Node* root) {
  const Node* version = pickle::get_item(root, "pytorch-lightning_version");
  std::string s = "Lightning checkpoint";
  if (version && version->kind == Kind::Str) s += " (Lightning " + version->text + ")";
  s += ": epoch " + int_text(pickle::get_item(root, "epoch")) + ", global step " +
       int_text(pickle::get_item(root, "global_step"));
  const Node* hp = pickle::get_item(root, "hyper_parameters");
  if (hp) s += "; hyper-parameters (" + key_list(hp) + ")";
  const Node* cb = pickle::get_item(root, "callbacks");
  if (cb) s += "; callbacks (" + key_list(cb) + ")";
  s += "; " + std::to_string(count_of(pickle::get_item(root, "optimizer_states"))) + " optimizer state(s), " +
       std::to_string(count_of(pickle::get_item(root, "lr_schedulers"))) + " lr scheduler(s)";
  return s;
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
    case Layout::Lightning: add(lightning_summary(root)); break;
    case Layout::TorchScript:
      add("TorchScript archive (torch.jit.save) of " + pickle::class_name(root) +
          ": torch.load hands it to torch.jit.load, which compiles and runs its code/; "
          "its parameters and buffers are read from data.pkl without it");
      break;
    case Layout::Module: add("a pickled " + pickle::class_name(root) + " (nn.Module); its state dict as module.state_dict() names it"); break;
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

std::vector<std::pair<std::string, Node*>> path_children(const Node* n) {
  std::vector<std::pair<std::string, Node*>> out;
  if (!n) return out;
  if (n->kind == Kind::Object) {
    if (n->is_instance_of("omegaconf.dictconfig", "DictConfig") ||
        n->is_instance_of("omegaconf.listconfig", "ListConfig")) {
      const Node* content = n->state ? pickle::get_item(n->state, "_content") : nullptr;
      if (content) n = content;
    } else if (n->callable && n->callable->kind == Kind::Global && n->callable->text == "omegaconf.nodes") {
      return out;
    }
  }
  if (auto* e = pickle::entries_of(n)) {
    for (auto& [k, v] : *e) out.emplace_back(pickle::key_text(k), v);
  } else if (n->kind == Kind::List || n->kind == Kind::Tuple || n->kind == Kind::Set || n->kind == Kind::FrozenSet) {
    for (size_t i = 0; i < n->items.size(); ++i) out.emplace_back(std::to_string(i), n->items[i]);
  } else if (n->kind == Kind::Object) {
    if (auto* se = pickle::entries_of(n->state))
      for (auto& [k, v] : *se) out.emplace_back(pickle::key_text(k), v);
    for (size_t i = 0; i < n->items.size(); ++i) out.emplace_back(std::to_string(i), n->items[i]);
  }
  return out;
}

Node* resolve_path(Node* root, std::string_view path) {
  Node* cur = root;
  for (const std::string& part : split_path(path)) {
    if (!cur) return nullptr;
    Node* found = nullptr;
    for (auto& [name, child] : path_children(cur))
      if (name == part) {
        found = child;
        break;
      }
    cur = found;
  }
  return cur;
}

}  // namespace ckpt::audiocraft
