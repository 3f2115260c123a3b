// Dialects (docs/dialects.md): names, and each one's record layout as save()
// writes it and open() detects it. 12 storages, so string order
// (0, 1, 10, 11, 2, ...) and numeric order differ.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "torch/checkpoint.h"
#include "torch/safetensors.h"
#include "util/env.h"

#include "temp_dir.h"

namespace ckpt::torch {
namespace {

using ckpt_test::TempDir;

// A safetensors file of 12 float32 tensors t0..t11 of one element each.
std::string twelve_tensors(const TempDir& dir) {
  std::string header = "{";
  for (int i = 0; i < 12; ++i) {
    if (i) header += ",";
    header += "\"t" + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" +
              std::to_string(4 * i) + "," + std::to_string(4 * i + 4) + "]}";
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header + std::string(48, '\x01');
  std::string path = dir.file("t.safetensors");
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::vector<std::string> record_names(const Checkpoint& ck) {
  std::vector<std::string> names;
  for (const auto& r : ck.zip()->records()) names.push_back(ck.zip()->relative_name(r));
  return names;
}

std::vector<std::string> storages(const std::vector<std::string>& keys) {
  std::vector<std::string> v;
  for (const auto& k : keys) v.push_back("data/" + k);
  return v;
}

TEST(Dialect, NamesRoundTrip) {
  for (Dialect d : {Dialect::Torch1_6, Dialect::Torch2_1, Dialect::Torch2_7}) {
    EXPECT_EQ(parse_dialect(to_string(d)), d);
  }
  EXPECT_EQ(parse_dialect("2.1"), Dialect::Torch2_1);
  EXPECT_FALSE(parse_dialect("2.0"));
  EXPECT_FALSE(parse_dialect(""));
  EXPECT_EQ(kDefaultDialect, Dialect::Torch2_7);
}

TEST(Dialect, EachLayoutWrittenAndDetected) {
  TempDir dir;
  auto made = checkpoint_from_safetensors(Env::Default(), twelve_tensors(dir));
  const std::vector<std::string> string_order{"0", "1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9"};
  const std::vector<std::string> numeric_order{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"};
  struct Case {
    Dialect dialect;
    std::vector<std::string> head, keys, tail;
  };
  const std::vector<Case> cases{
      {Dialect::Torch1_6, {"data.pkl"}, string_order, {"version"}},
      {Dialect::Torch2_1, {"data.pkl", "byteorder"}, string_order, {"version", ".data/serialization_id"}},
      {Dialect::Torch2_7, {"data.pkl", ".format_version", ".storage_alignment", "byteorder"}, numeric_order,
       {"version", ".data/serialization_id"}},
  };
  for (const Case& c : cases) {
    std::string path = dir.file(std::string(to_string(c.dialect)) + ".pt");
    SaveOptions so;
    so.dialect = c.dialect;
    save(*made, made->root(), Env::Default(), path, so);
    auto back = Checkpoint::open(Env::Default(), path);
    EXPECT_EQ(back->dialect(), c.dialect);
    EXPECT_EQ(back->storage_alignment(), 64u);
    std::vector<std::string> want = c.head;
    for (const auto& s : storages(c.keys)) want.push_back(s);
    want.insert(want.end(), c.tail.begin(), c.tail.end());
    EXPECT_EQ(record_names(*back), want) << to_string(c.dialect);
    // Kept on a rewrite without --dialect.
    std::string again = dir.file(std::string(to_string(c.dialect)) + "-again.pt");
    save(*back, back->root(), Env::Default(), again);
    auto twice = Checkpoint::open(Env::Default(), again);
    EXPECT_EQ(twice->dialect(), c.dialect);
    EXPECT_EQ(record_names(*twice), want);
  }
}

}  // namespace
}  // namespace ckpt::torch
