// Non-negative integers of any size, for Python ints past int64: pickle's
// LONG opcodes (little-endian two's complement bytes) and YAML / decimal
// text. One implementation for every layer.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt {

class BigUint {
 public:
  BigUint() = default;
  // The magnitude of little-endian unsigned bytes.
  static BigUint from_le_bytes(std::string_view bytes);
  // The value of `digits`, each a digit of `base` (2 to 16, 0-9a-fA-F);
  // nullopt-free: the caller checks the digits (digit_value() < base).
  static BigUint from_digits(std::string_view digits, unsigned base);

  // this = this * mul + add.
  void mul_add(uint32_t mul, uint32_t add);
  void add(const BigUint& other);
  bool is_zero() const { return limbs_.empty(); }

  // Minimal little-endian unsigned bytes (empty for 0).
  std::string le_bytes() const;
  std::string decimal() const;

 private:
  void trim();
  std::vector<uint32_t> limbs_;  // base 2^32, little-endian, no high zero limbs
};

// Value of hex digit c (0-9, a-f, A-F); 99 for anything else.
int digit_value(char c);

}  // namespace ckpt
