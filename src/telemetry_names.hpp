// The names the library emits, exactly as registry/concurrency.yaml declares them. The live-check
// test (tests/telemetry_live_check_test.cpp) compares what is emitted under these names with the
// registry, both ways: change both together.
#pragma once

#include <string_view>

namespace knhk::concurrency::detail::names {

// Attributes.
inline constexpr std::string_view kNurseryId = "nursery.id";
inline constexpr std::string_view kNurseryTaskCount = "nursery.task.count";
inline constexpr std::string_view kNurseryMode = "nursery.mode";
inline constexpr std::string_view kTaskId = "task.id";
inline constexpr std::string_view kCancelTokenId = "cancel.token.id";
inline constexpr std::string_view kCancelTokenParentId = "cancel.token.parent_id";
inline constexpr std::string_view kCancelTokenIsCancelled = "cancel.token.is_cancelled";
inline constexpr std::string_view kCancelScopeAutoCancel = "cancel.scope.auto_cancel";
inline constexpr std::string_view kWorkerId = "executor.worker.id";
inline constexpr std::string_view kWorkerCount = "executor.worker.count";
inline constexpr std::string_view kTaskType = "executor.task.type";
inline constexpr std::string_view kQueueType = "executor.queue.type";
inline constexpr std::string_view kStealAttempts = "executor.steal.attempts";

// Enum members.
inline constexpr std::string_view kModeWaitAll = "wait_all";
inline constexpr std::string_view kModeWaitAny = "wait_any";
inline constexpr std::string_view kTaskCpuBound = "cpu_bound";
inline constexpr std::string_view kTaskIoBound = "io_bound";
inline constexpr std::string_view kQueueLocal = "local";
inline constexpr std::string_view kQueueGlobal = "global";
inline constexpr std::string_view kQueueStolen = "stolen";

// Metrics.
inline constexpr std::string_view kTasksSpawned = "knhk.concurrency.executor.tasks.spawned";
inline constexpr std::string_view kTasksCompleted = "knhk.concurrency.executor.tasks.completed";
inline constexpr std::string_view kTasksFailed = "knhk.concurrency.executor.tasks.failed";
inline constexpr std::string_view kTasksStolen = "knhk.concurrency.executor.tasks.stolen";
inline constexpr std::string_view kWorkersIdle = "knhk.concurrency.executor.workers.idle";
inline constexpr std::string_view kQueueDepth = "knhk.concurrency.executor.queue.depth";
inline constexpr std::string_view kSpawnLatency = "knhk.concurrency.executor.spawn.latency";
inline constexpr std::string_view kStealLatency = "knhk.concurrency.executor.steal.latency";
inline constexpr std::string_view kStealAttemptsMetric = "knhk.concurrency.executor.steal.attempts";
inline constexpr std::string_view kCpuUtilization = "knhk.concurrency.executor.cpu.utilization";

// Spans.
inline constexpr std::string_view kSpanNurserySpawn = "knhk.concurrency.nursery.spawn";
inline constexpr std::string_view kSpanNurseryWait = "knhk.concurrency.nursery.wait";
inline constexpr std::string_view kSpanTokenCreate = "knhk.concurrency.cancel.token.create";
inline constexpr std::string_view kSpanTokenCancel = "knhk.concurrency.cancel.token.cancel";
inline constexpr std::string_view kSpanScopeCreate = "knhk.concurrency.cancel.scope.create";
inline constexpr std::string_view kSpanScopeDrop = "knhk.concurrency.cancel.scope.drop";
inline constexpr std::string_view kSpanTaskSpawn = "knhk.concurrency.executor.task.spawn";
inline constexpr std::string_view kSpanTaskExecute = "knhk.concurrency.executor.task.execute";
inline constexpr std::string_view kSpanTaskSteal = "knhk.concurrency.executor.task.steal";
inline constexpr std::string_view kSpanWorkerPark = "knhk.concurrency.executor.worker.park";
inline constexpr std::string_view kSpanShutdown = "knhk.concurrency.executor.shutdown";

}  // namespace knhk::concurrency::detail::names
