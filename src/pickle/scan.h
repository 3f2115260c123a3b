// A light walk over a pickle's opcode stream (no object graph) that lists the
// globals it names and what it does with them, for safety checks. STACK_GLOBAL
// operands are resolved through a symbolic stack and memo.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::pickle {

struct GlobalUse {
  std::string module, name;  // "?" "?" when not resolvable (non-str STACK_GLOBAL operands, EXT*)
  bool called = false;        // invoked: REDUCE callable, or INST / OBJ class (they call it too)
  bool instantiated = false;  // NEWOBJ / NEWOBJ_EX / INST / OBJ class
  bool built = false;         // BUILD on an object it made (or on the global itself)
  bool in_persistent_id = false;  // inside a BINPERSID tuple (torch: the storage class)
  bool class_built = false;   // BUILD applied to the global itself: sets attributes on a class
  size_t first_offset = 0;    // offset of the first opcode that names it
};

// One entry per distinct (module, name), in order of first use. Throws
// FormatError "<source>: offset N: <what>" on malformed input. If end_offset
// is given it receives the offset just past STOP.
// frame_end, when given, receives the offset just past the last FRAME the
// pickle opened (0 without frames): CPython reads a whole frame at once, so
// a file read by read(n) is there, not at STOP, when the frame runs past STOP.
std::vector<GlobalUse> scan_globals(std::string_view data, std::string_view source = "pickle",
                                    size_t* end_offset = nullptr, size_t* frame_end = nullptr);

// True for the opcodes torch's weights_only unpickler accepts (torch 2.x;
// torch 1.13's list lacks BINFLOAT).
bool is_weights_only_opcode(uint8_t code);

// The distinct opcodes of one pickle (up to STOP), in order of first use.
std::vector<uint8_t> opcodes_used(std::string_view data, std::string_view source = "pickle");

// pickletools' name of an opcode, or "?" if unknown.
std::string opcode_display_name(uint8_t code);

}  // namespace ckpt::pickle
