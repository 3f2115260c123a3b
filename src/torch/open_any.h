// Opening whatever a read command is handed: a torch zip or legacy
// checkpoint, or a .safetensors file (told apart by content, not by name),
// from a path, standard input ("-") or a pipe (util/spool.h).
#pragma once
#include <memory>
#include <string>

#include "torch/checkpoint.h"
#include "util/env.h"

namespace ckpt::torch {

// Whether the file starts as a safetensors file does: a little-endian u64
// header length within bounds and the file, then '{'.
bool looks_like_safetensors(RandomAccessFile& file);

struct AnyCheckpoint {
  std::unique_ptr<Checkpoint> ck;
  bool safetensors = false;  // ck is the file's tensors as a plain state dict
  uint64_t file_size = 0;
};

// A folder (or a Hugging Face index) read as the one checkpoint it holds:
// the index path (`model.safetensors.index.json` in the folder, or the .json
// path itself), else the folder's `model.safetensors`, `pytorch_model.bin`,
// or `state_dict.bin` (ckpt bundle's, MusicGen.get_pretrained's folder), in
// that order; "" when the path is neither (a file, or another folder).
std::string folder_checkpoint(Env& env, const std::string& path);

// Opens a checkpoint file, or a folder / index as folder_checkpoint says.
AnyCheckpoint open_any(Env& env, const std::string& path);

}  // namespace ckpt::torch
