// How one coroutine hands control to another without growing the stack.
//
// The library's resumption path is symmetric transfer: an await_suspend returns the handle to
// run next, and the compiler jumps to it with a tail call. Clang guarantees that tail call at
// every optimisation level; g++ 12 emits it only when optimising and without ASan or TSan. Where
// it is not guaranteed, a chain of transfers would nest one native frame per hop, and a loop
// awaiting a million tasks would overflow the stack. There, transfer_to() falls back to a
// per-thread trampoline: a transfer made under a running trampoline is parked in its one-handle
// slot and resumed by the trampoline's loop after the current coroutine suspends.
//
// Invariants (trampoline mode):
//  1. Every place where the library itself resumes a coroutine from ordinary code (sync_wait,
//     cancellation waiters, later the executor) goes through resume_inline(), which runs a
//     trampoline loop. So a transfer parked in the slot is taken by the loop that resumed the
//     parking coroutine, as soon as that coroutine suspends.
//  2. A transfer finds the slot empty before parking into it; if it is occupied (a coroutine
//     resumed by foreign code inside a loop already parked a transfer), it runs a nested loop
//     instead, which saves and restores the outer slot. No transfer is ever dropped.
#pragma once

#include <coroutine>
#include <utility>

#if defined(__clang__)
#define KNHK_TAIL_CALL_TRANSFER 1
#elif defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define KNHK_TAIL_CALL_TRANSFER 1
#else
#define KNHK_TAIL_CALL_TRANSFER 0
#endif

namespace knhk::concurrency::detail {

#if KNHK_TAIL_CALL_TRANSFER

/// Resumes `handle` on this thread; returns when it (and whatever it transferred to) suspends.
inline void resume_inline(std::coroutine_handle<> handle) noexcept { handle.resume(); }

/// What an await_suspend returns to continue with `next`.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> next) noexcept { return next; }

#else

struct Trampoline {
  bool running = false;
  std::coroutine_handle<> parked;
};

// Trivially destructible, so access needs no TLS guard.
inline thread_local Trampoline tls_trampoline;

inline void resume_inline(std::coroutine_handle<> handle) noexcept {
  Trampoline& trampoline = tls_trampoline;
  const bool outer_running = std::exchange(trampoline.running, true);
  const std::coroutine_handle<> outer_parked = std::exchange(trampoline.parked, {});
  while (handle) {
    handle.resume();
    handle = std::exchange(trampoline.parked, {});
  }
  trampoline.running = outer_running;
  trampoline.parked = outer_parked;
}

inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> next) noexcept {
  Trampoline& trampoline = tls_trampoline;
  if (trampoline.running && !trampoline.parked) {
    trampoline.parked = next;  // Invariant 1: the loop below us resumes it
  } else {
    resume_inline(next);  // Invariant 2
  }
  return std::noop_coroutine();
}

#endif

}  // namespace knhk::concurrency::detail
