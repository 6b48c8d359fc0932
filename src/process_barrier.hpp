// An asymmetric store-load barrier for the whole process, from membarrier(2).
//
// A Dekker pair (each side stores, then loads what the other stored) needs a store-load fence on
// both sides. When one side runs far more often than the other, membarrier moves the whole cost
// to the rare side: the frequent side only keeps the compiler from reordering (a signal fence),
// and the rare side calls process_barrier_heavy(), which makes every thread of the process that
// is running at that moment execute a full memory barrier (an interrupt to the processors that
// run them; a thread that is not running has been through a context switch, itself a barrier).
// Whatever point in the frequent side's store-then-load the barrier lands on, either its load sees
// the rare side's store or the rare side's later load sees its store.
//
// Needs Linux 4.14 (MEMBARRIER_CMD_PRIVATE_EXPEDITED) and a registration per process, made by the
// first call of process_barrier_available(). Where it is missing (an older kernel, a seccomp
// filter that refuses the call), callers keep an ordinary fence on the frequent side.
#pragma once

namespace knhk::concurrency::detail {

// Whether process_barrier_heavy() works in this process. Registers on the first call; thread-safe.
bool process_barrier_available() noexcept;

// A full memory barrier on every running thread of the process. Only after
// process_barrier_available() returned true.
void process_barrier_heavy() noexcept;

}  // namespace knhk::concurrency::detail
