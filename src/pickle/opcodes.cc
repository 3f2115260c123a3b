#include "pickle/opcodes.h"

#include "util/coding.h"
#include "util/error.h"

namespace ckpt::pickle {

namespace {

enum class Arg : uint8_t {
  Unknown, None, Fixed1, Fixed2, Fixed4, Fixed8, Line, TwoLines,
  Counted1, Counted4, Counted4Signed, Counted8,
};

struct OpInfo {
  const char* name = nullptr;
  Arg arg = Arg::Unknown;
};

struct OpTable {
  OpInfo info[256];
  constexpr OpTable() {
    auto set = [this](uint8_t c, const char* n, Arg a) { info[c] = OpInfo{n, a}; };
    using namespace op;
    set(MARK, "MARK", Arg::None);
    set(STOP, "STOP", Arg::None);
    set(POP, "POP", Arg::None);
    set(POP_MARK, "POP_MARK", Arg::None);
    set(DUP, "DUP", Arg::None);
    set(FLOAT, "FLOAT", Arg::Line);
    set(INT, "INT", Arg::Line);
    set(BININT, "BININT", Arg::Fixed4);
    set(BININT1, "BININT1", Arg::Fixed1);
    set(LONG, "LONG", Arg::Line);
    set(BININT2, "BININT2", Arg::Fixed2);
    set(NONE, "NONE", Arg::None);
    set(PERSID, "PERSID", Arg::Line);
    set(BINPERSID, "BINPERSID", Arg::None);
    set(REDUCE, "REDUCE", Arg::None);
    set(STRING, "STRING", Arg::Line);
    set(BINSTRING, "BINSTRING", Arg::Counted4Signed);
    set(SHORT_BINSTRING, "SHORT_BINSTRING", Arg::Counted1);
    set(UNICODE, "UNICODE", Arg::Line);
    set(BINUNICODE, "BINUNICODE", Arg::Counted4);
    set(APPEND, "APPEND", Arg::None);
    set(BUILD, "BUILD", Arg::None);
    set(GLOBAL, "GLOBAL", Arg::TwoLines);
    set(DICT, "DICT", Arg::None);
    set(EMPTY_DICT, "EMPTY_DICT", Arg::None);
    set(APPENDS, "APPENDS", Arg::None);
    set(GET, "GET", Arg::Line);
    set(BINGET, "BINGET", Arg::Fixed1);
    set(INST, "INST", Arg::TwoLines);
    set(LONG_BINGET, "LONG_BINGET", Arg::Fixed4);
    set(LIST, "LIST", Arg::None);
    set(EMPTY_LIST, "EMPTY_LIST", Arg::None);
    set(OBJ, "OBJ", Arg::None);
    set(PUT, "PUT", Arg::Line);
    set(BINPUT, "BINPUT", Arg::Fixed1);
    set(LONG_BINPUT, "LONG_BINPUT", Arg::Fixed4);
    set(SETITEM, "SETITEM", Arg::None);
    set(TUPLE, "TUPLE", Arg::None);
    set(EMPTY_TUPLE, "EMPTY_TUPLE", Arg::None);
    set(SETITEMS, "SETITEMS", Arg::None);
    set(BINFLOAT, "BINFLOAT", Arg::Fixed8);
    set(PROTO, "PROTO", Arg::Fixed1);
    set(NEWOBJ, "NEWOBJ", Arg::None);
    set(EXT1, "EXT1", Arg::Fixed1);
    set(EXT2, "EXT2", Arg::Fixed2);
    set(EXT4, "EXT4", Arg::Fixed4);
    set(TUPLE1, "TUPLE1", Arg::None);
    set(TUPLE2, "TUPLE2", Arg::None);
    set(TUPLE3, "TUPLE3", Arg::None);
    set(NEWTRUE, "NEWTRUE", Arg::None);
    set(NEWFALSE, "NEWFALSE", Arg::None);
    set(LONG1, "LONG1", Arg::Counted1);
    set(LONG4, "LONG4", Arg::Counted4Signed);
    set(BINBYTES, "BINBYTES", Arg::Counted4);
    set(SHORT_BINBYTES, "SHORT_BINBYTES", Arg::Counted1);
    set(SHORT_BINUNICODE, "SHORT_BINUNICODE", Arg::Counted1);
    set(BINUNICODE8, "BINUNICODE8", Arg::Counted8);
    set(BINBYTES8, "BINBYTES8", Arg::Counted8);
    set(EMPTY_SET, "EMPTY_SET", Arg::None);
    set(ADDITEMS, "ADDITEMS", Arg::None);
    set(FROZENSET, "FROZENSET", Arg::None);
    set(NEWOBJ_EX, "NEWOBJ_EX", Arg::None);
    set(STACK_GLOBAL, "STACK_GLOBAL", Arg::None);
    set(MEMOIZE, "MEMOIZE", Arg::None);
    set(FRAME, "FRAME", Arg::Fixed8);
    set(BYTEARRAY8, "BYTEARRAY8", Arg::Counted8);
    set(NEXT_BUFFER, "NEXT_BUFFER", Arg::None);
    set(READONLY_BUFFER, "READONLY_BUFFER", Arg::None);
  }
};

constexpr OpTable kOps;

struct FixedWidths {
  uint8_t width[256];
  constexpr FixedWidths() : width{} {
    for (int c = 0; c < 256; ++c) {
      switch (kOps.info[c].arg) {
        case Arg::None: width[c] = 0; break;
        case Arg::Fixed1: width[c] = 1; break;
        case Arg::Fixed2: width[c] = 2; break;
        case Arg::Fixed4: width[c] = 4; break;
        default: width[c] = kNotFixed; break;
      }
    }
  }
};
constexpr FixedWidths kWidths;

}  // namespace

const uint8_t kFixedArgWidth[256] = {
#define W(i) kWidths.width[i]
#define W8(i) W(i), W(i + 1), W(i + 2), W(i + 3), W(i + 4), W(i + 5), W(i + 6), W(i + 7)
#define W64(i) W8(i), W8(i + 8), W8(i + 16), W8(i + 24), W8(i + 32), W8(i + 40), W8(i + 48), W8(i + 56)
    W64(0), W64(64), W64(128), W64(192),
#undef W64
#undef W8
#undef W
};

const char* opcode_name(uint8_t code) { return kOps.info[code].name; }

void OpReader::fail(size_t offset, const std::string& what) const {
  throw FormatError(std::string(source_) + ": offset " + std::to_string(offset) + ": " + what);
}

void OpReader::take_fail(size_t n, const Instruction& ins, const char* what) const {
  fail(ins.offset, std::string(kOps.info[ins.code].name) + " " + what + " of " + std::to_string(n) +
                       " bytes runs past the end of the data (" + std::to_string(data_.size() - pos_) +
                       " left)");
}

std::string_view OpReader::line(const Instruction& ins) {
  size_t nl = data_.find('\n', pos_);
  if (nl == std::string_view::npos)
    fail(ins.offset, std::string(kOps.info[ins.code].name) + " argument has no end of line (truncated)");
  std::string_view s = data_.substr(pos_, nl - pos_);
  pos_ = nl + 1;
  return s;
}

Instruction OpReader::next() {
  Instruction ins;
  ins.offset = pos_;
  if (pos_ >= data_.size()) fail(pos_, "data ends before STOP (truncated)");
  ins.code = static_cast<uint8_t>(data_[pos_++]);
  const OpInfo& info = kOps.info[ins.code];
  switch (info.arg) {
    case Arg::Unknown: {
      static const char* hex = "0123456789abcdef";
      fail(ins.offset, std::string("unknown opcode 0x") + hex[ins.code >> 4] + hex[ins.code & 15]);
    }
    case Arg::None: break;
    case Arg::Fixed1: ins.arg = take(1, ins, "argument"); break;
    case Arg::Fixed2: ins.arg = take(2, ins, "argument"); break;
    case Arg::Fixed4: ins.arg = take(4, ins, "argument"); break;
    case Arg::Fixed8: ins.arg = take(8, ins, "argument"); break;
    case Arg::Line: ins.arg = line(ins); break;
    case Arg::TwoLines:
      ins.arg = line(ins);
      ins.arg2 = line(ins);
      break;
    case Arg::Counted1: {
      size_t n = static_cast<uint8_t>(take(1, ins, "length")[0]);
      ins.arg = take(n, ins, "payload");
      break;
    }
    case Arg::Counted4: {
      size_t n = decode_fixed(take(4, ins, "length"));
      ins.arg = take(n, ins, "payload");
      break;
    }
    case Arg::Counted4Signed: {
      uint64_t raw = decode_fixed(take(4, ins, "length"));
      if (raw & 0x80000000u) fail(ins.offset, std::string(info.name) + " has a negative byte count");
      ins.arg = take(raw, ins, "payload");
      break;
    }
    case Arg::Counted8: {
      uint64_t n = decode_fixed(take(8, ins, "length"));
      if (n > data_.size() - pos_)
        fail(ins.offset, std::string(info.name) + " payload of " + std::to_string(n) +
                             " bytes runs past the end of the data (" +
                             std::to_string(data_.size() - pos_) + " left)");
      ins.arg = take(n, ins, "payload");
      break;
    }
  }
  return ins;
}

}  // namespace ckpt::pickle
