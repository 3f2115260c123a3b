#include "api/access.h"

#include "pickle/allowlist.h"
#include "torch/tensor_data.h"
#include "util/error.h"

namespace ckpt::api {

OpenedPath open_path(Env& env, const std::string& path) {
  OpenedPath o;
  o.readable = std::make_unique<ReadableCheckpoint>(env, path);
  o.opened = open_checkpoint(env, o.readable->path());
  return o;
}

NumberedGraph::NumberedGraph(const pickle::Node* root) {
  // pickle::walk_graph's order (depth first, children pushed in
  // for_each_child's order), with index_ as the set of nodes seen: one hash
  // table, not two (ckpt.load numbers every node of the graph).
  std::vector<const pickle::Node*> stack;
  if (root) stack.push_back(root);
  while (!stack.empty()) {
    const pickle::Node* n = stack.back();
    stack.pop_back();
    if (!index_.emplace(n, static_cast<int64_t>(nodes_.size())).second) continue;
    nodes_.push_back(n);
    pickle::for_each_child(n, pickle::kAllEdges, [&](const pickle::Node* c) { stack.push_back(c); });
  }
}

std::optional<uint64_t> mappable_offset(const Opened& o, const torch::Storage& s) {
  if (!s.present) return std::nullopt;
  // A safetensors file's storages are spans of that very file (an index's
  // live in its shards: read, not mapped at the index's path); otherwise
  // only zip records are mapped (a legacy file's bytes are read).
  bool in_opened_file = o.safetensors ? s.external_file && s.external_file->path() == o.ck->path()
                                      : !s.external_file && s.record;
  if (!in_opened_file) return std::nullopt;
  try {
    torch::StorageLocation loc = torch::locate_storage(*o.ck, s);
    if (loc.compressed()) return std::nullopt;
    return loc.offset;
  } catch (const Error&) {
    return std::nullopt;  // bytes missing or of the wrong size: reading them names the problem
  }
}

void read_storage(const Opened& o, const std::string& key, uint64_t offset, uint64_t n, char* out) {
  const torch::Storage* s = o.ck->storage(key);
  if (!s) throw UsageError(o.ck->path() + ": no storage '" + key + "'");
  if (offset > s->nbytes() || n > s->nbytes() - offset)
    throw UsageError(o.ck->path() + ": storage '" + key + "': bytes past its end requested");
  torch::StorageReader reader(*o.ck, *s);
  reader.read(offset, n, out);
}

bool allowed_global(const std::string& module, const std::string& name) {
  return pickle::audiocraft_allows(module, name);
}

}  // namespace ckpt::api
