// detail/block_pool.hpp: the per-thread cache of small blocks behind records, frames, join states
// and cancellation states.
#include "knhk/concurrency/detail/block_pool.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace kd = knhk::concurrency::detail;

namespace {

// Empties this thread's lists, so that each test starts from a known state.
void drain_this_thread() {
  std::vector<void*> taken;
  for (std::size_t size_class = 1; size_class < kd::kPoolClasses; ++size_class) {
    while (kd::tls_block_pool.heads[size_class] != nullptr) {
      taken.push_back(kd::pool_allocate(kd::pool_block_bytes(size_class)));
    }
  }
  for (void* block : taken) ::operator delete(block);
}

}  // namespace

TEST(BlockPool, AFreedBlockServesTheNextRequestOfItsClassOnTheSameThread) {
  drain_this_thread();
  void* first = kd::pool_allocate(100);
  kd::pool_free(first, 100);
  void* second = kd::pool_allocate(104);  // 100 and 104 share a class: both fit a 104-byte block
  EXPECT_EQ(second, first);
  kd::pool_free(second, 104);
}

TEST(BlockPool, ClassesMatchTheChunkMallocWouldGive) {
  // glibc: chunk = (request + 8) rounded up to 16; a class-k block is k * 16 - 8 bytes.
  EXPECT_EQ(kd::pool_block_bytes(kd::pool_class(1)), 8U);
  EXPECT_EQ(kd::pool_block_bytes(kd::pool_class(24)), 24U);
  EXPECT_EQ(kd::pool_block_bytes(kd::pool_class(25)), 40U);
  EXPECT_EQ(kd::pool_block_bytes(kd::pool_class(kd::kPoolMaxBlock)), kd::kPoolMaxBlock);
  for (std::size_t bytes = 1; bytes <= kd::kPoolMaxBlock; ++bytes) {
    EXPECT_GE(kd::pool_block_bytes(kd::pool_class(bytes)), bytes);
    EXPECT_LT(kd::pool_block_bytes(kd::pool_class(bytes)), bytes + 16);
  }
}

TEST(BlockPool, BlocksOfDifferentClassesAreNeverHandedOutForEachOther) {
  drain_this_thread();
  void* small = kd::pool_allocate(32);
  kd::pool_free(small, 32);
  void* large = kd::pool_allocate(200);
  EXPECT_NE(large, small);
  kd::pool_free(large, 200);
}

TEST(BlockPool, RequestsAboveTheLargestClassBypassThePool) {
  drain_this_thread();
  void* big = kd::pool_allocate(kd::kPoolMaxBlock + 1);
  kd::pool_free(big, kd::kPoolMaxBlock + 1);
  for (std::size_t size_class = 0; size_class < kd::kPoolClasses; ++size_class) {
    EXPECT_EQ(kd::tls_block_pool.counts[size_class], 0U);
  }
}

TEST(BlockPool, AThreadKeepsAtMostTwoMagazinesPerClassAndHandsTheRestToTheDepot) {
  drain_this_thread();
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < 10 * kd::kMagazineBlocks; ++i) blocks.push_back(kd::pool_allocate(56));
  for (void* block : blocks) kd::pool_free(block, 56);
  EXPECT_LE(kd::tls_block_pool.counts[kd::pool_class(56)], 2 * kd::kMagazineBlocks);
  EXPECT_GT(kd::tls_block_pool.counts[kd::pool_class(56)], kd::kMagazineBlocks);
  drain_this_thread();
}

// W1 at T = 2 and every spawn from outside: one thread allocates, another frees. The freed blocks
// come back to the allocating thread through the depot instead of from malloc.
TEST(BlockPool, BlocksFreedOnOneThreadServeAnotherThroughTheDepot) {
  drain_this_thread();
  constexpr std::size_t kBlocks = 8 * kd::kMagazineBlocks;
  std::vector<void*> handed_over;
  for (std::size_t i = 0; i < kBlocks; ++i) handed_over.push_back(kd::pool_allocate(88));
  std::thread consumer([&handed_over] {
    for (void* block : handed_over) kd::pool_free(block, 88);
  });
  consumer.join();
  const std::set<void*> freed(handed_over.begin(), handed_over.end());
  std::size_t reused = 0;
  std::vector<void*> again;
  for (std::size_t i = 0; i < kBlocks; ++i) {
    again.push_back(kd::pool_allocate(88));
    reused += freed.count(again.back());
  }
  // The consumer spilled all but at most two magazines before it exited (its own lists were freed
  // then); other tests' threads may have left magazines of this class in the depot too.
  EXPECT_GE(reused, kBlocks - 2 * kd::kMagazineBlocks);
  for (void* block : again) kd::pool_free(block, 88);
  drain_this_thread();
}

TEST(BlockPool, ABlockFreedOnAnotherThreadJoinsThatThreadsListAndItsExitFreesIt) {
  drain_this_thread();
  void* block = kd::pool_allocate(72);
  void* reused = nullptr;
  std::thread other([&] {
    kd::pool_free(block, 72);
    reused = kd::pool_allocate(72);  // the other thread's list now serves it
    kd::pool_free(reused, 72);       // and keeps it until the thread exits (LeakSanitizer checks)
  });
  other.join();
  EXPECT_EQ(reused, block);
  EXPECT_EQ(kd::tls_block_pool.heads[kd::pool_class(72)], nullptr);  // never in this thread's list
}

// A thread that takes a magazine from the depot and never frees a block itself still frees the
// rest of that magazine when it exits (LeakSanitizer reports it otherwise).
TEST(BlockPool, AThreadThatOnlyAllocatesFreesTheRestOfItsMagazineWhenItExits) {
  drain_this_thread();
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < 4 * kd::kMagazineBlocks; ++i) blocks.push_back(kd::pool_allocate(152));
  for (void* block : blocks) kd::pool_free(block, 152);  // two magazines reach the depot
  std::size_t kept = 0;
  std::thread taker([&kept] {
    void* block = kd::pool_allocate(152);  // refills from the depot: the list keeps the other 63
    kept = kd::tls_block_pool.counts[kd::pool_class(152)];
    ::operator delete(block);  // not through the pool: this thread never frees into it
  });
  taker.join();
  EXPECT_EQ(kept, kd::kMagazineBlocks - 1);
  drain_this_thread();
}

#if defined(__SANITIZE_ADDRESS__)
TEST(BlockPool, APooledBlockIsPoisonedUntilItIsHandedOutAgain) {
  drain_this_thread();
  void* block = kd::pool_allocate(48);
  kd::pool_free(block, 48);
  EXPECT_NE(__asan_region_is_poisoned(block, 48), nullptr);
  void* again = kd::pool_allocate(48);
  ASSERT_EQ(again, block);
  EXPECT_EQ(__asan_region_is_poisoned(again, 48), nullptr);
  kd::pool_free(again, 48);
}
#endif
