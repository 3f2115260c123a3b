// The value stack of a pickle VM with its MARK fences, shared by the two
// readers of the opcode stream (unpickler.cc builds the graph, scan.cc
// tracks names only): nothing below the innermost mark can be popped.
#pragma once
#include <cstddef>
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::pickle {

// At most this many values and marks on the stack together: CPython's stack
// grows without bound (tens of millions of NONE opcodes make hundreds of MiB),
// ckpt's stays within its memory limit and says which limit it hit.
inline constexpr size_t kMaxStackItems = size_t{1} << 22;

// A GLOBAL / STACK_GLOBAL / INST module or name longer than this is refused:
// no importable module or attribute is named so, and copying a memoised
// 8 MiB string into every global would cost memory the file does not hold.
inline constexpr size_t kMaxGlobalNameBytes = 4096;

template <class Fail>
void check_global_name(std::string_view module, std::string_view name, Fail&& fail) {
  if (module.size() > kMaxGlobalNameBytes || name.size() > kMaxGlobalNameBytes)
    fail("global name of " + std::to_string(std::max(module.size(), name.size())) + " bytes, over the " +
         std::to_string(kMaxGlobalNameBytes) + "-byte limit for a module or attribute name");
}

template <class T>
class MarkedStack {
 protected:
  MarkedStack() = default;
  ~MarkedStack() = default;

  // Throws (a FormatError naming the opcode's offset).
  [[noreturn]] virtual void fail(const std::string& what) const = 0;

  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void mark() {
    check_room();
    marks_.push_back(stack_.size());
  }
  // The checks run on every push and pop: inline, with their messages built
  // out of line (cold) so that they stay small enough to inline.
  void check_room() const {
    if (stack_.size() + marks_.size() >= kMaxStackItems) [[unlikely]]
      room_fail();
  }
  [[noreturn, gnu::cold, gnu::noinline]] void room_fail() const {
    fail("more than " + std::to_string(kMaxStackItems) + " values and marks on the stack (ckpt's stack limit)");
    __builtin_unreachable();  // fail() throws (GCC does not carry [[noreturn]] through the virtual call)
  }
  [[noreturn, gnu::cold, gnu::noinline]] void underflow() const {
    fail("stack underflow");
    __builtin_unreachable();
  }
  // POP. CPython: a POP right after MARK discards the mark.
  void pop_or_unmark() {
    if (!marks_.empty() && marks_.back() == stack_.size())
      marks_.pop_back();
    else
      pop();
  }
  void push(T v) {
    check_room();
    stack_.push_back(std::move(v));
  }
  T pop() {
    if (stack_.size() <= fence()) [[unlikely]]
      underflow();
    T v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  T& top() {
    if (stack_.size() <= fence()) [[unlikely]]
      underflow();
    return stack_.back();
  }
  // The top n values, oldest first, popped.
  std::vector<T> pop_n(size_t n) {
    if (stack_.size() < fence() + n) fail("stack underflow");
    std::vector<T> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return items;
  }
  // The values above the innermost mark, oldest first, popped with the mark.
  std::vector<T> pop_mark() {
    size_t m = pop_mark_in_place();
    std::vector<T> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    truncate(m);
    return items;
  }

  // pop_mark without copying the values out: pops the innermost mark and
  // returns the stack size it recorded; the values above it stay on the
  // stack (stack_[m], ...) for the caller to use and then drop with
  // truncate(m).
  size_t pop_mark_in_place() {
    if (marks_.empty()) fail("MARK missing");
    size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  // The value below stack_[m] (what top() gives once the values from m up
  // are popped), with top()'s check.
  T& top_below(size_t m) {
    if (m <= fence()) [[unlikely]]
      underflow();
    return stack_[m - 1];
  }
  void truncate(size_t m) { stack_.resize(m); }

  std::vector<T> stack_;
  std::vector<size_t> marks_;  // stack_ sizes at each MARK
};

}  // namespace ckpt::pickle
