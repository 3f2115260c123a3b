#include "audiocraft/transformers_map.h"

#include <cmath>
#include <utility>

#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::audiocraft {

using omegaconf::Value;

std::optional<Value> xp_cfg_at(const Value& cfg, const std::string& key) {
  try {
    return omegaconf::select_resolved(cfg, key);
  } catch (const UsageError& e) {
    throw UsageError("xp.cfg: " + std::string(e.what()));
  }
}

namespace {


Value need(const Value& cfg, const std::string& key) {
  auto v = xp_cfg_at(cfg, key);
  if (!v || v->type == Value::Type::Null)
    throw UsageError("xp.cfg has no '" + key + "', which the conversion needs; is this a MusicGen language model?");
  return *v;
}

int64_t need_int(const Value& cfg, const std::string& key) {
  Value v = need(cfg, key);
  if (v.type != Value::Type::Int) throw UsageError("xp.cfg: '" + key + "' is not an integer");
  return v.integer;
}

double need_number(const Value& cfg, const std::string& key) {
  Value v = need(cfg, key);
  if (v.type == Value::Type::Int) return static_cast<double>(v.integer);
  if (v.type == Value::Type::Float) return v.real;
  throw UsageError("xp.cfg: '" + key + "' is not a number");
}

std::string text_of(const Value& v) {
  if (v.type == Value::Type::Str) return "'" + v.str + "'";
  return omegaconf::scalar_text(v);
}

// A key that must hold `want` (absent means AudioCraft's default, given as
// default_ok) for transformers' MusicGen to compute the same function; a
// refusal is added to `bad` (every one is named in one message).
void expect(const Value& cfg, const std::string& key, const Value& want, bool absent_ok, const std::string& why,
            std::vector<std::string>& bad) {
  auto v = xp_cfg_at(cfg, key);
  if (!v) {
    if (absent_ok) return;
    bad.push_back("no '" + key + "' (transformers' MusicGen " + why + ": " + key + " = " + text_of(want) + ")");
    return;
  }
  bool same = *v == want;
  if (!same && want.type == Value::Type::Int && v->type == Value::Type::Float) same = v->real == double(want.integer);
  if (!same)
    bad.push_back(key + " = " + text_of(*v) + ", but transformers' MusicGen " + why + " (" + key + " = " +
                  text_of(want) + ")");
}

std::vector<std::string> str_list(const Value& cfg, const std::string& key) {
  std::vector<std::string> out;
  auto v = xp_cfg_at(cfg, key);
  if (!v || v->type != Value::Type::Seq) return out;
  for (const auto& e : v->seq)
    if (e.type == Value::Type::Str) out.push_back(e.str);
  return out;
}

// A transformer layer's tensors: AudioCraft's suffix -> transformers' suffix
// (rename_keys of the converters: cross_attention -> encoder_attn,
// linear1/2 -> fc1/2, norm1 -> self_attn_layer_norm, norm_cross ->
// encoder_attn_layer_norm, norm2 -> final_layer_norm). "*qkv" marks a fused
// projection split into q_proj/k_proj/v_proj.
struct LayerName {
  const char* audiocraft;
  const char* hf;
};
constexpr LayerName kLayer[] = {  // in AudioCraft's state-dict order
    {"self_attn.in_proj_weight", "self_attn.*qkv"},
    {"self_attn.out_proj.weight", "self_attn.out_proj.weight"},
    {"linear1.weight", "fc1.weight"},
    {"linear2.weight", "fc2.weight"},
    {"norm1.weight", "self_attn_layer_norm.weight"},
    {"norm1.bias", "self_attn_layer_norm.bias"},
    {"norm2.weight", "final_layer_norm.weight"},
    {"norm2.bias", "final_layer_norm.bias"},
    {"cross_attention.in_proj_weight", "encoder_attn.*qkv"},
    {"cross_attention.out_proj.weight", "encoder_attn.out_proj.weight"},
    {"norm_cross.weight", "encoder_attn_layer_norm.weight"},
    {"norm_cross.bias", "encoder_attn_layer_norm.bias"},
};
constexpr const char* kQkv[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight"};

constexpr const char* kTextProj = "condition_provider.conditioners.description.output_proj.";
constexpr const char* kChromaProj = "condition_provider.conditioners.self_wav.output_proj.";
constexpr const char* kChromaWindow = "condition_provider.conditioners.self_wav.chroma.spec.window";

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

// "N.rest" with N a decimal index: N and rest; nullopt otherwise.
std::optional<std::pair<std::string, std::string>> index_and_rest(const std::string& s) {
  size_t dot = s.find('.');
  if (dot == 0 || dot == std::string::npos) return std::nullopt;
  for (size_t i = 0; i < dot; ++i)
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  return std::make_pair(s.substr(0, dot), s.substr(dot + 1));
}

[[noreturn]] void no_counterpart(const std::string& name) {
  throw UsageError("tensor '" + name +
                   "' has no counterpart in transformers' MusicGen (biases, layer scale, q/k norms and other "
                   "positional embeddings are not in its modules); is this a MusicGen language model?");
}

}  // namespace

Value delay_pattern(int64_t n_q, int64_t channels) {
  Value want = Value::empty_seq();
  for (int64_t k = 0; k < n_q; ++k) want.seq.push_back(Value::of_int(channels == 2 ? k / 2 : k));
  return want;
}

std::string delay_pattern_text(int64_t n_q, int64_t channels) {
  std::string t = "[";
  for (int64_t k = 0; k < n_q; ++k) t += (k ? "," : "") + std::to_string(channels == 2 ? k / 2 : k);
  return t + "]";
}

MusicgenLm musicgen_from_config(const Value& cfg) {
  if (cfg.type != Value::Type::Map) throw UsageError("xp.cfg is not a mapping");
  MusicgenLm m;
  std::string lm_model = need(cfg, "lm_model").str;
  if (lm_model != "transformer_lm")
    throw UsageError("xp.cfg: lm_model = '" + lm_model + "', but transformers' MusicGen is AudioCraft's transformer_lm");
  m.dim = need_int(cfg, "transformer_lm.dim");
  m.num_heads = need_int(cfg, "transformer_lm.num_heads");
  m.num_layers = need_int(cfg, "transformer_lm.num_layers");
  m.hidden_scale = need_number(cfg, "transformer_lm.hidden_scale");
  const double ffn = static_cast<double>(m.dim) * m.hidden_scale;  // AudioCraft: int(dim * hidden_scale)
  m.ffn_dim = ffn > 0 && ffn < 0x1p62 ? static_cast<int64_t>(ffn) : 0;  // 0: refused below
  m.n_q = need_int(cfg, "transformer_lm.n_q");
  m.card = need_int(cfg, "transformer_lm.card");
  if (m.dim <= 0 || m.num_heads <= 0 || m.dim % m.num_heads != 0)
    throw UsageError("xp.cfg: transformer_lm.dim = " + std::to_string(m.dim) + " is not a multiple of transformer_lm.num_heads = " +
                     std::to_string(m.num_heads));
  if (m.num_layers <= 0 || m.n_q <= 0 || m.card <= 0 || m.ffn_dim <= 0)
    throw UsageError("xp.cfg: transformer_lm.num_layers, n_q, card and hidden_scale must be positive");

  // Settings transformers' MusicGen cannot express: gathered, then refused together.
  std::vector<std::string> bad;
  const std::string tl = "transformer_lm.";
  expect(cfg, tl + "activation", Value::of_str("gelu"), true, "uses GELU", bad);
  expect(cfg, tl + "norm", Value::of_str("layer_norm"), true, "uses LayerNorm", bad);
  expect(cfg, tl + "norm_first", Value::of_bool(true), true, "normalises before attention", bad);
  expect(cfg, tl + "positional_embedding", Value::of_str("sin"), true, "uses sinusoidal positions", bad);
  expect(cfg, tl + "xpos", Value::of_bool(false), true, "has no xPos", bad);
  expect(cfg, tl + "bias_ff", Value::of_bool(false), true, "has no feed-forward biases", bad);
  expect(cfg, tl + "bias_attn", Value::of_bool(false), true, "has no attention biases", bad);
  expect(cfg, tl + "bias_proj", Value::of_bool(false), true, "has no output-layer biases", bad);
  expect(cfg, tl + "layer_scale", Value::null(), true, "has no layer scale", bad);
  expect(cfg, tl + "qk_layer_norm", Value::of_bool(false), true, "has no q/k LayerNorm", bad);
  expect(cfg, tl + "qk_layer_norm_cross", Value::of_bool(false), true, "has no q/k LayerNorm", bad);
  expect(cfg, tl + "kv_repeat", Value::of_int(1), true, "has one k/v head per query head", bad);
  expect(cfg, tl + "causal", Value::of_bool(true), true, "is causal", bad);
  expect(cfg, tl + "past_context", Value::null(), true, "attends to the whole past", bad);
  expect(cfg, "interleave_stereo_codebooks.use", Value::of_bool(false), true, "does not interleave stereo codebooks", bad);
  auto pos_scale = xp_cfg_at(cfg, tl + "max_period");
  if (pos_scale && !(pos_scale->type == Value::Type::Int && pos_scale->integer == 10000))
    bad.push_back("transformer_lm.max_period = " + text_of(*pos_scale) +
                  ", but transformers' MusicGen's sinusoids use 10000 (transformer_lm.max_period = 10000)");

  m.channels = 1;
  if (auto c = xp_cfg_at(cfg, "channels"); c && c->type == Value::Type::Int) m.channels = c->integer;
  if (m.channels != 1 && m.channels != 2)
    bad.push_back("channels = " + std::to_string(m.channels) + ", but transformers' MusicGen takes 1 or 2");
  if (m.channels == 2 && m.n_q % 2 != 0)
    bad.push_back("transformer_lm.n_q = " + std::to_string(m.n_q) + " is odd, but stereo needs a codebook pair per level");

  // The delay pattern transformers builds (build_delay_pattern_mask): codebook
  // k delayed by k steps, or k/2 per channel pair in stereo.
  expect(cfg, "codebooks_pattern.modeling", Value::of_str("delay"), false, "uses the delay pattern", bad);
  std::optional<Value> delays = xp_cfg_at(cfg, "codebooks_pattern.delay.delays");
  if (!(delays && *delays == delay_pattern(m.n_q, m.channels)))
    bad.push_back((delays ? "codebooks_pattern.delay.delays = " + omegaconf::to_yaml(*delays).substr(0, 60)
                          : std::string("no codebooks_pattern.delay.delays")) +
                  " is not the delay pattern transformers' MusicGen builds for n_q = " + std::to_string(m.n_q) +
                  " (codebook k delayed by k" + (m.channels == 2 ? "/2" : "") +
                  ": codebooks_pattern.delay.delays=" + delay_pattern_text(m.n_q, m.channels) + ")");
  expect(cfg, "codebooks_pattern.delay.flatten_first", Value::of_int(0), true, "flattens no codebook", bad);
  expect(cfg, "codebooks_pattern.delay.empty_initial", Value::of_int(0), true, "has no empty initial steps", bad);

  // Conditioners: T5 text (cross-attention for MusicGen, prepended for
  // Melody) and, for Melody, the chroma stem.
  Value text_model = need(cfg, "conditioners.description.model");
  if (text_model.str != "t5")
    bad.push_back("conditioners.description.model = " + text_of(text_model) +
                  ", but transformers' MusicGen conditions on a T5 encoder (conditioners.description.model = 't5')");
  m.text_encoder_name = need(cfg, "conditioners.description.t5.name").str;
  auto wav = xp_cfg_at(cfg, "conditioners.self_wav.model");
  m.melody = wav && wav->type == Value::Type::Str;
  auto cross = str_list(cfg, "fuser.cross");
  auto prepend = str_list(cfg, "fuser.prepend");
  if (m.melody) {
    if (wav->str != "chroma_stem")
      bad.push_back("conditioners.self_wav.model = " + text_of(*wav) +
                    ", but transformers' MusicgenMelody conditions on AudioCraft's chroma_stem");
    if (!cross.empty() || prepend != std::vector<std::string>{"self_wav", "description"})
      bad.push_back("fuser.prepend must be [self_wav, description] and fuser.cross empty, as "
                    "transformers' MusicgenMelody prepends the chroma, then the text");
    m.cross_attention = false;
    m.num_chroma = need_int(cfg, "conditioners.self_wav.chroma_stem.n_chroma");
    int64_t radix = need_int(cfg, "conditioners.self_wav.chroma_stem.radix2_exp");
    int64_t sr = need_int(cfg, "conditioners.self_wav.chroma_stem.sample_rate");
    double duration = need_number(cfg, "dataset.segment_duration");
    // torch.stft (center=True) over duration * sr samples, hop n_fft / 4.
    int64_t hop = (int64_t{1} << radix) / 4;
    m.chroma_length = static_cast<int64_t>(duration * sr) / hop + 1;
  } else {
    if (cross != std::vector<std::string>{"description"} || !prepend.empty())
      bad.push_back("fuser.cross must be [description] and fuser.prepend empty, as transformers' "
                    "MusicGen attends to the text through cross-attention");
    if (!str_list(cfg, "fuser.sum").empty()) bad.push_back("fuser.sum must be empty for transformers' MusicGen");
    expect(cfg, "fuser.cross_attention_pos_emb", Value::of_bool(false), true, "adds no positions to the text", bad);
  }
  if (!bad.empty()) {
    std::string all;
    for (const auto& b : bad) all += (all.empty() ? "" : "; ") + b;
    throw UsageError("xp.cfg: " + all + (bad.size() > 1 ? " (" + std::to_string(bad.size()) + " settings)" : "") +
                     "; transformers' MusicGen cannot express this model");
  }
  m.segment_duration = need_number(cfg, "dataset.segment_duration");
  if (auto g = xp_cfg_at(cfg, "classifier_free_guidance.inference_coef"))
    m.guidance_scale = g->type == Value::Type::Int ? double(g->integer) : g->real;
  if (auto s = xp_cfg_at(cfg, "generate.lm.use_sampling"); s && s->type == Value::Type::Bool) m.use_sampling = s->boolean;
  if (auto k = xp_cfg_at(cfg, "generate.lm.top_k"); k && k->type == Value::Type::Int) m.top_k = k->integer;
  if (auto sr = xp_cfg_at(cfg, "sample_rate"); sr && sr->type == Value::Type::Int) m.sample_rate = sr->integer;
  if (auto c = xp_cfg_at(cfg, "compression_model_checkpoint"); c && c->type == Value::Type::Str) m.compression = c->str;
  return m;
}

HfMapping hf_mapping(const std::string& name, int64_t dim) {
  HfMapping m;
  if (starts_with(name, kTextProj)) {
    std::string rest = name.substr(std::string_view(kTextProj).size());
    if (rest != "weight" && rest != "bias") no_counterpart(name);
    m.part = HfPart::TextProjection;
    m.pieces.push_back({"enc_to_dec_proj." + rest});
    return m;
  }
  if (starts_with(name, kChromaProj)) {
    std::string rest = name.substr(std::string_view(kChromaProj).size());
    if (rest != "weight" && rest != "bias") no_counterpart(name);
    m.part = HfPart::ChromaProjection;
    m.pieces.push_back({"audio_enc_to_dec_proj." + rest});
    return m;
  }
  if (name == kChromaWindow) {  // a buffer transformers computes (the converter drops it too)
    m.part = HfPart::Dropped;
    return m;
  }
  if (starts_with(name, "emb.")) {
    auto ir = index_and_rest(name.substr(4));
    if (!ir || ir->second != "weight") no_counterpart(name);
    m.pieces.push_back({"model.decoder.embed_tokens." + ir->first + ".weight"});
    return m;
  }
  if (starts_with(name, "linears.")) {
    auto ir = index_and_rest(name.substr(8));
    if (!ir || ir->second != "weight") no_counterpart(name);
    m.pieces.push_back({"lm_heads." + ir->first + ".weight"});
    return m;
  }
  if (name == "out_norm.weight" || name == "out_norm.bias") {
    m.pieces.push_back({"model.decoder.layer_norm." + name.substr(9)});
    return m;
  }
  if (starts_with(name, "transformer.layers.")) {
    auto ir = index_and_rest(name.substr(19));
    if (!ir) no_counterpart(name);
    const std::string prefix = "model.decoder.layers." + ir->first + ".";
    for (const auto& l : kLayer) {
      if (ir->second != l.audiocraft) continue;
      std::string hf = l.hf;
      size_t star = hf.find("*qkv");
      if (star == std::string::npos) {
        m.pieces.push_back({prefix + hf});
      } else {
        for (int i = 0; i < 3; ++i) m.pieces.push_back({prefix + hf.substr(0, star) + kQkv[i], i * dim, (i + 1) * dim});
      }
      return m;
    }
  }
  no_counterpart(name);
}

std::optional<AudiocraftSlot> audiocraft_name(const std::string& hf_in) {
  std::string hf = hf_in;
  if (starts_with(hf, "decoder.")) hf = hf.substr(8);
  if (starts_with(hf, "enc_to_dec_proj.")) return AudiocraftSlot{kTextProj + hf.substr(16)};
  if (starts_with(hf, "audio_enc_to_dec_proj.")) return AudiocraftSlot{kChromaProj + hf.substr(22)};
  if (starts_with(hf, "model.decoder.embed_tokens.")) return AudiocraftSlot{"emb." + hf.substr(27)};
  if (starts_with(hf, "lm_heads.")) return AudiocraftSlot{"linears." + hf.substr(9)};
  if (starts_with(hf, "model.decoder.layer_norm.")) return AudiocraftSlot{"out_norm." + hf.substr(25)};
  if (starts_with(hf, "model.decoder.layers.")) {
    auto ir = index_and_rest(hf.substr(21));
    if (!ir) return std::nullopt;
    const std::string prefix = "transformer.layers." + ir->first + ".";
    for (const auto& l : kLayer) {
      std::string h = l.hf;
      size_t star = h.find("*qkv");
      if (star == std::string::npos) {
        if (ir->second == h) return AudiocraftSlot{prefix + l.audiocraft};
        continue;
      }
      for (int i = 0; i < 3; ++i)
        if (ir->second == h.substr(0, star) + kQkv[i]) return AudiocraftSlot{prefix + l.audiocraft, i};
    }
  }
  return std::nullopt;
}

std::vector<std::string> audiocraft_lm_names(const MusicgenLm& m) {
  std::vector<std::string> out;
  if (m.melody) {
    out.push_back(std::string(kChromaProj) + "weight");
    out.push_back(std::string(kChromaProj) + "bias");
  }
  out.push_back(std::string(kTextProj) + "weight");
  out.push_back(std::string(kTextProj) + "bias");
  for (int64_t k = 0; k < m.n_q; ++k) out.push_back("emb." + std::to_string(k) + ".weight");
  for (int64_t i = 0; i < m.num_layers; ++i)
    for (const auto& l : kLayer) {
      std::string a = l.audiocraft;
      if (!m.cross_attention && (starts_with(a, "cross_attention.") || starts_with(a, "norm_cross."))) continue;
      out.push_back("transformer.layers." + std::to_string(i) + "." + a);
    }
  out.push_back("out_norm.weight");
  out.push_back("out_norm.bias");
  for (int64_t k = 0; k < m.n_q; ++k) out.push_back("linears." + std::to_string(k) + ".weight");
  return out;
}

Value musicgen_default_config() {
  static const char* kText =
#include "audiocraft/musicgen_default_cfg.inc"
      ;
  return omegaconf::parse_yaml(kText);
}

}  // namespace ckpt::audiocraft
