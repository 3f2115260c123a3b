#include "api/checkpoint.h"

#include "api/format.h"
#include "torch/open_any.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::api {

bool CheckpointTensorTest::is_tensor(const pickle::Node* n) const {
  try {
    return ck_.tensor(n).has_value();
  } catch (const Error&) {
    return false;
  }
}

Opened open_checkpoint(Env& env, const std::string& path) {
  Opened o;
  auto any = torch::open_any(env, path);
  o.ck = std::move(any.ck);
  o.safetensors = any.safetensors;
  o.file_size = any.file_size;
  o.layout = audiocraft::detect_layout(o.ck->root(), CheckpointTensorTest(*o.ck));
  if (o.layout == audiocraft::Layout::Training && audiocraft::fsdp_rank_of(path))
    o.layout = audiocraft::Layout::FsdpShard;
  o.best_state = audiocraft::best_state_path(o.ck->root(), o.layout);
  return o;
}

std::string path_hint(pickle::Node* root, const std::string& path) {
  std::string reached;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    std::string next = reached.empty() ? part : reached + "/" + part;
    if (!audiocraft::resolve_path(root, next)) {
      pickle::Node* parent = audiocraft::resolve_path(root, reached);
      auto* entries = parent ? pickle::entries_of(parent) : nullptr;
      if (!entries) return "";
      std::vector<std::string> keys;
      for (auto& [k, v] : *entries) keys.push_back(key_text(k));
      std::string m = closest_match(part, keys);
      if (m.empty()) return "";
      return "; did you mean '" + (reached.empty() ? m : reached + "/" + m) + "'?";
    }
    reached = next;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return "";
}

std::string Opened::default_state_path() const {
  if (!best_state)
    throw UsageError(ck->path() + ": no best state in a checkpoint of layout '" +
                     audiocraft::to_string(layout) + "': name one with " + option_set("state", "PATH"));
  return *best_state;
}

std::string Opened::state_path_or_best(const std::optional<std::string>& path) const {
  if (!path) return default_state_path();
  return *path == "/" ? std::string() : *path;
}

pickle::Node* Opened::state_dict(const std::string& given) const {
  const std::string path = given == "/" ? std::string() : given;
  pickle::Node* n = audiocraft::resolve_path(ck->root(), path);
  if (!n) throw UsageError(ck->path() + ": no object at '" + path + "'" + path_hint(ck->root(), path));
  if (!pickle::is_mapping(n))
    throw UsageError(ck->path() + ": '" + path + "' is not a state dict (" + describe(n, *ck) + ")");
  return n;
}

std::vector<TensorRow> Opened::tensors_of(const pickle::Node* mapping) const {
  std::vector<TensorRow> rows;
  for (auto& [k, v] : *pickle::entries_of(mapping)) {
    std::optional<torch::TensorInfo> t;
    try {
      t = ck->tensor(v);
    } catch (const FormatError& e) {
      throw FormatError(ck->path() + ": tensor '" + key_text(k) + "': " + e.what());
    }
    if (!t) continue;
    rows.push_back({key_text(k), v, std::move(*t)});
  }
  return rows;
}

std::function<void(uint64_t, uint64_t)> progress_for(const ProgressFn& progress, const std::string& output) {
  if (!progress) return {};
  return [progress, output](uint64_t done, uint64_t total) { progress(output, done, total); };
}

bool matches_any(const std::vector<std::string>& globs, const std::string& name) {
  if (globs.empty()) return true;
  for (const auto& g : globs)
    if (glob_match(g, name)) return true;
  return false;
}

}  // namespace ckpt::api
