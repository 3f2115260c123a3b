// The value stack of a pickle VM with its MARK fences, shared by the two
// readers of the opcode stream (unpickler.cc builds the graph, scan.cc
// tracks names only): nothing below the innermost mark can be popped.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ckpt::pickle {

template <class T>
class MarkedStack {
 protected:
  MarkedStack() = default;
  ~MarkedStack() = default;

  // Throws (a FormatError naming the opcode's offset).
  [[noreturn]] virtual void fail(const std::string& what) const = 0;

  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void mark() { marks_.push_back(stack_.size()); }
  // POP. CPython: a POP right after MARK discards the mark.
  void pop_or_unmark() {
    if (!marks_.empty() && marks_.back() == stack_.size())
      marks_.pop_back();
    else
      pop();
  }
  void push(T v) { stack_.push_back(std::move(v)); }
  T pop() {
    if (stack_.size() <= fence()) fail("stack underflow");
    T v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  T& top() {
    if (stack_.size() <= fence()) fail("stack underflow");
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
    if (marks_.empty()) fail("MARK missing");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<T> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  std::vector<T> stack_;
  std::vector<size_t> marks_;  // stack_ sizes at each MARK
};

}  // namespace ckpt::pickle
