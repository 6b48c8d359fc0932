// Nursery (include/knhk/concurrency/nursery.hpp).
//
// Waiting protocol. One 64-bit word counts the live children (spawned, not yet ended), the
// children that are waking waiters right now ("wakers"), and two flags: kAllWaiting (some wait
// for "no child left" is registered) and kAnyWaiting (some wait for "a child has ended" is).
//  1. Every change of the word is a read-modify-write, so every one continues the release
//     sequence of the ones before it: whoever acquires the word sees the work of every child
//     whose end it counts.
//  2. A waiter registers under the mutex: it sets its flag and, in the same RMW, reads the live
//     count. If what it waits for has happened it goes on (clearing the flag if it set it);
//     otherwise it links itself in the list. So the flags are set exactly when the list holds a
//     waiter of that kind, except inside the mutex.
//  3. A child ends with one CAS that takes its count off and, when that end may wake a waiter
//     (kAnyWaiting is set, or kAllWaiting is set and it is the last child), adds one waker. A waker
//     takes the waiters that are due under the mutex (any-waiters once some child has ended;
//     all-waiters only if the live count, read with acquire under the mutex, is zero; a failed
//     spawn's abandon_child() ends nothing), updates the flags, and releases its waker
//     count as its last touch of the nursery; only then does it resume what it took, whose nodes
//     live in suspended frames nobody else can resume. An end that cannot wake anyone touches
//     nothing after its CAS.
//  4. Nothing can free the nursery while a waker still counts: the destructor first waits until
//     no child is live, then until no waker is (settle()).
//  5. wait_any's "a child has ended" is the ended_any_ flag, set by an ending child before its CAS
//     (relaxed: the CAS releases it). A waiter that registers after that CAS acquires it through
//     the word (1); one that registered before it is found by the CAS (3).
// Failures are appended under the mutex by the failing child, before its CAS; the waits read them
// after their wake-up, so they see every failure of the children they counted.
#include "knhk/concurrency/nursery.hpp"

#include <thread>

#include "knhk/concurrency/detail/trace.hpp"
#include "knhk/concurrency/telemetry.hpp"
#include "span_report.hpp"
#include "telemetry_names.hpp"
#include "timer_service.hpp"

namespace knhk::concurrency {
namespace detail {
namespace {

constexpr std::uint64_t kAllWaiting = 1;
constexpr std::uint64_t kAnyWaiting = 2;
constexpr unsigned kWakerShift = 2;
constexpr std::uint64_t kOneWaker = std::uint64_t{1} << kWakerShift;
constexpr std::uint64_t kWakerMask = std::uint64_t{0xffff} << kWakerShift;  // at most one per thread
constexpr unsigned kLiveShift = 18;
constexpr std::uint64_t kOneChild = std::uint64_t{1} << kLiveShift;

constexpr std::uint64_t live_of(std::uint64_t word) noexcept { return word >> kLiveShift; }

// A coroutine that starts at once and frees its own frame when it ends: the destructor's wait.
struct DetachedCoroutine {
  struct promise_type {
    DetachedCoroutine get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }  // the body cannot throw
  };
};

// Marks `join` done once no child of `core` is left. Its waiter resumes inline on the last
// child's thread (no executor: nothing to refuse it, nothing to queue), after that child's last
// touch of the nursery (protocol 3).
DetachedCoroutine signal_when_idle(NurseryCore& core, JoinState<void>* join) {
  class InlineWait {
   public:
    explicit InlineWait(NurseryCore* nursery) noexcept : core(nursery) {}
    InlineWait(const InlineWait&) = delete;
    InlineWait& operator=(const InlineWait&) = delete;
    [[nodiscard]] bool await_ready() const noexcept { return core->idle(); }
    bool await_suspend(std::coroutine_handle<> waiter) {
      node.handle = waiter;
      node.where = ResumePoint{nullptr, nullptr};  // resume inline, wherever the wake happens
      return core->add_waiter(&node);
    }
    void await_resume() const noexcept {}

   private:
    NurseryCore* core;
    NurseryWaiter node{};
  };
  static_assert(address_stable<InlineWait>);
  co_await InlineWait{&core};
  join->result().set_value();
  join->mark_done();
  join->release();
}

}  // namespace

NurseryCore::NurseryCore(ExecutorState* executor, const CancelToken& parent, ExecutorState* lineage,
                         NurseryOptions options)
    : executor_(executor), lineage_(lineage), policy_(options.policy), parent_(parent), token_(parent.child_token()) {}

bool NurseryCore::idle() const noexcept {
  // acquire: pairs with the children's CAS (protocol 1), so a wait that finds no child sees their work.
  return live_of(word_.load(std::memory_order_acquire)) == 0;
}

bool NurseryCore::cancelled_before_start() const noexcept {
  return token_.is_cancelled() || executor_cancelled(executor_);
}

void NurseryCore::begin_child() noexcept {
  spawned_.fetch_add(1, std::memory_order_relaxed);  // a statistic
  // relaxed: the child's end is ordered after this by the spawn's own hand-over to a worker.
  word_.fetch_add(kOneChild, std::memory_order_relaxed);
}

void NurseryCore::trace_spawn(const NurseryCore* nursery, std::int64_t start, std::size_t children) noexcept {
  report_span(
      names::kSpanNurserySpawn, start,
      {{names::kNurseryId, trace_id_of(nursery)}, {names::kNurseryTaskCount, static_cast<std::int64_t>(children)}});
}

namespace {
void trace_wait(const NurseryCore& core, std::string_view mode, std::int64_t start) noexcept {
  report_span(names::kSpanNurseryWait, start,
              {{names::kNurseryId, trace_id_of(&core)},
               {names::kNurseryMode, mode},
               {names::kNurseryTaskCount, static_cast<std::int64_t>(core.task_count())}});
}
}  // namespace

void NurseryCore::abandon_child() noexcept {
  spawned_.fetch_sub(1, std::memory_order_relaxed);  // a statistic
  leave();                                           // a waiter may have registered meanwhile and counted this child
}

void NurseryCore::child_ended(std::exception_ptr failure) noexcept {
  if (failure) {
    {
      const std::lock_guard lock(mutex_);
      bool expected = false;
      // relaxed: the CAS in leave() publishes it (protocol 5).
      if (ended_any_.compare_exchange_strong(expected, true, std::memory_order_relaxed)) first_failure_ = failure;
      // Moved, not copied: this child holds no reference to the exception once a wait can see it
      // (a waiter may read it, and free it, on another thread).
      failures_.push_back(std::move(failure));
    }
    note_task_failed(executor_);  // after the record: once counted, a failure is listed
    if (policy_ == NurseryPolicy::fail_fast) {
      // Cancelled after leaving: cancel() runs callbacks inline, and one that resumes code which
      // destroys the nursery would otherwise wait for this child, below it on the same stack. The
      // copy keeps the token alive once the nursery may be gone.
      const CancelToken token = token_;
      leave();
      token.cancel();
      return;
    }
  } else if (!ended_any_.load(std::memory_order_relaxed)) {  // relaxed: only saves a store
    ended_any_.store(true, std::memory_order_relaxed);       // protocol 5; several may store true
  }
  leave();
}

bool NurseryCore::must_wake(std::uint64_t word) noexcept {
  return (word & kAnyWaiting) != 0 || ((word & kAllWaiting) != 0 && live_of(word) == 1);
}

void NurseryCore::leave() noexcept {
  std::uint64_t before = word_.load(std::memory_order_relaxed);  // relaxed: the CAS below checks it
  std::uint64_t after = 0;
  do {
    after = before - kOneChild + (must_wake(before) ? kOneWaker : 0);
    // acq_rel: release publishes this child's work to whoever acquires the word (protocol 1);
    // acquire lets a waker see the ends counted before it (the waiter list itself is the mutex's).
  } while (!word_.compare_exchange_weak(before, after, std::memory_order_acq_rel, std::memory_order_relaxed));
  if (must_wake(before)) wake();
}

void NurseryCore::wake() noexcept {
  NurseryWaiter* due = nullptr;
  {
    const std::lock_guard lock(mutex_);
    // acquire: a later child's CAS may have ended the last child; its work must be visible to the
    // all-waiters resumed here (protocol 3).
    const bool none_left = live_of(word_.load(std::memory_order_acquire)) == 0;
    // relaxed: a child's end stores it before its CAS, which the load above (or this waker's own
    // CAS) acquired. False only when this waker is a failed spawn (abandon_child), not an end.
    const bool some_ended = ended_any_.load(std::memory_order_relaxed);
    bool any_left = false;
    bool all_left = false;
    NurseryWaiter** link = &waiters_;
    while (*link != nullptr) {
      NurseryWaiter* waiter = *link;
      if (waiter->any ? (some_ended || none_left) : none_left) {
        *link = waiter->next;
        waiter->next = due;
        due = waiter;
      } else {
        (waiter->any ? any_left : all_left) = true;
        link = &waiter->next;
      }
    }
    // relaxed: under the mutex, which every registration also holds.
    word_.fetch_and(~((any_left ? 0 : kAnyWaiting) | (all_left ? 0 : kAllWaiting)), std::memory_order_relaxed);
  }
  // release: the last touch of the nursery; pairs with the acquire load in settle().
  word_.fetch_sub(kOneWaker, std::memory_order_release);
  while (due != nullptr) {
    NurseryWaiter* const next = due->next;  // read first: resuming may free the node
    due->where.resume(due->handle);
    due = next;
  }
}

bool NurseryCore::add_waiter(NurseryWaiter* waiter) {
  const std::uint64_t flag = waiter->any ? kAnyWaiting : kAllWaiting;
  const std::lock_guard lock(mutex_);
  // acquire: sees the work of every child this count no longer holds (protocol 1). The link below
  // reaches a waker through the mutex, not through this RMW.
  const std::uint64_t before = word_.fetch_or(flag, std::memory_order_acquire);
  // relaxed: an ending child stores ended_any_ before its CAS, which the fetch_or acquired (protocol 5).
  const bool due = live_of(before) == 0 || (waiter->any && ended_any_.load(std::memory_order_relaxed));
  if (due) {
    // relaxed: under the mutex. Only the flag this call set: others' waiters still need it.
    if ((before & flag) == 0) word_.fetch_and(~flag, std::memory_order_relaxed);
    return false;
  }
  waiter->next = waiters_;
  waiters_ = waiter;
  return true;
}

bool NurseryCore::is_failure(const std::exception_ptr& error, const CancelToken& observed) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const Cancelled&) {
    return !observed.is_cancelled();  // a cooperative stop of a cancelled child is no failure
  } catch (...) {
    return true;
  }
}

void NurseryCore::throw_failures(const CancelToken* waiter) {
  std::vector<std::exception_ptr> failures;
  {
    const std::lock_guard lock(mutex_);
    failures.swap(failures_);
  }
  if (!failures.empty()) throw NurseryError(std::move(failures));
  if (cancelled_from_outside(waiter)) throw Cancelled();
}

bool NurseryCore::cancelled_from_outside(const CancelToken* waiter) const noexcept {
  // A waiter whose token is the nursery's own (a nursery_scope body waiting) sees only the
  // nursery's cancellation through it, which is no cancellation from outside.
  const bool waiter_cancelled = waiter != nullptr && !(*waiter == token_) && waiter->is_cancelled();
  return parent_.is_cancelled() || executor_cancelled(executor_) || waiter_cancelled;
}

void NurseryCore::throw_with_body_failure(std::exception_ptr body_error) {
  std::vector<std::exception_ptr> failures;
  {
    const std::lock_guard lock(mutex_);
    failures.swap(failures_);
  }
  if (failures.empty()) std::rethrow_exception(body_error);
  failures.insert(failures.begin(), std::move(body_error));
  throw NurseryError(std::move(failures));
}

std::exception_ptr NurseryCore::take_first_failure() {
  const std::lock_guard lock(mutex_);
  std::exception_ptr first = std::exchange(first_failure_, nullptr);
  if (!first) return nullptr;
  for (auto it = failures_.begin(); it != failures_.end(); ++it) {
    if (*it == first) {
      failures_.erase(it);
      return first;
    }
  }
  return nullptr;  // a wait_all() reported it already
}

void NurseryCore::join_blocking() noexcept {
  auto* join = new JoinState<void>(executor_, token_);  // two references: ours and the signaller's
  signal_when_idle(*this, join);
  join->wait();  // helps on a worker of the executor, blocks elsewhere
  join->release();
}

void NurseryCore::settle() noexcept {
  // acquire: pairs with the release in wake(); after this no child touches the nursery (protocol 4).
  while ((word_.load(std::memory_order_acquire) & kWakerMask) != 0) std::this_thread::yield();
  std::vector<std::exception_ptr> unreported;
  {
    const std::lock_guard lock(mutex_);
    unreported.swap(failures_);
  }
  for (std::exception_ptr& failure : unreported) {
    hand_to_handler(executor_, std::move(failure), "a nursery child failed and no wait reported it");
  }
}

bool NurseryWaitAwaiter::await_suspend(std::coroutine_handle<> waiter) {
  node_.handle = waiter;
  node_.where = ResumePoint::here();
  // Registered before the waiter is published: a child's end may resume it (and reset this) at once.
  if (TaskContext* context = current_task_context()) forward_ = context->observed().on_cancel(CancelNursery{core_});
  return core_->add_waiter(&node_);
}

Task<void> join_children(NurseryCore& core) { co_await NurseryWaitAwaiter(&core, false); }

namespace {

// The task's own token (made now if the task had not asked for it yet), so that cancelling what
// current_token() returns in this task cancels the nursery too; outside tasks, the executor's.
const CancelToken& default_parent(WorkStealingExecutor& ex) {
  if (TaskContext* context = current_task_context()) return context->token();
  return ex.token();
}

// Whether the nursery's token (a child of `parent`) descends from the executor's token.
ExecutorState* lineage_of(WorkStealingExecutor& ex, const CancelToken& parent, bool is_default) noexcept {
  ExecutorState* const executor = NurseryAccess::executor(ex);
  if (parent == ex.token()) return executor;
  if (is_default) {
    const TaskContext* context = current_task_context();
    return context != nullptr && context->lineage() == executor ? executor : nullptr;
  }
  return nullptr;  // a parent of the caller's: unknown
}

}  // namespace
}  // namespace detail

Nursery::Nursery(WorkStealingExecutor& ex, NurseryPolicy policy) : Nursery(ex, NurseryOptions{policy}) {}

Nursery::Nursery(WorkStealingExecutor& ex, NurseryOptions options)
    : ex_(ex),
      core_(detail::NurseryAccess::executor(ex), detail::default_parent(ex),
            detail::lineage_of(ex, detail::default_parent(ex), true), options) {}

Nursery::Nursery(WorkStealingExecutor& ex, const CancelToken& parent, NurseryPolicy policy)
    : Nursery(ex, parent, NurseryOptions{policy}) {}

Nursery::Nursery(WorkStealingExecutor& ex, const CancelToken& parent, NurseryOptions options)
    : ex_(ex), core_(detail::NurseryAccess::executor(ex), parent, detail::lineage_of(ex, parent, false), options) {}

Nursery::~Nursery() {
  if (!core_.idle()) {
    cancel();
    // On the timer thread, the children waited for below may sleep on timers only it would fire:
    // the wheel goes to a new thread first (src/timer_service.hpp, Protocol 4).
    detail::TimerService::hand_off();
    core_.join_blocking();
  }
  core_.settle();
}

Task<void> Nursery::wait_all() {
  const std::int64_t trace_start = detail::trace_begin();
  // The awaiting task's token: its cancellation, forwarded to the nursery while waiting, is a
  // cancellation from outside too. It belongs to the awaiting task's context, which outlives this.
  const detail::TaskContext* const waiter = detail::current_task_context();
  co_await detail::NurseryWaitAwaiter(&core_, false);
  if (trace_start != 0) detail::trace_wait(core_, detail::names::kModeWaitAll, trace_start);
  core_.throw_failures(waiter != nullptr ? &waiter->observed() : nullptr);
}

Task<void> Nursery::wait_any() {
  const std::int64_t trace_start = detail::trace_begin();
  co_await detail::NurseryWaitAwaiter(&core_, true);
  if (core_.task_count() != 0) cancel();  // with no children there is nothing to stop
  co_await detail::NurseryWaitAwaiter(&core_, false);
  if (trace_start != 0) detail::trace_wait(core_, detail::names::kModeWaitAny, trace_start);
  if (std::exception_ptr first = core_.take_first_failure()) std::rethrow_exception(first);
}

}  // namespace knhk::concurrency
