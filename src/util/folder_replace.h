// Replacing a set of files inside a folder as one atomic step: the new files
// are written into a temporary folder beside it (with hard links to the
// folder's other files), fsync'd, and the two folders' names are exchanged
// in one rename (renameat2 RENAME_EXCHANGE), then the parent folder is
// fsync'd. A reader, or a power loss at any point, sees the old folder or
// the new one, never a mix of the two sets (docs/CRASH_SAFETY.md). Used for
// safetensors shard sets and bundle folders; and, replacing a folder as a
// whole (Whole), for the transformers converters' output folders.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "util/env.h"

namespace ckpt {

class FolderReplace {
 public:
  // dir: the folder (created if missing; a link to a folder is followed).
  // in_set(name): whether a file already in dir belongs to the set being
  // replaced (those are dropped; the others kept). Throws UsageError when the
  // set has files there and !force, or when dir holds a sub-folder.
  FolderReplace(Env& env, const std::string& dir, std::function<bool(const std::string&)> in_set, bool force);
  // The folder as a whole: nothing of an existing dir is kept, sub-folders
  // and all (removed once the exchange is durable). Throws UsageError when
  // dir exists and !force, or is not a folder.
  struct Whole {};
  FolderReplace(Env& env, const std::string& dir, Whole, bool force);
  ~FolderReplace();  // without commit(): the temporary folder is removed
  FolderReplace(const FolderReplace&) = delete;
  FolderReplace& operator=(const FolderReplace&) = delete;

  // Where to write the new file `name` (inside the temporary folder).
  std::string path(const std::string& name) const;
  // The files of the old set (names), as found.
  const std::vector<std::string>& old_set() const { return old_set_; }
  void commit();

 private:
  void make_temp();
  void remove_temp() noexcept;
  Env& env_;
  std::string dir_, target_, tmp_;
  std::vector<std::string> kept_, old_set_;
  bool existed_ = false, swapped_ = false;
  int signal_slot_ = -1;  // the temporary folder, removed on a signal (util/signal_cleanup.h)
};

}  // namespace ckpt
