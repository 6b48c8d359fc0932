#include "timer_service.hpp"

#include "knhk/concurrency/detail/resume.hpp"

#include <pthread.h>

#include <limits>
#include <utility>

namespace knhk::concurrency::detail {

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
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { run(); });  // may throw std::system_error: nothing linked yet
    pthread_setname_np(thread_.native_handle(), "knhk-timer");
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

void TimerService::run() noexcept {
  tls_timer_thread = true;  // blocking waits refuse to run here (detail/resume.hpp)
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_tick_ = 0;  // awake: adders need not notify (Protocol 1)
    if (TimerEntry* due = wheel_.advance(tick_now())) {
      lock.unlock();
      while (due != nullptr) {
        TimerEntry* const entry = std::exchange(due, due->next);  // read before fire() may free it
        entry->fire(entry);
      }
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
