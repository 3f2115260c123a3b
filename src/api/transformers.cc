#include "api/transformers.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "api/format.h"
#include "api/write.h"
#include "audiocraft/encodec_map.h"
#include "audiocraft/operations.h"
#include "audiocraft/transformers_map.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "torch/convert.h"
#include "torch/safetensors.h"
#include "torch/safetensors_shards.h"
#include "torch/shape.h"
#include "util/error.h"
#include "util/folder_replace.h"

namespace ckpt::api {

using Json = nlohmann::ordered_json;
using audiocraft::MusicgenLm;
using omegaconf::Value;
using torch::TensorInfo;

namespace {

constexpr const char* kProjectionsFile = "projections.safetensors";
constexpr const char* kConfigCarry = "audiocraft_cfg";  // xp.cfg's YAML, carried in config.json
constexpr const char* kStockEncodec = "facebook/encodec_32khz";

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string strip_slash(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

Json read_json(Env& env, const std::string& path) {
  if (!env.exists(path)) throw UsageError(path + " is missing: not a Hugging Face model folder");
  auto f = env.open_read(path);
  if (f->size() > (uint64_t{16} << 20)) throw FormatError(path + ": over 16 MiB, not a config");
  try {
    return Json::parse(f->read_string(0, static_cast<size_t>(f->size())));
  } catch (const std::exception& e) {
    throw FormatError(path + ": not JSON: " + e.what());
  }
}

// A Hugging Face model folder's tensors: model.safetensors, the shards of
// model.safetensors.index.json, or pytorch_model.bin.
struct HfTensors {
  std::unique_ptr<torch::Checkpoint> ck;
  std::vector<std::pair<std::string, TensorInfo>> tensors;
};

HfTensors tensors_of_checkpoint(std::unique_ptr<torch::Checkpoint> ck) {
  HfTensors h;
  h.ck = std::move(ck);
  auto* entries = pickle::entries_of(h.ck->root());
  if (!entries) throw UsageError(h.ck->path() + ": not a state dict");
  for (auto& [k, v] : *entries) {
    if (k->kind != pickle::Kind::Str) continue;
    auto info = h.ck->tensor(v);
    if (info) h.tensors.emplace_back(k->text, std::move(*info));
  }
  return h;
}

HfTensors read_hf_tensors(Env& env, const std::string& dir) {
  std::string index = join(dir, "model.safetensors.index.json");
  if (env.exists(index)) return tensors_of_checkpoint(torch::checkpoint_from_safetensors_index(env, index));
  std::string single = join(dir, "model.safetensors");
  if (env.exists(single)) return tensors_of_checkpoint(torch::checkpoint_from_safetensors(env, single));
  std::string bin = join(dir, "pytorch_model.bin");
  if (env.exists(bin)) {
    Opened o = open_checkpoint(env, bin);
    return tensors_of_checkpoint(std::move(o.ck));
  }
  throw UsageError(dir + " holds no model.safetensors, model.safetensors.index.json or pytorch_model.bin");
}

// The zip records (of the input checkpoints) whose bytes the output copies
// by range: their CRC-32s are checked by check(), which the writers run on
// a second thread while the output is fsync'd, as every other writer checks
// its copies (torch::SaveOptions::verify_crcs); a mismatch fails the write
// with check_record_crcs's message (ignore_crc to write it as read). A
// safetensors input has no CRC to check.
class SourceRecords {
 public:
  void add(const torch::Checkpoint& ck, const torch::StorageLocation& loc) {
    if (loc.record && seen_.insert(loc.record).second) records_.emplace_back(&ck, loc.record);
  }
  // The check to run alongside the fsync; empty under ignore_crc or with no
  // zip record to check.
  std::function<void()> check(bool ignore_crc) const {
    if (ignore_crc || records_.empty()) return nullptr;
    return [this] {
      for (const auto& [ck, rec] : records_) check_record_crc(*ck, *rec);
    };
  }

 private:
  std::vector<std::pair<const torch::Checkpoint*, const container::ZipRecord*>> records_;
  std::set<const container::ZipRecord*> seen_;
};

// The output checkpoint: every output tensor a byte range of some input file.
class RangeSet {
 public:
  explicit RangeSet(Env& env, const std::string& label) : env_(env), ck_(torch::Checkpoint::create(label)) {}

  // A contiguous tensor of rows [row_begin, row_end) of t (all rows when
  // row_end < 0) of checkpoint `from`.
  TensorInfo add(const torch::Checkpoint& from, const std::string& name, const TensorInfo& t, int64_t row_begin = 0,
                 int64_t row_end = -1) {
    if (!t.is_plain() || !t.storage || !t.dtype)
      throw UsageError(from.path() + ": tensor '" + name + "' is " + (t.form().empty() ? "not plain" : t.form()) +
                       "; transformers' models hold dense tensors");
    if (!t.is_contiguous())
      throw UsageError(from.path() + ": tensor '" + name + "' is a strided view; run 'ckpt rewrite' first");
    std::string problem = t.view_problem();
    if (!problem.empty()) throw FormatError(from.path() + ": tensor '" + name + "': " + problem);
    const torch::StorageLocation loc = torch::locate_storage(from, *t.storage);
    if (loc.compressed())
      throw UsageError(from.path() + ": tensor '" + name + "' is in a compressed record; run 'ckpt rewrite' first");
    sources_.add(from, loc);
    std::vector<int64_t> shape = t.shape;
    uint64_t row_bytes = t.dtype->element_size;
    for (size_t i = 1; i < shape.size(); ++i) row_bytes *= static_cast<uint64_t>(shape[i]);
    if (row_end >= 0) shape[0] = row_end - row_begin;
    uint64_t offset = loc.offset + static_cast<uint64_t>(t.storage_offset) * t.dtype->element_size +
                      static_cast<uint64_t>(row_begin) * row_bytes;
    uint64_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
    const torch::Storage& s =
        ck_->add_external_storage(std::to_string(next_++), t.dtype, "cpu", numel, shared(*loc.file), offset);
    TensorInfo out;
    out.storage = &s;
    out.dtype = t.dtype;
    out.shape = shape;
    out.stride = torch::contiguous_strides(shape);
    return out;
  }

  std::shared_ptr<RandomAccessFile> shared(RandomAccessFile& f) {
    auto it = files_.find(f.path());
    if (it == files_.end()) it = files_.emplace(f.path(), env_.open_read(f.path())).first;
    return it->second;
  }

  torch::Checkpoint& ck() { return *ck_; }
  // The check of the records the ranges come from (SourceRecords::check).
  std::function<void()> check_sources(bool ignore_crc) const { return sources_.check(ignore_crc); }

 private:
  Env& env_;
  SourceRecords sources_;
  std::unique_ptr<torch::Checkpoint> ck_;
  std::map<std::string, std::shared_ptr<RandomAccessFile>> files_;
  size_t next_ = 0;
};

// The output folder: written into a temporary folder beside the target, then
// renamed into place, an existing target (with force) exchanged with it as a
// whole in one step (util/folder_replace.h, Whole): a reader or a power loss
// sees the old folder or the new one; the old is removed once the exchange
// is durable. Through a link, the link's target is replaced.
FolderReplace output_folder(Env& env, const std::string& dir, bool force) {
  const std::string d = strip_slash(dir);
  if (d.empty() || d == "-") throw UsageError("-o names the output folder");
  return FolderReplace(env, d, FolderReplace::Whole{}, force);
}

std::string json_text(const Json& j) { return j.dump(2) + "\n"; }

void write_text(Env& env, const std::string& path, const std::string& text) {
  AtomicOutput out(env, path, true);
  out.file().append(text);
  out.commit();
}

const char* torch_dtype_name(const torch::DTypeInfo* d) { return d ? d->name : "float32"; }

// ------------------------------------------------------------ shapes

std::vector<int64_t> expected_shape(const std::string& name, const MusicgenLm& m, int64_t text_dim) {
  auto ends = [&](std::string_view s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  if (name.rfind("emb.", 0) == 0) return {m.card + 1, m.dim};
  if (name.rfind("linears.", 0) == 0) return {m.card, m.dim};
  if (name.rfind("condition_provider.conditioners.description.output_proj.", 0) == 0)
    return ends(".weight") ? std::vector<int64_t>{m.dim, text_dim} : std::vector<int64_t>{m.dim};
  if (name.rfind("condition_provider.conditioners.self_wav.output_proj.", 0) == 0)
    return ends(".weight") ? std::vector<int64_t>{m.dim, m.num_chroma} : std::vector<int64_t>{m.dim};
  if (ends("in_proj_weight")) return {3 * m.dim, m.dim};
  if (ends("out_proj.weight")) return {m.dim, m.dim};
  if (ends("linear1.weight")) return {m.ffn_dim, m.dim};
  if (ends("linear2.weight")) return {m.dim, m.ffn_dim};
  return {m.dim};  // norms
}

std::string config_source(const std::string& name, const MusicgenLm& m) {
  (void)m;
  if (name.rfind("emb.", 0) == 0 || name.rfind("linears.", 0) == 0) return "transformer_lm.card, transformer_lm.dim";
  if (name.find("linear1") != std::string::npos || name.find("linear2") != std::string::npos)
    return "transformer_lm.dim, transformer_lm.hidden_scale";
  if (name.find("self_wav") != std::string::npos) return "conditioners.self_wav.chroma_stem.n_chroma, transformer_lm.dim";
  return "transformer_lm.dim";
}

// ------------------------------------------------------------ configs

Json decoder_config(const MusicgenLm& m, double dropout) {
  Json d;
  d["activation_dropout"] = 0.0;
  d["activation_function"] = "gelu";
  d["attention_dropout"] = 0.0;
  d["audio_channels"] = m.channels;
  d["bos_token_id"] = m.card;
  d["dropout"] = dropout;
  d["ffn_dim"] = m.ffn_dim;
  d["hidden_size"] = m.dim;
  d["initializer_factor"] = 0.02;
  d["layerdrop"] = 0.0;
  d["max_position_embeddings"] = 2048;
  d["model_type"] = m.melody ? "musicgen_melody_decoder" : "musicgen_decoder";
  d["num_attention_heads"] = m.num_heads;
  d["num_codebooks"] = m.n_q;
  d["num_hidden_layers"] = m.num_layers;
  d["pad_token_id"] = m.card;
  d["scale_embedding"] = false;
  d["tie_word_embeddings"] = false;
  d["use_cache"] = true;
  d["vocab_size"] = m.card;
  return d;
}

Json generation_config(const MusicgenLm& m, int64_t frame_rate) {
  Json g;
  g["bos_token_id"] = m.card;
  g["decoder_start_token_id"] = m.card;
  g["pad_token_id"] = m.card;
  g["do_sample"] = m.use_sampling;
  g["guidance_scale"] = m.guidance_scale;
  g["max_length"] = static_cast<int64_t>(m.segment_duration * static_cast<double>(frame_rate));
  if (m.top_k > 0) g["top_k"] = m.top_k;
  return g;
}

int64_t encodec_frame_rate(const Json& enc, const std::string& where) {
  if (!enc.contains("sampling_rate") || !enc["sampling_rate"].is_number_integer() || !enc.contains("upsampling_ratios") ||
      !enc["upsampling_ratios"].is_array())
    throw UsageError(where + ": no sampling_rate / upsampling_ratios: not an EnCodec config");
  int64_t hop = 1;
  for (const auto& r : enc["upsampling_ratios"]) hop *= r.get<int64_t>();
  int64_t sr = enc["sampling_rate"].get<int64_t>();
  return hop > 0 ? (sr + hop - 1) / hop : 0;  // math.ceil(sampling_rate / hop_length)
}

// AudioCraft's stock facebook/encodec_32khz, as transformers' EnCodec
// converter configures it (convert_encodec_checkpoint_to_pytorch.py).
bool is_stock_encodec(const Json& enc) {
  auto eq = [&](const char* k, const Json& v) { return enc.contains(k) && enc[k] == v; };
  return eq("sampling_rate", 32000) && eq("upsampling_ratios", Json::array({8, 5, 4, 4})) &&
         eq("target_bandwidths", Json::array({2.2})) && eq("num_filters", 64) && eq("codebook_size", 2048) &&
         eq("audio_channels", 1) && eq("use_causal_conv", false) && eq("use_conv_shortcut", false) &&
         eq("hidden_size", 128) && eq("num_lstm_layers", 2);
}

const Json& need_key(const Json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) throw UsageError(where + " has no '" + key + "', which the conversion needs");
  return j[key];
}

int64_t need_json_int(const Json& j, const char* key, const std::string& where) {
  const Json& v = need_key(j, key, where);
  if (!v.is_number_integer()) throw UsageError(where + ": '" + key + "' is not an integer");
  return v.get<int64_t>();
}

Value* ensure_path(Value& tree, const std::string& key) {
  Value* cur = &tree;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur->type != Value::Type::Map) *cur = Value::empty_map();
    Value* next = cur->find(part);
    if (!next) {
      cur->map.emplace_back(Value::of_str(part), Value::null());
      next = &cur->map.back().second;
    }
    cur = next;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sets key to v unless it already holds the same value (an int 30 and a
// float 30.0 are the same: the carried configuration stays as it was).
void set_key(Value& tree, const std::string& key, const Value& v) {
  Value* slot = ensure_path(tree, key);
  if (!omegaconf::numerically_equal(*slot, v)) *slot = v;
}

Value number(double d) {
  if (std::floor(d) == d && std::fabs(d) < 9e15) return Value::of_int(static_cast<int64_t>(d));
  return Value::of_float(d);
}


// ------------------------------------------------------------ EnCodec

using audiocraft::Encodec;

// Where xp.cfg carries transformers' target_bandwidths (AudioCraft's
// loader reads only compression_model, encodec, seanet, rvq).
constexpr const char* kTransformersBandwidths = "transformers.target_bandwidths";


// transformers' target_bandwidths for n_q codebooks: num_quantizers is
// int(1000 * target_bandwidths[-1] // (frame_rate * nbits)) with frame_rate
// ceil(sampling_rate / hop_length) (configuration_encodec.py).
double encodec_bandwidth(const Encodec& e) {
  const double frame_rate = std::ceil(static_cast<double>(e.sample_rate) / static_cast<double>(e.hop()));
  const double nbits = std::ceil(std::log2(static_cast<double>(e.bins)));
  double bw = static_cast<double>(e.n_q) * frame_rate * nbits / 1000.0;
  for (int i = 0; i < 8; ++i, bw = std::nextafter(bw, 1e300))
    if (audiocraft::python_floordiv(1000.0 * bw, frame_rate * nbits) == static_cast<double>(e.n_q)) return bw;
  throw UsageError("xp.cfg: rvq.n_q = " + std::to_string(e.n_q) + " has no target bandwidth transformers' EncodecModel "
                   "maps back to it");
}

Json encodec_hf_config(const Encodec& e, const Value& cfg) {
  Json j;
  j["architectures"] = Json::array({"EncodecModel"});
  j["audio_channels"] = e.channels;
  j["chunk_length_s"] = nullptr;
  j["codebook_dim"] = e.dimension;
  j["codebook_size"] = e.bins;
  j["compress"] = e.compress;
  j["dilation_growth_rate"] = e.dilation_base;
  j["hidden_size"] = e.dimension;
  j["kernel_size"] = e.kernel_size;
  j["last_kernel_size"] = e.last_kernel_size;
  j["model_type"] = "encodec";
  j["norm_type"] = e.norm;
  j["normalize"] = e.renormalize;
  j["num_filters"] = e.n_filters;
  j["num_lstm_layers"] = e.lstm;
  j["num_residual_layers"] = e.n_residual_layers;
  j["overlap"] = nullptr;
  j["pad_mode"] = e.pad_mode;
  j["residual_kernel_size"] = e.residual_kernel_size;
  j["sampling_rate"] = e.sample_rate;
  // transformers' bandwidths when a from-transformers xp.cfg carries them
  // (kTransformersBandwidths) and they still give rvq.n_q; else n_q's.
  j["target_bandwidths"] = Json::array({encodec_bandwidth(e)});
  if (auto bw = omegaconf::select_resolved(cfg, kTransformersBandwidths); bw && bw->type == Value::Type::Seq && !bw->seq.empty()) {
    Json list = Json::array();
    for (const auto& v : bw->seq) {
      if (v.type == Value::Type::Float) list.push_back(v.real);
      else if (v.type == Value::Type::Int) list.push_back(static_cast<double>(v.integer));
    }
    const double frame_rate = std::ceil(static_cast<double>(e.sample_rate) / static_cast<double>(e.hop()));
    const double nbits = std::ceil(std::log2(static_cast<double>(e.bins)));
    if (list.size() == bw->seq.size() &&
        audiocraft::python_floordiv(1000.0 * list.back().get<double>(), frame_rate * nbits) == static_cast<double>(e.n_q))
      j["target_bandwidths"] = list;
  }
  j["trim_right_ratio"] = e.trim_right_ratio;
  j["upsampling_ratios"] = e.ratios;
  j["use_causal_conv"] = e.causal;
  j["use_conv_shortcut"] = !e.true_skip;
  j[kConfigCarry] = omegaconf::to_yaml(cfg);
  return j;
}

// An EncodecConfig (config.json) as AudioCraft's settings; keys absent take
// EncodecConfig's defaults, as transformers reads them. Throws UsageError
// naming the key AudioCraft's EnCodec cannot express.
Encodec encodec_from_hf(const Json& j, const std::string& where) {
  auto get = [&](const char* key, const Json& def) -> Json {
    if (!j.contains(key) || j[key].is_null()) return def;
    return j[key];
  };
  auto integer = [&](const char* key, int64_t def) {
    Json v = get(key, def);
    if (!v.is_number_integer()) throw UsageError(where + ": '" + key + "' is not an integer");
    return v.get<int64_t>();
  };
  auto boolean = [&](const char* key, bool def) {
    Json v = get(key, def);
    if (!v.is_boolean()) throw UsageError(where + ": '" + key + "' is not a boolean");
    return v.get<bool>();
  };
  auto text = [&](const char* key, const char* def) {
    Json v = get(key, def);
    if (!v.is_string()) throw UsageError(where + ": '" + key + "' is not a string");
    return v.get<std::string>();
  };
  if (j.value("model_type", "") != "encodec")
    throw UsageError(where + ": model_type is '" + j.value("model_type", "") + "', not encodec");
  Encodec e;
  e.sample_rate = integer("sampling_rate", 24000);
  e.channels = integer("audio_channels", 1);
  e.renormalize = boolean("normalize", false);
  for (const char* key : {"chunk_length_s", "overlap"})
    if (j.contains(key) && !j[key].is_null())
      throw UsageError(where + ": " + key + " is set, but AudioCraft's EncodecModel does not encode in chunks");
  e.dimension = integer("hidden_size", 128);
  e.n_filters = integer("num_filters", 32);
  e.n_residual_layers = integer("num_residual_layers", 1);
  Json ratios = get("upsampling_ratios", Json::array({8, 5, 4, 2}));
  if (!ratios.is_array() || ratios.empty()) throw UsageError(where + ": 'upsampling_ratios' is not a list of integers");
  for (const auto& r : ratios) {
    if (!r.is_number_integer() || r.get<int64_t>() <= 0)
      throw UsageError(where + ": 'upsampling_ratios' is not a list of positive integers");
    e.ratios.push_back(r.get<int64_t>());
  }
  e.norm = text("norm_type", "weight_norm");
  if (e.norm != "weight_norm" && e.norm != "time_group_norm")
    throw UsageError(where + ": norm_type '" + e.norm + "' is neither weight_norm nor time_group_norm");
  e.kernel_size = integer("kernel_size", 7);
  e.last_kernel_size = integer("last_kernel_size", 7);
  e.residual_kernel_size = integer("residual_kernel_size", 3);
  e.dilation_base = integer("dilation_growth_rate", 2);
  e.causal = boolean("use_causal_conv", true);
  e.pad_mode = text("pad_mode", "reflect");
  e.compress = integer("compress", 2);
  e.lstm = integer("num_lstm_layers", 2);
  Json trim = get("trim_right_ratio", 1.0);
  if (!trim.is_number()) throw UsageError(where + ": 'trim_right_ratio' is not a number");
  e.trim_right_ratio = trim.get<double>();
  e.bins = integer("codebook_size", 1024);
  if (int64_t cd = integer("codebook_dim", e.dimension); cd != e.dimension)
    throw UsageError(where + ": codebook_dim = " + std::to_string(cd) + " differs from hidden_size = " +
                     std::to_string(e.dimension) + ", which AudioCraft's RVQ (seanet.dimension) cannot express");
  e.true_skip = !boolean("use_conv_shortcut", true);
  // What AudioCraft's modules refuse to build (encodec.py's EncodecModel,
  // conv.py's get_norm_module).
  if (e.causal && e.renormalize)
    throw UsageError(where + ": normalize with use_causal_conv, but AudioCraft's causal EncodecModel does not "
                     "renormalize (encodec.causal, encodec.renormalize)");
  if (e.causal && e.norm == "time_group_norm")
    throw UsageError(where + ": norm_type time_group_norm with use_causal_conv, but AudioCraft's GroupNorm "
                     "convolutions are not causal (seanet.norm, seanet.causal)");
  if (e.bins <= 1 || (e.bins & (e.bins - 1)) != 0)
    throw UsageError(where + ": codebook_size = " + std::to_string(e.bins) + " is not a power of 2");
  if (e.sample_rate <= 0 || e.lstm < 1 || e.compress <= 0 || e.dimension <= 0 || e.n_filters <= 0)
    throw UsageError(where + ": sampling_rate, num_lstm_layers, compress, hidden_size and num_filters must be positive");
  Json bws = get("target_bandwidths", Json::array({1.5, 3.0, 6.0, 12.0, 24.0}));
  if (!bws.is_array() || bws.empty() || !bws.back().is_number())
    throw UsageError(where + ": 'target_bandwidths' is not a list of numbers");
  const double frame_rate = std::ceil(static_cast<double>(e.sample_rate) / static_cast<double>(e.hop()));
  const double nbits = std::ceil(std::log2(static_cast<double>(e.bins)));
  e.n_q = static_cast<int64_t>(audiocraft::python_floordiv(1000.0 * bws.back().get<double>(), frame_rate * nbits));
  if (e.n_q <= 0) throw UsageError(where + ": target_bandwidths gives no quantizer (num_quantizers 0)");
  return e;
}

// Sets key to v unless it already resolves to the same value (an
// interpolation such as seanet.channels: ${channels} stays as it is).
void set_resolved(Value& cfg, const std::string& key, const Value& v) {
  auto cur = omegaconf::select_resolved(cfg, key);
  if (cur && omegaconf::numerically_equal(*cur, v)) return;
  *ensure_path(cfg, key) = v;
}

// xp.cfg for an EncodecConfig: the one to_transformers carried (or AudioCraft's
// defaults) with config.json's values set over it.
Value encodec_xp_cfg(const Encodec& e, const Json& hf_config) {
  Value cfg = hf_config.contains(kConfigCarry) && hf_config[kConfigCarry].is_string()
                  ? omegaconf::parse_yaml(hf_config[kConfigCarry].get<std::string>())
                  : audiocraft::encodec_default_config();
  set_resolved(cfg, "sample_rate", Value::of_int(e.sample_rate));
  set_resolved(cfg, "channels", Value::of_int(e.channels));
  set_resolved(cfg, "encodec.sample_rate", Value::of_int(e.sample_rate));
  set_resolved(cfg, "encodec.channels", Value::of_int(e.channels));
  set_resolved(cfg, "encodec.causal", Value::of_bool(e.causal));
  set_resolved(cfg, "encodec.renormalize", Value::of_bool(e.renormalize));
  Value ratios = Value::empty_seq();
  for (int64_t r : e.ratios) ratios.seq.push_back(Value::of_int(r));
  const std::vector<std::pair<std::string, Value>> seanet = {
      {"dimension", Value::of_int(e.dimension)},
      {"channels", Value::of_int(e.channels)},
      {"causal", Value::of_bool(e.causal)},
      {"n_filters", Value::of_int(e.n_filters)},
      {"n_residual_layers", Value::of_int(e.n_residual_layers)},
      {"ratios", ratios},
      {"norm", Value::of_str(e.norm)},
      {"kernel_size", Value::of_int(e.kernel_size)},
      {"residual_kernel_size", Value::of_int(e.residual_kernel_size)},
      {"last_kernel_size", Value::of_int(e.last_kernel_size)},
      {"dilation_base", Value::of_int(e.dilation_base)},
      {"pad_mode", Value::of_str(e.pad_mode)},
      {"true_skip", Value::of_bool(e.true_skip)},
      {"compress", Value::of_int(e.compress)},
      {"lstm", Value::of_int(e.lstm)}};
  for (const auto& [k, v] : seanet) {
    set_resolved(cfg, "seanet." + k, v);
    for (const char* side : {"encoder", "decoder"})
      if (omegaconf::select_resolved(cfg, std::string("seanet.") + side + "." + k))
        set_resolved(cfg, std::string("seanet.") + side + "." + k, v);
  }
  set_resolved(cfg, "seanet.decoder.trim_right_ratio", Value::of_float(e.trim_right_ratio));
  set_resolved(cfg, "rvq.n_q", Value::of_int(e.n_q));
  set_resolved(cfg, "rvq.bins", Value::of_int(e.bins));
  // AudioCraft has no place for the bandwidths besides the last (n_q):
  // carried in a key its loader does not read, for the way back.
  if (hf_config.contains("target_bandwidths") && hf_config["target_bandwidths"].is_array() &&
      hf_config["target_bandwidths"] != Json::array({encodec_bandwidth(e)})) {
    Value list = Value::empty_seq();
    for (const auto& b : hf_config["target_bandwidths"])
      if (b.is_number()) list.seq.push_back(Value::of_float(b.get<double>()));
    *ensure_path(cfg, kTransformersBandwidths) = list;
  }
  return cfg;
}

// An AudioCraft compression checkpoint's tensors under transformers' names
// (EncodecModel's), checked against its xp.cfg, and the EncodecConfig.
struct AudiocraftEncodec {
  HfTensors tensors;
  Json config;
  Encodec e;
};

AudiocraftEncodec read_audiocraft_encodec(Opened o, const Value& cfg, const std::string& file,
                                          const std::optional<std::string>& state_in) {
  AudiocraftEncodec out;
  out.e = audiocraft::encodec_from_config(cfg);
  const std::string state = o.state_path_or_best(state_in);
  std::vector<TensorRow> rows = o.tensors_of(o.state_dict(state));
  std::map<std::string, const TensorRow*> by_name;
  for (const auto& row : rows)
    if (!by_name.emplace(audiocraft::audiocraft_canonical(row.name), &row).second)
      throw UsageError(file + ": tensor '" + row.name + "' appears under both weight-norm spellings");
  std::set<std::string> used;
  for (const auto& t : audiocraft::encodec_tensors(out.e)) {
    auto it = by_name.find(t.audiocraft);
    if (it == by_name.end())
      throw UsageError(file + ": '" + state + "' has no tensor '" + t.audiocraft +
                       "', which xp.cfg's EnCodec (seanet.*, rvq.n_q " + std::to_string(out.e.n_q) +
                       ") needs; is this an EnCodec compression model?");
    if (it->second->info.shape != t.shape)
      throw UsageError(file + ": tensor '" + it->second->name + "' has shape " + torch::shape_text(it->second->info.shape) +
                       ", but xp.cfg (seanet.*, rvq.bins) gives " + torch::shape_text(t.shape));
    out.tensors.tensors.emplace_back(t.hf, it->second->info);
    used.insert(t.audiocraft);
  }
  for (const auto& [n, row] : by_name)
    if (!used.count(n))
      throw UsageError(file + ": tensor '" + row->name + "' is not part of xp.cfg's EnCodec model; is the config right?");
  out.config = encodec_hf_config(out.e, cfg);
  out.tensors.ck = std::move(o.ck);
  return out;
}

// A Hugging Face tensor by its canonical (parametrizations) name.
struct HfSource {
  const torch::Checkpoint* ck;
  std::string name;  // as stored
  const TensorInfo* t;
};

// Adds `name` -> source to by_name under its canonical name; both spellings
// of one weight are refused.
void add_hf_source(std::map<std::string, HfSource>& by_name, const std::string& canonical, HfSource s) {
  if (!by_name.emplace(canonical, s).second)
    throw UsageError(s.ck->path() + ": tensor '" + s.name + "' appears under both weight-norm spellings");
}

// The exported compression checkpoint (what AudioCraft's export_encodec
// writes: best_state, xp.cfg, version, exported) whose tensors are the
// sources' bytes, in AudioCraft's order. `prefix` is how the folder names
// them ("audio_encoder." in a MusicGen folder).
pickle::Node* encodec_audiocraft_root(RangeSet& ranges, const Encodec& e, const Value& cfg,
                                      const std::map<std::string, HfSource>& by_name, const std::string& dir,
                                      const std::string& prefix, size_t& tensors) {
  pickle::Graph& g = ranges.ck().graph();
  pickle::Node* best = g.dict();
  pickle::Node* storage_word = g.str("storage");
  pickle::Node* cpu = g.str("cpu");
  std::set<std::string> used;
  for (const auto& t : audiocraft::encodec_tensors(e)) {
    auto it = by_name.find(t.hf);
    if (it == by_name.end())
      throw UsageError(dir + ": no tensor '" + prefix + t.hf + "', which AudioCraft's " + t.audiocraft + " comes from");
    const HfSource& s = it->second;
    if (s.t->shape != t.shape)
      throw UsageError(s.ck->path() + ": tensor '" + s.name + "' has shape " + torch::shape_text(s.t->shape) +
                       ", but config.json gives " + torch::shape_text(t.shape));
    TensorInfo o = ranges.add(*s.ck, s.name, *s.t);
    pickle::set_item(g, best, t.audiocraft, torch::make_tensor_node(g, *o.storage, o.shape, false, storage_word, cpu));
    used.insert(t.hf);
  }
  for (const auto& [n, s] : by_name)
    if (!used.count(n))
      throw UsageError(s.ck->path() + ": tensor '" + s.name + "' is not part of config.json's EnCodec model");
  tensors = used.size();
  pickle::Node* root = g.dict();
  pickle::set_item(g, root, "best_state", best);
  pickle::set_item(g, root, "xp.cfg", g.str(omegaconf::to_yaml(cfg)));
  pickle::set_item(g, root, "version", g.str(audiocraft::kDefaultVersion));
  pickle::set_item(g, root, "exported", g.boolean(true));
  g.root = root;
  return root;
}

}  // namespace

// ================================================================ to_transformers

namespace {

// How both to-transformers converters write the model's weights: into the
// output folder's temporary copy (force: it is theirs), converted to dtype
// when given, progress named by the output, and the source's records checked
// alongside the fsync (every range must be added to `ranges` by then).
torch::SafetensorsWriteOptions model_write_options(const ToTransformersOptions& a, std::optional<torch::DType> dtype,
                                                   const RangeSet& ranges) {
  torch::SafetensorsWriteOptions so;
  so.force = true;
  so.float_dtype = dtype;
  so.progress = progress_for(a.progress, a.out);
  so.check_source = ranges.check_sources(a.ignore_crc);
  return so;
}

// FILE is an AudioCraft compression checkpoint: the EncodecModel folder.
// The model's weights as transformers' save_pretrained names them:
// model.safetensors, or shards and their index when max_shard is set.
void write_model_weights(Env& env, RangeSet& ranges, const std::vector<std::pair<std::string, TensorInfo>>& model,
                         FolderReplace& out, uint64_t max_shard, const torch::SafetensorsWriteOptions& so,
                         ToTransformersResult& r) {
  for (const auto& [n, t] : model) r.bytes += torch::safetensors_written_nbytes(t, so);
  r.tensors = model.size();
  if (max_shard) {
    auto w = torch::write_sharded_safetensors(ranges.ck(), model, env, out.path(""), max_shard, so);
    r.files = w.plan.files.size();
    for (const auto& [name, idx] : w.plan.files) r.written.push_back(name);
    if (w.wrote_index) r.written.push_back("model.safetensors.index.json");
  } else {
    torch::write_safetensors(ranges.ck(), model, env, out.path("model.safetensors"), so);
    r.files = 1;
    r.written.push_back("model.safetensors");
  }
}

// The first way the state dict fails the model m (a tensor missing or of
// another shape), with the edit of xp.cfg that fixes it where one does; ""
// when every tensor m needs is there with m's shape.
std::string lm_tensor_problem(const std::string& file, const std::string& state,
                              const std::map<std::string, const TensorRow*>& by_name,
                              const std::vector<TensorRow>& rows, const MusicgenLm& m, int64_t text_dim) {
  for (const std::string& name : audiocraft::audiocraft_lm_names(m)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      // Fewer layers than xp.cfg says: name the count the weights have.
      int64_t layers = 0;
      const std::string prefix = "transformer.layers.";
      for (const auto& row : rows)
        if (row.name.rfind(prefix, 0) == 0) {
          int64_t i = 0;
          size_t p = prefix.size();
          while (p < row.name.size() && row.name[p] >= '0' && row.name[p] <= '9' && i < (int64_t{1} << 40))
            i = i * 10 + (row.name[p++] - '0');
          if (p > prefix.size()) layers = std::max(layers, i + 1);
        }
      std::string fix = name.rfind(prefix, 0) == 0 && layers > 0 && layers < m.num_layers
                            ? "; the weights have " + std::to_string(layers) +
                                  " layers: if xp.cfg is what is wrong, correct it first: ckpt edit " + file +
                                  " -o OUT transformer_lm.num_layers=" + std::to_string(layers)
                            : "; is this a MusicGen language model?";
      return file + ": '" + state + "' has no tensor '" + name + "', which xp.cfg's model (" +
             (m.melody ? "MusicGen Melody" : "MusicGen") + ", " + std::to_string(m.num_layers) +
             " layers, n_q " + std::to_string(m.n_q) + ") needs" + fix;
    }
    std::vector<int64_t> want = expected_shape(name, m, text_dim);
    const std::vector<int64_t>& have = it->second->info.shape;
    if (have != want) {
      // The usual cause: a config that does not describe these weights (a
      // toy model with the stock config); the fix is an edit of xp.cfg.
      std::string set = "KEY=VALUE";
      if (config_source(name, m) == "transformer_lm.dim" && !have.empty() && have.size() == want.size() &&
          want[0] == m.dim)
        set = "transformer_lm.dim=" + std::to_string(have[0]);
      else if (have.size() == 2 && want.size() == 2 && have[1] == want[1] &&
               (name.rfind("emb.", 0) == 0 || name.rfind("linears.", 0) == 0))
        set = "transformer_lm.card=" + std::to_string(name.rfind("emb.", 0) == 0 ? have[0] - 1 : have[0]);
      return file + ": tensor '" + name + "' has shape " + torch::shape_text(have) + ", but xp.cfg (" +
             config_source(name, m) + ") gives " + torch::shape_text(want) +
             "; if xp.cfg is what is wrong, correct it first: ckpt edit " + file + " -o OUT " + set;
    }
  }
  return "";
}

// The T5 and EnCodec folders (or AudioCraft compression checkpoint) of
// --text-encoder and --audio-encoder, checked against the model m.
struct Encoders {
  Json text_cfg, audio_cfg;
  std::optional<HfTensors> text, audio;
  int64_t frame_rate = audiocraft::kStockFrameRate;
};

Encoders read_encoders(Env& env, const ToTransformersOptions& a, const MusicgenLm& m, int64_t text_dim) {
  Encoders r;
  Json& text_cfg = r.text_cfg;
  Json& audio_cfg = r.audio_cfg;
  std::optional<HfTensors>& text = r.text;
  std::optional<HfTensors>& audio = r.audio;
  if (!a.text_encoder.empty()) {
    text_cfg = read_json(env, join(a.text_encoder, "config.json"));
    if (text_cfg.value("model_type", "") != "t5")
      throw UsageError(a.text_encoder + "/config.json: model_type is '" + text_cfg.value("model_type", "") +
                       "', not t5; " + option_name("text_encoder") + " takes a Hugging Face T5 folder");
    int64_t d_model = text_cfg.value("d_model", int64_t{0});
    if (d_model != text_dim)
      throw UsageError(a.text_encoder + "/config.json: d_model = " + std::to_string(d_model) +
                       ", but the text projection condition_provider.conditioners.description.output_proj.weight has shape " +
                       torch::shape_text({m.dim, text_dim}) + " (it takes " + std::to_string(text_dim) +
                       "-wide T5 states): give the T5 xp.cfg names ('" + m.text_encoder_name + "')");
    if (d_model == m.dim)
      throw UsageError("the T5 width equals transformer_lm.dim (" + std::to_string(m.dim) +
                       "): transformers' MusicGen then has no enc_to_dec_proj to hold AudioCraft's text projection");
    if (m.melody && m.num_chroma == m.dim)
      throw UsageError("conditioners.self_wav.chroma_stem.n_chroma equals transformer_lm.dim (" + std::to_string(m.dim) +
                       "): transformers' MusicgenMelody then has no audio_enc_to_dec_proj to hold the chroma projection");
    text = read_hf_tensors(env, a.text_encoder);
  }
  if (!a.audio_encoder.empty()) {
    if (!env.is_directory(a.audio_encoder)) {
      // An AudioCraft compression checkpoint, converted as to-transformers converts it alone.
      Opened co = open_checkpoint(env, a.audio_encoder);
      Value ccfg = audiocraft::config_tree(co.ck->root());
      if (!audiocraft::is_compression_config(ccfg))
        throw UsageError(option_name("audio_encoder") + " '" + a.audio_encoder +
                         "': its xp.cfg has no compression_model; expected a transformers EncodecModel folder or an "
                         "AudioCraft compression checkpoint");
      AudiocraftEncodec ae = read_audiocraft_encodec(std::move(co), ccfg, a.audio_encoder, std::nullopt);
      audio_cfg = std::move(ae.config);
      audio = std::move(ae.tensors);
    } else {
      audio_cfg = read_json(env, join(a.audio_encoder, "config.json"));
    }
    if (audio_cfg.value("model_type", "") != "encodec")
      throw UsageError(a.audio_encoder + "/config.json: model_type is '" + audio_cfg.value("model_type", "") +
                       "', not encodec");
    if (audio_cfg.value("codebook_size", int64_t{0}) != m.card)
      throw UsageError(a.audio_encoder + "/config.json: codebook_size = " +
                       std::to_string(audio_cfg.value("codebook_size", int64_t{0})) +
                       ", but xp.cfg's transformer_lm.card = " + std::to_string(m.card));
    if (audio_cfg.value("audio_channels", int64_t{1}) != 1 && audio_cfg.value("audio_channels", int64_t{1}) != m.channels)
      throw UsageError(a.audio_encoder + "/config.json: audio_channels disagrees with xp.cfg's channels");
    r.frame_rate = encodec_frame_rate(audio_cfg, a.audio_encoder + "/config.json");
    if (!audio) audio = read_hf_tensors(env, a.audio_encoder);
  }
  if (text.has_value() != audio.has_value())
    throw UsageError("the composite model needs both " + option_name("text_encoder") + " and " + option_name("audio_encoder") + "; without both, "
                     "to-transformers writes the decoder alone");
  return r;
}

// A size xp.cfg gives that the weights contradict: the key, xp.cfg's value,
// the value the weights imply (the override's value) and the tensor that says so.
struct SettingFix {
  std::string key, config, weights, why;
  std::string claim = {};  // instead of "KEY = CONFIG, the weights' WEIGHTS" where the weights do not give it
};

// hidden_scale as AudioCraft applies it, int(dim * hidden_scale) = ffn: the
// shortest decimal that gives ffn.
std::string hidden_scale_for(int64_t dim, int64_t ffn) {
  double s = static_cast<double>(ffn) / static_cast<double>(dim);
  for (int i = 0; i < 64 && static_cast<int64_t>(static_cast<double>(dim) * s) < ffn; ++i) s = std::nextafter(s, HUGE_VAL);
  char buf[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, s);
    if (static_cast<int64_t>(static_cast<double>(dim) * std::strtod(buf, nullptr)) == ffn) break;
  }
  return buf;
}

std::string number_text(double d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

// The sizes the weights give (width, codebook size, codebooks, layers,
// feed-forward width, chroma bins, read off emb.0.weight, the layers and
// the projections), each one xp.cfg's model m gets wrong; `fixed` is m with
// the weights' sizes. Nothing when the weights do not give them plainly
// (no 2-d emb.0.weight, linears.0.weight that disagrees, no layers): the
// per-tensor check then names the first tensor that does not fit.
std::vector<SettingFix> settings_from_weights(const std::map<std::string, const TensorRow*>& by_name,
                                              const MusicgenLm& m, int64_t text_dim, MusicgenLm& fixed) {
  fixed = m;
  auto shape = [&](const std::string& name) -> const std::vector<int64_t>* {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &it->second->info.shape;
  };
  const std::vector<int64_t>* emb = shape("emb.0.weight");
  if (!emb || emb->size() != 2 || (*emb)[0] < 2 || (*emb)[1] < 1) return {};
  const int64_t dim = (*emb)[1], card = (*emb)[0] - 1;
  if (dim > (int64_t{1} << 40) || card > (int64_t{1} << 40)) return {};  // no model's; 3 * dim must not overflow
  if (const auto* head = shape("linears.0.weight"); head && *head != std::vector<int64_t>{card, dim}) return {};
  int64_t n_q = 0;
  while (n_q < (int64_t{1} << 20) && shape("emb." + std::to_string(n_q) + ".weight")) ++n_q;
  int64_t layers = 0;
  const std::string prefix = "transformer.layers.";
  for (auto it = by_name.lower_bound(prefix); it != by_name.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    int64_t i = 0;
    size_t p = prefix.size();
    while (p < it->first.size() && it->first[p] >= '0' && it->first[p] <= '9' && i < (int64_t{1} << 40))
      i = i * 10 + (it->first[p++] - '0');
    if (p > prefix.size()) layers = std::max(layers, i + 1);
  }
  if (layers == 0) return {};

  std::vector<SettingFix> fixes;
  auto emb_is = [&] {
    return "emb.0.weight is " + torch::shape_text(*emb) + ", xp.cfg's " +
           torch::shape_text(expected_shape("emb.0.weight", m, text_dim));
  };
  if (dim != m.dim) fixes.push_back({"transformer_lm.dim", std::to_string(m.dim), std::to_string(dim), emb_is()});
  if (dim % m.num_heads != 0)
    fixes.push_back({"transformer_lm.num_heads", std::to_string(m.num_heads), "H",
                     "the weights do not give the head count: H is the one the model was trained with",
                     "transformer_lm.num_heads = " + std::to_string(m.num_heads) + " does not divide the width " +
                         std::to_string(dim)});
  if (card != m.card)
    fixes.push_back({"transformer_lm.card", std::to_string(m.card), std::to_string(card), emb_is() + ": card + 1 rows"});
  if (n_q != m.n_q) {
    fixes.push_back({"transformer_lm.n_q", std::to_string(m.n_q), std::to_string(n_q),
                     "emb.0 to emb." + std::to_string(n_q - 1)});
    fixes.push_back({"codebooks_pattern.delay.delays", audiocraft::delay_pattern_text(m.n_q, m.channels),
                     audiocraft::delay_pattern_text(n_q, m.channels), "the delay pattern for n_q = " + std::to_string(n_q)});
  }
  if (layers != m.num_layers)
    fixes.push_back({"transformer_lm.num_layers", std::to_string(m.num_layers), std::to_string(layers),
                     layers < m.num_layers ? "no transformer.layers." + std::to_string(layers)
                                           : "transformer.layers.0 to " + std::to_string(layers - 1)});
  fixed.dim = dim;
  fixed.card = card;
  fixed.n_q = n_q;
  fixed.num_layers = layers;
  const double ffn = static_cast<double>(dim) * m.hidden_scale;  // int() as AudioCraft, where it fits
  fixed.ffn_dim = ffn >= 0 && ffn < 0x1p62 ? static_cast<int64_t>(ffn) : -1;
  const std::string ff = "transformer.layers.0.linear1.weight";
  if (const auto* w = shape(ff); w && w->size() == 2 && (*w)[0] > 0 && (*w)[0] < (int64_t{1} << 52) &&
                                  dim < (int64_t{1} << 52) && (*w)[0] != fixed.ffn_dim) {
    fixes.push_back({"transformer_lm.hidden_scale", number_text(m.hidden_scale), hidden_scale_for(dim, (*w)[0]),
                     ff + " is " + torch::shape_text(*w) + ": int(dim * hidden_scale) rows"});
    fixed.ffn_dim = (*w)[0];
  }
  const std::string chroma = "condition_provider.conditioners.self_wav.output_proj.weight";
  if (const auto* w = shape(chroma); m.melody && w && w->size() == 2 && (*w)[1] > 0 && (*w)[1] != m.num_chroma) {
    fixes.push_back({"conditioners.self_wav.chroma_stem.n_chroma", std::to_string(m.num_chroma),
                     std::to_string((*w)[1]), chroma + " is " + torch::shape_text(*w)});
    fixed.num_chroma = (*w)[1];
  }
  return fixes;
}
ToTransformersResult encodec_to_transformers(Env& env, Opened o, const Value& cfg, const std::string& file,
                                             const ToTransformersOptions& a, std::optional<torch::DType> dtype,
                                             uint64_t max_shard) {
  if (!a.text_encoder.empty() || !a.audio_encoder.empty())
    throw UsageError(file + " is an EnCodec compression model (xp.cfg's compression_model): " +
                     option_name("text_encoder") + " and " + option_name("audio_encoder") +
                     " apply to a MusicGen language model");
  AudiocraftEncodec ae = read_audiocraft_encodec(std::move(o), cfg, file, a.state);
  ToTransformersResult r;
  r.out = a.out;
  r.architecture = "EncodecModel";
  RangeSet ranges(env, a.out);
  std::vector<std::pair<std::string, TensorInfo>> model;
  for (const auto& [n, t] : ae.tensors.tensors) model.emplace_back(n, ranges.add(*ae.tensors.ck, n, t));

  FolderReplace out = output_folder(env, a.out, a.force);
  torch::SafetensorsWriteOptions so = model_write_options(a, dtype, ranges);
  write_model_weights(env, ranges, model, out, max_shard, so, r);
  Json config = ae.config;
  config["torch_dtype"] = torch_dtype_name(dtype ? &torch::info(*dtype) : model.front().second.dtype);
  write_text(env, out.path("config.json"), json_text(config));
  r.written.push_back("config.json");
  out.commit();
  r.notes.push_back("EnCodec: " + std::to_string(ae.e.n_q) + " codebooks of " + std::to_string(ae.e.bins) +
                    " at " + std::to_string(ae.e.sample_rate) + " Hz, weight norm as parametrizations.weight.original0/1");
  return r;
}

}  // namespace

ToTransformersResult to_transformers(Env& env, const std::string& file_in, const ToTransformersOptions& a) {
  std::string file = file_in;
  if (env.is_directory(file)) {
    file = join(file_in, "state_dict.bin");
    if (!env.exists(file) && env.exists(join(file_in, "compression_state_dict.bin")))
      file = join(file_in, "compression_state_dict.bin");  // a from-transformers EnCodec folder
    if (!env.exists(file))
      throw UsageError(file_in + " is a folder without state_dict.bin or compression_state_dict.bin (a 'ckpt bundle' "
                       "folder has them)");
  }
  std::optional<torch::DType> dtype;
  if (!a.dtype.empty()) {
    const torch::DTypeInfo* d = dtype_option(a.dtype);
    if (!d || !(d->dtype == torch::DType::Float32 || d->dtype == torch::DType::Float16 || d->dtype == torch::DType::BFloat16))
      throw UsageError(option_name("dtype") + " '" + a.dtype + "': expected float32, float16 or bfloat16");
    dtype = d->dtype;
  }
  uint64_t max_shard = a.max_shard_size.empty() ? 0 : torch::parse_shard_size(a.max_shard_size);

  Opened o = open_checkpoint(env, file);
  Value cfg = audiocraft::config_tree(o.ck->root());
  if (audiocraft::is_compression_config(cfg)) return encodec_to_transformers(env, std::move(o), cfg, file, a, dtype, max_shard);
  MusicgenLm m = audiocraft::musicgen_from_config(cfg);
  std::string state = o.state_path_or_best(a.state);
  pickle::Node* sd = o.state_dict(state);
  std::vector<TensorRow> rows = o.tensors_of(sd);

  ToTransformersResult r;
  r.out = a.out;
  r.melody = m.melody;
  // Every tensor the model needs, with the shape xp.cfg implies.
  std::map<std::string, const TensorRow*> by_name;
  for (const auto& row : rows) by_name[row.name] = &row;
  int64_t text_dim = 0;
  {
    auto it = by_name.find("condition_provider.conditioners.description.output_proj.weight");
    if (it != by_name.end() && it->second->info.shape.size() == 2) text_dim = it->second->info.shape[1];
  }
  // xp.cfg must describe these weights. Every size it gets wrong is refused at
  // once, with the one edit that corrects them all and whatever would still
  // block the conversion after it (the encoders given as options).
  MusicgenLm fixed;
  std::vector<SettingFix> fixes = settings_from_weights(by_name, m, text_dim, fixed);
  if (!fixes.empty()) {
    std::string msg = file + ": xp.cfg does not describe the weights of '" + state + "': ";
    std::string edit;
    for (size_t i = 0; i < fixes.size(); ++i) {
      const SettingFix& f = fixes[i];
      msg += (i ? "; " : "") + (f.claim.empty() ? f.key + " = " + f.config + ", the weights' " + f.weights : f.claim) +
             " (" + f.why + ")";
      edit += " " + f.key + "=" + f.weights;
    }
    msg += "; if xp.cfg is what is wrong, correct " + std::string(fixes.size() > 1 ? "them all" : "it") +
           " first: ckpt edit " + file + " -o OUT" + edit;
    if (std::string rest = lm_tensor_problem(file, state, by_name, rows, fixed, text_dim); !rest.empty()) {
      msg += "; even then: " + rest;
    } else {
      try {
        (void)read_encoders(env, a, fixed, text_dim);
      } catch (const Error& e) {
        msg += "; then also: " + std::string(e.what());
      }
    }
    throw UsageError(msg);
  }
  if (std::string problem = lm_tensor_problem(file, state, by_name, rows, m, text_dim); !problem.empty())
    throw UsageError(problem);

  // The encoders.
  Encoders enc = read_encoders(env, a, m, text_dim);
  Json& text_cfg = enc.text_cfg;
  Json& audio_cfg = enc.audio_cfg;
  std::optional<HfTensors>& text = enc.text;
  std::optional<HfTensors>& audio = enc.audio;
  const int64_t frame_rate = enc.frame_rate;
  const bool composite = text && audio;
  r.decoder_only = !composite;
  r.architecture = composite ? (m.melody ? "MusicgenMelodyForConditionalGeneration" : "MusicgenForConditionalGeneration")
                             : (m.melody ? "MusicgenMelodyForCausalLM" : "MusicgenForCausalLM");

  // The output tensors, in the model's order.
  RangeSet ranges(env, a.out);
  std::vector<std::pair<std::string, TensorInfo>> model, projections;
  const std::string dec_prefix = composite ? "decoder." : "";
  std::vector<std::pair<std::string, TensorInfo>> proj_part;
  for (const std::string& name : audiocraft::audiocraft_lm_names(m)) {
    const TensorRow& row = *by_name.at(name);
    audiocraft::HfMapping map = audiocraft::hf_mapping(name, m.dim);
    for (const auto& p : map.pieces) {
      TensorInfo t = ranges.add(*o.ck, name, row.info, p.row_begin, p.row_end);
      if (map.part == audiocraft::HfPart::Decoder)
        model.emplace_back(dec_prefix + p.name, std::move(t));
      else
        proj_part.emplace_back(p.name, std::move(t));
    }
  }
  // Anything else in the state dict must be a tensor transformers computes.
  std::set<std::string> expected;
  for (const auto& n : audiocraft::audiocraft_lm_names(m)) expected.insert(n);
  for (const auto& row : rows)
    if (!expected.count(row.name) && audiocraft::hf_mapping(row.name, m.dim).part != audiocraft::HfPart::Dropped)
      throw UsageError(file + ": tensor '" + row.name + "' is not part of xp.cfg's model; is the config right?");

  if (composite) {
    for (auto& p : proj_part) model.push_back(std::move(p));
    bool have_shared = false;
    for (const auto& [n, t] : text->tensors) have_shared |= n == "shared.weight";
    for (const auto& [n, t] : text->tensors) {
      std::string out;
      if (n == "shared.weight") out = "shared.weight";
      else if (n == "encoder.embed_tokens.weight") out = have_shared ? "" : "shared.weight";
      else if (n.rfind("encoder.", 0) == 0) out = n;
      if (out.empty()) continue;  // the T5 decoder and LM head; the tied embedding
      model.emplace_back("text_encoder." + out, ranges.add(*text->ck, n, t));
    }
    for (const auto& [n, t] : audio->tensors)
      model.emplace_back("audio_encoder." + audiocraft::hf_canonical(n), ranges.add(*audio->ck, n, t));
  } else {
    projections = std::move(proj_part);
  }

  FolderReplace out = output_folder(env, a.out, a.force);
  // Every range (the projections' too) is added by now: checked once, alongside the model's fsync.
  torch::SafetensorsWriteOptions so = model_write_options(a, dtype, ranges);
  const torch::DTypeInfo* out_dtype = dtype ? &torch::info(*dtype) : model.front().second.dtype;
  write_model_weights(env, ranges, model, out, max_shard, so, r);
  if (!projections.empty()) {
    so.progress = nullptr;
    so.check_source = nullptr;
    torch::write_safetensors(ranges.ck(), projections, env, out.path(kProjectionsFile), so);
    r.written.push_back(kProjectionsFile);
  }

  // config.json and generation_config.json.
  double dropout = 0.0;
  if (auto d = cfg.find("transformer_lm"); d && d->find("dropout") && d->find("dropout")->type == Value::Type::Float)
    dropout = d->find("dropout")->real;
  Json dec = decoder_config(m, dropout);
  Json config;
  if (composite) {
    config["architectures"] = Json::array({r.architecture});
    Json enc = audio_cfg;
    enc.erase("architectures");
    enc.erase("transformers_version");
    enc.erase("torch_dtype");
    enc.erase("dtype");
    config["audio_encoder"] = enc;
    if (m.melody) config["chroma_length"] = m.chroma_length;
    config["decoder"] = dec;
    config["is_encoder_decoder"] = !m.melody;
    config["model_type"] = m.melody ? "musicgen_melody" : "musicgen";
    if (m.melody) config["num_chroma"] = m.num_chroma;
    Json t5 = text_cfg;
    t5.erase("architectures");
    t5.erase("transformers_version");
    t5.erase("torch_dtype");
    t5.erase("dtype");
    if (!t5.contains("_name_or_path")) t5["_name_or_path"] = m.text_encoder_name;
    config["text_encoder"] = t5;
    config["torch_dtype"] = torch_dtype_name(out_dtype);
  } else {
    config = dec;
    config["architectures"] = Json::array({r.architecture});
    config["torch_dtype"] = torch_dtype_name(out_dtype);
    if (m.melody) {
      config["num_chroma"] = m.num_chroma;
      config["chroma_length"] = m.chroma_length;
    }
    config["text_encoder_name"] = m.text_encoder_name;
  }
  config[kConfigCarry] = omegaconf::to_yaml(cfg);
  write_text(env, out.path("config.json"), json_text(config));
  r.written.push_back("config.json");
  write_text(env, out.path("generation_config.json"), json_text(generation_config(m, frame_rate)));
  r.written.push_back("generation_config.json");
  out.commit();

  if (!composite) {
    r.notes.push_back(std::string("decoder only (") + r.architecture + "): " +
                      (text ? "" : "no " + option_name("text_encoder") + " (the T5 xp.cfg names: '" + m.text_encoder_name + "')") +
                      (!text && !audio ? ", " : "") +
                      (audio ? "" : "no " + option_name("audio_encoder") + " (a transformers EnCodec folder)") +
                      "; the text projection" + (m.melody ? " and the chroma projection are" : " is") + " in " +
                      kProjectionsFile);
    if (a.audio_encoder.empty())
      r.notes.push_back("generation_config.json's max_length assumes AudioCraft's 32 kHz EnCodec (50 frames/s)");
  }
  return r;
}

// ================================================================ from_transformers

namespace {


// The chroma2music conditioner AudioCraft's Melody configs use
// (config/conditioner/chroma2music.yaml).
void make_melody_config(Value& cfg, int64_t num_chroma) {
  Value melody = omegaconf::parse_yaml(R"(classifier_free_guidance:
  training_dropout: 0.2
  inference_coef: 3.0
attribute_dropout:
  args:
    active_on_eval: false
  text: {}
  wav:
    self_wav: 0.5
fuser:
  cross_attention_pos_emb: false
  cross_attention_pos_emb_scale: 1
  sum: []
  prepend: [self_wav, description]
  cross: []
  input_interpolate: []
conditioners:
  self_wav:
    model: chroma_stem
    chroma_stem:
      sample_rate: ${sample_rate}
      n_chroma: 12
      radix2_exp: 14
      argmax: true
      match_len_on_eval: false
      eval_wavs: null
      n_eval_wavs: 100
      cache_path: null
  description:
    model: t5
    t5:
      name: t5-base
      finetune: false
      word_dropout: 0.2
      normalize_text: false
)");
  for (auto& [k, v] : melody.map) *ensure_path(cfg, k.str) = v;
  set_key(cfg, "conditioners.self_wav.chroma_stem.n_chroma", Value::of_int(num_chroma));
}

// The Hann window torchaudio's Spectrogram registers (torch.hann_window(n),
// periodic): 0.5 - 0.5 cos(2 pi k / n), rounded to float32.
std::string hann_window_bytes(int64_t n) {
  std::string out(static_cast<size_t>(n) * 4, '\0');
  for (int64_t k = 0; k < n; ++k) {
    float v = static_cast<float>(0.5 - 0.5 * std::cos(2.0 * M_PI * static_cast<double>(k) / static_cast<double>(n)));
    std::memcpy(out.data() + k * 4, &v, 4);
  }
  return out;
}

}  // namespace

namespace {

// DIR is a transformers EncodecModel folder: OUT/compression_state_dict.bin.
FromTransformersResult encodec_from_transformers(Env& env, const std::string& dir, const Json& config,
                                                 const FromTransformersOptions& a) {
  const std::string cfg_path = join(dir, "config.json");
  if (!a.compression.empty())
    throw UsageError(dir + " is an EnCodec model (model_type encodec): " + option_name("compression") +
                     " applies to a MusicGen folder");
  Encodec e = encodec_from_hf(config, cfg_path);
  Value cfg = encodec_xp_cfg(e, config);
  e = audiocraft::encodec_from_config(cfg);  // the carried config must describe these tensors
  HfTensors hf = read_hf_tensors(env, dir);
  std::map<std::string, HfSource> by_name;
  for (const auto& [n, t] : hf.tensors) add_hf_source(by_name, audiocraft::hf_canonical(n), HfSource{hf.ck.get(), n, &t});
  FromTransformersResult r;
  r.out = a.out;
  RangeSet ranges(env, join(a.out, "compression_state_dict.bin"));
  pickle::Node* root = encodec_audiocraft_root(ranges, e, cfg, by_name, dir, "", r.tensors);
  r.compression = "EnCodec (" + std::to_string(e.n_q) + " codebooks of " + std::to_string(e.bins) + ")";
  FolderReplace out = output_folder(env, a.out, a.force);
  OutputOptions oo;
  oo.out = out.path("compression_state_dict.bin");
  oo.force = true;
  oo.progress = a.progress;
  write_checkpoint(ranges.ck(), root, env, oo, {}, ranges.check_sources(a.ignore_crc));
  r.written.push_back("compression_state_dict.bin");
  out.commit();
  r.notes.push_back("EnCodec: CompressionModel.get_pretrained(OUT) loads the folder (weight norm as weight_g / weight_v)");
  return r;
}

}  // namespace

FromTransformersResult from_transformers(Env& env, const std::string& dir, const FromTransformersOptions& a) {
  if (!env.is_directory(dir)) throw UsageError(dir + " is not a folder: from-transformers reads a Hugging Face model folder");
  const std::string cfg_path = join(dir, "config.json");
  Json config = read_json(env, cfg_path);
  std::string model_type = config.value("model_type", "");
  if (model_type == "encodec") return encodec_from_transformers(env, dir, config, a);
  const bool composite = model_type == "musicgen" || model_type == "musicgen_melody";
  if (!composite && model_type != "musicgen_decoder" && model_type != "musicgen_melody_decoder")
    throw UsageError(cfg_path + ": model_type '" + model_type +
                     "' is neither MusicGen (musicgen, musicgen_melody, or their _decoder) nor EnCodec (encodec)");
  FromTransformersResult r;
  r.out = a.out;
  r.melody = model_type.find("melody") != std::string::npos;
  const Json& dec = composite ? need_key(config, "decoder", cfg_path) : config;
  const std::string dwhere = composite ? cfg_path + " (decoder)" : cfg_path;

  MusicgenLm m;
  m.melody = r.melody;
  m.cross_attention = !r.melody;
  m.dim = need_json_int(dec, "hidden_size", dwhere);
  m.num_heads = need_json_int(dec, "num_attention_heads", dwhere);
  m.num_layers = need_json_int(dec, "num_hidden_layers", dwhere);
  m.ffn_dim = need_json_int(dec, "ffn_dim", dwhere);
  m.n_q = need_json_int(dec, "num_codebooks", dwhere);
  m.card = need_json_int(dec, "vocab_size", dwhere);
  m.channels = dec.value("audio_channels", int64_t{1});
  if (dec.value("activation_function", std::string("gelu")) != "gelu")
    throw UsageError(dwhere + ": activation_function '" + dec.value("activation_function", std::string()) +
                     "', but AudioCraft's MusicGen uses gelu");
  if (dec.value("scale_embedding", false))
    throw UsageError(dwhere + ": scale_embedding is true, but AudioCraft's MusicGen does not scale embeddings");
  if (dec.value("tie_word_embeddings", false))
    throw UsageError(dwhere + ": tie_word_embeddings is true, but AudioCraft's MusicGen has untied heads");
  if (dec.contains("cross_attention_hidden_size") && !dec["cross_attention_hidden_size"].is_null())
    throw UsageError(dwhere + ": cross_attention_hidden_size is set, which AudioCraft's MusicGen cannot express");
  if (m.dim <= 0 || m.num_heads <= 0 || m.dim % m.num_heads || m.n_q <= 0 || m.card <= 0 || m.num_layers <= 0 ||
      m.ffn_dim <= 0 || (m.channels != 1 && m.channels != 2))
    throw UsageError(dwhere + ": hidden_size, num_attention_heads, num_hidden_layers, ffn_dim, num_codebooks, "
                     "vocab_size or audio_channels out of range");
  if (r.melody) m.num_chroma = config.value("num_chroma", int64_t{12});

  // The tensors: the model's, and for a decoder-only folder the projections beside it.
  HfTensors hf = read_hf_tensors(env, dir);
  std::optional<HfTensors> proj;
  if (!composite) {
    std::string p = join(dir, kProjectionsFile);
    if (!env.exists(p))
      throw UsageError(dir + " is a decoder-only folder without " + kProjectionsFile +
                       ": AudioCraft's model needs the text projection (condition_provider.conditioners.description."
                       "output_proj), which MusicgenForCausalLM does not hold");
    proj = tensors_of_checkpoint(torch::checkpoint_from_safetensors(env, p));
  }
  struct Source {
    const torch::Checkpoint* ck;
    std::string hf_name;
    const TensorInfo* t;
  };
  std::map<std::string, std::array<std::optional<Source>, 3>> qkv;  // AudioCraft name -> q, k, v
  std::map<std::string, Source> whole;
  size_t skipped_text = 0, skipped_audio = 0;
  std::map<std::string, HfSource> audio_sources;  // EnCodec's tensors, by canonical name
  auto take = [&](const HfTensors& h) {
    for (const auto& [n, t] : h.tensors) {
      if (n.rfind("text_encoder.", 0) == 0) {
        ++skipped_text;
        continue;
      }
      if (n.rfind("audio_encoder.", 0) == 0) {
        ++skipped_audio;
        add_hf_source(audio_sources, audiocraft::hf_canonical(n.substr(14)), HfSource{h.ck.get(), n, &t});
        continue;
      }
      std::string rel = n;
      if (composite && rel.rfind("decoder.", 0) != 0 && rel.rfind("enc_to_dec_proj.", 0) != 0 &&
          rel.rfind("audio_enc_to_dec_proj.", 0) != 0)
        throw UsageError(h.ck->path() + ": tensor '" + n + "' is not part of transformers' MusicGen");
      auto slot = audiocraft::audiocraft_name(rel);
      if (!slot) throw UsageError(h.ck->path() + ": tensor '" + n + "' has no counterpart in AudioCraft's MusicGen");
      Source s{h.ck.get(), n, &t};
      if (slot->qkv >= 0) qkv[slot->name][slot->qkv] = s;
      else whole.emplace(slot->name, s);
    }
  };
  take(hf);
  if (proj) take(*proj);

  int64_t text_dim = 0;
  if (auto it = whole.find("condition_provider.conditioners.description.output_proj.weight");
      it != whole.end() && it->second.t->shape.size() == 2)
    text_dim = it->second.t->shape[1];
  if (text_dim == 0)
    throw UsageError(dir + ": no enc_to_dec_proj.weight (transformers leaves it out when the text encoder is as wide "
                     "as the decoder), but AudioCraft's MusicGen always projects the T5 states");
  if (composite && config.contains("text_encoder") && config["text_encoder"].contains("d_model") &&
      config["text_encoder"]["d_model"] != text_dim)
    throw UsageError(cfg_path + ": text_encoder.d_model disagrees with enc_to_dec_proj.weight's width " +
                     std::to_string(text_dim));

  // xp.cfg: the one to_transformers carried, else AudioCraft's defaults;
  // then config.json's values over it.
  Value cfg;
  bool carried = config.contains(kConfigCarry) && config[kConfigCarry].is_string();
  if (carried) {
    cfg = omegaconf::parse_yaml(config[kConfigCarry].get<std::string>());
  } else {
    cfg = audiocraft::musicgen_default_config();
    if (r.melody) make_melody_config(cfg, m.num_chroma);
  }
  set_key(cfg, "transformer_lm.dim", Value::of_int(m.dim));
  set_key(cfg, "transformer_lm.num_heads", Value::of_int(m.num_heads));
  set_key(cfg, "transformer_lm.num_layers", Value::of_int(m.num_layers));
  set_key(cfg, "transformer_lm.hidden_scale", number(static_cast<double>(m.ffn_dim) / static_cast<double>(m.dim)));
  if (static_cast<int64_t>(m.dim * (static_cast<double>(m.ffn_dim) / static_cast<double>(m.dim))) != m.ffn_dim)
    throw UsageError(dwhere + ": ffn_dim " + std::to_string(m.ffn_dim) + " is not int(hidden_size * scale) for any "
                     "scale AudioCraft's transformer_lm.hidden_scale can hold");
  set_key(cfg, "transformer_lm.n_q", Value::of_int(m.n_q));
  set_key(cfg, "transformer_lm.card", Value::of_int(m.card));
  set_key(cfg, "channels", Value::of_int(m.channels));
  {
    Value delays = Value::empty_seq();
    for (int64_t k = 0; k < m.n_q; ++k) delays.seq.push_back(Value::of_int(m.channels == 2 ? k / 2 : k));
    set_key(cfg, "codebooks_pattern.delay.delays", delays);
  }
  if (r.melody) set_key(cfg, "conditioners.self_wav.chroma_stem.n_chroma", Value::of_int(m.num_chroma));
  if (!carried) {
    if (composite && config["text_encoder"].contains("_name_or_path") && config["text_encoder"]["_name_or_path"].is_string() &&
        !config["text_encoder"]["_name_or_path"].get<std::string>().empty())
      set_key(cfg, "conditioners.description.t5.name", Value::of_str(config["text_encoder"]["_name_or_path"].get<std::string>()));
    std::string gpath = join(dir, "generation_config.json");
    if (env.exists(gpath)) {
      Json gen = read_json(env, gpath);
      int64_t fr = composite && config.contains("audio_encoder")
                       ? encodec_frame_rate(config["audio_encoder"], cfg_path + " (audio_encoder)")
                       : audiocraft::kStockFrameRate;
      if (gen.contains("guidance_scale") && gen["guidance_scale"].is_number())
        set_key(cfg, "classifier_free_guidance.inference_coef", number(gen["guidance_scale"].get<double>()));
      if (gen.contains("max_length") && gen["max_length"].is_number_integer() && fr > 0)
        set_key(cfg, "dataset.segment_duration", number(static_cast<double>(gen["max_length"].get<int64_t>()) / fr));
    }
  }
  // The carried config must describe these tensors (an edit of config.json
  // that AudioCraft's model cannot express is refused here).
  MusicgenLm check = audiocraft::musicgen_from_config(cfg);
  if (check.melody != m.melody)
    throw UsageError(cfg_path + ": " + kConfigCarry + " describes " + (check.melody ? "a Melody" : "a non-Melody") +
                     " model, config.json the other");
  if (r.melody && config.contains("chroma_length") && config["chroma_length"].is_number_integer() &&
      config["chroma_length"].get<int64_t>() != check.chroma_length)
    r.notes.push_back("config.json's chroma_length " + std::to_string(config["chroma_length"].get<int64_t>()) +
                      " is not what xp.cfg gives (" + std::to_string(check.chroma_length) +
                      ": dataset.segment_duration, chroma_stem.radix2_exp); AudioCraft derives it from those");
  m = check;

  // The state dict, in AudioCraft's order.
  std::unique_ptr<torch::Checkpoint> out_ck = torch::Checkpoint::create(join(a.out, "state_dict.bin"));
  pickle::Graph& g = out_ck->graph();
  pickle::Node* best = g.dict();
  pickle::Node* storage_word = g.str("storage");
  pickle::Node* cpu = g.str("cpu");
  std::map<std::string, torch::StorageTransform> transforms;
  std::map<std::string, std::shared_ptr<RandomAccessFile>> files;
  auto shared = [&](RandomAccessFile& f) {
    auto it = files.find(f.path());
    if (it == files.end()) it = files.emplace(f.path(), env.open_read(f.path())).first;
    return it->second;
  };
  struct Range {
    RandomAccessFile* file;
    uint64_t offset, size;
  };
  SourceRecords sources;  // checked while state_dict.bin is fsync'd
  auto range_of = [&](const Source& s) {
    const TensorInfo& t = *s.t;
    if (!t.is_plain() || !t.is_contiguous() || !t.storage)
      throw UsageError(s.ck->path() + ": tensor '" + s.hf_name + "' is not a dense contiguous tensor");
    auto loc = torch::locate_storage(*s.ck, *t.storage);
    if (loc.compressed()) throw UsageError(s.ck->path() + ": tensor '" + s.hf_name + "' is in a compressed record");
    sources.add(*s.ck, loc);
    return Range{shared(*loc.file).get(), loc.offset + static_cast<uint64_t>(t.storage_offset) * t.dtype->element_size,
                 t.nbytes()};
  };
  size_t key = 0;
  const torch::DTypeInfo* model_dtype = nullptr;
  std::set<std::string> used;
  for (const std::string& name : audiocraft::audiocraft_lm_names(m)) {
    std::vector<int64_t> want = expected_shape(name, m, text_dim);
    const bool fused = name.size() >= 14 && name.compare(name.size() - 14, 14, "in_proj_weight") == 0;
    if (!fused) {
      auto it = whole.find(name);
      if (it == whole.end()) {
        audiocraft::HfMapping map = audiocraft::hf_mapping(name, m.dim);
        std::string hf = map.pieces.front().name;
        if (composite && map.part == audiocraft::HfPart::Decoder) hf = "decoder." + hf;
        throw UsageError(dir + ": no tensor '" + hf + "', which AudioCraft's " + name + " comes from");
      }
      const Source& s = it->second;
      if (s.t->shape != want)
        throw UsageError(s.ck->path() + ": tensor '" + s.hf_name + "' has shape " + torch::shape_text(s.t->shape) +
                         ", but config.json gives " + torch::shape_text(want));
      Range rg = range_of(s);
      const torch::Storage& st = out_ck->add_external_storage(std::to_string(key++), s.t->dtype, "cpu", s.t->numel(),
                                                              shared(*rg.file), rg.offset);
      pickle::set_item(g, best, name, torch::make_tensor_node(g, st, want, false, storage_word, cpu));
      if (!model_dtype) model_dtype = s.t->dtype;
      used.insert(name);
      continue;
    }
    auto it = qkv.find(name);
    std::array<Range, 3> parts{};
    const torch::DTypeInfo* dt = nullptr;
    for (int i = 0; i < 3; ++i) {
      if (it == qkv.end() || !it->second[i]) {
        std::string hf = audiocraft::hf_mapping(name, m.dim).pieces[i].name;
        throw UsageError(dir + ": no tensor '" + (composite ? "decoder." : "") + hf + "', which rows of AudioCraft's " +
                         name + " come from");
      }
      const Source& s = *it->second[i];
      if (s.t->shape != std::vector<int64_t>{m.dim, m.dim})
        throw UsageError(s.ck->path() + ": tensor '" + s.hf_name + "' has shape " + torch::shape_text(s.t->shape) +
                         ", but config.json gives " + torch::shape_text({m.dim, m.dim}));
      if (dt && s.t->dtype != dt)
        throw UsageError(s.ck->path() + ": q/k/v of '" + name + "' have different dtypes");
      dt = s.t->dtype;
      parts[i] = range_of(s);
    }
    std::string k = std::to_string(key++);
    const torch::Storage& st = out_ck->add_external_storage(k, dt, "cpu", static_cast<uint64_t>(3 * m.dim * m.dim),
                                                            shared(*parts[0].file), parts[0].offset);
    torch::StorageTransform tr;
    tr.dtype = dt;
    tr.produce = [parts](const torch::Storage&, const std::function<void(std::string_view)>& sink) {
      std::string buf;
      for (const Range& p : parts)
        for (uint64_t done = 0; done < p.size;) {
          uint64_t n = std::min<uint64_t>(uint64_t{1} << 20, p.size - done);
          buf.resize(n);
          p.file->read(p.offset + done, n, buf.data());
          sink(buf);
          done += n;
        }
    };
    transforms.emplace(k, std::move(tr));
    pickle::set_item(g, best, name, torch::make_tensor_node(g, st, want, false, storage_word, cpu));
    used.insert(name);
  }
  size_t mapped = 0;
  for (auto& [n, parts] : qkv) {
    if (!used.count(n)) throw UsageError(dir + ": q/k/v tensors for '" + n + "', which config.json's model lacks");
    mapped += 3;
  }
  for (auto& [n, s] : whole) {
    if (!used.count(n)) throw UsageError(s.ck->path() + ": tensor '" + s.hf_name + "' is not part of config.json's model");
    ++mapped;
  }
  if (m.melody) {
    // torchaudio's Spectrogram window, a buffer transformers computes itself.
    int64_t radix = 14;
    if (auto v = omegaconf::select_resolved(cfg, "conditioners.self_wav.chroma_stem.radix2_exp");
        v && v->type == Value::Type::Int)
      radix = v->integer;
    const int64_t n = int64_t{1} << radix;
    std::string k = std::to_string(key++);
    auto any_file = files.begin()->second;
    const torch::Storage& st =
        out_ck->add_external_storage(k, &torch::info(torch::DType::Float32), "cpu", static_cast<uint64_t>(n), any_file, 0);
    torch::StorageTransform tr;
    tr.dtype = &torch::info(torch::DType::Float32);
    tr.produce = [n](const torch::Storage&, const std::function<void(std::string_view)>& sink) {
      sink(hann_window_bytes(n));
    };
    transforms.emplace(k, std::move(tr));
    // After the chroma projection, as AudioCraft's module order has it.
    pickle::Node* ordered = g.dict();
    for (auto& [kk, v] : best->entries) {
      ordered->entries.emplace_back(kk, v);
      if (kk->text == "condition_provider.conditioners.self_wav.output_proj.bias")
        pickle::set_item(g, ordered, "condition_provider.conditioners.self_wav.chroma.spec.window",
                         torch::make_tensor_node(g, st, {n}, false, storage_word, cpu));
    }
    best = ordered;
    r.notes.push_back("condition_provider.conditioners.self_wav.chroma.spec.window recomputed (torch.hann_window(" +
                      std::to_string(n) + "))");
  }
  r.tensors = pickle::entries_of(best)->size();
  (void)mapped;
  (void)model_dtype;

  pickle::Node* root = g.dict();
  pickle::set_item(g, root, "best_state", best);
  pickle::set_item(g, root, "xp.cfg", g.str(omegaconf::to_yaml(cfg)));
  pickle::set_item(g, root, "version", g.str(audiocraft::kDefaultVersion));
  pickle::set_item(g, root, "exported", g.boolean(true));
  g.root = root;

  // The compression model.
  std::optional<Opened> comp;
  std::optional<RangeSet> comp_ranges;  // EnCodec converted from the folder's audio_encoder
  pickle::Node* comp_root = nullptr;
  std::string pointer;
  if (!a.compression.empty()) {
    if (env.exists(a.compression)) {
      comp = open_checkpoint(env, a.compression);
      r.compression = a.compression;
    } else {
      pointer = a.compression;
    }
  } else if (composite && config.contains("audio_encoder") && is_stock_encodec(config["audio_encoder"]) &&
             !config["audio_encoder"].contains(kConfigCarry)) {
    pointer = kStockEncodec;
    if (skipped_audio) r.notes.push_back("audio encoder: AudioCraft's stock 32 kHz EnCodec, written as the pointer " +
                                         std::string(kStockEncodec));
  } else if (!composite) {
    auto c = omegaconf::select_resolved(cfg, "compression_model_checkpoint");
    std::string name = c && c->type == Value::Type::Str ? c->str : "";
    if (name.rfind("//pretrained/", 0) != 0)
      throw UsageError("a decoder-only folder has no audio encoder and xp.cfg's compression_model_checkpoint is '" +
                       name + "': give the compression model with " + option_set("compression", "CKPT_OR_NAME"));
    pointer = name.substr(13);
    r.notes.push_back("no audio encoder in a decoder-only folder: compression_state_dict.bin points to " + pointer +
                      " (xp.cfg's compression_model_checkpoint)");
  } else {
    // The EnCodec weights, converted as from-transformers converts an EncodecModel folder.
    const Json& enc_cfg = need_key(config, "audio_encoder", cfg_path);
    Encodec e = encodec_from_hf(enc_cfg, cfg_path + " (audio_encoder)");
    if (e.bins != m.card)
      throw UsageError(cfg_path + ": audio_encoder.codebook_size = " + std::to_string(e.bins) +
                       ", but the decoder's vocab_size = " + std::to_string(m.card));
    Value ccfg = encodec_xp_cfg(e, enc_cfg);
    e = audiocraft::encodec_from_config(ccfg);
    comp_ranges.emplace(env, join(a.out, "compression_state_dict.bin"));
    size_t n = 0;
    comp_root = encodec_audiocraft_root(*comp_ranges, e, ccfg, audio_sources, dir, "audio_encoder.", n);
    r.compression = "EnCodec converted from audio_encoder (" + std::to_string(n) + " tensors)";
  }
  if (!pointer.empty()) r.compression = "pointer " + pointer;

  FolderReplace out = output_folder(env, a.out, a.force);
  OutputOptions oo;
  oo.out = out.path("state_dict.bin");
  oo.force = true;
  oo.progress = a.progress;
  oo.ignore_crc = a.ignore_crc;  // and for a compression checkpoint, which write_checkpoint checks
  write_checkpoint(*out_ck, root, env, oo, transforms, sources.check(a.ignore_crc));
  r.written.push_back("state_dict.bin");
  oo.out = out.path("compression_state_dict.bin");
  if (comp) {
    pickle::Node* croot = comp->layout == audiocraft::Layout::Exported || comp->layout == audiocraft::Layout::ExportedPointer
                              ? comp->ck->root()
                              : audiocraft::make_export(comp->ck->graph(), comp->ck->root(), comp->layout, std::nullopt);
    write_checkpoint(*comp->ck, croot, env, oo);
  } else if (comp_ranges) {
    write_checkpoint(comp_ranges->ck(), comp_root, env, oo, {}, comp_ranges->check_sources(a.ignore_crc));
  } else {
    write_checkpoint(*out_ck, audiocraft::make_pointer(g, pointer, audiocraft::kDefaultVersion), env, oo);
  }
  r.written.push_back("compression_state_dict.bin");
  out.commit();
  if (skipped_text)
    r.notes.push_back("text encoder (" + std::to_string(skipped_text) +
                      " tensors) not written: AudioCraft loads the T5 xp.cfg names ('" + m.text_encoder_name +
                      "') itself");
  return r;
}

}  // namespace ckpt::api
