// AudioCraft MusicGen <-> Hugging Face transformers (docs/TRANSFORMERS.md):
// to_transformers writes the folder MusicgenForConditionalGeneration (or
// MusicgenMelodyForConditionalGeneration, or without the encoders
// MusicgenForCausalLM) .from_pretrained loads; from_transformers the folder
// MusicGen.get_pretrained loads. Tensor bytes are streamed range by range
// (the q/k/v split and its concatenation back are row ranges); nothing holds
// the model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "util/env.h"

namespace ckpt::api {

struct ToTransformersOptions {
  std::string out;             // the folder to write (replaced as a whole with force)
  std::string state;           // the state dict; default: the best state
  std::string text_encoder;    // a local Hugging Face T5 folder (config.json + safetensors)
  std::string audio_encoder;   // a transformers EncodecModel folder
  std::string dtype;           // "", "float32", "float16", "bfloat16": floating tensors converted
  std::string max_shard_size;  // "5GB", ...; "": one model.safetensors
  bool force = false;
  ProgressFn progress;
};
struct ToTransformersResult {
  std::string architecture;  // "MusicgenForConditionalGeneration", "MusicgenForCausalLM", ...
  bool melody = false;
  bool decoder_only = false;
  size_t tensors = 0;  // written to the model's safetensors
  uint64_t bytes = 0;
  size_t files = 0;    // model safetensors files (shards)
  std::vector<std::string> written;  // files in the output folder
  std::vector<std::string> notes;    // what is left out, and why
};
// FILE: an AudioCraft MusicGen LM (training checkpoint, exported
// state_dict.bin, or a bundle folder holding one). Throws UsageError naming
// the config key, tensor or shape that transformers' MusicGen cannot take;
// nothing is written then.
ToTransformersResult to_transformers(Env& env, const std::string& file, const ToTransformersOptions& options);

struct FromTransformersOptions {
  std::string out;          // the bundle folder (state_dict.bin, compression_state_dict.bin)
  std::string compression;  // a compression checkpoint or pretrained name; default: the stock pointer when it fits
  bool force = false;
  ProgressFn progress;
};
struct FromTransformersResult {
  bool melody = false;
  size_t tensors = 0;  // in state_dict.bin's best_state
  std::string compression;  // what compression_state_dict.bin is: "pointer facebook/encodec_32khz", a file
  std::vector<std::string> written;
  std::vector<std::string> notes;
};
// DIR: a folder to_transformers or transformers' save_pretrained wrote
// (Musicgen / MusicgenMelody, composite or decoder-only).
FromTransformersResult from_transformers(Env& env, const std::string& dir, const FromTransformersOptions& options);

}  // namespace ckpt::api
