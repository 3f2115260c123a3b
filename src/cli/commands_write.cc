// Commands that write a checkpoint.
#include <cstdio>

#include "cli/commands.h"
#include "cli/session.h"
#include "util/error.h"

namespace ckpt::cli {

int cmd_rewrite(const std::string& file, const std::string& out, const Common& c) {
  Opened o = open_checkpoint(file);
  torch::SaveOptions so;
  so.force = c.force;
  torch::save(*o.ck, o.ck->root(), Env::Default(), out, so);
  if (!c.quiet) std::fprintf(stderr, "wrote %s\n", out.c_str());
  return 0;
}

}  // namespace ckpt::cli
