// AudioCraft MusicGen <-> Hugging Face transformers (docs/TRANSFORMERS.md):
// to_transformers writes the folder MusicgenForConditionalGeneration (or
// MusicgenMelodyForConditionalGeneration, or without the encoders
// MusicgenForCausalLM) .from_pretrained loads; from_transformers the folder
// MusicGen.get_pretrained loads. An AudioCraft EnCodec compression model
// (xp.cfg's compression_model) and a transformers EncodecModel folder
// (model_type encodec) go the same two ways, told apart by content
// (audiocraft/encodec_map.h). Tensor bytes are streamed range by range
// (the q/k/v split and its concatenation back are row ranges); nothing holds
// the model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/schema.h"
#include "util/env.h"

namespace ckpt::api {

struct ToTransformersOptions {
  static constexpr const char* kName = "ToTransformersOptions";
  static constexpr const char* kDoc = "where to_transformers writes, and what it takes besides the LM";
  std::string out;             // the folder to write (replaced as a whole with force)
  std::optional<std::string> state;  // the state dict; default: the best state; "/": the root
  std::string text_encoder;    // a local Hugging Face T5 folder (config.json + safetensors)
  std::string audio_encoder;   // a transformers EncodecModel folder or an AudioCraft compression checkpoint
  std::string dtype;           // "", "float32", "float16", "bfloat16": floating tensors converted
  std::string max_shard_size;  // "5GB", ...; "": one model.safetensors
  bool force = false;
  bool ignore_crc = false;     // write from zips whose records fail their CRC-32, as read
  ProgressFn progress;
  template <class V>
  static void describe(V& v) {
    using T = ToTransformersOptions;
    v.field("out", &T::out, "the folder to write (replaced as a whole with force)");
    v.field("state", &T::state, "the state dict's '/'-separated path (default: the best state; '/': the root)");
    v.field("text_encoder", &T::text_encoder, "a local Hugging Face T5 folder (the T5 xp.cfg names)");
    v.field("audio_encoder", &T::audio_encoder,
            "a transformers EncodecModel folder, or an AudioCraft compression checkpoint (converted)");
    v.field("dtype", &T::dtype, "float32, float16 or bfloat16: floating tensors converted as torch's .to()");
    v.field("max_shard_size", &T::max_shard_size,
            "shards of at most this size (5GB, 500MB, bytes) + model.safetensors.index.json");
    v.field("force", &T::force, "replace an existing output folder");
    v.field("ignore_crc", &T::ignore_crc,
            "write from a checkpoint whose records fail their CRC-32, as read (refused otherwise)");
  }
};
struct ToTransformersResult {
  static constexpr const char* kName = "ToTransformersResult";
  static constexpr const char* kDoc = "the transformers folder to_transformers wrote";
  std::string out;
  std::string architecture;  // "MusicgenForConditionalGeneration", "MusicgenForCausalLM", ...
  bool melody = false;
  bool decoder_only = false;
  uint64_t tensors = 0;  // written to the model's safetensors
  uint64_t bytes = 0;
  uint64_t files = 0;    // model safetensors files (shards)
  std::vector<std::string> written;  // files in the output folder
  std::vector<std::string> notes;    // what is left out, and why
  template <class V>
  static void describe(V& v) {
    using T = ToTransformersResult;
    v.field("out", &T::out, "the folder written");
    v.field("architecture", &T::architecture,
            "MusicgenForConditionalGeneration, MusicgenForCausalLM, ..., EncodecModel");
    v.field("melody", &T::melody, "a MusicGen Melody model");
    v.field("decoder_only", &T::decoder_only, "the decoder alone (no text or audio encoder given)");
    v.field("tensors", &T::tensors, "tensors written to the model's safetensors");
    v.field("bytes", &T::bytes, "their bytes");
    v.field("shards", &T::files, "model safetensors files (shards)");
    v.field("files", &T::written, "the files in the output folder");
    v.field("notes", &T::notes, "what is left out, and why");
  }
};
// FILE: an AudioCraft MusicGen LM (training checkpoint, exported
// state_dict.bin, or a bundle folder holding one), or an AudioCraft EnCodec
// compression model (CompressionSolver checkpoint, compression_state_dict.bin
// or a folder holding it): then an EncodecModel folder (config.json,
// model.safetensors). Throws UsageError naming the config key, tensor or
// shape that transformers' MusicGen / EncodecModel cannot take; nothing is
// written then.
ToTransformersResult to_transformers(Env& env, const std::string& file, const ToTransformersOptions& options);

struct FromTransformersOptions {
  static constexpr const char* kName = "FromTransformersOptions";
  static constexpr const char* kDoc = "where from_transformers writes, and the compression model";
  std::string out;          // the bundle folder (state_dict.bin, compression_state_dict.bin)
  std::string compression;  // a compression checkpoint or pretrained name; default: the stock pointer when it fits, else the folder's EnCodec converted
  bool force = false;
  bool ignore_crc = false;  // write from zips (pytorch_model.bin, compression) whose records fail their CRC-32, as read
  ProgressFn progress;
  template <class V>
  static void describe(V& v) {
    using T = FromTransformersOptions;
    v.field("out", &T::out, "the folder to write (state_dict.bin, compression_state_dict.bin)");
    v.field("compression", &T::compression,
            "compression model: an AudioCraft checkpoint or a pretrained name (default: the stock "
            "facebook/encodec_32khz pointer when the audio encoder is that model, else its weights converted)");
    v.field("force", &T::force, "replace an existing output folder");
    v.field("ignore_crc", &T::ignore_crc,
            "write from a pytorch_model.bin or compression checkpoint whose records fail their CRC-32, as read "
            "(refused otherwise)");
  }
};
struct FromTransformersResult {
  static constexpr const char* kName = "FromTransformersResult";
  static constexpr const char* kDoc =
      "the folder MusicGen (or CompressionModel).get_pretrained loads, as from_transformers wrote it";
  std::string out;
  bool melody = false;
  uint64_t tensors = 0;  // in state_dict.bin's best_state (an EncodecModel folder: compression_state_dict.bin's)
  std::string compression;  // what compression_state_dict.bin is: "pointer facebook/encodec_32khz", a file
  std::vector<std::string> written;
  std::vector<std::string> notes;
  template <class V>
  static void describe(V& v) {
    using T = FromTransformersResult;
    v.field("out", &T::out, "the folder written");
    v.field("melody", &T::melody, "a MusicGen Melody model");
    v.field("tensors", &T::tensors,
            "tensors in state_dict.bin's best_state (from an EncodecModel folder: compression_state_dict.bin's)");
    v.field("compression", &T::compression,
            "what compression_state_dict.bin is: 'pointer facebook/encodec_32khz', the file it came from, or the "
            "EnCodec converted");
    v.field("files", &T::written, "the files written");
    v.field("notes", &T::notes, "what is left out, and why");
  }
};
// DIR: a folder to_transformers or transformers' save_pretrained wrote
// (Musicgen / MusicgenMelody, composite or decoder-only; or EncodecModel:
// then OUT holds compression_state_dict.bin alone, as export_encodec writes it).
FromTransformersResult from_transformers(Env& env, const std::string& dir, const FromTransformersOptions& options);

}  // namespace ckpt::api
