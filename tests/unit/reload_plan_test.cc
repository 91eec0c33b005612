// SIGHUP's decision: which changed keys the running daemon takes and which need a restart.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/reload.h"
#include "runtime/tick_loop.h"

namespace pgfailover::runtime {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json base() {
  return {
      {"nodes", {{{"name", "pg1"}, {"host", "10.0.0.1"}}, {{"name", "pg2"}, {"host", "10.0.0.2"}}}},
      {"failover", {{"confirmed_down_timeout_ms", 3000}, {"unresponsive_timeout_ms", 10000}}},
      {"log", {{"level", "info"}}}};
}

config::Config load(const json& text) {
  auto result = config::parseConfig(text.dump(), [](const std::string&) { return std::nullopt; });
  EXPECT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors.front());
  return result.ok() ? *result.config : config::Config{};
}

bool has(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

TEST(ReloadPlan, UnchangedFileChangesNothing) {
  auto plan = planReload(load(base()), load(base()));
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_TRUE(plan.refused.empty());
}

TEST(ReloadPlan, FailoverTimeoutsAndLogLevelAreApplied) {
  auto next = base();
  next["failover"]["unresponsive_timeout_ms"] = 20000;
  next["failover"]["switchover_timeout_ms"] = 45000;
  next["log"]["level"] = "debug";
  auto plan = planReload(load(base()), load(next));
  EXPECT_TRUE(plan.refused.empty()) << plan.refused.front();
  EXPECT_TRUE(has(plan.applied, "failover.unresponsive_timeout_ms"));
  EXPECT_TRUE(has(plan.applied, "failover.switchover_timeout_ms"));
  EXPECT_TRUE(has(plan.applied, "log.level"));
  EXPECT_EQ(plan.merged.failover.unresponsive_timeout, 20000ms);
  EXPECT_EQ(plan.merged.log.level, "debug");
  EXPECT_EQ(policyFromConfig(plan.merged).unresponsive_timeout, 20000ms);
}

TEST(ReloadPlan, NodeListAndPortsAreRefusedAndKeepTheirRunningValues) {
  auto next = base();
  next["nodes"].push_back({{"name", "pg3"}, {"host", "10.0.0.3"}});
  next["http"] = {{"port", 9009}};
  next["failover"]["unresponsive_timeout_ms"] = 12000;
  const auto running = load(base());
  auto plan = planReload(running, load(next));
  EXPECT_TRUE(has(plan.refused, "nodes"));
  EXPECT_TRUE(has(plan.refused, "http.port"));
  // One entry for the node list, not one per key of the new node.
  EXPECT_EQ(std::count_if(plan.refused.begin(), plan.refused.end(),
                          [](const std::string& k) { return k.rfind("nodes", 0) == 0; }),
            1);
  EXPECT_EQ(plan.merged.nodes.size(), 2u);
  EXPECT_EQ(plan.merged.http.port, running.http.port);
  // The safe part of the same file still applies.
  EXPECT_TRUE(has(plan.applied, "failover.unresponsive_timeout_ms"));
}

TEST(ReloadPlan, ChangedNodeAddressIsRefusedByItsKey) {
  auto next = base();
  next["nodes"][1]["host"] = "10.0.0.9";
  auto plan = planReload(load(base()), load(next));
  EXPECT_TRUE(has(plan.refused, "nodes[1].host"));
  EXPECT_EQ(plan.merged.nodes[1].host, "10.0.0.2");
}

TEST(ReloadPlan, TimeoutsThatWouldEndBeforeTheRunningLeaseAreRefused) {
  // The running lease is 2500 ms (min(3000, 10000, 5000) - 500); a 2600 ms confirmed-down
  // timeout would let pgfailover promote while the old primary still holds it.
  auto next = base();
  next["failover"]["confirmed_down_timeout_ms"] = 2600;
  next["failover"]["host_lost_timeout_ms"] = 2600;
  next["probe"] = {{"primary_lease_ms", 2000}};
  auto plan = planReload(load(base()), load(next));
  EXPECT_TRUE(has(plan.refused, "failover.confirmed_down_timeout_ms"));
  EXPECT_TRUE(has(plan.refused, "probe.primary_lease_ms"));
  EXPECT_EQ(plan.merged.failover.confirmed_down_timeout, 3000ms);
  EXPECT_TRUE(plan.applied.empty());
}

TEST(ReloadPlan, ProbeSettingsNeedARestart) {
  auto next = base();
  next["probe"] = {{"connect_timeout_ms", 2000}, {"interval_ms", 500}};
  auto plan = planReload(load(base()), load(next));
  EXPECT_TRUE(has(plan.refused, "probe.connect_timeout_ms"));
  EXPECT_TRUE(has(plan.refused, "probe.interval_ms"));
  EXPECT_TRUE(plan.applied.empty());
}

}  // namespace
}  // namespace pgfailover::runtime
