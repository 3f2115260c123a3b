// ZipReader and ZipWriter: torch-made fixtures (tests/unit/data, made by
// make_zip_fixtures.py with torch 1.13), byte-identical rewrites, damaged
// archives, DEFLATE records and inflation caps, ZIP64 branches.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "container/zip_format.h"
#include "container/zip_reader.h"
#include "container/zip_writer.h"
#include "util/crc32.h"
#include "util/env.h"
#include "util/error.h"

namespace ckpt::container {
namespace {

const std::string kData = std::string(CKPT_SOURCE_DIR) + "/tests/unit/data/";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// An in-memory RandomAccessFile.
class StringFile : public RandomAccessFile {
 public:
  StringFile(std::string data, std::string path = "mem.zip")
      : data_(std::move(data)), path_(std::move(path)) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    if (offset > data_.size() || n > data_.size() - offset) {
      throw FormatError(path_ + ": unexpected end of file at offset " +
                        std::to_string(data_.size()));
    }
    std::memcpy(buf, data_.data() + offset, n);
  }
  uint64_t size() const override { return data_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string data_, path_;
};

// An in-memory WritableFile.
class StringSink : public WritableFile {
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

std::unique_ptr<ZipReader> open_bytes(std::string bytes, ZipReadLimits limits = {}) {
  return std::make_unique<ZipReader>(std::make_unique<StringFile>(std::move(bytes)), limits);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

void put16(std::string& s, size_t at, uint16_t v) {
  s[at] = static_cast<char>(v & 0xFF);
  s[at + 1] = static_cast<char>(v >> 8);
}
void put32(std::string& s, size_t at, uint32_t v) {
  put16(s, at, v & 0xFFFF);
  put16(s, at + 2, static_cast<uint16_t>(v >> 16));
}
uint32_t get32(const std::string& s, size_t at) {
  auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return u(0) | (u(1) << 8) | (u(2) << 16) | (u(3) << 24);
}
// Offset of the central-directory entry for name.
size_t central_entry(const std::string& zip, const std::string& name) {
  size_t pos = 0;
  while ((pos = zip.find(std::string("PK\x01\x02", 4), pos)) != std::string::npos) {
    if (zip.compare(pos + 46, name.size(), name) == 0 &&
        static_cast<unsigned char>(zip[pos + 28]) == name.size()) {
      return pos;
    }
    ++pos;
  }
  ADD_FAILURE() << "no central entry " << name;
  return 0;
}

// A minimal zip holding one record, DEFLATE-compressed with zlib (raw).
std::string deflate_zip(const std::string& name, const std::string& payload,
                        uint32_t declared_size) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
  std::string comp(deflateBound(&z, payload.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data()));
  z.avail_in = static_cast<uInt>(payload.size());
  z.next_out = reinterpret_cast<Bytef*>(comp.data());
  z.avail_out = static_cast<uInt>(comp.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  comp.resize(z.total_out);
  deflateEnd(&z);
  uint32_t crc = crc32_update(0, payload.data(), payload.size());

  std::string local(30, '\0');
  put32(local, 0, 0x04034b50);
  put16(local, 4, 20);
  put16(local, 8, 8);
  put32(local, 14, crc);
  put32(local, 18, static_cast<uint32_t>(comp.size()));
  put32(local, 22, declared_size);
  put16(local, 26, static_cast<uint16_t>(name.size()));
  std::string zip = local + name + comp;
  std::string central(46, '\0');
  put32(central, 0, 0x02014b50);
  put16(central, 6, 20);
  put16(central, 10, 8);
  put32(central, 16, crc);
  put32(central, 20, static_cast<uint32_t>(comp.size()));
  put32(central, 24, declared_size);
  put16(central, 28, static_cast<uint16_t>(name.size()));
  size_t cd_offset = zip.size();
  zip += central + name;
  std::string end(22, '\0');
  put32(end, 0, 0x06054b50);
  put16(end, 8, 1);
  put16(end, 10, 1);
  put32(end, 12, static_cast<uint32_t>(46 + name.size()));
  put32(end, 16, static_cast<uint32_t>(cd_offset));
  return zip + end;
}

const char* kTorchFixtures[] = {"torch_small.pt", "a_rather_long_checkpoint_name_for_padding.pt",
                                "t.pt"};

TEST(ZipReader, ReadsTorchFixture) {
  ZipReader zip(Env::Default().open_read(kData + "torch_small.pt"));
  EXPECT_EQ(zip.archive_name(), "torch_small");
  ASSERT_EQ(zip.records().size(), 17u);  // data.pkl, 15 storages, version
  EXPECT_EQ(zip.records().front().name, "torch_small/data.pkl");
  EXPECT_EQ(zip.records()[2].name, "torch_small/data/1");
  EXPECT_EQ(zip.records()[3].name, "torch_small/data/10");  // lexicographic: torch 1.x
  EXPECT_EQ(zip.records().back().name, "torch_small/version");
  for (const ZipRecord& r : zip.records()) {
    EXPECT_EQ(r.data_offset % 64, 0u) << r.name;
    EXPECT_EQ(r.method, 0);
    EXPECT_EQ(r.flags, r.size ? 0x0808 : 0x0800) << r.name;
    EXPECT_EQ(zip.compute_crc(r), r.crc32) << r.name;
  }
  const ZipRecord* version = zip.find("version");
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(zip.read(*version, 100), "3\n");
  EXPECT_EQ(zip.relative_name(*version), "version");
  const ZipRecord* empty = zip.find("data/1");  // the empty tensor's storage
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->size, 0u);
  EXPECT_EQ(zip.read(*empty, 0), "");
  const ZipRecord* a = zip.find("data/0");  // arange(5) float32
  ASSERT_NE(a, nullptr);
  std::string bytes = zip.read(*a, 1000);
  ASSERT_EQ(bytes.size(), 20u);
  float f[5];
  std::memcpy(f, bytes.data(), 20);
  EXPECT_EQ(f[4], 4.0f);
  EXPECT_EQ(zip.find("nope"), nullptr);
  EXPECT_EQ(zip.find("torch_small/version"), nullptr);
  EXPECT_EQ(zip.end_offset(), zip.file().size());
  std::string pkl = zip.read(*zip.find("data.pkl"), 1 << 20);
  EXPECT_EQ(pkl.substr(0, 2), "\x80\x02");
  EXPECT_THROW(zip.read(*zip.find("data.pkl"), 10), FormatError);
  EXPECT_TRUE(ZipReader::looks_like_zip(zip.file()));
}

TEST(ZipReader, LooksLikeZip) {
  StringFile not_zip("\x80\x02]q\x00.");
  EXPECT_FALSE(ZipReader::looks_like_zip(not_zip));
  StringFile tiny("PK");
  EXPECT_FALSE(ZipReader::looks_like_zip(tiny));
  std::string empty_zip(22, '\0');
  put32(empty_zip, 0, 0x06054b50);
  StringFile empty_file(empty_zip);
  EXPECT_TRUE(ZipReader::looks_like_zip(empty_file));
  auto zip = open_bytes(empty_zip);
  EXPECT_TRUE(zip->records().empty());
  EXPECT_EQ(zip->archive_name(), "");
}

// Reads a fixture and writes every record again, in order, through each of
// the writer's three entry points; torch's bytes must come out unchanged.
TEST(ZipWriter, RewriteIsByteIdenticalToTorch) {
  for (const char* fixture : kTorchFixtures) {
    SCOPED_TRACE(fixture);
    const std::string original = slurp(kData + fixture);
    ZipReader zip(Env::Default().open_read(kData + fixture));
    for (int mode = 0; mode < 4; ++mode) {
      SCOPED_TRACE(mode);
      StringSink out;
      ZipWriter w(out, zip.archive_name());
      for (const ZipRecord& r : zip.records()) {
        std::string rel = zip.relative_name(r);
        switch (mode) {
          case 0:
            w.add(rel, zip.read(r, r.size));
            break;
          case 1:
            w.add_copy(rel, zip.file(), r.data_offset, r.size, r.crc32);
            break;
          case 2:
            w.add_copy(rel, zip.file(), r.data_offset, r.size, std::nullopt);
            break;
          case 3:
            w.add_stream(rel, r.size, [&](const std::function<void(std::string_view)>& sink) {
              // One byte at a time: chunking must not matter.
              std::string data = zip.read(r, r.size);
              for (char c : data) sink(std::string_view(&c, 1));
            });
            break;
        }
      }
      w.finish();
      EXPECT_EQ(out.data.size(), original.size());
      EXPECT_TRUE(out.data == original);
      ASSERT_EQ(w.entries().size(), zip.records().size());
      EXPECT_EQ(w.entries()[0].crc32, zip.records()[0].crc32);
    }
  }
}

// The same through the real file system: AtomicOutput, copy_file_range.
TEST(ZipWriter, RewriteThroughPosixFiles) {
  char dir_template[] = "/tmp/ckpt-zip-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string out_path = std::string(dir_template) + "/out.pt";
  Env& env = Env::Default();
  ZipReader zip(env.open_read(kData + "torch_small.pt"));
  {
    AtomicOutput out(env, out_path, false);
    ZipWriter w(out.file(), zip.archive_name());
    for (const ZipRecord& r : zip.records()) {
      w.add_copy(zip.relative_name(r), zip.file(), r.data_offset, r.size, r.crc32);
    }
    w.finish();
    out.commit();
  }
  EXPECT_TRUE(slurp(out_path) == slurp(kData + "torch_small.pt"));
  std::remove(out_path.c_str());
  rmdir(dir_template);
}

TEST(ZipWriter, EmptyArchive) {
  StringSink out;
  ZipWriter w(out, "archive");
  w.finish();
  EXPECT_EQ(out.data.size(), 56u + 20u + 22u);
  auto zip = open_bytes(out.data);
  EXPECT_TRUE(zip->records().empty());
  EXPECT_THROW(w.add("x", "y"), Error);
}

TEST(ZipWriter, StreamSizeMismatchThrows) {
  StringSink out;
  ZipWriter w(out, "a");
  EXPECT_THROW(w.add_stream("x", 3, [](const auto& sink) { sink("ab"); }), Error);
  StringSink out2;
  ZipWriter w2(out2, "a");
  EXPECT_THROW(w2.add_stream("x", 1, [](const auto& sink) { sink("ab"); }), Error);
}

TEST(ZipReader, DeflateRecordsFromPythonZipfile) {
  ZipReader zip(Env::Default().open_read(kData + "deflate.zip"));
  EXPECT_EQ(zip.archive_name(), "arch");
  const ZipRecord* pkl = zip.find("data.pkl");
  ASSERT_NE(pkl, nullptr);
  EXPECT_EQ(pkl->method, 8);
  std::string expected;
  for (int i = 0; i < 200; ++i) expected += "hello ";
  EXPECT_EQ(zip.read(*pkl, 1 << 20), expected);
  EXPECT_EQ(zip.compute_crc(*pkl), pkl->crc32);
  std::string raw;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 256; ++i) raw.push_back(static_cast<char>(i));
  EXPECT_EQ(zip.read(*zip.find("data/0"), 1 << 20), raw);
  EXPECT_EQ(zip.read(*zip.find("empty"), 0), "");
  EXPECT_EQ(zip.read(*zip.find("version"), 10), "3\n");
  for (const ZipRecord& r : zip.records()) EXPECT_EQ(zip.compute_crc(r), r.crc32) << r.name;
}

TEST(ZipReader, InflationBombIsCapped) {
  const std::string zeros(10 << 20, '\0');
  std::string bomb = deflate_zip("bomb/data.pkl", zeros, static_cast<uint32_t>(zeros.size()));
  EXPECT_LT(bomb.size(), 64u << 10);
  ZipReadLimits limits;
  limits.max_inflated = 1 << 20;
  auto zip = open_bytes(bomb, limits);
  const ZipRecord& r = zip->records()[0];
  EXPECT_NE(error_of([&] { zip->read(r, uint64_t{1} << 40); }).find("inflates past 1048576 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { zip->compute_crc(r); }).find("inflates past"), std::string::npos);
  // Without the cap it inflates fine.
  auto uncapped = open_bytes(bomb);
  EXPECT_EQ(uncapped->read(uncapped->records()[0], 20 << 20), zeros);

  // A record that lies about its size is stopped at the size it declares.
  std::string liar = deflate_zip("bomb/data.pkl", zeros, 1000);
  auto lying = open_bytes(liar);
  EXPECT_NE(error_of([&] { lying->read(lying->records()[0], 1 << 30); })
                .find("inflates past 1000 bytes"),
            std::string::npos);
  // And one that declares more than it holds.
  std::string short_one = deflate_zip("x/y", "abc", 10);
  auto shorty = open_bytes(short_one);
  EXPECT_NE(error_of([&] { shorty->read(shorty->records()[0], 100); }).find("inflates to 3 bytes"),
            std::string::npos);
}

TEST(ZipReader, BadDeflateDataIsFormatError) {
  std::string zip = deflate_zip("x/y", std::string(1000, 'q'), 1000);
  zip[31 + 2] = '\xff';  // inside the compressed stream
  zip[31 + 3] = '\xff';
  auto r = open_bytes(zip);
  EXPECT_THROW(r->read(r->records()[0], 2000), FormatError);
}

TEST(ZipReader, EveryTruncationIsFormatError) {
  const std::string original = slurp(kData + "t.pt");
  for (size_t n = 0; n < original.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_THROW(open_bytes(original.substr(0, n)), FormatError);
  }
}

// Flipping any one byte either leaves a readable archive or gives a
// FormatError: never another exception, a crash or a huge allocation.
TEST(ZipReader, EveryByteFlipIsFormatErrorOrReadable) {
  const std::string original = slurp(kData + "torch_small.pt");
  for (size_t i = 0; i < original.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string z = original;
      z[i] = static_cast<char>(z[i] ^ mask);
      try {
        auto zip = open_bytes(z);
        for (const ZipRecord& r : zip->records()) zip->read(r, 1 << 20);
      } catch (const FormatError&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << "byte " << i << " ^ " << int(mask) << ": " << e.what();
      }
    }
  }
}

TEST(ZipReader, DamagedHeaders) {
  const std::string original = slurp(kData + "torch_small.pt");

  {  // local header name differs from the central one
    std::string z = original;
    z[30] = 'X';  // first byte of torch_small/data.pkl in the first local header
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("local header name differs"),
              std::string::npos);
  }
  {  // bad local header signature
    std::string z = original;
    z[0] = 'Q';
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("bad local header signature"),
              std::string::npos);
  }
  {  // local header offset past the end
    std::string z = original;
    put32(z, central_entry(z, "torch_small/version") + 42, 0x7FFFFFF0);
    std::string msg = error_of([&] { open_bytes(z); });
    EXPECT_NE(msg.find("past the central directory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(record 'torch_small/version')"), std::string::npos) << msg;
  }
  {  // duplicate names: rename data/1 to data/2 in both headers; miniz (torch)
     // accepts the archive and its sorted lookup picks one (issue 19)
    std::string z = original;
    size_t cd = central_entry(z, "torch_small/data/1");
    uint32_t local = get32(z, cd + 42);
    z[cd + 46 + 17] = '2';
    z[local + 30 + 17] = '2';
    auto zr = open_bytes(z);
    EXPECT_TRUE(zr->has_case_duplicates());
    EXPECT_NE(zr->find("data/2"), nullptr);
  }
  {  // data running into the next record
    std::string z = original;
    size_t cd = central_entry(z, "torch_small/data/0");
    put32(z, cd + 20, 200);
    put32(z, cd + 24, 200);
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("overlap"), std::string::npos);
  }
  {  // stored sizes that disagree
    std::string z = original;
    put32(z, central_entry(z, "torch_small/data/0") + 24, 21);
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("stored record"), std::string::npos);
  }
  {  // ZIP64 end record counts more entries than there are
    std::string z = original;
    size_t end64 = z.rfind(std::string("PK\x06\x06", 4));
    put32(z, end64 + 24, 18);
    put32(z, end64 + 32, 18);
    EXPECT_THROW(open_bytes(z), FormatError);
  }
  {  // ... or fewer
    std::string z = original;
    size_t end64 = z.rfind(std::string("PK\x06\x06", 4));
    put32(z, end64 + 24, 16);
    put32(z, end64 + 32, 16);
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("bytes after the 16 entries"),
              std::string::npos);
  }
  {  // central directory offset past the end
    std::string z = original;
    size_t end64 = z.rfind(std::string("PK\x06\x06", 4));
    put32(z, end64 + 48, 0x7FFFFFFF);
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("central directory"), std::string::npos);
  }
  {  // ZIP64 locator pointing nowhere
    std::string z = original;
    size_t loc = z.rfind(std::string("PK\x06\x07", 4));
    put32(z, loc + 8, 0x7FFFFFFF);
    EXPECT_NE(error_of([&] { open_bytes(z); }).find("ZIP64 end record"), std::string::npos);
  }
  {  // not a zip at all
    EXPECT_NE(error_of([&] { open_bytes(std::string(100, 'x')); }).find("not a zip archive"),
              std::string::npos);
  }
}

// A WritableFile that keeps only what is appended and counts copied bytes as
// holes, so that archives over 4 GiB can be written in memory; it can also
// start at a high offset, as if 4 GiB had already been written.
class SparseSink : public WritableFile {
 public:
  explicit SparseSink(uint64_t start) : offset_(start) {}
  void append(std::string_view d) override {
    segments[offset_].append(d);
    offset_ += d.size();
  }
  void copy_from(RandomAccessFile&, uint64_t, uint64_t n) override { offset_ += n; }
  uint64_t offset() const override { return offset_; }
  void sync() override {}
  void close() override {}
  // Bytes written at or after offset, up to the next hole.
  std::string at(uint64_t offset) const {
    auto it = segments.upper_bound(offset);
    if (it == segments.begin()) return "";
    --it;
    if (offset - it->first > it->second.size()) return "";
    return it->second.substr(offset - it->first);
  }
  std::map<uint64_t, std::string> segments;

 private:
  uint64_t offset_;
};

// A RandomAccessFile of zeros of any size, stored as nothing.
class ZeroFile : public RandomAccessFile {
 public:
  explicit ZeroFile(uint64_t size) : size_(size) {}
  void read(uint64_t, size_t n, char* buf) override { std::memset(buf, 0, n); }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  uint64_t size_;
  std::string path_ = "zeros";
};

// Reads back a SparseSink's archive: the holes read as zeros.
class SparseFile : public RandomAccessFile {
 public:
  explicit SparseFile(const SparseSink& s) : s_(s) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    std::memset(buf, 0, n);
    for (const auto& [at, bytes] : s_.segments) {
      uint64_t lo = std::max(at, offset), hi = std::min(at + bytes.size(), offset + n);
      if (lo < hi) std::memcpy(buf + (lo - offset), bytes.data() + (lo - at), hi - lo);
    }
  }
  uint64_t size() const override { return s_.offset(); }
  const std::string& path() const override { return path_; }

 private:
  const SparseSink& s_;
  std::string path_ = "sparse.zip";
};

uint64_t get64(const std::string& s, size_t at) {
  return get32(s, at) | (static_cast<uint64_t>(get32(s, at + 4)) << 32);
}

TEST(ZipWriter, Zip64SizeAndOffsetExtras) {
  const uint64_t big = 0xFFFFFFFF;  // the smallest size that takes ZIP64 fields
  ZeroFile zeros(big + 10);
  SparseSink out(0);
  ZipWriter w(out, "m");
  w.add("data.pkl", "pickle");
  w.add_copy("data/0", zeros, 0, big, 0x12345678);
  w.add("data/1", "after");  // header offset past 4 GiB
  w.add("data/2", "");       // empty, past 4 GiB: offset extra, no descriptor
  w.finish();

  const auto& e = w.entries();
  ASSERT_EQ(e.size(), 4u);
  // Local header of the big record: ZIP64 extra (sizes; compressed 0 as
  // miniz writes it) before the FB padding, data aligned to 64.
  std::string h = out.at(e[1].header_offset);
  ASSERT_GE(h.size(), 30u + 8 + 20);
  EXPECT_EQ(get32(h, 0), 0x04034b50u);
  EXPECT_EQ(get32(h, 18), 0u);
  EXPECT_EQ(get32(h, 22), 0u);
  size_t name_len = 8;  // "m/data/0"
  EXPECT_EQ(get32(h, 30 + name_len) & 0xFFFF, 0x0001u);
  EXPECT_EQ(get32(h, 30 + name_len) >> 16, 16u);
  EXPECT_EQ(get64(h, 30 + name_len + 4), big);
  EXPECT_EQ(get64(h, 30 + name_len + 12), 0u);
  EXPECT_EQ(h.substr(30 + name_len + 20, 2), "FB");
  uint64_t data_offset = e[1].header_offset + h.size();
  EXPECT_EQ(data_offset % 64, 0u);
  // 24-byte descriptor after the big record.
  std::string d = out.at(data_offset + big);
  ASSERT_EQ(d.size() >= 24, true);
  EXPECT_EQ(get32(d, 0), 0x08074b50u);
  EXPECT_EQ(get32(d, 4), 0x12345678u);
  EXPECT_EQ(get64(d, 8), big);
  EXPECT_EQ(get64(d, 16), big);
  // The record after it has an offset-only extra and a 24-byte descriptor.
  EXPECT_GE(e[2].header_offset, big);
  std::string h2 = out.at(e[2].header_offset);
  EXPECT_EQ(get32(h2, 30 + 8), 0x00080001u);
  EXPECT_EQ(get64(h2, 30 + 8 + 4), e[2].header_offset);

  // The reader finds everything again from the central directory's extras.
  ZipReader zip(std::make_unique<SparseFile>(out));
  ASSERT_EQ(zip.records().size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(zip.records()[i].header_offset, e[i].header_offset) << i;
    EXPECT_EQ(zip.records()[i].size, e[i].size) << i;
    EXPECT_EQ(zip.records()[i].data_offset % 64, 0u) << i;
  }
  EXPECT_EQ(zip.records()[1].crc32, 0x12345678u);
  EXPECT_EQ(zip.read(*zip.find("data/1"), 100), "after");
  EXPECT_EQ(zip.read(*zip.find("data/2"), 100), "");
  EXPECT_EQ(zip.records()[3].flags, 0x0800);
  // Central directory (written in one piece by finish()): the big record's
  // entry has saturated sizes and an extra with size and compressed size.
  const std::string& tail = out.segments.rbegin()->second;
  size_t c = central_entry(tail, "m/data/0");
  EXPECT_EQ(get32(tail, c + 20), 0xFFFFFFFFu);
  EXPECT_EQ(get32(tail, c + 24), 0xFFFFFFFFu);
  EXPECT_EQ(get32(tail, c + 42), e[1].header_offset);
  EXPECT_EQ(get32(tail, c + 46 + 8), 0x00100001u);
  EXPECT_EQ(get64(tail, c + 46 + 8 + 4), big);
  EXPECT_EQ(get64(tail, c + 46 + 8 + 12), big);
  size_t c3 = central_entry(tail, "m/data/2");
  EXPECT_EQ(get32(tail, c3 + 42), 0xFFFFFFFFu);
  EXPECT_EQ(get32(tail, c3 + 46 + 8), 0x00080001u);
  EXPECT_EQ(get64(tail, c3 + 46 + 8 + 4), e[3].header_offset);
}

// Runs only when CKPT_BIG_TORCH_ZIP names a torch-written file (e.g. one
// holding a 0xFFFFFFFF-byte tensor and records after it): rewrites it and
// compares every byte with the original, streaming.
TEST(ZipWriter, RewriteOfBigTorchFileIsByteIdentical) {
  const char* big = std::getenv("CKPT_BIG_TORCH_ZIP");
  if (!big) GTEST_SKIP() << "set CKPT_BIG_TORCH_ZIP to a >4 GiB torch.save file";
  Env& env = Env::Default();
  ZipReader zip(env.open_read(big));
  const std::string out_path = std::string(big) + ".rewritten";
  env.remove(out_path);
  {
    AtomicOutput out(env, out_path, false);
    ZipWriter w(out.file(), zip.archive_name());
    for (const ZipRecord& r : zip.records()) {
      w.add_copy(zip.relative_name(r), zip.file(), r.data_offset, r.size, r.crc32);
    }
    w.finish();
    out.commit();
  }
  auto a = env.open_read(big);
  auto b = env.open_read(out_path);
  ASSERT_EQ(a->size(), b->size());
  std::string x(1 << 20, '\0'), y(1 << 20, '\0');
  for (uint64_t off = 0; off < a->size(); off += x.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(x.size(), a->size() - off));
    a->read(off, n, x.data());
    b->read(off, n, y.data());
    ASSERT_EQ(std::memcmp(x.data(), y.data(), n), 0) << "first difference in MiB at " << off;
  }
  env.remove(out_path);
}

// A StringFile that says it prefers few reads (as remote files do) and
// records the offsets read.
class FewReadsFile : public StringFile {
 public:
  using StringFile::StringFile;
  bool prefers_few_reads() const override { return true; }
  void read(uint64_t offset, size_t n, char* buf) override {
    reads.push_back(offset);
    StringFile::read(offset, n, buf);
  }
  std::vector<uint64_t> reads;
};

TEST(ZipReader, FewReadsFileChecksLocalHeadersWhenRead) {
  const std::string original = slurp(kData + "torch_small.pt");
  auto owned = std::make_unique<FewReadsFile>(original);
  FewReadsFile* file = owned.get();
  ZipReader zip(std::move(owned));
  ZipReader eager(Env::Default().open_read(kData + "torch_small.pt"));
  // Opening reads only the end records and central directory: no local header
  // is read, though the end-record search (miniz's 4 KiB windows from the
  // end) may start before the directory in a file this small.
  const uint64_t search_start = original.size() > zipfmt::kMinizSearchWindow ? original.size() - zipfmt::kMinizSearchWindow : 0;
  for (uint64_t off : file->reads) EXPECT_GE(off, std::min<uint64_t>(search_start, zip.central_directory_offset())) << off;
  EXPECT_LE(file->reads.size(), 8u);  // a few round trips, not one per record
  const ZipRecord* v = zip.find("version");
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(zip.is_resolved(*v));
  EXPECT_EQ(zip.read(*v, 100), "3\n");
  EXPECT_TRUE(zip.is_resolved(*v));
  for (size_t i = 0; i < zip.records().size(); ++i)
    EXPECT_EQ(zip.data_offset(zip.records()[i]), eager.records()[i].data_offset) << i;

  // The same damage is found, when the damaged record is read.
  std::string z = original;
  z[30] = 'X';  // the first local header's name (data.pkl)
  ZipReader damaged(std::make_unique<FewReadsFile>(z));
  EXPECT_NE(error_of([&] { damaged.read(*damaged.find("data.pkl"), 1 << 20); }).find("local header name differs"),
            std::string::npos);
}

}  // namespace
}  // namespace ckpt::container
