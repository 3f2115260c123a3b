#include "api/checkpoint.h"

#include <cerrno>
#include <cstdio>
#include <set>

#include "api/format.h"
#include "omegaconf/dictconfig.h"
#include "torch/dcp.h"
#include "torch/module.h"
#include "torch/open_any.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::api {

bool CheckpointTensorTest::is_tensor(const pickle::Node* n) const {
  try {
    return ck_.tensor(n).has_value();
  } catch (const Error&) {
    return false;
  }
}

void pick_state_dict(Opened& o);

namespace {

// A torch.jit.save archive: compiled code under code/ and a data.pkl whose
// root is a `__torch__` object (torch.load hands such a zip to torch.jit.load).
bool is_script_object(const pickle::Node* n) {
  return n && n->kind == pickle::Kind::Object && n->callable && n->callable->kind == pickle::Kind::Global &&
         n->callable->text.rfind("__torch__", 0) == 0;
}

bool is_torchscript(const torch::Checkpoint& ck) {
  if (!ck.zip() || !is_script_object(ck.root())) return false;
  for (const auto& r : ck.zip()->records())
    if (ck.zip()->relative_name(r).rfind("code/", 0) == 0) return true;
  return false;
}

// "; did you mean 'examples/musicgen_tiny_training.th'?" for a missing
// local file whose folder holds a name a few edits away; "" otherwise.
std::string missing_file_hint(Env& env, const std::string& path) {
  if (path.empty() || path == "-" || path.find("://") != std::string::npos) return "";
  try {
    std::string dir = dirname_of(path);
    std::vector<std::string> names = env.list_directory(dir.empty() ? "." : dir);
    std::string m = closest_match(basename_of(path), names);
    if (m.empty()) return "";
    std::string shown = path.substr(0, path.size() - basename_of(path).size()) + m;
    return "; did you mean '" + shown + "'?";
  } catch (const Error&) {
    return "";  // the folder is missing or unreadable: the message as it was
  }
}

}  // namespace

std::string checkpoint_files_hint(Env& env, const std::string& dir) {
  std::vector<std::string> files;
  try {
    for (const auto& n : env.list_directory(dir))
      for (const char* ext : {".th", ".pt", ".pth", ".bin", ".ckpt", ".safetensors"}) {
        std::string e = ext;
        if (n.size() > e.size() && n.compare(n.size() - e.size(), e.size(), e) == 0) {
          files.push_back(n);
          break;
        }
      }
  } catch (const Error&) {
  }
  std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  if (files.empty()) return "name a checkpoint file (it holds none with a .th, .pt, .pth, .bin, .ckpt or .safetensors name)";
  std::string m = "name a checkpoint file in it (" + prefix + files[0];
  if (files.size() > 1) m += ", " + prefix + files[1];
  if (files.size() > 2) m += ", ... " + std::to_string(files.size() - 2) + " more";
  return m + ")";
}

IoError folder_given_error(Env& env, const std::string& dir) {
  if (torch::DcpCheckpoint::is_dcp_folder(env, dir)) {
    // A checkpoint, but one this command does not read: say which do, and how to make a file of it.
    std::string name = dir;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    return IoError(dir + " is a torch distributed checkpoint (DCP) folder, which this command does not read "
                   "(info, tensors, verify, stats, scan and diff do): make one file of it first with 'ckpt consolidate " +
                   dir + " -o " + name + ".th'", EISDIR);
  }
  return IoError(dir + " is a folder: " + checkpoint_files_hint(env, dir), EISDIR);
}

Opened open_checkpoint(Env& env, const std::string& path) {
  Opened o;
  torch::AnyCheckpoint any;
  try {
    any = torch::open_any(env, path);
  } catch (const IoError& e) {
    if (e.error_number() == EISDIR) throw folder_given_error(env, path);
    if (e.error_number() != ENOENT) throw;
    std::string hint = missing_file_hint(env, path);
    if (hint.empty()) throw;
    throw IoError(e.what() + hint, e.error_number());
  }
  o.ck = std::move(any.ck);
  o.safetensors = any.safetensors;
  o.file_size = any.file_size;
  o.layout = audiocraft::detect_layout(o.ck->root(), CheckpointTensorTest(*o.ck));
  if (is_torchscript(*o.ck)) o.layout = audiocraft::Layout::TorchScript;
  if (o.layout == audiocraft::Layout::Training && audiocraft::fsdp_rank_of(path))
    o.layout = audiocraft::Layout::FsdpShard;
  o.best_state = audiocraft::best_state_path(o.ck->root(), o.layout);
  if (o.layout == audiocraft::Layout::Lightning && o.best_state) o.state_source = "Lightning's state_dict";
  if (o.layout == audiocraft::Layout::Module) o.state_source = "the pickled nn.Module's state_dict()";
  if (o.layout == audiocraft::Layout::TorchScript) o.state_source = "the TorchScript module's state_dict()";
  if (!o.best_state && o.layout == audiocraft::Layout::Other) pick_state_dict(o);
  return o;
}

void require_config(const Opened& o, const std::string& file) {
  const pickle::Node* root = o.ck->root();
  if (pickle::is_mapping(root) && pickle::get_item(root, "xp.cfg")) return;
  // A config under another top-level key (a DictConfig saved as {'cfg': cfg, ...}): cfg --path reads it.
  std::string elsewhere;
  if (const auto* entries = pickle::entries_of(root))
    for (const auto& [k, v] : *entries)
      if (k->kind == pickle::Kind::Str && omegaconf::is_config_node(v)) {
        elsewhere = "; it has a config at '" + k->text + "': 'ckpt cfg " + file + " --path " + k->text +
                    "' reads it (overrides edit xp.cfg only)";
        break;
      }
  throw UsageError(file + " has no 'xp.cfg' (" + audiocraft::to_string(o.layout) +
                   "): cfg and config overrides read AudioCraft's xp.cfg (" +
                   (elsewhere.empty() ? "'ckpt info " + file + "' lists its keys)" : "top level)" + elsewhere));
}

std::string path_hint(pickle::Node* root, const std::string& path) {
  std::string reached;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    std::string next = reached.empty() ? part : reached + "/" + part;
    if (!audiocraft::resolve_path(root, next)) {
      pickle::Node* parent = audiocraft::resolve_path(root, reached);
      if (!parent) return "";
      std::vector<std::string> keys;
      for (auto& [k, v] : audiocraft::path_children(parent)) keys.push_back(k);
      // AudioCraft's fsdp_best_state is {} outside FSDP training: say so
      // rather than leave "no object" looking like a damaged file.
      if (keys.empty() && pickle::entries_of(parent))
        return "; '" + (reached.empty() ? std::string("/") : reached) + "' is empty";
      std::string m = closest_match(part, keys);
      if (m.empty()) return "";
      // The whole path when the rest of it resolves under the closest key
      // ('bestt_state/model' -> 'best_state/model', not 'best_state').
      std::string shown = reached.empty() ? m : reached + "/" + m;
      if (slash != std::string::npos && audiocraft::resolve_path(root, shown + path.substr(slash)))
        shown += path.substr(slash);
      return "; did you mean '" + shown + "'?";
    }
    reached = next;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return "";
}

std::string Opened::default_state_path() const {
  if (!best_state && layout == audiocraft::Layout::FsdpShard) {
    // The seed's workflow run on checkpoint.th.1: the file to edit is rank 0's.
    const std::string& path = ck->path();
    throw UsageError(path + ": rank " + std::to_string(audiocraft::fsdp_rank_of(path).value_or(0)) +
                     "'s shard of an FSDP checkpoint, which has no best state: the full state is fsdp_best_state in "
                     "rank 0's " + audiocraft::fsdp_rank0_file(path) + " (use that file), or name one of this shard's "
                     "state dicts with " + option_set("state", "PATH") + " ('ckpt info " + path + "' lists them)");
  }
  if (!best_state) {
    std::string list;
    for (const auto& c : state_candidates) list += (list.empty() ? "" : ", ") + std::string("'") + c + "'";
    throw UsageError(ck->path() + ": no best state in a checkpoint of layout '" + audiocraft::to_string(layout) +
                     "'" + (list.empty() ? "" : " and " + std::to_string(state_candidates.size()) + " state dicts (" + list + ")") +
                     ": name one with " + option_set("state", "PATH"));
  }
  return *best_state;
}

namespace {

// A mapping of string keys to tensors (at least one), or a pickled module.
bool is_state_dict_node(const Opened& o, const pickle::Node* n, const CheckpointTensorTest& is_tensor) {
  if (torch::is_module(n)) return true;
  auto* e = pickle::entries_of(n);
  if (!e || e->empty()) return false;
  for (auto& [k, v] : *e)
    if (k->kind != pickle::Kind::Str || !is_tensor.is_tensor(v)) return false;
  (void)o;
  return true;
}

}  // namespace

std::vector<std::string> Opened::find_state_dict_paths() const {
  std::vector<std::string> out;
  CheckpointTensorTest is_tensor(*ck);
  struct Item { const pickle::Node* n; std::string path; int depth; };
  std::vector<Item> stack{{ck->root(), "", 0}};
  std::set<const pickle::Node*> seen;
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (!seen.insert(it.n).second) continue;
    if (is_state_dict_node(*this, it.n, is_tensor)) {
      out.push_back(it.path);
      continue;
    }
    auto* e = pickle::entries_of(it.n);
    if (!e || it.depth >= 4 || it.path == "optimizer" || it.path == "optimizer_states") continue;
    for (auto i = e->rbegin(); i != e->rend(); ++i)
      stack.push_back({i->second, it.path.empty() ? key_text(i->first) : it.path + "/" + key_text(i->first), it.depth + 1});
  }
  return out;
}

// Without an AudioCraft best state: the state dict the common trainers save,
// by its key (model_state_dict, state_dict, model, model/state_dict), else
// the only state dict in the file; else none, with the candidates listed.
void pick_state_dict(Opened& o) {
  CheckpointTensorTest is_tensor(*o.ck);
  for (const char* key : {"model_state_dict", "state_dict", "model", "model/state_dict"}) {
    const pickle::Node* n = audiocraft::resolve_path(o.ck->root(), key);
    if (n && is_state_dict_node(o, n, is_tensor)) {
      o.best_state = key;
      o.state_source = torch::is_module(n) ? "the pickled nn.Module's state_dict() at '" + std::string(key) + "'"
                                           : "'" + std::string(key) + "'";
      return;
    }
  }
  o.state_candidates = o.find_state_dict_paths();
  if (o.state_candidates.size() == 1) {
    o.best_state = o.state_candidates.front();
    o.state_source = "the only state dict in the file";
    o.state_candidates.clear();
  }
}

std::string folder_checkpoint(Env& env, const std::string& path) { return torch::folder_checkpoint(env, path); }

std::string Opened::state_note(const std::optional<std::string>& requested) const {
  if (requested || state_source.empty() || !best_state) return "";
  return "using the state dict at '" + (best_state->empty() ? std::string("(the root)") : *best_state) + "' (" +
         state_source + ")";
}

std::string Opened::state_path_or_best(const std::optional<std::string>& path) const {
  if (!path) return default_state_path();
  return *path == "/" ? std::string() : *path;
}

pickle::Node* Opened::mapping_of(const pickle::Node* n) const {
  if (!n) return nullptr;
  if (pickle::is_mapping(n)) return const_cast<pickle::Node*>(n);
  const bool script = layout == audiocraft::Layout::TorchScript && is_script_object(n);
  if (!script && !torch::is_module(n)) return nullptr;
  for (auto& [m, sd] : module_state_dicts)
    if (m == n) return sd;
  pickle::Node* sd = nullptr;
  if (script) {
    const container::ZipReader* zip = ck->zip();
    sd = torch::script_module_state_dict(
        ck->graph(), n, [zip](const std::string& module, const std::string& name) -> std::optional<torch::ScriptClass> {
          std::string file = module;  // __torch__.torch.nn.modules.linear -> code/__torch__/torch/nn/modules/linear.py
          for (char& c : file)
            if (c == '.') c = '/';
          file = "code/" + file + ".py";
          const container::ZipRecord* r = zip->find(file);
          if (!r || r->size > (uint64_t{64} << 20)) return std::nullopt;
          return torch::parse_script_class(zip->read(*r, uint64_t{64} << 20), name);
        });
  } else {
    sd = torch::module_state_dict(ck->graph(), n);
  }
  module_state_dicts.emplace_back(n, sd);
  return sd;
}

pickle::Node* Opened::state_dict(const std::string& given) const {
  const std::string path = given == "/" ? std::string() : given;
  pickle::Node* n = audiocraft::resolve_path(ck->root(), path);
  if (!n) {
    std::string hint = path_hint(ck->root(), path);
    if (hint.size() > 9 && hint.compare(hint.size() - 9, 9, " is empty") == 0 && best_state)
      hint += ": the best state is '" + *best_state + "' (the default without " + option_name("state") + ")";
    throw UsageError(ck->path() + ": no object at '" + path + "'" + hint);
  }
  pickle::Node* m = mapping_of(n);
  if (!m) throw UsageError(ck->path() + ": '" + path + "' is not a state dict (" + describe(n, *ck) + ")");
  return m;
}

std::vector<TensorRow> Opened::tensors_of(const pickle::Node* mapping) const {
  std::vector<TensorRow> rows;
  const pickle::Node* m = mapping_of(mapping);
  if (!m) return rows;
  for (auto& [k, v] : *pickle::entries_of(m)) {
    std::optional<torch::TensorInfo> t;
    try {
      t = ck->tensor(v);
    } catch (const FormatError& e) {
      throw FormatError(ck->path() + ": tensor '" + key_text(k) + "': " + e.what());
    }
    if (!t) continue;
    rows.push_back({key_text(k), v, std::move(*t)});
  }
  return rows;
}

std::function<void(uint64_t, uint64_t)> progress_for(const ProgressFn& progress, const std::string& output) {
  if (!progress) return {};
  return [progress, output](uint64_t done, uint64_t total) { progress(output, done, total); };
}

void throw_crc_mismatch(const torch::Checkpoint& ck, const container::ZipRecord& rec, uint32_t crc, bool reading) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "CRC-32 is %08x, the directory says %08x", crc, rec.crc32);
  throw FormatError(ck.path() + ": record '" + rec.name + "' fails its CRC-32 check (" + buf + "): the file is damaged and " +
                    (reading ? "the values read from it would be wrong" : "the output would carry the damage on") +
                    " ('ckpt verify " + ck.path() + "' lists every problem); fetch or copy it again, or pass " +
                    option_set("ignore_crc") + (reading ? " to read it as it is" : " to write it as read"));
}

ValueCrcCheck::ValueCrcCheck(torch::Checkpoint& ck, bool ignore_crc) : ck_(ck) {
  if (ignore_crc) return;
  check_.on_mismatch = [&ck](const container::ZipRecord& rec, uint32_t crc) { throw_crc_mismatch(ck, rec, crc, true); };
  ck_.set_read_crc_check(&check_);
}

ValueCrcCheck::~ValueCrcCheck() {
  if (ck_.read_crc_check() == &check_) ck_.set_read_crc_check(nullptr);
}

bool matches_any(const std::vector<std::string>& globs, const std::string& name) {
  if (globs.empty()) return true;
  for (const auto& g : globs)
    if (glob_match(g, name)) return true;
  return false;
}

}  // namespace ckpt::api
