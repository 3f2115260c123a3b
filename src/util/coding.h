// Fixed-width little-endian integers, as zip records, pickle opcodes,
// safetensors headers and legacy storages store them (LevelDB's
// util/coding.h). Byte by byte, so alignment and the host's byte order
// never matter.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt {

inline uint16_t decode_fixed16(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}

inline uint32_t decode_fixed32(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) | (static_cast<uint32_t>(u[2]) << 16) |
         (static_cast<uint32_t>(u[3]) << 24);
}

inline uint64_t decode_fixed64(const char* p) {
  return decode_fixed32(p) | (static_cast<uint64_t>(decode_fixed32(p + 4)) << 32);
}

// An unsigned of 0 to 8 bytes (pickle's BININT1/BININT2, LONG1 up to 8 bytes).
inline uint64_t decode_fixed(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = bytes.size(); i-- > 0;) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

inline void put_fixed16(std::string& dst, uint16_t v) {
  dst.push_back(static_cast<char>(v & 0xFF));
  dst.push_back(static_cast<char>(v >> 8));
}

inline void put_fixed32(std::string& dst, uint32_t v) {
  put_fixed16(dst, static_cast<uint16_t>(v & 0xFFFF));
  put_fixed16(dst, static_cast<uint16_t>(v >> 16));
}

inline void put_fixed64(std::string& dst, uint64_t v) {
  put_fixed32(dst, static_cast<uint32_t>(v & 0xFFFFFFFF));
  put_fixed32(dst, static_cast<uint32_t>(v >> 32));
}

}  // namespace ckpt
