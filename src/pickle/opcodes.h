// Pickle opcodes (CPython's pickletools) and a reader that splits a pickle
// into instructions, checking every declared length against the data before
// anything is allocated. Shared by the unpickler and the scanner.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt::pickle {

namespace op {
inline constexpr uint8_t MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2',
                         FLOAT = 'F', INT = 'I', BININT = 'J', BININT1 = 'K', LONG = 'L',
                         BININT2 = 'M', NONE = 'N', PERSID = 'P', BINPERSID = 'Q', REDUCE = 'R',
                         STRING = 'S', BINSTRING = 'T', SHORT_BINSTRING = 'U', UNICODE = 'V',
                         BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd',
                         EMPTY_DICT = '}', APPENDS = 'e', GET = 'g', BINGET = 'h', INST = 'i',
                         LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', OBJ = 'o', PUT = 'p',
                         BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't',
                         EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
                         // protocol 2
                         PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84,
                         TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88,
                         NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
                         // protocol 3
                         BINBYTES = 'B', SHORT_BINBYTES = 'C',
                         // protocol 4
                         SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e,
                         EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92,
                         STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
                         // protocol 5
                         BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98;
}  // namespace op

// pickletools' name of an opcode ("BINUNICODE"), or nullptr if unknown.
const char* opcode_name(uint8_t code);

struct Instruction {
  uint8_t code = 0;
  size_t offset = 0;      // of the opcode byte
  std::string_view arg;   // fixed-size bytes, counted payload, or first text line (no '\n')
  std::string_view arg2;  // second text line of GLOBAL / INST
};

// Per opcode: the bytes of its argument when that is fixed at 0 (none), 1,
// 2 or 4; kNotFixed for the rest (counted, text lines, 8 bytes, unknown).
inline constexpr uint8_t kNotFixed = 0xff;
extern const uint8_t kFixedArgWidth[256];

class OpReader {
 public:
  OpReader(std::string_view data, std::string_view source, size_t pos = 0)
      : data_(data), source_(source), pos_(pos) {}

  // Reads the instruction at pos(). Throws FormatError on an unknown opcode,
  // a truncated argument or a declared length past the end of the data.
  Instruction next();
  // next(), inline for an opcode of no argument or a fixed one of up to 4
  // bytes with the bytes there (most of a pickle: memo GET / PUT, MARK,
  // small ints, tuples, dicts); the others, and every error, through next().
  Instruction next_fast() {
    if (data_.size() - pos_ >= 5) {
      const auto code = static_cast<uint8_t>(data_[pos_]);
      const uint8_t width = kFixedArgWidth[code];
      if (width != kNotFixed) {
        Instruction ins;
        ins.code = code;
        ins.offset = pos_;
        if (width) ins.arg = std::string_view(data_.data() + pos_ + 1, width);
        pos_ += 1 + width;
        return ins;
      }
    }
    return next();
  }
  size_t pos() const { return pos_; }
  bool at_end() const { return pos_ >= data_.size(); }

  // Throws FormatError "<source>: offset N: <what>".
  [[noreturn]] void fail(size_t offset, const std::string& what) const;

 private:
  // n bytes from pos(), inline (every argument of the ~25,000 opcodes of a
  // checkpoint's data.pkl passes here); a short read throws from take_fail.
  std::string_view take(size_t n, const Instruction& ins, const char* what) {
    if (n > data_.size() - pos_) [[unlikely]]
      take_fail(n, ins, what);
    std::string_view s(data_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  [[noreturn]] void take_fail(size_t n, const Instruction& ins, const char* what) const;
  std::string_view line(const Instruction& ins);

  std::string_view data_;
  std::string_view source_;
  size_t pos_;
};

}  // namespace ckpt::pickle
