// CancelToken and CancelRegistration: the tree, the flag and the callbacks.
#include "knhk/concurrency/cancel_token.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

namespace kc = knhk::concurrency;

TEST(CancelToken, NewTokenIsNotCancelled) {
  const kc::CancelToken token;
  EXPECT_FALSE(token.is_cancelled());
}

TEST(CancelToken, CancelSetsTheFlag) {
  const kc::CancelToken token;
  token.cancel();
  EXPECT_TRUE(token.is_cancelled());
}

TEST(CancelToken, CancelIsIdempotent) {
  const kc::CancelToken token;
  int calls = 0;
  const auto registration = token.on_cancel([&calls] { ++calls; });
  token.cancel();
  token.cancel();
  token.cancel();
  EXPECT_TRUE(token.is_cancelled());
  EXPECT_EQ(calls, 1);
}

TEST(CancelToken, ParentCancelCancelsChildren) {
  const kc::CancelToken parent;
  const kc::CancelToken first = parent.child_token();
  const kc::CancelToken second = parent.child_token();
  parent.cancel();
  EXPECT_TRUE(first.is_cancelled());
  EXPECT_TRUE(second.is_cancelled());
}

TEST(CancelToken, ParentCancelCancelsGrandchildren) {
  const kc::CancelToken root;
  const kc::CancelToken child = root.child_token();
  const kc::CancelToken grandchild = child.child_token();
  const kc::CancelToken great_grandchild = grandchild.child_token();
  root.cancel();
  EXPECT_TRUE(grandchild.is_cancelled());
  EXPECT_TRUE(great_grandchild.is_cancelled());
}

TEST(CancelToken, ChildCancelLeavesParentAndSiblingsAlone) {
  const kc::CancelToken parent;
  const kc::CancelToken child = parent.child_token();
  const kc::CancelToken sibling = parent.child_token();
  const kc::CancelToken nephew = sibling.child_token();
  child.cancel();
  EXPECT_TRUE(child.is_cancelled());
  EXPECT_FALSE(parent.is_cancelled());
  EXPECT_FALSE(sibling.is_cancelled());
  EXPECT_FALSE(nephew.is_cancelled());
}

TEST(CancelToken, ChildOfACancelledTokenStartsCancelled) {
  const kc::CancelToken parent;
  parent.cancel();
  const kc::CancelToken child = parent.child_token();
  EXPECT_TRUE(child.is_cancelled());
  EXPECT_TRUE(child.child_token().is_cancelled());
  EXPECT_EQ(kc::detail::linked_child_count(parent), 0U);
}

TEST(CancelToken, CopiesShareOneState) {
  const kc::CancelToken original;
  const kc::CancelToken copy = original;  // NOLINT(performance-unnecessary-copy-initialization)
  kc::CancelToken assigned;
  assigned = original;
  EXPECT_TRUE(copy == original);
  EXPECT_TRUE(assigned == original);
  EXPECT_FALSE(original == original.child_token());
  copy.cancel();
  EXPECT_TRUE(original.is_cancelled());
  EXPECT_TRUE(assigned.is_cancelled());
}

TEST(CancelToken, MovedFromTokenIsInertAndReusable) {
  kc::CancelToken source;
  const kc::CancelToken target = std::move(source);
  source.cancel();  // NOLINT(bugprone-use-after-move): documented to do nothing
  EXPECT_FALSE(source.is_cancelled());
  EXPECT_FALSE(target.is_cancelled());
  source = kc::CancelToken{};
  source.cancel();
  EXPECT_TRUE(source.is_cancelled());
}

TEST(CancelToken, CallbackRunsOnceWhenCancelled) {
  const kc::CancelToken token;
  int calls = 0;
  const auto registration = token.on_cancel([&calls] { ++calls; });
  EXPECT_EQ(calls, 0);
  token.cancel();
  EXPECT_EQ(calls, 1);
}

TEST(CancelToken, CallbackRunsInlineWhenAlreadyCancelled) {
  const kc::CancelToken token;
  token.cancel();
  int calls = 0;
  const auto registration = token.on_cancel([&calls] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(CancelToken, CallbackNeverRunsAfterDeregistration) {
  const kc::CancelToken token;
  int calls = 0;
  {
    const auto registration = token.on_cancel([&calls] { ++calls; });
  }
  auto reset_early = token.on_cancel([&calls] { ++calls; });
  reset_early.reset();
  EXPECT_FALSE(reset_early.active());
  token.cancel();
  EXPECT_EQ(calls, 0);
}

TEST(CancelToken, CallbacksRunInRegistrationOrder) {
  const kc::CancelToken token;
  std::vector<int> order;
  std::vector<kc::CancelRegistration> registrations;
  for (int i = 0; i < 5; ++i) registrations.push_back(token.on_cancel([&order, i] { order.push_back(i); }));
  token.cancel();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(CancelToken, ParentCallbacksRunBeforeChildCallbacks) {
  const kc::CancelToken parent;
  const kc::CancelToken child = parent.child_token();
  std::vector<char> order;
  const auto on_child = child.on_cancel([&order] { order.push_back('c'); });
  const auto on_parent = parent.on_cancel([&order] { order.push_back('p'); });
  parent.cancel();
  EXPECT_EQ(order, (std::vector<char>{'p', 'c'}));
}

TEST(CancelToken, ACallbackSeesItsTokenCancelled) {
  const kc::CancelToken parent;
  const kc::CancelToken child = parent.child_token();
  bool seen_cancelled = false;
  const auto registration = child.on_cancel([&] { seen_cancelled = child.is_cancelled(); });
  parent.cancel();
  EXPECT_TRUE(seen_cancelled);
}

TEST(CancelToken, ACallbackMayDeregisterItself) {
  const kc::CancelToken token;
  int calls = 0;
  kc::CancelRegistration registration;
  registration = token.on_cancel([&] {
    ++calls;
    registration.reset();
  });
  token.cancel();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(registration.active());
}

TEST(CancelToken, ACallbackMayUseTheTreeItIsCancelling) {
  const kc::CancelToken root;
  kc::CancelToken born_in_callback;
  int inner_calls = 0;
  kc::CancelRegistration inner;
  const auto registration = root.on_cancel([&] {
    born_in_callback = root.child_token();                      // child of a cancelled token
    inner = root.on_cancel([&inner_calls] { ++inner_calls; });  // runs inline
    root.cancel();                                              // re-entrant cancel returns at once
  });
  root.cancel();
  EXPECT_TRUE(born_in_callback.is_cancelled());
  EXPECT_EQ(inner_calls, 1);
}

TEST(CancelToken, ALiveRegistrationKeepsAChildLinkedAfterItsTokensAreGone) {
  const kc::CancelToken root;
  int calls = 0;
  kc::CancelRegistration registration;
  {
    const kc::CancelToken child = root.child_token();
    registration = child.on_cancel([&calls] { ++calls; });
  }
  EXPECT_EQ(kc::detail::linked_child_count(root), 1U);
  root.cancel();
  EXPECT_EQ(calls, 1);
  registration.reset();
  EXPECT_EQ(kc::detail::linked_child_count(root), 0U);
}

TEST(CancelToken, MovingARegistrationKeepsItRegistered) {
  const kc::CancelToken token;
  int calls = 0;
  kc::CancelRegistration first = token.on_cancel([&calls] { ++calls; });
  kc::CancelRegistration second = std::move(first);
  EXPECT_FALSE(first.active());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(second.active());
  token.cancel();
  EXPECT_EQ(calls, 1);
}

TEST(CancelToken, StopTokenReportsCancellation) {
  const kc::CancelToken token;
  const std::stop_token stop = token.stop_token();
  EXPECT_TRUE(stop.stop_possible());
  EXPECT_FALSE(stop.stop_requested());
  token.cancel();
  EXPECT_TRUE(stop.stop_requested());
}

TEST(CancelToken, StopTokenOfACancelledTokenIsAlreadyStopped) {
  const kc::CancelToken parent;
  const kc::CancelToken child = parent.child_token();
  parent.cancel();
  EXPECT_TRUE(child.stop_token().stop_requested());
}

TEST(CancelToken, StdStopCallbackRunsWhenAnAncestorIsCancelled) {
  const kc::CancelToken root;
  const kc::CancelToken child = root.child_token();
  int calls = 0;
  const std::stop_callback callback(child.stop_token(), [&calls] { ++calls; });
  EXPECT_EQ(calls, 0);
  root.cancel();
  EXPECT_EQ(calls, 1);
}

TEST(CancelToken, TenThousandChildrenAreAllCancelled) {
  const kc::CancelToken root;
  std::vector<kc::CancelToken> children;
  std::atomic<int> calls{0};
  std::vector<kc::CancelRegistration> registrations;
  for (int i = 0; i < 10'000; ++i) {
    children.push_back(root.child_token());
    registrations.push_back(children.back().on_cancel([&calls] { calls.fetch_add(1, std::memory_order_relaxed); }));
  }
  root.cancel();
  for (const kc::CancelToken& child : children) {
    ASSERT_TRUE(child.is_cancelled());
  }
  EXPECT_EQ(calls.load(), 10'000);
}

TEST(CancelToken, RapidCancelAndCheckOnAThousandTokens) {
  std::vector<kc::CancelToken> tokens(1000);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_FALSE(tokens[i].is_cancelled());
    tokens[i].cancel();
    EXPECT_TRUE(tokens[i].is_cancelled());
    if (i > 0) {
      EXPECT_TRUE(tokens[i - 1].is_cancelled());
    }
  }
}

TEST(CancelToken, DroppingAChildUnlinksItFromItsParent) {
  const kc::CancelToken root;
  for (int i = 0; i < 1'000'000; ++i) {
    const kc::CancelToken child = root.child_token();
    const kc::CancelToken grandchild = child.child_token();
  }
  EXPECT_EQ(kc::detail::linked_child_count(root), 0U);
}

TEST(CancelToken, DroppingTheParentBeforeItsChildIsSafe) {
  kc::CancelToken child;
  {
    const kc::CancelToken parent;
    child = parent.child_token();
  }
  EXPECT_FALSE(child.is_cancelled());
  child.cancel();
  EXPECT_TRUE(child.is_cancelled());
}

TEST(CancelToken, ADeepChainCancelsAndFreesWithoutRecursion) {
  const kc::CancelToken root;
  kc::CancelToken leaf = root;
  for (int i = 0; i < 200'000; ++i) leaf = leaf.child_token();
  int calls = 0;
  const auto registration = leaf.on_cancel([&calls] { ++calls; });
  root.cancel();
  EXPECT_TRUE(leaf.is_cancelled());
  EXPECT_EQ(calls, 1);
}

TEST(CancelToken, ADeepChainIsFreedWhenItsLeafIsDropped) {
  const kc::CancelToken root;
  {
    kc::CancelToken leaf = root.child_token();
    for (int i = 0; i < 200'000; ++i) leaf = leaf.child_token();
    EXPECT_EQ(kc::detail::linked_child_count(root), 1U);
  }
  EXPECT_EQ(kc::detail::linked_child_count(root), 0U);
}

TEST(CancelToken, ACallbackMayJoinAThreadThatDeregistersALaterCallback) {
  const kc::CancelToken token;
  int later_calls = 0;
  kc::CancelRegistration later;
  const auto first = token.on_cancel([&later] {
    std::thread dropper([&later] { later.reset(); });  // must not wait for this cancel to reach it
    dropper.join();
  });
  later = token.on_cancel([&later_calls] { ++later_calls; });
  token.cancel();
  EXPECT_EQ(later_calls, 0);
  EXPECT_FALSE(later.active());
}

namespace {
// Counts how many times a callback's payload is destroyed (moved-from copies do not count).
struct PayloadProbe {
  explicit PayloadProbe(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  PayloadProbe(PayloadProbe&& other) noexcept : destroyed_(std::exchange(other.destroyed_, nullptr)) {}
  PayloadProbe(const PayloadProbe&) = delete;
  PayloadProbe& operator=(const PayloadProbe&) = delete;
  PayloadProbe& operator=(PayloadProbe&&) = delete;
  ~PayloadProbe() {
    if (destroyed_ != nullptr) destroyed_->fetch_add(1);
  }
  std::atomic<int>* destroyed_;
};
}  // namespace

TEST(CancelToken, EveryCallbackPayloadIsDestroyedExactlyOnce) {
  std::atomic<int> destroyed{0};
  int calls = 0;
  {
    const kc::CancelToken token;
    const auto ran = token.on_cancel([probe = PayloadProbe(&destroyed), &calls] { ++calls; });
    auto dropped = token.on_cancel([probe = PayloadProbe(&destroyed), &calls] { ++calls; });
    dropped.reset();
    EXPECT_EQ(destroyed.load(), 1);
    token.cancel();
    const auto inline_run = token.on_cancel([probe = PayloadProbe(&destroyed), &calls] { ++calls; });
    EXPECT_EQ(destroyed.load(), 2);  // an inline callback is destroyed at once
  }
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(destroyed.load(), 3);
}

TEST(CancelToken, ANestedCallbackMayDeregisterTheOuterCallbackRunningOnItsThread) {
  const kc::CancelToken first;
  const kc::CancelToken second;
  int outer_calls = 0;
  kc::CancelRegistration outer;
  const auto inner = second.on_cancel([&outer] { outer.reset(); });  // must not wait for itself
  outer = first.on_cancel([&] {
    ++outer_calls;
    second.cancel();
  });
  first.cancel();
  EXPECT_EQ(outer_calls, 1);
  EXPECT_FALSE(outer.active());
}

TEST(CancelToken, AStopCallbackMayWaitForAThreadThatDropsTheLastToken) {
  const kc::CancelToken root;
  auto child = std::make_unique<kc::CancelToken>(root.child_token());
  std::atomic<bool> dropped{false};
  const std::stop_callback callback(child->stop_token(), [&] {
    std::thread dropper([&] {
      child.reset();  // the state dies while its bridge runs on the cancelling thread
      dropped.store(true);
    });
    dropper.join();
  });
  root.cancel();
  EXPECT_TRUE(dropped.load());
}

TEST(CancelToken, OnCancelWithANullFunctionPointerThrowsInvalidArgumentAtTheCall) {
  const kc::CancelToken token;
  void (*null_callback)() = nullptr;

  EXPECT_THROW((void)token.on_cancel(null_callback), std::invalid_argument);
  token.cancel();  // nothing was registered that could end the process here
}

TEST(CancelToken, OnCancelWithAnEmptyStdFunctionThrowsInvalidArgumentAtTheCall) {
  const kc::CancelToken token;

  EXPECT_THROW((void)token.on_cancel(std::function<void()>{}), std::invalid_argument);
  token.cancel();
}

TEST(CancelToken, OnCancelWithANullCallbackOnACancelledTokenThrowsInsteadOfCallingIt) {
  const kc::CancelToken token;
  token.cancel();

  EXPECT_THROW((void)token.on_cancel(std::function<void()>{}), std::invalid_argument);
}
