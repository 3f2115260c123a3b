// Opens a checkpoint with the ckpt library and prints how many tensors its
// best state holds: `count_tensors FILE` -> "best_state/model: 36 tensors".
#include <cstdio>

#include <ckpt/api/checkpoint.h>
#include <ckpt/util/error.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: count_tensors FILE\n");
    return 2;
  }
  try {
    ckpt::api::Opened opened = ckpt::api::open_checkpoint(ckpt::Env::Default(), argv[1]);
    std::string state = opened.default_state_path();
    size_t count = opened.tensors_of(opened.state_dict(state)).size();
    std::printf("%s: %zu tensors\n", state.c_str(), count);
  } catch (const ckpt::Error& e) {
    std::fprintf(stderr, "count_tensors: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
