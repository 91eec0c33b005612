// End to end, the replica's replication slot: a real PostgreSQL 15 primary and a replica cloned
// by scripts/node/clone-replica.sh (pg_basebackup -R, no primary_slot_name, so it streams around
// any slot), watched by the real pgfailover binary. pgfailover must get the replica to stream
// from `pgfailover_<node>`: a slot nobody streams from keeps every WAL segment since it was
// made, until the primary's disk fills.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "support/lifecycle_harness.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ReplicationSlotTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.ok()); }

  PgCluster& cluster() { return h_.cluster(); }
  std::string slot() { return "pgfailover_" + cluster().node(1).name; }

  // The slot's "active restart_lsn" on the primary, or "" while it does not exist.
  std::string slotOnPrimary() {
    return cluster().sql(0,
                         "SELECT active || ' ' || coalesce(restart_lsn::text, '-') FROM "
                         "pg_replication_slots WHERE slot_name = '" +
                             slot() + "'");
  }
  // What the replica streams from: "<status> <slot_name> <primary_slot_name>".
  std::string replicaSide() {
    return cluster().sql(1,
                         "SELECT coalesce(status, '-') || ' ' || coalesce(slot_name, '-') "
                         "FROM pg_stat_wal_receiver") +
           " " + cluster().sql(1, "SHOW primary_slot_name");
  }
  std::string seen() {
    return "primary: slot " + slot() + " [" + slotOnPrimary() + "]; replica: [" + replicaSide() +
           "]\n" + h_.describe();
  }

  void expectReplicaStreamsAroundTheSlot() {
    ASSERT_EQ(replicaSide(), "streaming - ") << "the clone must start without a slot";
  }

  // The replica streams from its slot within a bounded wait, and the slot's restart_lsn follows
  // what the primary writes: it no longer retains WAL the replica has.
  void expectReplicaStreamsFromItsSlot() {
    ASSERT_TRUE(waitUntil(
        [&] {
          return slotOnPrimary().rfind("true ", 0) == 0 &&
                 replicaSide() == "streaming " + slot() + " " + slot();
        },
        60s))
        << seen();
    EXPECT_NE(h_.log().find("use_slot_done"), std::string::npos) << h_.log();

    const std::string before = cluster().sql(0,
                                             "SELECT restart_lsn FROM pg_replication_slots "
                                             "WHERE slot_name = '" +
                                                 slot() + "'");
    bool ok = false;
    cluster().sql(0, "CREATE TABLE slot_wal AS SELECT generate_series(1, 20000) AS id", &ok);
    ASSERT_TRUE(ok);
    cluster().sql(0, "SELECT pg_switch_wal()", &ok);
    ASSERT_TRUE(ok);
    const std::string written = cluster().sql(0, "SELECT pg_current_wal_lsn()");
    ASSERT_FALSE(written.empty());
    EXPECT_TRUE(waitUntil(
        [&] {
          return cluster().sql(0, "SELECT restart_lsn >= '" + written + "'::pg_lsn AND " +
                                      "restart_lsn > '" + before +
                                      "'::pg_lsn FROM pg_replication_slots WHERE slot_name = '" +
                                      slot() + "'") == "t";
        },
        30s))
        << "restart_lsn was " << before << ", the primary wrote up to " << written << "; "
        << seen();
  }

  LifecycleHarness h_;
};

// The defaults: pgfailover creates the slot on the primary and has the replica use it.
TEST_F(ReplicationSlotTest, ReplicaClonedWithoutItsSlotIsMadeToStreamFromIt) {
  expectReplicaStreamsAroundTheSlot();
  ASSERT_EQ(slotOnPrimary(), "");
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(h_.config())));
  expectReplicaStreamsFromItsSlot();
}

// With failover.rejoin off (rejoins left to the operator) the node still has its host executor,
// so its slot is still kept. Here the slot is left from an earlier run (made with
// immediately_reserve, as pgfailover makes it) and would retain WAL without bound if the
// replica were not made to use it: nothing drops the slot of a node that is reachable.
TEST_F(ReplicationSlotTest, SlotLeftFromAnEarlierRunIsUsedWithRejoinsOff) {
  expectReplicaStreamsAroundTheSlot();
  bool ok = false;
  cluster().sql(0, "SELECT pg_create_physical_replication_slot('" + slot() + "', true)", &ok);
  ASSERT_TRUE(ok);
  ASSERT_EQ(slotOnPrimary().rfind("false ", 0), 0u) << slotOnPrimary();
  json config = h_.config();
  config["failover"]["rejoin"] = false;
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(config)));
  expectReplicaStreamsFromItsSlot();
}

}  // namespace
}  // namespace pgfailover::testing
