// Env (POSIX), AtomicOutput under injected faults, copy_from, CRC-32, paths.
#include <dirent.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "util/crc32.h"
#include "util/env.h"
#include "util/error.h"
#include "util/fault_env.h"

namespace ckpt {
namespace {

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/ckpt-util-test-XXXXXX";
    if (!mkdtemp(t)) throw std::runtime_error("mkdtemp failed");
    path_ = t;
  }
  ~TempDir() {
    for (const std::string& f : files()) std::remove((path_ + "/" + f).c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  std::set<std::string> files() const {
    std::set<std::string> out;
    DIR* d = opendir(path_.c_str());
    while (dirent* e = d ? readdir(d) : nullptr) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    if (d) closedir(d);
    return out;
  }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}
std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// A source with no descriptor: copy_from must take the buffered path.
class StringSource : public RandomAccessFile {
 public:
  explicit StringSource(std::string d) : d_(std::move(d)) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    if (offset + n > d_.size()) throw FormatError("mem: unexpected end of file");
    std::memcpy(buf, d_.data() + offset, n);
  }
  uint64_t size() const override { return d_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string d_, path_ = "mem";
};

TEST(Crc32, KnownValuesAndChaining) {
  EXPECT_EQ(crc32_update(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32_update(0, "", 0), 0u);
  std::string data = random_bytes(3 << 20, 1);
  uint32_t whole = crc32_update(0, data.data(), data.size());
  EXPECT_EQ(whole, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()),
                                               static_cast<uInt>(data.size()))));
  uint32_t chained = 0;
  for (size_t off = 0, step = 1; off < data.size(); off += step, step = step * 3 + 1) {
    size_t n = std::min(step, data.size() - off);
    chained = crc32_update(chained, data.data() + off, n);
  }
  EXPECT_EQ(chained, whole);
}

TEST(Paths, DirnameAndBasename) {
  EXPECT_EQ(dirname_of("a/b/c.pt"), "a/b");
  EXPECT_EQ(dirname_of("c.pt"), ".");
  EXPECT_EQ(dirname_of("/c.pt"), "/");
  EXPECT_EQ(dirname_of("/x/y/"), "/x");
  EXPECT_EQ(dirname_of("a//b"), "a");
  EXPECT_EQ(dirname_of(""), ".");
  EXPECT_EQ(basename_of("a/b/c.pt"), "c.pt");
  EXPECT_EQ(basename_of("c.pt"), "c.pt");
  EXPECT_EQ(basename_of("/x/y/"), "y");
  EXPECT_EQ(basename_of("/"), "/");
}

TEST(PosixEnv, ReadAndErrors) {
  TempDir dir;
  Env& env = Env::Default();
  write_file(dir / "f", "hello world");
  auto f = env.open_read(dir / "f");
  EXPECT_EQ(f->size(), 11u);
  EXPECT_EQ(f->path(), dir / "f");
  EXPECT_GE(f->fd(), 0);
  EXPECT_EQ(f->read_string(6, 5), "world");
  EXPECT_EQ(f->read_string(11, 0), "");
  try {
    f->read_string(8, 10);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), dir / "f" + ": unexpected end of file at offset 11");
  }
  try {
    env.open_read(dir / "missing");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.error_number(), ENOENT);
    EXPECT_EQ(std::string(e.what()), dir / "missing" + ": open: " + std::strerror(ENOENT));
  }
  EXPECT_THROW(env.open_read(dir.path()), IoError);  // a directory
  try {
    env.create(dir / "f");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.error_number(), EEXIST);
  }
  EXPECT_TRUE(env.exists(dir / "f"));
  env.remove(dir / "f");
  EXPECT_FALSE(env.exists(dir / "f"));
  env.remove(dir / "f");  // missing: no error
  EXPECT_THROW(env.rename(dir / "nope", dir / "other"), IoError);
  env.sync_dir(dir.path());
}

TEST(PosixEnv, Directories) {
  TempDir dir;
  Env& env = Env::Default();
  EXPECT_TRUE(env.is_directory(dir.path()));
  EXPECT_FALSE(env.is_directory(dir / "d"));
  env.create_directory(dir / "d");
  EXPECT_TRUE(env.is_directory(dir / "d"));
  try {
    env.create_directory(dir / "d");  // exists
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.error_number(), EEXIST);
    EXPECT_EQ(std::string(e.what()), dir / "d" + ": mkdir: " + std::strerror(EEXIST));
  }
  write_file(dir / "f", "x");
  EXPECT_FALSE(env.is_directory(dir / "f"));
  EXPECT_THROW(env.create_directory(dir / "missing/d"), IoError);

  // A FaultInjectingEnv counts mkdir as a step it can fail.
  FaultInjectingEnv faulty(env);
  faulty.fail_at(1, ENOSPC);
  EXPECT_THROW(faulty.create_directory(dir / "e"), IoError);
  EXPECT_FALSE(env.exists(dir / "e"));
  EXPECT_TRUE(faulty.is_directory(dir / "d"));
  faulty.reset();
  faulty.create_directory(dir / "e");
  EXPECT_EQ(faulty.steps(), 1u);
  EXPECT_TRUE(env.is_directory(dir / "e"));

  // Temporary folders: unique, private, removable when empty.
  std::string t1 = env.create_temp_directory(dir.path(), "tmp-"), t2 = env.create_temp_directory(dir.path(), "tmp-");
  EXPECT_NE(t1, t2);
  EXPECT_EQ(basename_of(t1).rfind("tmp-", 0), 0u);
  struct stat st;
  ASSERT_EQ(::stat(t1.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // An output folder's mode is mkdir's: 0777 less the umask (mkdtemp's 0700
  // made to-transformers' folders unreadable to other users).
  mode_t old_mask = ::umask(002);
  std::string shared = env.create_temp_directory(dir.path(), "out-", 0777);
  ::umask(old_mask);
  ASSERT_EQ(::stat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0775u);
  env.remove_directory(shared);
  write_file(t1 + "/x", "x");
  EXPECT_THROW(env.remove_directory(t1), IoError);  // not empty
  env.remove(t1 + "/x");
  env.remove_directory(t1);
  EXPECT_FALSE(env.exists(t1));
  env.remove_directory(t1);  // missing: no error
  EXPECT_THROW(env.create_temp_directory(dir / "missing", "tmp-"), IoError);
  faulty.reset();
  faulty.fail_at(1, EIO);
  EXPECT_THROW(faulty.create_temp_directory(dir.path(), "tmp-"), IoError);
}

TEST(PosixEnv, WriteAppendAndCopyFrom) {
  TempDir dir;
  Env& env = Env::Default();
  const std::string src_data = random_bytes(3 * 1024 * 1024 + 17, 2);
  write_file(dir / "src", src_data);
  auto src = env.open_read(dir / "src");
  StringSource mem(src_data);

  auto out = env.create(dir / "out");
  std::string expected;
  out->append("head");
  expected += "head";
  struct Piece {
    uint64_t offset, n;
  };
  for (Piece p : {Piece{0, 0}, Piece{5, 1}, Piece{100, 2 << 20}, Piece{1, src_data.size() - 1},
                  Piece{src_data.size(), 0}}) {
    out->copy_from(*src, p.offset, p.n);  // from a descriptor
    expected += src_data.substr(p.offset, p.n);
    out->copy_from(mem, p.offset, p.n);  // buffered copy
    expected += src_data.substr(p.offset, p.n);
    EXPECT_EQ(out->offset(), expected.size());
  }
  EXPECT_THROW(out->copy_from(*src, src_data.size() - 3, 4), FormatError);
  EXPECT_THROW(out->copy_from(mem, src_data.size() + 1, 0), FormatError);
  out->append("");
  out->sync();
  out->close();
  out->close();  // idempotent
  EXPECT_THROW(out->append("x"), IoError);
  EXPECT_TRUE(read_file(dir / "out") == expected);
}

// From a descriptor, copy_from and copy_from_with_crc copy with
// copy_file_range where the source offset and the output's end share their
// offset within a page, and splice through a 1 MiB pipe otherwise: both
// routes, at each kind of offset, over more than one pipe's worth, give the
// same bytes and CRC-32, and a source cut short is an error on either.
TEST(PosixEnv, CopyFromAtSharedAndDifferentPageOffsets) {
  TempDir dir;
  Env& env = Env::Default();
  const std::string src_data = random_bytes((3 << 20) + 8191, 6);
  write_file(dir / "src", src_data);
  auto src = env.open_read(dir / "src");
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (uint64_t out_shift : {uint64_t{0}, uint64_t{64}, page - 1}) {
    for (uint64_t src_offset : {uint64_t{0}, uint64_t{64}, out_shift, out_shift + page, page + 1}) {
      for (bool with_crc : {false, true}) {
        SCOPED_TRACE("output at " + std::to_string(out_shift) + ", source at " + std::to_string(src_offset) +
                     (with_crc ? ", with CRC" : ""));
        const std::string head(out_shift, 'h');
        const uint64_t n = src_data.size() - src_offset;
        auto out = env.create(dir / "out");
        out->append(head);
        if (with_crc) {
          EXPECT_EQ(out->copy_from_with_crc(*src, src_offset, n),
                    crc32_update(0, src_data.data() + src_offset, n));
        } else {
          out->copy_from(*src, src_offset, n);
        }
        out->append("tail");
        EXPECT_EQ(out->offset(), out_shift + n + 4);
        out->sync();
        out->close();
        EXPECT_TRUE(read_file(dir / "out") == head + src_data.substr(src_offset) + "tail");
        env.remove(dir / "out");
      }
    }
  }
  write_file(dir / "shrunk", src_data);
  auto shrunk = env.open_read(dir / "shrunk");
  ASSERT_EQ(::truncate((dir / "shrunk").c_str(), 1 << 20), 0);
  for (uint64_t out_shift : {uint64_t{0}, uint64_t{64}}) {
    auto out = env.create(dir / "out");
    out->append(std::string(out_shift, 'h'));
    EXPECT_THROW(out->copy_from(*shrunk, 0, src_data.size()), FormatError) << out_shift;
    out->close();
    env.remove(dir / "out");
  }
}

// copy_from_with_crc: the bytes of copy_from and their CRC-32, from a mapped
// descriptor (windows of 8 MiB, unaligned starts) and from a buffered source;
// past 64 MiB the writeback thread runs while the copy goes on.
TEST(PosixEnv, CopyFromWithCrc) {
  TempDir dir;
  Env& env = Env::Default();
  const std::string src_data = random_bytes((20 << 20) + 4097, 3);
  write_file(dir / "src", src_data);
  auto src = env.open_read(dir / "src");
  StringSource mem(src_data);

  auto out = env.create(dir / "out");
  std::string expected;
  struct Piece {
    uint64_t offset, n;
  };
  for (int round = 0; round < 2; ++round) {
    for (Piece p : {Piece{0, 0}, Piece{4095, 1}, Piece{4097, (8 << 20) + 5}, Piece{1, src_data.size() - 1},
                    Piece{0, src_data.size()}, Piece{src_data.size(), 0}}) {
      const uint32_t want = crc32_update(0, src_data.data() + p.offset, p.n);
      EXPECT_EQ(out->copy_from_with_crc(*src, p.offset, p.n), want) << p.offset << "+" << p.n;
      expected += src_data.substr(p.offset, p.n);
      EXPECT_EQ(out->copy_from_with_crc(mem, p.offset, p.n), want) << p.offset << "+" << p.n;
      expected += src_data.substr(p.offset, p.n);
      EXPECT_EQ(out->offset(), expected.size());
    }
  }
  EXPECT_THROW(out->copy_from_with_crc(*src, src_data.size() - 3, 4), FormatError);
  out->sync();
  out->close();
  EXPECT_TRUE(read_file(dir / "out") == expected);
}

// A source cut short after it was opened: the mapped CRC touches pages past
// its new end (SIGBUS), which must come out as a FormatError, not a crash.
TEST(PosixEnv, CopyFromWithCrcOfAShrunkSource) {
  TempDir dir;
  Env& env = Env::Default();
  const std::string src_data = random_bytes(3 << 20, 4);
  write_file(dir / "src", src_data);
  auto src = env.open_read(dir / "src");
  ASSERT_EQ(::truncate((dir / "src").c_str(), 1 << 20), 0);
  auto out = env.create(dir / "out");
  try {
    out->copy_from_with_crc(*src, 0, src_data.size());
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("changed while being copied"), std::string::npos) << e.what();
  }
}

// reserve(): a hint that changes no byte; space reserved past what was
// written is given back at sync, so the file holds no blocks past its end.
TEST(PosixEnv, ReserveKeepsBytesAndGivesBackTheRest) {
  TempDir dir;
  Env& env = Env::Default();
  const std::string src_data = random_bytes((9 << 20) + 3, 5);
  write_file(dir / "src", src_data);
  auto src = env.open_read(dir / "src");

  auto out = env.create(dir / "out");
  out->append("head");
  out->reserve(64 << 20);  // far more than will be written
  out->copy_from(*src, 0, src_data.size());
  out->reserve(1);  // inside what is reserved already: nothing
  out->append("tail");
  out->sync();
  out->close();
  EXPECT_TRUE(read_file(dir / "out") == "head" + src_data + "tail");
  struct stat st;
  ASSERT_EQ(::stat((dir / "out").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), src_data.size() + 8);
  // 64 MiB stayed allocated if the rest was not given back.
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{32} << 20);

  // A lower bound, as writers give it: the bytes come out the same.
  auto exact = env.create(dir / "exact");
  exact->reserve(src_data.size());
  EXPECT_EQ(exact->copy_from_with_crc(*src, 0, src_data.size()), crc32_update(0, src_data.data(), src_data.size()));
  exact->sync();
  exact->close();
  EXPECT_TRUE(read_file(dir / "exact") == src_data);
}

TEST(AtomicOutput, CommitRefuseForceAndCleanup) {
  TempDir dir;
  Env& env = Env::Default();
  const std::string target = dir / "model.th";
  {
    AtomicOutput out(env, target, false);
    EXPECT_EQ(dirname_of(out.temp_path()), dir.path());
    EXPECT_EQ(basename_of(out.temp_path()).rfind(".model.th.ckpt-tmp-" + std::to_string(getpid()) + "-", 0),
              0u);
    EXPECT_TRUE(env.exists(out.temp_path()));
    EXPECT_FALSE(env.exists(target));
    out.file().append("v1");
    out.commit();
  }
  EXPECT_EQ(read_file(target), "v1");
  EXPECT_EQ(dir.files(), std::set<std::string>{"model.th"});

  try {
    AtomicOutput refused(env, target, false);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), target + " exists (use `force=true` to overwrite)");  // --force, force=True
  }
  {
    AtomicOutput abandoned(env, target, true);
    abandoned.file().append("never committed");
  }
  EXPECT_EQ(read_file(target), "v1");
  EXPECT_EQ(dir.files(), std::set<std::string>{"model.th"});
  {
    AtomicOutput out(env, target, true);
    out.file().append("v2");
    out.commit();
  }
  EXPECT_EQ(read_file(target), "v2");
  EXPECT_EQ(dir.files(), std::set<std::string>{"model.th"});
}

// Fails every fallible step of a whole write in turn, with each errno: the
// target keeps its old bytes (or, when only the final directory fsync failed,
// has the complete new ones) and no temporary file is ever left.
TEST(AtomicOutput, EveryInjectedFaultLeavesNoPartialOutput) {
  TempDir dir;
  const std::string target = dir / "out.pt";
  const std::string src_data = random_bytes(200000, 3);
  write_file(dir / "src", src_data);
  const std::string new_bytes = "header" + src_data.substr(10, 150000) + "trailer";

  FaultInjectingEnv env(Env::Default());
  auto write_all = [&] {
    auto src = env.open_read(dir / "src");
    AtomicOutput out(env, target, true);
    out.file().append("header");
    out.file().copy_from(*src, 10, 150000);
    out.file().append("trailer");
    out.commit();
  };
  write_file(target, "old");
  write_all();
  const uint64_t total = env.steps();
  EXPECT_EQ(total, 9u);  // create, chmod (the old mode kept), 3 writes, fsync, close, rename, dir fsync
  EXPECT_EQ(read_file(target), new_bytes);

  for (int err : {ENOSPC, EIO, EFBIG}) {
    for (uint64_t step = 1; step <= total; ++step) {
      SCOPED_TRACE("errno " + std::to_string(err) + " at step " + std::to_string(step));
      write_file(target, "old");
      env.reset();
      env.fail_at(step, err);
      try {
        write_all();
        ADD_FAILURE() << "no error";
      } catch (const IoError& e) {
        EXPECT_EQ(e.error_number(), err);
        EXPECT_NE(std::string(e.what()).find("(injected)"), std::string::npos);
      }
      EXPECT_TRUE(env.fired());
      std::string now = read_file(target);
      if (step == total) {
        EXPECT_EQ(now, new_bytes);  // renamed; only the directory fsync failed
      } else {
        EXPECT_EQ(now, "old");
      }
      EXPECT_EQ(dir.files(), (std::set<std::string>{"out.pt", "src"}));
    }
  }
}

TEST(FaultInjectingEnv, CountsStepsAndWritesHalfOnFailure) {
  TempDir dir;
  FaultInjectingEnv env(Env::Default());
  auto f = env.create(dir / "x");
  f->append("abcd");
  EXPECT_EQ(env.steps(), 2u);
  env.fail_at(3, ENOSPC);
  EXPECT_THROW(f->append("efgh"), IoError);
  EXPECT_EQ(f->offset(), 6u);  // "ab" of the failed write landed, as on a full disk
  f->append("ij");
  f->close();
  EXPECT_EQ(read_file(dir / "x"), "abcdefij");
  EXPECT_EQ(env.steps(), 5u);
  EXPECT_FALSE(env.exists(dir / "y"));
}

}  // namespace
}  // namespace ckpt
