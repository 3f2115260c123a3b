// The ZIP signatures, record sizes and field offsets: the one place the
// reader (zip_reader.cc), the writer (zip_writer.cc) and the in-place
// committer (torch/in_place.cc) take them from. Offsets are those of
// APPNOTE.TXT 4.3 and of miniz's MZ_ZIP_* constants (the reader torch links).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ckpt::container::zipfmt {

// Signatures (little-endian "PK.." words).
inline constexpr uint32_t kLocalHeaderSig = 0x04034b50;    // PK\3\4
inline constexpr uint32_t kDescriptorSig = 0x08074b50;     // PK\7\8
inline constexpr uint32_t kCentralHeaderSig = 0x02014b50;  // PK\1\2
inline constexpr uint32_t kEndSig = 0x06054b50;            // PK\5\6
inline constexpr uint32_t kZip64EndSig = 0x06064b50;       // PK\6\6
inline constexpr uint32_t kZip64LocatorSig = 0x07064b50;   // PK\6\7
// What torch's _is_zipfile compares the first four bytes with.
inline constexpr std::string_view kLocalHeaderMagic("PK\x03\x04", 4);

// Fixed sizes.
inline constexpr size_t kLocalHeaderSize = 30;
inline constexpr size_t kCentralHeaderSize = 46;
inline constexpr size_t kEndSize = 22;
inline constexpr size_t kZip64EndSize = 56;      // with the 12 bytes before "size of the rest"
inline constexpr uint64_t kZip64EndRestSize = 44;  // the record's own size field
inline constexpr size_t kZip64LocatorSize = 20;
// ZIP64 end record + locator + end record, as torch (miniz) ends every archive.
inline constexpr uint64_t kEndBlockSize = kZip64EndSize + kZip64LocatorSize + kEndSize;

// Local header fields.
namespace local {
inline constexpr size_t kSig = 0, kVersionNeeded = 4, kFlags = 6, kMethod = 8, kCrc = 14, kCompressedSize = 18,
                        kSize = 22, kNameLen = 26, kExtraLen = 28;
}
// Central directory header fields.
namespace central {
inline constexpr size_t kSig = 0, kFlags = 8, kMethod = 10, kCrc = 16, kCompressedSize = 20, kSize = 24,
                        kNameLen = 28, kExtraLen = 30, kCommentLen = 32, kDiskStart = 34, kLocalHeaderOffset = 42;
}
// End of central directory record fields.
namespace end {
inline constexpr size_t kSig = 0, kDisk = 4, kCdDisk = 6, kEntriesOnDisk = 8, kEntries = 10, kCdSize = 12,
                        kCdOffset = 16, kCommentLen = 20;
}
// ZIP64 end record fields.
namespace end64 {
inline constexpr size_t kSig = 0, kRestSize = 4, kDisk = 16, kCdDisk = 20, kEntriesOnDisk = 24, kEntries = 32,
                        kCdSize = 40, kCdOffset = 48;
}
// ZIP64 end locator fields.
namespace locator {
inline constexpr size_t kSig = 0, kCdDisk = 4, kEnd64Offset = 8, kTotalDisks = 16;
}

// The ZIP64 extended information extra field's id.
inline constexpr uint16_t kZip64ExtraId = 0x0001;
// A 32-bit field saturated to this value is in the ZIP64 extra / end record.
inline constexpr uint32_t kSaturated32 = 0xFFFFFFFF;
inline constexpr uint16_t kSaturated16 = 0xFFFF;

// miniz's mz_zip_reader_locate_header_sig: the end record is found by
// scanning backwards from the end in 4096-byte windows, stepping back 4093
// bytes a window, and giving up once 65535 + 22 bytes from the end have been
// searched (MZ_UINT16_MAX + record_size).
inline constexpr size_t kMinizSearchWindow = 4096;
inline constexpr size_t kMinizSearchLimit = 0xFFFF + kEndSize;
// MZ_ZIP_MAX_ARCHIVE_FILENAME_SIZE: torch's getAllRecords copies each name
// into a buffer this big (511 bytes and a NUL).
inline constexpr size_t kMinizMaxNameBuffer = 512;

}  // namespace ckpt::container::zipfmt
