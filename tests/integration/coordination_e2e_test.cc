// Several instances, one acting (docs/coordination.md), end to end: two real pgfailover daemons
// watching one real PostgreSQL 15 primary and streaming replica, coordinated through a real
// etcd. Exactly one acts; killing it hands over after its lease ran out and not before; a lost
// primary is promoted once whichever instance acts, also when the acting one dies with the
// promotion's intent written; with etcd down nobody fails over or demotes and the primary keeps
// taking writes; a deposed instance that wakes up acts no more.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "coord/etcd_client.h"
#include "support/daemon.h"
#include "support/etcd.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kPrefix = "/pgfailover/coordinated";
// Short enough for the tests; the configuration requires TTL - 1 s >= 2 ticks.
constexpr int kTtlMs = 2000;

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class CoordinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    ASSERT_TRUE(etcd_.ok());
    coord::EtcdClientOptions options;
    options.endpoints = etcd_.clientUrls();
    options.connect_timeout = 300ms;
    options.request_timeout = 300ms;
    client_ = std::make_unique<coord::EtcdClient>(options);
    for (int i = 0; i < 2; ++i) {
      ports_[i] = freePort();
      json config = pgfailoverConfig(cluster_, ports_[i]);
      config["probe"]["interval_ms"] = 500;
      config["admin"] = {{"token_file", tokenFile()}};
      config["etcd"] = {{"name", names_[i]},
                        {"endpoints", etcd_.clientUrls()},
                        {"prefix", kPrefix},
                        {"lease_ttl_ms", kTtlMs},
                        {"request_timeout_ms", 250}};
      configs_[i] = config;
      const std::string path =
          writePgfailoverConfig(cluster_, config, "pgfailover-" + names_[i] + ".json");
      daemons_[i] = std::make_unique<DaemonProcess>(
          path, cluster_.dir() + "/pgfailover-" + names_[i] + ".log");
    }
  }

  std::string tokenFile() {
    const std::string path = cluster_.dir() + "/admin.token";
    std::ofstream(path) << "coordination-test-token\n";
    ::chmod(path.c_str(), 0600);
    return path;
  }

  // The leader key's holder, "" when nobody holds it or etcd does not answer.
  std::string leader() {
    auto got = client_->get(std::string(kPrefix) + "/leader");
    if (!got.ok() || got.value.empty()) return "";
    return got.value.front().value;
  }
  bool hasKey(const std::string& key) {
    auto got = client_->get(std::string(kPrefix) + "/" + key);
    return got.ok() && !got.value.empty();
  }
  int indexOf(const std::string& name) const { return name == names_[0] ? 0 : 1; }

  // Starts both daemons and waits until one acts and the primary's heartbeat carries its name.
  int startBoth() {
    for (auto& daemon : daemons_) {
      if (!daemon->start()) return -1;
    }
    std::string acting;
    const bool elected = waitUntil(
        [&] {
          acting = leader();
          return !acting.empty() && count(daemons_[indexOf(acting)]->log(), "warn acting: ") >= 1 &&
                 cluster_.sql(0, "SELECT instance FROM pgfailover.heartbeat") == acting;
        },
        30s);
    EXPECT_TRUE(elected) << "no instance acts; leader '" << acting << "'\n"
                         << daemons_[0]->logTail() << daemons_[1]->logTail();
    return elected ? indexOf(acting) : -1;
  }

  int promotions() const {
    return count(daemons_[0]->log(), " promote: ") + count(daemons_[1]->log(), " promote: ");
  }
  std::string logs() const { return daemons_[0]->logTail(60) + daemons_[1]->logTail(60); }

  PgCluster cluster_{1};
  EtcdCluster etcd_{1};
  std::unique_ptr<coord::EtcdClient> client_;
  std::string names_[2] = {"alpha", "beta"};
  int ports_[2] = {0, 0};
  json configs_[2];
  std::unique_ptr<DaemonProcess> daemons_[2];
};

TEST_F(CoordinationTest, OneActsAndAKilledActingInstanceIsReplacedOnlyAfterItsLeaseRanOut) {
  const int acting = startBoth();
  ASSERT_GE(acting, 0);
  const int other = 1 - acting;
  // Exactly one acts: the other registered too, never acted, and writes no heartbeat.
  EXPECT_TRUE(hasKey("members/" + names_[0]));
  EXPECT_TRUE(hasKey("members/" + names_[1]));
  EXPECT_TRUE(hasKey("state")) << "the first acting instance shares its state";
  EXPECT_EQ(count(daemons_[other]->log(), "warn acting: "), 0) << logs();
  const std::string term = cluster_.sql(0, "SELECT term FROM pgfailover.heartbeat");
  EXPECT_NE(term, "0");
  // Both serve the same picture of who acts; an admin request sent to the other one is sent on
  // to the acting one, which answers it (a dry run: nothing changes).
  ASSERT_TRUE(waitUntil(
      [&] {
        for (int i : {0, 1}) {
          const auto status = httpGet(ports_[i], "/status");
          if (!status.ok()) return false;
          const json body = json::parse(status.body, nullptr, false);
          if (!body.is_object() || body.value("instance", json()) != names_[i] ||
              body["coordination"].value("acting", json()) != names_[acting] ||
              body["coordination"].value("acting_here", false) != (i == acting))
            return false;
        }
        return true;
      },
      10s))
      << httpGet(ports_[other], "/status").body;
  std::string output;
  EXPECT_EQ(
      runPgfailover({"switchover", "--url", "http://127.0.0.1:" + std::to_string(ports_[other]),
                     "--token-file", cluster_.dir() + "/admin.token", "--dry-run"},
                    &output),
      0)
      << output;
  EXPECT_NE(output.find("127.0.0.1:" + std::to_string(ports_[acting])), std::string::npos)
      << "says where it was sent: " << output;

  const auto killed_at = Clock::now();
  ASSERT_TRUE(daemons_[acting]->signal(SIGKILL));
  std::string now_leading;
  ASSERT_TRUE(waitUntil(
      [&] {
        now_leading = leader();
        return now_leading == names_[other];
      },
      15s))
      << logs();
  const auto handover = Clock::now() - killed_at;
  // Its last renewal was at most one tick (500 ms) before the kill: etcd keeps the key for the
  // TTL after it, so nobody can have won within TTL - tick.
  EXPECT_GE(handover, std::chrono::milliseconds(kTtlMs - 500));
  EXPECT_LE(handover, std::chrono::milliseconds(kTtlMs + 3000));
  ASSERT_TRUE(waitUntil(
      [&] { return cluster_.sql(0, "SELECT instance FROM pgfailover.heartbeat") == names_[other]; },
      10s))
      << logs();
  EXPECT_GT(std::stoll(cluster_.sql(0, "SELECT term FROM pgfailover.heartbeat")), std::stoll(term));
  std::printf("[ figures ] handover after kill -9 of the acting instance (TTL %d ms): %lld ms\n",
              kTtlMs,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(handover).count()));
  EXPECT_EQ(promotions(), 0) << logs();
  EXPECT_EQ(cluster_.sql(1, "SELECT pg_is_in_recovery()"), "t");
}

TEST_F(CoordinationTest, LostPrimaryIsPromotedExactlyOnce) {
  ASSERT_GE(startBoth(), 0);
  cluster_.kill9(0);
  ASSERT_TRUE(waitUntil([&] { return cluster_.sql(1, "SELECT pg_is_in_recovery()") == "f"; }, 30s))
      << logs();
  // Both instances see it; let a few more ticks pass for a second promotion to show up.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(promotions(), 1) << logs();
  EXPECT_FALSE(hasKey("promotion-intent")) << "cleared once the promotion was confirmed";
  auto state = client_->get(std::string(kPrefix) + "/state");
  ASSERT_TRUE(state.ok() && !state.value.empty());
  EXPECT_EQ(json::parse(state.value.front().value).value("primary", ""), cluster_.node(1).name);
  // Counted by the instance that acted only: summed over the instances, one failover.
  int counted = 0;
  for (int i = 0; i < 2; ++i) {
    const std::string metrics = httpGet(ports_[i], "/metrics").body;
    if (metrics.find("pgfailover_failovers_total{result=\"succeeded\"} 1") != std::string::npos)
      ++counted;
    else
      EXPECT_NE(metrics.find("pgfailover_failovers_total{result=\"succeeded\"} 0"),
                std::string::npos)
          << metrics;
  }
  EXPECT_EQ(counted, 1) << logs();
}

TEST_F(CoordinationTest, ActingInstanceKilledOnceThePromotionIntentIsSharedPromotesOnce) {
  const int acting = startBoth();
  ASSERT_GE(acting, 0);
  const int other = 1 - acting;
  cluster_.kill9(0);
  // The intent is written before pg_promote is called: kill the acting instance as soon as it
  // shows (pg_promote may or may not have reached the server).
  ASSERT_TRUE(waitUntil([&] { return hasKey("promotion-intent"); }, 30s)) << logs();
  ASSERT_TRUE(daemons_[acting]->signal(SIGKILL));
  ASSERT_TRUE(waitUntil([&] { return leader() == names_[other]; }, 15s)) << logs();
  ASSERT_TRUE(waitUntil([&] { return cluster_.sql(1, "SELECT pg_is_in_recovery()") == "f"; }, 30s))
      << logs();
  ASSERT_TRUE(waitUntil([&] { return !hasKey("promotion-intent"); }, 15s)) << logs();
  // One promotion: the replica moved to the next timeline once, and the new acting instance
  // took over the one in flight instead of starting another on another node.
  EXPECT_EQ(cluster_.sql(1, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
            "00000002");
  EXPECT_NE(daemons_[other]->log().find("possibly under way"), std::string::npos) << logs();
  EXPECT_EQ(count(daemons_[acting]->log(), " promote: "), 1) << logs();
}

TEST_F(CoordinationTest, EtcdDownMeansNoFailoverAndNoDemotionAndOneActsWhenItReturns) {
  ASSERT_GE(startBoth(), 0);
  // The primary's lease guard, as on its host (the lease: the shortest failover timeout less
  // 500 ms, 2.5 s here).
  DaemonProcess guard(DaemonOptions{PGFAILOVER_BINARY,
                                    {"lease-guard", "--dir", cluster_.nodeDir(0), "--name",
                                     cluster_.node(0).name, "--check-interval", "0.2"},
                                    cluster_.dir() + "/guard-pg1.log",
                                    {}});
  ASSERT_TRUE(guard.start());
  etcd_.kill(0);
  // Past the acting window and past the heartbeat's lease (no instance writes it now): nobody
  // acts, and the guard does not fence a primary whose replica streams from it.
  std::this_thread::sleep_for(std::chrono::milliseconds(kTtlMs + 3000));
  EXPECT_TRUE(guard.running()) << guard.log();
  EXPECT_EQ(count(guard.log(), "fenced node"), 0) << guard.log();
  bool ok = false;
  cluster_.sql(0, "CREATE TABLE during_outage(id int); INSERT INTO during_outage VALUES (1)", &ok);
  EXPECT_TRUE(ok) << "the primary keeps taking writes with etcd down";
  EXPECT_EQ(cluster_.sql(0, "SHOW default_transaction_read_only"), "off");
  EXPECT_EQ(count(daemons_[0]->log() + daemons_[1]->log(), " acting_stopped: "), 1) << logs();

  // The primary is lost too: nobody may promote while no instance can act.
  guard.stop();
  cluster_.kill9(0);
  std::this_thread::sleep_for(6s);  // twice the confirmed-down timeout
  EXPECT_EQ(cluster_.sql(1, "SELECT pg_is_in_recovery()"), "t") << logs();
  EXPECT_EQ(promotions(), 0) << logs();

  // etcd is back: one instance acts again and fails over, once.
  ASSERT_TRUE(etcd_.restart(0));
  ASSERT_TRUE(waitUntil([&] { return !leader().empty(); }, 20s)) << logs();
  ASSERT_TRUE(waitUntil([&] { return cluster_.sql(1, "SELECT pg_is_in_recovery()") == "f"; }, 30s))
      << logs();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(promotions(), 1) << logs();
}

TEST_F(CoordinationTest, DeposedInstanceThatWakesUpActsNoMore) {
  const int acting = startBoth();
  ASSERT_GE(acting, 0);
  const int other = 1 - acting;
  ASSERT_TRUE(daemons_[acting]->signal(SIGSTOP));
  ASSERT_TRUE(waitUntil([&] { return leader() == names_[other]; }, 15s)) << logs();
  // The new acting instance has the primary: a failover happens while the old one sleeps.
  ASSERT_TRUE(waitUntil(
      [&] { return cluster_.sql(0, "SELECT instance FROM pgfailover.heartbeat") == names_[other]; },
      10s));
  cluster_.kill9(0);
  ASSERT_TRUE(waitUntil([&] { return cluster_.sql(1, "SELECT pg_is_in_recovery()") == "f"; }, 30s))
      << logs();
  // The deposed one wakes up with a memory of a healthy cluster and a lease it thinks it holds.
  ASSERT_TRUE(daemons_[acting]->signal(SIGCONT));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(leader(), names_[other]);
  EXPECT_EQ(promotions(), 1) << logs();
  EXPECT_EQ(count(daemons_[acting]->log(), " promote: "), 0) << logs();
  EXPECT_EQ(count(daemons_[acting]->log(), " fence: "), 0) << logs();
  EXPECT_EQ(count(daemons_[acting]->log(), "warn acting: "), 1) << "it did not act again\n"
                                                                << logs();
  EXPECT_EQ(cluster_.sql(1, "SELECT instance FROM pgfailover.heartbeat"), names_[other]);
}

// A clean stop of the acting instance releases the heartbeat lease and revokes its etcd lease:
// the other acts at its next tick instead of after the TTL.
TEST_F(CoordinationTest, CleanStopOfTheActingInstanceHandsOverAtOnce) {
  const int acting = startBoth();
  ASSERT_GE(acting, 0);
  const int other = 1 - acting;
  const auto stopped_at = Clock::now();
  ASSERT_EQ(daemons_[acting]->stop(), 0);
  ASSERT_TRUE(waitUntil([&] { return leader() == names_[other]; }, 10s)) << logs();
  const auto handover = Clock::now() - stopped_at;
  EXPECT_LT(handover, std::chrono::milliseconds(kTtlMs)) << "it waited for the lease to run out";
  EXPECT_NE(daemons_[acting]->log().find("resigned: "), std::string::npos) << logs();
  EXPECT_NE(daemons_[acting]->log().find("lease_released: "), std::string::npos) << logs();
  EXPECT_FALSE(hasKey("members/" + names_[acting])) << "its member entry went with its lease";
  ASSERT_TRUE(waitUntil(
      [&] { return cluster_.sql(0, "SELECT instance FROM pgfailover.heartbeat") == names_[other]; },
      10s))
      << logs();
  std::printf("[ figures ] handover after a clean stop of the acting instance: %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(handover).count()));
  EXPECT_EQ(promotions(), 0) << logs();
}

}  // namespace
// The instances disagree: the acting one lost its path to the primary (here: its configuration
// points at a port where nothing listens, so it sees the primary refuse, the strongest
// evidence), while the other instance and the replica still reach it. No false failover: the
// replica streaming from the primary vetoes it, whichever instance acts.
TEST_F(CoordinationTest, ActingInstanceThatLostThePrimaryAloneDoesNotFailItOver) {
  ASSERT_GE(startBoth(), 0);
  // beta restarts without a path to pg1, then alpha hands over to it (a clean stop) and comes
  // back as the instance that does not act.
  ASSERT_TRUE(daemons_[1]->signal(SIGKILL));
  ASSERT_TRUE(daemons_[1]->waitForExit(5s).has_value());
  const int acted_before = count(daemons_[1]->log(), "warn acting: ");
  json blind = configs_[1];
  blind["nodes"][0]["port"] = freePort();
  writePgfailoverConfig(cluster_, blind, "pgfailover-" + names_[1] + ".json");
  ASSERT_TRUE(waitUntil([&] { return !hasKey("members/" + names_[1]); }, 15s)) << logs();
  ASSERT_TRUE(daemons_[1]->start());
  // Whoever campaigns first after beta's old lease ran out leads; alpha hands over if it does.
  ASSERT_TRUE(waitUntil([&] { return !leader().empty(); }, 15s)) << logs();
  if (leader() == names_[0]) {
    ASSERT_TRUE(daemons_[0]->stop().has_value());
  }
  ASSERT_TRUE(waitUntil([&] { return leader() == names_[1]; }, 15s)) << logs();
  if (!daemons_[0]->running()) {
    ASSERT_TRUE(daemons_[0]->start());
  }
  ASSERT_TRUE(
      waitUntil([&] { return count(daemons_[1]->log(), "warn acting: ") > acted_before; }, 15s))
      << logs();
  // Well past the refused-primary timeout (3 s) and the silence one.
  std::this_thread::sleep_for(12s);
  EXPECT_EQ(leader(), names_[1]) << logs();
  EXPECT_EQ(promotions(), 0) << logs();
  EXPECT_EQ(cluster_.sql(1, "SELECT pg_is_in_recovery()"), "t");
  bool wrote = false;
  cluster_.sql(0, "CREATE TABLE IF NOT EXISTS still_writable(x int)", &wrote);
  EXPECT_TRUE(wrote) << "the primary keeps taking writes";
  const json status = json::parse(httpGet(ports_[1], "/status").body, nullptr, false);
  ASSERT_TRUE(status.is_object());
  EXPECT_EQ(status.value("state", ""), "failover_vetoed") << status.dump(2);
}

}  // namespace pgfailover::testing
