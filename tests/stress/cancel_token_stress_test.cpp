// CancelToken under concurrency: cancel() racing with child creation, registration,
// deregistration, child drops and other cancels. Many rounds, meant to be run under TSan.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <thread>
#include <vector>

#include "knhk/concurrency/cancel_token.hpp"
#include "knhk/concurrency/sync_wait.hpp"
#include "knhk/concurrency/task.hpp"

namespace kc = knhk::concurrency;

namespace {
#if defined(KNHK_SANITIZED)
constexpr int kRounds = 60;
#else
constexpr int kRounds = 300;
#endif

// Runs work(0) and work(1) on two threads released together with token.cancel() on this one.
template <class Work>
void race_with_cancel(const kc::CancelToken& token, Work work) {
  std::barrier start(3);
  auto run = [&](std::size_t id) {
    start.arrive_and_wait();
    work(id);
  };
  std::thread first(run, std::size_t{0});
  std::thread second(run, std::size_t{1});
  start.arrive_and_wait();
  token.cancel();
  first.join();
  second.join();
}
}  // namespace

TEST(CancelTokenStress, CancelRacingWithChildCreationMissesNoChild) {
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken root;
    std::vector<kc::CancelToken> before_or_after[2];
    race_with_cancel(root, [&](std::size_t id) {
      for (int i = 0; i < 200; ++i) {
        before_or_after[id].push_back(root.child_token());
        before_or_after[id].push_back(before_or_after[id].back().child_token());
      }
    });
    for (const auto& tokens : before_or_after) {
      for (const kc::CancelToken& token : tokens) {
        ASSERT_TRUE(token.is_cancelled()) << "round " << round;
      }
    }
  }
}

TEST(CancelTokenStress, CancelRacingWithRegistrationRunsEachCallbackExactlyOnceOrNever) {
  constexpr std::size_t kPerThread = 200;
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken root;
    const kc::CancelToken child = root.child_token();
    std::vector<std::atomic<int>> kept_calls(2 * kPerThread);
    std::vector<std::atomic<int>> dropped_calls(2 * kPerThread);
    std::vector<kc::CancelRegistration> kept[2];
    race_with_cancel(root, [&](std::size_t id) {
      for (std::size_t i = 0; i < kPerThread; ++i) {
        const std::size_t slot = id * kPerThread + i;
        const kc::CancelToken& target = (i % 2 == 0) ? root : child;
        kept[id].push_back(target.on_cancel([&kept_calls, slot] { kept_calls[slot].fetch_add(1); }));
        auto dropped = target.on_cancel([&dropped_calls, slot] { dropped_calls[slot].fetch_add(1); });
        dropped.reset();  // before or after the cancel: it runs at most once
      }
    });
    for (std::size_t slot = 0; slot < 2 * kPerThread; ++slot) {
      ASSERT_EQ(kept_calls[slot].load(), 1) << "round " << round << " slot " << slot;
      ASSERT_LE(dropped_calls[slot].load(), 1) << "round " << round << " slot " << slot;
    }
  }
}

TEST(CancelTokenStress, DeregistrationWaitsForACallbackRunningOnAnotherThread) {
  for (int round = 0; round < 20; ++round) {
    const kc::CancelToken token;
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    auto registration = std::make_unique<kc::CancelRegistration>(token.on_cancel([&] {
      started.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      finished.store(true);
    }));
    std::thread canceller([&token] { token.cancel(); });
    while (!started.load()) std::this_thread::yield();
    registration.reset();  // must wait for the callback to return
    EXPECT_TRUE(finished.load()) << "round " << round;
    canceller.join();
  }
}

TEST(CancelTokenStress, ConcurrentCancelsEachReturnWithEveryDescendantFlagged) {
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken root;
    std::vector<kc::CancelToken> tree;
    std::atomic<int> calls{0};
    std::vector<kc::CancelRegistration> registrations;
    for (int i = 0; i < 20; ++i) {
      tree.push_back(root.child_token());
      for (int j = 0; j < 10; ++j) {
        tree.push_back(tree[static_cast<std::size_t>(i) * 11].child_token());
        registrations.push_back(tree.back().on_cancel([&calls] { calls.fetch_add(1); }));
      }
    }
    std::barrier start(3);
    std::atomic<int> misses{0};
    auto cancel_and_check = [&](const kc::CancelToken& which) {
      start.arrive_and_wait();
      which.cancel();
      for (const kc::CancelToken& token : tree) {
        if (&which == &root && !token.is_cancelled()) misses.fetch_add(1);
      }
    };
    std::thread first(cancel_and_check, std::cref(root));
    std::thread second(cancel_and_check, std::cref(root));
    std::thread mid(
        [&](const kc::CancelToken& which) {
          start.arrive_and_wait();
          which.cancel();
        },
        std::cref(tree[11]));
    first.join();
    second.join();
    mid.join();
    EXPECT_EQ(misses.load(), 0) << "round " << round;
    EXPECT_EQ(calls.load(), 200) << "round " << round;
  }
}

TEST(CancelTokenStress, DroppingChildrenWhileTheParentIsCancelledIsSafe) {
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken root;
    race_with_cancel(root, [&](std::size_t /*id*/) {
      for (int i = 0; i < 300; ++i) {
        const kc::CancelToken child = root.child_token();
        const kc::CancelToken grandchild = child.child_token();
        const auto registration = grandchild.on_cancel([] {});
      }
    });
    EXPECT_EQ(kc::detail::linked_child_count(root), 0U);
  }
}

TEST(CancelTokenStress, AWaiterRacingWithCancelIsResumedExactlyOnce) {
  for (int round = 0; round < kRounds * 5; ++round) {
    const kc::CancelToken token;
    std::atomic<int> resumed{0};
    auto waiter = [](kc::CancelToken t, std::atomic<int>* count) -> kc::Task<void> {
      co_await t.cancelled();
      count->fetch_add(1);
    };
    std::thread canceller([&token] { token.cancel(); });
    kc::sync_wait(waiter(token, &resumed));
    canceller.join();
    ASSERT_EQ(resumed.load(), 1) << "round " << round;
  }
}

TEST(CancelTokenStress, StopTokensRequestedConcurrentlyWithCancelAllSeeTheStop) {
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken token;
    std::vector<std::stop_token> seen[2];
    race_with_cancel(token, [&](std::size_t id) {
      for (int i = 0; i < 50; ++i) seen[id].push_back(token.stop_token());
    });
    for (const auto& tokens : seen) {
      for (const std::stop_token& stop : tokens) {
        ASSERT_TRUE(stop.stop_requested()) << "round " << round;
      }
    }
  }
}

TEST(CancelTokenStress, DeregistrationsRacingWithCancelNeverRunACallbackTwiceNorLeakIt) {
  constexpr std::size_t kCallbacks = 300;
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken token;
    std::vector<std::atomic<int>> calls(kCallbacks);
    std::vector<kc::CancelRegistration> registrations;
    for (std::size_t i = 0; i < kCallbacks; ++i) {
      registrations.push_back(token.on_cancel([&calls, i] { calls[i].fetch_add(1); }));
    }
    std::barrier start(2);
    std::thread dropper([&] {
      start.arrive_and_wait();
      for (std::size_t i = kCallbacks; i-- > 0;) registrations[i].reset();  // meets the runner midway
    });
    start.arrive_and_wait();
    token.cancel();
    dropper.join();
    for (std::size_t i = 0; i < kCallbacks; ++i) {
      ASSERT_LE(calls[i].load(), 1) << "round " << round << " callback " << i;
    }
  }
}

TEST(CancelTokenStress, ChildrenWithStopTokensDroppedDuringCancelAreFreed) {
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken root;
    race_with_cancel(root, [&](std::size_t /*id*/) {
      for (int i = 0; i < 200; ++i) {
        const kc::CancelToken child = root.child_token();
        const std::stop_token stop = child.stop_token();
        (void)stop.stop_requested();
      }
    });
    EXPECT_EQ(kc::detail::linked_child_count(root), 0U);
  }
}

TEST(CancelTokenStress, DroppingGrandchildrenWhileTheRootIsCancelledIsSafe) {
  for (int round = 0; round < kRounds; ++round) {
    const kc::CancelToken root;
    std::vector<kc::CancelToken> grandchildren;
    for (int i = 0; i < 100; ++i) {
      const kc::CancelToken child = root.child_token();  // dropped: only its grandchild keeps it
      grandchildren.push_back(child.child_token());
    }
    std::barrier start(2);
    std::thread dropper([&] {
      start.arrive_and_wait();
      grandchildren.clear();  // each drop may free a child the walk is looking at
    });
    start.arrive_and_wait();
    root.cancel();
    dropper.join();
    EXPECT_EQ(kc::detail::linked_child_count(root), 0U);
  }
}
