// AudioCraft's MusicGen language model <-> Hugging Face transformers'
// Musicgen / MusicgenMelody: tensor names, the q/k/v row ranges of the fused
// attention projections, and the configuration both ways (docs/TRANSFORMERS.md).
//
// The names agree with transformers' own converters
// (src/transformers/models/musicgen/convert_musicgen_transformers.py and
// musicgen_melody/convert_musicgen_melody_transformers.py: rename_keys and
// rename_state_dict) and with the modules of modeling_musicgen.py /
// modeling_musicgen_melody.py; the configuration fields with
// configuration_musicgen.py / configuration_musicgen_melody.py. Unlike the
// converters, the sizes come from xp.cfg, never from the checkpoint's name.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "omegaconf/value.h"

namespace ckpt::audiocraft {

// What xp.cfg says of a MusicGen language model, as far as transformers'
// MusicGen expresses it.
struct MusicgenLm {
  int64_t dim = 0, num_heads = 0, num_layers = 0, ffn_dim = 0;
  double hidden_scale = 4;           // ffn_dim = int(dim * hidden_scale)
  int64_t n_q = 0, card = 0, channels = 1;
  bool melody = false;
  bool cross_attention = true;       // text through cross-attention (MusicGen); Melody prepends
  int64_t num_chroma = 12, chroma_length = 235;
  double segment_duration = 30;      // dataset.segment_duration (generation length)
  double guidance_scale = 3.0;       // classifier_free_guidance.inference_coef
  bool use_sampling = true;          // generate.lm.use_sampling
  int64_t top_k = 250;               // generate.lm.top_k
  int64_t sample_rate = 32000;
  std::string text_encoder_name;     // conditioners.description.t5.name ("t5-base")
  std::string compression;           // compression_model_checkpoint
};

// Reads xp.cfg (a plain tree). Throws UsageError naming the config key when a
// needed key is missing or holds a setting transformers' MusicGen cannot
// express (another positional embedding, norm, activation, pattern, biases).
// OmegaConf.select(cfg, key) resolved; None when absent; an error names xp.cfg.
std::optional<omegaconf::Value> xp_cfg_at(const omegaconf::Value& cfg, const std::string& key);

// Settings transformers' MusicGen cannot express are gathered and refused
// together, in one UsageError naming each key.
MusicgenLm musicgen_from_config(const omegaconf::Value& cfg);

// The delays transformers' MusicGen builds for n_q codebooks (k, or k/2 in
// stereo), as a config value and as an override's text ("[0,1,2,3]").
omegaconf::Value delay_pattern(int64_t n_q, int64_t channels);
std::string delay_pattern_text(int64_t n_q, int64_t channels);

// One output tensor made of rows [row_begin, row_end) of an input tensor
// (the whole tensor when row_end is -1).
struct HfPiece {
  std::string name;
  int64_t row_begin = 0, row_end = -1;
};

enum class HfPart { Decoder, TextProjection, ChromaProjection, Dropped };

// Where an AudioCraft LM tensor goes. Decoder tensors are named as in
// MusicgenForCausalLM ("model.decoder.layers.0.self_attn.q_proj.weight",
// "lm_heads.0.weight"); the projections as in the composite model
// ("enc_to_dec_proj.weight", "audio_enc_to_dec_proj.weight"). A fused
// in_proj_weight of 3*dim rows gives q, k, v: rows [0, dim), [dim, 2dim),
// [2dim, 3dim). Throws UsageError naming the tensor when it has no
// counterpart in transformers' MusicGen.
struct HfMapping {
  HfPart part = HfPart::Decoder;
  std::vector<HfPiece> pieces;
};
HfMapping hf_mapping(const std::string& audiocraft_name, int64_t dim);

// The reverse for a decoder-relative or composite name: the AudioCraft name
// and, for q/k/v, which third of the fused in_proj_weight (0, 1, 2; -1 for
// a whole tensor). nullopt for names outside the language model
// (text_encoder.*, audio_encoder.*).
struct AudiocraftSlot {
  std::string name;
  int qkv = -1;
};
std::optional<AudiocraftSlot> audiocraft_name(const std::string& hf_name);

// The language model's tensor names in AudioCraft's state-dict order (the
// Melody chroma window, a computed buffer, aside).
std::vector<std::string> audiocraft_lm_names(const MusicgenLm& m);

// The frame rate of AudioCraft's stock 32 kHz EnCodec (hop 640).
inline constexpr int64_t kStockFrameRate = 50;

// AudioCraft's default MusicGen-small training configuration (config/ of
// AudioCraft, composed as Hydra composes a solver run): what from-transformers
// sets its keys over.
omegaconf::Value musicgen_default_config();

}  // namespace ckpt::audiocraft
