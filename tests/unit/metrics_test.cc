// The metrics as the loop feeds them: gauges from a snapshot, probe samples once per probe,
// counters from events, and a render() that Prometheus can parse.
#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace pgfailover::metrics {
namespace {

using core::ClusterState;
using core::NodeRole;
using core::NodeSnapshot;
using core::Snapshot;
using std::chrono::milliseconds;

const SteadyTime kStart = SteadyTime{} + std::chrono::hours(1);
const WallTime kWall = WallTime{} + std::chrono::seconds(1714567890);

NodeSnapshot node(std::string name, NodeRole role, bool in_recovery) {
  NodeSnapshot n;
  n.name = std::move(name);
  n.host = "127.0.0.1";
  n.port = 5432;
  n.role = role;
  n.observation.probed = true;
  n.observation.probed_at = kStart;
  n.observation.probe_duration = milliseconds(3);
  n.observation.reachable = true;
  n.observation.in_recovery = in_recovery;
  n.observation.timeline = 2;
  return n;
}

Snapshot snapshotAt(std::uint64_t tick) {
  Snapshot snapshot;
  snapshot.ready = true;
  snapshot.tick = tick;
  snapshot.tick_at = kStart + milliseconds(1000 * tick);
  snapshot.tick_at_wall = kWall + milliseconds(1000 * tick);
  snapshot.cluster_name = "main";
  snapshot.state = ClusterState::kHealthy;
  snapshot.primary = 0;
  snapshot.nodes = {node("pg1", NodeRole::kPrimary, false), node("pg2", NodeRole::kReplica, true)};
  for (auto& n : snapshot.nodes) n.observation.probed_at = snapshot.tick_at - milliseconds(5);
  snapshot.nodes[1].lag_bytes = 4096;
  snapshot.nodes[1].lag_seconds = 0.25;
  return snapshot;
}

TEST(Metrics, BuildInfoAndZeroCountersExistBeforeTheFirstTick) {
  Metrics metrics;
  EXPECT_EQ(metrics.value("pgfailover_build_info", {{"version", PGFAILOVER_VERSION}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_failovers_total", {{"result", "succeeded"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_failovers_total", {{"result", "failed"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_vetoed_failovers_total",
                          {{"reason", core::toString(core::VetoReason::kReplicaLagging)}}),
            0);
  EXPECT_EQ(metrics.value("pgfailover_cluster_state", {{"state", "initializing"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_ready", {}), 0);
}

TEST(Metrics, ObserveTickSetsNodeAndClusterGauges) {
  Metrics metrics;
  metrics.observeTick(snapshotAt(1));
  EXPECT_EQ(metrics.value("pgfailover_ready", {}), 1);
  EXPECT_EQ(metrics.value("pgfailover_cluster_state", {{"state", "healthy"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_cluster_state", {{"state", "initializing"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_split_brain", {}), 0);
  EXPECT_EQ(metrics.value("pgfailover_node_up", {{"node", "pg1"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_node_role", {{"node", "pg1"}, {"role", "primary"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_node_role", {{"node", "pg1"}, {"role", "replica"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_node_role", {{"node", "pg2"}, {"role", "replica"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_node_timeline", {{"node", "pg2"}}), 2);
  EXPECT_EQ(metrics.value("pgfailover_replication_lag_bytes", {{"node", "pg2"}}), 4096);
  EXPECT_EQ(metrics.value("pgfailover_replication_lag_seconds", {{"node", "pg2"}}), 0.25);
  // The primary has no lag: absent, not 0.
  EXPECT_EQ(metrics.value("pgfailover_replication_lag_bytes", {{"node", "pg1"}}), std::nullopt);
  EXPECT_EQ(metrics.value("pgfailover_ticks_total", {}), 1);
  EXPECT_EQ(metrics.value("pgfailover_last_tick_timestamp_seconds", {}), 1714567891.0);
  EXPECT_EQ(metrics.value("pgfailover_failover_timeout_remaining_seconds", {}), 0);
}

TEST(Metrics, RoleGaugesCoverEveryRole) {
  Metrics metrics;
  metrics.observeTick(snapshotAt(1));
  for (auto role : {NodeRole::kPrimary, NodeRole::kReplica, NodeRole::kUnknown,
                    NodeRole::kNeedsFencing, NodeRole::kFenced})
    EXPECT_TRUE(metrics.value("pgfailover_node_role", {{"node", "pg1"}, {"role", toString(role)}}))
        << toString(role);
  for (auto state : core::kAllStates)
    EXPECT_TRUE(metrics.value("pgfailover_cluster_state", {{"state", toString(state)}}))
        << toString(state);
}

TEST(Metrics, StateChangesMoveTheOneHotGauges) {
  Metrics metrics;
  metrics.observeTick(snapshotAt(1));
  Snapshot failing = snapshotAt(2);
  failing.state = ClusterState::kPrimaryFailing;
  failing.split_brain = true;
  failing.timeout = core::RunningTimeout{core::TimeoutKind::kConfirmedDown, milliseconds(3000),
                                         milliseconds(1000)};
  failing.nodes[0].role = NodeRole::kUnknown;
  failing.nodes[0].observation.reachable = false;
  failing.nodes[0].observation.failure = core::ProbeFailure::kRefused;
  failing.nodes[1].lag_bytes.reset();
  metrics.observeTick(failing);
  EXPECT_EQ(metrics.value("pgfailover_cluster_state", {{"state", "healthy"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_cluster_state", {{"state", "primary_failing"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_split_brain", {}), 1);
  EXPECT_EQ(metrics.value("pgfailover_failover_timeout_remaining_seconds", {}), 2.0);
  EXPECT_EQ(metrics.value("pgfailover_node_up", {{"node", "pg1"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_node_role", {{"node", "pg1"}, {"role", "primary"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_node_role", {{"node", "pg1"}, {"role", "unknown"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_node_timeline", {{"node", "pg1"}}), std::nullopt);
  EXPECT_EQ(metrics.value("pgfailover_replication_lag_bytes", {{"node", "pg2"}}), std::nullopt);
}

TEST(Metrics, EachProbeIsSampledOnceEvenIfPublishedTwice) {
  Metrics metrics;
  Snapshot first = snapshotAt(1);
  first.nodes[0].observation.reachable = false;
  first.nodes[0].observation.failure = core::ProbeFailure::kTimeout;
  metrics.observeTick(first);
  Snapshot repeated = first;  // same probes, a later tick
  repeated.tick = 2;
  metrics.observeTick(repeated);
  EXPECT_EQ(metrics.value("pgfailover_probe_duration_seconds", {{"node", "pg1"}}), 1);
  EXPECT_EQ(
      metrics.value("pgfailover_probe_failures_total", {{"node", "pg1"}, {"reason", "timeout"}}),
      1);
  EXPECT_EQ(metrics.value("pgfailover_ticks_total", {}), 2);

  Snapshot next = snapshotAt(3);
  next.nodes[0].observation.reachable = false;
  next.nodes[0].observation.failure = core::ProbeFailure::kRefused;
  metrics.observeTick(next);
  EXPECT_EQ(metrics.value("pgfailover_probe_duration_seconds", {{"node", "pg1"}}), 2);
  EXPECT_EQ(metrics.value("pgfailover_probe_duration_seconds", {{"node", "pg2"}}), 2);
  EXPECT_EQ(
      metrics.value("pgfailover_probe_failures_total", {{"node", "pg1"}, {"reason", "refused"}}),
      1);
  EXPECT_EQ(
      metrics.value("pgfailover_probe_failures_total", {{"node", "pg2"}, {"reason", "refused"}}),
      0);
  EXPECT_EQ(metrics.value("pgfailover_ticks_total", {}), 3);
}

TEST(Metrics, AnUnprobedNodeIsDownAndUnsampled) {
  Metrics metrics;
  Snapshot snapshot = snapshotAt(1);
  snapshot.ready = false;
  snapshot.nodes[1].observation = core::NodeObservation{};
  metrics.observeTick(snapshot);
  EXPECT_EQ(metrics.value("pgfailover_node_up", {{"node", "pg2"}}), 0);
  EXPECT_EQ(metrics.value("pgfailover_probe_duration_seconds", {{"node", "pg2"}}), 0);
}

TEST(Metrics, VetoesAndFailoversAreCountedByLabel) {
  Metrics metrics;
  metrics.recordVeto(core::VetoReason::kReplicaLagging);
  metrics.recordVeto(core::VetoReason::kReplicaLagging);
  metrics.recordVeto(core::VetoReason::kReplicaStillStreaming);
  metrics.recordFailover(true);
  metrics.recordFailover(false);
  metrics.recordFailover(true);
  EXPECT_EQ(metrics.value("pgfailover_vetoed_failovers_total",
                          {{"reason", core::toString(core::VetoReason::kReplicaLagging)}}),
            2);
  EXPECT_EQ(metrics.value("pgfailover_vetoed_failovers_total",
                          {{"reason", core::toString(core::VetoReason::kReplicaStillStreaming)}}),
            1);
  EXPECT_EQ(metrics.value("pgfailover_failovers_total", {{"result", "succeeded"}}), 2);
  EXPECT_EQ(metrics.value("pgfailover_failovers_total", {{"result", "failed"}}), 1);
}

TEST(Metrics, RecordDecisionCountsWhatTheDecisionFlags) {
  Metrics metrics;
  core::Decision decision;
  decision.new_veto = core::VetoReason::kReplicaUnreachable;
  decision.failover_completed = true;
  metrics.recordDecision(decision);
  metrics.recordDecision(core::Decision{});  // an ordinary tick counts nothing
  EXPECT_EQ(metrics.value("pgfailover_vetoed_failovers_total",
                          {{"reason", core::toString(core::VetoReason::kReplicaUnreachable)}}),
            1);
  EXPECT_EQ(metrics.value("pgfailover_failovers_total", {{"result", "succeeded"}}), 1);
  EXPECT_EQ(metrics.value("pgfailover_failovers_total", {{"result", "failed"}}), 0);
}

TEST(Metrics, LastFailoverComesFromTheSnapshot) {
  Metrics metrics;
  Snapshot snapshot = snapshotAt(1);
  core::FailoverRecord record;
  record.completed_at = kWall - std::chrono::seconds(60);
  record.duration = milliseconds(3400);
  snapshot.last_failover = record;
  metrics.observeTick(snapshot);
  EXPECT_EQ(metrics.value("pgfailover_last_failover_timestamp_seconds", {}), 1714567830.0);
  EXPECT_EQ(metrics.value("pgfailover_last_failover_duration_seconds", {}), 3.4);
}

TEST(Metrics, TickDurationIsAHistogram) {
  Metrics metrics;
  metrics.recordTickDuration(milliseconds(12));
  metrics.recordTickDuration(milliseconds(800));
  EXPECT_EQ(metrics.value("pgfailover_tick_duration_seconds", {}), 2);
  EXPECT_NE(metrics.render().find("pgfailover_tick_duration_seconds_bucket{le=\"0.025\"} 1"),
            std::string::npos);
}

TEST(Metrics, RenderIsTheTextFormatWithEveryFamily) {
  Metrics metrics;
  metrics.observeTick(snapshotAt(1));
  const std::string text = metrics.render();
  for (const char* family :
       {"pgfailover_build_info", "pgfailover_ready", "pgfailover_cluster_state",
        "pgfailover_split_brain", "pgfailover_failover_timeout_remaining_seconds",
        "pgfailover_node_up", "pgfailover_node_role", "pgfailover_node_timeline",
        "pgfailover_replication_lag_bytes", "pgfailover_replication_lag_seconds",
        "pgfailover_probe_duration_seconds", "pgfailover_probe_failures_total",
        "pgfailover_failovers_total", "pgfailover_vetoed_failovers_total",
        "pgfailover_last_failover_timestamp_seconds", "pgfailover_last_failover_duration_seconds",
        "pgfailover_ticks_total", "pgfailover_last_tick_timestamp_seconds",
        "pgfailover_tick_duration_seconds"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  EXPECT_NE(text.find("# TYPE pgfailover_failovers_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE pgfailover_probe_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("pgfailover_probe_duration_seconds_bucket{node=\"pg1\",le=\"0.005\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("pgfailover_node_role{node=\"pg2\",role=\"replica\"} 1"), std::string::npos);
}

TEST(Metrics, RenderWhileTheLoopUpdatesIsSafeAndWhole) {
  Metrics metrics;
  std::atomic<bool> done{false};
  std::thread loop([&] {
    for (std::uint64_t tick = 1; tick <= 300; ++tick) {
      Snapshot snapshot = snapshotAt(tick);
      snapshot.state = tick % 2 ? ClusterState::kHealthy : ClusterState::kDegraded;
      metrics.observeTick(snapshot);
    }
    done = true;
  });
  int renders = 0;
  while (!done || renders < 10) {
    const std::string text = metrics.render();
    // One-hot: exactly one state at 1 in every scrape, never none or two.
    std::size_t ones = 0;
    for (std::size_t at = text.find("pgfailover_cluster_state{"); at != std::string::npos;
         at = text.find("pgfailover_cluster_state{", at + 1)) {
      const std::size_t end = text.find('\n', at);
      if (text.substr(at, end - at).ends_with(" 1")) ++ones;
    }
    ASSERT_EQ(ones, 1u);
    ++renders;
  }
  loop.join();
}

}  // namespace
}  // namespace pgfailover::metrics
