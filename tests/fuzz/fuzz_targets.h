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
