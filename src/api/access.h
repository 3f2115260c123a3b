// What a front end that rebuilds a checkpoint's objects itself reads (the
// Python package's ckpt.open and ckpt.load): the pickle graph numbered from
// its root, where a storage's bytes can be memory-mapped from the file (else
// read), and the allowlist `scan` checks globals against.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/checkpoint.h"
#include "api/shard.h"

namespace ckpt::api {

// An opened checkpoint of any path: a DCP folder is consolidated into a
// temporary file first (removed when this goes away; costs the model's size
// in temporary disk).
struct OpenedPath {
  std::unique_ptr<ReadableCheckpoint> readable;  // first: destroyed after opened
  Opened opened;
};
OpenedPath open_path(Env& env, const std::string& path);

// Every node reachable from the root along all edges, numbered in the order
// pickle::walk_graph visits them (the root is 0).
class NumberedGraph {
 public:
  explicit NumberedGraph(const pickle::Node* root);
  const std::vector<const pickle::Node*>& nodes() const { return nodes_; }
  int64_t of(const pickle::Node* n) const { return n ? index_.at(n) : -1; }  // -1: none

 private:
  std::vector<const pickle::Node*> nodes_;
  std::unordered_map<const pickle::Node*, int64_t> index_;
};

// Where a storage's bytes can be memory-mapped from the opened file: a
// stored (not deflated) zip record of exactly the storage's size, or a
// safetensors tensor's span. nullopt: read them (read_storage) instead.
std::optional<uint64_t> mappable_offset(const Opened& o, const torch::Storage& s);

// Bytes [offset, offset + n) of the storage `key`; UsageError past its end.
void read_storage(const Opened& o, const std::string& key, uint64_t offset, uint64_t n, char* out);

// Whether `scan` (and ckpt.load) allow module.name: torch's weights_only
// list plus what AudioCraft checkpoints need.
bool allowed_global(const std::string& module, const std::string& name);

}  // namespace ckpt::api
