#include "cli/cli.h"

#include <cstdio>

namespace ckpt::cli {
int main(int, char**) {
  std::fputs("ckpt: error: not implemented yet\n", stderr);
  return 2;
}
}  // namespace ckpt::cli
