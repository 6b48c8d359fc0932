// The thread-exit side of detail/block_pool.hpp: frees a thread's free list when the thread ends.
#include "knhk/concurrency/detail/block_pool.hpp"

#include <utility>

namespace knhk::concurrency::detail {
namespace {

struct BlockPoolDrain {
  BlockPoolDrain() = default;
  BlockPoolDrain(const BlockPoolDrain&) = delete;
  BlockPoolDrain& operator=(const BlockPoolDrain&) = delete;
  ~BlockPoolDrain() {
    BlockPool& pool = tls_block_pool;
    pool.retired = true;  // frees from later thread_local destructors go to the heap
    for (std::size_t size_class = 0; size_class < kPoolClasses; ++size_class) {
      BlockPool::FreeBlock* block = pool.heads[size_class];
      while (block != nullptr) {
        KNHK_POOL_UNPOISON(block, pool_block_bytes(size_class));
        ::operator delete(std::exchange(block, block->next));
      }
      pool.heads[size_class] = nullptr;
    }
    pool.held_bytes = 0;
  }
};

}  // namespace

void arm_block_pool_drain() noexcept {
  thread_local BlockPoolDrain drain;  // constructed here, on first use; destroyed at thread exit
  (void)drain;
  tls_block_pool.drain_registered = true;
}

}  // namespace knhk::concurrency::detail
