// The commands behind the CLI. Each takes its parsed options, prints to
// stdout, and returns the exit code; errors are thrown as ckpt::Error.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::cli {

struct Common {
  bool json = false;
  bool quiet = false;
  bool force = false;
};

int cmd_info(const std::string& file, const Common& c);
int cmd_ls(const std::string& file, const std::string& path, int depth, const Common& c);
int cmd_tensors(const std::string& file, const std::string& state, const std::string& match, const Common& c);
int cmd_rewrite(const std::string& file, const std::string& out, const Common& c);
int cmd_verify(const std::string& file, const Common& c);

}  // namespace ckpt::cli
