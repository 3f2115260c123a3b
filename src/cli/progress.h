// A progress bar on stderr for long writes. It shows only when stderr is a
// terminal, --quiet is off and the job is big enough to take more than about
// a second (256 MB by default; CKPT_PROGRESS_MIN_BYTES overrides, for tests).
// Redraws at most ten times a second; the line is cleared when done.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/checkpoint.h"

namespace ckpt::cli {

class Progress {
 public:
  Progress(std::string label, bool quiet);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(uint64_t done, uint64_t total);
  // For torch::SaveOptions::progress and the like; valid while *this lives.
  std::function<void(uint64_t, uint64_t)> callback();
  // Clears the bar (if shown).
  void finish();

  // The bar line for a state, without the leading carriage return (tests).
  static std::string render(const std::string& label, uint64_t done, uint64_t total, double seconds, int width);

 private:
  std::string label_;
  bool allowed_;          // a terminal and not quiet
  bool shown_ = false;
  uint64_t min_bytes_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// The bars of an operation that writes one output after another (bundle
// writes two): a ProgressFn for the api's options that shows one bar per
// output, labelled with its file name. Cleared by finish() or when this goes.
class ProgressBars {
 public:
  explicit ProgressBars(bool quiet);
  ProgressBars(const ProgressBars&) = delete;
  ProgressBars& operator=(const ProgressBars&) = delete;
  // Valid while *this lives.
  api::ProgressFn callback();
  void finish();

 private:
  bool quiet_;
  std::string output_;
  std::unique_ptr<Progress> bar_;
};

}  // namespace ckpt::cli
