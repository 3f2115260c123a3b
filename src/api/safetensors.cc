#include "api/safetensors.h"

#include "api/write.h"
#include "torch/safetensors.h"
#include "torch/safetensors_shards.h"

namespace ckpt::api {

ToSafetensorsResult to_safetensors(Env& env, const std::string& file, const ToSafetensorsOptions& a) {
  if (!a.sink && a.max_shard_size.empty()) check_safetensors_output_name(a.out);
  Opened o = open_checkpoint(env, file);
  ToSafetensorsResult r;
  r.out = a.out;
  r.state = o.state_path_or_best(a.state);
  r.state_note = o.state_note(a.state);
  pickle::Node* sd = o.state_dict(r.state);
  std::vector<std::pair<std::string, torch::TensorInfo>> tensors;
  size_t tensor_entries = 0;
  for (auto& row : o.tensors_of(sd)) {
    ++tensor_entries;
    std::string why = torch::safetensors_refusal(row.info);
    if (!why.empty()) {
      r.skipped.push_back("'" + row.name + "' " + why);
      continue;
    }
    r.bytes += row.info.nbytes();
    tensors.emplace_back(std::move(row.name), std::move(row.info));
  }
  if (!r.skipped.empty() && !a.skip_unsupported)
    throw UsageError(file + ": tensor " + r.skipped[0] +
                     (r.skipped.size() > 1 ? " (and " + std::to_string(r.skipped.size() - 1) + " more)" : "") +
                     "; " + option_name("skip_unsupported") + " leaves such tensors out and lists them");
  r.non_tensors = pickle::entries_of(sd)->size() - tensor_entries;
  r.tensors = tensors.size();

  torch::SafetensorsWriteOptions opts;
  opts.force = a.force;
  // A file's records are checked while the output is fsync'd.
  if (!a.ignore_crc) opts.check_source = [&] { check_record_crcs(*o.ck); };
  opts.progress = progress_for(a.progress, a.out);
  if (!a.max_shard_size.empty()) {
    if (a.sink) throw UsageError(option_name("max_shard_size") + " writes a folder: " + option_name("out") + " names it, not standard output");
    auto w = torch::write_sharded_safetensors(*o.ck, tensors, env, a.out, torch::parse_shard_size(a.max_shard_size),
                                              opts);
    r.sharded = true;
    r.files = w.plan.files.size();
    r.wrote_index = w.wrote_index;
  } else if (a.sink) {
    if (!a.ignore_crc) check_record_crcs(*o.ck);  // before any byte goes out
    torch::write_safetensors_to(*o.ck, tensors, *a.sink, opts);
  } else {
    torch::write_safetensors(*o.ck, tensors, env, a.out, opts);
  }
  return r;
}

namespace {

torch::SaveOptions save_options(const FromSafetensorsOptions& a) {
  torch::SaveOptions so;
  so.force = a.force;
  so.dialect = dialect_of(a.dialect);
  so.progress = progress_for(a.progress, a.out);
  return so;
}

}  // namespace

FromSafetensorsResult from_safetensors(Env& env, const std::string& file, const FromSafetensorsOptions& a) {
  std::string index = torch::safetensors_index_of(file);
  if (!index.empty() && !a.into.empty()) throw UsageError(option_name("into") + " takes one .safetensors file, not an index");
  FromSafetensorsResult r;
  r.out = a.out;
  if (a.into.empty()) {
    // A folder without an index holds one model.safetensors.
    const std::string single = index.empty() && env.is_directory(file) ? file + "/model.safetensors" : file;
    auto ck = index.empty() ? torch::checkpoint_from_safetensors(env, single)
                            : torch::checkpoint_from_safetensors_index(env, index);
    torch::save(*ck, ck->root(), env, a.out, save_options(a));
    r.tensors = pickle::entries_of(ck->root())->size();
    return r;
  }
  Opened t = open_checkpoint(env, a.into);
  r.state = t.state_path_or_best(a.state);
  pickle::Node* sd = t.state_dict(r.state);
  std::shared_ptr<RandomAccessFile> in = env.open_read(file);
  torch::SafetensorsHeader header = torch::read_safetensors(*in);
  auto report = torch::replace_tensors_from_safetensors(*t.ck, sd, header, in, file);
  if (!report.differences.empty())
    throw SafetensorsMismatch(file + " does not match '" + (r.state.empty() ? "(root)" : r.state) + "' of " + a.into +
                                  ": " + std::to_string(report.differences.size()) +
                                  " difference(s) above; nothing written",
                              report.differences);
  r.dtype_changes = report.dtype_changes;
  torch::save(*t.ck, t.ck->root(), env, a.out, save_options(a));
  r.replaced = report.replaced;
  r.tensors = report.replaced;
  return r;
}

}  // namespace ckpt::api
