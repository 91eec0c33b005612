// Every Prometheus metric pgfailover exports, owned by one object: the registry and each family,
// all named `pgfailover_*` (docs/metrics.md lists them). The loop feeds it once per tick from
// the published snapshot and on the events a snapshot cannot show (a veto started, a failover
// finished); the HTTP server renders it for /metrics.
//
// Deliberately not here: serving HTTP (prometheus-cpp's civetweb Exposer is not used; /metrics
// goes through the router), reading clocks, and deciding anything. Updates and render() take
// one lock, so a scrape never sees half a tick (a node with no role, two cluster states).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/time.h"
#include "core/snapshot.h"
#include "core/state.h"

namespace pgfailover::metrics {

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Sets every gauge from a published snapshot, counts ticks, and records each node's probe
  // duration and failure once per probe (a probe repeated in two snapshots counts once).
  void observeTick(const core::Snapshot& snapshot);
  // How long one tick took (observe + decide + act), for the tick duration histogram.
  void recordTickDuration(Millis duration);
  // A tick that threw before it completed (TickLoop: logged, counted, the loop goes on).
  void recordTickFailure();
  // A failover that was due and did not happen; count once per veto, not once per tick.
  void recordVeto(core::VetoReason reason);
  void recordFailover(bool succeeded);
  // Calls recordVeto / recordFailover from the flags a decision carries.
  void recordDecision(const core::Decision& decision);

  // The Prometheus text exposition format 0.0.4.
  std::string render() const;

  // The current value of one series (a histogram's sample count), or nullopt when the series
  // does not exist. For tests and diagnostics; scrapers use render().
  std::optional<double> value(std::string_view name, const prometheus::Labels& labels) const;

 private:
  struct NodeSeen {
    SteadyTime last_probed_at{};
    bool probed = false;
  };

  void observeNode(const core::NodeSnapshot& node);
  void observeCoordination(const core::CoordinationView& view);
  // Adds to `counter` what `total` (a running total of the loop) grew by since `last`.
  static void addDelta(prometheus::Counter& counter, double total, double& last);
  template <typename T>
  static void setOptional(prometheus::Family<T>& family, const prometheus::Labels& labels,
                          std::optional<double> value);

  mutable std::mutex mutex_;
  prometheus::Registry registry_;

  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Gauge>& ready_;
  prometheus::Family<prometheus::Gauge>& cluster_state_;
  prometheus::Family<prometheus::Gauge>& split_brain_;
  prometheus::Family<prometheus::Gauge>& timeout_remaining_;
  prometheus::Family<prometheus::Gauge>& node_up_;
  prometheus::Family<prometheus::Gauge>& node_role_;
  prometheus::Family<prometheus::Gauge>& node_timeline_;
  prometheus::Family<prometheus::Gauge>& lag_bytes_;
  prometheus::Family<prometheus::Gauge>& lag_seconds_;
  prometheus::Family<prometheus::Histogram>& probe_duration_;
  prometheus::Family<prometheus::Counter>& probe_failures_;
  prometheus::Family<prometheus::Counter>& failovers_;
  prometheus::Family<prometheus::Counter>& vetoes_;
  prometheus::Family<prometheus::Gauge>& last_failover_timestamp_;
  prometheus::Family<prometheus::Gauge>& last_failover_duration_;
  prometheus::Family<prometheus::Counter>& ticks_;
  prometheus::Family<prometheus::Counter>& tick_failures_;
  prometheus::Family<prometheus::Gauge>& last_tick_timestamp_;
  prometheus::Family<prometheus::Histogram>& tick_duration_;
  prometheus::Family<prometheus::Counter>& rejoins_;
  prometheus::Family<prometheus::Gauge>& last_rejoin_duration_;
  prometheus::Family<prometheus::Counter>& switchovers_;
  prometheus::Family<prometheus::Gauge>& sync_standalone_;
  prometheus::Family<prometheus::Gauge>& acting_;
  prometheus::Family<prometheus::Gauge>& coordination_term_;
  prometheus::Family<prometheus::Gauge>& etcd_reachable_;
  prometheus::Family<prometheus::Counter>& leadership_changes_;
  prometheus::Family<prometheus::Counter>& etcd_requests_;
  prometheus::Family<prometheus::Counter>& etcd_request_errors_;
  prometheus::Family<prometheus::Counter>& etcd_request_seconds_;

  std::uint64_t last_tick_ = 0;
  // The coordination totals as last fed, which the counters grew by.
  double last_leadership_changes_ = 0;
  double last_etcd_requests_ = 0;
  double last_etcd_errors_ = 0;
  double last_etcd_request_seconds_ = 0;
  std::map<std::string, NodeSeen> nodes_;
};

}  // namespace pgfailover::metrics
