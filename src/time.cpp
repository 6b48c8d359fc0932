// Sleeps, deadlines and current_token() (include/knhk/concurrency/time.hpp).
//
// A sleep is a timer entry inside its awaiter, in the sleeping coroutine's frame: sleeping
// allocates nothing beyond the frame of sleep_for() itself and one cancellation callback.
//
// Sleep protocol. Three parties may act on one sleep: the suspending thread (await_suspend), the
// timer thread (the deadline) and a cancelling thread (the token's callback).
//  1. The deadline and the cancellation race for the entry through TimerService: whichever unlinks
//     it (advance() for the timer, remove() for the callback) decides the outcome; the other finds
//     it unlinked and does nothing. The callback records `cancelled_` before it arrives.
//  2. The suspending thread links the entry, then registers the callback, then arrives. The
//     decider arrives too. Whichever arrives second resumes the coroutine: the decider through the
//     resume point recorded at suspension, or await_suspend by returning false. So the coroutine
//     never resumes while await_suspend still touches the frame, and resumes exactly once.
//  3. await_resume deregisters the callback (waiting for it if it is still returning on another
//     thread) before the frame can go away.
// cancel_after uses the same two arrivals; its node is freed by whichever arrives second.
#include <atomic>
#include <memory>
#include <optional>

#include "knhk/concurrency/time.hpp"
#include "timer_service.hpp"

namespace knhk::concurrency {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

// Durations beyond this are clamped (a century: "forever" without overflowing the clock).
constexpr std::chrono::nanoseconds kLongestWait = std::chrono::hours(24 * 365 * 100);

Clock::time_point deadline_after(std::chrono::nanoseconds d) noexcept {
  return Clock::now() + std::min(d, kLongestWait);
}

// Two parties each arrive once; the second learns it is second (Sleep protocol 2).
class Rendezvous {
 public:
  bool arrive_second() noexcept {
    // acq_rel: the second arrival sees everything the first did before arriving.
    return arrived_.fetch_add(1, std::memory_order_acq_rel) == 1;
  }

 private:
  std::atomic<std::uint8_t> arrived_{0};
};

class SleepAwaiter final : private TimerEntry {
 public:
  SleepAwaiter(Clock::time_point deadline, const CancelToken* token) noexcept
      : TimerEntry(&SleepAwaiter::fire_fn), deadline_(deadline), token_(token) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  ~SleepAwaiter() {
    // Only if the frame is destroyed while sleeping: take the entry out so it never fires.
    if (suspended_ && !resumed_) (void)TimerService::instance().remove(this);
  }

  [[nodiscard]] bool await_ready() const noexcept {
    if (token_ != nullptr && token_->is_cancelled()) return true;  // await_resume throws
    return deadline_ <= Clock::now();
  }

  bool await_suspend(std::coroutine_handle<> waiter) {
    waiter_ = waiter;
    where_ = ResumePoint::here();
    TimerService& timers = TimerService::instance();
    if (!timers.add(this, deadline_)) return false;  // due meanwhile
    suspended_ = true;
    if (token_ != nullptr) {
      try {
        registration_ = token_->on_cancel(OnCancel{this});  // may run inline (Sleep protocol 1)
      } catch (...) {
        if (timers.remove(this)) {
          suspended_ = false;
          throw;  // not sleeping after all
        }
        // The timer fired meanwhile and will arrive: sleep out the (elapsed) deadline.
      }
    }
    return !rendezvous_.arrive_second();
  }

  void await_resume() {
    resumed_ = true;
    registration_.reset();  // Sleep protocol 3
    if (cancelled_ || (token_ != nullptr && token_->is_cancelled())) throw Cancelled();
  }

 private:
  struct OnCancel {
    SleepAwaiter* self;
    void operator()() const noexcept {
      if (!TimerService::instance().remove(self)) return;  // the deadline won (Sleep protocol 1)
      self->cancelled_ = true;
      if (self->rendezvous_.arrive_second()) self->where_.resume(self->waiter_);
    }
  };

  static void fire_fn(TimerEntry* entry) noexcept {
    auto* self = static_cast<SleepAwaiter*>(entry);
    if (self->rendezvous_.arrive_second()) self->where_.resume(self->waiter_);
  }

  Clock::time_point deadline_;
  const CancelToken* token_;  // null: nothing cancels this sleep
  std::coroutine_handle<> waiter_;
  ResumePoint where_;
  CancelRegistration registration_;
  Rendezvous rendezvous_;
  bool cancelled_ = false;  // written by the deciding callback before it arrives
  bool suspended_ = false;
  bool resumed_ = false;
};
static_assert(address_stable<SleepAwaiter>);

// The token a sleep without an explicit one observes: the current task's (null outside tasks).
const CancelToken* observed_token() noexcept {
  const TaskContext* context = current_task_context();
  return context != nullptr ? &context->observed() : nullptr;
}

Task<void> sleep_until_impl(Clock::time_point deadline, std::optional<CancelToken> token) {
  co_await SleepAwaiter(deadline, token ? &*token : observed_token());
}

Task<void> sleep_for_impl(std::chrono::nanoseconds d, std::optional<CancelToken> token) {
  co_await SleepAwaiter(deadline_after(d), token ? &*token : observed_token());  // timed from the start
}

// One cancel_after(): a heap node that the timer and the token's callback race for.
class Deadline final : private TimerEntry {
 public:
  static void start(const CancelToken& token, Clock::time_point deadline) {
    auto node = std::unique_ptr<Deadline>(new Deadline(token));
    if (!TimerService::instance().add(node.get(), deadline)) {
      token.cancel();  // due meanwhile
      return;
    }
    Deadline* const self = node.release();  // owned by the two arrivals from here on
    try {
      self->registration_ = self->token_.on_cancel(OnCancel{self});  // may run inline
    } catch (...) {
      // No callback: the timer alone decides. Let it cancel the token and free the node.
    }
    self->finish_arrival();
  }

 private:
  explicit Deadline(const CancelToken& token) : TimerEntry(&Deadline::fire_fn), token_(token) {}

  struct OnCancel {
    Deadline* self;
    void operator()() const noexcept {
      if (!TimerService::instance().remove(self)) return;  // the timer took it
      self->finish_arrival();  // may free the node, registration included: touch nothing after
    }
  };

  static void fire_fn(TimerEntry* entry) noexcept {
    auto* self = static_cast<Deadline*>(entry);
    self->token_.cancel();  // our own callback runs here and finds the entry unlinked
    self->finish_arrival();
  }

  void finish_arrival() noexcept {
    if (rendezvous_.arrive_second()) delete this;
  }

  CancelToken token_;
  CancelRegistration registration_;
  Rendezvous rendezvous_;
};
static_assert(address_stable<Deadline>);

}  // namespace
}  // namespace detail

CancelToken current_token() {
  detail::TaskContext* context = detail::current_task_context();
  return context != nullptr ? context->token() : CancelToken{};
}

Task<void> sleep_for(std::chrono::nanoseconds d) { return detail::sleep_for_impl(d, std::nullopt); }
Task<void> sleep_for(std::chrono::nanoseconds d, const CancelToken& token) { return detail::sleep_for_impl(d, token); }
Task<void> sleep_until(std::chrono::steady_clock::time_point deadline) {
  return detail::sleep_until_impl(deadline, std::nullopt);
}
Task<void> sleep_until(std::chrono::steady_clock::time_point deadline, const CancelToken& token) {
  return detail::sleep_until_impl(deadline, token);
}

void cancel_after(const CancelToken& token, std::chrono::nanoseconds d) {
  if (token.is_cancelled()) return;
  if (d <= std::chrono::nanoseconds::zero()) {
    token.cancel();
    return;
  }
  detail::Deadline::start(token, detail::deadline_after(d));
}

std::size_t pending_timers() noexcept { return detail::TimerService::instance().pending(); }

}  // namespace knhk::concurrency
