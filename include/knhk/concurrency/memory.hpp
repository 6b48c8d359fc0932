// The runtime's cache of small blocks (records, coroutine frames, join states, cancellation
// states; docs/ARCHITECTURE.md, "Block pool").
//
// Each thread keeps up to two magazines (2 x 64 blocks) per size class for reuse; past that, blocks
// go to a process-wide depot (at most 4 MiB per size class), from which any thread refills. The
// depot is what a long-running process may want back after a burst.
#pragma once

#include <cstddef>

namespace knhk::concurrency {

/// Bytes of free blocks the process-wide depot holds now (threads' own lists not included).
/// Thread-safe; a snapshot that other threads may change at once.
std::size_t cached_memory_bytes() noexcept;

/// Frees every block in the process-wide depot to the heap and returns how many bytes that was.
/// Threads' own lists are not touched (they are freed when their threads exit). Thread-safe; the
/// runtime goes on working, refilling from the heap.
std::size_t release_cached_memory() noexcept;

}  // namespace knhk::concurrency
