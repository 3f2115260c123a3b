// Operations that write a checkpoint from another: rewrite, export, wrap,
// bundle, sanitize, compact. Every output goes through torch::save (atomic,
// torch's layout) or, when the caller gives a sink, is streamed into it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "torch/checkpoint.h"
#include "util/env.h"

namespace ckpt::api {

// Where and how a checkpoint is written.
struct OutputOptions {
  std::string out;  // the file to write (created beside itself under a temporary name)
  // When set, the checkpoint is streamed here in order instead (standard
  // output, a pipe), with torch.save's archive name for file objects.
  WritableFile* sink = nullptr;
  bool force = false;                     // overwrite an existing out
  std::optional<torch::Dialect> dialect;  // default: the input's
  ProgressFn progress;
  bool ignore_crc = false;  // write from a zip whose records fail their CRC-32, as read
};

// Throws FormatError naming the first record of ck's zip whose bytes fail
// its CRC-32 (a damaged file: the output would carry the damage on), with
// the ways to proceed (--ignore-crc). Reads every record once.
void check_record_crcs(const torch::Checkpoint& ck);

// Throws UsageError when `out` is named .safetensors: the writers of torch
// checkpoints never put one format under another's extension.
void check_torch_output_name(const std::string& out);

// Writes root (a node of ck's graph) as options say.
void write_checkpoint(torch::Checkpoint& ck, const pickle::Node* root, Env& env, const OutputOptions& options,
                      std::map<std::string, torch::StorageTransform> transforms = {});

// Load and save unchanged, as torch.save would.
void rewrite(Env& env, const std::string& file, const OutputOptions& output);

struct ExportOptions {
  OutputOptions output;
  std::string version;  // default: the input's, else audiocraft::kDefaultVersion
};
struct ExportResult {
  std::string exported_from;  // the best state's path
};
// AudioCraft's export_lm: {best_state, xp.cfg as YAML, version, exported}.
// An FSDP rank file is refused, naming rank 0's file.
ExportResult export_checkpoint(Env& env, const std::string& file, const ExportOptions& options);

// An exported checkpoint back in the training layout.
void wrap(Env& env, const std::string& file, const OutputOptions& output);

struct BundleOptions {
  std::string dir;  // created if missing
  // A compression checkpoint (exported as needed) or a pretrained name;
  // empty: the one xp.cfg's compression_model_checkpoint names.
  std::string compression;
  std::string version;
  bool force = false;
  std::optional<torch::Dialect> dialect;
  ProgressFn progress;
};
struct BundleResult {
  std::string state_dict, compression_state_dict;  // the two files written
  bool compression_pretrained = false;  // a pointer to a pretrained model, not a model
  std::string compression_from_config;  // xp.cfg's text when the config chose it, else ""
};
// The folder MusicGen.get_pretrained(DIR) loads: state_dict.bin (the export)
// and compression_state_dict.bin (the compression model's export, or a
// pointer to a pretrained one).
BundleResult bundle(Env& env, const std::string& file, const BundleOptions& options);

struct SanitizeResult {
  // Globals outside torch's weights_only allowlist ("module.name (at path)");
  // when any, nothing was written.
  std::vector<std::string> refused;
  bool written() const { return refused.empty(); }
};
// A checkpoint torch >= 2.6 loads with weights_only=True: xp.cfg as YAML,
// defaultdicts as dicts.
SanitizeResult sanitize(Env& env, const std::string& file, const OutputOptions& output);

struct CompactResult {
  uint64_t bytes_before = 0, bytes_after = 0;
};
// Rewrites file over itself (atomically), reclaiming the dead bytes in-place
// edits leave behind.
CompactResult compact(Env& env, const std::string& file);

}  // namespace ckpt::api
