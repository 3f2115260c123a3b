#include "util/folder_replace.h"

#include "util/error.h"
#include "util/signal_cleanup.h"

namespace ckpt {

FolderReplace::FolderReplace(Env& env, const std::string& dir, std::function<bool(const std::string&)> in_set,
                             bool force)
    : env_(env), dir_(dir) {
  target_ = env_.resolve_links(dir);
  while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  existed_ = env_.is_directory(target_);
  if (!existed_ && env_.exists(target_)) throw UsageError(dir + " exists and is not a folder");
  if (existed_) {
    for (const auto& name : env_.list_directory(target_)) {
      if (in_set(name)) {
        old_set_.push_back(name);
        continue;
      }
      if (env_.is_directory(target_ + "/" + name))
        throw UsageError(dir + " holds a folder (" + name +
                         "): its files are replaced as one set only in a folder of files; write to a new folder");
      kept_.push_back(name);
    }
    if (!force && !old_set_.empty())
      throw UsageError(target_ + "/" + old_set_.front() + " exists (use " + option_set("force") + " to replace the files of " + dir + ")");
    for (const auto& name : old_set_) refuse_read_only(env_, target_ + "/" + name);
  }
  make_temp();
}

FolderReplace::FolderReplace(Env& env, const std::string& dir, Whole, bool force) : env_(env), dir_(dir) {
  target_ = env_.resolve_links(dir);
  while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  if (env_.exists(target_) && !force) throw UsageError(dir + " exists (use " + option_set("force") + " to replace it)");
  existed_ = env_.is_directory(target_);
  if (!existed_ && env_.exists(target_)) throw UsageError(dir + " exists and is not a folder");
  if (existed_) old_set_ = env_.list_directory(target_);
  for (const auto& name : old_set_) refuse_read_only(env_, target_ + "/" + name);
  make_temp();
}

void FolderReplace::make_temp() {
  // 0777 less the umask: the folder becomes the output, made as mkdir(1)
  // and os.makedirs make one.
  // Ctrl-C while the new files are written removes them with the folder
  // (they may be gigabytes of shards), as AtomicOutput removes its temporary;
  // a signal waits until the folder, made under a name known only then, is
  // registered.
  SignalHold hold;
  tmp_ = env_.create_temp_directory(dirname_of(target_), "." + basename_of(target_) + ".ckpt-tmp-", 0777);
  signal_slot_ = register_temp_directory(tmp_);
}

FolderReplace::~FolderReplace() {
  // Before the exchange the temporary folder is the half-written new set;
  // after it, the old folder (removed once the exchange is durable).
  if (!swapped_) remove_temp();
  unregister_temp(signal_slot_);
}

std::string FolderReplace::path(const std::string& name) const { return tmp_ + "/" + name; }

// The temporary folder and everything in it (after the exchange, the old
// folder: sub-folders too when it was replaced Whole), removed through the
// Env without recursion and without following links: a link is removed as
// itself, never what it points to.
void FolderReplace::remove_temp() noexcept {
  try {
    std::vector<std::pair<std::string, bool>> folders{{tmp_, false}};  // (path, listed)
    while (!folders.empty()) {
      if (folders.back().second) {
        env_.remove_directory(folders.back().first);
        folders.pop_back();
        continue;
      }
      folders.back().second = true;
      const std::string dir = folders.back().first;
      for (const auto& name : env_.list_directory(dir)) {
        const std::string p = dir + "/" + name;
        if (env_.resolve_links(p) == p && env_.is_directory(p)) folders.emplace_back(p, false);
        else env_.remove(p);
      }
    }
  } catch (...) {
  }
}

void FolderReplace::commit() {
  for (const auto& name : kept_) env_.link(target_ + "/" + name, tmp_ + "/" + name);
  env_.sync_dir(tmp_);
  {
    // From the exchange on, tmp_ names the old folder, which may go only once
    // the exchange is durable: a signal waits until then, and then removes it.
    SignalHold hold;
    if (existed_) env_.exchange(tmp_, target_);
    else env_.rename(tmp_, target_);
    swapped_ = true;
    unregister_temp(signal_slot_);
    signal_slot_ = -1;
    // Durable before the old files go: were they unlinked first, a power loss
    // could undo the exchange and keep the unlinks. (Should that fsync fail,
    // the error is reported and the old files still go: nothing half-written
    // is left behind by a process that lives to report it.)
    try {
      env_.sync_dir(dirname_of(target_));
    } catch (...) {
      if (existed_) remove_temp();
      throw;
    }
    if (existed_) signal_slot_ = register_temp_directory(tmp_);
  }
  if (existed_) remove_temp();
}

}  // namespace ckpt
