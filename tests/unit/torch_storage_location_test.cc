// One way to locate a storage's bytes (locate_storage): a stored zip record,
// a deflated one, a file made in memory (Checkpoint::create), and storages
// replaced from a safetensors file. Every reader (stats, comparison, dtype
// transform, element reader) and save() must read the bytes it names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "pickle/value.h"
#include "torch/convert.h"
#include "torch/safetensors.h"
#include "torch/stats.h"
#include "torch/tensor_data.h"
#include "util/error.h"

#include "temp_dir.h"

namespace ckpt::torch {
namespace {

using pickle::Node;

using ckpt_test::TempDir;

std::string float_bytes(float first, size_t count) {
  std::string bytes;
  for (size_t i = 0; i < count; ++i) {
    float f = first + static_cast<float>(i);
    bytes.append(reinterpret_cast<const char*>(&f), 4);
  }
  return bytes;
}

// A checkpoint made in memory: {"w": float32 tensor [first, first + count)}
// whose storage lies at offset 5 of a file that begins with other bytes.
struct MadeCheckpoint {
  std::unique_ptr<Checkpoint> ck;
  const Storage* storage = nullptr;

  MadeCheckpoint(const TempDir& dir, const std::string& name, float first, size_t count) {
    std::string data_path = dir.file(name + ".bin");
    // A reader that ignores the offset or the file reads "NOISE" instead.
    std::ofstream(data_path, std::ios::binary) << "NOISE" + float_bytes(first, count);
    ck = Checkpoint::create(dir.file(name + ".th"));
    storage = &ck->add_external_storage("0", &info(DType::Float32), "cpu", count,
                                        Env::Default().open_read(data_path), 5);
    pickle::Graph& g = ck->graph();
    Node* root = g.object(pickle::How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
    root->entries.emplace_back(g.str("w"), make_tensor_node(g, *storage, {static_cast<int64_t>(count)}, false,
                                                            g.str("storage"), g.str("cpu")));
    g.root = root;
  }
  TensorInfo w() const { return *ck->tensor(pickle::get_item(ck->root(), "w")); }
};

std::vector<float> halves_to_floats(std::string_view bytes) {
  std::vector<float> out;
  for (size_t i = 0; i + 2 <= bytes.size(); i += 2) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + i, 2);
    uint32_t bits = float16_to_float32(h);
    float f;
    std::memcpy(&f, &bits, 4);
    out.push_back(f);
  }
  return out;
}

std::string transformed(const Checkpoint& ck, const Storage& s, DType to) {
  std::string out;
  dtype_transform(ck, to).produce(s, [&](std::string_view chunk) { out.append(chunk); });
  return out;
}

TEST(StorageLocation, ExternalStorageOfACheckpointMadeInMemory) {
  TempDir dir;
  MadeCheckpoint made(dir, "made", 10, 8);
  StorageLocation loc = locate_storage(*made.ck, *made.storage);
  ASSERT_FALSE(loc.compressed());
  EXPECT_EQ(loc.offset, 5u);
  EXPECT_EQ(loc.size, 32u);
  EXPECT_EQ(loc.record, nullptr);
  EXPECT_EQ(loc.file->read_string(loc.offset, 4), float_bytes(10, 1));

  TensorInfo w = made.w();
  TensorStats st = tensor_stats(*made.ck, w, "w");
  EXPECT_EQ(st.numel, 8u);
  EXPECT_EQ(st.min, 10.0);
  EXPECT_EQ(st.max, 17.0);
  EXPECT_DOUBLE_EQ(st.mean, 13.5);

  MadeCheckpoint other(dir, "other", 12, 8);
  ValueDiff d = compare_values(*made.ck, w, "w", *other.ck, other.w(), "w");
  EXPECT_EQ(d.compared, 8u);
  EXPECT_EQ(d.differing, 8u);
  EXPECT_EQ(d.max_abs_diff, 2.0);
  EXPECT_TRUE(compare_values(*made.ck, w, "w", *made.ck, w, "w").equal());

  EXPECT_EQ(halves_to_floats(transformed(*made.ck, *made.storage, DType::Float16)),
            (std::vector<float>{10, 11, 12, 13, 14, 15, 16, 17}));

  // A strided view reads through the same location.
  TensorInfo odd = w;
  odd.storage_offset = 1;
  odd.shape = {4};
  odd.stride = {2};
  std::vector<float> got(4);
  ElementReader reader(*made.ck, odd, "odd");
  EXPECT_EQ(reader.read(reinterpret_cast<char*>(got.data()), 4), 4u);
  EXPECT_EQ(got, (std::vector<float>{11, 13, 15, 17}));
}

TEST(StorageLocation, StoredRecordOfASavedCheckpoint) {
  TempDir dir;
  MadeCheckpoint made(dir, "made", 1, 4);
  std::string th = dir.file("saved.th");
  save(*made.ck, made.ck->root(), Env::Default(), th);
  auto back = Checkpoint::open(Env::Default(), th);
  const Storage& s = *back->storage("0");
  StorageLocation loc = locate_storage(*back, s);
  ASSERT_FALSE(loc.compressed());
  ASSERT_NE(loc.record, nullptr);
  EXPECT_EQ(loc.file, &back->file());
  EXPECT_EQ(loc.offset, s.record->data_offset);
  EXPECT_EQ(loc.file->read_string(loc.offset, 16), float_bytes(1, 4));
}

// SaveOptions::verify_crcs: a stored record whose bytes no longer match its
// directory CRC-32 fails the save (copied or converted), and the output is not
// left behind; unchecked, the bytes are carried as read.
TEST(StorageLocation, SaveChecksRecordCrcsAsItCopies) {
  TempDir dir;
  MadeCheckpoint made(dir, "made", 1, 1024);
  std::string th = dir.file("saved.th");
  save(*made.ck, made.ck->root(), Env::Default(), th);
  uint64_t data_offset;
  {
    auto good = Checkpoint::open(Env::Default(), th);
    data_offset = locate_storage(*good, *good->storage("0")).offset;
    SaveOptions checked;
    checked.verify_crcs = true;
    save(*good, good->root(), Env::Default(), dir.file("good_copy.th"), checked);  // intact: no error
  }
  {
    std::fstream f(th, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(data_offset + 1000));
    f.put('\x7f');
  }
  auto bad = Checkpoint::open(Env::Default(), th);
  SaveOptions checked;
  checked.verify_crcs = true;
  for (bool convert : {false, true}) {
    SaveOptions o = checked;
    if (convert) o.transforms.emplace("0", dtype_transform(*bad, DType::Float16));
    try {
      save(*bad, bad->root(), Env::Default(), dir.file("out.th"), o);
      ADD_FAILURE() << "no error (convert " << convert << ")";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("fails its CRC-32 check"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("is damaged"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.th")));
  }
  // The caller's own message (the api names its option to skip the check).
  checked.on_crc_mismatch = [](const container::ZipRecord& r, uint32_t) { throw UsageError("custom " + r.name); };
  EXPECT_THROW(save(*bad, bad->root(), Env::Default(), dir.file("out.th"), checked), UsageError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.th")));
  save(*bad, bad->root(), Env::Default(), dir.file("out.th"));  // unchecked: carried as read
  auto out = Checkpoint::open(Env::Default(), dir.file("out.th"));
  const StorageLocation loc = locate_storage(*out, *out->storage("0"));
  EXPECT_EQ(loc.file->read_string(loc.offset + 1000, 1), "\x7f");
}

TEST(StorageLocation, AbsentStorageIsAnError) {
  TempDir dir;
  MadeCheckpoint made(dir, "made", 1, 4);
  Storage missing = *made.storage;
  missing.present = false;
  missing.external_file = nullptr;
  try {
    locate_storage(*made.ck, missing);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("storage '0' has no data record"), std::string::npos) << e.what();
  }
}

TEST(StorageLocation, StoragesReplacedFromSafetensors) {
  // A saved checkpoint of 0..5, then its tensor replaced from a safetensors
  // file of 100..105: every reader sees the new values, not the record's.
  TempDir dir;
  MadeCheckpoint made(dir, "made", 0, 6);
  std::string th = dir.file("template.th");
  save(*made.ck, made.ck->root(), Env::Default(), th);
  auto ck = Checkpoint::open(Env::Default(), th);
  auto original = Checkpoint::open(Env::Default(), th);

  MadeCheckpoint incoming(dir, "incoming", 100, 6);
  std::string st_path = dir.file("in.safetensors");
  write_safetensors(*incoming.ck, {{"w", incoming.w()}}, Env::Default(), st_path);
  std::shared_ptr<RandomAccessFile> file = Env::Default().open_read(st_path);
  SafetensorsHeader header = read_safetensors(*file);
  IntoReport r = replace_tensors_from_safetensors(*ck, ck->root(), header, file, "in.safetensors");
  ASSERT_EQ(r.replaced, 1u);

  TensorInfo w = *ck->tensor(pickle::get_item(ck->root(), "w"));
  StorageLocation loc = locate_storage(*ck, *w.storage);
  EXPECT_EQ(loc.file, file.get());
  EXPECT_EQ(loc.offset, header.data_start);
  EXPECT_EQ(loc.record, nullptr);

  TensorStats st = tensor_stats(*ck, w, "w");
  EXPECT_EQ(st.min, 100.0);
  EXPECT_EQ(st.max, 105.0);

  TensorInfo before = *original->tensor(pickle::get_item(original->root(), "w"));
  ValueDiff d = compare_values(*original, before, "w", *ck, w, "w");
  EXPECT_EQ(d.differing, 6u);
  EXPECT_EQ(d.max_abs_diff, 100.0);

  EXPECT_EQ(halves_to_floats(transformed(*ck, *w.storage, DType::Float16)),
            (std::vector<float>{100, 101, 102, 103, 104, 105}));

  // save() copies the same bytes.
  std::string out = dir.file("replaced.th");
  save(*ck, ck->root(), Env::Default(), out);
  auto back = Checkpoint::open(Env::Default(), out);
  TensorInfo bw = *back->tensor(pickle::get_item(back->root(), "w"));
  EXPECT_EQ(tensor_stats(*back, bw, "w").min, 100.0);
}

}  // namespace
}  // namespace ckpt::torch
