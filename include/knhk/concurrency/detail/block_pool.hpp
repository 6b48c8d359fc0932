// BlockPool: a per-thread cache of small heap blocks for the runtime's own short-lived objects:
// task records, coroutine frames (Task<T>, the executor's task drivers), join states and
// cancellation states. A fork-join task allocates four of those and frees them soon after, often
// on the same worker; the pool turns each pair of malloc/free into a pop and a push on a
// thread-local list.
//
// Size classes: a request of `bytes` is served from class k = (bytes + 8 + 15) / 16, whose blocks
// are k * 16 - 8 bytes. glibc hands out chunks of (request + 8) rounded up to 16, so a pooled
// block takes exactly the chunk that malloc(bytes) would (W11 counts heap bytes per sleeper).
// Requests above kPoolMaxBlock bytes go straight to the heap.
//
// Ownership: a block freed on another thread than the one that allocated it joins the freeing
// thread's list (a producer-consumer pair moves blocks one way; the consumer's list then fills up
// to kPoolLimitBytes and frees the rest). Each thread keeps at most kPoolLimitBytes; its list is
// freed when the thread exits, and blocks freed after that go to the heap.
//
// Thread safety: each list is touched only by its own thread; no atomics. A block crossing
// threads does so inside the runtime's own hand-offs (queues, join states), which order the
// previous owner's writes before the next owner's.
//
// AddressSanitizer: a block in a list is poisoned, so a use after free of a pooled object is
// still reported.
#pragma once

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define KNHK_POOL_POISON(address, size) ASAN_POISON_MEMORY_REGION(address, size)
#define KNHK_POOL_UNPOISON(address, size) ASAN_UNPOISON_MEMORY_REGION(address, size)
#else
#define KNHK_POOL_POISON(address, size) ((void)(address), (void)(size))
#define KNHK_POOL_UNPOISON(address, size) ((void)(address), (void)(size))
#endif

namespace knhk::concurrency::detail {

inline constexpr std::size_t kPoolClasses = 64;
inline constexpr std::size_t kPoolMaxBlock = (kPoolClasses - 1) * 16 - 8;  // 1000 bytes
// Free bytes one thread may keep. A worker that ran a burst of a million W1 records keeps this
// much, not the burst.
inline constexpr std::size_t kPoolLimitBytes = std::size_t{1} << 20;

struct BlockPool {
  struct FreeBlock {
    FreeBlock* next;
  };
  FreeBlock* heads[kPoolClasses];
  std::size_t held_bytes;
  bool drain_registered;  // the thread-exit drain (block_pool.cpp) is armed
  bool retired;           // the thread is exiting: its list was freed; free to the heap from now on
};

// Trivially destructible and constant-initialised, so access needs no guard and the state stays
// readable during thread exit, after the drain ran.
inline constinit thread_local BlockPool tls_block_pool{};

// Arms the drain that frees this thread's list when the thread exits (out of line: it touches a
// thread_local with a destructor).
void arm_block_pool_drain() noexcept;

[[nodiscard]] constexpr std::size_t pool_class(std::size_t bytes) noexcept { return (bytes + 8 + 15) / 16; }
[[nodiscard]] constexpr std::size_t pool_block_bytes(std::size_t size_class) noexcept { return size_class * 16 - 8; }

[[nodiscard]] inline void* pool_allocate(std::size_t bytes) {
  const std::size_t size_class = pool_class(bytes);
  if (size_class >= kPoolClasses) return ::operator new(bytes);
  BlockPool& pool = tls_block_pool;
  BlockPool::FreeBlock* block = pool.heads[size_class];
  if (block == nullptr) return ::operator new(pool_block_bytes(size_class));
  KNHK_POOL_UNPOISON(block, pool_block_bytes(size_class));
  pool.heads[size_class] = block->next;
  pool.held_bytes -= pool_block_bytes(size_class);
  return block;
}

// `bytes` must be what the block was allocated with.
inline void pool_free(void* memory, std::size_t bytes) noexcept {
  const std::size_t size_class = pool_class(bytes);
  if (size_class < kPoolClasses) {
    BlockPool& pool = tls_block_pool;
    const std::size_t block_bytes = pool_block_bytes(size_class);
    if (pool.held_bytes + block_bytes <= kPoolLimitBytes && !pool.retired) {
      if (!pool.drain_registered) [[unlikely]]
        arm_block_pool_drain();
      auto* block = static_cast<BlockPool::FreeBlock*>(memory);
      block->next = pool.heads[size_class];
      pool.heads[size_class] = block;
      pool.held_bytes += block_bytes;
      KNHK_POOL_POISON(block, block_bytes);
      return;
    }
  }
  ::operator delete(memory);
}

// For a class whose objects should come from the pool: `operator new`/`operator delete` forward
// here (class-specific operators, and coroutine promises for their frames).
struct PooledAllocation {
  [[nodiscard]] static void* operator new(std::size_t bytes) { return pool_allocate(bytes); }
  static void operator delete(void* memory, std::size_t bytes) noexcept { pool_free(memory, bytes); }
};

}  // namespace knhk::concurrency::detail
