// ZipWriter's .data/serialization_id and storage alignment against goldens
// from torch 2.13's own writer (torch._C.PyTorchFileWriter, whose
// write_end_of_file adds version, byteorder and the id):
//   w = torch._C.PyTorchFileWriter("g.zip"[, True, 4096])
//   for name, data in records: w.write_record(name, data, len(data))
//   w.write_end_of_file()
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "container/zip_writer.h"
#include "util/env.h"
#include "util/error.h"

namespace ckpt::container {
namespace {

class MemorySink : public WritableFile {
 public:
  void append(std::string_view d) override { data.append(d); }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    data.append(src.read_string(offset, n));
  }
  uint64_t offset() const override { return data.size(); }
  void sync() override {}
  void close() override {}
  std::string data;
};

class MemoryFile : public RandomAccessFile {
 public:
  explicit MemoryFile(std::string data) : data_(std::move(data)) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    if (offset > data_.size() || n > data_.size() - offset) throw FormatError("mem: short read");
    std::memcpy(buf, data_.data() + offset, n);
  }
  uint64_t size() const override { return data_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string data_, path_ = "mem";
};

std::string iota_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i);
  return s;
}

TEST(SerializationId, MatchesTorchWriter) {
  MemorySink out;
  ZipWriter zw(out, "g");
  zw.add("data.pkl", "abc");
  // Data that starts with the descriptor signature: torch folds bytes 4..7
  // into the CRC half too. Copied, to take add_copy's path.
  MemoryFile src(std::string("xxPK\x07\x08\x01\x02\x03\x04rest", 14));
  zw.add_copy("sig", src, 2, 12, std::nullopt);
  zw.add("data/0", "");
  // Streamed in 7-byte chunks: the signature check must not depend on them.
  const std::string payload = iota_bytes(100);
  zw.add_stream("data/1", payload.size(), [&](const std::function<void(std::string_view)>& sink) {
    for (size_t i = 0; i < payload.size(); i += 7) sink(std::string_view(payload).substr(i, 7));
  });
  zw.add("version", "3\n");
  zw.add("byteorder", "little");
  EXPECT_EQ(zw.serialization_id(), "0679318379333346356503820028750149201448");
  zw.add_serialization_id();
  zw.finish();
  std::vector<uint64_t> offsets;
  for (const auto& e : zw.entries()) offsets.push_back(e.header_offset);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 83, 156, 256, 436, 530, 598}));
}

TEST(SerializationId, StreamedSignatureCountsLikeOneBuffer) {
  auto id_of = [](bool streamed) {
    MemorySink out;
    ZipWriter zw(out, "a");
    const std::string data("PK\x07\x08\xAA\xBB\xCC\xDDtail", 12);
    if (streamed) {
      zw.add_stream("x", data.size(), [&](const std::function<void(std::string_view)>& sink) {
        for (char c : data) sink(std::string_view(&c, 1));
      });
    } else {
      zw.add("x", data);
    }
    return zw.serialization_id();
  };
  EXPECT_EQ(id_of(true), id_of(false));
  MemorySink out;
  ZipWriter plain(out, "a");
  plain.add("x", "QK\x07\x08\xAA\xBB\xCC\xDDtail");
  EXPECT_NE(plain.serialization_id().substr(20), id_of(false).substr(20));
}

TEST(SerializationId, StorageAlignmentAsTorch) {
  MemorySink out;
  ZipWriter zw(out, "h", 4096);
  zw.add("data.pkl", "abc");
  zw.add("data/0", iota_bytes(100));
  zw.add("version", "3\n");
  zw.add("byteorder", "little");
  zw.add_serialization_id();
  zw.finish();
  std::vector<uint64_t> offsets;
  for (const auto& e : zw.entries()) offsets.push_back(e.header_offset);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 4115, 8308, 12306, 16406}));
  EXPECT_EQ(out.data.size(), 20926u);
  EXPECT_NE(out.data.find("1506405496436551062400000999456949432966"), std::string::npos);
}

TEST(SerializationId, AlignmentOutOfRangeIsUsageError) {
  MemorySink out;
  EXPECT_THROW(ZipWriter(out, "a", 0), UsageError);
  EXPECT_THROW(ZipWriter(out, "a", ZipWriter::kMaxAlignment + 1), UsageError);
}

}  // namespace
}  // namespace ckpt::container
