#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "api/format.h"
#include "util/env.h"

namespace ckpt::cli {

using api::human_bytes;

namespace {

constexpr uint64_t kDefaultMinBytes = uint64_t{256} << 20;

uint64_t min_bytes_from_env() {
  const char* v = std::getenv("CKPT_PROGRESS_MIN_BYTES");
  if (!v || !*v) return kDefaultMinBytes;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v, &end, 10);
  return end && *end == '\0' ? n : kDefaultMinBytes;
}

int terminal_width() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
  return 80;
}

}  // namespace

Progress::Progress(std::string label, bool quiet)
    : label_(std::move(label)),
      allowed_(!quiet && isatty(STDERR_FILENO)),
      min_bytes_(min_bytes_from_env()),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

std::string Progress::render(const std::string& label, uint64_t done, uint64_t total, double seconds, int width) {
  done = std::min(done, total);
  double fraction = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  char pct[8];
  std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(fraction * 100));
  std::string tail = std::string(pct) + "  " + human_bytes(done) + " / " + human_bytes(total);
  if (seconds > 0.2) tail += "  " + human_bytes(static_cast<uint64_t>(static_cast<double>(done) / seconds)) + "/s";
  std::string head = label.size() > 40 ? label.substr(0, 37) + "..." : label;
  // A fixed-width bar (room is kept for the longest tail) so it does not jump.
  int bar = std::min(30, width - 1 - static_cast<int>(head.size()) - 48);
  std::string line = head + " ";
  if (bar >= 10) {
    int filled = static_cast<int>(fraction * bar);
    line += "[" + std::string(filled, '#') + std::string(bar - filled, '.') + "] ";
  }
  return line + tail;
}

void Progress::update(uint64_t done, uint64_t total) {
  if (!allowed_ || total < min_bytes_) return;
  auto now = std::chrono::steady_clock::now();
  if (shown_ && done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  shown_ = true;
  double seconds = std::chrono::duration<double>(now - start_).count();
  std::string line = render(label_, done, total, seconds, terminal_width());
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
}

std::function<void(uint64_t, uint64_t)> Progress::callback() {
  return [this](uint64_t done, uint64_t total) { update(done, total); };
}

void Progress::finish() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

ProgressBars::ProgressBars(bool quiet) : quiet_(quiet) {}

api::ProgressFn ProgressBars::callback() {
  return [this](const std::string& output, uint64_t done, uint64_t total) {
    if (!bar_ || output != output_) {
      bar_.reset();  // the previous output's bar, cleared
      output_ = output;
      bar_ = std::make_unique<Progress>("writing " + basename_of(output), quiet_);
    }
    bar_->update(done, total);
  };
}

void ProgressBars::finish() { bar_.reset(); }

}  // namespace ckpt::cli
