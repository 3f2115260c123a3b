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
    default: return std::nullopt;
  }
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
