#include "util/alongside.h"

#include <exception>
#include <thread>

namespace ckpt {

void run_alongside(const std::function<void()>& main, const std::function<void()>& side) {
  if (!side) return main();
  std::exception_ptr side_error;
  std::thread second([&] {
    try {
      side();
    } catch (...) {
      side_error = std::current_exception();
    }
  });
  try {
    main();
  } catch (...) {
    second.join();
    throw;
  }
  second.join();
  if (side_error) std::rethrow_exception(side_error);
}

}  // namespace ckpt
