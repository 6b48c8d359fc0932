// Where the library reports spans (telemetry.hpp): a check that costs one relaxed load and one
// predictable branch while no TraceSink is installed, and the out-of-line report behind it.
#pragma once

#include <atomic>
#include <cstdint>

namespace knhk::concurrency::telemetry {
class TraceSink;
struct SpanRecord;
}  // namespace knhk::concurrency::telemetry

namespace knhk::concurrency::detail {

/// The installed sink (src/telemetry.cpp); written only by telemetry::install_trace_sink().
extern std::atomic<telemetry::TraceSink*> g_trace_sink;

/// Whether a sink is installed. relaxed: a hint to skip the work of building a span; emit_span()
/// re-reads the sink under its own protocol, so a stale answer at worst builds one span for
/// nothing or misses one around an install.
inline bool tracing() noexcept { return g_trace_sink.load(std::memory_order_relaxed) != nullptr; }

/// Nanoseconds since the Unix epoch, the clock of span timestamps: system_clock read once, then
/// advanced by steady_clock, so span times never run backwards.
std::int64_t trace_clock_now() noexcept;

/// The start of a span when tracing, else 0 (no clock read).
inline std::int64_t trace_begin() noexcept { return tracing() ? trace_clock_now() : 0; }

/// Hands `span` to the installed sink, if any (src/telemetry.cpp).
void emit_span(const telemetry::SpanRecord& span) noexcept;

/// An object's id in spans: its address.
inline std::int64_t trace_id_of(const void* object) noexcept {
  return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(object));
}

}  // namespace knhk::concurrency::detail
