// Issue 19, class 1: the zip decisions torch's reader (PyTorchStreamReader over
// miniz) makes, which ZipReader follows: the last end-record signature in the
// file, record lookup ignoring ASCII case with miniz's pick among duplicates,
// and the TorchScript routing predicate. Each case was checked against torch
// 2.13 and 1.13 (tests/e2e/differential.py runs such archives through torch).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "container/zip_format.h"
#include "container/zip_reader.h"
#include "util/crc32.h"
#include "util/error.h"

namespace ckpt::container {
namespace {

class MemFile : public RandomAccessFile {
 public:
  explicit MemFile(std::string d) : data_(std::move(d)) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    if (offset > data_.size() || n > data_.size() - offset) throw FormatError("mem: read past the end");
    std::memcpy(buf, data_.data() + offset, n);
  }
  uint64_t size() const override { return data_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string data_, path_ = "mem.zip";
};

void put16(std::string& s, uint16_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>(v >> 8);
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v & 0xFFFF));
  put16(s, static_cast<uint16_t>(v >> 16));
}

// Local headers for every entry, then one central directory + end record
// per element of `dirs` (entry indices), then `tail`.
std::string build(const std::vector<std::pair<std::string, std::string>>& entries,
                  std::vector<std::vector<size_t>> dirs = {}, const std::string& comment = "",
                  const std::string& tail = "") {
  std::string out;
  std::vector<uint32_t> offsets;
  for (const auto& [name, data] : entries) {
    offsets.push_back(static_cast<uint32_t>(out.size()));
    put32(out, zipfmt::kLocalHeaderSig);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put32(out, crc32_update(0, data.data(), data.size()));
    put32(out, static_cast<uint32_t>(data.size()));
    put32(out, static_cast<uint32_t>(data.size()));
    put16(out, static_cast<uint16_t>(name.size()));
    put16(out, 0);
    out += name + data;
  }
  if (dirs.empty()) {
    dirs.emplace_back();
    for (size_t i = 0; i < entries.size(); ++i) dirs.back().push_back(i);
  }
  for (size_t d = 0; d < dirs.size(); ++d) {
    const uint32_t cd_offset = static_cast<uint32_t>(out.size());
    for (size_t i : dirs[d]) {
      const auto& [name, data] = entries[i];
      put32(out, zipfmt::kCentralHeaderSig);
      for (int k = 0; k < 4; ++k) put16(out, 0);
      put16(out, 0);
      put16(out, 0);
      put32(out, crc32_update(0, data.data(), data.size()));
      put32(out, static_cast<uint32_t>(data.size()));
      put32(out, static_cast<uint32_t>(data.size()));
      put16(out, static_cast<uint16_t>(name.size()));
      for (int k = 0; k < 4; ++k) put16(out, 0);
      put32(out, 0);
      put32(out, offsets[i]);
      out += name;
    }
    const uint32_t cd_size = static_cast<uint32_t>(out.size()) - cd_offset;
    const std::string c = d + 1 == dirs.size() ? comment : "";
    put32(out, zipfmt::kEndSig);
    put16(out, 0);
    put16(out, 0);
    put16(out, static_cast<uint16_t>(dirs[d].size()));
    put16(out, static_cast<uint16_t>(dirs[d].size()));
    put32(out, cd_size);
    put32(out, cd_offset);
    put16(out, static_cast<uint16_t>(c.size()));
    out += c;
  }
  return out + tail;
}

ZipReader open(std::string bytes) { return ZipReader(std::make_unique<MemFile>(std::move(bytes))); }

std::string data_of(const ZipReader& z, std::string_view rel) {
  const ZipRecord* r = z.find(rel);
  return r ? z.read(*r, 1 << 20) : "<none>";
}

TEST(ZipTorchDecisions, LookupIgnoresAsciiCaseAsMinizDoes) {
  ZipReader z = open(build({{"a/version", "3"}, {"a/DATA.PKL", "pickle"}, {"a/Data/0", "bytes"}}));
  EXPECT_EQ(data_of(z, "data.pkl"), "pickle");
  EXPECT_EQ(data_of(z, "data/0"), "bytes");
  EXPECT_EQ(data_of(z, "data/1"), "<none>");
  EXPECT_FALSE(z.has_case_duplicates());
}

TEST(ZipTorchDecisions, DuplicatesResolveAsMinizHeapSortAndBinarySearch) {
  // miniz's heap sort is not stable; for these directories torch 2.13 and
  // 1.13 read the values below (checked by loading the archives with torch).
  ZipReader two = open(build({{"a/version", "3"}, {"a/data/0", "first"}, {"a/DATA/0", "second"}}));
  EXPECT_TRUE(two.has_case_duplicates());
  EXPECT_EQ(data_of(two, "data/0"), "second");
  ZipReader rev = open(build({{"a/version", "3"}, {"a/DATA/0", "first"}, {"a/data/0", "second"}}));
  EXPECT_EQ(data_of(rev, "data/0"), "second");
  ZipReader exact = open(build({{"a/data.pkl", "one"}, {"a/version", "3"}, {"a/data.pkl", "two"}}));
  EXPECT_TRUE(exact.has_case_duplicates());
  EXPECT_EQ(data_of(exact, "data.pkl"), "two");
}

TEST(ZipTorchDecisions, LastEndRecordSignatureWins) {
  // Two central directories: the first lists 'benign', the second 'payload'
  // (both named a/data.pkl); miniz takes the last PK\5\6 in the file.
  std::vector<std::pair<std::string, std::string>> e = {
      {"a/version", "3"}, {"a/data.pkl", "benign"}, {"a/data.pkl", "payload"}};
  EXPECT_EQ(data_of(open(build(e, {{0, 1}, {0, 2}})), "data.pkl"), "payload");
  EXPECT_EQ(data_of(open(build(e, {{0, 2}, {0, 1}})), "data.pkl"), "benign");
  // A signature inside the last record's comment is taken: an empty archive
  // (torch: "archive does not contain any files").
  std::string with_sig = build({{"a/version", "3"}, {"a/data.pkl", "x"}}, {}, std::string("ab") + "PK\x05\x06" + std::string(18, '\0'));
  EXPECT_TRUE(open(with_sig).records().empty());
  // Trailing bytes after the end record: fine, the signature is found.
  EXPECT_EQ(data_of(open(build({{"a/version", "3"}, {"a/data.pkl", "x"}}, {}, "", std::string(100, '\0'))), "data.pkl"),
            "x");
  // A comment whose length runs past the end of the file: miniz ignores it.
  std::string bad_comment = build({{"a/version", "3"}, {"a/data.pkl", "x"}});
  bad_comment[bad_comment.size() - 2] = '\x40';
  EXPECT_EQ(data_of(open(bad_comment), "data.pkl"), "x");
}

TEST(ZipTorchDecisions, TorchScriptRoutingIsExactNameUpToNul) {
  EXPECT_TRUE(open(build({{"a/data.pkl", "x"}, {"a/constants.pkl", "y"}})).torch_routes_to_jit());
  EXPECT_FALSE(open(build({{"a/data.pkl", "x"}, {"a/Constants.pkl", "y"}})).torch_routes_to_jit());
  EXPECT_TRUE(open(build({{"a/data.pkl", "x"}, {std::string("a/constants.pkl\0zz", 18), "y"}})).torch_routes_to_jit());
  EXPECT_FALSE(open(build({{"a/data.pkl", "x"}, {"b/constants.pkl", "y"}})).torch_routes_to_jit());
}

}  // namespace
}  // namespace ckpt::container
