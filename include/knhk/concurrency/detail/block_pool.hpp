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
// Producer and consumer on different threads (W1 at T = 2, every spawn from outside): blocks
// freed on one thread and allocated on another would pile up on the first and come from malloc
// on the second. So a thread keeps at most 2 * kMagazineBlocks free blocks per class; past that it
// hands kMagazineBlocks of them, as one chain (a magazine), to a process-wide depot, and a thread
// whose list is empty takes a magazine from the depot before it calls malloc. One lock per
// magazine, not per block (Bonwick's magazines; tcmalloc's transfer cache). The depot keeps at
// most kDepotLimitBytes per class and frees the rest.
//
// Thread safety: each thread's lists are touched only by that thread; the depot is locked. A block
// crossing threads does so inside the runtime's own hand-offs (queues, join states) or the
// depot's lock, which order the previous owner's writes before the next owner's.
//
// Lifetime: a thread's lists are freed when the thread exits (blocks freed after that go to the
// heap); the depot lives as long as the process.
//
// AddressSanitizer: in a library built with it (KNHK_SANITIZE=address), a block in a list or in the
// depot is poisoned past its link word, so a use after free of a pooled object is still reported.
// The link stays readable: LeakSanitizer follows no pointer stored in poisoned memory, and would
// report every block of a chain but the first. Whether blocks are poisoned is fixed when the
// library is configured (KNHK_POOL_POISONING, detail/build_config.hpp), never by the flags of the
// code that includes this header: the inline functions below run in the user's code and in the
// library's on the same blocks, and an application built with -fsanitize=address against an
// uninstrumented library would poison blocks that the library hands out again without unpoisoning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "knhk/concurrency/detail/build_config.hpp"

#if KNHK_POOL_POISONING
// The interface functions, not the ASAN_*_MEMORY_REGION macros: those expand to nothing in a
// translation unit compiled without -fsanitize=address. The program is linked with ASan anyway, as
// the library's own objects need it.
#include <sanitizer/asan_interface.h>
#define KNHK_POOL_POISON(address, size) __asan_poison_memory_region(address, size)
#define KNHK_POOL_UNPOISON(address, size) __asan_unpoison_memory_region(address, size)
#else
#define KNHK_POOL_POISON(address, size) ((void)(address), (void)(size))
#define KNHK_POOL_UNPOISON(address, size) ((void)(address), (void)(size))
#endif

namespace knhk::concurrency::detail {

inline constexpr std::size_t kPoolClasses = 64;
inline constexpr std::size_t kPoolMaxBlock = (kPoolClasses - 1) * 16 - 8;  // 1000 bytes
// Blocks moved between a thread and the depot at once.
inline constexpr std::uint32_t kMagazineBlocks = 64;
// Free bytes the depot keeps per class.
inline constexpr std::size_t kDepotLimitBytes = std::size_t{4} << 20;

// unarmed until the thread's first free or refill arms its thread-exit drain; retired once the
// drain has run (the thread is exiting; blocks go to the heap from then on).
enum class PoolState : unsigned char { unarmed, armed, retired };

struct BlockPool {
  struct FreeBlock {
    FreeBlock* next;
  };
  FreeBlock* heads[kPoolClasses];
  std::uint32_t counts[kPoolClasses];
  PoolState state;
};

// Trivially destructible and constant-initialised, so access needs no guard and the state stays
// readable during thread exit, after the drain ran.
inline constinit thread_local BlockPool tls_block_pool{};

[[nodiscard]] constexpr std::size_t pool_class(std::size_t bytes) noexcept { return (bytes + 8 + 15) / 16; }
[[nodiscard]] constexpr std::size_t pool_block_bytes(std::size_t size_class) noexcept { return size_class * 16 - 8; }

inline void poison_free_block(BlockPool::FreeBlock* block, std::size_t size_class) noexcept {
  KNHK_POOL_POISON(block + 1, pool_block_bytes(size_class) - sizeof(BlockPool::FreeBlock));
}

// The slow paths, out of line (block_pool.cpp).
// An empty list: a magazine from the depot into the list, then one block of it; else the heap.
[[nodiscard]] void* pool_refill(std::size_t size_class);
// A list past 2 * kMagazineBlocks: one magazine of it to the depot (or the heap, past its limit).
void pool_spill(std::size_t size_class) noexcept;
// Arms the drain that frees this thread's lists when the thread exits, if not yet done. False once
// it has run: the thread may keep no list any more.
[[nodiscard]] bool arm_block_pool() noexcept;

[[nodiscard]] inline void* pool_allocate(std::size_t bytes) {
  const std::size_t size_class = pool_class(bytes);
  if (size_class >= kPoolClasses) return ::operator new(bytes);
  BlockPool& pool = tls_block_pool;
  BlockPool::FreeBlock* block = pool.heads[size_class];
  if (block == nullptr) [[unlikely]]
    return pool_refill(size_class);
  KNHK_POOL_UNPOISON(block, pool_block_bytes(size_class));
  pool.heads[size_class] = block->next;
  --pool.counts[size_class];
  return block;
}

// `bytes` must be what the block was allocated with.
inline void pool_free(void* memory, std::size_t bytes) noexcept {
  const std::size_t size_class = pool_class(bytes);
  BlockPool& pool = tls_block_pool;
  if (size_class >= kPoolClasses || (pool.state != PoolState::armed && !arm_block_pool())) [[unlikely]] {
    ::operator delete(memory);
    return;
  }
  auto* block = static_cast<BlockPool::FreeBlock*>(memory);
  block->next = pool.heads[size_class];
  pool.heads[size_class] = block;
  poison_free_block(block, size_class);
  if (++pool.counts[size_class] > 2 * kMagazineBlocks) [[unlikely]]
    pool_spill(size_class);
}

// For a class whose objects should come from the pool: `operator new`/`operator delete` forward
// here (class-specific operators, and coroutine promises for their frames). Pooled blocks are
// aligned to 16 bytes; an over-aligned class (a JoinState<T> of an alignas(64) T) takes the
// aligned forms, which go to the heap.
struct PooledAllocation {
  [[nodiscard]] static void* operator new(std::size_t bytes) { return pool_allocate(bytes); }
  static void operator delete(void* memory, std::size_t bytes) noexcept { pool_free(memory, bytes); }
  [[nodiscard]] static void* operator new(std::size_t bytes, std::align_val_t alignment) {
    return ::operator new(bytes, alignment);
  }
  // The unsized global form: clang 14 declares the sized ones only with -fsized-deallocation.
  static void operator delete(void* memory, std::size_t /*bytes*/, std::align_val_t alignment) noexcept {
    ::operator delete(memory, alignment);
  }
};

// Memory for an object of type T: from the pool, or from the heap when T is over-aligned.
template <class T>
[[nodiscard]] void* allocate_for() {
  if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    return ::operator new (sizeof(T), std::align_val_t{alignof(T)});
  } else {
    return pool_allocate(sizeof(T));
  }
}
template <class T>
void free_for(void* memory) noexcept {
  if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    ::operator delete (memory, std::align_val_t{alignof(T)});
  } else {
    pool_free(memory, sizeof(T));
  }
}

}  // namespace knhk::concurrency::detail
