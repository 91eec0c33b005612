// Several instances, one acting (docs/coordination.md), end to end: two real pgfailover daemons
// watching one real PostgreSQL 15 primary and streaming replica, coordinated through a real
// etcd. Exactly one acts; killing it hands over after its lease ran out and not before; a lost
// primary is promoted once whichever instance acts, also when the acting one dies with the
// promotion's intent written; with etcd down nobody fails over or demotes and the primary keeps
// taking writes; a deposed instance that wakes up acts no more.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "coord/etcd_client.h"
#include "support/daemon.h"
#include "support/etcd.h"
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
      config["etcd"] = {{"name", names_[i]},
                        {"endpoints", etcd_.clientUrls()},
                        {"prefix", kPrefix},
                        {"lease_ttl_ms", kTtlMs},
                        {"request_timeout_ms", 250}};
      const std::string path =
          writePgfailoverConfig(cluster_, config, "pgfailover-" + names_[i] + ".json");
      daemons_[i] = std::make_unique<DaemonProcess>(
          path, cluster_.dir() + "/pgfailover-" + names_[i] + ".log");
    }
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
  etcd_.kill(0);
  // Past the acting window and the heartbeat's age: nobody acts, the primary takes writes.
  std::this_thread::sleep_for(std::chrono::milliseconds(kTtlMs + 2000));
  bool ok = false;
  cluster_.sql(0, "CREATE TABLE during_outage(id int); INSERT INTO during_outage VALUES (1)", &ok);
  EXPECT_TRUE(ok) << "the primary keeps taking writes with etcd down";
  EXPECT_EQ(cluster_.sql(0, "SHOW default_transaction_read_only"), "off");
  EXPECT_EQ(count(daemons_[0]->log() + daemons_[1]->log(), " acting_stopped: "), 1) << logs();

  // The primary is lost too: nobody may promote while no instance can act.
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

}  // namespace
}  // namespace pgfailover::testing
