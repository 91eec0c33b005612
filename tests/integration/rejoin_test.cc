// The rejoin itself (src/lifecycle/rejoin.h), driven directly against real PostgreSQL 15 nodes
// through the local runner: the data directory is out of service (nothing can start it) while
// pg_rewind works on it; a rejoin cut short is put back and finished; a crashed standby on the
// primary's timeline is restarted rather than rewound; a missing data directory is cloned; a
// clone that would not fit on the disk is refused with the old data intact; a folder that is not
// a data directory is never overwritten.
#include "lifecycle/rejoin.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "pg/connection.h"
#include "pg/copy_sizes.h"
#include "ssh/local_runner.h"
#include "support/lifecycle_harness.h"
#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string scriptsDir() {
  return std::string(PGFAILOVER_SOURCE_DIR) + "/scripts/node";
}

class RejoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    bool ok = false;
    cluster_.sql(0, rewindGrantsSql(cluster_.replicationUser()), &ok);
    ASSERT_TRUE(ok) << "granting pg_rewind's functions";
    cluster_.sql(0, "CREATE TABLE t (id int primary key, origin text)", &ok);
    ASSERT_TRUE(ok);
    ASSERT_TRUE(waitUntil([&] { return cluster_.isStreaming(1); }, 30s));
  }

  // Rejoin node `node` as a replica of node `primary`.
  lifecycle::RejoinPlan planFor(std::size_t node, std::size_t primary) const {
    lifecycle::RejoinPlan plan;
    plan.node = cluster_.node(node).name;
    plan.data_dir = cluster_.node(node).data_dir;
    plan.bin_dir = fs::path(pgBinary("pg_ctl")).parent_path().string();
    plan.start_command = startCommand(node);
    plan.primary_host = "127.0.0.1";
    plan.primary_port = cluster_.node(primary).port;
    plan.replication_user = cluster_.replicationUser();
    plan.passfile = cluster_.replicationPassfile(node);
    return plan;
  }

  std::string startCommand(std::size_t node) const {
    return "bash " + shellQuote(scriptsDir() + "/start.sh") + " --dir " +
           shellQuote(cluster_.nodeDir(node)) + " --timeout 60";
  }

  lifecycle::RejoinResult rejoin(const lifecycle::RejoinPlan& plan, std::size_t node,
                                 const std::function<void(const std::string&)>& on_step = {},
                                 std::optional<std::size_t> sizes_from = std::nullopt) {
    auto verify = [this, node](Millis budget) {
      return waitUntil([&] { return cluster_.isStreaming(node); }, budget);
    };
    auto progress = [&](const std::string& step) {
      steps_.push_back(step);
      if (on_step) on_step(step);
    };
    lifecycle::Rejoiner rejoiner(runner_, verify, progress, stop_);
    if (sizes_from) {
      // The primary's sizes, read by the query pgfailover runs on its own connection.
      pg::ConnectOptions options;
      options.host = "127.0.0.1";
      options.port = cluster_.node(*sizes_from).port;
      options.user = cluster_.user();
      options.password = Secret(cluster_.password());
      options.connect_timeout = Millis{5000};
      rejoiner.setSourceSizes([options](
                                  std::string& error) -> std::optional<lifecycle::SourceSizes> {
        pg::Connection connection;
        if (auto failed = connection.connect(options, std::chrono::steady_clock::now() + 5s)) {
          error = failed->message;
          return std::nullopt;
        }
        auto sizes = pg::readCopySizes(connection, std::chrono::steady_clock::now() + 10s, error);
        if (!sizes) return std::nullopt;
        return lifecycle::SourceSizes{sizes->pg_wal_bytes, sizes->data_bytes};
      });
    }
    return rejoiner.run(plan, Millis{240000});
  }

  // Promotes node 1 and makes node 0, the old primary, diverge with a write of its own.
  void failOverWithDivergence() {
    bool ok = false;
    cluster_.sql(0, "INSERT INTO t VALUES (1, 'before')", &ok);
    ASSERT_TRUE(ok);
    ASSERT_TRUE(waitUntil([&] { return cluster_.sql(1, "SELECT count(*) FROM t") == "1"; }, 30s));
    cluster_.sql(1, "SELECT pg_promote(true, 60)", &ok);
    ASSERT_TRUE(ok);
    cluster_.sql(0, "INSERT INTO t VALUES (2, 'lost on the old primary')", &ok);
    ASSERT_TRUE(ok);
    cluster_.sql(1, "INSERT INTO t VALUES (3, 'new primary')", &ok);
    ASSERT_TRUE(ok);
    // pg_rewind reads the new timeline from the source's control file (docs/lifecycle.md).
    cluster_.sql(1, "CHECKPOINT", &ok);
    ASSERT_TRUE(ok);
  }

  // Node 0, the old primary, diverged (failOverWithDivergence) and crashed; node 1, the new
  // primary, holds far more pg_wal than data.
  void crashDivergedPrimaryBesideABigPgWal() {
    ASSERT_NO_FATAL_FAILURE(failOverWithDivergence());
    ASSERT_NO_FATAL_FAILURE(fillPgWal(1));
    cluster_.kill9(0);
    ASSERT_TRUE(waitUntil([&] { return !cluster_.isRunning(0); }, 30s));
  }

  // After the rejoin: node 0 streams, has the new primary's rows and not the one it wrote alone.
  void expectOldPrimaryStreamsWithoutItsLostRow() {
    EXPECT_TRUE(cluster_.isStreaming(0));
    EXPECT_TRUE(waitUntil([&] { return cluster_.sql(0, "SELECT count(*) FROM t") == "2"; }, 30s));
    EXPECT_EQ(cluster_.sql(0, "SELECT count(*) FROM t WHERE id = 2"), "0");
  }

  // WAL that outlives its data: a table loaded and dropped again, then a checkpoint. The
  // segments stay in pg_wal (wal_keep_size, or recycled for reuse); the databases shrink back.
  void fillPgWal(std::size_t node) {
    bool ok = false;
    cluster_.sql(node,
                 "CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad "
                 "FROM generate_series(1, 400000) g",
                 &ok);
    ASSERT_TRUE(ok);
    cluster_.sql(node, "DROP TABLE bulk", &ok);
    ASSERT_TRUE(ok);
    cluster_.sql(node, "CHECKPOINT", &ok);
    ASSERT_TRUE(ok);
    const std::string wal = cluster_.sql(node, "SELECT sum(size) FROM pg_ls_waldir()");
    const std::string data =
        cluster_.sql(node, "SELECT sum(pg_database_size(oid)) FROM pg_database");
    ASSERT_GT(std::stoll(wal), std::stoll(data)) << "pg_wal " << wal << " B, databases " << data;
  }

  bool contains(const std::string& step) const {
    return std::find(steps_.begin(), steps_.end(), step) != steps_.end();
  }

  PgCluster cluster_;
  ssh::LocalRunner runner_{::geteuid() == 0 ? "postgres" : ""};
  std::atomic<bool> stop_{false};
  std::vector<std::string> steps_;
};

// Quotes, a backslash, spaces, a tab and a newline: what a replication role or a passfile path
// may hold, and what primary_conninfo, pg_rewind's and pg_basebackup's connection strings and
// postgresql.auto.conf must carry through unchanged (a control character never comes from a
// configuration, which refuses it; the escaping does not rely on that).
class HostileValuesRejoinTest : public RejoinTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(RejoinTest::SetUp());
    const std::string password = randomToken(24);
    bool ok = false;
    const std::string role = quoteIdent(kUser);
    cluster_.sql(0, "CREATE ROLE " + role + " WITH LOGIN REPLICATION PASSWORD '" + password + "'",
                 &ok);
    ASSERT_TRUE(ok) << "creating the role " << kUser;
    const std::string to = " TO " + role + ";";
    cluster_.sql(0,
                 "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean)" + to +
                     " GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean)" + to +
                     " GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text)" + to +
                     " GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, "
                     "bigint, boolean)" +
                     to,
                 &ok);
    ASSERT_TRUE(ok) << "granting pg_rewind's functions";
    // The nodes' pg_hba.conf names the configured replication role only.
    for (std::size_t i = 0; i < 2; ++i) {
      std::ofstream(cluster_.nodeDir(i) + "/pg_hba.conf", std::ios::app)
          << "host replication all 127.0.0.1/32 scram-sha-256\n";
      cluster_.sql(i, "SELECT pg_reload_conf()", &ok);
      ASSERT_TRUE(ok);
    }
    std::string escaped;  // a .pgpass field escapes \ and :
    for (char c : std::string(kUser)) {
      if (c == '\\' || c == ':') escaped += '\\';
      escaped += c;
    }
    for (std::size_t i = 0; i < 2; ++i) {
      const std::string dir = cluster_.nodeDir(i) + kPassDir;
      ASSERT_TRUE(fs::create_directory(dir));
      ASSERT_TRUE(writeTextFile(passfile(i), "*:*:*:" + escaped + ":" + password + "\n", 0600));
      if (::geteuid() == 0) {
        passwd* account = getpwnam("postgres");
        ASSERT_NE(account, nullptr);
        ASSERT_EQ(::chown(dir.c_str(), account->pw_uid, account->pw_gid), 0);
        ASSERT_EQ(::chown(passfile(i).c_str(), account->pw_uid, account->pw_gid), 0);
      }
    }
    ASSERT_TRUE(waitUntil(
        [&] {
          return cluster_.sql(1, "SELECT count(*) FROM pg_roles WHERE rolname = " +
                                     quoteLiteral(kUser)) == "1";
        },
        30s));
  }

  std::string passfile(std::size_t node) const {
    return cluster_.nodeDir(node) + kPassDir + "/rep pass'file";
  }

  lifecycle::RejoinPlan hostilePlan(std::size_t node, std::size_t primary) const {
    auto plan = planFor(node, primary);
    plan.replication_user = kUser;
    plan.passfile = passfile(node);
    return plan;
  }

  // What the server reads from its files, through the server itself.
  std::string serverSetting(std::size_t node, const std::string& name) const {
    std::vector<std::string> argv = {pgBinary("postgres"), "-C", name, "-D",
                                     cluster_.node(node).data_dir};
    if (::geteuid() == 0) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
    ProcessOptions options;
    options.timeout = 30s;
    auto result = runProcess(argv, options);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::string value = result.out;
    if (!value.empty() && value.back() == '\n') value.pop_back();
    return value;
  }

  // The streaming node's primary_conninfo: read back by the server, then parsed by libpq; it
  // carries exactly the plan's values and no other keyword.
  void expectConninfoReadsBack(std::size_t node, const lifecycle::RejoinPlan& plan) {
    const std::string conninfo = serverSetting(node, "primary_conninfo");
    EXPECT_EQ(conninfo, lifecycle::replicationConninfo(plan, true));
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
    std::unique_ptr<char, decltype(&PQfreemem)> error_text(error, &PQfreemem);
    ASSERT_TRUE(options) << conninfo << ": " << (error != nullptr ? error : "");
    std::map<std::string, std::string> set;
    for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o)
      if (o->val != nullptr) set[o->keyword] = o->val;
    const std::map<std::string, std::string> expected = {
        {"host", "127.0.0.1"},
        {"port", std::to_string(plan.primary_port)},
        {"user", kUser},
        {"passfile", passfile(node)},
        {"application_name", cluster_.node(node).name}};
    EXPECT_EQ(set, expected) << conninfo;
    // The primary sees the stream under that role.
    const std::size_t primary = 1 - node;
    EXPECT_TRUE(waitUntil(
        [&] {
          return cluster_.sql(primary,
                              "SELECT usename FROM pg_stat_replication WHERE "
                              "application_name = " +
                                  quoteLiteral(cluster_.node(node).name)) == kUser;
        },
        30s))
        << cluster_.sql(primary, "SELECT usename, application_name FROM pg_stat_replication");
  }

  static std::string quoteIdent(const std::string& name) {
    std::string out = "\"";
    for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  }
  static std::string quoteLiteral(const std::string& text) {
    std::string out = "E'";
    for (char c : text) {
      if (c == '\'' || c == '\\') out += '\\';
      out += c;
    }
    return out + "'";
  }

  static constexpr const char* kUser = "rep'l \\user=x";
  static constexpr const char* kPassDir = "/pass 'dir' \\ \t\n x";
};

TEST_F(HostileValuesRejoinTest, OldPrimaryIsRewoundAndStreamsWithQuotedValues) {
  ASSERT_NO_FATAL_FAILURE(failOverWithDivergence());
  const auto plan = hostilePlan(0, 1);
  auto result = rejoin(plan, 0);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "rewind") << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(0));
  expectConninfoReadsBack(0, plan);
}

TEST_F(HostileValuesRejoinTest, MissingDataDirectoryIsClonedAndStreamsWithQuotedValues) {
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(1, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  fs::remove_all(cluster_.node(1).data_dir);
  auto plan = hostilePlan(1, 0);
  plan.slot_name = "pgfailover_pg2";
  bool ok = false;
  cluster_.sql(0, "SELECT pg_create_physical_replication_slot('pgfailover_pg2')", &ok);
  ASSERT_TRUE(ok);
  auto result = rejoin(plan, 1);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "clone") << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(1));
  expectConninfoReadsBack(1, plan);
  EXPECT_EQ(serverSetting(1, "primary_slot_name"), "pgfailover_pg2");
}

TEST_F(RejoinTest, OldPrimaryIsRewoundWhileNothingCanStartIt) {
  ASSERT_NO_FATAL_FAILURE(failOverWithDivergence());
  const std::string data = cluster_.node(0).data_dir;
  bool checked = false;
  std::string start_output, pg_ctl_output;
  int start_status = 0, pg_ctl_status = 0;
  bool data_present_during_rewind = true;
  auto result = rejoin(planFor(0, 1), 0, [&](const std::string& step) {
    if (step != "pg_rewind") return;
    // What an operator, systemd or a container restart would do in the middle of the rewind.
    checked = true;
    data_present_during_rewind = fs::exists(data);
    start_status = cluster_.runNodeScript(0, "start.sh", {"--timeout", "10"}, &start_output);
    pg_ctl_status =
        runCommand((::geteuid() == 0 ? "runuser -u postgres -- " : std::string()) +
                       shellQuote(pgBinary("pg_ctl")) + " start -w -t 10 -D " + shellQuote(data),
                   &pg_ctl_output);
  });
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "rewind") << result.detail;
  ASSERT_TRUE(checked) << result.detail;
  EXPECT_FALSE(data_present_during_rewind);
  EXPECT_NE(start_status, 0) << start_output;
  EXPECT_NE(start_output.find("pgfailover is rejoining"), std::string::npos) << start_output;
  EXPECT_NE(pg_ctl_status, 0) << pg_ctl_output;
  EXPECT_TRUE(cluster_.isStreaming(0));
  EXPECT_EQ(cluster_.sql(0, "SELECT pg_is_in_recovery()"), "t");
  EXPECT_TRUE(waitUntil([&] { return cluster_.sql(0, "SELECT count(*) FROM t") == "2"; }, 30s));
  EXPECT_EQ(cluster_.sql(0, "SELECT count(*) FROM t WHERE id = 2"), "0");
  EXPECT_FALSE(fs::exists(lifecycle::rejoinWorkDir(data)));
}

// An old primary that crashed with nothing the replica lacked (the promotion log's "0 B
// behind") holds a prefix of the new timeline: it is started as a standby and follows the new
// primary, with no pg_rewind (whose own crash recovery and checkpoint cost seconds).
TEST_F(RejoinTest, CrashedPrimaryWhoseWalEndsBeforeTheForkFollowsWithoutRewind) {
  bool ok = false;
  cluster_.sql(0, "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 1000) g", &ok);
  ASSERT_TRUE(ok);
  // Every record the primary wrote has reached the replica, then the primary dies.
  ASSERT_TRUE(waitUntil(
      [&] {
        const std::string written = cluster_.sql(0, "SELECT pg_current_wal_insert_lsn()");
        return !written.empty() &&
               cluster_.sql(1, "SELECT pg_last_wal_replay_lsn() >= '" + written + "'") == "t";
      },
      30s));
  cluster_.kill9(0);
  ASSERT_TRUE(waitUntil([&] { return !cluster_.isRunning(0); }, 30s));
  cluster_.sql(1, "SELECT pg_promote(true, 60)", &ok);
  ASSERT_TRUE(ok);
  cluster_.sql(1, "INSERT INTO t VALUES (5000, 'new primary')", &ok);
  ASSERT_TRUE(ok);

  auto plan = planFor(0, 1);
  plan.primary_timeline = 2;
  auto result = rejoin(plan, 0);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "follow") << result.detail;
  EXPECT_FALSE(contains("pg_rewind")) << result.detail;
  EXPECT_NE(result.detail.find("nothing to rewind"), std::string::npos) << result.detail;
  std::printf("[ timing   ] follow of a crashed primary, step by step:\n%s", result.detail.c_str());
  EXPECT_TRUE(cluster_.isStreaming(0));
  EXPECT_TRUE(waitUntil([&] { return cluster_.sql(0, "SELECT count(*) FROM t") == "1001"; }, 30s));
}

// An old primary that is still running when it is rejoined (cut off, fenced by its guard, then
// back: chaos scenario 10) and wrote nothing the replica lacked. A clean stop would end its WAL
// with a shutdown checkpoint past the fork and force a pg_rewind; the immediate stop leaves its
// WAL where it ended, so it follows the new timeline like a crashed one.
TEST_F(RejoinTest, RunningPrimaryWhoseWalEndsBeforeTheForkFollowsWithoutRewind) {
  bool ok = false;
  cluster_.sql(0, "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 1000) g", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(waitUntil(
      [&] {
        const std::string written = cluster_.sql(0, "SELECT pg_current_wal_insert_lsn()");
        return !written.empty() &&
               cluster_.sql(1, "SELECT pg_last_wal_replay_lsn() >= '" + written + "'") == "t";
      },
      30s));
  cluster_.sql(1, "SELECT pg_promote(true, 60)", &ok);
  ASSERT_TRUE(ok);
  cluster_.sql(1, "INSERT INTO t VALUES (5000, 'new primary')", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(cluster_.isRunning(0));

  auto plan = planFor(0, 1);
  plan.primary_timeline = 2;
  auto result = rejoin(plan, 0);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "follow") << result.detail;
  EXPECT_NE(result.detail.find("stop (immediate): ok"), std::string::npos) << result.detail;
  EXPECT_NE(result.detail.find("nothing to rewind"), std::string::npos) << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(0));
  EXPECT_TRUE(waitUntil([&] { return cluster_.sql(0, "SELECT count(*) FROM t") == "1001"; }, 30s));
}

// The same crash after the old primary wrote what the replica never got: its WAL goes past the
// fork, so it is rewound and the lost write is gone from it.
TEST_F(RejoinTest, CrashedPrimaryWithWalPastTheForkIsRewound) {
  ASSERT_NO_FATAL_FAILURE(failOverWithDivergence());
  cluster_.kill9(0);
  ASSERT_TRUE(waitUntil([&] { return !cluster_.isRunning(0); }, 30s));
  auto plan = planFor(0, 1);
  plan.primary_timeline = 2;
  auto result = rejoin(plan, 0);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "rewind") << result.detail;
  EXPECT_NE(result.detail.find("it diverged"), std::string::npos) << result.detail;
  std::printf("[ timing   ] rewind of a crashed, diverged primary, step by step:\n%s",
              result.detail.c_str());
  EXPECT_TRUE(cluster_.isStreaming(0));
  EXPECT_TRUE(waitUntil([&] { return cluster_.sql(0, "SELECT count(*) FROM t") == "2"; }, 30s));
  EXPECT_EQ(cluster_.sql(0, "SELECT count(*) FROM t WHERE id = 2"), "0");
}

// The new primary's pg_wal outweighs its databases (a bulk load since dropped, kept by
// wal_keep_size and recycled segments): pg_rewind would copy all of that pg_wal, a fresh copy
// only the databases, so failover.rewind "auto" copies afresh, and says why.
TEST_F(RejoinTest, DivergedPrimaryIsCopiedAfreshWhenThePrimarysWalOutweighsItsData) {
  ASSERT_NO_FATAL_FAILURE(crashDivergedPrimaryBesideABigPgWal());
  auto plan = planFor(0, 1);
  plan.primary_timeline = 2;
  auto result = rejoin(plan, 0, {}, /*sizes_from=*/1);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "clone") << result.detail;
  EXPECT_NE(result.detail.find("it diverged"), std::string::npos) << result.detail;
  EXPECT_NE(result.detail.find("a fresh copy moves less than pg_rewind"), std::string::npos)
      << result.detail;
  EXPECT_FALSE(contains("pg_rewind")) << result.detail;
  // /history's reason: what the WAL showed, and why a fresh copy.
  EXPECT_NE(result.why.find("it diverged"), std::string::npos) << result.why;
  EXPECT_NE(result.why.find("a fresh copy moves less"), std::string::npos) << result.why;
  std::printf("[ timing   ] fresh copy chosen over pg_rewind, step by step:\n%s",
              result.detail.c_str());
  expectOldPrimaryStreamsWithoutItsLostRow();
  const fs::path data = cluster_.node(0).data_dir;
  for (const auto& entry : fs::directory_iterator(data.parent_path()))
    EXPECT_EQ(entry.path().filename().string().find(data.filename().string() + ".pgfailover-"),
              std::string::npos)
        << entry.path() << ": the old data and the work folders are gone once the copy streams";
}

// The same situation with failover.rewind "always": pg_rewind, as before the choice existed.
TEST_F(RejoinTest, DivergedPrimaryIsRewoundWhenRewindIsAlways) {
  ASSERT_NO_FATAL_FAILURE(crashDivergedPrimaryBesideABigPgWal());
  auto plan = planFor(0, 1);
  plan.primary_timeline = 2;
  plan.rewind = lifecycle::RewindPolicy::kAlways;
  auto result = rejoin(plan, 0, {}, /*sizes_from=*/1);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "rewind") << result.detail;
  EXPECT_NE(result.detail.find("failover.rewind is \"always\""), std::string::npos)
      << result.detail;
  expectOldPrimaryStreamsWithoutItsLostRow();
}

TEST_F(RejoinTest, RejoinCutShortIsPutBackAndFinished) {
  ASSERT_NO_FATAL_FAILURE(failOverWithDivergence());
  const std::string data = cluster_.node(0).data_dir;
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(0, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  // Where the last rejoin left it when pgfailover died in the middle of pg_rewind.
  fs::rename(data, lifecycle::rejoinWorkDir(data));
  auto result = rejoin(planFor(0, 1), 0);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_NE(result.detail.find("put back the data directory"), std::string::npos) << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(0));
  EXPECT_FALSE(fs::exists(lifecycle::rejoinWorkDir(data)));
}

TEST_F(RejoinTest, CrashedStandbyOnThePrimaryTimelineIsRestartedNotRewound) {
  cluster_.kill9(1);
  ASSERT_TRUE(waitUntil([&] { return !cluster_.isRunning(1); }, 30s));
  auto plan = planFor(1, 0);
  plan.primary_timeline = 1;
  auto result = rejoin(plan, 1);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "restart") << result.detail;
  EXPECT_FALSE(contains("pg_rewind")) << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(1));
}

// A standby that followed a timeline switch without a rewind (the old primary of a switchover
// here) keeps its last checkpoint on the old timeline until its next restartpoint, minutes
// later. Crashed then, it is still a standby on the primary's timeline: restarted, not rewound
// (a rewind of a crashed standby first recovers it as a primary, which writes WAL of its own and
// ends in a fresh copy: chaos scenario 8).
TEST_F(RejoinTest, CrashedStandbyWhoseCheckpointLagsItsTimelineIsRestartedNotRewound) {
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(0, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  bool ok = false;
  cluster_.sql(1, "SELECT pg_promote(true, 60)", &ok);
  ASSERT_TRUE(ok);
  cluster_.sql(1, "CHECKPOINT", &ok);
  ASSERT_TRUE(ok);
  // The cleanly stopped old primary follows the new timeline (nothing to rewind).
  auto first = rejoin(planFor(0, 1), 0);
  ASSERT_TRUE(first.status.isOk()) << first.status.message() << "\n" << first.detail;
  ASSERT_TRUE(cluster_.isStreaming(0));
  cluster_.sql(1, "INSERT INTO t VALUES (1, 'new primary')", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(waitUntil([&] { return cluster_.sql(0, "SELECT count(*) FROM t") == "1"; }, 30s));
  std::string control;
  runCommand(shellQuote(pgBinary("pg_controldata")) + " " + shellQuote(cluster_.node(0).data_dir) +
                 " | grep \"Latest checkpoint's TimeLineID\"",
             &control);
  control = trim(control);
  EXPECT_EQ(control.substr(control.find_last_of(" \t") + 1), "1")
      << "the standby's checkpoint was expected to lag on timeline 1: " << control;

  cluster_.kill9(0);
  ASSERT_TRUE(waitUntil([&] { return !cluster_.isRunning(0); }, 30s));
  steps_.clear();
  auto plan = planFor(0, 1);
  plan.primary_timeline = 2;
  auto result = rejoin(plan, 0);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "restart") << result.detail;
  EXPECT_FALSE(contains("pg_rewind")) << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(0));
}

// stop.sh signals only the node's own postmaster: a stale postmaster.pid whose PID now belongs to
// another process leaves that process alone.
TEST_F(RejoinTest, StopScriptNeverSignalsAProcessThatOnlyHoldsAStalePid) {
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(1, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  const pid_t other = fork();
  if (other == 0) {
    setpgid(0, 0);
    execl("/bin/sleep", "sleep", "300", static_cast<char*>(nullptr));
    _exit(1);
  }
  ASSERT_GT(other, 0);
  std::ofstream(cluster_.node(1).data_dir + "/postmaster.pid") << other << "\n"
                                                               << cluster_.node(1).data_dir << "\n";
  const int status = cluster_.runNodeScript(1, "stop.sh", {"--mode", "immediate"}, &out);
  const bool alive = ::kill(other, 0) == 0;
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("is not running"), std::string::npos) << out;
  EXPECT_TRUE(alive) << "stop.sh killed a process outside the data directory: " << out;
}

TEST_F(RejoinTest, MissingDataDirectoryIsCloned) {
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(1, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  const std::string data = cluster_.node(1).data_dir;
  fs::remove_all(data);
  auto result = rejoin(planFor(1, 0), 1);
  ASSERT_TRUE(result.status.isOk()) << result.status.message() << "\n" << result.detail;
  EXPECT_EQ(result.method, "clone") << result.detail;
  EXPECT_TRUE(cluster_.isStreaming(1));
  EXPECT_TRUE(fs::exists(data + "/standby.signal"));
  EXPECT_FALSE(fs::exists(lifecycle::rejoinCloneDir(data)));
}

TEST_F(RejoinTest, CloneThatWouldNotFitIsRefusedAndTheDataKept) {
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(1, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  const std::string data = cluster_.node(1).data_dir;
  // pg_rewind cannot read the primary's files any more: it fails, the clone is next.
  bool ok = false;
  cluster_.sql(
      0,
      "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) FROM " +
          cluster_.replicationUser() +
          "; REVOKE EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) FROM " +
          cluster_.replicationUser(),
      &ok);
  ASSERT_TRUE(ok);
  auto plan = planFor(1, 0);
  plan.reserve_disk_bytes = std::uint64_t{1} << 60;
  auto result = rejoin(plan, 1);
  EXPECT_FALSE(result.status.isOk());
  EXPECT_EQ(result.method, "clone");
  EXPECT_NE(result.status.message().find("not enough free disk"), std::string::npos)
      << result.status.message();
  EXPECT_TRUE(contains("pg_rewind")) << result.detail;
  EXPECT_FALSE(contains("pg_basebackup")) << result.detail;
  EXPECT_TRUE(fs::exists(data + "/PG_VERSION"));
  EXPECT_TRUE(fs::exists(data + "/standby.signal"));
  EXPECT_FALSE(fs::exists(lifecycle::rejoinWorkDir(data)));
  // The node is as it was: it starts and streams again.
  cluster_.start(1);
  EXPECT_TRUE(waitUntil([&] { return cluster_.isStreaming(1); }, 60s));
}

TEST_F(RejoinTest, FolderThatIsNotADataDirectoryIsNeverOverwritten) {
  std::string out;
  ASSERT_EQ(cluster_.runNodeScript(1, "stop.sh", {"--mode", "fast"}, &out), 0) << out;
  const std::string data = cluster_.node(1).data_dir;
  fs::remove_all(data);
  fs::create_directories(data);
  ASSERT_EQ(runCommand("echo precious > " + shellQuote(data + "/notes.txt")), 0);
  auto result = rejoin(planFor(1, 0), 1);
  EXPECT_FALSE(result.status.isOk());
  EXPECT_NE(result.status.message().find("no PG_VERSION"), std::string::npos)
      << result.status.message();
  EXPECT_FALSE(contains("pg_basebackup")) << result.detail;
  std::string content;
  runCommand("cat " + shellQuote(data + "/notes.txt"), &content);
  EXPECT_EQ(trim(content), "precious");
}

}  // namespace
}  // namespace pgfailover::testing
