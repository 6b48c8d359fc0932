// CancelToken::cancelled(): coroutines waiting for cancellation.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/sync_wait.hpp"
#include "knhk/concurrency/task.hpp"
#include "support/manual_coroutine.hpp"

namespace kc = knhk::concurrency;

namespace {

kc::Task<void> wait_then_count(kc::CancelToken token, std::atomic<int>* resumed) {
  co_await token.cancelled();
  resumed->fetch_add(1, std::memory_order_relaxed);
}

// Starts `task` on this thread and leaves it suspended wherever it first waits.
class Started {
 public:
  explicit Started(kc::Task<void> task) : task_(std::move(task)), driver_(drive(task_, &finished_)) {
    driver_.handle.resume();
  }
  [[nodiscard]] bool finished() const { return finished_; }

 private:
  static kc::testing::ManualCoroutine drive(kc::Task<void>& task, bool* finished) {
    co_await task;
    *finished = true;
  }

  kc::Task<void> task_;
  bool finished_ = false;
  kc::testing::ManualCoroutine driver_;
};

}  // namespace

TEST(CancelledAwaiter, AwaitingACancelledTokenCompletesAtOnce) {
  const kc::CancelToken token;
  token.cancel();
  std::atomic<int> resumed{0};
  kc::sync_wait(wait_then_count(token, &resumed));
  EXPECT_EQ(resumed.load(), 1);
}

TEST(CancelledAwaiter, AWaiterIsResumedInlineByCancel) {
  const kc::CancelToken token;
  std::atomic<int> resumed{0};
  const Started waiter(wait_then_count(token, &resumed));
  EXPECT_FALSE(waiter.finished());
  EXPECT_EQ(resumed.load(), 0);
  token.cancel();
  EXPECT_EQ(resumed.load(), 1);
  EXPECT_TRUE(waiter.finished());
}

TEST(CancelledAwaiter, ManyWaitersAreAllResumed) {
  const kc::CancelToken root;
  std::atomic<int> resumed{0};
  std::vector<std::unique_ptr<Started>> waiters;
  for (int i = 0; i < 1000; ++i) {
    const kc::CancelToken token = (i % 2 == 0) ? root : root.child_token();
    waiters.push_back(std::make_unique<Started>(wait_then_count(token, &resumed)));
  }
  root.cancel();
  EXPECT_EQ(resumed.load(), 1000);
  for (const auto& waiter : waiters) {
    EXPECT_TRUE(waiter->finished());
  }
}

TEST(CancelledAwaiter, AWaiterDestroyedBeforeCancelIsUnlinked) {
  const kc::CancelToken token;
  std::atomic<int> resumed{0};
  { const Started waiter(wait_then_count(token, &resumed)); }  // the frame dies while suspended in cancelled()
  token.cancel();
  EXPECT_EQ(resumed.load(), 0);
}

TEST(CancelledAwaiter, AWaiterOnAChildIsResumedByTheParentsCancel) {
  const kc::CancelToken parent;
  std::atomic<int> resumed{0};
  const Started waiter(wait_then_count(parent.child_token().child_token(), &resumed));
  parent.cancel();
  EXPECT_EQ(resumed.load(), 1);
}

TEST(CancelledAwaiter, CancelFromAnotherThreadWakesSyncWait) {
  for (int round = 0; round < 200; ++round) {
    const kc::CancelToken token;
    std::atomic<int> resumed{0};
    std::thread canceller([&token] { token.cancel(); });
    kc::sync_wait(wait_then_count(token, &resumed));
    canceller.join();
    ASSERT_EQ(resumed.load(), 1);
  }
}

TEST(CancelledAwaiter, ACallbackMayJoinAThreadThatDestroysAWaiterOfTheSameCancel) {
  const kc::CancelToken token;
  std::atomic<int> resumed{0};
  std::unique_ptr<Started> waiter;
  const auto first = token.on_cancel([&waiter] {
    std::thread destroyer([&waiter] { waiter.reset(); });  // the frame dies while its node is pending
    destroyer.join();
  });
  waiter = std::make_unique<Started>(wait_then_count(token, &resumed));
  token.cancel();
  EXPECT_EQ(resumed.load(), 0);
}
