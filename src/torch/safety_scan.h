// `ckpt scan`: every global the pickles of a file name, how each is used, and
// whether AudioCraft's allowlist accepts it. Works on torch zip checkpoints
// (every *.pkl record), legacy files (all their back-to-back pickles) and
// bare pickle files (the pickle pickle.load reads: up to the first STOP).
// Nothing is unpickled into objects, nothing is run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pickle/scan.h"
#include "util/env.h"

namespace ckpt::torch {

struct ScannedPickle {
  std::string name;      // "archive/data.pkl", "legacy object pickle", "pickle 1"
  uint64_t offset = 0;   // in the file (zip: of the record's data)
  uint64_t size = 0;     // bytes up to and including STOP (0 when unreadable)
  bool complete = false; // read up to STOP without error
  // Bytes after STOP in a bare file or zip record. pickle.load and
  // torch.load never read them, so they are reported but not scanned.
  uint64_t trailing_bytes = 0;
};

struct ScannedGlobal {
  pickle::GlobalUse use;
  std::string record;  // the ScannedPickle::name it was found in
  bool allowed = false;
  uint64_t file_offset = 0;  // of the opcode that first names it (use.first_offset is in the pickle)
};

enum class Verdict { Safe, Unsafe, Unreadable };
const char* to_string(Verdict v);

struct SafetyScan {
  std::string path;
  std::string container;  // "zip", "legacy", "pickle", or "unknown"
  std::vector<ScannedPickle> pickles;
  std::vector<ScannedGlobal> globals;  // per pickle, in order of first use
  // Why the file could not be read whole; empty when it could.
  std::string problem;

  bool readable() const { return problem.empty(); }
  bool all_allowed() const;
  // Unreadable wins over unsafe: a file not read whole is never called safe
  // and the globals found so far are still listed.
  Verdict verdict() const;
};

struct ScanLimits {
  uint64_t max_pickle_bytes = uint64_t{1} << 30;  // one pickle record / legacy head / bare file
  // A compressed record is inflated in memory: less for those (bombs).
  uint64_t max_inflated_pickle_bytes = uint64_t{64} << 20;
};

// Never throws FormatError for a damaged or hostile file: that becomes
// `problem`. IoError (cannot open or read) is thrown.
SafetyScan scan_file(Env& env, const std::string& path, const ScanLimits& limits = {});

}  // namespace ckpt::torch
