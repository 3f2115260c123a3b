// `scan`: the globals a file's pickles name, checked against AudioCraft's
// allowlist, without unpickling anything.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/schema.h"
#include "util/env.h"

namespace ckpt::api {

struct ScannedPickleEntry {
  static constexpr const char* kName = "ScannedPickle";
  static constexpr const char* kDoc = "a pickle of the file, and how much of it was read";
  std::string name;
  uint64_t offset = 0, size = 0;
  bool complete = false;
  uint64_t trailing_bytes = 0;
  template <class V>
  static void describe(V& v) {
    v.field("name", &ScannedPickleEntry::name, "the record (or the file) holding it");
    v.field("offset", &ScannedPickleEntry::offset, "where it starts in the file");
    v.field("size", &ScannedPickleEntry::size, "its size");
    v.field("complete", &ScannedPickleEntry::complete, "read to its STOP");
    v.field("trailing_bytes", &ScannedPickleEntry::trailing_bytes, "bytes after the STOP (no loader reads them)");
  }
};

struct ScannedGlobalEntry {
  static constexpr const char* kName = "ScannedGlobal";
  static constexpr const char* kDoc = "a global a pickle names, how it is used, and whether it is allowed";
  std::string module, name;
  bool called = false, instantiated = false, built = false, persistent_id = false, allowed = false;
  std::string record;
  uint64_t pickle_offset = 0, file_offset = 0;
  template <class V>
  static void describe(V& v) {
    using T = ScannedGlobalEntry;
    v.field("module", &T::module, "its module");
    v.field("name", &T::name, "its name");
    v.field("called", &T::called, "called (REDUCE, INST, OBJ)");
    v.field("instantiated", &T::instantiated, "instantiated (NEWOBJ, INST, OBJ)");
    v.field("built", &T::built, "an object it made gets BUILD");
    v.field("persistent_id", &T::persistent_id, "inside a persistent id (torch: the storage class)");
    v.field("allowed", &T::allowed, "on the allowlist");
    v.field("record", &T::record, "the pickle it was found in");
    v.field("pickle_offset", &T::pickle_offset, "offset of the first opcode naming it, in the pickle");
    v.field("file_offset", &T::file_offset, "and in the file");
  }
};

struct ScanResult {
  static constexpr const char* kName = "ScanResult";
  static constexpr const char* kDoc = "every global the file's pickles name, against the allowlist";
  std::string file;
  std::string container;  // "zip", "legacy", "pickle", "unknown"
  std::string verdict;    // "safe", "unsafe", "unreadable"
  std::vector<ScannedPickleEntry> pickles;
  std::vector<ScannedGlobalEntry> globals;
  std::optional<std::string> problem;  // why the file could not be read whole
  template <class V>
  static void describe(V& v) {
    v.field("file", &ScanResult::file, "the file");
    v.field("container", &ScanResult::container, "zip, legacy, pickle or unknown");
    v.field("verdict", &ScanResult::verdict,
            "safe (every global allowed, every pickle read whole), unsafe, or unreadable (never safe)");
    v.field("pickles", &ScanResult::pickles, "the pickles read");
    v.field("globals", &ScanResult::globals, "per pickle, in order of first use");
    v.field("problem", &ScanResult::problem, "why the file could not be read whole");
  }
};

// A damaged or hostile file is no exception: the scan says what it read and
// why it stopped (verdict unreadable). IoError when the file cannot be read.
ScanResult scan(Env& env, const std::string& file);

}  // namespace ckpt::api
