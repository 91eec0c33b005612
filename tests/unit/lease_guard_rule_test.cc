// The lease guard's rule (src/guard/lease_rule.h) on a fake clock: every rule of
// docs/lifecycle.md "Self-fencing", one check at a time, with the ages the guard measures itself.
#include <gtest/gtest.h>

#include <string>

#include "guard/lease_rule.h"

namespace pgfailover::guard {
namespace {

constexpr std::int64_t kLease = 2500;

TableCatalog goodTable() {
  TableCatalog table;
  table.exists = true;
  table.relkind = 'r';
  table.owner = "pgfailover";
  table.owner_is_superuser = true;
  table.lease_columns = kLeaseColumns;
  table.lease_columns_typed = kLeaseColumns;
  table.has_timeline = true;
  table.timeline_typed = true;
  return table;
}

// pg1, a writable primary on timeline 2, whose own row names peer pg2.
Check primary(const std::string& heartbeat = "2026-01-01 00:00:00+00") {
  Check check;
  check.writable = true;
  check.current_timeline = 2;
  check.table = goodTable();
  check.has_row = true;
  check.lease_ms = kLease;
  check.heartbeat = heartbeat;
  check.row_timeline = 2;
  check.row_node = "pg1";
  check.peers = "pg2";
  return check;
}

StreamingPeer streaming(const std::string& name, const std::string& reply,
                        std::int64_t age_ms = 100) {
  return StreamingPeer{name, reply, age_ms};
}

std::size_t countLogs(const Decision& d, const std::string& needle) {
  std::size_t n = 0;
  for (const auto& line : d.logs) n += line.message.find(needle) != std::string::npos;
  return n;
}

class LeaseRuleTest : public ::testing::Test {
 protected:
  LeaseRule rule_{"pg1", "pgfailover.heartbeat", "", false};
  std::int64_t now_ = 1'000'000;

  // Checks every 500 ms until `until_ms` later; returns the first decision that fences, or the
  // last one.
  Decision runFor(const Check& check, std::int64_t until_ms) {
    Decision last;
    for (std::int64_t t = 0; t <= until_ms; t += 500) {
      last = rule_.evaluate(check, now_);
      now_ += 500;
      if (last.fence) return last;
    }
    return last;
  }
};

TEST_F(LeaseRuleTest, OwnLeaseRunOutWithASilentPeerFencesAfterTheLease) {
  Check check = primary();
  // Writable from the first check: every age starts at zero, so nothing before a lease passed.
  Decision first = rule_.evaluate(check, now_);
  EXPECT_FALSE(first.fence);
  now_ += kLease;  // exactly the lease: not more
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 1;
  Decision d = rule_.evaluate(check, now_);
  ASSERT_TRUE(d.fence);
  EXPECT_EQ(d.stale_peer, "pg2");
  EXPECT_EQ(d.heartbeat, check.heartbeat);
  EXPECT_EQ(d.stale_peer_last_reply, "");
  EXPECT_NE(d.reason.find("no heartbeat from pgfailover for 2501 ms"), std::string::npos)
      << d.reason;
  EXPECT_NE(d.reason.find("the 2500 ms lease ran out"), std::string::npos) << d.reason;
}

TEST_F(LeaseRuleTest, NewHeartbeatRestartsTheLease) {
  Check check = primary("t1");
  rule_.evaluate(check, now_);
  now_ += 2000;
  check.heartbeat = "t2";
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 2000;  // 4 s since the writable start, 2 s since the new heartbeat
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 600;
  EXPECT_TRUE(rule_.evaluate(check, now_).fence);
}

TEST_F(LeaseRuleTest, ReplicaAndReadOnlyNodeAreNeverFencedAndStartOver) {
  Check check = primary();
  rule_.evaluate(check, now_);
  check.writable = false;  // a replica, or default_transaction_read_only = on
  for (int i = 0; i < 20; ++i) {
    now_ += 500;
    EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  }
  // Writable again (promoted, unfenced): a whole lease from now, not from the first check.
  check.writable = true;
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 2000;
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 600;
  EXPECT_TRUE(rule_.evaluate(check, now_).fence);
}

TEST_F(LeaseRuleTest, LeaseZeroFencesNothing) {
  Check check = primary();
  check.lease_ms = 0;
  EXPECT_FALSE(runFor(check, 20000).fence);
}

TEST_F(LeaseRuleTest, NoRowFencesNothing) {
  Check check = primary();
  check.has_row = false;
  EXPECT_FALSE(runFor(check, 20000).fence);
}

TEST_F(LeaseRuleTest, RowForAnotherNodeIsNotThisNodesLeaseAndIsLoggedOnce) {
  Check check = primary();
  check.row_node = "pg2";
  check.row_timeline = 1;  // the old primary's row, replicated before the promotion
  check.peers = "pg1";
  std::size_t logged = 0;
  for (int i = 0; i < 20; ++i) {
    Decision d = rule_.evaluate(check, now_);
    now_ += 500;
    EXPECT_FALSE(d.fence);
    logged += countLogs(d, "written for node 'pg2' on timeline 1 (this node is pg1 on timeline 2)");
  }
  EXPECT_EQ(logged, 1u);
}

TEST_F(LeaseRuleTest, OwnRowFromAnOlderTimelineIsNotThisNodesLease) {
  Check check = primary();
  check.row_timeline = 1;
  std::size_t logged = 0;
  for (int i = 0; i < 20; ++i) {
    Decision d = rule_.evaluate(check, now_);
    now_ += 500;
    EXPECT_FALSE(d.fence);
    logged += countLogs(d, "written for this node on timeline 1, not on its current timeline 2");
  }
  EXPECT_EQ(logged, 1u);
}

TEST_F(LeaseRuleTest, RowWithoutATimelineIsMatchedByName) {
  Check own = primary();
  own.row_timeline = 0;
  EXPECT_TRUE(runFor(own, 5000).fence);

  LeaseRule other_rule("pg1", "pgfailover.heartbeat", "", false);
  Check other = primary();
  other.row_timeline = 0;
  other.row_node = "pg2";
  Decision d = other_rule.evaluate(other, now_);
  EXPECT_EQ(countLogs(d, "written for node 'pg2' by a pgfailover that writes no timeline"), 1u);
  for (int i = 0; i < 20; ++i) {
    now_ += 500;
    EXPECT_FALSE(other_rule.evaluate(other, now_).fence);
  }
}

TEST_F(LeaseRuleTest, RowOnThisTimelineUnderAnotherNameWarnsOnceAndIsEnforced) {
  Check check = primary();
  check.row_node = "db-one";
  std::size_t warnings = 0;
  Decision d;
  for (int i = 0; i < 20 && !d.fence; ++i) {
    d = rule_.evaluate(check, now_);
    now_ += 500;
    for (const auto& line : d.logs) warnings += line.warning;
  }
  EXPECT_TRUE(d.fence);
  EXPECT_EQ(warnings, 1u);
}

TEST_F(LeaseRuleTest, EveryPeerStillStreamingMeansNoFence) {
  Check check = primary();
  check.peers = "pg2,pg3";
  for (int i = 0; i < 40; ++i) {
    // Both replicas reply every second; only pgfailover is gone.
    const std::string reply = "r" + std::to_string(i / 2);
    check.streaming = {streaming("pg2", reply), streaming("pg3", reply)};
    EXPECT_FALSE(rule_.evaluate(check, now_).fence) << i;
    now_ += 500;
  }
  // pg3 stops replying (its walsender stays, with the same reply_time): fenced once a lease
  // passed since its last new reply.
  check.streaming = {streaming("pg2", "r-new"), streaming("pg3", "r19")};
  Decision d;
  std::int64_t waited = 0;
  while (!d.fence && waited < 10000) {
    check.streaming[0].reply = "r-" + std::to_string(waited);
    d = rule_.evaluate(check, now_);
    now_ += 500;
    waited += 500;
  }
  ASSERT_TRUE(d.fence);
  EXPECT_EQ(d.stale_peer, "pg3");
  EXPECT_EQ(d.stale_peer_last_reply, "r19");
  EXPECT_GT(waited, kLease - 1000);
}

TEST_F(LeaseRuleTest, NodeNamedAmongItsPeersIsSkipped) {
  Check self_only = primary();
  self_only.peers = "pg1";
  EXPECT_FALSE(runFor(self_only, 20000).fence);

  LeaseRule rule("pg1", "pgfailover.heartbeat", "", false);
  Check with_peer = primary();
  with_peer.peers = "pg1,pg2";
  Decision d;
  for (int i = 0; i < 20 && !d.fence; ++i) d = rule.evaluate(with_peer, now_ + i * 500);
  ASSERT_TRUE(d.fence);
  EXPECT_EQ(d.stale_peer, "pg2");
}

TEST_F(LeaseRuleTest, NoPeersAtAllFencesNothing) {
  Check check = primary();
  check.peers = "";
  EXPECT_FALSE(runFor(check, 20000).fence);
}

TEST_F(LeaseRuleTest, PeerNamePgfailoverWouldNeverWriteMakesTheRowUntrusted) {
  Check check = primary();
  check.peers = "pg2';DROP TABLE x;--";
  EXPECT_FALSE(runFor(check, 20000).fence);
  Check many = primary();
  many.peers = "pg2";
  for (int i = 0; i < 40; ++i) many.peers += ",n" + std::to_string(i);
  LeaseRule rule("pg1", "pgfailover.heartbeat", "", false);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(rule.evaluate(many, now_ + i * 500).fence);
}

TEST_F(LeaseRuleTest, AfterAFenceTheNextHeartbeatGetsAWholeLease) {
  Check check = primary("t1");
  Decision d = runFor(check, 5000);
  ASSERT_TRUE(d.fence);
  rule_.fenced();
  // pgfailover lifted the fence; the same stale heartbeat is read once more before the next.
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 1000;
  check.heartbeat = "t2";
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
  now_ += 2000;
  EXPECT_FALSE(rule_.evaluate(check, now_).fence);
}

TEST_F(LeaseRuleTest, MissingTableOrOneWithoutLeaseColumnsIsNotReadAndSilent) {
  Check check = primary();
  check.table = TableCatalog{};
  EXPECT_FALSE(rule_.tableReadable(check.table));
  Decision d = runFor(check, 20000);
  EXPECT_FALSE(d.fence);
  EXPECT_TRUE(d.logs.empty());

  check.table = goodTable();
  check.table.lease_columns = 3;  // an older pgfailover's table
  EXPECT_FALSE(rule_.tableReadable(check.table));
  EXPECT_TRUE(rule_.evaluate(check, now_).logs.empty());
  EXPECT_TRUE(rule_.tableReadable(goodTable()));
}

TEST_F(LeaseRuleTest, TableNotOwnedByASuperuserIsRefusedOnceAndEnforcesNothing) {
  Check check = primary();
  check.table.owner = "mallory";
  check.table.owner_is_superuser = false;
  EXPECT_FALSE(rule_.tableReadable(check.table));
  std::size_t refused = 0;
  for (int i = 0; i < 20; ++i) {
    Decision d = rule_.evaluate(check, now_);
    now_ += 500;
    EXPECT_FALSE(d.fence);
    refused += countLogs(d, "is owned by role 'mallory', which is not a superuser");
  }
  EXPECT_EQ(refused, 1u);
  // Fixed (ALTER TABLE ... OWNER TO a superuser): said once, and the lease counts from then.
  check.table = goodTable();
  Decision d = rule_.evaluate(check, now_);
  EXPECT_EQ(countLogs(d, "passes validation now"), 1u);
  EXPECT_FALSE(d.fence);
}

TEST_F(LeaseRuleTest, TableOwnedByTheConfiguredRoleIsAccepted) {
  LeaseRule rule("pg1", "pgfailover.heartbeat", "pgf_writer", false);
  TableCatalog table = goodTable();
  table.owner = "pgf_writer";
  table.owner_is_superuser = false;
  EXPECT_TRUE(rule.tableReadable(table));
  table.owner = "someone_else";
  EXPECT_FALSE(rule.tableReadable(table));
}

TEST_F(LeaseRuleTest, TableWithOtherColumnTypesOrAViewIsRefused) {
  TableCatalog typed = goodTable();
  typed.lease_columns_typed = kLeaseColumns - 1;
  EXPECT_FALSE(rule_.tableReadable(typed));
  TableCatalog timeline = goodTable();
  timeline.timeline_typed = false;
  EXPECT_FALSE(rule_.tableReadable(timeline));
  TableCatalog triggered = goodTable();
  triggered.triggers = 1;
  EXPECT_FALSE(rule_.tableReadable(triggered));
  TableCatalog view = goodTable();
  view.relkind = 'v';
  EXPECT_FALSE(rule_.tableReadable(view));
  Check check = primary();
  check.table = view;
  Decision d = rule_.evaluate(check, now_);
  EXPECT_EQ(countLogs(d, "is not an ordinary table"), 1u);
}

TEST_F(LeaseRuleTest, RowTextInALogLineIsEscaped) {
  Check check = primary();
  check.row_node = "evil\nname\x1b[0m";
  check.row_timeline = 1;
  Decision d = rule_.evaluate(check, now_);
  ASSERT_EQ(d.logs.size(), 1u);
  EXPECT_EQ(d.logs[0].message.find('\n'), std::string::npos) << d.logs[0].message;
  EXPECT_NE(d.logs[0].message.find("evil\\x0aname\\x1b[0m"), std::string::npos)
      << d.logs[0].message;
}

TEST(LeaseRuleOnceTest, OnceUsesTheServersAges) {
  LeaseRule rule("pg1", "pgfailover.heartbeat", "", true);
  Check check = primary();
  check.server_heartbeat_age_ms = 10000;
  // pg2 streams and replied 100 ms ago on the server's clock: it vouches.
  check.streaming = {streaming("pg2", "r", 100)};
  EXPECT_FALSE(rule.evaluate(check, 0).fence);
  // pg2 replied 3 s ago: stale.
  check.streaming = {streaming("pg2", "r", 3000)};
  Decision d = rule.evaluate(check, 0);
  EXPECT_TRUE(d.fence);
  EXPECT_NE(d.reason.find("for at least 3000 ms"), std::string::npos) << d.reason;
  // pg2 does not stream at all: older than any lease.
  check.streaming.clear();
  EXPECT_TRUE(rule.evaluate(check, 0).fence);
  // A fresh heartbeat: nothing to do.
  check.server_heartbeat_age_ms = 100;
  EXPECT_FALSE(rule.evaluate(check, 0).fence);
}

TEST(LeaseRuleNamesTest, NodeNames) {
  EXPECT_TRUE(isValidNodeName("pg-1.a_b"));
  EXPECT_FALSE(isValidNodeName(""));
  EXPECT_FALSE(isValidNodeName("a b"));
  EXPECT_FALSE(isValidNodeName("x'"));
  EXPECT_FALSE(isValidNodeName(std::string(64, 'a')));
}

}  // namespace
}  // namespace pgfailover::guard
