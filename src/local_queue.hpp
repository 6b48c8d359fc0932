// LocalQueue: a worker's bounded run queue, a Chase-Lev work-stealing deque.
//
// The owning worker pushes and pops at the bottom (LIFO: the newest task runs next, its data still
// in cache); thieves steal from the top (FIFO: the oldest task, likely the root of the most work).
// The two roles are different types: a worker holds the one LocalQueue::Owner, every other worker
// a LocalQueue::Stealer, so the compiler enforces who may call what.
//
// Invariants:
//  1. Only the owner writes `bottom_` and the slots; only compare-exchanges advance `top_`
//     (by thieves, one task each, and by the owner when it moves half to the injector).
//  2. The live tasks are the slots [top_, bottom_) modulo the capacity, and bottom_ - top_ never
//     exceeds kCapacity: push() checks that against an acquire load of top_, so a slot is reused
//     only after the thief that read it has moved top_ past it.
//  3. A task is taken by exactly one party: a thief's compare-exchange of top_ from t to t + 1
//     takes slot t; the owner takes slot b = bottom_ - 1 without a compare-exchange when t < b
//     after publishing the decremented bottom_ (the store-load pair that makes a thief reading
//     the old bottom_ lose its compare-exchange or see t >= b), and races the thieves with a
//     compare-exchange for the last task (t == b).
//  4. The owner claims a range [t, t + n) for the injector with one compare-exchange of top_;
//     no pop can run concurrently (the owner is busy), so bottom_ stays put and the claim only
//     races with thieves, who then fail and retry.
//
// Ordering: seq_cst operations stand where Lê et al. place fences (TSan does not model fences);
// on x86 they cost the same.
//
// References: Chase and Lev, "Dynamic circular work-stealing deque", SPAA 2005; Lê, Pop, Cohen
// and Zappa Nardelli, "Correct and efficient work-stealing for weak memory models", PPoPP 2013.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace knhk::concurrency::detail {

#ifndef KNHK_LOCAL_QUEUE_CAPACITY
// Large enough that a worker spawning in bursts rarely overflows to the injector, small enough
// (2 KiB of pointers) to stay in L1 (tokio uses 256 as well). Tests build with 4 as well.
#define KNHK_LOCAL_QUEUE_CAPACITY 256
#endif

enum class StealResult { empty, success, retry };

template <class T>
class LocalQueue {
 public:
  static constexpr std::int64_t kCapacity = KNHK_LOCAL_QUEUE_CAPACITY;
  static_assert(kCapacity >= 2 && (kCapacity & (kCapacity - 1)) == 0, "capacity must be a power of two");

  LocalQueue() = default;
  LocalQueue(const LocalQueue&) = delete;
  LocalQueue& operator=(const LocalQueue&) = delete;

  class Owner;
  class Stealer;
  Owner owner() noexcept { return Owner{*this}; }
  Stealer stealer() noexcept { return Stealer{*this}; }

  /// Approximate number of queued tasks (exact when nothing runs concurrently).
  [[nodiscard]] std::size_t size_hint() const noexcept {
    // relaxed: a hint for metrics and the idle protocol, which re-checks under its own ordering.
    const std::int64_t n = bottom_.load(std::memory_order_relaxed) - top_.load(std::memory_order_relaxed);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }

 private:
  static constexpr std::int64_t kMask = kCapacity - 1;

  std::atomic<T*>& slot(std::int64_t index) noexcept { return slots_[static_cast<std::size_t>(index & kMask)]; }

  // Separate cache lines: thieves hammer top_, the owner bottom_.
  alignas(64) std::atomic<std::int64_t> top_{0};     // advanced by compare-exchange (Invariant 1)
  alignas(64) std::atomic<std::int64_t> bottom_{0};  // written by the owner only
  alignas(64) std::array<std::atomic<T*>, static_cast<std::size_t>(kCapacity)> slots_{};
};

/// The owning worker's end: push and pop at the bottom, overflow to the injector.
template <class T>
class LocalQueue<T>::Owner {
 public:
  /// Pushes `task`; returns false (and pushes nothing) when the queue is full.
  bool push(T* task) noexcept {
    const std::int64_t b = queue_->bottom_.load(std::memory_order_relaxed);  // relaxed: we are its only writer
    // acquire: pairs with the thieves' compare-exchange; the slot we reuse has been read (Invariant 2).
    const std::int64_t t = queue_->top_.load(std::memory_order_acquire);
    if (b - t >= kCapacity) return false;
    queue_->slot(b).store(task, std::memory_order_relaxed);  // relaxed: published by the store below
    // release: publishes the slot and the task's contents to the acquire load of bottom_ in steal().
    queue_->bottom_.store(b + 1, std::memory_order_release);
    return true;
  }

  /// Pops the newest task, or returns nullptr when the queue is empty.
  T* pop() noexcept {
    const std::int64_t b = queue_->bottom_.load(std::memory_order_relaxed) - 1;  // relaxed: ours
    // seq_cst store then seq_cst load: the store-load pair of Invariant 3 against steal()'s
    // seq_cst load of top_ then bottom_.
    queue_->bottom_.store(b, std::memory_order_seq_cst);
    std::int64_t t = queue_->top_.load(std::memory_order_seq_cst);
    if (t > b) {                                                // empty
      queue_->bottom_.store(b + 1, std::memory_order_relaxed);  // relaxed: back to what it was
      return nullptr;
    }
    T* task = queue_->slot(b).load(std::memory_order_relaxed);  // relaxed: we wrote it
    if (t < b) return task;                                     // not the last one: ours (Invariant 3)
    // The last task: race the thieves for it. seq_cst: the same total order as steal()'s claim.
    const bool won =
        queue_->top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed);
    queue_->bottom_.store(b + 1, std::memory_order_relaxed);  // relaxed: now equal to top_, empty
    return won ? task : nullptr;
  }

  /// Claims the older half of a full queue (Invariant 4) and hands the tasks, oldest first, to
  /// `sink(T*)`. Returns how many it moved (0 if thieves emptied the queue meanwhile).
  template <class Sink>
  std::size_t take_older_half(Sink&& sink) noexcept {
    for (;;) {
      // acquire: as in push(); the slots we read were published by our own stores.
      std::int64_t t = queue_->top_.load(std::memory_order_acquire);
      const std::int64_t b = queue_->bottom_.load(std::memory_order_relaxed);  // relaxed: ours
      const std::int64_t n = (b - t) / 2;
      if (n <= 0) return 0;
      // seq_cst: ordered with the thieves' claims (Invariant 4).
      if (queue_->top_.compare_exchange_strong(t, t + n, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        for (std::int64_t i = t; i < t + n; ++i) sink(queue_->slot(i).load(std::memory_order_relaxed));
        return static_cast<std::size_t>(n);
      }
    }
  }

  [[nodiscard]] std::size_t size_hint() const noexcept { return queue_->size_hint(); }

 private:
  friend class LocalQueue;
  explicit Owner(LocalQueue& queue) noexcept : queue_(&queue) {}
  LocalQueue* queue_;
};

/// A thief's end: steals the oldest task.
template <class T>
class LocalQueue<T>::Stealer {
 public:
  /// Takes the oldest task into `out`. `retry` means another party won a race: the queue may
  /// still hold tasks.
  StealResult steal(T*& out) noexcept {
    // seq_cst loads: the other half of Invariant 3's store-load pair (see Owner::pop()); the
    // bottom_ load also acquires the slot published by push().
    std::int64_t t = queue_->top_.load(std::memory_order_seq_cst);
    const std::int64_t b = queue_->bottom_.load(std::memory_order_seq_cst);
    if (t >= b) return StealResult::empty;
    T* task = queue_->slot(t).load(std::memory_order_relaxed);  // relaxed: published by bottom_
    // seq_cst: one total order of claims on top_ with pop() and take_older_half().
    if (!queue_->top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
      return StealResult::retry;
    }
    out = task;
    return StealResult::success;
  }

  [[nodiscard]] std::size_t size_hint() const noexcept { return queue_->size_hint(); }

 private:
  friend class LocalQueue;
  explicit Stealer(LocalQueue& queue) noexcept : queue_(&queue) {}
  LocalQueue* queue_;
};

}  // namespace knhk::concurrency::detail
