// The AudioCraft EnCodec <-> transformers EncodecModel mapping
// (audiocraft/encodec_map.h): names as transformers' converter maps them,
// shapes, both weight-norm spellings, the configuration checks that name the key.
#include <gtest/gtest.h>

#include <map>

#include "audiocraft/encodec_map.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::audiocraft {
namespace {

using omegaconf::Value;

// AudioCraft's encodec_large_nq4_s640 (facebook/encodec_32khz's settings).
Value config_32khz() {
  Value cfg = encodec_default_config();
  *cfg.find("seanet")->find("ratios") = omegaconf::parse_yaml("[8, 5, 4, 4]");
  *cfg.find("seanet")->find("n_filters") = Value::of_int(64);
  *cfg.find("rvq")->find("bins") = Value::of_int(2048);
  *cfg.find("rvq")->find("n_q") = Value::of_int(4);
  return cfg;
}

std::string error_of(const Value& cfg) {
  try {
    encodec_from_config(cfg);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, EncodecTensor> by_audiocraft(const Encodec& e) {
  std::map<std::string, EncodecTensor> out;
  for (const auto& t : encodec_tensors(e)) out.emplace(t.audiocraft, t);
  return out;
}

TEST(EncodecMap, Config32khz) {
  Encodec e = encodec_from_config(config_32khz());
  EXPECT_EQ(e.sample_rate, 32000);
  EXPECT_EQ(e.hop(), 640);
  EXPECT_EQ(e.dimension, 128);
  EXPECT_EQ(e.n_filters, 64);
  EXPECT_EQ(e.n_q, 4);
  EXPECT_EQ(e.bins, 2048);
  EXPECT_EQ(e.norm, "weight_norm");
  EXPECT_FALSE(e.causal);
  EXPECT_TRUE(e.true_skip);
  EXPECT_EQ(e.pad_mode, "constant");
  EXPECT_EQ(e.lstm, 2);
}

// Every module of transformers' MAPPING_ENCODER / MAPPING_DECODER
// (convert_encodec_checkpoint_to_pytorch.py, 4 ratios, one residual layer,
// conv shortcuts) is where the converter puts it.
TEST(EncodecMap, NamesAgreeWithTheConverter) {
  Value cfg = config_32khz();
  *cfg.find("seanet")->find("true_skip") = Value::of_bool(false);
  auto t = by_audiocraft(encodec_from_config(cfg));
  const std::pair<const char*, const char*> modules[] = {
      {"encoder.model.0.conv.conv", "encoder.layers.0.conv"},
      {"encoder.model.1.block.1.conv.conv", "encoder.layers.1.block.1.conv"},
      {"encoder.model.1.block.3.conv.conv", "encoder.layers.1.block.3.conv"},
      {"encoder.model.1.shortcut.conv.conv", "encoder.layers.1.shortcut.conv"},
      {"encoder.model.3.conv.conv", "encoder.layers.3.conv"},
      {"encoder.model.12.conv.conv", "encoder.layers.12.conv"},
      {"encoder.model.15.conv.conv", "encoder.layers.15.conv"},
      {"decoder.model.0.conv.conv", "decoder.layers.0.conv"},
      {"decoder.model.3.convtr.convtr", "decoder.layers.3.conv"},
      {"decoder.model.4.block.1.conv.conv", "decoder.layers.4.block.1.conv"},
      {"decoder.model.13.shortcut.conv.conv", "decoder.layers.13.shortcut.conv"},
      {"decoder.model.12.convtr.convtr", "decoder.layers.12.conv"},
      {"decoder.model.15.conv.conv", "decoder.layers.15.conv"},
  };
  for (const auto& [ac, hf] : modules) {
    SCOPED_TRACE(ac);
    ASSERT_TRUE(t.count(std::string(ac) + ".weight_g"));
    EXPECT_EQ(t.at(std::string(ac) + ".weight_g").hf, std::string(hf) + ".parametrizations.weight.original0");
    EXPECT_EQ(t.at(std::string(ac) + ".weight_v").hf, std::string(hf) + ".parametrizations.weight.original1");
    EXPECT_EQ(t.at(std::string(ac) + ".bias").hf, std::string(hf) + ".bias");
  }
  EXPECT_EQ(t.at("encoder.model.13.lstm.weight_ih_l1").hf, "encoder.layers.13.lstm.weight_ih_l1");
  EXPECT_EQ(t.at("decoder.model.1.lstm.bias_hh_l0").hf, "decoder.layers.1.lstm.bias_hh_l0");
  EXPECT_EQ(t.at("quantizer.vq.layers.3._codebook.embed_avg").hf, "quantizer.layers.3.codebook.embed_avg");
  EXPECT_FALSE(t.count("quantizer.vq.layers.4._codebook.embed"));
  // Shapes: Conv1d [out, in, k], ConvTranspose1d [in, out, k], weight_g [w0, 1, 1].
  EXPECT_EQ(t.at("encoder.model.0.conv.conv.weight_v").shape, (std::vector<int64_t>{64, 1, 7}));
  EXPECT_EQ(t.at("encoder.model.3.conv.conv.weight_v").shape, (std::vector<int64_t>{128, 64, 8}));
  EXPECT_EQ(t.at("encoder.model.1.block.1.conv.conv.weight_v").shape, (std::vector<int64_t>{32, 64, 3}));
  EXPECT_EQ(t.at("encoder.model.15.conv.conv.weight_v").shape, (std::vector<int64_t>{128, 1024, 7}));
  EXPECT_EQ(t.at("decoder.model.3.convtr.convtr.weight_v").shape, (std::vector<int64_t>{1024, 512, 16}));
  EXPECT_EQ(t.at("decoder.model.3.convtr.convtr.weight_g").shape, (std::vector<int64_t>{1024, 1, 1}));
  EXPECT_EQ(t.at("decoder.model.3.convtr.convtr.bias").shape, (std::vector<int64_t>{512}));
  EXPECT_EQ(t.at("encoder.model.13.lstm.weight_hh_l0").shape, (std::vector<int64_t>{4096, 1024}));
  EXPECT_EQ(t.at("quantizer.vq.layers.0._codebook.embed").shape, (std::vector<int64_t>{2048, 128}));
}

TEST(EncodecMap, TimeGroupNormAndTrueSkip) {
  Value cfg = config_32khz();
  *cfg.find("seanet")->find("norm") = Value::of_str("time_group_norm");
  auto t = by_audiocraft(encodec_from_config(cfg));
  EXPECT_EQ(t.at("encoder.model.0.conv.norm.weight").hf, "encoder.layers.0.norm.weight");
  EXPECT_EQ(t.at("decoder.model.3.convtr.norm.bias").hf, "decoder.layers.3.norm.bias");
  EXPECT_EQ(t.at("encoder.model.0.conv.conv.weight").hf, "encoder.layers.0.conv.weight");
  EXPECT_FALSE(t.count("encoder.model.1.shortcut.conv.conv.weight"));  // true_skip: an identity
  EXPECT_FALSE(t.count("encoder.model.0.conv.conv.weight_g"));
}

TEST(EncodecMap, WeightNormSpellings) {
  EXPECT_EQ(hf_canonical("encoder.layers.0.conv.weight_g"), "encoder.layers.0.conv.parametrizations.weight.original0");
  EXPECT_EQ(hf_canonical("encoder.layers.0.conv.weight_v"), "encoder.layers.0.conv.parametrizations.weight.original1");
  EXPECT_EQ(hf_canonical("encoder.layers.0.conv.bias"), "encoder.layers.0.conv.bias");
  EXPECT_EQ(audiocraft_canonical("encoder.model.0.conv.conv.parametrizations.weight.original0"),
            "encoder.model.0.conv.conv.weight_g");
  EXPECT_EQ(audiocraft_canonical("encoder.model.0.conv.conv.weight_v"), "encoder.model.0.conv.conv.weight_v");
}

TEST(EncodecMap, PythonFloorDivision) {
  EXPECT_EQ(python_floordiv(1000.0 * 2.2, 550.0), 4.0);  // facebook/encodec_32khz: 4 quantizers
  EXPECT_EQ(python_floordiv(1000.0 * 24.0, 750.0), 32.0);
  EXPECT_EQ(python_floordiv(-7.0, 2.0), -4.0);
  EXPECT_EQ(python_floordiv(1.0, 3.0), 0.0);
}

TEST(EncodecMap, SettingsTransformersCannotExpressNameTheKey) {
  auto with = [](const std::string& section, const std::string& key, Value v) {
    Value cfg = config_32khz();
    *cfg.find(section)->find(key) = std::move(v);
    return error_of(cfg);
  };
  EXPECT_NE(with("seanet", "activation", Value::of_str("ReLU")).find("seanet.activation"), std::string::npos);
  EXPECT_NE(with("seanet", "norm", Value::of_str("spectral_norm")).find("seanet.norm"), std::string::npos);
  EXPECT_NE(with("seanet", "disable_norm_outer_blocks", Value::of_int(1)).find("seanet.disable_norm_outer_blocks"),
            std::string::npos);
  EXPECT_NE(with("seanet", "lstm", Value::of_int(0)).find("seanet.lstm"), std::string::npos);
  EXPECT_NE(with("rvq", "bins", Value::of_int(1000)).find("rvq.bins"), std::string::npos);
  EXPECT_NE(with("encodec", "quantizer", Value::of_str("no_quant")).find("encodec.quantizer"), std::string::npos);
  Value params = omegaconf::parse_yaml("{eps: 0.001}");
  EXPECT_NE(with("seanet", "norm_params", params).find("seanet.norm_params"), std::string::npos);
  {
    Value cfg = config_32khz();
    cfg.find("seanet")->find("decoder")->map.emplace_back(Value::of_str("n_filters"), Value::of_int(32));
    EXPECT_NE(error_of(cfg).find("seanet.decoder.n_filters"), std::string::npos);
  }
  {
    Value cfg = config_32khz();
    *cfg.find("seanet")->find("decoder")->find("final_activation") = Value::of_str("Tanh");
    EXPECT_NE(error_of(cfg).find("seanet.decoder.final_activation"), std::string::npos);
  }
  {
    Value cfg = config_32khz();
    cfg.map.erase(cfg.map.begin());  // no solver: still a compression config
    EXPECT_TRUE(is_compression_config(cfg));
    cfg.find("seanet")->map.erase(cfg.find("seanet")->map.begin());  // no seanet.dimension
    EXPECT_NE(error_of(cfg).find("seanet.dimension"), std::string::npos);
  }
}

}  // namespace
}  // namespace ckpt::audiocraft
