// Rows of the transition table that the stories in decide_test.cc do not reach on their way:
// a failover timeout that runs out in a state that cannot promote, and a promotion pgfailover
// did not see complete.
#include <gtest/gtest.h>

#include "core/decide.h"
#include "decide_story.h"

namespace pgfailover::core {
namespace {

using namespace std::chrono_literals;
using namespace story;

std::size_t countActions(const Decision& d, ActionKind kind) {
  std::size_t n = 0;
  for (const auto& a : d.actions) n += a.kind() == kind ? 1 : 0;
  return n;
}

// The primary's failure timer ran out while the cluster was in a state whose rows cannot
// promote (here fencing_required, the stale node since gone): one tick reports the failing
// primary, and only the next one promotes, from primary_failing.
TEST(TimeoutRanOutElsewhere, ReportsTheFailingPrimaryBeforeTheNextTickPromotes) {
  Story s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Memory& m = s.mutableMemory();
  m.state = ClusterState::kFencingRequired;
  m.failing_since = s.now().steady - 20s;
  m.failing_since_wall = s.now().wall - 20s;

  const std::vector<NodeObservation> lost = {downNode("pg1"),
                                             replicaNode("pg2", /*streaming=*/false)};
  Decision d = s.tick(lost);
  EXPECT_EQ(d.rule, Rule::kTimeoutRanOutElsewhere) << d.reason;
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
  EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u) << "never straight from another state";
  EXPECT_NE(d.reason.find("ran out"), std::string::npos) << d.reason;

  d = s.tick(lost);
  EXPECT_EQ(d.rule, Rule::kPromoteReplica) << d.reason;
  ASSERT_EQ(countActions(d, ActionKind::kPromote), 1u);
  EXPECT_EQ(d.actions.front().node, 1u);
}

// The row needs the timer to have run out with nothing to veto it: a veto is reported as such.
TEST(TimeoutRanOutElsewhere, AVetoWinsOverThePassThrough) {
  Story s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Memory& m = s.mutableMemory();
  m.state = ClusterState::kFencingRequired;
  m.failing_since = s.now().steady - 20s;
  const Decision d = s.tick({downNode("pg1"), replicaNode("pg2", /*streaming=*/true)});
  EXPECT_EQ(d.rule, Rule::kFailoverVetoed) << d.reason;
  EXPECT_EQ(d.next.veto, VetoReason::kReplicaStillStreaming);
}

Memory rememberedPrimary(std::size_t primary, std::uint32_t timeline) {
  Memory m;
  m.state = ClusterState::kHealthy;
  m.primary = primary;
  m.last_primary_timeline = timeline;
  m.last_primary_system_identifier = 7000;
  return m;
}

// pgfailover restarted between pg_promote and its confirmation (or an operator promoted pg2 by
// hand): pg2 is primary on a newer timeline than the remembered pg1. The failover is recorded
// once, as an event, in the count and as the last failover; the tick after is an ordinary one.
TEST(UnseenPromotion, IsRecordedOnceAsAFailover) {
  Story s;
  s.mutableMemory() = rememberedPrimary(0, 1);
  const std::vector<NodeObservation> moved = {downNode("pg1"), primaryNode("pg2", 2)};
  Decision d = s.tick(moved);
  EXPECT_EQ(d.rule, Rule::kUnseenPromotion) << d.reason;
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(1));
  EXPECT_EQ(d.next.failovers, 1u);
  EXPECT_TRUE(d.failover_completed);
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].kind, EventKind::kFailover);
  EXPECT_EQ(d.events[0].result, EventResult::kSucceeded);
  EXPECT_EQ(d.events[0].from, "pg1");
  EXPECT_EQ(d.events[0].to, "pg2");
  ASSERT_TRUE(d.next.last_failover.has_value());
  EXPECT_EQ(d.next.last_failover->to, "'pg2'");
  EXPECT_TRUE(d.actions.empty()) << "recording is all this row does";

  d = s.tick(moved);
  EXPECT_NE(d.rule, Rule::kUnseenPromotion) << d.reason;
  EXPECT_EQ(d.next.failovers, 1u);
  EXPECT_FALSE(d.failover_completed);
  EXPECT_TRUE(d.events.empty());
}

// A promotion of pgfailover's own, seen through, is confirmed by its own row and counted once;
// a writable node on the remembered timeline is not a promotion at all (split brain).
TEST(UnseenPromotion, NotForAPromotionInFlightNorForTheSameTimeline) {
  Story s;
  Memory promoting = rememberedPrimary(0, 1);
  promoting.state = ClusterState::kPromoting;
  promoting.promoting = 1;
  promoting.unconfirmed_promotion = 1;
  s.mutableMemory() = promoting;
  Decision d = s.tick({downNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kPromotionConfirmed) << d.reason;
  EXPECT_EQ(d.next.failovers, 1u);

  Story t;
  t.mutableMemory() = rememberedPrimary(0, 2);
  d = t.tick({downNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kSplitBrain) << d.reason;
  EXPECT_EQ(d.next.failovers, 0u);
}

// While some node is still unprobed the decision waits, and what it remembers waits too: the
// promotion is recorded once every node was seen.
TEST(UnseenPromotion, WaitsForAFullView) {
  Story s;
  Memory m = rememberedPrimary(0, 1);
  m.state = ClusterState::kInitializing;
  s.mutableMemory() = m;
  NodeObservation unprobed;
  unprobed.name = "pg1";
  Decision d = s.tick({unprobed, primaryNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kWaitForFirstProbe) << d.reason;
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(0));
  d = s.tick({downNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kUnseenPromotion) << d.reason;
  EXPECT_EQ(d.next.failovers, 1u);
}

}  // namespace
}  // namespace pgfailover::core
