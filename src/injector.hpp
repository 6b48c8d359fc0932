// Injector: the executor's global run queue, for tasks spawned from outside the workers and for a
// worker's overflow. FIFO, unbounded, intrusive (tasks link through their `next` member, so
// queueing never allocates).
//
// A mutex guards the list: pushes from outside threads and overflow batches are rare next to
// local spawns, and a batch moves in one critical section. `size_` lets idle workers test
// emptiness without taking the lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>

#include "parking_mutex.hpp"

namespace knhk::concurrency::detail {

template <class T>
class Injector {
 public:
  Injector() = default;
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  void push(T* task) noexcept { push_batch(task, task, 1); }

  /// Appends the chain first -> ... -> last (linked through `next`, `count` tasks long).
  void push_batch(T* first, T* last, std::size_t count) noexcept {
    last->next = nullptr;
    std::lock_guard lock(mutex_);
    (list_.tail != nullptr ? list_.tail->next : list_.head) = first;
    list_.tail = last;
    // release: with the mutex, publishes the tasks to a worker that sees the new size and locks.
    size_.store(size_.load(std::memory_order_relaxed) + count, std::memory_order_release);
  }

  /// Takes the oldest task, or nullptr.
  T* pop() noexcept {
    if (empty_hint()) return nullptr;
    std::lock_guard lock(mutex_);
    T* task = list_.head;
    if (task == nullptr) return nullptr;
    list_.head = task->next;
    if (list_.head == nullptr) list_.tail = nullptr;
    // relaxed: written only under the mutex; readers use it as a hint.
    size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    return task;
  }

  /// A hint: false may be stale by the time the caller acts (pop() decides).
  [[nodiscard]] bool empty_hint() const noexcept { return size_hint() == 0; }
  [[nodiscard]] std::size_t size_hint() const noexcept {
    // acquire: pairs with push_batch()'s release, so a seen task is also seen under the mutex.
    return size_.load(std::memory_order_acquire);
  }

 private:
  ParkingMutex mutex_;
  struct List {  // guarded by mutex_
    T* head = nullptr;
    T* tail = nullptr;
  } list_;
  std::atomic<std::size_t> size_{0};  // written under mutex_, read by anyone
};

}  // namespace knhk::concurrency::detail
