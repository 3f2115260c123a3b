// AudioCraft's EnCodec compression model <-> Hugging Face transformers'
// EncodecModel: tensor names, shapes and the configuration both ways
// (docs/TRANSFORMERS.md, "EnCodec").
//
// The names agree with transformers' converter
// (src/transformers/models/encodec/convert_encodec_checkpoint_to_pytorch.py:
// MAPPING_QUANTIZER, MAPPING_ENCODER(_48K), MAPPING_DECODER(_48K)) and with
// the modules of modeling_encodec.py (EncodecConv1d, EncodecConvTranspose1d,
// EncodecLSTM, EncodecResnetBlock, EncodecEncoder, EncodecDecoder,
// EncodecEuclideanCodebook); AudioCraft's with audiocraft/modules/seanet.py
// (SEANetEncoder / SEANetDecoder / SEANetResnetBlock), modules/conv.py
// (StreamableConv1d.conv = NormConv1d, .conv / .norm), modules/lstm.py and
// quantization/core_vq.py (ResidualVectorQuantization.layers[k]._codebook).
// Both index their layers the same way (ELUs count), so layer i is layer i.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "omegaconf/value.h"

namespace ckpt::audiocraft {

// What xp.cfg (seanet.*, encodec.*, rvq.*, sample_rate, channels) says of an
// EnCodec model, as far as transformers' EncodecModel expresses it.
struct Encodec {
  int64_t sample_rate = 0, channels = 1, dimension = 128, n_filters = 32, n_residual_layers = 1;
  std::vector<int64_t> ratios;  // decoder order (the encoder reverses them), as seanet.ratios
  std::string norm = "weight_norm";  // or time_group_norm
  int64_t kernel_size = 7, last_kernel_size = 7, residual_kernel_size = 3, dilation_base = 2;
  int64_t compress = 2, lstm = 2;
  bool causal = false, true_skip = true, renormalize = false;
  std::string pad_mode = "constant";
  double trim_right_ratio = 1.0;
  int64_t n_q = 0, bins = 0;

  int64_t hop() const;
};

// Whether xp.cfg describes a compression model (a top-level compression_model
// key, as config/model/encodec/default.yaml sets it).
bool is_compression_config(const omegaconf::Value& cfg);

// Reads xp.cfg. Throws UsageError naming the key when one is missing or holds
// a setting transformers' EncodecModel cannot express (another autoencoder or
// quantizer, activation, norm parameters, outer blocks without norm, no LSTM,
// a final activation, encoder/decoder overrides that differ, codebook_dim).
Encodec encodec_from_config(const omegaconf::Value& cfg);

// One tensor of the model, in AudioCraft's state-dict order.
struct EncodecTensor {
  std::string audiocraft;  // "encoder.model.0.conv.conv.weight_g"
  std::string hf;          // "encoder.layers.0.conv.parametrizations.weight.original0"
  std::vector<int64_t> shape;
};
std::vector<EncodecTensor> encodec_tensors(const Encodec& e);

// The weight-norm spellings: transformers has saved weight_g / weight_v
// (torch.nn.utils.weight_norm) and parametrizations.weight.original0 /
// original1 (torch.nn.utils.parametrizations.weight_norm, what the pinned
// transformers' modules hold and save_pretrained writes). hf_canonical maps
// the old spelling to the new; audiocraft_canonical the new to the old
// (AudioCraft's NormConv1d uses torch.nn.utils.weight_norm).
std::string hf_canonical(const std::string& name);
std::string audiocraft_canonical(const std::string& name);

// CPython's float floor division (float_divmod), so that transformers'
// num_quantizers = int(1000 * target_bandwidths[-1] // (frame_rate * nbits))
// is computed as Python computes it.
double python_floordiv(double a, double b);

// AudioCraft's compression solver configuration as far as its loader reads it
// (compression_model, encodec, seanet, rvq: config/model/encodec/default.yaml
// with sample_rate, channels): what from-transformers sets its keys over.
omegaconf::Value encodec_default_config();

}  // namespace ckpt::audiocraft
