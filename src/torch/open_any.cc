#include "torch/open_any.h"

#include "torch/safetensors.h"
#include "util/spool.h"

namespace ckpt::torch {

bool looks_like_safetensors(RandomAccessFile& file) {
  if (file.size() < 10) return false;
  std::string head = file.read_string(0, 9);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(head[i]);
  return n >= 2 && n <= kSafetensorsMaxHeader && n <= file.size() - 8 && head[8] == '{';
}

AnyCheckpoint open_any(Env& env, const std::string& path) {
  std::string readable = spool_if_stream(path);
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
