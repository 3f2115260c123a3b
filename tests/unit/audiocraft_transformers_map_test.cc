// The AudioCraft <-> transformers MusicGen mapping (audiocraft/transformers_map.h):
// names as transformers' converters rename them, q/k/v row ranges, the
// configuration checks that name the key.
#include <gtest/gtest.h>

#include "audiocraft/transformers_map.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::audiocraft {
namespace {

omegaconf::Value small_config() { return musicgen_default_config(); }

std::string error_of(const omegaconf::Value& cfg) {
  try {
    musicgen_from_config(cfg);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

void set(omegaconf::Value& cfg, const std::string& section, const std::string& key, omegaconf::Value v) {
  *cfg.find(section)->find(key) = std::move(v);
}

TEST(TransformersMap, SmallConfig) {
  MusicgenLm m = musicgen_from_config(small_config());
  EXPECT_EQ(m.dim, 1024);
  EXPECT_EQ(m.num_heads, 16);
  EXPECT_EQ(m.num_layers, 24);
  EXPECT_EQ(m.ffn_dim, 4096);
  EXPECT_EQ(m.n_q, 4);
  EXPECT_EQ(m.card, 2048);
  EXPECT_EQ(m.channels, 1);
  EXPECT_FALSE(m.melody);
  EXPECT_TRUE(m.cross_attention);
  EXPECT_EQ(m.text_encoder_name, "t5-base");
  EXPECT_EQ(m.segment_duration, 30);
  // 2 projections + 4 embeddings + 24 layers x 12 + 2 out_norm + 4 heads.
  EXPECT_EQ(audiocraft_lm_names(m).size(), 2u + 4 + 24 * 12 + 2 + 4);
}

TEST(TransformersMap, UnsupportedSettingsNameTheKey) {
  auto cfg = small_config();
  set(cfg, "transformer_lm", "positional_embedding", omegaconf::Value::of_str("rope"));
  EXPECT_NE(error_of(cfg).find("transformer_lm.positional_embedding = 'rope'"), std::string::npos) << error_of(cfg);
  cfg = small_config();
  set(cfg, "transformer_lm", "bias_attn", omegaconf::Value::of_bool(true));
  EXPECT_NE(error_of(cfg).find("transformer_lm.bias_attn"), std::string::npos);
  cfg = small_config();
  set(cfg, "transformer_lm", "norm", omegaconf::Value::of_str("rms_norm"));
  EXPECT_NE(error_of(cfg).find("transformer_lm.norm"), std::string::npos);
  cfg = small_config();
  set(cfg, "codebooks_pattern", "modeling", omegaconf::Value::of_str("unroll"));
  EXPECT_NE(error_of(cfg).find("codebooks_pattern.modeling"), std::string::npos);
  cfg = small_config();
  cfg.find("transformer_lm")->map.erase(cfg.find("transformer_lm")->map.begin());  // dim
  EXPECT_NE(error_of(cfg).find("'transformer_lm.dim'"), std::string::npos) << error_of(cfg);
}

TEST(TransformersMap, UnsupportedSettingsAreRefusedTogether) {
  auto cfg = small_config();
  set(cfg, "transformer_lm", "positional_embedding", omegaconf::Value::of_str("rope"));
  set(cfg, "transformer_lm", "bias_attn", omegaconf::Value::of_bool(true));
  set(cfg, "codebooks_pattern", "modeling", omegaconf::Value::of_str("unroll"));
  std::string e = error_of(cfg);
  for (const char* want : {"transformer_lm.positional_embedding = 'rope'", "transformer_lm.bias_attn = true",
                           "codebooks_pattern.modeling = 'unroll'", "(3 settings)"})
    EXPECT_NE(e.find(want), std::string::npos) << want << " not in " << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  // A delay pattern for another n_q names the one to give.
  cfg = small_config();
  set(cfg, "transformer_lm", "n_q", omegaconf::Value::of_int(3));
  e = error_of(cfg);
  EXPECT_NE(e.find("codebooks_pattern.delay.delays=[0,1,2]"), std::string::npos) << e;
  EXPECT_EQ(delay_pattern_text(4, 2), "[0,0,1,1]");
}

TEST(TransformersMap, NamesAsTheConverter) {
  auto m = hf_mapping("transformer.layers.3.self_attn.in_proj_weight", 1024);
  ASSERT_EQ(m.pieces.size(), 3u);
  EXPECT_EQ(m.pieces[0].name, "model.decoder.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(m.pieces[0].row_begin, 0);
  EXPECT_EQ(m.pieces[0].row_end, 1024);
  EXPECT_EQ(m.pieces[1].name, "model.decoder.layers.3.self_attn.k_proj.weight");
  EXPECT_EQ(m.pieces[1].row_begin, 1024);
  EXPECT_EQ(m.pieces[2].name, "model.decoder.layers.3.self_attn.v_proj.weight");
  EXPECT_EQ(m.pieces[2].row_end, 3072);
  EXPECT_EQ(hf_mapping("transformer.layers.0.cross_attention.in_proj_weight", 8).pieces[1].name,
            "model.decoder.layers.0.encoder_attn.k_proj.weight");
  EXPECT_EQ(hf_mapping("transformer.layers.0.norm_cross.bias", 8).pieces[0].name,
            "model.decoder.layers.0.encoder_attn_layer_norm.bias");
  EXPECT_EQ(hf_mapping("transformer.layers.1.linear2.weight", 8).pieces[0].name, "model.decoder.layers.1.fc2.weight");
  EXPECT_EQ(hf_mapping("emb.2.weight", 8).pieces[0].name, "model.decoder.embed_tokens.2.weight");
  EXPECT_EQ(hf_mapping("out_norm.weight", 8).pieces[0].name, "model.decoder.layer_norm.weight");
  EXPECT_EQ(hf_mapping("linears.7.weight", 8).pieces[0].name, "lm_heads.7.weight");
  auto proj = hf_mapping("condition_provider.conditioners.description.output_proj.bias", 8);
  EXPECT_EQ(proj.part, HfPart::TextProjection);
  EXPECT_EQ(proj.pieces[0].name, "enc_to_dec_proj.bias");
  EXPECT_EQ(hf_mapping("condition_provider.conditioners.self_wav.output_proj.weight", 8).pieces[0].name,
            "audio_enc_to_dec_proj.weight");
  EXPECT_EQ(hf_mapping("condition_provider.conditioners.self_wav.chroma.spec.window", 8).part, HfPart::Dropped);
  EXPECT_THROW(hf_mapping("transformer.layers.0.self_attn.in_proj_bias", 8), UsageError);
  EXPECT_THROW(hf_mapping("transformer.layers.0.layer_scale_1.scale", 8), UsageError);
  EXPECT_THROW(hf_mapping("encoder.model.0.conv.conv.weight", 8), UsageError);
}

TEST(TransformersMap, ReverseNames) {
  MusicgenLm m = musicgen_from_config(small_config());
  m.num_layers = 2;
  for (const auto& name : audiocraft_lm_names(m)) {
    auto map = hf_mapping(name, m.dim);
    for (size_t i = 0; i < map.pieces.size(); ++i) {
      std::string hf = (map.part == HfPart::Decoder ? "decoder." : "") + map.pieces[i].name;
      auto back = audiocraft_name(hf);
      ASSERT_TRUE(back) << hf;
      EXPECT_EQ(back->name, name);
      EXPECT_EQ(back->qkv, map.pieces.size() == 3 ? static_cast<int>(i) : -1);
    }
  }
  EXPECT_FALSE(audiocraft_name("text_encoder.shared.weight"));
  EXPECT_FALSE(audiocraft_name("decoder.model.decoder.embed_positions.weights"));
}

}  // namespace
}  // namespace ckpt::audiocraft
