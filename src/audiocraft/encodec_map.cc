#include "audiocraft/encodec_map.h"

#include <cmath>
#include <set>

#include "audiocraft/transformers_map.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::audiocraft {

using omegaconf::Value;

namespace {

std::string text_of(const Value& v) {
  if (v.type == Value::Type::Str) return "'" + v.str + "'";
  if (v.is_container()) return omegaconf::to_yaml(v).substr(0, 60);
  return omegaconf::scalar_text(v);
}

// seanet's keys as SEANetEncoder / SEANetDecoder see them: builders'
// get_encodec_autoencoder merges seanet.encoder / seanet.decoder over the
// shared keys. transformers' EncodecConfig has one value for both.
class Seanet {
 public:
  explicit Seanet(const Value& cfg) : cfg_(cfg) {}

  std::optional<Value> get(const std::string& key) const {
    auto base = xp_cfg_at(cfg_, "seanet." + key);
    auto enc = xp_cfg_at(cfg_, "seanet.encoder." + key);
    auto dec = xp_cfg_at(cfg_, "seanet.decoder." + key);
    Value e = enc ? *enc : base.value_or(Value::null());
    Value d = dec ? *dec : base.value_or(Value::null());
    if (!omegaconf::numerically_equal(e, d))
      throw UsageError("xp.cfg: seanet's encoder and decoder differ in " + key + " (" + text_of(e) + " / " + text_of(d) +
                       "), but transformers' EncodecModel has one " + key + " for both (seanet.encoder." + key +
                       ", seanet.decoder." + key + ")");
    if (!enc && !dec && !base) return std::nullopt;
    return e;
  }
  Value need(const std::string& key) const {
    auto v = get(key);
    if (!v || v->type == Value::Type::Null)
      throw UsageError("xp.cfg has no 'seanet." + key + "', which the conversion needs; is this an EnCodec model?");
    return *v;
  }
  int64_t need_int(const std::string& key) const {
    Value v = need(key);
    if (v.type != Value::Type::Int) throw UsageError("xp.cfg: 'seanet." + key + "' is not an integer");
    return v.integer;
  }
  bool need_bool(const std::string& key) const {
    Value v = need(key);
    if (v.type != Value::Type::Bool) throw UsageError("xp.cfg: 'seanet." + key + "' is not a boolean");
    return v.boolean;
  }
  std::string need_str(const std::string& key) const {
    Value v = need(key);
    if (v.type != Value::Type::Str) throw UsageError("xp.cfg: 'seanet." + key + "' is not a string");
    return v.str;
  }

 private:
  const Value& cfg_;
};

const std::set<std::string> kSeanetKeys = {
    "dimension",   "channels", "causal",       "n_filters",  "n_residual_layers", "ratios",   "activation",
    "activation_params", "norm", "norm_params", "kernel_size", "residual_kernel_size", "last_kernel_size",
    "dilation_base", "pad_mode", "true_skip",  "compress",   "lstm",              "disable_norm_outer_blocks"};
const std::set<std::string> kDecoderOnly = {"trim_right_ratio", "final_activation", "final_activation_params"};

bool empty_or_null(const std::optional<Value>& v) {
  return !v || v->type == Value::Type::Null || (v->type == Value::Type::Map && v->map.empty());
}

void add_conv(std::vector<EncodecTensor>& out, const Encodec& e, const std::string& ac, const std::string& hf,
              int64_t in, int64_t outc, int64_t k, bool transpose) {
  const std::string mod = transpose ? "convtr" : "conv";
  const std::string a = ac + "." + mod + "." + mod + ".";
  const std::string h = hf + ".conv.";
  std::vector<int64_t> w = transpose ? std::vector<int64_t>{in, outc, k} : std::vector<int64_t>{outc, in, k};
  if (e.norm == "weight_norm") {
    // torch.nn.utils.weight_norm (dim 0) removes weight and appends
    // weight_g [w0, 1, 1] and weight_v after bias.
    out.push_back({a + "bias", h + "bias", {outc}});
    out.push_back({a + "weight_g", h + "parametrizations.weight.original0", {w[0], 1, 1}});
    out.push_back({a + "weight_v", h + "parametrizations.weight.original1", w});
  } else {
    out.push_back({a + "weight", h + "weight", w});
    out.push_back({a + "bias", h + "bias", {outc}});
    const std::string an = ac + "." + mod + ".norm.", hn = hf + ".norm.";
    out.push_back({an + "weight", hn + "weight", {outc}});
    out.push_back({an + "bias", hn + "bias", {outc}});
  }
}

void add_resblock(std::vector<EncodecTensor>& out, const Encodec& e, const std::string& ac, const std::string& hf,
                  int64_t dim) {
  const int64_t hidden = dim / e.compress;
  add_conv(out, e, ac + ".block.1", hf + ".block.1", dim, hidden, e.residual_kernel_size, false);
  add_conv(out, e, ac + ".block.3", hf + ".block.3", hidden, dim, 1, false);
  if (!e.true_skip) add_conv(out, e, ac + ".shortcut", hf + ".shortcut", dim, dim, 1, false);
}

void add_lstm(std::vector<EncodecTensor>& out, const Encodec& e, const std::string& ac, const std::string& hf,
              int64_t dim) {
  for (int64_t l = 0; l < e.lstm; ++l) {
    const std::string s = std::to_string(l);
    for (const char* p : {"weight_ih_l", "weight_hh_l"})
      out.push_back({ac + ".lstm." + p + s, hf + ".lstm." + p + s, {4 * dim, dim}});
    for (const char* p : {"bias_ih_l", "bias_hh_l"}) out.push_back({ac + ".lstm." + p + s, hf + ".lstm." + p + s, {4 * dim}});
  }
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string replace_suffix(const std::string& s, std::string_view from, std::string_view to) {
  return s.substr(0, s.size() - from.size()) + std::string(to);
}

}  // namespace

int64_t Encodec::hop() const {
  int64_t h = 1;
  for (int64_t r : ratios) h *= r;
  return h;
}

bool is_compression_config(const Value& cfg) {
  if (cfg.type != Value::Type::Map) return false;
  const Value* v = cfg.find("compression_model");
  return v && v->type == Value::Type::Str;
}

Encodec encodec_from_config(const Value& cfg) {
  if (cfg.type != Value::Type::Map) throw UsageError("xp.cfg is not a mapping");
  auto str_at = [&](const std::string& key) {
    auto v = xp_cfg_at(cfg, key);
    if (!v || v->type != Value::Type::Str)
      throw UsageError("xp.cfg has no '" + key + "', which the conversion needs; is this an EnCodec model?");
    return v->str;
  };
  if (std::string m = str_at("compression_model"); m != "encodec")
    throw UsageError("xp.cfg: compression_model = '" + m + "', but transformers' EncodecModel is AudioCraft's encodec");
  if (std::string a = str_at("encodec.autoencoder"); a != "seanet")
    throw UsageError("xp.cfg: encodec.autoencoder = '" + a + "', but transformers' EncodecModel is SEANet's");
  if (std::string q = str_at("encodec.quantizer"); q != "rvq")
    throw UsageError("xp.cfg: encodec.quantizer = '" + q + "', but transformers' EncodecModel quantizes with an RVQ");

  // Every key the encoder or decoder overrides must be one transformers has.
  for (const char* side : {"encoder", "decoder"}) {
    auto o = xp_cfg_at(cfg, std::string("seanet.") + side);
    if (!o || o->type != Value::Type::Map) continue;
    for (const auto& [k, v] : o->map)
      if (!kSeanetKeys.count(k.str) && !(std::string(side) == "decoder" && kDecoderOnly.count(k.str)))
        throw UsageError("xp.cfg: seanet." + std::string(side) + "." + k.str +
                         " is not a SEANet setting transformers' EncodecModel can express");
  }

  Encodec e;
  Seanet s(cfg);
  e.dimension = s.need_int("dimension");
  e.channels = s.need_int("channels");
  e.causal = s.need_bool("causal");
  e.n_filters = s.need_int("n_filters");
  e.n_residual_layers = s.need_int("n_residual_layers");
  Value ratios = s.need("ratios");
  if (ratios.type != Value::Type::Seq || ratios.seq.empty()) throw UsageError("xp.cfg: 'seanet.ratios' is not a list of integers");
  for (const auto& r : ratios.seq) {
    if (r.type != Value::Type::Int || r.integer <= 0) throw UsageError("xp.cfg: 'seanet.ratios' is not a list of positive integers");
    e.ratios.push_back(r.integer);
  }
  if (std::string act = s.need_str("activation"); act != "ELU")
    throw UsageError("xp.cfg: seanet.activation = '" + act + "', but transformers' EncodecModel uses ELU");
  if (auto ap = s.get("activation_params"); ap && ap->type == Value::Type::Map) {
    for (const auto& [k, v] : ap->map)
      if (!(k.str == "alpha" && omegaconf::numerically_equal(v, Value::of_float(1.0))))
        throw UsageError("xp.cfg: seanet.activation_params." + k.str + " = " + text_of(v) +
                         ", but transformers' EncodecModel uses ELU(alpha=1.0)");
  }
  e.norm = s.need_str("norm");
  if (e.norm != "weight_norm" && e.norm != "time_group_norm")
    throw UsageError("xp.cfg: seanet.norm = '" + e.norm +
                     "', but transformers' EncodecModel takes weight_norm or time_group_norm");
  if (!empty_or_null(s.get("norm_params")))
    throw UsageError("xp.cfg: seanet.norm_params is not empty, but transformers' EncodecModel has no norm parameters");
  if (auto d = s.get("disable_norm_outer_blocks"); d && !omegaconf::numerically_equal(*d, Value::of_int(0)))
    throw UsageError("xp.cfg: seanet.disable_norm_outer_blocks = " + text_of(*d) +
                     ", but transformers' EncodecModel normalises every convolution (0)");
  e.kernel_size = s.need_int("kernel_size");
  e.residual_kernel_size = s.need_int("residual_kernel_size");
  e.last_kernel_size = s.need_int("last_kernel_size");
  e.dilation_base = s.need_int("dilation_base");
  e.pad_mode = s.need_str("pad_mode");
  e.true_skip = s.need_bool("true_skip");
  e.compress = s.need_int("compress");
  e.lstm = s.need_int("lstm");
  if (e.lstm < 1)
    throw UsageError("xp.cfg: seanet.lstm = " + std::to_string(e.lstm) +
                     ", but transformers' EncodecModel always has an LSTM (num_lstm_layers >= 1)");
  if (auto fa = xp_cfg_at(cfg, "seanet.decoder.final_activation"); fa && fa->type != Value::Type::Null)
    throw UsageError("xp.cfg: seanet.decoder.final_activation = " + text_of(*fa) +
                     ", but transformers' EncodecModel has no final activation");
  if (auto t = xp_cfg_at(cfg, "seanet.decoder.trim_right_ratio"); t) {
    if (t->type == Value::Type::Int) e.trim_right_ratio = static_cast<double>(t->integer);
    else if (t->type == Value::Type::Float) e.trim_right_ratio = t->real;
    else throw UsageError("xp.cfg: 'seanet.decoder.trim_right_ratio' is not a number");
  }
  if (e.dimension <= 0 || e.channels <= 0 || e.n_filters <= 0 || e.n_residual_layers < 0 || e.compress <= 0 ||
      e.kernel_size <= 0 || e.last_kernel_size <= 0 || e.residual_kernel_size <= 0)
    throw UsageError("xp.cfg: seanet's dimension, channels, n_filters, compress and kernel sizes must be positive");

  auto enc_int = [&](const std::string& key) {
    auto v = xp_cfg_at(cfg, key);
    if (!v || v->type != Value::Type::Int)
      throw UsageError("xp.cfg has no integer '" + key + "', which the conversion needs");
    return v->integer;
  };
  e.sample_rate = enc_int("encodec.sample_rate");
  if (int64_t ch = enc_int("encodec.channels"); ch != e.channels)
    throw UsageError("xp.cfg: encodec.channels = " + std::to_string(ch) + " but seanet.channels = " +
                     std::to_string(e.channels));
  if (auto c = xp_cfg_at(cfg, "encodec.causal"); c && c->type == Value::Type::Bool && c->boolean != e.causal)
    throw UsageError("xp.cfg: encodec.causal and seanet.causal differ, but transformers' EncodecModel has one "
                     "use_causal_conv");
  if (auto r = xp_cfg_at(cfg, "encodec.renormalize"); r && r->type == Value::Type::Bool) e.renormalize = r->boolean;
  e.n_q = enc_int("rvq.n_q");
  e.bins = enc_int("rvq.bins");
  if (e.n_q <= 0) throw UsageError("xp.cfg: rvq.n_q must be positive");
  if (e.bins <= 1 || (e.bins & (e.bins - 1)) != 0)
    throw UsageError("xp.cfg: rvq.bins = " + std::to_string(e.bins) +
                     ", but transformers' EncodecModel needs a power of 2 (codebook_size)");
  if (auto cd = xp_cfg_at(cfg, "rvq.codebook_dim"); cd && cd->type != Value::Type::Null && !omegaconf::numerically_equal(*cd, Value::of_int(e.dimension)))
    throw UsageError("xp.cfg: rvq.codebook_dim = " + text_of(*cd) +
                     ", but transformers' EncodecModel has no projection into the codebooks (seanet.dimension)");
  if (e.sample_rate <= 0) throw UsageError("xp.cfg: encodec.sample_rate must be positive");
  return e;
}

std::vector<EncodecTensor> encodec_tensors(const Encodec& e) {
  std::vector<EncodecTensor> out;
  // SEANetEncoder (seanet.py): conv, then per ratio (reversed) the residual
  // blocks, an ELU and the downsampling conv; the LSTM, an ELU, the last conv.
  int64_t i = 0, mult = 1;
  auto enc = [&](int64_t idx) { return std::make_pair("encoder.model." + std::to_string(idx), "encoder.layers." + std::to_string(idx)); };
  auto dec = [&](int64_t idx) { return std::make_pair("decoder.model." + std::to_string(idx), "decoder.layers." + std::to_string(idx)); };
  {
    auto [a, h] = enc(i++);
    add_conv(out, e, a, h, e.channels, e.n_filters, e.kernel_size, false);
  }
  for (auto it = e.ratios.rbegin(); it != e.ratios.rend(); ++it) {
    for (int64_t j = 0; j < e.n_residual_layers; ++j) {
      auto [a, h] = enc(i++);
      add_resblock(out, e, a, h, mult * e.n_filters);
    }
    ++i;  // ELU
    auto [a, h] = enc(i++);
    add_conv(out, e, a, h, mult * e.n_filters, mult * e.n_filters * 2, *it * 2, false);
    mult *= 2;
  }
  {
    auto [a, h] = enc(i++);
    add_lstm(out, e, a, h, mult * e.n_filters);
  }
  ++i;  // ELU
  {
    auto [a, h] = enc(i++);
    add_conv(out, e, a, h, mult * e.n_filters, e.dimension, e.last_kernel_size, false);
  }
  // SEANetDecoder: conv, LSTM, per ratio an ELU, the upsampling transposed
  // conv and the residual blocks; an ELU and the last conv.
  i = 0;
  mult = int64_t{1} << e.ratios.size();
  {
    auto [a, h] = dec(i++);
    add_conv(out, e, a, h, e.dimension, mult * e.n_filters, e.kernel_size, false);
  }
  {
    auto [a, h] = dec(i++);
    add_lstm(out, e, a, h, mult * e.n_filters);
  }
  for (int64_t r : e.ratios) {
    ++i;  // ELU
    {
      auto [a, h] = dec(i++);
      add_conv(out, e, a, h, mult * e.n_filters, mult * e.n_filters / 2, r * 2, true);
    }
    for (int64_t j = 0; j < e.n_residual_layers; ++j) {
      auto [a, h] = dec(i++);
      add_resblock(out, e, a, h, mult * e.n_filters / 2);
    }
    mult /= 2;
  }
  ++i;  // ELU
  {
    auto [a, h] = dec(i++);
    add_conv(out, e, a, h, e.n_filters, e.channels, e.last_kernel_size, false);
  }
  // ResidualVectorQuantizer.vq.layers[k]._codebook (EuclideanCodebook's buffers).
  for (int64_t k = 0; k < e.n_q; ++k) {
    const std::string a = "quantizer.vq.layers." + std::to_string(k) + "._codebook.";
    const std::string h = "quantizer.layers." + std::to_string(k) + ".codebook.";
    out.push_back({a + "inited", h + "inited", {1}});
    out.push_back({a + "cluster_size", h + "cluster_size", {e.bins}});
    out.push_back({a + "embed", h + "embed", {e.bins, e.dimension}});
    out.push_back({a + "embed_avg", h + "embed_avg", {e.bins, e.dimension}});
  }
  return out;
}

std::string hf_canonical(const std::string& name) {
  if (ends_with(name, ".weight_g")) return replace_suffix(name, "weight_g", "parametrizations.weight.original0");
  if (ends_with(name, ".weight_v")) return replace_suffix(name, "weight_v", "parametrizations.weight.original1");
  return name;
}

std::string audiocraft_canonical(const std::string& name) {
  if (ends_with(name, ".parametrizations.weight.original0"))
    return replace_suffix(name, "parametrizations.weight.original0", "weight_g");
  if (ends_with(name, ".parametrizations.weight.original1"))
    return replace_suffix(name, "parametrizations.weight.original1", "weight_v");
  return name;
}

double python_floordiv(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) div -= 1.0;
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return floordiv;
}

Value encodec_default_config() {
  // config/model/encodec/default.yaml with the top-level keys its
  // interpolations and AudioCraft's loader (builders.get_compression_model) read.
  static const char* kText = R"(solver: compression
device: cpu
dtype: float32
sample_rate: 32000
channels: 1
compression_model: encodec
encodec:
  autoencoder: seanet
  quantizer: rvq
  sample_rate: ${sample_rate}
  channels: ${channels}
  causal: false
  renormalize: false
seanet:
  dimension: 128
  channels: ${channels}
  causal: ${encodec.causal}
  n_filters: 32
  n_residual_layers: 1
  ratios:
  - 8
  - 5
  - 4
  - 2
  activation: ELU
  activation_params:
    alpha: 1.0
  norm: weight_norm
  norm_params: {}
  kernel_size: 7
  residual_kernel_size: 3
  last_kernel_size: 7
  dilation_base: 2
  pad_mode: constant
  true_skip: true
  compress: 2
  lstm: 2
  disable_norm_outer_blocks: 0
  decoder:
    trim_right_ratio: 1.0
    final_activation: null
    final_activation_params: null
  encoder: {}
rvq:
  n_q: 8
  q_dropout: false
  bins: 1024
  decay: 0.99
  kmeans_init: true
  kmeans_iters: 50
  threshold_ema_dead_code: 2
  orthogonal_reg_weight: 0.0
  orthogonal_reg_active_codes_only: false
no_quant: {}
)";
  return omegaconf::parse_yaml(kText);
}

}  // namespace ckpt::audiocraft
