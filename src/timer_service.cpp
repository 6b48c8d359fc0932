#include "timer_service.hpp"

#include "knhk/concurrency/detail/resume.hpp"

#include <pthread.h>

#include <cstdio>
#include <limits>
#include <utility>

namespace knhk::concurrency::detail {
namespace {
// Protocol 4, per thread: whether this thread drives the wheel now, and the entries of the batch
// in its hands that it has not fired yet. Only the thread itself reads or writes them.
thread_local bool tls_driving = false;
thread_local TimerEntry* tls_unfired = nullptr;
}  // namespace

TimerService& TimerService::instance() {
  static TimerService* const service = new TimerService();  // Protocol 3: never destroyed
  return *service;
}

TimerService::TimerService() : epoch_(Clock::now()) {}

std::uint64_t TimerService::tick_at_or_after(Clock::time_point t) const noexcept {
  if (t <= epoch_) return 0;
  const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(t - epoch_).count();
  return static_cast<std::uint64_t>((since + kTick.count() - 1) / kTick.count());  // never fire early
}

std::uint64_t TimerService::tick_now() const noexcept {
  return static_cast<std::uint64_t>((Clock::now() - epoch_) / kTick);
}

bool TimerService::add(TimerEntry* entry, Clock::time_point deadline) {
  const std::uint64_t tick = tick_at_or_after(deadline);
  std::unique_lock lock(mutex_);
  if (tick <= tick_now() || tick <= wheel_.elapsed()) return false;  // already due
  if (!started_) {
    start_driver(nullptr);  // may throw std::system_error: nothing linked yet
    started_ = true;
  }
  entry->tick = tick;
  wheel_.insert(entry);
  if (entry->tick < wake_tick_) {  // Protocol 1: the thread sleeps past this deadline
    wake_tick_ = entry->tick;
    lock.unlock();
    wake_.notify_one();
  }
  return true;
}

bool TimerService::remove(TimerEntry* entry) noexcept {
  std::lock_guard lock(mutex_);
  if (!entry->linked) return false;  // Protocol 2: fired or firing
  wheel_.remove(entry);
  return true;
}

std::size_t TimerService::pending() const noexcept {
  std::lock_guard lock(mutex_);
  return wheel_.size();
}

void TimerService::start_driver(TimerEntry* inherited) {
  std::thread driver([this, inherited] { run(inherited); });
  pthread_setname_np(driver.native_handle(), "knhk-timer");
  driver.detach();  // a driver exits only when retired (Protocol 4); the service is never destroyed
}

void TimerService::hand_off() noexcept {
  if (!tls_driving) return;  // not the driver: blocking here stops no timer
  TimerService& service = instance();
  TimerEntry* const unfired = tls_unfired;
  {
    const std::lock_guard lock(service.mutex_);
    try {
      service.start_driver(unfired);  // the new driver fires what this thread has not fired yet
    } catch (...) {
      std::fputs("knhk: could not start a timer thread to take over; timers wait for this one\n", stderr);
      return;
    }
  }
  tls_unfired = nullptr;
  tls_driving = false;
  tls_timer_thread = false;  // an ordinary thread from now on: it may block (detail/resume.hpp)
}

void TimerService::fire_batch(TimerEntry* due) noexcept {
  tls_unfired = due;
  while (tls_driving && tls_unfired != nullptr) {
    TimerEntry* const entry = tls_unfired;
    tls_unfired = entry->next;  // read before fire() may free it, and before a hand-off inside it
    entry->fire(entry);
  }
}

void TimerService::run(TimerEntry* inherited) noexcept {
  tls_timer_thread = true;  // blocking waits refuse to run here (detail/resume.hpp)
  tls_driving = true;
  fire_batch(inherited);
  if (!tls_driving) return;  // retired inside a fire: the new driver has the wheel (Protocol 4)
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_tick_ = 0;  // awake: adders need not notify (Protocol 1)
    if (TimerEntry* due = wheel_.advance(tick_now())) {
      lock.unlock();
      fire_batch(due);
      if (!tls_driving) return;  // Protocol 4
      lock.lock();
      continue;
    }
    const std::uint64_t next = wheel_.next_expiration();
    wake_tick_ = next;
    if (next == TimerWheel::kNever) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, epoch_ + kTick * static_cast<std::int64_t>(next));
    }
  }
}

}  // namespace knhk::concurrency::detail
