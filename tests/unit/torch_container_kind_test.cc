// detect_container's building blocks: torch's legacy magic number in any
// pickle encoding, and tar headers as Python's tarfile accepts them.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "torch/container_kind.h"

namespace {

using ckpt::torch::legacy_magic_pickle_size;
using ckpt::torch::tar_checksum_matches;

const std::string kMagicLong1("\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 12);

TEST(LegacyMagic, EveryProtocolTorchWrites) {
  std::string p2 = std::string("\x80\x02", 2) + kMagicLong1 + ".";
  EXPECT_EQ(legacy_magic_pickle_size(p2 + "rest"), p2.size());
  std::string p3 = std::string("\x80\x03", 2) + kMagicLong1 + ".";
  EXPECT_EQ(legacy_magic_pickle_size(p3), p3.size());
  // Protocol 4/5: a FRAME of 13 bytes around the LONG1 and STOP.
  std::string frame = std::string("\x95\x0d\0\0\0\0\0\0\0", 9);
  std::string p4 = std::string("\x80\x04", 2) + frame + kMagicLong1 + ".";
  EXPECT_EQ(legacy_magic_pickle_size(p4 + "x"), p4.size());
  std::string p5 = std::string("\x80\x05", 2) + frame + kMagicLong1 + ".";
  EXPECT_EQ(legacy_magic_pickle_size(p5), p5.size());
}

TEST(LegacyMagic, ValueNotBytes) {
  // Protocol 0 text LONG of 0x1950a86a20f9469cfc6c, as pickle.dumps(magic, 0) writes it.
  std::string p0 = "L119547037146038801333356L\n.";
  EXPECT_EQ(legacy_magic_pickle_size(p0), p0.size());
  EXPECT_EQ(legacy_magic_pickle_size("L119547037146038801333357L\n."), 0u);
  EXPECT_EQ(legacy_magic_pickle_size(std::string("\x80\x02K\x01.", 5)), 0u);
  EXPECT_EQ(legacy_magic_pickle_size("not a pickle"), 0u);
  EXPECT_EQ(legacy_magic_pickle_size(""), 0u);
}

std::string tar_header(const std::string& chksum_field) {
  std::string h(512, '\0');
  h.replace(0, 8, "storages");
  h.replace(100, 7, "0000644");
  h.replace(124, 11, "00000000010");
  h.replace(148, 8, chksum_field);
  return h;
}

std::string with_checksum(std::string h, const char* fmt) {
  unsigned sum = 8 * ' ';
  for (size_t i = 0; i < 512; ++i)
    if (i < 148 || i >= 156) sum += static_cast<unsigned char>(h[i]);
  char buf[16];
  std::snprintf(buf, sizeof buf, fmt, sum);
  std::string field(buf);
  field.resize(8, '\0');
  h.replace(148, 8, field);
  return h;
}

TEST(TarHeader, ChecksumSpellingsTarfileAccepts) {
  std::string base = tar_header(std::string(8, ' '));
  EXPECT_TRUE(tar_checksum_matches(with_checksum(base, "%06o")));
  EXPECT_TRUE(tar_checksum_matches(with_checksum(base, "%07o")));
  EXPECT_TRUE(tar_checksum_matches(with_checksum(base, " %o ")));
  EXPECT_TRUE(tar_checksum_matches(with_checksum(base, "0o%o")));
  EXPECT_TRUE(tar_checksum_matches(with_checksum(base, "+%o")));
  EXPECT_FALSE(tar_checksum_matches(with_checksum(base, "%o1")));
  EXPECT_FALSE(tar_checksum_matches(base));
  EXPECT_FALSE(tar_checksum_matches(std::string(512, '\0')));
  EXPECT_FALSE(tar_checksum_matches("short"));
}

}  // namespace
