// ParkingMutex: a 4-byte mutex for the runtime's short critical sections.
//
// Uncontended, lock() is one compare-exchange and unlock() one exchange: cheaper than a
// pthread mutex called through libc, and small enough to sit in every cancellation state.
// Contended, it spins briefly and then parks the thread in std::atomic::wait (a futex on Linux),
// so a waiter never burns a core.
//
// Protocol (Drepper, "Futexes are tricky", 2011, mutex #2): state 0 = unlocked, 1 = locked,
// 2 = locked and someone may be parked. A thread that parks first swaps in 2, so the holder's
// unlock() sees 2 and wakes one waiter. A woken waiter re-acquires with 2, so a wake-up is
// never lost when several threads park.
#pragma once

#include <atomic>
#include <cstdint>

#include "cpu_relax.hpp"

namespace knhk::concurrency::detail {

class ParkingMutex {
 public:
  ParkingMutex() = default;
  ParkingMutex(const ParkingMutex&) = delete;
  ParkingMutex& operator=(const ParkingMutex&) = delete;

  void lock() noexcept {
    std::uint32_t expected = kUnlocked;
    // acquire: pairs with the release exchange in unlock(); makes the last holder's writes visible.
    if (!state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed)) {
      lock_contended();
    }
  }

  bool try_lock() noexcept {
    std::uint32_t expected = kUnlocked;
    // acquire: as in lock().
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed);
  }

  void unlock() noexcept {
    // seq_cst (the same instruction as release on x86): publishes this critical section to the
    // next locker's acquire, and orders the store before notify_one()'s check of libstdc++'s
    // waiter count, the store-load pair that keeps a parking waiter from missing its wake-up.
    if (state_.exchange(kUnlocked, std::memory_order_seq_cst) == kContended) state_.notify_one();
  }

 private:
  static constexpr std::uint32_t kUnlocked = 0;
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kContended = 2;
  // Critical sections here are a few dozen instructions; 64 spins (about 1-2 µs) covers them.
  static constexpr int kSpinLimit = 64;

  void lock_contended() noexcept {
    for (int spin = 0; spin < kSpinLimit; ++spin) {
      cpu_relax();
      std::uint32_t expected = kUnlocked;
      // relaxed load: only a hint; the compare-exchange (acquire) decides.
      if (state_.load(std::memory_order_relaxed) == kUnlocked &&
          state_.compare_exchange_weak(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed)) {
        return;
      }
    }
    // acquire: pairs with unlock()'s release when the exchange finds the mutex free.
    while (state_.exchange(kContended, std::memory_order_acquire) != kUnlocked) {
      // relaxed: only decides whether to sleep; the exchange above (acquire) takes the lock.
      state_.wait(kContended, std::memory_order_relaxed);
    }
  }

  std::atomic<std::uint32_t> state_{kUnlocked};
};

}  // namespace knhk::concurrency::detail
