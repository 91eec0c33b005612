// The pieces lifecycle/rejoin.h exposes for tests, fed what real PostgreSQL 15 servers print:
// pg_controldata of a primary, a standby, a server without wal_log_hints, and the rejoin's
// pre-flight (pg_controldata plus the newest timeline history file) on a standby that followed
// a promotion before its next restartpoint. The unit tests (rejoin_escaping_test.cc,
// rejoin_timeline_test.cc) feed them hand-written text; this checks they read the real thing.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "lifecycle/rejoin.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;

std::string controlData(const PgCluster& cluster, std::size_t i) {
  std::string output;
  const int status =
      runCommand(pgBinary("pg_controldata") + " " + cluster.node(i).data_dir, &output);
  EXPECT_EQ(status, 0) << output;
  return output;
}

// The same command the rejoin runs before it decides between restart, follow and rewind
// (lifecycle/rejoin.cc, step "pre-flight").
std::string preflight(const PgCluster& cluster, std::size_t i) {
  const std::string data = cluster.node(i).data_dir;
  std::string output;
  const int status = runCommand(pgBinary("pg_controldata") + " " + data + " && printf '" +
                                    lifecycle::kNewestHistoryKey + ": %s\\n' \"$(ls " + data +
                                    "/pg_wal 2>/dev/null | grep -E '^[0-9A-F]{8}[.]history$' | "
                                    "sort | tail -n 1)\"",
                                &output);
  EXPECT_EQ(status, 0) << output;
  return output;
}

TEST(RejoinHelpers, ControlDataOfARunningPrimaryAndItsStandby) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  const std::string primary = controlData(cluster, 0);
  const std::string standby = controlData(cluster, 1);

  EXPECT_EQ(lifecycle::controlDataValue(primary, "Database cluster state"), "in production");
  EXPECT_EQ(lifecycle::controlDataValue(standby, "Database cluster state"), "in archive recovery");
  EXPECT_EQ(lifecycle::controlDataValue(primary, "Latest checkpoint's TimeLineID"), "1");
  EXPECT_EQ(lifecycle::controlDataValue(primary, "wal_log_hints setting"), "on");
  // A key is the whole text before the colon: a prefix of one, or one that is absent, is "".
  EXPECT_EQ(lifecycle::controlDataValue(primary, "Latest checkpoint"), "");
  EXPECT_EQ(lifecycle::controlDataValue(primary, "No such field"), "");
  // The system identifier is the same number the server reports over SQL.
  EXPECT_EQ(lifecycle::controlDataValue(primary, "Database system identifier"),
            cluster.sql(0, "SELECT system_identifier FROM pg_control_system()"));

  // The node scripts turn wal_log_hints on: pg_rewind can work on both.
  EXPECT_TRUE(lifecycle::canRewind(primary));
  EXPECT_TRUE(lifecycle::canRewind(standby));
  EXPECT_EQ(lifecycle::standbyTimeline(preflight(cluster, 1)), 1u);
}

TEST(RejoinHelpers, WithoutWalLogHintsOrChecksumsRewindIsImpossible) {
  PgClusterOptions options;
  options.replicas = 0;
  options.settings = {"wal_log_hints = off"};
  PgCluster cluster(options);
  ASSERT_TRUE(cluster.ok());
  const std::string control = controlData(cluster, 0);
  ASSERT_EQ(lifecycle::controlDataValue(control, "wal_log_hints setting"), "off") << control;
  // initdb without --data-checksums.
  ASSERT_EQ(lifecycle::controlDataValue(control, "Data page checksum version"), "0") << control;
  EXPECT_FALSE(lifecycle::canRewind(control));
}

// Right after a promotion, a standby that follows the new primary still names the old timeline
// in its last checkpoint (until its next restartpoint, minutes later); the history file it
// fetched into pg_wal names the new one. The rejoin must see the new one, or it would rewind a
// healthy standby instead of restarting it.
TEST(RejoinHelpers, StandbyTimelineOfAStandbyThatFollowedAPromotion) {
  PgCluster cluster(2);
  ASSERT_TRUE(cluster.ok());
  bool ok = false;
  cluster.sql(1, "SELECT pg_promote(true, 60)", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(waitUntil([&] { return cluster.sql(1, "SELECT pg_is_in_recovery()") == "f"; }, 60s));
  EXPECT_EQ(cluster.sql(1, "SELECT timeline_id FROM pg_control_checkpoint()"), "2");

  // Point the second standby at the promoted node.
  const std::string conninfo = cluster.sql(2, "SHOW primary_conninfo", &ok);
  ASSERT_TRUE(ok);
  const std::string old_port = "port=" + std::to_string(cluster.node(0).port);
  const auto at = conninfo.find(old_port);
  ASSERT_NE(at, std::string::npos) << conninfo;
  std::string moved = conninfo;
  moved.replace(at, old_port.size(), "port=" + std::to_string(cluster.node(1).port));
  std::string quoted;
  for (char c : moved) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  cluster.sql(2, "ALTER SYSTEM SET primary_conninfo = '" + quoted + "'", &ok);
  ASSERT_TRUE(ok);
  cluster.sql(2, "SELECT pg_reload_conf()", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(waitUntil(
      [&] {
        return cluster.sql(2,
                           "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = "
                           "'streaming'") == "2";
      },
      60s))
      << "the standby did not follow the promoted node";

  const std::string standby = preflight(cluster, 2);
  EXPECT_EQ(lifecycle::controlDataValue(standby, lifecycle::kNewestHistoryKey), "00000002.history")
      << standby;
  EXPECT_EQ(lifecycle::standbyTimeline(standby), 2u) << standby;

  // The old primary, stopped, knows only its own timeline.
  cluster.runNodeScript(0, "stop.sh", {"--mode", "fast"});
  const std::string old_primary = preflight(cluster, 0);
  EXPECT_EQ(lifecycle::controlDataValue(old_primary, "Database cluster state"), "shut down");
  EXPECT_EQ(lifecycle::standbyTimeline(old_primary), 1u) << old_primary;
}

}  // namespace
}  // namespace pgfailover::testing
