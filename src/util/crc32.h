// CRC-32 (IEEE 802.3, reflected: the one zip and gzip use).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ckpt {

// Continues a CRC-32 over n more bytes; start with crc = 0. Chains like
// zlib's crc32(): crc32_update(crc32_update(0, a, n), b, m) is the CRC of a+b.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

}  // namespace ckpt
