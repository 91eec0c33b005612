// NodeProber against real PostgreSQL 15 servers (tests/support/pg_cluster.h): what a probe
// sees on a primary and a replica, how each kind of failure is classified, and the two actions.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "config/config.h"
#include "pg/connection.h"
#include "pg/node_prober.h"
#include "support/pg_cluster.h"

namespace pgfailover::pg {
namespace {

using namespace std::chrono_literals;
using core::NodeObservation;
using core::ProbeFailure;
using testing::PgCluster;
using testing::waitUntil;

constexpr Millis kConnectTimeout{1000};
constexpr Millis kQueryTimeout{1000};

config::NodeConfig nodeConfig(const PgCluster& cluster, std::size_t i, int port = 0) {
  config::NodeConfig node;
  node.name = cluster.node(i).name;
  node.host = "127.0.0.1";
  node.port = port != 0 ? port : cluster.node(i).port;
  node.user = cluster.user();
  node.password = Secret(cluster.password());
  return node;
}

config::ProbeConfig probeConfig() {
  config::ProbeConfig probe;
  probe.connect_timeout = kConnectTimeout;
  probe.query_timeout = kQueryTimeout;
  return probe;
}

std::string describe(const NodeObservation& o) {
  return std::string("reachable=") + (o.reachable ? "true" : "false") +
         " failure=" + core::toString(o.failure) + " error='" + o.error + "'";
}

int countProbeSessions(const PgCluster& cluster, std::size_t i) {
  return std::stoi(cluster.sql(
      i, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgfailover'"));
}

TEST(PgProberTest, ProbesOfPrimaryAndReplicaFillEveryField) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  NodeProber primary(nodeConfig(cluster, 0), probeConfig());
  NodeProber replica(nodeConfig(cluster, 1), probeConfig());
  EXPECT_EQ(primary.description(),
            "node 'pg1' (127.0.0.1:" + std::to_string(cluster.node(0).port) + ")");

  NodeObservation p = primary.probe(true);
  ASSERT_TRUE(p.reachable) << describe(p);
  EXPECT_TRUE(p.probed);
  EXPECT_EQ(p.failure, ProbeFailure::kNone);
  EXPECT_TRUE(p.error.empty());
  EXPECT_FALSE(p.in_recovery);
  EXPECT_FALSE(p.read_only);
  EXPECT_TRUE(p.writable());
  EXPECT_NE(p.system_identifier, 0u);
  EXPECT_EQ(p.timeline, 1u);
  ASSERT_TRUE(p.current_lsn);
  EXPECT_FALSE(p.receive_lsn);
  EXPECT_FALSE(p.replay_lsn);
  EXPECT_FALSE(p.wal_receiver);
  ASSERT_TRUE(p.wal_receiver_timeout);
  EXPECT_EQ(*p.wal_receiver_timeout, Millis{5000});  // as scripts/node/ configures it
  EXPECT_TRUE(p.heartbeat_written);
  ASSERT_TRUE(p.heartbeat_unix_seconds);
  EXPECT_NEAR(*p.heartbeat_unix_seconds, unixSeconds(std::chrono::system_clock::now()), 60.0);
  EXPECT_LT(p.probe_duration, kConnectTimeout + kQueryTimeout);
  ASSERT_EQ(p.replication.size(), 1u);
  EXPECT_EQ(p.replication[0].application_name, "pg2");
  EXPECT_EQ(p.replication[0].client_addr, "127.0.0.1");
  EXPECT_EQ(p.replication[0].state, "streaming");
  EXPECT_EQ(p.replication[0].sync_state, "async");
  EXPECT_TRUE(p.replication[0].sent_lsn);

  // The heartbeat row reaches the replica, which reports the value it replayed.
  NodeObservation r;
  ASSERT_TRUE(waitUntil(
      [&] {
        r = replica.probe(true);
        return r.reachable && r.heartbeat_unix_seconds == p.heartbeat_unix_seconds && r.streaming();
      },
      15s))
      << describe(r);
  EXPECT_EQ(r.failure, ProbeFailure::kNone);
  EXPECT_TRUE(r.in_recovery);
  EXPECT_FALSE(r.writable());
  EXPECT_FALSE(r.heartbeat_written);  // never written on a replica, even when asked
  EXPECT_EQ(r.system_identifier, p.system_identifier);
  EXPECT_EQ(r.timeline, 1u);
  EXPECT_FALSE(r.current_lsn);
  ASSERT_TRUE(r.receive_lsn);
  ASSERT_TRUE(r.replay_lsn);
  EXPECT_GE(*r.replay_lsn, *p.current_lsn);
  ASSERT_TRUE(r.position());
  ASSERT_TRUE(r.wal_receiver);
  EXPECT_EQ(r.wal_receiver->status, "streaming");
  EXPECT_EQ(r.wal_receiver->sender_host, "127.0.0.1");
  EXPECT_EQ(r.wal_receiver->sender_port, cluster.node(0).port);
  EXPECT_EQ(r.wal_receiver->received_timeline, 1u);
  ASSERT_TRUE(r.wal_receiver->seconds_since_last_message);
  EXPECT_GE(*r.wal_receiver->seconds_since_last_message, 0.0);
  EXPECT_LT(*r.wal_receiver->seconds_since_last_message, 60.0);
  EXPECT_TRUE(r.replication.empty());

  EXPECT_EQ(p.name, "pg1");
  EXPECT_TRUE(p.slots_observed);
  EXPECT_TRUE(r.slots_observed);

  // The row names the node that wrote it.
  EXPECT_EQ(cluster.sql(1, "SELECT node FROM pgfailover.heartbeat WHERE id = 1"), "pg1");

  // write_heartbeat=false reads the stored value and writes nothing.
  NodeObservation quiet = primary.probe(false);
  ASSERT_TRUE(quiet.reachable) << describe(quiet);
  EXPECT_FALSE(quiet.heartbeat_written);
  EXPECT_EQ(quiet.heartbeat_unix_seconds, p.heartbeat_unix_seconds);
}

TEST(PgProberTest, HeartbeatOffWritesNothing) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  config::ProbeConfig probe = probeConfig();
  probe.heartbeat = false;
  NodeProber prober(nodeConfig(cluster, 0), probe);
  NodeObservation o = prober.probe(true);
  ASSERT_TRUE(o.reachable) << describe(o);
  EXPECT_EQ(o.failure, ProbeFailure::kNone);
  EXPECT_FALSE(o.heartbeat_written);
  EXPECT_FALSE(o.heartbeat_unix_seconds);
  EXPECT_EQ(cluster.sql(0, "SELECT to_regclass('pgfailover.heartbeat') IS NULL"), "t");
}

TEST(PgProberTest, HeartbeatGoesToTheConfiguredTable) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  config::ProbeConfig probe = probeConfig();
  probe.heartbeat_table = "ops.pgfailover_beat";
  NodeProber prober(nodeConfig(cluster, 0), probe);
  NodeObservation o = prober.probe(true);
  ASSERT_TRUE(o.heartbeat_written) << describe(o);
  EXPECT_EQ(cluster.sql(0, "SELECT node FROM ops.pgfailover_beat WHERE id = 1"), "pg1");

  probe.heartbeat_table = "no_schema";
  NodeProber invalid(nodeConfig(cluster, 0), probe);
  o = invalid.probe(true);
  EXPECT_TRUE(o.reachable);
  EXPECT_EQ(o.failure, ProbeFailure::kCannotCommit) << describe(o);
  EXPECT_NE(o.error.find("not a valid schema.table"), std::string::npos) << o.error;
}

TEST(PgProberTest, ReusesOneConnectionAcrossProbes) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.probe(true).reachable);
  const int pid = prober.probeBackendPid();
  EXPECT_NE(pid, 0);
  for (int i = 0; i < 5; ++i) {
    NodeObservation o = prober.probe(true);
    ASSERT_TRUE(o.reachable) << describe(o);
    EXPECT_TRUE(o.heartbeat_written);
  }
  EXPECT_EQ(prober.probeBackendPid(), pid);
  EXPECT_EQ(countProbeSessions(cluster, 0), 1);
}

TEST(PgProberTest, ReconnectsWithinTheProbeWhenItsSessionWasTerminated) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.probe(true).reachable);
  const int pid = prober.probeBackendPid();
  bool ok = false;
  cluster.sql(0, "SELECT pg_terminate_backend(" + std::to_string(pid) + ")", &ok);
  ASSERT_TRUE(ok);

  // A stale session is not evidence against the node: the same probe reconnects.
  NodeObservation o = prober.probe(true);
  EXPECT_TRUE(o.reachable) << describe(o);
  EXPECT_EQ(o.failure, ProbeFailure::kNone);
  EXPECT_NE(prober.probeBackendPid(), pid);
  EXPECT_EQ(countProbeSessions(cluster, 0), 1);
}

TEST(PgProberTest, KilledPostmasterIsRefused) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.probe(true).reachable);

  cluster.kill9(0);
  NodeObservation o = prober.probe(true);
  EXPECT_FALSE(o.reachable);
  EXPECT_EQ(o.failure, ProbeFailure::kRefused) << describe(o);
  EXPECT_EQ(o.error.rfind("node 'pg1' (127.0.0.1:", 0), 0u) << o.error;
  EXPECT_EQ(o.error.find('\n'), std::string::npos);
  EXPECT_FALSE(o.heartbeat_written);

  // Later probes connect afresh and are refused too.
  o = prober.probe(true);
  EXPECT_EQ(o.failure, ProbeFailure::kRefused) << describe(o);
  EXPECT_LT(o.probe_duration, kConnectTimeout);
}

TEST(PgProberTest, StoppedServerTimesOutWithinTheDeadlineAndRecovers) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.probe(true).reachable);
  const auto bound = 5 * (kConnectTimeout + kQueryTimeout);

  cluster.stop(0);
  // On the open connection the query goes unanswered.
  auto started = std::chrono::steady_clock::now();
  NodeObservation o = prober.probe(true);
  EXPECT_LT(std::chrono::steady_clock::now() - started, bound);
  EXPECT_FALSE(o.reachable);
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << describe(o);
  EXPECT_EQ(o.error.rfind("node 'pg1'", 0), 0u) << o.error;

  // A new connection completes its TCP handshake in the kernel, then hears nothing.
  started = std::chrono::steady_clock::now();
  o = prober.probe(true);
  EXPECT_LT(std::chrono::steady_clock::now() - started, bound);
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << describe(o);

  cluster.resume(0);
  NodeObservation back;
  EXPECT_TRUE(waitUntil(
      [&] {
        back = prober.probe(true);
        return back.reachable;
      },
      30s))
      << describe(back);
  EXPECT_TRUE(back.heartbeat_written);
  // The abandoned session is gone (cancelled, then closed): only the new one is left.
  EXPECT_TRUE(waitUntil([&] { return countProbeSessions(cluster, 0) == 1; }, 15s));
}

TEST(PgProberTest, SilentNetworkTimesOutAndRecovers) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  testing::TcpForwarder link(cluster.node(0).port);
  NodeProber prober(nodeConfig(cluster, 0, link.listenPort()), probeConfig());
  ASSERT_TRUE(prober.probe(true).reachable);

  link.pause();
  auto started = std::chrono::steady_clock::now();
  NodeObservation o = prober.probe(true);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5 * (kConnectTimeout + kQueryTimeout));
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << describe(o);
  o = prober.probe(true);
  EXPECT_EQ(o.failure, ProbeFailure::kTimeout) << describe(o);

  link.resume();
  EXPECT_TRUE(waitUntil([&] { return prober.probe(true).reachable; }, 15s));
}

TEST(PgProberTest, ResetOfAnIdleConnectionIsSurvivedByReconnecting) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  testing::TcpForwarder link(cluster.node(0).port);
  NodeProber prober(nodeConfig(cluster, 0, link.listenPort()), probeConfig());
  ASSERT_TRUE(prober.probe(true).reachable);
  // A reset of an idle connection is survived by reconnecting within the same probe.
  link.closeAll();
  NodeObservation o = prober.probe(true);
  EXPECT_TRUE(o.reachable) << describe(o);
}

TEST(PgProberTest, PromoteMakesTheReplicaAPrimaryOnANewTimeline) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  NodeProber primary(nodeConfig(cluster, 0), probeConfig());
  NodeProber replica(nodeConfig(cluster, 1), probeConfig());
  ASSERT_TRUE(replica.probe(true).in_recovery);

  Status promoted = replica.promote(Millis{10000});
  ASSERT_TRUE(promoted.isOk()) << promoted.message();
  NodeObservation o = replica.probe(true);
  ASSERT_TRUE(o.reachable) << describe(o);
  EXPECT_FALSE(o.in_recovery);
  EXPECT_EQ(o.timeline, 2u);
  EXPECT_TRUE(o.heartbeat_written) << describe(o);
  EXPECT_FALSE(o.wal_receiver);

  // Promoting a primary is refused with a clear reason.
  Status again = primary.promote(Millis{1000});
  EXPECT_FALSE(again.isOk());
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition) << again.message();
  EXPECT_EQ(again.message().rfind("node 'pg1'", 0), 0u) << again.message();
  EXPECT_NE(again.message().find("recovery is not in progress"), std::string::npos)
      << again.message();
}

TEST(PgProberTest, FenceMakesThePrimaryReadOnly) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.probe(true).heartbeat_written);

  // A client session open before the fence is terminated by it.
  Connection client;
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = cluster.node(0).port;
  options.user = cluster.user();
  options.password = Secret(cluster.password());
  options.application_name = "some-client";
  ASSERT_FALSE(client.connect(options, std::chrono::steady_clock::now() + 5s));

  Status fenced = prober.fenceReadOnly();
  ASSERT_TRUE(fenced.isOk()) << fenced.message();
  ASSERT_TRUE(prober.fenceReadOnly().isOk());  // idempotent

  ExecOutcome after = client.exec("SELECT 1", std::chrono::steady_clock::now() + 5s);
  EXPECT_FALSE(after.ok());
  EXPECT_FALSE(client.connected());

  NodeObservation o = prober.probe(true);
  EXPECT_TRUE(o.reachable) << describe(o);
  EXPECT_TRUE(o.read_only);
  EXPECT_FALSE(o.writable());
  EXPECT_FALSE(o.heartbeat_written);
  EXPECT_EQ(o.failure, ProbeFailure::kCannotCommit) << describe(o);
  EXPECT_NE(o.error.find("default_transaction_read_only"), std::string::npos) << o.error;

  bool ok = true;
  cluster.sql(0, "CREATE TABLE written_after_fence (x int)", &ok);
  EXPECT_FALSE(ok) << "a client could write to the fenced primary";
  ok = true;
  cluster.sql(0, "INSERT INTO pgfailover.heartbeat VALUES (2, now(), 'client')", &ok);
  EXPECT_FALSE(ok) << "a client could write to the fenced primary";

  // The fence survives a restart: it is in postgresql.auto.conf.
  ASSERT_GT(o.postmaster_start_us, 0);
  ASSERT_EQ(cluster.runNodeScript(0, "stop.sh", {"--mode", "fast"}), 0);
  cluster.start(0);
  NodeObservation restarted;
  ASSERT_TRUE(waitUntil(
      [&] {
        restarted = prober.probe(true);
        return restarted.reachable;
      },
      30s))
      << describe(restarted);
  EXPECT_TRUE(restarted.read_only);
  // A new postmaster: what tells pgfailover a pending promote request is gone.
  EXPECT_GT(restarted.postmaster_start_us, o.postmaster_start_us);
}

TEST(PgProberTest, UnfenceMakesTheNodeWritableAgain) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.fenceReadOnly().isOk());
  ASSERT_TRUE(prober.probe(true).read_only);

  Status unfenced = prober.unfence();
  ASSERT_TRUE(unfenced.isOk()) << unfenced.message();
  ASSERT_TRUE(prober.unfence().isOk());  // idempotent
  NodeObservation o;
  EXPECT_TRUE(waitUntil(
      [&] {
        o = prober.probe(true);
        return o.writable() && o.heartbeat_written;
      },
      10s))
      << describe(o);
  bool ok = false;
  cluster.sql(0, "CREATE TABLE written_after_unfence (x int)", &ok);
  EXPECT_TRUE(ok);
}

TEST(PgProberTest, ReplicationSlotsAreCreatedObservedAndDropped) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  NodeObservation o = prober.probe(true);
  ASSERT_TRUE(o.slots_observed) << describe(o);
  EXPECT_TRUE(o.slots.empty());

  Status created = prober.createReplicationSlot("pg2");
  ASSERT_TRUE(created.isOk()) << created.message();
  ASSERT_TRUE(prober.createReplicationSlot("pg2").isOk());  // idempotent
  o = prober.probe(true);
  ASSERT_EQ(o.slots.size(), 1u) << describe(o);
  EXPECT_EQ(o.slots[0].name, "pg2");
  EXPECT_FALSE(o.slots[0].active);
  EXPECT_TRUE(o.slots[0].restart_lsn);  // reserved at once

  EXPECT_EQ(prober.createReplicationSlot("Bad-Name").code(), StatusCode::kInvalidArgument);

  Status dropped = prober.dropReplicationSlot("pg2");
  ASSERT_TRUE(dropped.isOk()) << dropped.message();
  ASSERT_TRUE(prober.dropReplicationSlot("pg2").isOk());  // idempotent
  EXPECT_TRUE(prober.probe(true).slots.empty());
}

// A replica cloned without a slot (pg_basebackup -R alone) is made to stream from one, on
// reload, without a restart.
TEST(PgProberTest, ReplicaIsMadeToStreamFromItsSlot) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  NodeProber primary(nodeConfig(cluster, 0), probeConfig());
  NodeProber replica(nodeConfig(cluster, 1), probeConfig());
  ASSERT_TRUE(waitUntil([&] { return replica.probe(false).streaming(); }, 30s));
  EXPECT_EQ(replica.probe(false).wal_receiver->slot_name, "");
  ASSERT_TRUE(primary.createReplicationSlot("pgfailover_pg2").isOk());

  Status used = replica.useReplicationSlot("pgfailover_pg2");
  ASSERT_TRUE(used.isOk()) << used.message();
  EXPECT_TRUE(waitUntil(
      [&] {
        auto seen = replica.probe(false);
        return seen.streaming() && seen.wal_receiver->slot_name == "pgfailover_pg2";
      },
      30s))
      << describe(replica.probe(false));
  EXPECT_TRUE(waitUntil(
      [&] {
        auto seen = primary.probe(true);
        return seen.slots.size() == 1 && seen.slots[0].active;
      },
      30s));
  EXPECT_EQ(replica.useReplicationSlot("x'; DROP TABLE t; --").code(),
            StatusCode::kInvalidArgument);
}

TEST(PgProberTest, HeartbeatThatCannotCommitIsReported) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  ASSERT_TRUE(prober.probe(true).heartbeat_written);
  // Another session holds the heartbeat row: reads still work, the write waits and times out.
  Connection locker;
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = cluster.node(0).port;
  options.user = cluster.user();
  options.password = Secret(cluster.password());
  options.application_name = "locker";
  ASSERT_FALSE(locker.connect(options, std::chrono::steady_clock::now() + 5s));
  auto locked = locker.exec("BEGIN; SELECT * FROM pgfailover.heartbeat FOR UPDATE",
                            std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(locked.ok()) << locked.error->message;

  auto started = std::chrono::steady_clock::now();
  NodeObservation o = prober.probe(true);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5 * (kConnectTimeout + kQueryTimeout));
  EXPECT_TRUE(o.reachable) << describe(o);
  EXPECT_FALSE(o.heartbeat_written);
  EXPECT_EQ(o.failure, ProbeFailure::kCannotCommit) << describe(o);
  EXPECT_TRUE(o.writable());

  locker.exec("ROLLBACK", std::chrono::steady_clock::now() + 5s);
  EXPECT_TRUE(waitUntil([&] { return prober.probe(true).heartbeat_written; }, 10s));
}

// A heartbeat table pgfailover did not make is never adopted: another role's table could run
// its triggers with pgfailover's privileges at every heartbeat. The probe says so, naming the
// table and its owner, and writes nothing there.
TEST(PgProberTest, HeartbeatTableAnotherRoleMadeIsRefused) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  bool ok = false;
  cluster.sql(0,
              "CREATE ROLE intruder NOLOGIN; CREATE SCHEMA pgfailover;"
              " GRANT USAGE, CREATE ON SCHEMA pgfailover TO intruder;"
              " CREATE TABLE public.trigger_runs (by_role text);"
              " GRANT INSERT ON public.trigger_runs TO PUBLIC;"
              " SET ROLE intruder;"
              " CREATE TABLE pgfailover.heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL,"
              "   node text NOT NULL, lease_ms integer NOT NULL DEFAULT 0,"
              "   self_fenced_at timestamptz, peers text NOT NULL DEFAULT '',"
              "   timeline bigint NOT NULL DEFAULT 0);"
              " CREATE FUNCTION pgfailover.record() RETURNS trigger LANGUAGE plpgsql AS"
              "   $$BEGIN INSERT INTO public.trigger_runs VALUES (current_user); RETURN NEW; END$$;"
              " CREATE TRIGGER record BEFORE INSERT OR UPDATE ON pgfailover.heartbeat"
              "   FOR EACH ROW EXECUTE FUNCTION pgfailover.record();"
              " RESET ROLE",
              &ok);
  ASSERT_TRUE(ok);
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  NodeObservation o = prober.probe(true);
  EXPECT_TRUE(o.reachable) << describe(o);
  EXPECT_FALSE(o.heartbeat_written);
  EXPECT_EQ(o.failure, ProbeFailure::kCannotCommit) << describe(o);
  EXPECT_NE(o.error.find("pgfailover.heartbeat exists and is owned by intruder"), std::string::npos)
      << o.error;
  EXPECT_EQ(cluster.sql(0, "SELECT count(*) FROM pgfailover.heartbeat"), "0");
  EXPECT_EQ(cluster.sql(0, "SELECT count(*) FROM public.trigger_runs"), "0");
  // Releasing the lease on a clean stop leaves it alone too.
  EXPECT_TRUE(prober.releaseLease().isOk());
  EXPECT_EQ(cluster.sql(0, "SELECT count(*) FROM public.trigger_runs"), "0");

  // Columns other than pgfailover's, on a table of its own role, are refused as well.
  cluster.sql(0,
              "DROP TABLE pgfailover.heartbeat; CREATE TABLE pgfailover.heartbeat"
              " (id int PRIMARY KEY, ts timestamptz NOT NULL, node text NOT NULL, extra text)",
              &ok);
  ASSERT_TRUE(ok);
  o = prober.probe(true);
  EXPECT_FALSE(o.heartbeat_written);
  EXPECT_NE(o.error.find("exists with other columns than pgfailover's (unexpected: extra text)"),
            std::string::npos)
      << o.error;

  // Once it is gone, pgfailover makes its own and writes there.
  cluster.sql(0, "DROP TABLE pgfailover.heartbeat", &ok);
  ASSERT_TRUE(ok);
  o = prober.probe(true);
  EXPECT_TRUE(o.heartbeat_written) << describe(o);
  EXPECT_EQ(cluster.sql(0, "SELECT node FROM pgfailover.heartbeat WHERE id = 1"), "pg1");
}

// A table an older version made (without the lease columns) is completed, not refused.
TEST(PgProberTest, HeartbeatTableOfAnOlderVersionIsCompleted) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  bool ok = false;
  cluster.sql(0,
              "CREATE SCHEMA pgfailover; CREATE TABLE pgfailover.heartbeat"
              " (id int PRIMARY KEY, ts timestamptz NOT NULL, node text NOT NULL)",
              &ok);
  ASSERT_TRUE(ok);
  NodeProber prober(nodeConfig(cluster, 0), probeConfig());
  NodeObservation o = prober.probe(true);
  EXPECT_TRUE(o.heartbeat_written) << describe(o);
  EXPECT_EQ(cluster.sql(0, "SELECT node || ' ' || timeline FROM pgfailover.heartbeat"), "pg1 1");
}

TEST(PgProberTest, WrongPasswordIsRejectedWithoutTheSecret) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  config::NodeConfig node = nodeConfig(cluster, 0);
  const std::string wrong = "wrong-Pa55word-" + cluster.password().substr(0, 4);
  node.password = Secret(wrong);
  NodeProber prober(node, probeConfig());

  NodeObservation o = prober.probe(true);
  EXPECT_FALSE(o.reachable);
  EXPECT_EQ(o.failure, ProbeFailure::kRejected) << describe(o);
  EXPECT_NE(o.error.find("password authentication failed"), std::string::npos) << o.error;
  EXPECT_EQ(o.error.find(wrong), std::string::npos) << o.error;
  EXPECT_EQ(o.error.find(cluster.password()), std::string::npos) << o.error;
  // The verbose detail used to read the SQLSTATE is not shown.
  EXPECT_EQ(o.error.find("28P01"), std::string::npos) << o.error;
  EXPECT_EQ(o.error.find("LOCATION"), std::string::npos) << o.error;

  Status promoted = prober.promote(Millis{1000});
  EXPECT_EQ(promoted.code(), StatusCode::kUnauthenticated) << promoted.message();
  EXPECT_EQ(promoted.message().find(wrong), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::pg
