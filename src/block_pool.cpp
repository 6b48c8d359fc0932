// The slow paths of detail/block_pool.hpp: the process-wide depot of magazines, and the drain
// that frees a thread's lists when the thread exits.
#include "knhk/concurrency/detail/block_pool.hpp"
#include "knhk/concurrency/memory.hpp"

#include <array>
#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

namespace knhk::concurrency::detail {
namespace {

using FreeBlock = BlockPool::FreeBlock;

// A free block's link word is never poisoned (block_pool.hpp).
FreeBlock* next_of(const FreeBlock* block) noexcept { return block->next; }

void free_chain(FreeBlock* block) noexcept {
  while (block != nullptr) {
    FreeBlock* next = next_of(block);
    ::operator delete(block);
    block = next;
  }
}

// Per class: full magazines, each a chain of exactly kMagazineBlocks blocks.
class Depot {
 public:
  // Takes a magazine, or null when there is none.
  FreeBlock* take(std::size_t size_class) noexcept {
    Shelf& shelf = shelves_[size_class];
    // relaxed: a hint that spares a thread allocating from malloc a lock per block; the lock
    // orders what it hands over.
    if (shelf.size.load(std::memory_order_relaxed) == 0) return nullptr;
    const std::lock_guard lock(shelf.mutex);
    if (shelf.magazines.empty()) return nullptr;
    FreeBlock* magazine = shelf.magazines.back();
    shelf.magazines.pop_back();
    shelf.size.store(shelf.magazines.size(), std::memory_order_relaxed);
    return magazine;
  }

  // Keeps `magazine`, or frees it when the shelf is full (or cannot grow).
  void give(std::size_t size_class, FreeBlock* magazine) noexcept {
    Shelf& shelf = shelves_[size_class];
    const std::size_t limit = kDepotLimitBytes / (pool_block_bytes(size_class) * kMagazineBlocks);
    {
      const std::lock_guard lock(shelf.mutex);
      if (shelf.magazines.size() < limit) {
        try {
          shelf.magazines.push_back(magazine);
          shelf.size.store(shelf.magazines.size(), std::memory_order_relaxed);  // relaxed: see take()
          return;
        } catch (...) {
          // no memory to note it: free it below
        }
      }
    }
    free_chain(magazine);
  }

  // Bytes of the magazines held now.
  std::size_t bytes() const noexcept {
    std::size_t total = 0;
    for (std::size_t size_class = 0; size_class < kPoolClasses; ++size_class) {
      // relaxed: a snapshot (see take()).
      total +=
          shelves_[size_class].size.load(std::memory_order_relaxed) * kMagazineBlocks * pool_block_bytes(size_class);
    }
    return total;
  }

  // Frees every magazine; returns the bytes freed.
  std::size_t release() noexcept {
    std::size_t freed = 0;
    for (std::size_t size_class = 0; size_class < kPoolClasses; ++size_class) {
      Shelf& shelf = shelves_[size_class];
      std::vector<FreeBlock*> magazines;
      {
        const std::lock_guard lock(shelf.mutex);
        magazines.swap(shelf.magazines);
        shelf.size.store(0, std::memory_order_relaxed);  // relaxed: see take()
      }
      for (FreeBlock* magazine : magazines) free_chain(magazine);
      freed += magazines.size() * kMagazineBlocks * pool_block_bytes(size_class);
    }
    return freed;
  }

 private:
  struct Shelf {
    std::mutex mutex;
    std::vector<FreeBlock*> magazines;  // guarded by mutex
    std::atomic<std::size_t> size{0};   // magazines.size(), written under mutex
  };
  std::array<Shelf, kPoolClasses> shelves_;
};

// Never destroyed: threads may still free blocks while static destructors run at exit.
Depot& depot() noexcept {
  static Depot* const instance = new Depot;
  return *instance;
}

struct BlockPoolDrain {
  BlockPoolDrain() = default;
  BlockPoolDrain(const BlockPoolDrain&) = delete;
  BlockPoolDrain& operator=(const BlockPoolDrain&) = delete;
  ~BlockPoolDrain() {
    BlockPool& pool = tls_block_pool;
    pool.state = PoolState::retired;  // frees from later thread_local destructors go to the heap
    for (std::size_t size_class = 0; size_class < kPoolClasses; ++size_class) {
      free_chain(std::exchange(pool.heads[size_class], nullptr));
      pool.counts[size_class] = 0;
    }
  }
};

}  // namespace

void* pool_refill(std::size_t size_class) {
  BlockPool& pool = tls_block_pool;
  // The rest of the magazine stays in the list: the drain must be armed. A thread whose lists
  // were drained at its exit keeps none again.
  FreeBlock* magazine = arm_block_pool() ? depot().take(size_class) : nullptr;
  if (magazine == nullptr) return ::operator new(pool_block_bytes(size_class));
  KNHK_POOL_UNPOISON(magazine, pool_block_bytes(size_class));
  pool.heads[size_class] = magazine->next;  // the list was empty
  pool.counts[size_class] = kMagazineBlocks - 1;
  return magazine;
}

void pool_spill(std::size_t size_class) noexcept {
  BlockPool& pool = tls_block_pool;
  FreeBlock* const magazine = pool.heads[size_class];
  FreeBlock* last = magazine;
  for (std::uint32_t i = 1; i < kMagazineBlocks; ++i) last = next_of(last);
  pool.heads[size_class] = std::exchange(last->next, nullptr);
  pool.counts[size_class] -= kMagazineBlocks;
  depot().give(size_class, magazine);
}

bool arm_block_pool() noexcept {
  BlockPool& pool = tls_block_pool;
  if (pool.state == PoolState::unarmed) {
    thread_local BlockPoolDrain drain;  // constructed here, on first use; destroyed at thread exit
    (void)drain;
    pool.state = PoolState::armed;
  }
  return pool.state == PoolState::armed;
}

}  // namespace knhk::concurrency::detail

namespace knhk::concurrency {

std::size_t cached_memory_bytes() noexcept { return detail::depot().bytes(); }
std::size_t release_cached_memory() noexcept { return detail::depot().release(); }

}  // namespace knhk::concurrency
