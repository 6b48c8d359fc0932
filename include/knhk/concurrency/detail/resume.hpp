// How one coroutine hands control to another without growing the stack.
//
// The library's resumption path is symmetric transfer: an await_suspend returns the handle to
// run next, and the compiler jumps to it with a tail call. Clang guarantees that tail call at
// every optimisation level. g++ 12 emits it only with -foptimize-sibling-calls (on at -O2, -O3,
// -Os; off at -O0, -O1, -Og) and never under ASan or TSan, and no macro tells a header which
// flags are on. Without the tail call, each hop nests a native frame and a loop awaiting a million
// tasks overflows the stack. So on g++ the default is a per-thread trampoline: a transfer made by
// the coroutine that a trampoline loop is running is parked in the loop's one-handle slot and
// resumed by the loop once that coroutine has suspended. A build that knows it optimises with
// sibling calls and no ASan/TSan defines KNHK_TAIL_CALL_TRANSFER=1 (this project's own optimised
// g++ builds do; measured with concurrency_benchmarks: 11.5 ns per trivial await against 15.5 ns).
//
// Invariants (trampoline mode):
//  1. Every place where the library resumes a coroutine from ordinary code (sync_wait,
//     cancellation waiters, later the executor) goes through resume_inline(), which runs a
//     trampoline loop and records the coroutine it is running now (`current`).
//  2. A transfer parks only when it is made by `current` of the innermost running loop: that
//     coroutine suspends right after, control returns to the loop, and the loop takes the slot.
//     Any other transfer (a coroutine resumed directly by user code inside a loop) runs a nested
//     loop, which saves and restores the outer loop's state. So a parked handle is always resumed
//     before control leaves the loop that parked it, and no transfer is dropped or deferred past
//     the resume() call that caused it.
#pragma once

#include <coroutine>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(KNHK_TAIL_CALL_TRANSFER)
// chosen by the build
#elif defined(__clang__)
#define KNHK_TAIL_CALL_TRANSFER 1
#else
#define KNHK_TAIL_CALL_TRANSFER 0
#endif

namespace knhk::concurrency::detail {

class TaskContext;  // detail/task_context.hpp

// The context of the task running on this thread (rules in detail/task_context.hpp). Trivially
// destructible and constant-initialised: no TLS guard on access.
inline thread_local TaskContext* tls_task_context = nullptr;

/// The context of the task running on this thread, or nullptr outside any task.
inline TaskContext* current_task_context() noexcept { return tls_task_context; }

// True on the library's timer thread (src/timer_service.cpp). A coroutine that slept off any
// executor continues there, and so does every callback a cancel_after() deadline runs; blocking
// there on anything a timer completes would stop every timer of the process, so the blocking
// waits (sync_wait, JoinHandle::get, block_on) refuse with std::logic_error instead.
inline thread_local bool tls_timer_thread = false;

/// Throws std::logic_error naming `what` when called on the library's timer thread.
inline void refuse_blocking_on_timer_thread(const char* what) {
  if (tls_timer_thread) {
    throw std::logic_error(std::string("knhk: ") + what +
                           " on the timer thread would block every timer; resume the coroutine on an executor first "
                           "(co_await ex.schedule())");
  }
}

/// Sets the thread's task context for a scope and restores the previous one at its end.
class TaskContextScope {
 public:
  explicit TaskContextScope(TaskContext* context) noexcept : saved_(tls_task_context) { tls_task_context = context; }
  ~TaskContextScope() { tls_task_context = saved_; }
  TaskContextScope(const TaskContextScope&) = delete;
  TaskContextScope& operator=(const TaskContextScope&) = delete;

 private:
  TaskContext* saved_;
};

#if KNHK_TAIL_CALL_TRANSFER
inline namespace tail_call_transfer {  // distinct symbols per mode: both may meet in one program

/// Resumes `handle` on this thread; returns when it (and whatever it transferred to) suspends,
/// with the thread's task context as it was before (the coroutine may have changed it).
inline void resume_inline(std::coroutine_handle<> handle) noexcept {
  const TaskContextScope restore(tls_task_context);
  handle.resume();
}

/// What the await_suspend of coroutine `self` returns to continue with `next`.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> /*self*/, std::coroutine_handle<> next) noexcept {
  return next;
}

}  // namespace tail_call_transfer
#else
inline namespace trampoline_transfer {

struct Trampoline {
  bool running = false;
  void* current = nullptr;  // address of the coroutine the innermost loop is running
  std::coroutine_handle<> parked;
};

// Trivially destructible, so access needs no TLS guard.
inline thread_local Trampoline tls_trampoline;

inline void resume_inline(std::coroutine_handle<> handle) noexcept {
  const TaskContextScope restore(tls_task_context);  // as in tail-call mode
  Trampoline& trampoline = tls_trampoline;
  const Trampoline outer = std::exchange(trampoline, Trampoline{true, nullptr, {}});
  while (handle) {
    trampoline.current = handle.address();
    handle.resume();
    handle = std::exchange(trampoline.parked, {});
  }
  trampoline = outer;
}

inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> self, std::coroutine_handle<> next) noexcept {
  Trampoline& trampoline = tls_trampoline;
  if (trampoline.running && trampoline.current == self.address() && !trampoline.parked) {
    trampoline.parked = next;  // Invariant 2: `self` suspends now and the loop takes it
  } else {
    resume_inline(next);  // Invariant 2: a nested loop
  }
  return std::noop_coroutine();
}

}  // namespace trampoline_transfer
#endif

}  // namespace knhk::concurrency::detail
