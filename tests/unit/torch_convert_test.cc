// Dtype conversion against torch 1.13's .to(): golden pairs over every float
// value class and exhaustive hashes (tests/unit/data/convert, made by
// make_convert_golden.py with the real torch).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "torch/convert.h"
#include "util/error.h"

namespace ckpt::torch {
namespace {

const std::string kDir = std::string(CKPT_SOURCE_DIR) + "/tests/unit/data/convert/";

struct Conversion {
  const char* name;
  DType from, to;
};
const Conversion kConversions[] = {
    {"f32_to_bf16", DType::Float32, DType::BFloat16}, {"f32_to_f16", DType::Float32, DType::Float16},
    {"f64_to_f32", DType::Float64, DType::Float32},   {"f64_to_f16", DType::Float64, DType::Float16},
    {"f64_to_bf16", DType::Float64, DType::BFloat16}, {"f16_to_f32", DType::Float16, DType::Float32},
    {"f16_to_bf16", DType::Float16, DType::BFloat16}, {"bf16_to_f32", DType::BFloat16, DType::Float32},
    {"bf16_to_f16", DType::BFloat16, DType::Float16},
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) ADD_FAILURE() << "cannot open " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t load_le(const char* p, size_t n) {
  uint64_t v = 0;
  std::memcpy(&v, p, n);  // little-endian host
  return v;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

class GoldenPairs : public ::testing::TestWithParam<Conversion> {};

TEST_P(GoldenPairs, MatchTorchBitForBit) {
  const Conversion& c = GetParam();
  const size_t in_size = info(c.from).element_size, out_size = info(c.to).element_size;
  std::string data = read_file(kDir + c.name + ".bin");
  ASSERT_EQ(data.size() % (in_size + out_size), 0u);
  const size_t n = data.size() / (in_size + out_size);
  ASSERT_GT(n, 100u);
  std::string in(n * in_size, '\0'), expected(n * out_size, '\0');
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&in[i * in_size], &data[i * (in_size + out_size)], in_size);
    std::memcpy(&expected[i * out_size], &data[i * (in_size + out_size) + in_size], out_size);
  }
  // In bulk (the vectorized loop) and one element at a time (its scalar tail).
  std::string bulk(n * out_size, '\0'), single(n * out_size, '\0');
  convert_elements(c.from, c.to, in.data(), bulk.data(), n);
  for (size_t i = 0; i < n; ++i) convert_elements(c.from, c.to, &in[i * in_size], &single[i * out_size], 1);
  int reported = 0;
  for (size_t i = 0; i < n; ++i) {
    uint64_t want = load_le(&expected[i * out_size], out_size);
    uint64_t got = load_le(&bulk[i * out_size], out_size), got1 = load_le(&single[i * out_size], out_size);
    if ((want != got || want != got1) && reported++ < 10)
      ADD_FAILURE() << c.name << ": input " << hex(load_le(&in[i * in_size], in_size)) << " -> torch "
                    << hex(want) << ", ckpt " << hex(got) << " (single " << hex(got1) << ")";
  }
  EXPECT_EQ(reported, 0) << "mismatches in " << c.name;
}

INSTANTIATE_TEST_SUITE_P(Torch113, GoldenPairs, ::testing::ValuesIn(kConversions),
                         [](const auto& p) { return std::string(p.param.name); });

std::map<std::string, uint64_t> golden_hashes() {
  std::map<std::string, uint64_t> out;
  std::istringstream in(read_file(kDir + "hashes.txt"));
  std::string name, value;
  while (in >> name) {
    if (name[0] == '#') {
      std::getline(in, value);
      continue;
    }
    in >> value;
    out[name] = std::stoull(value, nullptr, 16);
  }
  return out;
}

// sum_i (out_i + 1) * (i * K1 + K2) mod 2^64 over every input bit pattern.
uint64_t exhaustive_hash(DType from, DType to) {
  constexpr uint64_t K1 = 0x9E3779B97F4A7C15ull, K2 = 0x632BE59BD9B4E019ull;
  const size_t in_size = info(from).element_size, out_size = info(to).element_size;
  const uint64_t total = uint64_t{1} << (8 * in_size);
  const uint64_t chunk = std::min<uint64_t>(total, uint64_t{1} << 22);
  std::vector<uint32_t> in(chunk);
  std::vector<uint32_t> out(chunk);
  std::vector<uint16_t> in16(chunk), out16(chunk);
  uint64_t h = 0;
  for (uint64_t start = 0; start < total; start += chunk) {
    for (uint64_t i = 0; i < chunk; ++i) {
      if (in_size == 4) in[i] = static_cast<uint32_t>(start + i);
      else in16[i] = static_cast<uint16_t>(start + i);
    }
    const void* src = in_size == 4 ? static_cast<const void*>(in.data()) : in16.data();
    void* dst = out_size == 4 ? static_cast<void*>(out.data()) : out16.data();
    convert_elements(from, to, src, dst, chunk);
    uint64_t weight = start * K1 + K2;  // (start + i) * K1 + K2, incrementally
    for (uint64_t i = 0; i < chunk; ++i, weight += K1) h += ((out_size == 4 ? out[i] : out16[i]) + uint64_t{1}) * weight;
  }
  return h;
}

TEST(ConvertExhaustive, SixteenBitSourcesMatchTorch) {
  auto hashes = golden_hashes();
  for (const Conversion& c : kConversions) {
    if (info(c.from).element_size != 2) continue;
    ASSERT_TRUE(hashes.count(c.name)) << c.name;
    EXPECT_EQ(exhaustive_hash(c.from, c.to), hashes[c.name]) << c.name << " over all 65536 inputs";
  }
}

TEST(ConvertExhaustive, AllFloat32InputsMatchTorch) {
  auto hashes = golden_hashes();
  for (const Conversion& c : kConversions) {
    if (c.from != DType::Float32) continue;
    ASSERT_TRUE(hashes.count(c.name)) << c.name;
    EXPECT_EQ(exhaustive_hash(c.from, c.to), hashes[c.name]) << c.name << " over all 2^32 inputs";
  }
}

TEST(Convert, ScalarKernels) {
  EXPECT_EQ(float32_to_bfloat16(0x3F800000u), 0x3F80);
  EXPECT_EQ(float32_to_bfloat16(0x3F808000u), 0x3F80);  // tie to even
  EXPECT_EQ(float32_to_bfloat16(0x3F818000u), 0x3F82);  // tie to even (up)
  EXPECT_EQ(float32_to_bfloat16(0x7F7FFFFFu), 0x7F80);  // overflow to Inf
  EXPECT_EQ(float32_to_float16(0x477FF000u), 0x7C00);   // 65520 -> Inf
  EXPECT_EQ(float32_to_float16(0x477FEFFFu), 0x7BFF);   // just below -> 65504
  EXPECT_EQ(float32_to_float16(0x33000000u), 0x0000);   // 2^-25: tie to even zero
  EXPECT_EQ(float32_to_float16(0x33000001u), 0x0001);   // just above: smallest subnormal
  EXPECT_EQ(float32_to_float16(0x80000000u), 0x8000);   // -0
  EXPECT_EQ(float32_to_float16(0xFFC12345u), 0xFE00);   // NaN keeps its sign, not its payload
  EXPECT_EQ(float16_to_float32(0x0001), 0x33800000u);
  EXPECT_EQ(float16_to_float32(0x7C01), 0x7FC02000u);
  EXPECT_EQ(bfloat16_to_float32(0x7F81), 0x7F810000u);
}

TEST(Convert, UnsupportedPairsAreUsageErrors) {
  EXPECT_FALSE(can_convert(DType::Int64, DType::Float32));
  EXPECT_FALSE(can_convert(DType::Float32, DType::Float64));
  EXPECT_FALSE(can_convert(DType::Float32, DType::Float32));
  char buf[8] = {};
  EXPECT_THROW(convert_elements(DType::Int32, DType::Float16, buf, buf + 4, 1), UsageError);
}

}  // namespace
}  // namespace ckpt::torch
