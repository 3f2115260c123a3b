// In-place updates (torch/in_place.h): the appended layout, fallbacks, and
// old-or-new under a failure at every write and fsync.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "container/zip_reader.h"
#include "pickle/unpickler.h"
#include "torch/in_place.h"
#include "util/error.h"
#include "util/fault_env.h"

namespace ckpt::torch {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

std::string fixture(const std::string& name) {
  return read_file(std::string(CKPT_SOURCE_DIR) + "/tests/unit/data/" + name);
}

class TempFile {
 public:
  TempFile() {
    char t[] = "/tmp/ckpt-inplace-test-XXXXXX";
    if (!mkdtemp(t)) throw std::runtime_error("mkdtemp failed");
    dir_ = t;
    path_ = dir_ + "/small.pt";
  }
  ~TempFile() {
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

// What a reader of the file sees: every record (name, offset, size, CRC) and
// the data.pkl bytes, which must unpickle.
struct Snapshot {
  std::string records;
  std::string pickle;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const std::string& path) {
  container::ZipReader zip(Env::Default().open_read(path));
  Snapshot s;
  for (const auto& r : zip.records()) {
    s.records += r.name + "@" + std::to_string(r.header_offset) + "+" + std::to_string(r.size) + "#" +
                 std::to_string(r.crc32) + "\n";
    if (r.name != zip.archive_name() + "/data.pkl") {
      // Stored records must hold what their CRC says.
      EXPECT_EQ(zip.compute_crc(r), r.crc32) << r.name;
    }
  }
  const container::ZipRecord* pkl = zip.find("data.pkl");
  EXPECT_NE(pkl, nullptr);
  if (pkl) {
    s.pickle = zip.read(*pkl, 1 << 20);
    EXPECT_EQ(zip.compute_crc(*pkl), pkl->crc32);
    pickle::unpickle(s.pickle, {.limits = {}, .source = path});
  }
  return s;
}

// Drops two tensors (one storage then unreferenced) and adds a plain value:
// a metadata-only edit.
void edit(Checkpoint& ck) {
  pickle::Graph& g = ck.graph();
  ASSERT_TRUE(pickle::erase_item(ck.root(), "a"));
  ASSERT_TRUE(pickle::erase_item(ck.root(), "w3"));
  pickle::set_item(g, ck.root(), "note", g.str("edited in place"));
}

InPlaceResult run_edit(Env& env, const std::string& path, bool compact = false) {
  auto ck = Checkpoint::open(env, path);
  edit(*ck);
  InPlaceOptions o;
  o.compact = compact;
  return update_in_place(*ck, ck->root(), env, o);
}

TEST(InPlace, AppendsAndKeepsStorageRecords) {
  TempFile t;
  const std::string original = fixture("torch_small.pt");
  write_file(t.path(), original);
  Snapshot before = snapshot(t.path());
  InPlaceResult r = run_edit(Env::Default(), t.path());
  EXPECT_TRUE(r.appended) << r.reason;
  const std::string after_bytes = read_file(t.path());
  // The old archive's bytes are untouched: only a tail was added.
  ASSERT_GT(after_bytes.size(), original.size());
  EXPECT_EQ(after_bytes.substr(0, original.size()), original);
  EXPECT_EQ(r.bytes_written, after_bytes.size() - original.size());
  // The end records sit inside one 512-byte sector.
  EXPECT_LE((after_bytes.size() - 98) % 512 + 98, 512u);

  auto ck = Checkpoint::open(Env::Default(), t.path());
  EXPECT_EQ(pickle::get_item(ck->root(), "a"), nullptr);
  EXPECT_EQ(pickle::get_item(ck->root(), "note")->text, "edited in place");
  // Kept storages keep their keys and records; the dropped one is unlisted.
  container::ZipReader old_zip(Env::Default().open_read(std::string(CKPT_SOURCE_DIR) +
                                                        "/tests/unit/data/torch_small.pt"));
  size_t kept = 0;
  for (const auto& [key, s] : ck->storages()) {
    ASSERT_NE(s.record, nullptr) << key;
    const container::ZipRecord* was = old_zip.find("data/" + key);
    ASSERT_NE(was, nullptr);
    EXPECT_EQ(was->header_offset, s.record->header_offset);
    ++kept;
  }
  EXPECT_EQ(kept + 2, old_zip.records().size() - 2);  // minus data.pkl, version; two dropped
  EXPECT_NE(snapshot(t.path()), before);

  // A second in-place edit appends again; compaction then shrinks the file
  // below the original (two tensors fewer) and keeps the content.
  auto ck2 = Checkpoint::open(Env::Default(), t.path());
  pickle::set_item(ck2->graph(), ck2->root(), "note", ck2->graph().str("twice"));
  EXPECT_TRUE(update_in_place(*ck2, ck2->root(), Env::Default()).appended);
  auto ck3 = Checkpoint::open(Env::Default(), t.path());
  InPlaceOptions compact;
  compact.compact = true;
  InPlaceResult c = update_in_place(*ck3, ck3->root(), Env::Default(), compact);
  EXPECT_FALSE(c.appended);
  EXPECT_LT(read_file(t.path()).size(), original.size());
  auto ck4 = Checkpoint::open(Env::Default(), t.path());
  EXPECT_EQ(pickle::get_item(ck4->root(), "note")->text, "twice");
  EXPECT_EQ(ck4->storages().size(), kept);
}

TEST(InPlace, FallsBackToRewriteWhenBytesChangeOrLayoutIsForeign) {
  TempFile t;
  write_file(t.path(), fixture("torch_small.pt"));
  {
    auto ck = Checkpoint::open(Env::Default(), t.path());
    InPlaceOptions o;
    const Storage& s = ck->storages().begin()->second;
    o.save.transforms[s.key] = StorageTransform{
        s.dtype, [](const Storage& from, const std::function<void(std::string_view)>& sink) {
          sink(std::string(from.nbytes(), '\0'));
        }};
    InPlaceResult r = update_in_place(*ck, ck->root(), Env::Default(), o);
    EXPECT_FALSE(r.appended);
    EXPECT_EQ(r.reason, "storage bytes change");
  }
  // Trailing bytes after the archive: not torch's layout, so a full rewrite.
  write_file(t.path(), fixture("torch_small.pt") + "junk");
  {
    auto ck = Checkpoint::open(Env::Default(), t.path());
    InPlaceResult r = update_in_place(*ck, ck->root(), Env::Default());
    EXPECT_FALSE(r.appended);
    EXPECT_NE(r.reason, "");
    snapshot(t.path());
  }
}

// Fails the n-th I/O step of the update, for every n, with a full disk and
// with an I/O error; the file must then read as exactly the old or exactly
// the new checkpoint. A failing write stores the whole sectors of its first
// half (FaultInjectingEnv), so torn multi-sector writes are covered too.
void check_every_fault(bool compact) {
  const std::string original = fixture("torch_small.pt");
  TempFile t;
  write_file(t.path(), original);
  const Snapshot old_state = snapshot(t.path());
  ASSERT_EQ(run_edit(Env::Default(), t.path(), compact).appended, !compact);
  const Snapshot new_state = snapshot(t.path());
  ASSERT_NE(old_state, new_state);

  for (int err : {ENOSPC, EIO}) {
    int olds = 0, news = 0;
    for (uint64_t n = 1;; ++n) {
      SCOPED_TRACE("failing step " + std::to_string(n) + ", errno " + std::to_string(err));
      write_file(t.path(), original);
      FaultInjectingEnv env(Env::Default());
      env.fail_at(n, err);
      bool threw = false;
      try {
        run_edit(env, t.path(), compact);
      } catch (const IoError&) {
        threw = true;
      }
      EXPECT_EQ(threw, env.fired());
      Snapshot now = snapshot(t.path());
      bool is_old = now == old_state, is_new = now == new_state;
      EXPECT_TRUE(is_old || is_new);
      olds += is_old;
      news += is_new;
      if (!env.fired()) {
        EXPECT_TRUE(is_new);
        // Every step was failed once: open, (a) write, fsync, (b) write,
        // fsync, commit write, fsync, close (or the rewrite's steps).
        EXPECT_GE(n, compact ? 4u : 8u);
        break;
      }
    }
    EXPECT_GT(olds, 0);
    EXPECT_GT(news, 1);  // the run without a fault, and a fault after the commit
  }
}

TEST(InPlace, OldOrNewUnderEveryFault) { check_every_fault(false); }
TEST(InPlace, CompactionOldOrNewUnderEveryFault) { check_every_fault(true); }

}  // namespace
}  // namespace ckpt::torch
