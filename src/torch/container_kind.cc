#include "torch/container_kind.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <utility>

#include "container/zip_format.h"
#include "container/zip_reader.h"
#include "pickle/unpickler.h"
#include "util/error.h"

namespace ckpt::torch {

const char* to_string(ContainerKind k) {
  switch (k) {
    case ContainerKind::Zip: return "zip";
    case ContainerKind::Tar: return "tar";
    case ContainerKind::Legacy: return "legacy";
    case ContainerKind::Pickle: return "pickle";
  }
  return "?";
}

namespace {

// 0x1950a86a20f9469cfc6c as the minimal little-endian LONG bytes the
// unpickler keeps for integers beyond int64.
constexpr std::string_view kMagicLong("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

// Python's int(s, 8) after tarfile's nts(): optional sign, optional 0o,
// octal digits with single underscores between them, surrounding whitespace.
std::optional<int64_t> python_octal(std::string_view field) {
  auto nul = field.find('\0');
  if (nul != std::string_view::npos) field = field.substr(0, nul);
  auto is_ws = [](unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); };
  while (!field.empty() && is_ws(static_cast<unsigned char>(field.front()))) field.remove_prefix(1);
  while (!field.empty() && is_ws(static_cast<unsigned char>(field.back()))) field.remove_suffix(1);
  if (field.empty()) return 0;  // int("" or "0") -> 0
  bool negative = false;
  if (field[0] == '+' || field[0] == '-') {
    negative = field[0] == '-';
    field.remove_prefix(1);
  }
  if (field.size() >= 2 && field[0] == '0' && (field[1] == 'o' || field[1] == 'O')) {
    field.remove_prefix(2);
    if (!field.empty() && field[0] == '_') field.remove_prefix(1);
  }
  if (field.empty()) return std::nullopt;
  int64_t v = 0;
  bool last_underscore = true;
  for (char c : field) {
    if (c == '_') {
      if (last_underscore) return std::nullopt;
      last_underscore = true;
      continue;
    }
    if (c < '0' || c > '7') return std::nullopt;
    if (v > (int64_t{1} << 40)) return std::nullopt;  // far beyond any 512-byte sum
    v = v * 8 + (c - '0');
    last_underscore = false;
  }
  if (last_underscore) return std::nullopt;
  return negative ? -v : v;
}

// tarfile's nti(): base-256 when the first byte is 0o200 or 0o377.
std::optional<int64_t> tar_number(std::string_view field) {
  if (!field.empty() && (static_cast<unsigned char>(field[0]) == 0200 || static_cast<unsigned char>(field[0]) == 0377)) {
    __int128 n = 0;
    for (size_t i = 1; i < field.size(); ++i) {
      n = n * 256 + static_cast<unsigned char>(field[i]);
      if (n > (static_cast<__int128>(1) << 100)) n = static_cast<__int128>(1) << 100;  // fields are <= 12 bytes
    }
    if (static_cast<unsigned char>(field[0]) == 0377 && field.size() <= 12)
      n = -((static_cast<__int128>(1) << (8 * (field.size() - 1))) - n);
    // Python's ints have no bound; saturated, a value this large is past any
    // file and any checksum all the same.
    const __int128 cap = static_cast<__int128>(1) << 62;
    return static_cast<int64_t>(n > cap ? cap : n < -cap ? -cap : n);
  }
  return python_octal(field);
}

// TarInfo.frombuf: the checksum, then every number field through nti().
bool tar_header_valid(std::string_view h) {
  if (!tar_checksum_matches(h)) return false;
  for (auto [at, len] : {std::pair<size_t, size_t>{100, 8}, {108, 8}, {116, 8}, {124, 12}, {136, 12}, {329, 8}, {337, 8}})
    if (!tar_number(h.substr(at, len))) return false;
  return true;
}

std::string field_text(std::string_view h, size_t at, size_t len) {
  std::string_view v = h.substr(at, len);
  return std::string(v.substr(0, std::min(v.size(), v.find('\0'))));
}

}  // namespace

std::optional<std::vector<TarMember>> python_tarfile_members(RandomAccessFile& f, std::string* unmodelled) {
  std::vector<TarMember> members;
  const uint64_t size = f.size();
  uint64_t off = 0;
  for (;;) {
    if (size - off < 512) {  // EmptyHeaderError / TruncatedHeaderError
      if (off == 0) return std::nullopt;
      break;
    }
    std::string h = f.read_string(off, 512);
    if (std::all_of(h.begin(), h.end(), [](char c) { return c == '\0'; })) {  // EOFHeaderError
      if (off == 0) return std::nullopt;  // tarfile: ReadError("empty file")
      break;
    }
    if (!tar_header_valid(h)) {  // InvalidHeaderError
      if (off == 0) return std::nullopt;
      break;
    }
    TarMember m;
    m.name = field_text(h, 0, 100);
    m.type = h[156];
    const std::string prefix = field_text(h, 345, 155);
    if (m.type == 'x' || m.type == 'g' || m.type == 'X' || m.type == 'L' || m.type == 'K' || m.type == 'S') {
      if (unmodelled)
        *unmodelled = "tar member at offset " + std::to_string(off) +
                      " is a PAX, GNU extended or sparse header, which ckpt does not model";
      break;
    }
    if (m.type == '\0' && !m.name.empty() && m.name.back() == '/') m.type = '5';
    if (m.type == '5')
      while (!m.name.empty() && m.name.back() == '/') m.name.pop_back();
    if (!prefix.empty()) m.name = prefix + "/" + m.name;
    int64_t declared = *tar_number(h.substr(124, 12));
    m.offset = off + 512;
    m.size = declared < 0 ? 0 : static_cast<uint64_t>(declared);
    // _proc_builtin skips the data of regular members and of types tarfile
    // does not know; a directory, link or device keeps its size but the next
    // header follows at once.
    static constexpr std::string_view kSupported("01234567", 8);
    const bool skips = m.regular() || kSupported.find(m.type) == std::string_view::npos;
    uint64_t next = m.offset;
    if (skips && declared > 0) {
      const uint64_t blocks = (m.size + 511) / 512;
      if (blocks > (size - m.offset) / 512 + 1) return std::nullopt;  // far past the end
      next = m.offset + blocks * 512;
      // next(): seek(offset - 1); read(1) is empty -> ReadError("unexpected end of data").
      if (next > size) return std::nullopt;
    }
    members.push_back(std::move(m));
    off = next;
  }
  return members;
}

bool tar_checksum_matches(std::string_view block) {
  if (block.size() != 512) return false;
  if (std::all_of(block.begin(), block.end(), [](char c) { return c == '\0'; })) return false;
  auto chk = tar_number(block.substr(148, 8));
  if (!chk) return false;
  int64_t unsigned_sum = 8 * 0x20, signed_sum = 8 * 0x20;
  for (size_t i = 0; i < 512; ++i) {
    if (i >= 148 && i < 156) continue;
    unsigned_sum += static_cast<unsigned char>(block[i]);
    signed_sum += static_cast<signed char>(block[i]);
  }
  return *chk == unsigned_sum || *chk == signed_sum;
}

size_t legacy_magic_pickle_size(std::string_view data) {
  try {
    size_t used = 0;
    pickle::Graph g = pickle::unpickle(data, {.limits = {}, .source = "magic"}, &used);
    if (g.root && g.root->is_big_int() && g.root->text == kMagicLong) return used;
  } catch (const FormatError&) {
  }
  return 0;
}

ContainerGuess detect_container(RandomAccessFile& f) {
  ContainerGuess g;
  // torch's _is_zipfile: exactly the local header magic at offset 0 (an
  // empty archive's end record there is not a zip to torch).
  if (f.size() >= 4 && f.read_string(0, 4) == container::zipfmt::kLocalHeaderMagic) {
    g.kind = ContainerKind::Zip;
    return g;
  }
  if (f.size() >= 512 && tar_header_valid(f.read_string(0, 512)) && python_tarfile_members(f)) {
    g.kind = ContainerKind::Tar;
    return g;
  }
  std::string head = f.read_string(0, static_cast<size_t>(std::min<uint64_t>(f.size(), 4096)));
  g.magic_size = legacy_magic_pickle_size(head);
  g.kind = g.magic_size ? ContainerKind::Legacy : ContainerKind::Pickle;
  return g;
}

}  // namespace ckpt::torch
