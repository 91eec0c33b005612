#include "metrics/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace pgfailover::metrics {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Labels;

// Probe round trips run from under a millisecond on loopback to the connect and query deadlines
// (a few seconds); the buckets span that range so a creeping node shows before it times out.
const prometheus::Histogram::BucketBoundaries kProbeBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};
// A tick probes nodes concurrently, so it takes about as long as the slowest probe plus the
// decision; same range, one more bucket for ticks that exceed a probe deadline.
const prometheus::Histogram::BucketBoundaries kTickBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};

// Every role, so each node has one series per role and exactly one of them is 1. core has no
// list of roles; the test RoleGaugesCoverEveryRole fails when a role is added there only.
constexpr core::NodeRole kAllRoles[] = {core::NodeRole::kPrimary, core::NodeRole::kReplica,
                                        core::NodeRole::kUnknown, core::NodeRole::kNeedsFencing,
                                        core::NodeRole::kFenced};
constexpr core::ProbeFailure kAllFailures[] = {
    core::ProbeFailure::kRefused, core::ProbeFailure::kTimeout, core::ProbeFailure::kStartingUp,
    core::ProbeFailure::kRejected, core::ProbeFailure::kCannotCommit};
// Created at zero up front so that rate() and increase() work from the first veto; a reason
// added to core later still counts, its series just appears on first use.
constexpr core::VetoReason kKnownVetoes[] = {
    core::VetoReason::kReplicaUnreachable,       core::VetoReason::kReplicaNotInRecovery,
    core::VetoReason::kSystemIdentifierMismatch, core::VetoReason::kReplicaStillStreaming,
    core::VetoReason::kReplicaLagging,           core::VetoReason::kPromoteAttemptsExhausted,
    core::VetoReason::kReplicaNotSynchronous};

constexpr const char* kSucceeded = "succeeded";
constexpr const char* kFailed = "failed";
// A rejoin attempt that could not reach the node's host touched nothing: counted apart, never
// the "last rejoin duration".
constexpr const char* kHostUnreachable = "host_unreachable";
// Every way a node comes back, created at zero so that a dashboard shows 0, not "No data",
// before the first one.
constexpr const char* kRejoinMethods[] = {"host_start", "restart", "follow", "rewind", "clone"};

}  // namespace

Metrics::Metrics()
    : build_info_(BuildGauge()
                      .Name("pgfailover_build_info")
                      .Help("Always 1; the version label tells which pgfailover is running.")
                      .Register(registry_)),
      ready_(BuildGauge()
                 .Name("pgfailover_ready")
                 .Help("1 once every configured node has been probed at least once.")
                 .Register(registry_)),
      cluster_state_(BuildGauge()
                         .Name("pgfailover_cluster_state")
                         .Help("1 for the cluster's current state, 0 for every other state.")
                         .Register(registry_)),
      split_brain_(BuildGauge()
                       .Name("pgfailover_split_brain")
                       .Help("1 while more than one node accepts writes.")
                       .Register(registry_)),
      timeout_remaining_(
          BuildGauge()
              .Name("pgfailover_failover_timeout_remaining_seconds")
              .Help("Seconds left on the running failover timeout; 0 when none is running.")
              .Register(registry_)),
      node_up_(BuildGauge()
                   .Name("pgfailover_node_up")
                   .Help("1 when the node's PostgreSQL answered the last probe.")
                   .Register(registry_)),
      node_role_(BuildGauge()
                     .Name("pgfailover_node_role")
                     .Help("1 for the node's current role, 0 for every other role.")
                     .Register(registry_)),
      node_timeline_(BuildGauge()
                         .Name("pgfailover_node_timeline")
                         .Help("The node's timeline ID as last probed.")
                         .Register(registry_)),
      lag_bytes_(BuildGauge()
                     .Name("pgfailover_replication_lag_bytes")
                     .Help("Bytes of WAL a replica is behind the primary; absent when unknown.")
                     .Register(registry_)),
      lag_seconds_(BuildGauge()
                       .Name("pgfailover_replication_lag_seconds")
                       .Help("Age of the newest heartbeat a replica replayed; absent when unknown.")
                       .Register(registry_)),
      probe_duration_(BuildHistogram()
                          .Name("pgfailover_probe_duration_seconds")
                          .Help("Duration of one probe of one node, failed probes included.")
                          .Register(registry_)),
      probe_failures_(BuildCounter()
                          .Name("pgfailover_probe_failures_total")
                          .Help("Failed probes, by node and kind of failure.")
                          .Register(registry_)),
      failovers_(BuildCounter()
                     .Name("pgfailover_failovers_total")
                     .Help("Failovers finished, by result.")
                     .Register(registry_)),
      vetoes_(BuildCounter()
                  .Name("pgfailover_vetoed_failovers_total")
                  .Help("Failovers that were due but refused by a safety check, by reason.")
                  .Register(registry_)),
      last_failover_timestamp_(
          BuildGauge()
              .Name("pgfailover_last_failover_timestamp_seconds")
              .Help("Unix time the last failover completed; 0 when none is recorded.")
              .Register(registry_)),
      last_failover_duration_(
          BuildGauge()
              .Name("pgfailover_last_failover_duration_seconds")
              .Help("First failed probe to new primary confirmed, for the last failover.")
              .Register(registry_)),
      ticks_(BuildCounter()
                 .Name("pgfailover_ticks_total")
                 .Help("Ticks of the observe-decide-act loop.")
                 .Register(registry_)),
      tick_failures_(BuildCounter()
                         .Name("pgfailover_tick_failures_total")
                         .Help("Ticks that failed (an exception before the tick completed); the "
                               "loop goes on.")
                         .Register(registry_)),
      last_tick_timestamp_(BuildGauge()
                               .Name("pgfailover_last_tick_timestamp_seconds")
                               .Help("Unix time of the last tick; a stuck loop stops moving it.")
                               .Register(registry_)),
      tick_duration_(BuildHistogram()
                         .Name("pgfailover_tick_duration_seconds")
                         .Help("Duration of one tick: observe, decide and act.")
                         .Register(registry_)),
      rejoins_(BuildCounter()
                   .Name("pgfailover_rejoins_total")
                   .Help("Finished rejoins of a node as a replica, by method (host_start, restart, "
                         "follow, "
                         "rewind, clone) and result.")
                   .Register(registry_)),
      last_rejoin_duration_(
          BuildGauge()
              .Name("pgfailover_last_rejoin_duration_seconds")
              .Help("Duration of the last successful rejoin, by node and method (from the last "
                    "tick the node was seen down for host_start).")
              .Register(registry_)),
      switchovers_(BuildCounter()
                       .Name("pgfailover_switchovers_total")
                       .Help("Planned switchovers finished, by result.")
                       .Register(registry_)),
      sync_standalone_(BuildGauge()
                           .Name("pgfailover_synchronous_standalone")
                           .Help("1 while synchronous mode is on but the primary commits without a "
                                 "synchronous standby.")
                           .Register(registry_)),
      acting_(BuildGauge()
                  .Name("pgfailover_acting")
                  .Help("1 while this instance may act (always, without etcd); 0 while another "
                        "instance acts or none does.")
                  .Register(registry_)),
      coordination_term_(
          BuildGauge()
              .Name("pgfailover_coordination_term")
              .Help("The acting instance's term (its leader key's create_revision in etcd); 0 "
                    "when none is known. Only with etcd.")
              .Register(registry_)),
      etcd_reachable_(BuildGauge()
                          .Name("pgfailover_etcd_reachable")
                          .Help("1 when this instance's last etcd call got an answer. Only with "
                                "etcd.")
                          .Register(registry_)),
      leadership_changes_(BuildCounter()
                              .Name("pgfailover_leadership_changes_total")
                              .Help("Times this instance started or stopped acting. Only with "
                                    "etcd.")
                              .Register(registry_)),
      etcd_requests_(BuildCounter()
                         .Name("pgfailover_etcd_requests_total")
                         .Help("Calls this instance made to etcd. Only with etcd.")
                         .Register(registry_)),
      etcd_request_errors_(BuildCounter()
                               .Name("pgfailover_etcd_request_errors_total")
                               .Help("Calls to etcd that got no answer or an error answer. Only "
                                     "with etcd.")
                               .Register(registry_)),
      etcd_request_seconds_(
          BuildCounter()
              .Name("pgfailover_etcd_request_seconds_total")
              .Help("Time spent in calls to etcd; divided by pgfailover_etcd_requests_total, the "
                    "mean duration of a call. Only with etcd.")
              .Register(registry_)) {
  build_info_.Add({{"version", PGFAILOVER_VERSION}}).Set(1);
  ready_.Add({}).Set(0);
  for (auto state : core::kAllStates)
    cluster_state_.Add({{"state", core::toString(state)}})
        .Set(state == core::ClusterState::kInitializing ? 1 : 0);
  split_brain_.Add({}).Set(0);
  timeout_remaining_.Add({}).Set(0);
  failovers_.Add({{"result", kSucceeded}});
  failovers_.Add({{"result", kFailed}});
  switchovers_.Add({{"result", kSucceeded}});
  switchovers_.Add({{"result", kFailed}});
  for (const char* method : kRejoinMethods)
    for (const char* result : {kSucceeded, kFailed, kHostUnreachable})
      if (result == kSucceeded || std::string_view(method) != "host_start")
        rejoins_.Add({{"method", method}, {"result", result}});
  for (auto reason : kKnownVetoes) vetoes_.Add({{"reason", core::toString(reason)}});
  last_failover_timestamp_.Add({}).Set(0);
  last_failover_duration_.Add({}).Set(0);
  ticks_.Add({});
  tick_failures_.Add({});
  last_tick_timestamp_.Add({}).Set(0);
  tick_duration_.Add({}, kTickBuckets);
}

template <typename T>
void Metrics::setOptional(prometheus::Family<T>& family, const Labels& labels,
                          std::optional<double> value) {
  // An unknown value is an absent series, not a 0 that a dashboard would read as "no lag".
  if (value) {
    family.Add(labels).Set(*value);
  } else if (family.Has(labels)) {
    family.Remove(&family.Add(labels));
  }
}

void Metrics::observeNode(const core::NodeSnapshot& node) {
  const auto& seen = node.observation;
  const Labels labels{{"node", node.name}};
  NodeSeen& memory = nodes_[node.name];

  if (!memory.probed) {
    // First sight of this node: create its counters at zero so increase() sees the first one.
    probe_duration_.Add(labels, kProbeBuckets);
    for (auto failure : kAllFailures)
      probe_failures_.Add({{"node", node.name}, {"reason", core::toString(failure)}});
  }

  node_up_.Add(labels).Set(seen.probed && seen.reachable ? 1 : 0);
  for (auto role : kAllRoles)
    node_role_.Add({{"node", node.name}, {"role", core::toString(role)}})
        .Set(role == node.role ? 1 : 0);
  setOptional(node_timeline_, labels,
              seen.probed && seen.reachable && seen.timeline != 0
                  ? std::optional<double>(seen.timeline)
                  : std::nullopt);
  setOptional(
      lag_bytes_, labels,
      node.lag_bytes ? std::optional<double>(static_cast<double>(*node.lag_bytes)) : std::nullopt);
  setOptional(lag_seconds_, labels, node.lag_seconds);

  // The loop may publish the same observation twice (a probe still running); a probe is one
  // sample however many snapshots carry it.
  const bool new_probe = seen.probed && (!memory.probed || seen.probed_at != memory.last_probed_at);
  if (!new_probe) return;
  memory.probed = true;
  memory.last_probed_at = seen.probed_at;
  probe_duration_.Add(labels, kProbeBuckets).Observe(seconds(seen.probe_duration));
  if (seen.failure != core::ProbeFailure::kNone)
    probe_failures_.Add({{"node", node.name}, {"reason", core::toString(seen.failure)}})
        .Increment();
}

void Metrics::addDelta(prometheus::Counter& counter, double total, double& last) {
  // A total below the last one means the loop's counting started over (a new etcd client):
  // everything it counted since is new.
  counter.Increment(total >= last ? total - last : total);
  last = total;
}

void Metrics::observeCoordination(const core::CoordinationView& view) {
  acting_.Add({}).Set(view.acting ? 1 : 0);
  if (!view.enabled) {
    // A single instance: no etcd series at all rather than a 0 that reads as "etcd is down".
    if (etcd_reachable_.Has({})) etcd_reachable_.Remove(&etcd_reachable_.Add({}));
    if (coordination_term_.Has({})) coordination_term_.Remove(&coordination_term_.Add({}));
    return;
  }
  coordination_term_.Add({}).Set(static_cast<double>(view.term));
  etcd_reachable_.Add({}).Set(view.etcd_reachable ? 1 : 0);
  addDelta(leadership_changes_.Add({}), static_cast<double>(view.leadership_changes),
           last_leadership_changes_);
  addDelta(etcd_requests_.Add({}), static_cast<double>(view.etcd_requests), last_etcd_requests_);
  addDelta(etcd_request_errors_.Add({}), static_cast<double>(view.etcd_errors), last_etcd_errors_);
  addDelta(etcd_request_seconds_.Add({}), view.etcd_request_seconds, last_etcd_request_seconds_);
}

void Metrics::observeTick(const core::Snapshot& snapshot) {
  std::lock_guard lock(mutex_);
  ready_.Add({}).Set(snapshot.ready ? 1 : 0);
  sync_standalone_.Add({}).Set(snapshot.sync_standalone ? 1 : 0);
  for (auto state : core::kAllStates)
    cluster_state_.Add({{"state", core::toString(state)}}).Set(state == snapshot.state ? 1 : 0);
  split_brain_.Add({}).Set(snapshot.split_brain ? 1 : 0);
  timeout_remaining_.Add({}).Set(snapshot.timeout ? seconds(snapshot.timeout->remaining()) : 0);
  for (const auto& node : snapshot.nodes) observeNode(node);
  observeCoordination(snapshot.coordination);

  if (snapshot.last_failover) {
    last_failover_timestamp_.Add({}).Set(unixSeconds(snapshot.last_failover->completed_at));
    last_failover_duration_.Add({}).Set(seconds(snapshot.last_failover->duration));
  }
  // Counted from the snapshot's tick number so a skipped publish still counts its ticks.
  if (snapshot.tick > last_tick_) {
    ticks_.Add({}).Increment(static_cast<double>(snapshot.tick - last_tick_));
    last_tick_ = snapshot.tick;
  }
  if (snapshot.tick_at_wall != WallTime{})
    last_tick_timestamp_.Add({}).Set(unixSeconds(snapshot.tick_at_wall));
}

void Metrics::recordTickFailure() {
  std::lock_guard lock(mutex_);
  tick_failures_.Add({}).Increment();
}

void Metrics::recordTickDuration(Millis duration) {
  std::lock_guard lock(mutex_);
  tick_duration_.Add({}, kTickBuckets).Observe(seconds(duration));
}

void Metrics::recordVeto(core::VetoReason reason) {
  std::lock_guard lock(mutex_);
  vetoes_.Add({{"reason", core::toString(reason)}}).Increment();
}

void Metrics::recordFailover(bool succeeded) {
  std::lock_guard lock(mutex_);
  failovers_.Add({{"result", succeeded ? kSucceeded : kFailed}}).Increment();
}

void Metrics::recordDecision(const core::Decision& decision) {
  if (decision.new_veto) recordVeto(*decision.new_veto);
  if (decision.failover_completed) recordFailover(true);
  if (decision.failover_failed) recordFailover(false);
  std::lock_guard lock(mutex_);
  for (const auto& event : decision.events) {
    const std::string result = core::toString(event.result);
    const bool finished = event.result == core::EventResult::kSucceeded ||
                          event.result == core::EventResult::kFailed ||
                          event.result == core::EventResult::kHostUnreachable;
    if (event.kind == core::EventKind::kRejoin && finished) {
      const std::string method = event.method.empty() ? "none" : event.method;
      rejoins_.Add({{"method", method}, {"result", result}}).Increment();
      if (event.result == core::EventResult::kSucceeded) {
        // One series per node: the method of the last one is a label of its own gauge value.
        for (const char* other : kRejoinMethods)
          if (other != method &&
              last_rejoin_duration_.Has({{"node", event.node}, {"method", other}}))
            last_rejoin_duration_.Remove(
                &last_rejoin_duration_.Add({{"node", event.node}, {"method", other}}));
        last_rejoin_duration_.Add({{"node", event.node}, {"method", method}})
            .Set(seconds(event.duration));
      }
    } else if (event.kind == core::EventKind::kSwitchover && finished) {
      switchovers_.Add({{"result", result}}).Increment();
    }
  }
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  return prometheus::TextSerializer().Serialize(registry_.Collect());
}

std::optional<double> Metrics::value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mutex_);
  for (const auto& family : registry_.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      Labels found;
      for (const auto& pair : metric.label) found[pair.name] = pair.value;
      if (found != labels) continue;
      switch (family.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(metric.histogram.sample_count);
        default:
          return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

}  // namespace pgfailover::metrics
