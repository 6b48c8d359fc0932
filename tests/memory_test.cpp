// memory.hpp: giving the runtime's cached blocks back to the heap.
#include "knhk/concurrency/memory.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "knhk/concurrency/detail/block_pool.hpp"
#include "knhk/concurrency/executor.hpp"

namespace kc = knhk::concurrency;
namespace kd = knhk::concurrency::detail;

TEST(Memory, ReleaseCachedMemoryFreesWhatTheDepotHeldAndTheRuntimeGoesOnWorking) {
  // Arrange: more frees on this thread than its own lists keep, so magazines reach the depot.
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < 8 * kd::kMagazineBlocks; ++i) blocks.push_back(kd::pool_allocate(120));
  for (void* block : blocks) kd::pool_free(block, 120);

  const std::size_t cached = kc::cached_memory_bytes();

  // Act
  const std::size_t freed = kc::release_cached_memory();
  const std::size_t freed_again = kc::release_cached_memory();

  // Assert: at least what this thread spilled; nothing the second time; and the pool still serves.
  EXPECT_GE(freed, (8 - 2) * kd::kMagazineBlocks * kd::pool_block_bytes(kd::pool_class(120)));
  EXPECT_EQ(freed_again, 0U);
  EXPECT_EQ(freed, cached);  // no other thread of this test frees blocks meanwhile
  EXPECT_EQ(kc::cached_memory_bytes(), 0U);
  kc::WorkStealingExecutor ex(2);
  int total = 0;
  for (int i = 0; i < 1000; ++i) total += ex.spawn_with_handle([i] { return i; }).get();
  EXPECT_EQ(total, 999 * 1000 / 2);
}
