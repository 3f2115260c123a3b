// Operations that write a checkpoint from another: rewrite, export, wrap,
// bundle, sanitize, compact. Every output goes through torch::save (atomic,
// torch's layout) or, when the caller gives a sink, is streamed into it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/schema.h"
#include "torch/checkpoint.h"
#include "util/env.h"

namespace ckpt::api {

// Where and how a checkpoint is written.
struct OutputOptions {
  static constexpr const char* kName = "OutputOptions";
  static constexpr const char* kDoc = "where and how a checkpoint is written";
  std::string out;  // the file to write (created beside itself under a temporary name)
  // When set, the checkpoint is streamed here in order instead (standard
  // output, a pipe), with torch.save's archive name for file objects.
  WritableFile* sink = nullptr;
  bool force = false;
  std::string dialect;  // "1.6", "2.1", "2.7" (or "torch-2.7"); "": the input's
  ProgressFn progress;
  bool ignore_crc = false;  // write from a zip whose records fail their CRC-32, as read
  template <class V>
  static void describe(V& v) {
    v.field("out", &OutputOptions::out, "the file to write (atomically: a temporary beside it, renamed)");
    v.field("force", &OutputOptions::force, "replace an existing output");
    v.field("dialect", &OutputOptions::dialect,
            "zip layout of the output: 1.6 (torch 1.6-2.0), 2.1 (2.1-2.6) or 2.7 (2.7+); default: the input's");
    v.field("ignore_crc", &OutputOptions::ignore_crc,
            "write from a zip whose records fail their CRC-32, as read (refused otherwise)");
  }
};

// The dialect an OutputOptions names; nullopt for "" (the input's). Throws
// UsageError naming `dialect` for an unknown one.
std::optional<torch::Dialect> dialect_of(const std::string& text);


// Throws FormatError naming the first record of ck's zip whose bytes fail
// its CRC-32 (a damaged file: the output would carry the damage on), with
// the ways to proceed (--ignore-crc). Reads every record once; with
// skip_storages, every record but those holding storages, which the writers
// check as they copy them (torch::SaveOptions::verify_crcs).
void check_record_crcs(const torch::Checkpoint& ck, bool skip_storages = false);
// The same check of one record of ck's zip (the transformers converters,
// which copy storages by range: api/transformers.cc).
void check_record_crc(const torch::Checkpoint& ck, const container::ZipRecord& rec);

// The CRC policy of every writer: unless ignore_crc, checks ck's records
// that are not storages now and has `save` check the storages as it copies
// them, throwing check_record_crcs's error.
void check_crcs_as_written(const torch::Checkpoint& ck, bool ignore_crc, torch::SaveOptions& save);

// Throws UsageError when `out` is named .safetensors: the writers of torch
// checkpoints never put one format under another's extension.
void check_torch_output_name(const std::string& out);
// Its mirror for the safetensors writer: .th, .pt, .pth, .ckpt or .bin
// (torch's names, which torch.load would be handed) are refused.
void check_safetensors_output_name(const std::string& out);

// Writes root (a node of ck's graph) as options say. check_source, when
// set, runs while the output is fsync'd (torch::SaveOptions::check_source).
void write_checkpoint(torch::Checkpoint& ck, const pickle::Node* root, Env& env, const OutputOptions& options,
                      std::map<std::string, torch::StorageTransform> transforms = {},
                      std::function<void()> check_source = nullptr);

// What rewrite and wrap wrote.
struct WriteResult {
  static constexpr const char* kName = "WriteResult";
  static constexpr const char* kDoc = "the file written";
  std::string out;
  template <class V>
  static void describe(V& v) {
    v.field("out", &WriteResult::out, "the file written");
  }
};

// Load and save unchanged, as torch.save would.
WriteResult rewrite(Env& env, const std::string& file, const OutputOptions& output);

struct ExportOptions {
  static constexpr const char* kName = "ExportOptions";
  static constexpr const char* kDoc = "export's output and version";
  OutputOptions output;
  std::string version;  // default: the input's, else audiocraft::kDefaultVersion
  template <class V>
  static void describe(V& v) {
    v.flatten(&ExportOptions::output);
    v.field("version", &ExportOptions::version, "the version string written (default: the input's, else 1.4.0a2)");
  }
};
struct ExportResult {
  static constexpr const char* kName = "ExportResult";
  static constexpr const char* kDoc = "the file written and the state dict exported";
  std::string out;
  std::string exported_from;  // the best state's path
  template <class V>
  static void describe(V& v) {
    v.field("out", &ExportResult::out, "the file written");
    v.field("exported_from", &ExportResult::exported_from, "the best state's path, exported as best_state");
  }
};
// AudioCraft's export_lm: {best_state, xp.cfg as YAML, version, exported}.
// An FSDP rank file is refused, naming rank 0's file.
ExportResult export_checkpoint(Env& env, const std::string& file, const ExportOptions& options);

// An exported checkpoint back in the training layout.
WriteResult wrap(Env& env, const std::string& file, const OutputOptions& output);

struct BundleOptions {
  static constexpr const char* kName = "BundleOptions";
  static constexpr const char* kDoc = "bundle's folder, compression model and version";
  std::string out;  // the folder; created if missing
  // A compression checkpoint (exported as needed) or a pretrained name;
  // empty: the one xp.cfg's compression_model_checkpoint names.
  std::string compression;
  std::string version;
  bool force = false;
  std::string dialect;
  ProgressFn progress;
  bool ignore_crc = false;
  template <class V>
  static void describe(V& v) {
    v.field("out", &BundleOptions::out, "the folder to write (created if missing)");
    v.field("compression", &BundleOptions::compression,
            "compression checkpoint to export, or a pretrained name (default: xp.cfg's compression_model_checkpoint)");
    v.field("version", &BundleOptions::version, "the version string written (default: the input's, else 1.4.0a2)");
    v.field("force", &BundleOptions::force, "replace existing files in the folder");
    v.field("dialect", &BundleOptions::dialect, "zip layout of the outputs: 1.6, 2.1 or 2.7 (default: the input's)");
    v.field("ignore_crc", &BundleOptions::ignore_crc,
            "write from checkpoints whose records fail their CRC-32, as read (refused otherwise)");
  }
};
struct BundleResult {
  static constexpr const char* kName = "BundleResult";
  static constexpr const char* kDoc = "the folder and the two files written in it";
  std::string out;
  std::string state_dict, compression_state_dict;  // the two files written
  bool compression_pretrained = false;  // a pointer to a pretrained model, not a model
  std::string compression_from_config;  // xp.cfg's text when the config chose it, else ""
  template <class V>
  static void describe(V& v) {
    v.field("out", &BundleResult::out, "the folder");
    v.field("state_dict", &BundleResult::state_dict, "the language model's file written");
    v.field("compression_state_dict", &BundleResult::compression_state_dict, "the compression model's file written");
    v.field("compression_pretrained", &BundleResult::compression_pretrained,
            "the compression file points to a pretrained model rather than holding one");
    v.field("compression_from_config", &BundleResult::compression_from_config,
            "xp.cfg's compression_model_checkpoint when the config chose the model, else empty");
  }
};
// The folder MusicGen.get_pretrained(DIR) loads: state_dict.bin (the export)
// and compression_state_dict.bin (the compression model's export, or a
// pointer to a pretrained one).
BundleResult bundle(Env& env, const std::string& file, const BundleOptions& options);

struct SanitizeResult {
  static constexpr const char* kName = "SanitizeResult";
  static constexpr const char* kDoc = "the file written, or the globals that kept it from being written";
  std::string out;
  bool written = false;
  // Globals outside torch's weights_only allowlist ("module.name (at path)");
  // when any, nothing was written.
  std::vector<std::string> refused;
  template <class V>
  static void describe(V& v) {
    v.field("out", &SanitizeResult::out, "the file to write");
    v.field("written", &SanitizeResult::written, "whether it was written (no refused globals)");
    v.field("refused", &SanitizeResult::refused,
            "globals outside torch's weights_only allowlist, 'module.name (at path)'; when any, nothing was written");
  }
};
// A checkpoint torch >= 2.6 loads with weights_only=True: xp.cfg as YAML,
// defaultdicts as dicts.
SanitizeResult sanitize(Env& env, const std::string& file, const OutputOptions& output);

struct CompactOptions {
  static constexpr const char* kName = "CompactOptions";
  static constexpr const char* kDoc = "how compact treats a damaged file";
  bool ignore_crc = false;
  template <class V>
  static void describe(V& v) {
    v.field("ignore_crc", &CompactOptions::ignore_crc,
            "rewrite a zip whose records fail their CRC-32, as read (refused otherwise)");
  }
};
struct CompactResult {
  static constexpr const char* kName = "CompactResult";
  static constexpr const char* kDoc = "the file's size before and after";
  std::string file;
  uint64_t bytes_before = 0, bytes_after = 0;
  template <class V>
  static void describe(V& v) {
    v.field("file", &CompactResult::file, "the file rewritten");
    v.field("bytes_before", &CompactResult::bytes_before, "its size before");
    v.field("bytes_after", &CompactResult::bytes_after, "its size after");
  }
};
// Rewrites file over itself (atomically), reclaiming the dead bytes in-place
// edits leave behind.
CompactResult compact(Env& env, const std::string& file, const CompactOptions& options = {});

}  // namespace ckpt::api
