// Prometheus text exposition and OTLP/JSON for telemetry snapshots and spans, and the periodic
// file exporter. No JSON library: the documents are small and their shape is fixed, so they are
// written directly, with strings escaped per RFC 8259.
#include "knhk/concurrency/telemetry_export.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <random>
#include <system_error>

namespace knhk::concurrency::telemetry {
namespace {

// --- shared formatting ---

void append_double(std::string& out, double value) {
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);  // shortest round trip
  out.append(buffer.data(), result.ptr);
}

template <class Int>
void append_int(std::string& out, Int value) {
  std::array<char, 24> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  out.append(buffer.data(), result.ptr);
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          std::array<char, 8> escape{};
          std::snprintf(escape.data(), escape.size(), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += escape.data();
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// proto3 JSON: 64-bit integers are strings.
template <class Int>
void append_json_int64(std::string& out, Int value) {
  out += '"';
  append_int(out, value);
  out += '"';
}

// --- Prometheus ---

std::string sanitize_prometheus(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  if (!out.empty() && out[0] >= '0' && out[0] <= '9') out.insert(out.begin(), '_');
  return out;
}

// OpenTelemetry's unit-to-suffix mapping, for the units the library uses (and the common ones).
std::string_view unit_suffix(const Metric& metric) {
  const std::string_view unit = metric.unit;
  if (unit.empty() || unit.front() == '{') return {};
  if (unit == "1") return metric.kind == InstrumentKind::gauge ? "ratio" : "";
  if (unit == "ns") return "nanoseconds";
  if (unit == "us") return "microseconds";
  if (unit == "ms") return "milliseconds";
  if (unit == "s") return "seconds";
  if (unit == "By") return "bytes";
  return unit;
}

// Prometheus escaping: a backslash and a newline in HELP text; in label values a double quote too.
void append_escaped(std::string& out, std::string_view text, bool label_value) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && label_value) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void append_attribute_value_text(std::string& out, const AttributeValue& value) {
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    append_int(out, *i);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out += *b ? "true" : "false";
  } else if (const auto* d = std::get_if<double>(&value)) {
    append_double(out, *d);
  } else {
    append_escaped(out, std::get<std::string_view>(value), true);
  }
}

// {a="1",b="x"} plus an optional extra label (le for buckets); nothing when there are none.
void append_labels(std::string& out, const std::vector<Attribute>& attributes, std::string_view extra_key = {},
                   std::string_view extra_value = {}) {
  if (attributes.empty() && extra_key.empty()) return;
  out += '{';
  bool first = true;
  for (const Attribute& a : attributes) {
    if (!first) out += ',';
    first = false;
    out += sanitize_prometheus(a.key);
    out += "=\"";
    append_attribute_value_text(out, a.value);
    out += '"';
  }
  if (!extra_key.empty()) {
    if (!first) out += ',';
    out += extra_key;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

// --- OTLP/JSON ---

void append_otlp_value(std::string& out, const AttributeValue& value) {
  out += '{';
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    out += "\"intValue\":";
    append_json_int64(out, *i);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out += "\"boolValue\":";
    out += *b ? "true" : "false";
  } else if (const auto* d = std::get_if<double>(&value)) {
    out += "\"doubleValue\":";
    append_double(out, *d);
  } else {
    out += "\"stringValue\":";
    append_json_string(out, std::get<std::string_view>(value));
  }
  out += '}';
}

void append_otlp_attributes(std::string& out, std::span<const Attribute> attributes) {
  out += "\"attributes\":[";
  for (std::size_t i = 0; i < attributes.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"key\":";
    append_json_string(out, attributes[i].key);
    out += ",\"value\":";
    append_otlp_value(out, attributes[i].value);
    out += '}';
  }
  out += ']';
}

// {"resource":{...},"scopeX":[{"scope":{...},
void append_resource_and_scope_open(std::string& out, std::string_view service_name, std::string_view scope_key) {
  out += "{\"resource\":{";
  const Attribute service{"service.name", service_name};
  append_otlp_attributes(out, std::span<const Attribute>(&service, 1));
  out += "},\"";
  out += scope_key;
  out += "\":[{\"scope\":{\"name\":";
  append_json_string(out, kScopeName);
  out += ",\"version\":";
  append_json_string(out, library_version());
  out += "},";
}

void append_point_open(std::string& out, const DataPoint& point, const MetricsSnapshot& snapshot) {
  out += '{';
  append_otlp_attributes(out, point.attributes);
  out += ",\"startTimeUnixNano\":";
  append_json_int64(out, snapshot.start_unix_ns);
  out += ",\"timeUnixNano\":";
  append_json_int64(out, snapshot.time_unix_ns);
}

void append_number_point(std::string& out, const DataPoint& point, const MetricsSnapshot& snapshot) {
  append_point_open(out, point, snapshot);
  if (const auto* i = std::get_if<std::int64_t>(&point.value)) {
    out += ",\"asInt\":";
    append_json_int64(out, *i);
  } else {
    out += ",\"asDouble\":";
    append_double(out, std::get<double>(point.value));
  }
  out += '}';
}

void append_histogram_point(std::string& out, const DataPoint& point, const MetricsSnapshot& snapshot) {
  const auto& h = std::get<HistogramValue>(point.value);
  append_point_open(out, point, snapshot);
  out += ",\"count\":";
  append_json_int64(out, h.count);
  out += ",\"sum\":";
  append_double(out, h.sum);
  out += ",\"bucketCounts\":[";
  for (std::size_t i = 0; i < h.counts.size(); ++i) {
    if (i != 0) out += ',';
    append_json_int64(out, h.counts[i]);
  }
  out += "],\"explicitBounds\":[";
  for (std::size_t i = 0; i < h.bounds.size(); ++i) {
    if (i != 0) out += ',';
    append_double(out, h.bounds[i]);
  }
  out += "]}";
}

template <class AppendPoint>
void append_points(std::string& out, const Metric& metric, const MetricsSnapshot& snapshot, AppendPoint append_point) {
  out += "\"dataPoints\":[";
  for (std::size_t i = 0; i < metric.points.size(); ++i) {
    if (i != 0) out += ',';
    append_point(out, metric.points[i], snapshot);
  }
  out += ']';
}

constexpr int kAggregationCumulative = 2;  // AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
constexpr int kSpanKindInternal = 1;       // Span.SpanKind.SPAN_KIND_INTERNAL

void append_hex(std::string& out, std::uint64_t value) {
  std::array<char, 17> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%016llx", static_cast<unsigned long long>(value));
  out += buffer.data();
}

}  // namespace

std::string prometheus_name(const Metric& metric) {
  std::string name = sanitize_prometheus(metric.name);
  const std::string_view suffix = unit_suffix(metric);
  if (!suffix.empty()) {
    std::string tail(1, '_');  // not "_" + ...: g++ 12 warns falsely (-Wrestrict) on that form
    tail += sanitize_prometheus(suffix);
    if (name.size() < tail.size() || name.compare(name.size() - tail.size(), tail.size(), tail) != 0) name += tail;
  }
  if (metric.kind == InstrumentKind::counter) name += "_total";
  return name;
}

std::string to_prometheus(const MetricsSnapshot& snapshot) {
  std::string out;
  for (const Metric& metric : snapshot.metrics) {
    const std::string name = prometheus_name(metric);
    out += "# HELP " + name + ' ';
    append_escaped(out, metric.description, false);
    out += "\n# TYPE " + name + ' ';
    out += metric.kind == InstrumentKind::counter ? "counter"
           : metric.kind == InstrumentKind::gauge ? "gauge"
                                                  : "histogram";
    out += '\n';
    for (const DataPoint& point : metric.points) {
      if (const auto* h = std::get_if<HistogramValue>(&point.value)) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h->counts.size(); ++i) {
          cumulative += h->counts[i];
          std::string le;
          if (i < h->bounds.size()) {
            append_double(le, h->bounds[i]);
          } else {
            le = "+Inf";
          }
          out += name + "_bucket";
          append_labels(out, point.attributes, "le", le);
          out += ' ';
          append_int(out, cumulative);
          out += '\n';
        }
        out += name + "_sum";
        append_labels(out, point.attributes);
        out += ' ';
        append_double(out, h->sum);
        out += '\n' + name + "_count";
        append_labels(out, point.attributes);
        out += ' ';
        append_int(out, h->count);
        out += '\n';
      } else {
        out += name;
        append_labels(out, point.attributes);
        out += ' ';
        if (const auto* i = std::get_if<std::int64_t>(&point.value)) {
          append_int(out, *i);
        } else {
          append_double(out, std::get<double>(point.value));
        }
        out += '\n';
      }
    }
  }
  return out;
}

std::string to_otlp_json(const MetricsSnapshot& snapshot, std::string_view service_name) {
  std::string out = "{\"resourceMetrics\":[";
  append_resource_and_scope_open(out, service_name, "scopeMetrics");
  out += "\"metrics\":[";
  for (std::size_t m = 0; m < snapshot.metrics.size(); ++m) {
    const Metric& metric = snapshot.metrics[m];
    if (m != 0) out += ',';
    out += "{\"name\":";
    append_json_string(out, metric.name);
    out += ",\"description\":";
    append_json_string(out, metric.description);
    out += ",\"unit\":";
    append_json_string(out, metric.unit);
    switch (metric.kind) {
      case InstrumentKind::counter:
        out += ",\"sum\":{";
        append_points(out, metric, snapshot, append_number_point);
        out += ",\"aggregationTemporality\":" + std::to_string(kAggregationCumulative) + ",\"isMonotonic\":true}";
        break;
      case InstrumentKind::gauge:
        out += ",\"gauge\":{";
        append_points(out, metric, snapshot, append_number_point);
        out += '}';
        break;
      case InstrumentKind::histogram:
        out += ",\"histogram\":{";
        append_points(out, metric, snapshot, append_histogram_point);
        out += ",\"aggregationTemporality\":" + std::to_string(kAggregationCumulative) + '}';
        break;
    }
    out += '}';
  }
  out += "]}]}]}";
  return out;
}

std::string to_otlp_json(std::span<const SpanRecord> spans, std::string_view service_name) {
  // Each span is a root of its own trace: the library reports operations, not their causality.
  // Ids are random (never all zero, which OTLP reserves for "invalid").
  std::mt19937_64 random(std::random_device{}());
  const auto nonzero = [&] {
    std::uint64_t v = 0;
    while (v == 0) v = random();
    return v;
  };
  std::string out = "{\"resourceSpans\":[";
  append_resource_and_scope_open(out, service_name, "scopeSpans");
  out += "\"spans\":[";
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const SpanRecord& span = spans[i];
    if (i != 0) out += ',';
    out += "{\"traceId\":\"";
    append_hex(out, nonzero());
    append_hex(out, random());
    out += "\",\"spanId\":\"";
    append_hex(out, nonzero());
    out += "\",\"name\":";
    append_json_string(out, span.name);
    out += ",\"kind\":" + std::to_string(kSpanKindInternal) + ",\"startTimeUnixNano\":";
    append_json_int64(out, span.start_unix_ns);
    out += ",\"endTimeUnixNano\":";
    append_json_int64(out, span.end_unix_ns);
    out += ',';
    append_otlp_attributes(out, span.attributes());
    out += ",\"status\":{}}";
  }
  out += "]}]}]}";
  return out;
}

void write_file_atomically(const std::string& path, std::string_view content) {
  const std::string temporary = path + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) throw std::system_error(errno, std::generic_category(), "knhk: cannot open " + temporary);
  const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    std::remove(temporary.c_str());
    throw std::system_error(EIO, std::generic_category(), "knhk: cannot write " + temporary);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    throw std::system_error(error, std::generic_category(), "knhk: cannot rename " + temporary + " to " + path);
  }
}

PeriodicExporter::PeriodicExporter(const WorkStealingExecutor& executor, std::string path,
                                   std::chrono::milliseconds period, ExportFormat format, std::string service_name)
    : executor_(executor),
      path_(std::move(path)),
      period_(period),
      format_(format),
      service_name_(std::move(service_name)) {
  if (period_ <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("knhk: PeriodicExporter: the period must be positive");
  }
  thread_ = std::thread([this] { run(); });
}

PeriodicExporter::~PeriodicExporter() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  write_once();  // the final state
}

void PeriodicExporter::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) {
    lock.unlock();
    write_once();
    lock.lock();
  }
}

void PeriodicExporter::write_once() noexcept {
  try {
    const MetricsSnapshot snapshot = collect(executor_);
    // OTLP/JSON files are JSON lines (the OTLP file exporter's format): one document, then '\n'.
    write_file_atomically(path_, format_ == ExportFormat::prometheus ? to_prometheus(snapshot)
                                                                     : to_otlp_json(snapshot, service_name_) + '\n');
    writes_.fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace knhk::concurrency::telemetry
