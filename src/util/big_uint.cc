#include "util/big_uint.h"

#include <algorithm>

namespace ckpt {

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

BigUint BigUint::from_le_bytes(std::string_view bytes) {
  BigUint n;
  n.limbs_.assign((bytes.size() + 3) / 4, 0);
  for (size_t i = 0; i < bytes.size(); ++i)
    n.limbs_[i / 4] |= uint32_t{static_cast<uint8_t>(bytes[i])} << (8 * (i % 4));
  n.trim();
  return n;
}

BigUint BigUint::from_digits(std::string_view digits, unsigned base) {
  // Several digits per multiplication: base^k still fits 32 bits.
  unsigned per = 1;
  for (uint64_t p = base; p * base <= 0xFFFFFFFFu; p *= base) ++per;
  BigUint n;
  for (size_t i = 0; i < digits.size();) {
    size_t chunk = std::min<size_t>(per, digits.size() - i);
    uint32_t mul = 1, add = 0;
    for (size_t k = 0; k < chunk; ++k, ++i) {
      mul *= base;
      add = add * base + static_cast<uint32_t>(digit_value(digits[i]));
    }
    n.mul_add(mul, add);
  }
  return n;
}

void BigUint::mul_add(uint32_t mul, uint32_t add) {
  uint64_t carry = add;
  for (uint32_t& limb : limbs_) {
    uint64_t t = uint64_t{limb} * mul + carry;
    limb = static_cast<uint32_t>(t);
    carry = t >> 32;
  }
  if (carry) limbs_.push_back(static_cast<uint32_t>(carry));
  trim();
}

void BigUint::add(const BigUint& other) {
  if (limbs_.size() < other.limbs_.size()) limbs_.resize(other.limbs_.size(), 0);
  uint64_t carry = 0;
  for (size_t k = 0; k < limbs_.size(); ++k) {
    uint64_t t = uint64_t{limbs_[k]} + (k < other.limbs_.size() ? other.limbs_[k] : 0) + carry;
    limbs_[k] = static_cast<uint32_t>(t);
    carry = t >> 32;
  }
  if (carry) limbs_.push_back(static_cast<uint32_t>(carry));
}

std::string BigUint::le_bytes() const {
  std::string out;
  for (uint32_t limb : limbs_)
    for (int k = 0; k < 4; ++k) out += static_cast<char>((limb >> (8 * k)) & 0xFF);
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

std::string BigUint::decimal() const {
  if (limbs_.empty()) return "0";
  // Repeated division by 1e9 gives base-1e9 digits, least significant first.
  std::vector<uint32_t> n = limbs_, parts;
  while (!n.empty()) {
    uint64_t rem = 0;
    for (size_t k = n.size(); k-- > 0;) {
      uint64_t cur = (rem << 32) | n[k];
      n[k] = static_cast<uint32_t>(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    parts.push_back(static_cast<uint32_t>(rem));
    while (!n.empty() && n.back() == 0) n.pop_back();
  }
  std::string out = std::to_string(parts.back());
  for (size_t k = parts.size() - 1; k-- > 0;) {
    std::string part = std::to_string(parts[k]);
    out += std::string(9 - part.size(), '0') + part;
  }
  return out;
}

void BigUint::trim() {
  while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
}

}  // namespace ckpt
