// CancelScope: RAII ownership of a token.
#include <gtest/gtest.h>

#include <type_traits>
#include <utility>

#include "knhk/concurrency/cancel_token.hpp"

namespace kc = knhk::concurrency;

static_assert(!std::is_copy_constructible_v<kc::CancelScope>);
static_assert(std::is_nothrow_move_constructible_v<kc::CancelScope>);

TEST(CancelScope, DestroyingTheScopeCancelsItsToken) {
  kc::CancelToken observed;
  {
    const kc::CancelScope scope;
    observed = scope.token();
    EXPECT_FALSE(observed.is_cancelled());
  }
  EXPECT_TRUE(observed.is_cancelled());
}

TEST(CancelScope, ReleaseDisarmsTheScopeAndReturnsAnUncancelledToken) {
  kc::CancelToken released;
  {
    kc::CancelScope scope;
    released = std::move(scope).release();
  }
  EXPECT_FALSE(released.is_cancelled());
}

TEST(CancelScope, ManualCancelCancelsBeforeDestruction) {
  const kc::CancelScope scope;
  EXPECT_FALSE(scope.is_cancelled());
  scope.cancel();
  EXPECT_TRUE(scope.is_cancelled());
  EXPECT_TRUE(scope.token().is_cancelled());
}

TEST(CancelScope, AScopeWithAParentIsCancelledByTheParent) {
  const kc::CancelToken parent;
  const kc::CancelScope scope(parent);
  parent.cancel();
  EXPECT_TRUE(scope.is_cancelled());
}

TEST(CancelScope, DestroyingAScopeWithAParentLeavesTheParentAlone) {
  const kc::CancelToken parent;
  kc::CancelToken child;
  {
    const kc::CancelScope scope(parent);
    child = scope.token();
  }
  EXPECT_TRUE(child.is_cancelled());
  EXPECT_FALSE(parent.is_cancelled());
}

TEST(CancelScope, AMovedFromScopeCancelsNothing) {
  kc::CancelToken observed;
  kc::CancelScope outer;
  {
    kc::CancelScope inner;
    observed = inner.token();
    outer = std::move(inner);
  }
  EXPECT_FALSE(observed.is_cancelled());
}

TEST(CancelScope, MoveAssignmentCancelsTheTokenItReplaces) {
  kc::CancelScope scope;
  const kc::CancelToken replaced = scope.token();
  scope = kc::CancelScope{};
  EXPECT_TRUE(replaced.is_cancelled());
  EXPECT_FALSE(scope.is_cancelled());
}
