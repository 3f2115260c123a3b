// run_alongside: both jobs run at once, and errors come back in order.
#include "util/alongside.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

namespace ckpt {
namespace {

TEST(RunAlongside, SideRunsWhileMainWaits) {
  // main waits for side's signal: run one after the other, it would time out.
  std::mutex m;
  std::condition_variable cv;
  bool side_ran = false, main_saw_side = false;
  run_alongside(
      [&] {
        std::unique_lock<std::mutex> lock(m);
        main_saw_side = cv.wait_for(lock, std::chrono::seconds(10), [&] { return side_ran; });
      },
      [&] {
        std::lock_guard<std::mutex> lock(m);
        side_ran = true;
        cv.notify_all();
      });
  EXPECT_TRUE(main_saw_side);
}

TEST(RunAlongside, MainErrorFirstThenSideError) {
  bool side_ran = false;
  try {
    run_alongside([] { throw std::runtime_error("main"); }, [&] {
      side_ran = true;
      throw std::logic_error("side");
    });
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "main");
  }
  EXPECT_TRUE(side_ran);  // joined before the error came back
  EXPECT_THROW(run_alongside([] {}, [] { throw std::logic_error("side"); }), std::logic_error);
}

TEST(RunAlongside, NoSideJobRunsMainAlone) {
  int runs = 0;
  run_alongside([&] { ++runs; }, nullptr);
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace ckpt
