// The bodies of the libFuzzer targets, shared with the unit test that replays
// tests/fuzz/regressions/<target>/* in every build (gcc too). Each takes any
// bytes; a ckpt::Error is the expected answer to bad input, anything else
// (a crash, a sanitizer report, another exception, a broken invariant) is a bug.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "container/zip_reader.h"
#include "omegaconf/override.h"
#include "omegaconf/yaml.h"
#include "pickle/pickler.h"
#include "pickle/scan.h"
#include "pickle/unpickler.h"
#include "torch/checkpoint.h"
#include "torch/container_kind.h"
#include "torch/safety_scan.h"
#include "torch/safetensors.h"
#include "util/error.h"

namespace ckpt::fuzz {

// A broken invariant: abort, so that libFuzzer keeps the input.
[[noreturn]] inline void invariant_failed(const char* what) {
  std::fprintf(stderr, "fuzz invariant failed: %s\n", what);
  std::abort();
}

class MemoryFile : public RandomAccessFile {
 public:
  explicit MemoryFile(std::string data) : data_(std::move(data)) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    if (offset > data_.size() || n > data_.size() - offset)
      throw FormatError(path_ + ": read past the end (fuzz input)");
    std::memcpy(buf, data_.data() + offset, n);
  }
  uint64_t size() const override { return data_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string data_;
  std::string path_ = "fuzz.zip";
};

// An Env whose one readable file is the fuzz input (for the checkpoint and
// scan entry points, which open files by path).
class MemoryEnv : public Env {
 public:
  explicit MemoryEnv(std::string data) : data_(std::move(data)) {}
  std::unique_ptr<RandomAccessFile> open_read(const std::string&) override {
    return std::make_unique<MemoryFile>(data_);
  }
  std::unique_ptr<WritableFile> create(const std::string& path) override {
    throw UsageError(path + ": the fuzz env writes nothing");
  }
  void rename(const std::string&, const std::string&) override {}
  void remove(const std::string&) override {}
  bool exists(const std::string&) override { return true; }
  void sync_dir(const std::string&) override {}

 private:
  std::string data_;
};

// The legacy container (any pickle protocol) and the container decision:
// Checkpoint::open, every tensor of the graph, and `scan`, which must never
// call a file safe that the loader cannot read.
inline void legacy_one(std::string_view input) {
  MemoryEnv env{std::string(input)};
  try {
    MemoryFile f{std::string(input)};
    torch::detect_container(f);
  } catch (const Error&) {
  }
  bool loaded = false;
  try {
    auto ck = torch::Checkpoint::open(env, "fuzz.pt");
    loaded = true;
    std::vector<const pickle::Node*> stack{ck->root()};
    size_t visited = 0;
    while (!stack.empty() && visited++ < 100000) {
      const pickle::Node* n = stack.back();
      stack.pop_back();
      if (!n) continue;
      try {
        if (auto t = ck->tensor(n)) {
          t->view_problem();
          continue;
        }
      } catch (const Error&) {
      }
      for (const pickle::Node* c : n->items) stack.push_back(c);
      for (auto& [k, v] : n->entries) stack.push_back(v);
    }
  } catch (const Error&) {
  }
  try {
    torch::SafetyScan scan = torch::scan_file(env, "fuzz.pt");
    if (scan.verdict() == torch::Verdict::Safe && !loaded && scan.container == "legacy")
      invariant_failed("scan called a legacy file safe that the loader cannot read");
  } catch (const Error&) {
  }
}

// The safetensors header reader: validation must hold for what it accepts.
inline void safetensors_one(std::string_view input) {
  try {
    MemoryFile f{std::string(input)};
    torch::SafetensorsHeader h = torch::read_safetensors(f);
    (void)h;
  } catch (const Error&) {
  }
}

// The zip reader: open, then read and CRC every record of a modest size.
inline void zip_one(std::string_view input) {
  try {
    auto file = std::make_unique<MemoryFile>(std::string(input));
    container::ZipReader zip(std::move(file), container::ZipReadLimits{uint64_t{64} << 20});
    for (const auto& r : zip.records()) {
      zip.relative_name(r);
      zip.find(zip.relative_name(r));
      if (r.size > (uint64_t{16} << 20)) continue;
      try {
        std::string data = zip.read(r, uint64_t{16} << 20);
        if (data.size() != r.size) invariant_failed("read() size differs from the declared size");
        zip.compute_crc(r);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
}

// The unpickler, the writer and the scanner: what the unpickler reads, the
// writer writes, and that reads back to the same bytes again.
inline void unpickle_one(std::string_view input) {
  try {
    pickle::scan_globals(input, "fuzz");
  } catch (const Error&) {
  }
  pickle::Graph g;
  try {
    g = pickle::unpickle(input, {.limits = {}, .source = "fuzz"});
  } catch (const Error&) {
    return;
  }
  std::string once;
  try {
    once = pickle::pickle(g.root);
  } catch (const Error&) {
    return;  // a graph the protocol-2 writer refuses (reported, not a crash)
  }
  pickle::Graph again = pickle::unpickle(once, {.limits = {}, .source = "fuzz round trip"});
  if (pickle::pickle(again.root) != once) invariant_failed("pickle(unpickle(pickle(g))) != pickle(g)");
}

// The YAML reader and emitter.
inline void yaml_one(std::string_view input) {
  omegaconf::Value v;
  try {
    v = omegaconf::parse_yaml(input);
  } catch (const Error&) {
    return;
  }
  try {
    omegaconf::to_yaml(v);
  } catch (const Error&) {
  }
}

// The Hydra override parser.
inline void override_one(std::string_view input) {
  try {
    omegaconf::Override o = omegaconf::parse_override(input);
    if (o.value) omegaconf::to_yaml(*o.value);
  } catch (const Error&) {
  }
}

}  // namespace ckpt::fuzz
