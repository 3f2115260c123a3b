#include "api/shard.h"

#include <cerrno>
#include <filesystem>

#include "api/format.h"
#include "audiocraft/rank_set.h"
#include "pickle/value.h"
#include "torch/safetensors_shards.h"
#include "util/error.h"
#include "util/signal_cleanup.h"

namespace ckpt::api {

bool is_dcp_folder(const std::string& path) { return torch::DcpCheckpoint::is_dcp_folder(path); }

DcpInfoResult dcp_info(Env& env, const std::string& dir) {
  auto dcp = torch::DcpCheckpoint::open(env, dir);
  DcpInfoResult r;
  r.file = dir;
  r.version = dcp->version();
  for (const auto& [n, s] : dcp->files()) r.files.push_back({n, s});
  for (const auto& it : dcp->items()) {
    if (!it.is_tensor) {
      Json path = Json::array();
      for (const auto& step : it.path) path.push_back(step.is_index ? Json(step.index) : Json(step.key));
      r.byte_items.push_back({it.fqn, std::move(path), it.where.file});
      continue;
    }
    ++r.tensors;
    r.bytes += it.nbytes();
    r.parameters += it.numel();
    r.bytes_by_dtype[it.dtype->name] += it.nbytes();
  }
  return r;
}

std::vector<DcpTensorEntry> dcp_tensors(Env& env, const std::string& dir, const std::vector<std::string>& match) {
  auto dcp = torch::DcpCheckpoint::open(env, dir);
  std::vector<DcpTensorEntry> rows;
  for (const auto& it : dcp->items()) {
    if (!it.is_tensor || !matches_any(match, it.fqn)) continue;
    DcpTensorEntry e{it.fqn, it.dtype->name, it.size, it.numel(), it.nbytes(), {}};
    for (const auto& ch : it.chunks)
      e.chunks.push_back({ch.offsets, ch.sizes, ch.where.file, ch.where.offset, ch.where.length});
    rows.push_back(std::move(e));
  }
  return rows;
}

DcpVerifyResult dcp_verify(Env& env, const std::string& dir) {
  DcpVerifyResult r;
  r.file = dir;
  std::unique_ptr<torch::DcpCheckpoint> dcp;
  try {
    dcp = torch::DcpCheckpoint::open(env, dir);
  } catch (const FormatError& e) {
    r.problems.push_back(e.what());
  }
  if (dcp) {
    r.problems = torch::verify_dcp(*dcp);
    for (const auto& it : dcp->items()) {
      ++r.items;
      r.chunks += it.chunks.size();
    }
  }
  r.ok = r.problems.empty();
  return r;
}

std::optional<RankSetInfo> rank_set_of(Env&, const std::string& file) {
  auto r = audiocraft::parse_rank_file(basename_of(file));
  if (!r) return std::nullopt;
  for (const auto& set : audiocraft::list_rank_sets(dirname_of(file))) {
    if (set.name != r->set) continue;
    if (r->rank == 0 && set.ranks.size() == 1 && set.missing.empty()) return std::nullopt;  // a lone checkpoint.th
    return RankSetInfo{set.name, r->rank, set.ranks, set.missing};
  }
  return std::nullopt;
}

FolderInfoResult folder_info(Env& env, const std::string& dir) {
  torch::check_single_shard_set(env, dir);  // a mixed safetensors folder is refused, naming the files
  FolderInfoResult r;
  r.file = dir;
  for (const auto& s : audiocraft::list_rank_sets(dir)) r.rank_sets.push_back({s.name, s.ranks, s.missing});
  if (r.rank_sets.empty())
    throw UsageError(dir + " is a folder with neither a DCP .metadata nor AudioCraft checkpoint files (checkpoint.th, "
                     "checkpoint.th.N): " + checkpoint_files_hint(env, dir));
  return r;
}

ReadableCheckpoint::ReadableCheckpoint(Env& env, const std::string& path) : env_(env), path_(path) {
  if (!is_dcp_folder(path)) return;
  auto dcp = torch::DcpCheckpoint::open(env, path);
  std::error_code ec;
  std::string base = std::filesystem::temp_directory_path(ec).string();  // $TMPDIR, else /tmp
  if (ec || base.empty()) base = "/tmp";
  {
    SignalHold hold;  // made and registered as one step: Ctrl-C leaves no consolidated copy in /tmp
    temp_dir_ = env.create_temp_directory(base, "ckpt-dcp-");
    signal_slot_ = register_temp_directory(temp_dir_);
  }
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  std::string name = basename_of(trimmed);
  path_ = temp_dir_ + "/" + (name.empty() || name == "." ? std::string("dcp") : name) + ".consolidated.pt";
  try {
    torch::consolidate_dcp(*dcp, env, path_);
  } catch (...) {
    remove_temporary();
    throw;
  }
}

ReadableCheckpoint::~ReadableCheckpoint() { remove_temporary(); }

void ReadableCheckpoint::remove_temporary() noexcept {
  if (temp_dir_.empty()) return;
  try {
    env_.remove(path_);  // consolidate_dcp leaves nothing else there
    env_.remove_directory(temp_dir_);
  } catch (const Error&) {
    // A temporary folder left behind is not worth failing the command for.
  }
  unregister_temp(signal_slot_);
  signal_slot_ = -1;
}

ConsolidateResult consolidate(Env& env, const std::string& dir, const ConsolidateOptions& options) {
  if (!is_dcp_folder(dir)) throw UsageError(dir + ": not a torch distributed checkpoint folder (no .metadata)");
  auto dcp = torch::DcpCheckpoint::open(env, dir);
  torch::ConsolidateOptions opts;
  opts.force = options.force;
  opts.progress = progress_for(options.progress, options.out);
  torch::ConsolidateReport report = torch::consolidate_dcp(*dcp, env, options.out, opts);
  return {options.out, report.tensors, report.tensor_bytes, report.byte_items, dcp->files().size()};
}

ToDcpResult to_dcp(Env& env, const std::string& file, const ToDcpOptions& options) {
  std::unique_ptr<torch::Checkpoint> ck;
  try {
    ck = torch::Checkpoint::open(env, file);
  } catch (const IoError& e) {
    if (e.error_number() == EISDIR) throw folder_given_error(env, file);  // said "open: Is a directory"
    throw;
  }
  const pickle::Node* root = ck->root();
  const std::string& state = options.state;
  if (!state.empty()) {
    for (size_t pos = 0; root && pos <= state.size();) {
      size_t end = state.find('/', pos);
      if (end == std::string::npos) end = state.size();
      root = pickle::get_item(root, state.substr(pos, end - pos));
      pos = end + 1;
    }
    if (!root) throw UsageError(file + ": no state dict at '" + state + "'" + path_hint(ck->root(), state));
  }
  torch::ToDcpOptions opts;
  opts.force = options.force;
  opts.ranks = options.ranks;
  opts.progress = progress_for(options.progress, options.out);
  torch::ToDcpReport report = torch::write_dcp(*ck, root, env, options.out, opts);
  return {options.out, report.tensors, report.tensor_bytes, report.files, report.byte_items};
}

}  // namespace ckpt::api
