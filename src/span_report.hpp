// One call to report a span of the library's own (docs/TELEMETRY.md): it began at `start`
// (trace_begin() or trace_clock_now()) and ends now. Only called behind a tracing() check.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "knhk/concurrency/detail/trace.hpp"
#include "knhk/concurrency/telemetry.hpp"

namespace knhk::concurrency::detail {

inline void report_span(std::string_view name, std::int64_t start,
                        std::initializer_list<telemetry::Attribute> attributes) noexcept {
  telemetry::SpanRecord span;
  span.name = name;
  span.start_unix_ns = start;
  span.end_unix_ns = trace_clock_now();
  for (const telemetry::Attribute& attribute : attributes) span.add(attribute.key, attribute.value);
  emit_span(span);
}

}  // namespace knhk::concurrency::detail
