// End to end, the lifecycle after a failover: the real pgfailover binary, a real PostgreSQL 15
// primary and replica on loopback, and a real sshd through which pgfailover runs pg_ctl,
// pg_rewind and pg_basebackup as the postgres OS user. A crashed primary that comes back is
// fenced and rewound (or re-cloned when pg_rewind fails) and streams from the new primary; a
// switchover there and back loses no acknowledged write; pgfailover killed right after a
// promotion converges without promoting twice; bad ssh keys, tokens and bodies change nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "support/lifecycle_harness.h"
#include "support/process.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::size_t countEvents(const json& history, const std::string& kind, const std::string& result,
                        const std::string& reason_part = "") {
  std::size_t n = 0;
  for (const auto& e : history)
    if (e.value("kind", "") == kind && e.value("result", "") == result &&
        e.value("reason", "").find(reason_part) != std::string::npos)
      ++n;
  return n;
}

// Files under `dir` whose name holds `part`.
std::vector<std::string> entriesContaining(const std::string& dir, const std::string& part) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.path().filename().string().find(part) != std::string::npos)
      found.push_back(entry.path().string());
  return found;
}

// A digest of every file in a data directory (names, sizes, content), to show it was untouched.
std::string digestOf(const std::string& data_dir) {
  std::string out;
  runCommand("cd " + shellQuote(data_dir) +
                 " && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum | md5sum",
             &out);
  return trim(out);
}

// The time part ("HH:MM:SS.mmm") of the n-th line (0-based) of `text` holding `needle`, or "".
std::string timeOfLine(const std::string& text, const std::string& needle, std::size_t n) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find(needle) == std::string::npos) continue;
    if (n-- > 0) continue;
    // PostgreSQL: "2026-11-25 21:56:28.409 UTC ..."; pgfailover: "2026-11-25T21:56:29.635Z ...".
    return line.size() >= 23 ? line.substr(11, 12) : "";
  }
  return "";
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h_.ok()); }

  PgCluster& cluster() { return h_.cluster(); }
  const std::string& name(std::size_t i) { return cluster().node(i).name; }

  // Waits until /status names node `i` primary and the node itself accepts writes.
  bool waitPrimary(std::size_t i, std::chrono::milliseconds timeout) {
    return waitUntil(
        [&] {
          auto s = h_.status();
          return s.is_object() && s["primary"] == name(i) && s["nodes"][i]["role"] == "primary" &&
                 h_.inRecovery(i) == "f";
        },
        timeout);
  }

  // Waits until node `i` streams from the primary on `timeline`, /status calls it a replica and
  // the history holds `rejoins` successful rejoins of it.
  bool waitRejoined(std::size_t i, int timeline, std::chrono::milliseconds timeout,
                    std::size_t rejoins = 1) {
    return waitUntil(
        [&] {
          auto s = h_.status();
          if (!s.is_object() || s["nodes"][i]["role"] != "replica") return false;
          if (h_.walReceiver(i) != "streaming " + std::to_string(timeline)) return false;
          std::size_t n = 0;
          for (const auto& e : h_.history())
            if (e.value("kind", "") == "rejoin" && e.value("result", "") == "succeeded" &&
                e.value("node", "") == name(i))
              ++n;
          return n >= rejoins;
        },
        timeout);
  }

  void createWritesTable() {
    bool ok = false;
    cluster().sql(0, "CREATE TABLE writes(id bigint PRIMARY KEY, port int)", &ok);
    ASSERT_TRUE(ok);
    ASSERT_TRUE(
        waitUntil([&] { return cluster().sql(1, "SELECT count(*) FROM writes") == "0"; }, 20s));
  }

  std::string writerConninfo(const std::string& hosts, const std::string& ports,
                             const std::string& extra = "") {
    return "host=" + hosts + " port=" + ports + " dbname=postgres user=" + cluster().user() +
           " password=" + cluster().password() +
           " connect_timeout=2 options='-c statement_timeout=5000' " + extra;
  }

  LifecycleHarness h_;
};

// ---------------------------------------------------------------------------------------------
// 1. Crash, failover, the old primary comes back: fenced at once, rewound, streams on timeline 2.

// The old primary is restarted by something other than pgfailover (no node guard): fence at
// rest (standby.signal written while it was down, during the promotion) brings it up read-only.
TEST_F(LifecycleTest, CrashedPrimaryComingBackIsFencedAndRewoundAndTakesNoWrite) {
  // A grace longer than the test's restart of the old primary, so the rejoin below is the one
  // for a node that came back writable, not the one for a node that stayed down.
  const std::string config = h_.writeConfig(h_.config(/*rejoin_grace_ms=*/8000));
  ASSERT_TRUE(h_.startDaemon(config));
  ASSERT_NO_FATAL_FAILURE(createWritesTable());

  Writer writer(writerConninfo("127.0.0.1", std::to_string(cluster().node(0).port)), "writes");
  writer.start();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= 5; }, 20s)) << writer.lastError();

  const auto killed_at = std::chrono::system_clock::now();
  cluster().kill9(0);
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  const auto promoted_seen = Clock::now();
  const auto promoted_seen_wall = std::chrono::system_clock::now();

  // The old primary comes back as it was: a primary on timeline 1.
  cluster().start(0);
  const auto restarted_wall = std::chrono::system_clock::now();
  ASSERT_TRUE(waitUntil(
      [&] {
        auto s = h_.status();
        return s.is_object() && s["nodes"][0]["reachable"] == true &&
               (s["nodes"][0]["read_only"] == true || s["nodes"][0]["in_recovery"] == true);
      },
      30s))
      << h_.describe();
  const auto fenced_seen_wall = std::chrono::system_clock::now();
  EXPECT_LT(fenced_seen_wall - restarted_wall, 3s) << "fenced within a tick or two";

  const auto rejoin_wait = Clock::now();
  ASSERT_TRUE(waitRejoined(0, 2, 90s)) << h_.describe();
  const double rejoin_seconds = secondsSince(rejoin_wait);
  writer.stop();

  // Every write the old primary acknowledged after the promotion would be thrown away.
  std::vector<Writer::Ack> lost;
  for (const auto& ack : writer.acks())
    if (ack.at > promoted_seen) lost.push_back(ack);
  std::ostringstream window;
  window << "killed " << wallClock(killed_at) << ", promotion seen "
         << wallClock(promoted_seen_wall) << ", old primary restarted (start.sh returned) "
         << wallClock(restarted_wall) << ", fence seen in /status " << wallClock(fenced_seen_wall)
         << "; writer connections between the kill and the fence:";
  for (auto c : writer.connects())
    if (c > killed_at && c < fenced_seen_wall) window << " " << wallClock(c);
  window << "; " << lost.size() << " acknowledged after the promotion:";
  for (const auto& ack : lost) window << " #" << ack.id << "@" << wallClock(ack.wall);
  // The window itself: from the old primary's "ready to accept connections" after its restart
  // (its second start) to pgfailover's fence_done.
  window << "; old primary writable from "
         << timeOfLine(readTextFile(cluster().logFile(0)),
                       "database system is ready to accept connections", 1)
         << " (server log) to the fence at " << timeOfLine(h_.log(), "fence_done", 0)
         << " (pgfailover log)";
  EXPECT_TRUE(lost.empty()) << lost.size() << " write(s) acknowledged by the old primary after "
                            << "the promotion: " << window.str() << "\n"
                            << h_.log();
  std::printf("[ timing   ] %s\n", window.str().c_str());

  // It streams from the new primary on the new timeline, by one rejoin: when the writer's last
  // commits reached only the old primary, pg_rewind or (failover.rewind "auto", the test
  // cluster's pg_wal outweighing its few MB of data) a fresh copy chosen for that; else a plain
  // follow of the new timeline (which depends on where the kill fell; decided from its WAL).
  // Never a copy as the fallback of a failed rewind.
  const std::string log = h_.log();
  EXPECT_NE(log.find("rejoin_succeeded"), std::string::npos) << log;
  EXPECT_EQ(countEvents(h_.history(), "rejoin", "succeeded", "rejoined by rewind") +
                countEvents(h_.history(), "rejoin", "succeeded", "rejoined by clone") +
                countEvents(h_.history(), "rejoin", "succeeded", "rejoined by follow"),
            1u)
      << h_.describe();
  EXPECT_EQ(log.find("falling back to pg_basebackup"), std::string::npos) << log;
  EXPECT_EQ(countEvents(h_.history(), "failover", "succeeded"), 1u) << h_.describe();
  EXPECT_EQ(h_.inRecovery(0), "t");
  bool ok = false;
  cluster().sql(1, "INSERT INTO writes VALUES (-1, 0)", &ok);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(waitUntil(
      [&] { return cluster().sql(0, "SELECT count(*) FROM writes WHERE id = -1") == "1"; }, 20s));
  EXPECT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 30s)) << h_.describe();
  std::printf("[ timing   ] rejoin by pg_rewind: %.1f s from the fence to streaming\n",
              rejoin_seconds);
}

// The same return through the guard at start (docker/postgres/node-guard.sh: ask pgfailover who
// the primary is, start as its standby when it is another node), as the container entrypoint
// and the namespace lab start nodes: no write at all, then the same rewind.
TEST_F(LifecycleTest, CrashedPrimaryRestartedThroughTheGuardTakesNoWriteAndFollows) {
  const std::string guard = std::string(PGFAILOVER_SOURCE_DIR) + "/docker/postgres/node-guard.sh";
  if (!std::filesystem::exists(guard) || runCommand("command -v curl && command -v jq") != 0)
    GTEST_SKIP() << "needs " << guard << ", curl and jq";
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(h_.config(/*rejoin_grace_ms=*/8000))));
  ASSERT_NO_FATAL_FAILURE(createWritesTable());
  Writer writer(writerConninfo("127.0.0.1", std::to_string(cluster().node(0).port)), "writes");
  writer.start();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= 5; }, 20s)) << writer.lastError();

  cluster().kill9(0);
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  const auto promoted_seen = Clock::now();
  std::string decision;
  ASSERT_EQ(runCommand("bash " + shellQuote(guard) + " --dir " + shellQuote(cluster().nodeDir(0)) +
                           " --name " + name(0) + " --pgfailover-url http://127.0.0.1:" +
                           std::to_string(h_.httpPort()) + " --peer " + name(1) +
                           "=127.0.0.1:" + std::to_string(cluster().node(1).port) + " --passfile " +
                           shellQuote(h_.replicationPassfile()) + " 2>/dev/null",
                       &decision),
            0)
      << decision;
  EXPECT_EQ(trim(decision), "standby-of " + name(1));
  cluster().start(0);
  EXPECT_EQ(h_.inRecovery(0), "t") << "the guarded old primary comes up read-only";

  // It streams on timeline 2: directly when its WAL ended where the new primary's history
  // forked (nothing was lost in the crash), else after a pg_rewind once the grace ran out.
  const auto rejoin_wait = Clock::now();
  ASSERT_TRUE(waitRejoined(0, 2, 120s, /*rejoins=*/0)) << h_.describe();
  const double rejoin_seconds = secondsSince(rejoin_wait);
  ASSERT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 60s)) << h_.describe();
  writer.stop();
  std::size_t lost = 0;
  for (const auto& ack : writer.acks())
    if (ack.at > promoted_seen) ++lost;
  EXPECT_EQ(lost, 0u) << "writes acknowledged by the guarded old primary after the promotion";
  EXPECT_EQ(countEvents(h_.history(), "rejoin", "failed"), 0u) << h_.describe();
  EXPECT_EQ(countEvents(h_.history(), "fence", "started"), 0u)
      << "it never came up writable, so it never needed the SQL fence";
  std::printf(
      "[ timing   ] guarded restart: %zu writes after the promotion; streaming on "
      "timeline 2 %.1f s after the restart (%zu rejoin(s) by pg_rewind)\n",
      lost, rejoin_seconds, countEvents(h_.history(), "rejoin", "succeeded"));
}

// The old primary stays down: after failover.rejoin_grace_ms pgfailover rejoins the crashed
// directory itself. Its replica had every record it wrote, so its WAL ends before the new
// timeline's fork: it is started as a standby that follows the new timeline, no pg_rewind. Here
// through the local runner ("local": {"run_as": "postgres"}) instead of ssh.
TEST_F(LifecycleTest, CrashedPrimaryLeftDownFollowsTheNewTimelineStartedByPgfailoverLocally) {
  json config = h_.config(/*rejoin_grace_ms=*/2000);
  for (auto& node : config["nodes"]) {
    node.erase("ssh");
    node["local"] = {{"run_as", "postgres"}};
  }
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(config)));
  ASSERT_NO_FATAL_FAILURE(createWritesTable());
  bool ok = false;
  cluster().sql(0, "INSERT INTO writes SELECT g, 0 FROM generate_series(1, 100) g", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(waitUntil(
      [&] {
        const std::string written = cluster().sql(0, "SELECT pg_current_wal_insert_lsn()");
        return !written.empty() &&
               cluster().sql(1, "SELECT pg_last_wal_replay_lsn() >= '" + written + "'") == "t";
      },
      20s));
  cluster().kill9(0);
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  // Something only the new timeline has: the old primary must replay up to the fork and then
  // follow the switch to get it.
  cluster().sql(1, "INSERT INTO writes SELECT g, 1 FROM generate_series(101, 200) g", &ok);
  ASSERT_TRUE(ok);
  const auto promoted = Clock::now();
  ASSERT_TRUE(waitRejoined(0, 2, 120s)) << h_.describe();
  const double seconds = secondsSince(promoted);
  EXPECT_EQ(countEvents(h_.history(), "rejoin", "succeeded", "rejoined by follow"), 1u)
      << h_.describe();
  EXPECT_EQ(countEvents(h_.history(), "rejoin", "succeeded", "rejoined by rewind"), 0u)
      << h_.describe();
  EXPECT_NE(h_.log().find("via local"), std::string::npos) << h_.log();
  EXPECT_TRUE(
      waitUntil([&] { return cluster().sql(0, "SELECT count(*) FROM writes") == "200"; }, 20s));
  EXPECT_TRUE(cluster().isRunning(0));
  std::printf(
      "[ timing   ] crashed old primary left down: streaming %.1f s after the promotion "
      "(rejoin_grace_ms 2000)\n",
      seconds);
}

// Failback: with failover.failback on, the preferred node, once rejoined after a failover and
// caught up, gets the primary role back through a planned switchover, by itself.
TEST_F(LifecycleTest, FailbackReturnsThePrimaryToThePreferredNodeByItself) {
  json config = h_.config(/*rejoin_grace_ms=*/2000);
  for (auto& node : config["nodes"]) {
    node.erase("ssh");
    node["local"] = {{"run_as", "postgres"}};
  }
  config["failover"]["failback"] = true;
  config["failover"]["preferred_node"] = name(0);
  config["failover"]["failback_delay_ms"] = 3000;
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(config)));
  ASSERT_NO_FATAL_FAILURE(createWritesTable());
  Writer writer(writerConninfo("127.0.0.1,127.0.0.1",
                               std::to_string(cluster().node(0).port) + "," +
                                   std::to_string(cluster().node(1).port),
                               "target_session_attrs=read-write"),
                "writes");
  writer.start();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= 5; }, 20s)) << writer.lastError();

  const auto killed = Clock::now();
  cluster().kill9(0);
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  // Replication is asynchronous, so the crash may lose the last writes; the switchover must not.
  const std::size_t acks_before_failback = writer.ackCount();
  // pg1 is left down: pgfailover rejoins it, and once it has been healthy for the delay, hands
  // the primary role back with a switchover (timeline 3).
  ASSERT_TRUE(waitPrimary(0, 180s)) << h_.describe();
  const double back_after = secondsSince(killed);
  ASSERT_TRUE(waitRejoined(1, 3, 120s, /*rejoins=*/0)) << h_.describe();
  ASSERT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 60s)) << h_.describe();
  std::size_t acks = writer.ackCount();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= acks + 5; }, 20s)) << writer.lastError();
  writer.stop();

  const json history = h_.history();
  EXPECT_EQ(countEvents(history, "failover", "succeeded"), 1u) << h_.describe();
  EXPECT_EQ(countEvents(history, "switchover", "succeeded"), 1u) << h_.describe();
  EXPECT_EQ(h_.status()["primary"], name(0));
  // Every write acknowledged by pg2, the primary the failback moved away from, is on pg1.
  std::set<long long> present;
  {
    std::istringstream rows(cluster().sql(0, "SELECT id FROM writes"));
    for (long long id; rows >> id;) present.insert(id);
  }
  const auto all = writer.acks();
  std::size_t lost = 0;
  for (std::size_t k = acks_before_failback; k < all.size(); ++k)
    lost += present.count(all[k].id) == 0 ? 1 : 0;
  EXPECT_GT(all.size(), acks_before_failback);
  EXPECT_EQ(lost, 0u) << "writes acknowledged by pg2 missing on pg1 after the failback";
  std::printf("[ timing   ] failback: pg1 primary again %.1f s after its crash\n", back_after);
}

// ---------------------------------------------------------------------------------------------
// 2. pg_rewind fails: the node is re-cloned (pg_basebackup), the old directory kept aside until
//    the new one streams, then removed.

TEST_F(LifecycleTest, FailedRewindFallsBackToACloneAndRemovesTheOldDirectory) {
  // bin_dir for pg1: the real programs, except a pg_rewind that always fails and a pg_waldump
  // that cannot read the WAL (so the divergence check doubts, and doubt means a rewind).
  const std::string fake_bin = h_.dir() + "/fake-bin";
  ASSERT_TRUE(std::filesystem::create_directory(fake_bin));
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(pgBinary("pg_ctl")).parent_path()))
    if (entry.path().filename() != "pg_rewind" && entry.path().filename() != "pg_waldump")
      std::filesystem::create_symlink(entry.path(),
                                      fake_bin + "/" + entry.path().filename().string());
  ASSERT_TRUE(writeTextFile(fake_bin + "/pg_rewind",
                            "#!/bin/sh\necho 'pg_rewind: failing on purpose (test)' >&2\nexit 1\n",
                            0755));
  ASSERT_TRUE(writeTextFile(fake_bin + "/pg_waldump",
                            "#!/bin/sh\necho 'pg_waldump: failing on purpose (test)' >&2\nexit 1\n",
                            0755));
  ::chmod(fake_bin.c_str(), 0755);
  json config = h_.config(/*rejoin_grace_ms=*/8000);
  config["nodes"][0]["bin_dir"] = fake_bin;
  // pg_rewind whenever it can work: the copy here is the fallback of a failed rewind, not one
  // chosen because the test cluster's pg_wal outweighs its data.
  config["failover"]["rewind"] = "always";
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(config)));
  ASSERT_NO_FATAL_FAILURE(createWritesTable());
  bool ok = false;
  cluster().sql(0, "INSERT INTO writes SELECT g, 0 FROM generate_series(1, 1000) g", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(
      waitUntil([&] { return cluster().sql(1, "SELECT count(*) FROM writes") == "1000"; }, 20s));

  cluster().kill9(0);
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  cluster().start(0);
  const auto started = Clock::now();
  ASSERT_TRUE(waitRejoined(0, 2, 120s)) << h_.describe();
  const double clone_seconds = secondsSince(started);

  const std::string log = h_.log();
  EXPECT_NE(log.find("method=clone"), std::string::npos) << log;
  EXPECT_EQ(countEvents(h_.history(), "rejoin", "succeeded", "rejoined by clone"), 1u)
      << h_.describe();
  EXPECT_TRUE(entriesContaining(cluster().nodeDir(0), ".pgfailover-old-").empty())
      << "the old data directory is removed once the new one streams";
  EXPECT_EQ(h_.inRecovery(0), "t");
  EXPECT_EQ(cluster().sql(0, "SELECT count(*) FROM writes"), "1000");
  cluster().sql(1, "INSERT INTO writes VALUES (-2, 0)", &ok);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(waitUntil(
      [&] { return cluster().sql(0, "SELECT count(*) FROM writes WHERE id = -2") == "1"; }, 20s));
  EXPECT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 30s)) << h_.describe();
  std::printf("[ timing   ] rejoin by re-clone: %.1f s from the restart to streaming\n",
              clone_seconds);
}

// ---------------------------------------------------------------------------------------------
// 3. Switchover there and back under a writer: no acknowledged write lost; a switchover to a
//    stopped replica is refused and changes nothing.

TEST_F(LifecycleTest, SwitchoverThereAndBackLosesNoAcknowledgedWrite) {
  // A long grace: the replica stopped below must not be rejoined while the refusal is checked.
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(h_.config(/*rejoin_grace_ms=*/60000))));
  ASSERT_NO_FATAL_FAILURE(createWritesTable());
  const int port = h_.httpPort();

  // Refused: the target is down. Nothing changes.
  ASSERT_EQ(cluster().runNodeScript(1, "stop.sh", {"--mode", "fast", "--timeout", "30"}), 0);
  ASSERT_TRUE(waitUntil([&] { return h_.status()["nodes"][1]["reachable"] == false; }, 20s))
      << h_.describe();
  auto refused = adminPost(port, "/switchover", R"({"target": "pg2"})", h_.token());
  EXPECT_TRUE(refused.status == 412 || refused.status == 409)
      << refused.status << " " << refused.body;
  json refusal = json::parse(refused.body, nullptr, false);
  ASSERT_TRUE(refusal.is_object()) << refused.body;
  EXPECT_FALSE(refusal.value("reason", "").empty()) << refused.body;
  std::printf("[ refusal  ] %d %s\n", refused.status, refusal.value("reason", "").c_str());
  auto untargeted = adminPost(port, "/switchover", "{}", h_.token());
  EXPECT_TRUE(untargeted.status == 412 || untargeted.status == 409) << untargeted.body;
  EXPECT_EQ(h_.status()["primary"], name(0));
  EXPECT_EQ(h_.inRecovery(0), "f");
  EXPECT_EQ(cluster().sql(0, "SHOW default_transaction_read_only"), "off");
  EXPECT_EQ(countEvents(h_.history(), "switchover", "started"), 0u) << h_.describe();
  cluster().start(1);
  ASSERT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 60s)) << h_.describe();

  Writer writer(writerConninfo("127.0.0.1,127.0.0.1",
                               std::to_string(cluster().node(0).port) + "," +
                                   std::to_string(cluster().node(1).port),
                               "target_session_attrs=read-write"),
                "writes");
  writer.start();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= 10; }, 20s)) << writer.lastError();

  // There: pg1 -> pg2.
  const auto there = Clock::now();
  auto accepted = adminPost(port, "/switchover", R"({"target": "pg2"})", h_.token());
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  const double there_promoted = secondsSince(there);
  ASSERT_TRUE(waitRejoined(0, 2, 120s)) << h_.describe();
  ASSERT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 60s)) << h_.describe();
  const double there_healthy = secondsSince(there);
  std::size_t acks = writer.ackCount();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= acks + 10; }, 20s)) << writer.lastError();

  // And back: pg2 -> pg1.
  const auto back = Clock::now();
  accepted = adminPost(port, "/switchover", R"({"target": "pg1"})", h_.token());
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  ASSERT_TRUE(waitPrimary(0, 60s)) << h_.describe();
  const double back_promoted = secondsSince(back);
  ASSERT_TRUE(waitRejoined(1, 3, 120s)) << h_.describe();
  ASSERT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 60s)) << h_.describe();
  const double back_healthy = secondsSince(back);
  acks = writer.ackCount();
  ASSERT_TRUE(waitUntil([&] { return writer.ackCount() >= acks + 10; }, 20s)) << writer.lastError();
  writer.stop();

  // Every acknowledged row is on the final primary.
  std::set<long long> present;
  {
    std::istringstream rows(cluster().sql(0, "SELECT id FROM writes"));
    for (long long id; rows >> id;) present.insert(id);
  }
  const auto all = writer.acks();
  std::vector<long long> missing;
  std::set<int> ports;
  double longest_gap = 0;
  for (std::size_t k = 0; k < all.size(); ++k) {
    if (!present.count(all[k].id)) missing.push_back(all[k].id);
    ports.insert(all[k].port);
    if (k > 0)
      longest_gap =
          std::max(longest_gap, std::chrono::duration<double>(all[k].at - all[k - 1].at).count());
  }
  EXPECT_TRUE(missing.empty()) << missing.size()
                               << " acknowledged rows missing on the final primary, first "
                               << (missing.empty() ? 0 : missing.front());
  EXPECT_EQ(ports.size(), 2u) << "both nodes took writes in turn";
  EXPECT_EQ(countEvents(h_.history(), "switchover", "succeeded"), 2u) << h_.describe();
  EXPECT_EQ(countEvents(h_.history(), "failover", "succeeded"), 0u) << h_.describe();
  std::printf(
      "[ timing   ] switchover there: promoted %.1f s, healthy again %.1f s; back: %.1f s, "
      "%.1f s; %zu writes acknowledged, longest gap between two acks %.1f s\n",
      there_promoted, there_healthy, back_promoted, back_healthy, all.size(), longest_gap);
}

// ---------------------------------------------------------------------------------------------
// 4. pgfailover killed right after it promoted: restarted with the same state file, it converges
//    on the new primary, fences and rejoins the old one, and never promotes a second time.

TEST_F(LifecycleTest, DaemonKilledRightAfterPromotionConvergesWithoutASecondPromotion) {
  const std::string config = h_.writeConfig(h_.config(/*rejoin_grace_ms=*/8000));
  ASSERT_TRUE(h_.startDaemon(config));

  cluster().kill9(0);
  // As soon as the replica is writable (pg_promote landed, usually before the next tick
  // confirms it): pgfailover dies too. Killing it on the "promoting" state instead could land
  // before pg_promote reached the server, and then no promotion happened at all: pg1 rightly
  // stays the primary, which is another test's case, not this one.
  ASSERT_TRUE(waitUntil(
      [&] {
        if (h_.inRecovery(1) == "f") {
          h_.killDaemon();
          return true;
        }
        return false;
      },
      60s))
      << h_.describe();
  std::printf("[ state    ] at the kill: %s\n", h_.stateFile().dump().c_str());
  // The old primary comes back while no pgfailover watches it, on timeline 1: writable, or a
  // standby when the fence at rest (some 30 ms after pg_promote returns) ran before the kill.
  // Either way the restarted pgfailover must not promote a second time.
  cluster().start(0);
  const std::string old_in_recovery = h_.inRecovery(0);
  ASSERT_TRUE(old_in_recovery == "f" || old_in_recovery == "t") << old_in_recovery;
  std::printf("[ state    ] old primary back %s\n",
              old_in_recovery == "f" ? "writable" : "fenced at rest");

  ASSERT_TRUE(h_.daemon()->start()) << "restart with the same configuration and state file";
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  ASSERT_TRUE(waitRejoined(0, 2, 120s)) << h_.describe();
  ASSERT_TRUE(waitUntil([&] { return h_.state() == "healthy"; }, 60s)) << h_.describe();

  // One promotion only: the new primary is still on timeline 2, and the history has one failover.
  EXPECT_EQ(cluster().sql(1, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
            "00000002");
  EXPECT_EQ(h_.walReceiver(0), "streaming 2");
  const json history = h_.history();
  EXPECT_EQ(countEvents(history, "failover", "succeeded"), 1u) << history.dump(2);
  EXPECT_EQ(countEvents(history, "rejoin", "succeeded"), 1u) << history.dump(2);
  const std::string log = h_.log();
  std::size_t promotes = 0;
  for (std::size_t at = log.find(" promote: "); at != std::string::npos;
       at = log.find(" promote: ", at + 1))
    ++promotes;
  EXPECT_EQ(promotes, 1u) << log;
}

// ---------------------------------------------------------------------------------------------
// 4b. Self-fencing: the node's lease guard (`pgfailover lease-guard`) against the lease the
// real daemon writes. A clean stop releases the lease, so the guard leaves the primary alone; a
// crashed pgfailover leaves it, so a primary that then hears from no one fences itself; and the
// restarted pgfailover, seeing that nothing was promoted, gives it its writes back.

TEST_F(LifecycleTest, PrimaryFencedByItsLeaseGuardIsUnfencedWhenNothingWasPromoted) {
  json config = h_.config(/*rejoin_grace_ms=*/60000);
  config["failover"]["rejoin"] = false;  // the stopped replica stays stopped
  const std::string path = h_.writeConfig(config);
  ASSERT_TRUE(h_.startDaemon(path));
  const std::string kLease = "SELECT lease_ms FROM pgfailover.heartbeat WHERE id = 1";
  const std::string kReadOnly = "SHOW default_transaction_read_only";
  ASSERT_EQ(cluster().sql(0, kLease), "2500") << "min(3 s, 10 s) - 500 ms";
  // Written for pg1 on the timeline it writes on: the guard enforces only such a row.
  EXPECT_EQ(cluster().sql(0, "SELECT node || ' ' || timeline FROM pgfailover.heartbeat"), "pg1 1");

  // Nothing vouches for the primary any more: no replica streams, pgfailover stopped cleanly.
  ASSERT_EQ(cluster().runNodeScript(1, "stop.sh", {"--mode", "fast"}), 0);
  ASSERT_TRUE(h_.daemon()->stop().has_value());
  EXPECT_EQ(cluster().sql(0, kLease), "0") << "a clean stop releases the lease";
  std::this_thread::sleep_for(3500ms);
  std::string guard_output;
  EXPECT_EQ(runPgfailover({"lease-guard", "--dir", cluster().nodeDir(0), "--name", "pg1", "--once"},
                          &guard_output),
            0)
      << guard_output;
  EXPECT_EQ(cluster().sql(0, kReadOnly), "off") << "no lease, no fence";

  // pgfailover crashes: its lease stays, and once it ran out the guard fences the primary.
  ASSERT_TRUE(h_.daemon()->start());
  ASSERT_TRUE(waitUntil([&] { return cluster().sql(0, kLease) == "2500"; }, 30s)) << h_.describe();
  h_.killDaemon();
  std::this_thread::sleep_for(3500ms);
  EXPECT_EQ(runPgfailover({"lease-guard", "--dir", cluster().nodeDir(0), "--name", "pg1", "--once"},
                          &guard_output),
            3)
      << guard_output;
  EXPECT_NE(guard_output.find("the 2500 ms lease ran out"), std::string::npos) << guard_output;
  EXPECT_EQ(cluster().sql(0, kReadOnly), "on");
  EXPECT_EQ(cluster().sql(0, "SELECT self_fenced_at IS NOT NULL FROM pgfailover.heartbeat"), "t");
  bool wrote = true;
  cluster().sql(0, "CREATE TABLE fenced_write(id int)", &wrote);
  EXPECT_FALSE(wrote) << "a self-fenced primary takes no write";

  // pgfailover comes back: the primary is still the primary, nothing was promoted. It lifts
  // the fence, and its next heartbeat clears the marker.
  ASSERT_TRUE(h_.daemon()->start());
  ASSERT_TRUE(waitUntil(
      [&] {
        return cluster().sql(0, kReadOnly) == "off" &&
               cluster().sql(0, "SELECT self_fenced_at IS NULL FROM pgfailover.heartbeat") == "t";
      },
      30s))
      << h_.describe();
  ASSERT_TRUE(waitPrimary(0, 30s)) << h_.describe();
  cluster().sql(0, "CREATE TABLE unfenced_write(id int)", &wrote);
  EXPECT_TRUE(wrote);
  const json history = h_.history();
  EXPECT_EQ(countEvents(history, "unfence", "started", "fenced itself"), 1u) << history.dump(2);
  EXPECT_EQ(countEvents(history, "failover", "succeeded"), 0u) << history.dump(2);
  EXPECT_EQ(h_.inRecovery(1), "") << "the replica was left stopped";
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input changes nothing.

TEST_F(LifecycleTest, WrongHostKeyFailsTheRejoinClearlyAndTouchesNothing) {
  json config = h_.config(/*rejoin_grace_ms=*/2000);
  config["nodes"][0]["ssh"]["known_hosts_file"] = h_.sshd().wrongKnownHostsFile();
  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(config)));

  cluster().kill9(0);
  const std::string before = digestOf(cluster().node(0).data_dir);
  ASSERT_FALSE(before.empty());
  ASSERT_TRUE(waitPrimary(1, 60s)) << h_.describe();
  // The old primary stays down: after the grace pgfailover tries to rejoin it, and cannot.
  ASSERT_TRUE(waitUntil([&] { return countEvents(h_.history(), "rejoin", "failed") >= 1; }, 60s))
      << h_.describe();
  const json history = h_.history();
  std::string why;
  for (const auto& e : history)
    if (e.value("kind", "") == "rejoin" && e.value("result", "") == "failed")
      why = e.value("reason", "");
  std::printf("[ error    ] %s\n", why.c_str());
  EXPECT_NE(why.find("host key"), std::string::npos) << history.dump(2);
  EXPECT_NE(h_.log().find("host key"), std::string::npos);
  ASSERT_TRUE(waitUntil(
      [&] { return h_.status().value("reason", "").find("host key") != std::string::npos; }, 10s))
      << "/status tells why the node is not rejoined\n"
      << h_.describe();

  EXPECT_FALSE(cluster().isRunning(0));
  EXPECT_EQ(digestOf(cluster().node(0).data_dir), before)
      << "the old primary's data directory was changed";
  EXPECT_FALSE(std::filesystem::exists(cluster().node(0).data_dir + "/standby.signal"));
  EXPECT_TRUE(entriesContaining(cluster().nodeDir(0), ".pgfailover-old-").empty());
  EXPECT_EQ(h_.status()["primary"], name(1));
}

TEST_F(LifecycleTest, MissingKeyBadTokenAndMalformedBodyAreRefusedAndChangeNothing) {
  // A private key file that does not exist: check-config and run both exit 2 naming the key.
  json broken = h_.config();
  broken["nodes"][1]["ssh"]["private_key_file"] = h_.dir() + "/no-such-key";
  const std::string broken_path = h_.writeConfig(broken, "broken.json");
  std::string output;
  EXPECT_EQ(runPgfailover({"check-config", "--config", broken_path}, &output), 2) << output;
  EXPECT_NE(output.find("nodes[1].ssh.private_key_file"), std::string::npos) << output;
  DaemonProcess run(
      DaemonOptions{"", {"run", "--config", broken_path}, h_.dir() + "/broken.log", {}});
  ASSERT_TRUE(run.start());
  auto code = run.waitForExit(20s);
  ASSERT_TRUE(code.has_value()) << "run with a missing key file must exit";
  EXPECT_EQ(*code, 2);
  EXPECT_NE(run.log().find("nodes[1].ssh.private_key_file"), std::string::npos) << run.log();

  ASSERT_TRUE(h_.startDaemon(h_.writeConfig(h_.config())));
  const int port = h_.httpPort();
  const std::string body = R"({"target": "pg2"})";
  auto wrong = adminPost(port, "/switchover", body, std::string(h_.token().size(), 'x'));
  EXPECT_EQ(wrong.status, 401) << wrong.body;
  EXPECT_EQ(adminPost(port, "/switchover", body, "").status, 401);
  EXPECT_EQ(
      adminPost(port, "/failover", R"({"target": "pg2", "force": true})", h_.token() + "x").status,
      401);
  auto malformed = adminPost(port, "/switchover", R"({"target": "pg2")", h_.token());
  EXPECT_EQ(malformed.status, 400) << malformed.body;
  auto typo = adminPost(port, "/switchover", R"({"taget": "pg2"})", h_.token());
  EXPECT_EQ(typo.status, 400) << typo.body;
  EXPECT_EQ(adminPost(port, "/switchover", R"(["pg2"])", h_.token()).status, 400);

  // Several ticks later, nothing moved.
  const auto tick = h_.status().value("tick", 0);
  ASSERT_TRUE(waitUntil([&] { return h_.status().value("tick", 0) >= tick + 3; }, 20s));
  EXPECT_EQ(h_.state(), "healthy");
  EXPECT_EQ(h_.status()["primary"], name(0));
  EXPECT_EQ(h_.inRecovery(0), "f");
  EXPECT_EQ(h_.inRecovery(1), "t");
  EXPECT_EQ(cluster().sql(0, "SHOW default_transaction_read_only"), "off");
  EXPECT_EQ(countEvents(h_.history(), "switchover", "started"), 0u);
  EXPECT_EQ(countEvents(h_.history(), "failover", "started"), 0u);
}

}  // namespace
}  // namespace pgfailover::testing
