// The registry live check: registry/concurrency.yaml against what a real executor, running a
// nursery workload under a trace sink, actually emits. Both ways: a name emitted but not declared
// fails, and so does a name declared but never emitted; the message names it. Compared: metric
// names, instruments, units and attributes; span names and attributes; attribute types; enum
// values (after Weaver's live-check, done in-process).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "knhk/concurrency.hpp"
#include "support/telemetry_workload.hpp"

namespace kc = knhk::concurrency;
namespace kt = knhk::concurrency::telemetry;

namespace {

struct DeclaredAttribute {
  std::string type;               // int, double, boolean, string, or "enum"
  std::set<std::string> members;  // enum values
};

struct DeclaredSignal {
  std::string instrument;  // metrics only
  std::string unit;        // metrics only
  std::set<std::string> attributes;
};

struct Registry {
  std::map<std::string, DeclaredAttribute> attributes;
  std::map<std::string, DeclaredSignal> metrics;
  std::map<std::string, DeclaredSignal> spans;
};

Registry load_registry(const std::string& path) {
  const YAML::Node root = YAML::LoadFile(path);
  Registry r;
  for (const YAML::Node& group : root["groups"]) {
    const std::string type = group["type"].as<std::string>();
    const std::string id = group["id"].as<std::string>();
    if (type == "attribute_group") {
      for (const YAML::Node& a : group["attributes"]) {
        DeclaredAttribute declared;
        if (a["type"].IsMap()) {
          declared.type = "enum";
          for (const YAML::Node& m : a["type"]["members"]) declared.members.insert(m["value"].as<std::string>());
        } else {
          declared.type = a["type"].as<std::string>();
        }
        r.attributes[a["id"].as<std::string>()] = declared;
      }
      continue;
    }
    DeclaredSignal signal;
    if (group["attributes"]) {
      for (const YAML::Node& a : group["attributes"]) signal.attributes.insert(a["ref"].as<std::string>());
    }
    if (type == "metric") {
      signal.instrument = group["instrument"].as<std::string>();
      signal.unit = group["unit"].as<std::string>();
      r.metrics[group["metric_name"].as<std::string>()] = signal;
    } else if (type == "span") {
      const std::string prefix = "span.";
      r.spans[id.substr(0, prefix.size()) == prefix ? id.substr(prefix.size()) : id] = signal;
    }
  }
  return r;
}

// What was emitted, in the registry's terms.
struct Observed {
  std::map<std::string, DeclaredSignal> metrics;
  std::map<std::string, DeclaredSignal> spans;
  std::map<std::string, std::set<std::string>> attribute_types;  // "int", "boolean", "double", "string"
  std::map<std::string, std::set<std::string>> string_values;
};

std::string instrument_name(kt::InstrumentKind kind) {
  switch (kind) {
    case kt::InstrumentKind::counter:
      return "counter";
    case kt::InstrumentKind::gauge:
      return "gauge";
    case kt::InstrumentKind::histogram:
      return "histogram";
  }
  return "?";
}

void observe_attribute(Observed& o, DeclaredSignal& signal, const kt::Attribute& a) {
  const std::string key(a.key);
  signal.attributes.insert(key);
  if (const auto* s = std::get_if<std::string_view>(&a.value)) {
    o.attribute_types[key].insert("string");
    o.string_values[key].insert(std::string(*s));
  } else if (std::holds_alternative<std::int64_t>(a.value)) {
    o.attribute_types[key].insert("int");
  } else if (std::holds_alternative<bool>(a.value)) {
    o.attribute_types[key].insert("boolean");
  } else {
    o.attribute_types[key].insert("double");
  }
}

Observed observe(const knhk::test::Emitted& emitted) {
  Observed o;
  for (const kt::Metric& m : emitted.metrics.metrics) {
    DeclaredSignal& signal = o.metrics[std::string(m.name)];
    signal.instrument = instrument_name(m.kind);
    signal.unit = m.unit;
    for (const kt::DataPoint& p : m.points) {
      for (const kt::Attribute& a : p.attributes) observe_attribute(o, signal, a);
    }
  }
  for (const kt::SpanRecord& s : emitted.spans) {
    DeclaredSignal& signal = o.spans[std::string(s.name)];
    for (const kt::Attribute& a : s.attributes()) observe_attribute(o, signal, a);
  }
  return o;
}

void compare_signals(const char* kind, const std::map<std::string, DeclaredSignal>& declared,
                     const std::map<std::string, DeclaredSignal>& emitted, std::vector<std::string>& problems) {
  for (const auto& [name, e] : emitted) {
    const auto d = declared.find(name);
    if (d == declared.end()) {
      problems.push_back(std::string(kind) + " emitted but not declared: " + name);
      continue;
    }
    if (d->second.instrument != e.instrument) {
      problems.push_back(std::string(kind) + " " + name + ": instrument " + e.instrument + ", declared " +
                         d->second.instrument);
    }
    if (d->second.unit != e.unit) {
      problems.push_back(std::string(kind) + " " + name + ": unit '" + e.unit + "', declared '" + d->second.unit + "'");
    }
    for (const std::string& a : e.attributes) {
      if (d->second.attributes.count(a) == 0) {
        problems.push_back(std::string(kind) + " " + name + ": attribute emitted but not declared on it: " + a);
      }
    }
    for (const std::string& a : d->second.attributes) {
      if (e.attributes.count(a) == 0) {
        problems.push_back(std::string(kind) + " " + name + ": attribute declared but never emitted on it: " + a);
      }
    }
  }
  for (const auto& [name, d] : declared) {
    if (emitted.count(name) == 0) problems.push_back(std::string(kind) + " declared but never emitted: " + name);
  }
}

std::vector<std::string> live_check(const Registry& registry, const Observed& observed) {
  std::vector<std::string> problems;
  compare_signals("metric", registry.metrics, observed.metrics, problems);
  compare_signals("span", registry.spans, observed.spans, problems);
  for (const auto& [key, types] : observed.attribute_types) {
    const auto d = registry.attributes.find(key);
    if (d == registry.attributes.end()) {
      problems.push_back("attribute emitted but not declared: " + key);
      continue;
    }
    const std::string expected = d->second.type == "enum" ? "string" : d->second.type;
    for (const std::string& t : types) {
      if (t != expected) problems.push_back("attribute " + key + ": emitted as " + t + ", declared " + d->second.type);
    }
  }
  for (const auto& [key, d] : registry.attributes) {
    if (observed.attribute_types.count(key) == 0) problems.push_back("attribute declared but never emitted: " + key);
    if (d.type != "enum") continue;
    const auto values = observed.string_values.find(key);
    for (const std::string& member : d.members) {
      if (values == observed.string_values.end() || values->second.count(member) == 0) {
        problems.push_back("enum value declared but never emitted: " + key + "=" + member);
      }
    }
    if (values == observed.string_values.end()) continue;
    for (const std::string& v : values->second) {
      if (d.members.count(v) == 0) problems.push_back("enum value emitted but not declared: " + key + "=" + v);
    }
  }
  return problems;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += "  " + line + "\n";
  return out;
}

class TelemetryLiveCheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry(load_registry(KNHK_REGISTRY_PATH));
    observed_ = new Observed(observe(knhk::test::run_telemetry_workload()));
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete observed_;
  }
  static Registry* registry_;
  static Observed* observed_;
};
Registry* TelemetryLiveCheck::registry_ = nullptr;
Observed* TelemetryLiveCheck::observed_ = nullptr;

TEST_F(TelemetryLiveCheck, RegistryDeclaresEveryRequiredName) {
  // The names issue 7 requires, so that the registry cannot shrink to match a shrinking library.
  for (const char* a :
       {"nursery.id", "nursery.task.count", "nursery.mode", "task.id", "cancel.token.id", "cancel.token.parent_id",
        "cancel.token.is_cancelled", "cancel.scope.auto_cancel", "executor.worker.id", "executor.worker.count",
        "executor.task.type", "executor.queue.type", "executor.steal.attempts"}) {
    EXPECT_EQ(registry_->attributes.count(a), 1U) << a;
  }
  EXPECT_EQ(registry_->attributes.at("executor.queue.type").members,
            (std::set<std::string>{"local", "global", "stolen"}));
  EXPECT_EQ(registry_->attributes.at("executor.task.type").members, (std::set<std::string>{"cpu_bound", "io_bound"}));
  EXPECT_EQ(registry_->attributes.at("nursery.mode").members, (std::set<std::string>{"wait_all", "wait_any"}));
  const std::string m = "knhk.concurrency.executor.";
  EXPECT_EQ(registry_->metrics.size(), 10U);
  EXPECT_EQ(registry_->metrics.at(m + "tasks.spawned").instrument, "counter");
  EXPECT_EQ(registry_->metrics.at(m + "spawn.latency").unit, "ns");
  EXPECT_EQ(registry_->metrics.at(m + "cpu.utilization").instrument, "gauge");
  EXPECT_EQ(registry_->spans.size(), 11U);
}

TEST_F(TelemetryLiveCheck, EmittedTelemetryMatchesTheRegistryBothWays) {
  const std::vector<std::string> problems = live_check(*registry_, *observed_);
  EXPECT_TRUE(problems.empty()) << "registry/concurrency.yaml and the emitted telemetry differ:\n" << joined(problems);
}

TEST_F(TelemetryLiveCheck, AMetricMissingFromTheRegistryFailsWithItsName) {
  Registry shrunk = *registry_;
  shrunk.metrics.erase("knhk.concurrency.executor.steal.latency");
  const std::string problems = joined(live_check(shrunk, *observed_));
  EXPECT_NE(problems.find("metric emitted but not declared: knhk.concurrency.executor.steal.latency"),
            std::string::npos)
      << problems;
}

TEST_F(TelemetryLiveCheck, ASpanDeclaredButNeverEmittedFailsWithItsName) {
  Registry grown = *registry_;
  grown.spans["knhk.concurrency.executor.task.teleport"] = DeclaredSignal{};
  const std::string problems = joined(live_check(grown, *observed_));
  EXPECT_NE(problems.find("span declared but never emitted: knhk.concurrency.executor.task.teleport"),
            std::string::npos)
      << problems;
}

TEST_F(TelemetryLiveCheck, AWrongUnitOrInstrumentOrEnumValueFailsWithItsName) {
  Registry changed = *registry_;
  changed.metrics.at("knhk.concurrency.executor.spawn.latency").unit = "us";
  changed.metrics.at("knhk.concurrency.executor.workers.idle").instrument = "counter";
  changed.attributes.at("executor.queue.type").members.erase("stolen");
  const std::string problems = joined(live_check(changed, *observed_));
  EXPECT_NE(problems.find("knhk.concurrency.executor.spawn.latency: unit 'ns', declared 'us'"), std::string::npos)
      << problems;
  EXPECT_NE(problems.find("knhk.concurrency.executor.workers.idle: instrument gauge, declared counter"),
            std::string::npos)
      << problems;
  EXPECT_NE(problems.find("enum value emitted but not declared: executor.queue.type=stolen"), std::string::npos)
      << problems;
}

}  // namespace
