// The node's lease guard (`pgfailover lease-guard`) against real PostgreSQL 15 servers, with
// heartbeat rows written the way pgfailover writes them (src/pg/node_prober.cc): it fences a
// primary whose own lease ran out while no peer replies; it never fences a primary because of
// another node's row (the old primary's, replicated before this node was promoted) or because
// the node itself is named among the peers; a guard started before the heartbeat table exists
// puts no error into the server log; a heartbeat table someone else owns is refused; hostile row
// text never reaches SQL; a hung server holds a check only until its deadline; SIGTERM ends the
// guard cleanly. The guard runs as the tests do the node scripts: as root it becomes the
// server's OS user, and connects over the unix socket.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;

// The table as pgfailover creates it (NodeProber's heartbeat_setup_).
constexpr const char* kSetup =
    "CREATE SCHEMA IF NOT EXISTS pgfailover; CREATE TABLE IF NOT EXISTS pgfailover.heartbeat"
    " (id int PRIMARY KEY, ts timestamptz NOT NULL, node text NOT NULL); ALTER TABLE"
    " pgfailover.heartbeat ADD COLUMN IF NOT EXISTS lease_ms integer NOT NULL DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS self_fenced_at timestamptz,"
    " ADD COLUMN IF NOT EXISTS peers text NOT NULL DEFAULT '',"
    " ADD COLUMN IF NOT EXISTS timeline bigint NOT NULL DEFAULT 0";
// The timeline the node writes on, as pgfailover's heartbeat computes it.
constexpr const char* kTimeline =
    "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint";
constexpr const char* kReadOnly = "SHOW default_transaction_read_only";
constexpr const char* kRow =
    "SELECT node || ' ' || peers || ' ' || timeline FROM pgfailover.heartbeat WHERE id = 1";

std::vector<std::string> guardArgs(const PgCluster& cluster, std::size_t i) {
  return {"lease-guard", "--dir", cluster.nodeDir(i), "--name", cluster.node(i).name};
}

// `pgfailover lease-guard --once` on node i: its exit status, its output in `output`.
int guardOnce(const PgCluster& cluster, std::size_t i, std::string* output) {
  std::vector<std::string> argv = {PGFAILOVER_BINARY};
  for (const auto& arg : guardArgs(cluster, i)) argv.push_back(arg);
  argv.push_back("--once");
  ProcessOptions options;
  options.merge_stderr = true;
  options.timeout = 60s;
  ProcessResult result = runProcess(argv, options);
  *output = result.out;
  return result.exit_code;
}

// The guard as it runs on a host: in the foreground, checking every 0.2 s, until stopped.
DaemonOptions guardLoop(const PgCluster& cluster, std::size_t i) {
  std::vector<std::string> args = guardArgs(cluster, i);
  args.insert(args.end(), {"--check-interval", "0.2"});
  return DaemonOptions{
      PGFAILOVER_BINARY, args, cluster.dir() + "/guard-" + cluster.node(i).name + ".log", {}};
}

// Writes the heartbeat row on node i as pgfailover would, `age` old: lease_ms 2500 unless
// given. `timeline` is SQL (kTimeline: the node's current one).
void writeHeartbeat(const PgCluster& cluster, std::size_t i, const std::string& node,
                    const std::string& peers, const std::string& timeline,
                    const std::string& age = "10 s", int lease_ms = 2500) {
  bool ok = false;
  cluster.sql(i,
              std::string(kSetup) +
                  "; INSERT INTO pgfailover.heartbeat (id, ts, node, lease_ms, peers, timeline)"
                  " VALUES (1, now() - interval '" +
                  age + "', '" + node + "', " + std::to_string(lease_ms) + ", '" + peers + "', " +
                  timeline +
                  ") ON CONFLICT (id) DO UPDATE SET ts = excluded.ts, node = excluded.node,"
                  " lease_ms = excluded.lease_ms, peers = excluded.peers,"
                  " timeline = excluded.timeline, self_fenced_at = NULL",
              &ok);
  ASSERT_TRUE(ok) << "writing the heartbeat row on " << cluster.node(i).name;
}

bool writable(const PgCluster& cluster, std::size_t i) {
  bool ok = false;
  cluster.sql(
      i, "CREATE TABLE IF NOT EXISTS guard_probe(id int); INSERT INTO guard_probe VALUES (1)", &ok);
  return ok;
}

// What pgfailover's unfence does, without the daemon.
void unfence(const PgCluster& cluster, std::size_t i) {
  cluster.sql(i, "ALTER SYSTEM RESET default_transaction_read_only");
  cluster.sql(i, "SELECT pg_reload_conf()");
  ASSERT_TRUE(waitUntil([&] { return cluster.sql(i, kReadOnly) == "off"; }, 10s));
}

// Lines of `text` holding `needle`.
std::size_t countLines(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

// (a) Existing behaviour: the primary's own lease (written for it on its timeline, and, from an
// older pgfailover, without a timeline) ran out and its peer does not stream: fenced, exit 3.
TEST(LeaseGuardTest, PrimaryWhoseOwnLeaseRanOutWithoutAPeerIsFenced) {
  PgCluster cluster(0);  // pg1 alone: its peer pg2 never streams
  ASSERT_TRUE(cluster.ok());
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline);
  ASSERT_EQ(cluster.sql(0, kRow), "pg1 pg2 1");
  std::string output;
  EXPECT_EQ(guardOnce(cluster, 0, &output), 3) << output;
  EXPECT_NE(output.find("no reply from replica pg2"), std::string::npos) << output;
  EXPECT_NE(output.find("the 2500 ms lease ran out"), std::string::npos) << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "on");
  EXPECT_EQ(cluster.sql(0, "SELECT self_fenced_at IS NOT NULL FROM pgfailover.heartbeat"), "t");
  EXPECT_FALSE(writable(cluster, 0)) << "a self-fenced primary takes no write";

  // A row without a timeline (an older pgfailover) written for this node: the name decides.
  unfence(cluster, 0);
  writeHeartbeat(cluster, 0, "pg1", "pg2", "0");
  EXPECT_EQ(guardOnce(cluster, 0, &output), 3) << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "on");
}

// (b) The compose-lab bug: the promoted replica still holds the old primary's row (node pg1,
// peers pg2: itself, old timeline, lease long expired). It is not pg2's lease: the guard leaves
// the new primary writable, in its loop across the promotion and with --once. Once pgfailover
// writes pg2's own row on the new timeline, that lease binds it.
TEST(LeaseGuardTest, PromotedReplicaIsNotFencedByTheOldPrimarysRow) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline);
  ASSERT_TRUE(waitUntil([&] { return cluster.sql(1, kRow) == "pg1 pg2 1"; }, 30s))
      << cluster.sql(1, kRow);
  // The old primary goes away; the replica's guard runs as on its host.
  ASSERT_EQ(cluster.runNodeScript(0, "stop.sh", {"--mode", "fast"}), 0);
  DaemonProcess guard(guardLoop(cluster, 1));
  ASSERT_TRUE(guard.start());
  std::this_thread::sleep_for(1s);  // a few checks on the replica
  ASSERT_EQ(cluster.sql(1, "SELECT pg_promote()"), "t");
  ASSERT_EQ(cluster.sql(1, "SELECT pg_is_in_recovery()"), "f");
  ASSERT_EQ(cluster.sql(1, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
            "00000002");
  ASSERT_EQ(cluster.sql(1, kRow), "pg1 pg2 1");
  // Well over the 2500 ms lease since the promotion (the guard in the lab fenced after 2.8 s).
  std::this_thread::sleep_for(4500ms);
  EXPECT_TRUE(guard.running()) << guard.log();
  EXPECT_EQ(cluster.sql(1, kReadOnly), "off") << guard.log();
  EXPECT_TRUE(writable(cluster, 1)) << guard.log();
  ASSERT_TRUE(guard.stop().has_value());
  const std::string log = guard.log();
  EXPECT_EQ(countLines(log, "fenced node"), 0u) << log;
  EXPECT_EQ(countLines(log, "not this node's lease"), 1u) << "logged once, not every check\n"
                                                          << log;
  EXPECT_NE(log.find("written for node 'pg1' on timeline 1 (this node is pg2 on timeline 2)"),
            std::string::npos)
      << log;

  std::string output;
  EXPECT_EQ(guardOnce(cluster, 1, &output), 0) << output;
  EXPECT_EQ(cluster.sql(1, kReadOnly), "off") << output;
  EXPECT_EQ(cluster.sql(1, "SELECT self_fenced_at IS NULL FROM pgfailover.heartbeat"), "t");

  // A row for pg2 from an older timeline (pg2 was the primary on timeline 1 before): written
  // before this promotion, so not the lease of the primary it is now.
  writeHeartbeat(cluster, 1, "pg2", "pg1", "1");
  EXPECT_EQ(guardOnce(cluster, 1, &output), 0) << output;
  EXPECT_NE(output.find("written for this node on timeline 1, not on its current timeline 2"),
            std::string::npos)
      << output;
  EXPECT_EQ(cluster.sql(1, kReadOnly), "off") << output;

  // pgfailover's heartbeat for pg2 on timeline 2, then pgfailover and pg1 silent: its own lease.
  writeHeartbeat(cluster, 1, "pg2", "pg1", kTimeline);
  ASSERT_EQ(cluster.sql(1, kRow), "pg2 pg1 2");
  EXPECT_EQ(guardOnce(cluster, 1, &output), 3) << output;
  EXPECT_NE(output.find("no reply from replica pg1"), std::string::npos) << output;
  EXPECT_EQ(cluster.sql(1, kReadOnly), "on");
}

// (b') A row without a timeline (an older pgfailover) written for another node is not this
// node's lease either: the name decides.
TEST(LeaseGuardTest, RowWithoutATimelineForAnotherNodeIsNotThisNodesLease) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  std::string output;
  writeHeartbeat(cluster, 0, "pg2", "pg1", "0");
  EXPECT_EQ(guardOnce(cluster, 0, &output), 0) << output;
  EXPECT_NE(output.find("written for node 'pg2' by a pgfailover that writes no timeline"),
            std::string::npos)
      << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "off");
}

// (c) A row for this node that names only the node itself as a peer: nobody pgfailover could
// promote, and the node never vouches for (or against) itself: no fence. Named with a real
// peer that does not stream, it is fenced as ever (the node itself is skipped, not the row).
TEST(LeaseGuardTest, NodeNamedAmongItsOwnPeersIsNotItsOwnStalePeer) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  std::string output;
  writeHeartbeat(cluster, 0, "pg1", "pg1", kTimeline);
  EXPECT_EQ(guardOnce(cluster, 0, &output), 0) << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "off") << output;
  EXPECT_EQ(output.find("fenced node"), std::string::npos) << output;

  writeHeartbeat(cluster, 0, "pg1", "pg1,pg2", kTimeline);
  EXPECT_EQ(guardOnce(cluster, 0, &output), 3) << output;
  EXPECT_NE(output.find("no reply from replica pg2"), std::string::npos) << output;
}

// A row on this node's timeline written under another name: pgfailover calls the node
// otherwise than --name. The guard says so, once, and enforces the lease (safety first).
TEST(LeaseGuardTest, RowOnThisTimelineUnderAnotherNameWarnsAndIsEnforced) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  writeHeartbeat(cluster, 0, "db-one", "pg2", kTimeline);
  DaemonProcess guard(guardLoop(cluster, 0));
  ASSERT_TRUE(guard.start());
  ASSERT_TRUE(waitUntil([&] { return cluster.sql(0, kReadOnly) == "on"; }, 20s)) << guard.log();
  ASSERT_TRUE(guard.stop().has_value());
  const std::string log = guard.log();
  EXPECT_EQ(countLines(log, "WARNING"), 1u) << log;
  EXPECT_NE(log.find("for node 'db-one', but this guard runs with --name pg1"), std::string::npos)
      << log;
  EXPECT_EQ(countLines(log, "fenced node pg1"), 1u) << log;
}

// (d) Guards started on a primary and a replica before pgfailover created the table leave no
// error in either server log: they look the table up, and read it only once it exists (and
// then do read it: the primary's guard fences once its lease ran out and the replica stopped).
TEST(LeaseGuardTest, GuardStartedBeforeTheTableExistsLeavesNoErrorInTheServerLog) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster.sql(0, "SELECT to_regclass('pgfailover.heartbeat') IS NULL"), "t");
  const std::size_t log0 = readTextFile(cluster.logFile(0)).size();
  const std::size_t log1 = readTextFile(cluster.logFile(1)).size();
  DaemonProcess primary_guard(guardLoop(cluster, 0));
  DaemonProcess replica_guard(guardLoop(cluster, 1));
  ASSERT_TRUE(primary_guard.start());
  ASSERT_TRUE(replica_guard.start());
  std::this_thread::sleep_for(2s);  // about ten checks each without a table

  // pgfailover's first heartbeat (a lease of 0: nothing to enforce yet); the replica replays it.
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline, "0 s", 0);
  // The test's own reads must not be the error it looks for: the row is read on the replica
  // only once the table has been replayed there.
  ASSERT_TRUE(waitUntil(
      [&] {
        return cluster.sql(1, "SELECT to_regclass('pgfailover.heartbeat') IS NOT NULL") == "t";
      },
      30s));
  ASSERT_TRUE(waitUntil([&] { return cluster.sql(1, kRow) == "pg1 pg2 1"; }, 30s));
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(primary_guard.running()) << primary_guard.log();
  EXPECT_TRUE(replica_guard.running()) << replica_guard.log();

  const std::string server0 = readTextFile(cluster.logFile(0)).substr(log0);
  const std::string server1 = readTextFile(cluster.logFile(1)).substr(log1);
  EXPECT_EQ(countLines(server0, "does not exist"), 0u) << server0;
  EXPECT_EQ(countLines(server1, "does not exist"), 0u) << server1;
  EXPECT_EQ(countLines(server0, "ERROR"), 0u) << server0;
  EXPECT_EQ(countLines(server1, "ERROR"), 0u) << server1;

  // The primary's guard reads the table now: a lease that runs out with the replica stopped
  // fences the primary.
  ASSERT_EQ(cluster.runNodeScript(1, "stop.sh", {"--mode", "fast"}), 0);
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline);
  EXPECT_TRUE(waitUntil([&] { return cluster.sql(0, kReadOnly) == "on"; }, 20s))
      << primary_guard.log();
  ASSERT_TRUE(primary_guard.stop().has_value());
  ASSERT_TRUE(replica_guard.stop().has_value());
  EXPECT_EQ(countLines(primary_guard.log(), "fenced node pg1"), 1u) << primary_guard.log();
  EXPECT_EQ(countLines(readTextFile(cluster.logFile(0)).substr(log0), "does not exist"), 0u);
}

// Issue 11: a heartbeat table that a role other than a superuser (or --heartbeat-owner) owns
// is someone else's: the guard says so and enforces nothing from it, however expired its lease.
TEST(LeaseGuardTest, HeartbeatTableOwnedByAnotherRoleIsRefused) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  bool ok = false;
  cluster.sql(0, "CREATE ROLE mallory LOGIN NOSUPERUSER", &ok);
  ASSERT_TRUE(ok);
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline);
  cluster.sql(0, "ALTER TABLE pgfailover.heartbeat OWNER TO mallory", &ok);
  ASSERT_TRUE(ok);
  std::string output;
  EXPECT_EQ(guardOnce(cluster, 0, &output), 0) << output;
  EXPECT_NE(output.find("the heartbeat table pgfailover.heartbeat is owned by role 'mallory', "
                        "which is not a superuser"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("enforcing nothing from it"), std::string::npos) << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "off") << output;
  EXPECT_EQ(cluster.sql(0, "SELECT self_fenced_at IS NULL FROM pgfailover.heartbeat"), "t");

  // The role pgfailover writes the table as, when it is no superuser, is named explicitly.
  std::vector<std::string> argv = {PGFAILOVER_BINARY};
  for (const auto& arg : guardArgs(cluster, 0)) argv.push_back(arg);
  argv.insert(argv.end(), {"--once", "--heartbeat-owner", "mallory"});
  ProcessOptions options;
  options.merge_stderr = true;
  options.timeout = 60s;
  ProcessResult named = runProcess(argv, options);
  EXPECT_EQ(named.exit_code, 3) << named.out;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "on") << named.out;

  // Given back to a superuser: enforced without the flag.
  unfence(cluster, 0);
  cluster.sql(0, "ALTER TABLE pgfailover.heartbeat OWNER TO CURRENT_USER", &ok);
  ASSERT_TRUE(ok);
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline);
  EXPECT_EQ(guardOnce(cluster, 0, &output), 3) << output;
}

// A trigger on the table would run as the guard's superuser when it marks a fence (a role
// granted TRIGGER may add one): such a table is refused too.
TEST(LeaseGuardTest, HeartbeatTableWithATriggerIsRefused) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline);
  bool ok = false;
  cluster.sql(0,
              "CREATE FUNCTION pgfailover.on_mark() RETURNS trigger LANGUAGE plpgsql AS"
              " 'BEGIN RETURN NEW; END';"
              " CREATE TRIGGER on_mark BEFORE UPDATE ON pgfailover.heartbeat"
              " FOR EACH ROW EXECUTE FUNCTION pgfailover.on_mark()",
              &ok);
  ASSERT_TRUE(ok);
  std::string output;
  EXPECT_EQ(guardOnce(cluster, 0, &output), 0) << output;
  EXPECT_NE(output.find("has 1 trigger(s)"), std::string::npos) << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "off") << output;
  cluster.sql(0, "DROP TRIGGER on_mark ON pgfailover.heartbeat", &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(guardOnce(cluster, 0, &output), 3) << output;
}

// Issue 11: the row's text (node, peers) is data, never SQL: a hostile peer list makes the row
// untrusted (no fence), a hostile node name is logged escaped, and neither puts an error into
// the server log.
TEST(LeaseGuardTest, RowTextNeverReachesSql) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  const std::size_t log0 = readTextFile(cluster.logFile(0)).size();
  std::string output;
  writeHeartbeat(cluster, 0, "pg1", "pg2''); SELECT pg_terminate_backend(pg_backend_pid()); --",
                 kTimeline);
  EXPECT_EQ(guardOnce(cluster, 0, &output), 0) << output;
  EXPECT_EQ(cluster.sql(0, kReadOnly), "off") << output;

  // On this node's timeline under another name: enforced, the name logged as data.
  writeHeartbeat(cluster, 0, "x", "pg2", kTimeline);
  bool ok = false;
  cluster.sql(0, "UPDATE pgfailover.heartbeat SET node = 'x'' OR true; --' || chr(10) || 'next'",
              &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(guardOnce(cluster, 0, &output), 3) << output;
  EXPECT_NE(output.find("for node 'x' OR true; --\\x0anext'"), std::string::npos) << output;
  EXPECT_EQ(countLines(readTextFile(cluster.logFile(0)).substr(log0), "ERROR"), 0u)
      << readTextFile(cluster.logFile(0)).substr(log0);
}

// Every call has a deadline: a server process that stops answering holds one check for 2 s,
// after which the guard reconnects and checks again; SIGTERM then ends it cleanly (exit 0).
TEST(LeaseGuardTest, HungServerHoldsACheckOnlyUntilItsDeadline) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  writeHeartbeat(cluster, 0, "pg1", "pg2", kTimeline, "0 s", 0);
  DaemonProcess guard(guardLoop(cluster, 0));
  ASSERT_TRUE(guard.start());
  const std::string kBackend =
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgfailover-lease-guard'";
  std::string backend;
  ASSERT_TRUE(waitUntil(
      [&] {
        backend = cluster.sql(0, kBackend);
        return !backend.empty();
      },
      20s))
      << guard.log();
  const pid_t pid = std::stoi(backend);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  EXPECT_TRUE(waitUntil(
      [&] { return guard.log().find("timeout expired after 2000 ms") != std::string::npos; }, 10s))
      << guard.log();
  ::kill(pid, SIGCONT);
  EXPECT_TRUE(waitUntil(
      [&] { return guard.log().find("checking node pg1 again") != std::string::npos; }, 10s))
      << guard.log();
  EXPECT_TRUE(guard.running()) << guard.log();
  const auto stopped_at = std::chrono::steady_clock::now();
  auto status = guard.stop();
  const auto took = std::chrono::steady_clock::now() - stopped_at;
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << guard.log();
  // Generous here (a loaded machine); bench/lease_guard.sh measures the real figure.
  EXPECT_LT(took, 3s) << guard.log();
  EXPECT_NE(guard.log().find("stopped: received SIGTERM"), std::string::npos) << guard.log();
  EXPECT_EQ(cluster.sql(0, kBackend), "") << "the guard's session ended with it";
}

// --once on a node whose server is down: it could not check, and says so (exit 1).
TEST(LeaseGuardTest, OnceAgainstAStoppedServerExitsOne) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster.runNodeScript(0, "stop.sh", {"--mode", "fast"}), 0);
  std::string output;
  EXPECT_EQ(guardOnce(cluster, 0, &output), 1) << output;
  EXPECT_NE(output.find("cannot check node pg1"), std::string::npos) << output;
}

}  // namespace
}  // namespace pgfailover::testing
