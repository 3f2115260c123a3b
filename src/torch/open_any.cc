#include "torch/open_any.h"

#include "torch/safetensors.h"
#include "torch/safetensors_shards.h"
#include "util/coding.h"
#include "util/spool.h"

namespace ckpt::torch {

bool looks_like_safetensors(RandomAccessFile& file) {
  if (file.size() < 10) return false;
  std::string head = file.read_string(0, 9);
  uint64_t n = decode_fixed64(head.data());
  return n >= 2 && n <= kSafetensorsMaxHeader && n <= file.size() - 8 && head[8] == '{';
}

std::string folder_checkpoint(Env& env, const std::string& path) {
  if (path == "-") return "";
  std::string index = safetensors_index_of(env, path);
  if (!index.empty()) return index;
  if (!env.is_directory(path)) return "";
  for (const char* name : {"model.safetensors", "pytorch_model.bin", "state_dict.bin"}) {
    std::string p = path + (path.back() == '/' ? "" : "/") + name;
    if (env.exists(p) && !env.is_directory(p)) return p;
  }
  return "";
}

AnyCheckpoint open_any(Env& env, const std::string& path) {
  std::string inner = folder_checkpoint(env, path);
  if (!inner.empty() && inner.size() > 5 && inner.compare(inner.size() - 5, 5, ".json") == 0) {
    AnyCheckpoint out;
    out.ck = checkpoint_from_safetensors_index(env, inner);
    out.safetensors = true;
    out.file_size = env.open_read(inner)->size();
    return out;
  }
  std::string readable = spool_if_stream(inner.empty() ? path : inner);
  AnyCheckpoint out;
  {
    auto probe = env.open_read(readable);
    out.safetensors = looks_like_safetensors(*probe);
    out.file_size = probe->size();
  }
  out.ck = out.safetensors ? checkpoint_from_safetensors(env, readable) : Checkpoint::open(env, readable);
  return out;
}

}  // namespace ckpt::torch
