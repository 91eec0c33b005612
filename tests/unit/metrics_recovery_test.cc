// The recovery counters a dashboard reads: every way a node comes back and every switchover
// result exist at 0 from the start (a panel shows 0, not "No data"), and a rejoin attempt that
// could not reach the node's host is counted apart and never becomes the last rejoin duration.
#include <gtest/gtest.h>

#include "metrics/metrics.h"

namespace pgfailover::metrics {
namespace {

core::Decision rejoinDecision(const std::string& node, core::EventResult result,
                              const std::string& method, Millis took) {
  core::Decision d;
  d.events.push_back(core::Event{.kind = core::EventKind::kRejoin,
                                 .node = node,
                                 .result = result,
                                 .reason = "why",
                                 .duration = took,
                                 .method = method});
  return d;
}

TEST(RecoveryMetrics, RejoinAndSwitchoverCountersExistAtZeroFromTheStart) {
  Metrics metrics;
  for (const char* method : {"host_start", "restart", "follow", "rewind", "clone"})
    EXPECT_EQ(
        metrics.value("pgfailover_rejoins_total", {{"method", method}, {"result", "succeeded"}}), 0)
        << method;
  for (const char* method : {"restart", "follow", "rewind", "clone"}) {
    EXPECT_EQ(metrics.value("pgfailover_rejoins_total", {{"method", method}, {"result", "failed"}}),
              0);
    EXPECT_EQ(metrics.value("pgfailover_rejoins_total",
                            {{"method", method}, {"result", "host_unreachable"}}),
              0);
  }
  EXPECT_EQ(metrics.value("pgfailover_switchovers_total", {{"result", "succeeded"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_switchovers_total", {{"result", "failed"}}), 0);
  const std::string text = metrics.render();
  EXPECT_NE(text.find("pgfailover_switchovers_total{result=\"succeeded\"} 0"), std::string::npos)
      << text;
}

TEST(RecoveryMetrics, UnreachableHostIsCountedApartAndNeverTheLastDuration) {
  Metrics metrics;
  metrics.recordDecision(
      rejoinDecision("pg1", core::EventResult::kHostUnreachable, "rewind", Millis{3000}));
  EXPECT_EQ(metrics.value("pgfailover_rejoins_total",
                          {{"method", "rewind"}, {"result", "host_unreachable"}}),
            1);
  EXPECT_FALSE(
      metrics
          .value("pgfailover_last_rejoin_duration_seconds", {{"node", "pg1"}, {"method", "rewind"}})
          .has_value());
  metrics.recordDecision(
      rejoinDecision("pg1", core::EventResult::kSucceeded, "host_start", Millis{1800}));
  EXPECT_EQ(metrics.value("pgfailover_rejoins_total",
                          {{"method", "host_start"}, {"result", "succeeded"}}),
            1);
  EXPECT_DOUBLE_EQ(*metrics.value("pgfailover_last_rejoin_duration_seconds",
                                  {{"node", "pg1"}, {"method", "host_start"}}),
                   1.8);
  // A later one by another method replaces it: one series per node.
  metrics.recordDecision(
      rejoinDecision("pg1", core::EventResult::kSucceeded, "rewind", Millis{4200}));
  EXPECT_FALSE(metrics
                   .value("pgfailover_last_rejoin_duration_seconds",
                          {{"node", "pg1"}, {"method", "host_start"}})
                   .has_value());
  EXPECT_DOUBLE_EQ(*metrics.value("pgfailover_last_rejoin_duration_seconds",
                                  {{"node", "pg1"}, {"method", "rewind"}}),
                   4.2);
}

}  // namespace
}  // namespace pgfailover::metrics
