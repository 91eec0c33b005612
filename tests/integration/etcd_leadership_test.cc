// Leadership through a real etcd (Debian's etcd-server): campaign, renewal, resignation, a lease
// that runs out handing the leader key to another instance, and a deposed instance whose late
// write etcd refuses while its own clock already says it must not act.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "coord/etcd_client.h"
#include "coord/leadership.h"
#include "support/etcd.h"
#include "support/pg_cluster.h"

namespace pgfailover::coord {
namespace {

using pgfailover::testing::EtcdCluster;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

EtcdClientOptions clientOptions(const EtcdCluster& etcd) {
  EtcdClientOptions options;
  options.endpoints = etcd.clientUrls();
  options.connect_timeout = milliseconds(300);
  options.request_timeout = milliseconds(700);
  return options;
}

LeadershipOptions leadershipOptions(const std::string& name) {
  LeadershipOptions options;
  options.name = name;
  options.prefix = "/pgfailover/test";
  options.lease_ttl = milliseconds(2000);
  return options;
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

TEST(EtcdLeadership, CampaignRenewResign) {
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  EtcdClient client_a(clientOptions(etcd));
  EtcdClient client_b(clientOptions(etcd));
  Leadership a(client_a, leadershipOptions("a"));
  Leadership b(client_b, leadershipOptions("b"));

  ASSERT_TRUE(a.campaign(Clock::now()).isOk());
  EXPECT_TRUE(a.leading());
  EXPECT_TRUE(a.acting(Clock::now()));
  EXPECT_GT(a.term(), 0);
  ASSERT_TRUE(b.campaign(Clock::now()).isOk());
  EXPECT_FALSE(b.leading());
  EXPECT_FALSE(b.acting(Clock::now()));
  EXPECT_EQ(b.lastSeenLeader().name, "a");
  EXPECT_EQ(b.lastSeenLeader().term, a.term());

  // Renewing keeps the key: four TTLs later a still leads and b still cannot take it.
  std::vector<double> renew_ms;
  const auto until = Clock::now() + milliseconds(8000);
  while (Clock::now() < until) {
    const auto before = Clock::now();
    ASSERT_TRUE(a.renew(before).isOk());
    renew_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - before).count());
    ASSERT_TRUE(b.campaign(Clock::now()).isOk());
    ASSERT_FALSE(b.leading());
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_TRUE(a.acting(Clock::now()));
  auto leader = a.readLeader();
  ASSERT_TRUE(leader.ok()) << leader.status.message();
  EXPECT_EQ(leader.value.name, "a");
  EXPECT_EQ(leader.value.term, a.term());
  EXPECT_EQ(leader.value.lease, a.leaseId());

  // Shared documents go through the guarded transaction and are readable by everyone.
  ASSERT_TRUE(a.putDocument(Clock::now(), "state", {{"primary", "pg1"}, {"timeline", 3}}).isOk());
  auto state = b.readDocument("state");
  ASSERT_TRUE(state.ok()) << state.status.message();
  ASSERT_TRUE(state.value.has_value());
  EXPECT_EQ((*state.value)["primary"], "pg1");
  EXPECT_EQ((*state.value)["timeline"], 3);
  Status refused = b.putDocument(Clock::now(), "state", {{"primary", "pg2"}});
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.message();
  auto missing = b.readDocument("promotion-intent");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing.value.has_value());

  // A clean stop hands over at once, not after the TTL.
  ASSERT_TRUE(a.resign().isOk());
  EXPECT_FALSE(a.acting(Clock::now()));
  const auto before_campaign = Clock::now();
  ASSERT_TRUE(b.campaign(before_campaign).isOk());
  const double campaign_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - before_campaign).count();
  EXPECT_TRUE(b.leading());
  EXPECT_GT(b.term(), a.term());
  std::printf(
      "etcd latency (local etcd 3.4, one member): renew p50 %.2f ms, p99 %.2f ms, max %.2f "
      "ms over %zu; campaign (lease grant + txn) %.2f ms\n",
      percentile(renew_ms, 0.5), percentile(renew_ms, 0.99), percentile(renew_ms, 1.0),
      renew_ms.size(), campaign_ms);
}

TEST(EtcdLeadership, ExpiredLeaseHandsLeadershipToAnotherInstance) {
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  EtcdClient client_a(clientOptions(etcd));
  EtcdClient client_b(clientOptions(etcd));
  Leadership a(client_a, leadershipOptions("a"));
  Leadership b(client_b, leadershipOptions("b"));
  ASSERT_TRUE(a.campaign(Clock::now()).isOk());
  ASSERT_TRUE(a.leading());
  const auto last_renewal = Clock::now();
  ASSERT_TRUE(a.renew(last_renewal).isOk());

  // a stops renewing (a crash, a partition). b keeps campaigning and wins only once etcd
  // expired a's lease: never before the TTL.
  Clock::time_point won_at{};
  while (Clock::now() < last_renewal + milliseconds(10000)) {
    ASSERT_TRUE(b.campaign(Clock::now()).isOk());
    if (b.leading()) {
      won_at = Clock::now();
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(b.leading()) << "b never took over after a stopped renewing";
  const auto handover = std::chrono::duration_cast<milliseconds>(won_at - last_renewal);
  EXPECT_GE(handover, milliseconds(2000)) << "b led before a's lease could have run out";
  std::printf("handover after the last renewal: %lld ms (TTL 2000 ms)\n",
              static_cast<long long>(handover.count()));
  EXPECT_GT(b.term(), a.term());
  // a's own clock stopped it before b could win.
  EXPECT_FALSE(a.acting(won_at));
  EXPECT_LE(a.actingUntil(), last_renewal + milliseconds(2000) - a.margin());
  // a's next renewal learns the lease is gone.
  Status renewed = a.renew(Clock::now());
  EXPECT_EQ(renewed.code(), StatusCode::kFailedPrecondition) << renewed.message();
  EXPECT_FALSE(a.leading());
  ASSERT_TRUE(a.campaign(Clock::now()).isOk());
  EXPECT_FALSE(a.leading());
  EXPECT_EQ(a.lastSeenLeader().name, "b");
}

TEST(EtcdLeadership, DeposedInstanceLateWriteIsRefusedByEtcd) {
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  EtcdClient client_a(clientOptions(etcd));
  EtcdClient client_b(clientOptions(etcd));
  Leadership a(client_a, leadershipOptions("a"));
  Leadership b(client_b, leadershipOptions("b"));
  ASSERT_TRUE(a.campaign(Clock::now()).isOk());
  ASSERT_TRUE(a.leading());
  const auto checked_at = Clock::now();
  ASSERT_TRUE(a.renew(checked_at).isOk());
  ASSERT_TRUE(a.acting(checked_at));
  ASSERT_TRUE(
      a.putDocument(checked_at, "promotion-intent", {{"promote", "pg2"}, {"by", "a"}}).isOk());

  // a decides to act at checked_at, then pauses (a GC pause, a stopped VM) past its TTL; b
  // takes over and writes its own intent.
  ASSERT_TRUE(pgfailover::testing::waitUntil(
      [&] { return b.campaign(Clock::now()).isOk() && b.leading(); }, milliseconds(10000)));
  ASSERT_TRUE(
      b.putDocument(Clock::now(), "promotion-intent", {{"promote", "pg1"}, {"by", "b"}}).isOk());

  // By its own clock a already stopped acting...
  EXPECT_FALSE(a.acting(Clock::now()));
  Status local = a.putDocument(Clock::now(), "promotion-intent", {{"promote", "pg2"}});
  EXPECT_EQ(local.code(), StatusCode::kFailedPrecondition);
  // ...and a write it sends as if it were still at checked_at (the pause came between its check
  // and its write) is refused by etcd: the leader key is no longer a's.
  auto late = a.guardedTxn(checked_at, {coord::Op::put("/pgfailover/test/promotion-intent",
                                                       R"({"promote":"pg2","by":"a"})")});
  EXPECT_EQ(late.status.code(), StatusCode::kFailedPrecondition) << late.status.message();
  EXPECT_NE(late.status.message().find("'b'"), std::string::npos) << late.status.message();
  EXPECT_FALSE(late.value.succeeded);
  EXPECT_FALSE(a.leading());
  auto intent = b.readDocument("promotion-intent");
  ASSERT_TRUE(intent.ok());
  ASSERT_TRUE(intent.value.has_value());
  EXPECT_EQ((*intent.value)["by"], "b");
}

TEST(EtcdLeadership, HungEtcdStopsActingWithinItsWindowAndResumes) {
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  EtcdClient client(clientOptions(etcd));
  LeadershipOptions options = leadershipOptions("a");
  options.lease_ttl = milliseconds(3000);
  Leadership a(client, options);
  ASSERT_TRUE(a.campaign(Clock::now()).isOk());
  ASSERT_TRUE(a.leading());
  const auto last_ok = Clock::now();
  ASSERT_TRUE(a.renew(last_ok).isOk());

  // etcd hangs (SIGSTOP): its port still accepts connections, nothing answers. Every renewal
  // ends at its deadline with an error, and acting ends by the clock.
  etcd.pause(0);
  int failures = 0;
  while (a.acting(Clock::now())) {
    const auto before = Clock::now();
    Status renewed = a.renew(before);
    const auto took = Clock::now() - before;
    ASSERT_FALSE(renewed.isOk()) << "renewed against a stopped etcd";
    EXPECT_EQ(renewed.code(), StatusCode::kDeadlineExceeded) << renewed.message();
    EXPECT_LT(took, milliseconds(2000)) << "a call outlived its deadlines (300 + 700 ms)";
    ++failures;
  }
  EXPECT_GT(failures, 0);
  EXPECT_TRUE(a.leading()) << "a hang is no proof of being deposed";
  EXPECT_EQ(a.actingUntil(), last_ok + milliseconds(3000) - a.margin());
  auto refused = a.guardedTxn(Clock::now(), {Op::put("/pgfailover/test/state", "{}")});
  EXPECT_EQ(refused.status.code(), StatusCode::kFailedPrecondition);

  // etcd answers again: the lease never ran out in a stopped etcd, so a renews and acts again.
  etcd.resume(0);
  ASSERT_TRUE(pgfailover::testing::waitUntil([&] { return a.step(Clock::now()).isOk(); },
                                             milliseconds(10000)));
  EXPECT_TRUE(a.acting(Clock::now()));
  EXPECT_TRUE(a.putDocument(Clock::now(), kStateDocument, {{"after", "hang"}}).isOk());
}

}  // namespace
}  // namespace pgfailover::coord
