// The coordination metrics (docs/metrics.md, "Several instances") as the loop feeds them: gauges
// from the snapshot's CoordinationView, counters grown by the deltas of its running totals, and
// no etcd series at all without etcd.
#include <gtest/gtest.h>

#include "metrics/metrics.h"

namespace pgfailover::metrics {
namespace {

using core::Snapshot;

Snapshot withEtcd(std::uint64_t tick, bool acting, std::uint64_t requests, std::uint64_t errors,
                  double seconds, std::uint64_t changes) {
  Snapshot s;
  s.tick = tick;
  auto& view = s.coordination;
  view.enabled = true;
  view.instance = "pgf-a";
  view.acting = acting;
  view.acting_instance = acting ? "pgf-a" : "pgf-b";
  view.term = 1000 + static_cast<std::int64_t>(changes);
  view.etcd_reachable = true;
  view.etcd_requests = requests;
  view.etcd_errors = errors;
  view.etcd_request_seconds = seconds;
  view.leadership_changes = changes;
  return s;
}

std::optional<double> value(const Metrics& metrics, const char* name) {
  return metrics.value(name, {});
}

TEST(MetricsCoordination, WithoutEtcdOnlyActingIsExportedAndItIsOne) {
  Metrics metrics;
  Snapshot single;
  single.tick = 1;
  metrics.observeTick(single);
  EXPECT_EQ(value(metrics, "pgfailover_acting"), 1);
  for (const char* name :
       {"pgfailover_coordination_term", "pgfailover_etcd_reachable",
        "pgfailover_leadership_changes_total", "pgfailover_etcd_requests_total",
        "pgfailover_etcd_request_errors_total", "pgfailover_etcd_request_seconds_total"})
    EXPECT_EQ(value(metrics, name), std::nullopt) << name;
  const std::string text = metrics.render();
  EXPECT_NE(text.find("\npgfailover_acting 1\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("\npgfailover_etcd_reachable "), std::string::npos) << text;
}

TEST(MetricsCoordination, GaugesFollowTheViewAndCountersGrowByTheDeltasOfItsTotals) {
  Metrics metrics;
  metrics.observeTick(withEtcd(1, false, 4, 1, 0.010, 0));
  EXPECT_EQ(value(metrics, "pgfailover_acting"), 0);
  EXPECT_EQ(value(metrics, "pgfailover_coordination_term"), 1000);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_reachable"), 1);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_requests_total"), 4);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_request_errors_total"), 1);
  EXPECT_DOUBLE_EQ(*value(metrics, "pgfailover_etcd_request_seconds_total"), 0.010);
  EXPECT_EQ(value(metrics, "pgfailover_leadership_changes_total"), 0);

  // Won the election: two more calls, one leadership change.
  metrics.observeTick(withEtcd(2, true, 6, 1, 0.013, 1));
  EXPECT_EQ(value(metrics, "pgfailover_acting"), 1);
  EXPECT_EQ(value(metrics, "pgfailover_coordination_term"), 1001);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_requests_total"), 6);
  EXPECT_DOUBLE_EQ(*value(metrics, "pgfailover_etcd_request_seconds_total"), 0.013);
  EXPECT_EQ(value(metrics, "pgfailover_leadership_changes_total"), 1);

  // The same totals published again (a tick that made no call) add nothing.
  metrics.observeTick(withEtcd(3, true, 6, 1, 0.013, 1));
  EXPECT_EQ(value(metrics, "pgfailover_etcd_requests_total"), 6);
  EXPECT_EQ(value(metrics, "pgfailover_leadership_changes_total"), 1);

  // etcd gone: calls fail, the instance stops acting.
  Snapshot lost = withEtcd(4, false, 9, 4, 3.013, 2);
  lost.coordination.etcd_reachable = false;
  metrics.observeTick(lost);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_reachable"), 0);
  EXPECT_EQ(value(metrics, "pgfailover_acting"), 0);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_requests_total"), 9);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_request_errors_total"), 4);
  EXPECT_DOUBLE_EQ(*value(metrics, "pgfailover_etcd_request_seconds_total"), 3.013);
  EXPECT_EQ(value(metrics, "pgfailover_leadership_changes_total"), 2);
}

TEST(MetricsCoordination, TotalsThatStartOverAreCountedAsNewNeverSubtracted) {
  Metrics metrics;
  metrics.observeTick(withEtcd(1, true, 50, 5, 2.0, 3));
  // A new etcd client counts from zero again: what it counted is new, and the counter never
  // goes down (Prometheus would read a decrease as a reset and count everything twice).
  metrics.observeTick(withEtcd(2, true, 7, 0, 0.5, 1));
  EXPECT_EQ(value(metrics, "pgfailover_etcd_requests_total"), 57);
  EXPECT_EQ(value(metrics, "pgfailover_etcd_request_errors_total"), 5);
  EXPECT_DOUBLE_EQ(*value(metrics, "pgfailover_etcd_request_seconds_total"), 2.5);
  EXPECT_EQ(value(metrics, "pgfailover_leadership_changes_total"), 4);
  metrics.observeTick(withEtcd(3, true, 10, 0, 0.75, 1));
  EXPECT_EQ(value(metrics, "pgfailover_etcd_requests_total"), 60);
  EXPECT_DOUBLE_EQ(*value(metrics, "pgfailover_etcd_request_seconds_total"), 2.75);
}

TEST(MetricsCoordination, TheRenderedTextCarriesEveryCoordinationSeries) {
  Metrics metrics;
  metrics.observeTick(withEtcd(1, true, 12, 2, 0.25, 1));
  const std::string text = metrics.render();
  for (const char* line :
       {"\npgfailover_acting 1\n", "\npgfailover_coordination_term 1001\n",
        "\npgfailover_etcd_reachable 1\n", "\npgfailover_leadership_changes_total 1\n",
        "\npgfailover_etcd_requests_total 12\n", "\npgfailover_etcd_request_errors_total 2\n",
        "\npgfailover_etcd_request_seconds_total 0.25\n",
        "# TYPE pgfailover_etcd_request_seconds_total counter"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

}  // namespace
}  // namespace pgfailover::metrics
