// TimerService: the library's one timer thread and its wheel (see timer_wheel.hpp).
//
// Why one service thread and a wheel (docs/ARCHITECTURE.md, "Timers"): sleeps are registered from
// any thread (workers, outside threads, cancel_after), must be removable by whichever thread
// cancels them, and must not make idle workers poll. A single wheel behind one mutex gives O(1)
// insert and remove from anywhere; the timer thread sleeps until the earliest deadline and is
// woken only when a new deadline is earlier than the one it sleeps towards. A fired sleep is
// handed back to the executor it was suspended on (a resume record, as for any wake-up), so
// user code never runs on the timer thread unless it awaited a sleep off any executor.
//
// Protocol:
//  1. add() links an entry under the mutex; if its tick is earlier than `wake_tick_` (the tick the
//     thread sleeps towards), it lowers `wake_tick_` and notifies. While the thread is awake,
//     `wake_tick_` is 0, so adders never notify: the thread re-reads the wheel before sleeping.
//  2. The thread advances the wheel under the mutex, collecting due entries (unlinked, so remove()
//     reports false for them from then on), and calls their `fire` after unlocking. An entry's
//     owner learns of the firing only through `fire`; remove() returning true means it never fires.
//  3. The service is never destroyed (a deliberately leaked singleton, still reachable for leak
//     checkers): a static executor destroyed at exit may have sleeping tasks left to wake, and any
//     destructor may still call cancel_after(), so the thread must outlive all of them.
//  4. Hand-off. User code runs on the timer thread inside `fire` (a sleep awaited off any
//     executor continues there; a cancel_after deadline runs the token's callbacks there). When
//     that code must block in a destructor (~WorkStealingExecutor, ~Nursery) until tasks end,
//     those tasks may wait for timers only this thread would fire. So before blocking it calls
//     hand_off(): under the mutex a new thread becomes the driver, inheriting the entries of the
//     batch this thread had not fired yet, and this thread is retired: it finishes the user's code
//     and then exits instead of going back to the wheel. Exactly one thread drives the wheel at a
//     time; the batch in hand is touched only by its driver (the retiring thread reads it on its
//     own stack, inside fire, before handing it on).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

#include "timer_wheel.hpp"

namespace knhk::concurrency::detail {

class TimerService {
 public:
  using Clock = std::chrono::steady_clock;
  // One tick of the wheel. A sleep ends on the first tick at or after its deadline, so it is late by
  // up to a tick plus the timer thread's wake-up. From W11: with 1 ms ticks a 1..4 ms sleep ended
  // 1.0 ms late at the median (sleeps started right after a tick); 250 us costs at most 4 times
  // the timer thread's wake-ups when deadlines are spread out, and still spans 35 years.
  static constexpr std::chrono::nanoseconds kTick{250'000};

  /// The process-wide service; its thread starts with the first timer.
  static TimerService& instance();

  /// Links `entry` to fire at `deadline` (or up to a tick later). Returns false, linking nothing,
  /// when the deadline has already passed.
  bool add(TimerEntry* entry, Clock::time_point deadline);

  /// Unlinks `entry` if it is still linked. True when this call unlinked it: it will never fire.
  /// False when it had fired already or is firing now.
  bool remove(TimerEntry* entry) noexcept;

  /// Entries linked right now.
  [[nodiscard]] std::size_t pending() const noexcept;

  /// Protocol 4: called by code about to block that may be running on the timer thread. On the
  /// thread that drives the wheel, starts a new driver and retires this thread from the wheel (it
  /// is then an ordinary thread, and may block); elsewhere does nothing. If no thread can be
  /// started, this thread stays the driver (and its block may then wait for timers it would fire).
  static void hand_off() noexcept;

  TimerService(const TimerService&) = delete;
  TimerService& operator=(const TimerService&) = delete;

 private:
  TimerService();
  ~TimerService() = delete;  // Protocol 3

  [[nodiscard]] std::uint64_t tick_at_or_after(Clock::time_point t) const noexcept;
  [[nodiscard]] std::uint64_t tick_now() const noexcept;
  void run(TimerEntry* inherited) noexcept;
  void fire_batch(TimerEntry* due) noexcept;  // stops early if a fire retired this thread
  void start_driver(TimerEntry* inherited);   // under mutex_

  const Clock::time_point epoch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  TimerWheel wheel_;                              // guarded by mutex_
  std::uint64_t wake_tick_ = TimerWheel::kNever;  // guarded by mutex_ (Protocol 1)
  bool started_ = false;                          // guarded by mutex_: the first add() starts a driver
};

}  // namespace knhk::concurrency::detail
