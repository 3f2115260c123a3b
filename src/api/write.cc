#include "api/write.h"

#include <cctype>
#include <cstdio>

#include "audiocraft/operations.h"
#include "torch/in_place.h"
#include "util/error.h"
#include "util/folder_replace.h"

namespace ckpt::api {

std::optional<torch::Dialect> dialect_of(const std::string& text) {
  if (text.empty()) return std::nullopt;
  auto d = torch::parse_dialect(text);
  if (!d) throw UsageError(option_name("dialect") + " '" + text + "': expected 1.6, 2.1 or 2.7");
  return d;
}

namespace {

// A file name's extension ("x/a.TH" -> ".th"), lower-cased; "" without one.
std::string lower_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

}  // namespace

void check_torch_output_name(const std::string& out) {
  if (lower_extension(out) != ".safetensors") return;
  std::string stem = out.substr(0, out.size() - std::string(".safetensors").size());
  throw UsageError(out + ": this command writes a torch checkpoint, which a .safetensors name would misname "
                   "(safetensors.torch.load_file cannot read it); write " + stem + ".th, then 'ckpt safetensors " +
                   stem + ".th -o " + out + "' if you want safetensors");
}

void check_safetensors_output_name(const std::string& out) {
  const std::string ext = lower_extension(out);
  for (const char* torch_ext : {".th", ".pt", ".pth", ".ckpt", ".bin"})
    if (ext == torch_ext)
      throw UsageError(out + ": this command writes safetensors, which a " + ext +
                       " name would misname (torch.load cannot read it); write " +
                       out.substr(0, out.size() - ext.size()) + ".safetensors");
}

void check_record_crcs(const torch::Checkpoint& ck, bool skip_storages) {
  const auto* zip = ck.zip();
  if (!zip) return;
  for (const auto& rec : zip->records()) {
    if (skip_storages) {  // checked by the writer as it copies them (read once)
      const std::string rel = zip->relative_name(rec);
      if (rel.rfind("data/", 0) == 0 && ck.storage(rel.substr(5))) continue;
    }
    uint32_t crc = zip->compute_crc(rec);
    if (crc != rec.crc32) throw_crc_mismatch(ck, rec, crc);
  }
}

void check_record_crc(const torch::Checkpoint& ck, const container::ZipRecord& rec) {
  const uint32_t crc = ck.zip()->compute_crc(rec);
  if (crc != rec.crc32) throw_crc_mismatch(ck, rec, crc);
}

void check_crcs_as_written(const torch::Checkpoint& ck, bool ignore_crc, torch::SaveOptions& save) {
  // Storage records are checked as the writer copies them (read once).
  if (ignore_crc) return;
  check_record_crcs(ck, /*skip_storages=*/true);
  save.verify_crcs = true;
  save.on_crc_mismatch = [&ck](const container::ZipRecord& rec, uint32_t crc) { throw_crc_mismatch(ck, rec, crc); };
}

void write_checkpoint(torch::Checkpoint& ck, const pickle::Node* root, Env& env, const OutputOptions& options,
                      std::map<std::string, torch::StorageTransform> transforms, std::function<void()> check_source) {
  if (!options.sink) check_torch_output_name(options.out);
  torch::SaveOptions so;
  check_crcs_as_written(ck, options.ignore_crc, so);
  so.check_source = std::move(check_source);
  so.transforms = std::move(transforms);
  so.force = options.force;
  so.dialect = dialect_of(options.dialect);
  so.progress = progress_for(options.progress, options.out);
  if (options.sink) {  // in order; "archive" as torch.save names it for a file object
    torch::save_to(ck, root, *options.sink, "archive", so);  // fsync'd there
    return;
  }
  torch::save(ck, root, env, options.out, so);
}

WriteResult rewrite(Env& env, const std::string& file, const OutputOptions& output) {
  if (!output.sink) check_torch_output_name(output.out);
  Opened o = open_checkpoint(env, file);
  write_checkpoint(*o.ck, o.ck->root(), env, output);
  return {output.out};
}

namespace {

std::optional<std::string> version_option(const std::string& v) {
  return v.empty() ? std::nullopt : std::optional<std::string>(v);
}

}  // namespace

ExportResult export_checkpoint(Env& env, const std::string& file, const ExportOptions& options) {
  Opened o = open_checkpoint(env, file);
  if (o.layout == audiocraft::Layout::FsdpShard)
    throw UsageError(file + ": rank " + std::to_string(audiocraft::fsdp_rank_of(file).value_or(0)) +
                     "'s shard of an FSDP checkpoint; the full state is fsdp_best_state in rank 0's file: ckpt export " +
                     audiocraft::fsdp_rank0_file(file) + " -o " + options.output.out);
  if (o.layout == audiocraft::Layout::Exported || o.layout == audiocraft::Layout::ExportedPointer)
    throw UsageError(file + " is already exported (" + audiocraft::to_string(o.layout) +
                     "): use it as it is, or 'ckpt wrap " + file + " -o OUT' for AudioCraft's training layout");
  if (o.layout != audiocraft::Layout::Training)
    throw UsageError(file + ": export needs an AudioCraft training checkpoint (best_state, xp.cfg), not '" +
                     audiocraft::to_string(o.layout) + "' (see 'ckpt info " + file + "')");
  pickle::Node* root =
      audiocraft::make_export(o.ck->graph(), o.ck->root(), o.layout, version_option(options.version));
  write_checkpoint(*o.ck, root, env, options.output);
  return {options.output.out, o.best_state.value_or("")};
}

WriteResult wrap(Env& env, const std::string& file, const OutputOptions& output) {
  Opened o = open_checkpoint(env, file);
  if (o.layout == audiocraft::Layout::Training)
    throw UsageError(file + " is a training checkpoint (" + audiocraft::to_string(o.layout) +
                     "), the layout wrap makes: fine-tune from it as it is; wrap takes an exported one "
                     "('ckpt export " + file + " -o OUT' makes one)");
  if (o.layout != audiocraft::Layout::Exported)
    throw UsageError(file + ": wrap needs an exported AudioCraft checkpoint (best_state, xp.cfg as YAML, exported), "
                     "not '" + audiocraft::to_string(o.layout) + "' (see 'ckpt info " + file + "')");
  pickle::Node* root = audiocraft::make_wrap(o.ck->graph(), o.ck->root(), o.layout);
  write_checkpoint(*o.ck, root, env, output);
  return {output.out};
}

namespace {

// The compression model's root as bundle writes it: an exported model (or
// pointer) as it is, anything else exported.
pickle::Node* compression_root(Opened& c, const std::optional<std::string>& version) {
  if (c.layout == audiocraft::Layout::Exported || c.layout == audiocraft::Layout::ExportedPointer) return c.ck->root();
  return audiocraft::make_export(c.ck->graph(), c.ck->root(), c.layout, version);
}

// A --compression value that names a file rather than a pretrained model
// ('facebook/encodec_32khz'): a checkpoint's extension or a path's start.
bool looks_like_a_file(const std::string& s) {
  for (const char* ext : {".th", ".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".pkl"}) {
    std::string e = ext;
    if (s.size() > e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0) return true;
  }
  return s.rfind("/", 0) == 0 || s.rfind("./", 0) == 0 || s.rfind("../", 0) == 0 || s.rfind("~", 0) == 0;
}

}  // namespace

BundleResult bundle(Env& env, const std::string& file, const BundleOptions& options) {
  Opened o = open_checkpoint(env, file);
  std::optional<std::string> version = version_option(options.version);
  // An exported input goes into the bundle as it is.
  pickle::Node* root = o.layout == audiocraft::Layout::Exported
                           ? o.ck->root()
                           : audiocraft::make_export(o.ck->graph(), o.ck->root(), o.layout, version);
  std::string v = version.value_or(audiocraft::version_of(root).value_or(audiocraft::kDefaultVersion));

  if (options.out == "-") throw UsageError("bundle writes a folder: " + option_set("out", "DIR") + ", not standard output");
  BundleResult r;
  r.out = options.out;
  r.state_dict = options.out + "/state_dict.bin";
  r.compression_state_dict = options.out + "/compression_state_dict.bin";
  if (env.exists(options.out) && !env.is_directory(options.out))
    throw UsageError(options.out + " exists and is not a directory");
  if (!options.force)
    for (const auto& p : {r.state_dict, r.compression_state_dict})
      if (env.exists(p)) throw UsageError(p + " exists (use " + option_set("force") + " to overwrite)");

  // The compression model: a checkpoint to export, or a pretrained name;
  // without options.compression, the one the config names.
  std::string compression = options.compression;
  bool is_file = !compression.empty() && env.exists(compression);
  if (!compression.empty() && !is_file && looks_like_a_file(compression))
    throw UsageError(option_name("compression") + " '" + compression + "': no such file; give an existing compression checkpoint "
                     "(an EnCodec training or exported checkpoint), or a pretrained name such as "
                     "facebook/encodec_32khz");
  if (compression.empty()) {
    audiocraft::CompressionSource src = audiocraft::compression_from_config(o.ck->root());
    compression = src.name_or_path;
    is_file = !src.pretrained;
    if (is_file && !env.exists(compression))
      throw UsageError("xp.cfg's compression_model_checkpoint '" + src.configured +
                       "' is not a file here; give the compression checkpoint with " + option_set("compression", "FILE"));
    r.compression_from_config = src.configured;
  }
  r.compression_pretrained = !is_file;
  std::optional<Opened> comp;
  if (is_file) comp = open_checkpoint(env, compression);
  // Both files replaced as one set (util/folder_replace.h): a crash never
  // leaves a new model beside the old compression model.
  FolderReplace folder(
      env, options.out, [](const std::string& n) { return n == "state_dict.bin" || n == "compression_state_dict.bin"; },
      options.force);
  OutputOptions out{folder.path("state_dict.bin"), nullptr, false, options.dialect, options.progress, options.ignore_crc};
  write_checkpoint(*o.ck, root, env, out);
  out.out = folder.path("compression_state_dict.bin");
  if (comp)
    write_checkpoint(*comp->ck, compression_root(*comp, version), env, out);
  else
    write_checkpoint(*o.ck, audiocraft::make_pointer(o.ck->graph(), compression, v), env, out);
  folder.commit();
  return r;
}

SanitizeResult sanitize(Env& env, const std::string& file, const OutputOptions& output) {
  Opened o = open_checkpoint(env, file);
  auto made = audiocraft::make_sanitized(o.ck->graph(), o.ck->root());
  SanitizeResult r{output.out, made.refused.empty(), made.refused};
  if (r.written) write_checkpoint(*o.ck, made.root, env, output);
  return r;
}

CompactResult compact(Env& env, const std::string& file, const CompactOptions& options) {
  if (file == "-") throw UsageError("compact needs a file, not standard input");
  Opened o = open_checkpoint(env, file);
  if (o.safetensors) throw UsageError(file + " is a safetensors file: compact rewrites torch checkpoints");
  CompactResult r;
  r.file = file;
  r.bytes_before = o.ck->file().size();
  torch::InPlaceOptions ipo;
  ipo.compact = true;
  check_crcs_as_written(*o.ck, options.ignore_crc, ipo.save);
  r.bytes_after = torch::update_in_place(*o.ck, o.ck->root(), env, ipo).bytes_written;
  return r;
}

}  // namespace ckpt::api
