// TaskRecord: one unit of work as it travels through the executor's queues.
//
// A record is an intrusive header (`next`, for the injector) plus a function pointer that runs the
// work and then frees the record. The callable is stored inline in the same block. Blocks of up to
// kRecordBlockSize bytes come from a per-thread free list, so spawning a small callable allocates
// nothing in steady state; larger callables use the heap.
//
// Thread safety: a record belongs to one party at a time (spawner, queue, running worker).
// A block freed on another thread than the one that allocated it simply joins that thread's list.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace knhk::concurrency::detail {

class ExecutorState;

struct TaskRecord {
  // Runs the work (or, if its token is already cancelled, completes it unrun) and frees the record.
  // Returns true when a task ended with it (a callable), false when it only resumed a coroutine
  // task that ends later (the coroutine reports its own end).
  using ExecuteFn = bool (*)(TaskRecord* self) noexcept;

  explicit TaskRecord(ExecuteFn fn) noexcept : execute(fn) {}

  TaskRecord* next = nullptr;  // the injector's link; unused while in a local queue
  const ExecuteFn execute;
};

// Sized so that a record of a callable capturing a few pointers fits: the header is 16 bytes,
// W1's record 32. A 1-worker burst of W1 keeps a million records alive, so block size is memory
// touched per spawn (128-byte blocks measured 605 ns per spawn cold against 64-byte ones below).
inline constexpr std::size_t kRecordBlockSize = 64;
// A thread keeps at most this many free blocks (1 MiB); above that, blocks go back to the heap.
inline constexpr std::size_t kRecordPoolLimit = 16384;

struct RecordPool {
  struct FreeBlock {
    FreeBlock* next;
  };
  FreeBlock* head = nullptr;
  std::size_t size = 0;

  ~RecordPool() {
    while (head != nullptr) ::operator delete(std::exchange(head, head->next));
  }
};

inline thread_local RecordPool tls_record_pool;

inline void* allocate_record_block(std::size_t bytes) {
  if (bytes <= kRecordBlockSize) {
    RecordPool& pool = tls_record_pool;
    if (pool.head != nullptr) {
      --pool.size;
      return std::exchange(pool.head, pool.head->next);
    }
    return ::operator new(kRecordBlockSize);
  }
  return ::operator new(bytes);
}

inline void free_record_block(void* block, std::size_t bytes) noexcept {
  if (bytes <= kRecordBlockSize) {
    RecordPool& pool = tls_record_pool;
    if (pool.size < kRecordPoolLimit) {
      auto* free_block = static_cast<RecordPool::FreeBlock*>(block);
      free_block->next = pool.head;
      pool.head = free_block;
      ++pool.size;
      return;
    }
  }
  ::operator delete(block);
}

// A record that owns callable F and, when executed, calls `complete(fn)`, which decides whether to
// run it (not when its token is already cancelled), where the outcome goes (a join state, or the
// executor's unhandled-exception handler), and when `fn` is destroyed: `complete` must destroy it
// (std::destroy_at) before it returns, so that the callable's captures go at a moment of its
// choosing. Every record is executed exactly once, so `fn` is always destroyed exactly once.
template <class F, class Complete>
struct CallableRecord final : TaskRecord {
  template <class G, class C>
  CallableRecord(G&& g, C&& c) : TaskRecord(&CallableRecord::execute_fn), complete(std::forward<C>(c)) {
    ::new (static_cast<void*>(std::addressof(fn))) F(std::forward<G>(g));
  }
  ~CallableRecord() {}  // `fn` was destroyed by `complete`

  CallableRecord(const CallableRecord&) = delete;
  CallableRecord& operator=(const CallableRecord&) = delete;

  static bool execute_fn(TaskRecord* self) noexcept {
    auto* record = static_cast<CallableRecord*>(self);
    record->complete(record->fn);  // runs and destroys fn
    record->~CallableRecord();
    free_record_block(record, sizeof(CallableRecord));
    return true;
  }

  Complete complete;
  union {
    F fn;  // constructed in the constructor, destroyed by `complete`
  };
};

template <class F, class Complete>
TaskRecord* make_callable_record(F&& fn, Complete&& complete) {
  using Record = CallableRecord<std::decay_t<F>, std::decay_t<Complete>>;
  void* block = allocate_record_block(sizeof(Record));
  try {
    return ::new (block) Record(std::forward<F>(fn), std::forward<Complete>(complete));
  } catch (...) {
    free_record_block(block, sizeof(Record));
    throw;
  }
}

}  // namespace knhk::concurrency::detail
