// The decision table with a fake clock and fake observations: every row fires where it should,
// and stories that matter to a DBA (flaps, vetoes, lag, both nodes down, a returning primary).
#include "core/decide.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "decide_story.h"

namespace pgfailover::core {
namespace {

using namespace std::chrono_literals;

using namespace story;

// Brings a story to Healthy with pg1 primary, pg2 replica.
Story healthyStory(Policy policy = Policy{}) {
  Story story(policy);
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy) << d.reason;
  return story;
}

std::size_t countActions(const Decision& d, ActionKind kind) {
  std::size_t n = 0;
  for (const auto& a : d.actions) n += a.kind() == kind ? 1 : 0;
  return n;
}

TEST(Decide, WaitsForEveryNodeBeforeDeciding) {
  Story story;
  NodeObservation unprobed;
  unprobed.name = "pg2";
  auto d = story.tick({primaryNode("pg1"), unprobed});
  EXPECT_EQ(d.next.state, ClusterState::kInitializing);
  EXPECT_EQ(d.rule, Rule::kWaitForFirstProbe);
  EXPECT_TRUE(d.actions.empty());
}

TEST(Decide, AdoptsTheOnlyWritableNodeAsPrimary) {
  Story story;
  auto d = story.tick({replicaNode("pg1"), primaryNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy);
  ASSERT_TRUE(d.next.primary.has_value());
  EXPECT_EQ(*d.next.primary, 1u);
  EXPECT_NE(d.reason.find("'pg2'"), std::string::npos) << d.reason;
}

TEST(Decide, DegradedWhenReplicaDoesNotStream) {
  auto story = healthyStory();
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2", /*streaming=*/false)});
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  EXPECT_EQ(d.rule, Rule::kPrimaryHealthyReplicaNot);
  EXPECT_NE(d.reason.find("not streaming"), std::string::npos) << d.reason;
}

TEST(Decide, DegradedWhenReplicaDiesAndNoFailover) {
  auto story = healthyStory();
  for (int i = 0; i < 30; ++i) {
    auto d = story.tick({primaryNode("pg1"), downNode("pg2")});
    EXPECT_EQ(d.next.state, ClusterState::kDegraded);
    EXPECT_TRUE(d.actions.empty());
  }
}

TEST(Decide, DegradedWhenReplicaLagsBeyondLimit) {
  auto story = healthyStory();
  auto primary = primaryNode("pg1", 1, 0x3000148 + 64ull * 1024 * 1024);
  auto d = story.tick({primary, replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  EXPECT_NE(d.reason.find("lags"), std::string::npos) << d.reason;
}

TEST(Decide, ReplicaOnAnotherTimelineIsNotHealthy) {
  auto story = healthyStory();
  auto replica = replicaNode("pg2");
  replica.wal_receiver->received_timeline = 2;
  auto d = story.tick({primaryNode("pg1"), replica});
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  EXPECT_NE(d.reason.find("timeline"), std::string::npos) << d.reason;
}

TEST(Decide, OneLostProbeIsNeverEnough) {
  auto story = healthyStory();
  auto d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
  EXPECT_TRUE(d.actions.empty());
  EXPECT_NE(d.reason.find("confirmed_down timeout 3.0 s"), std::string::npos) << d.reason;
}

TEST(Decide, CrashedPrimaryIsFailedOverAfterConfirmedDownTimeout) {
  auto story = healthyStory();
  Decision d;
  // Refused for 3 s: the first failure starts the timer, promotion once 3 s have passed.
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  ASSERT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
  ASSERT_EQ(countActions(d, ActionKind::kPromote), 1u);
  EXPECT_EQ(d.actions.front().node, 1u);
  EXPECT_EQ(d.rule, Rule::kPromoteReplica);
  EXPECT_NE(d.reason.find("promoting 'pg2' at 0/3000148"), std::string::npos) << d.reason;

  // The next tick sees pg2 writable on timeline 2: failover complete, pg2 is primary.
  d = story.tick({downNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  EXPECT_TRUE(d.failover_completed);
  ASSERT_TRUE(d.next.last_failover.has_value());
  EXPECT_EQ(d.next.last_failover->from, "pg1");
  EXPECT_EQ(d.next.last_failover->to, "pg2");
  EXPECT_EQ(d.next.last_failover->duration, 4000ms);
  EXPECT_EQ(*d.next.primary, 1u);

  // And it never promotes again while pg1 stays down.
  for (int i = 0; i < 20; ++i) {
    d = story.tick({downNode("pg1"), primaryNode("pg2", 2)});
    EXPECT_EQ(d.next.state, ClusterState::kDegraded);
    EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u);
  }
  EXPECT_EQ(story.memory().failovers, 1u);
}

TEST(Decide, SilentPrimaryNeedsTheLongerTimeout) {
  auto story = healthyStory();
  Decision d;
  for (int i = 0; i < 10; ++i) {
    d = story.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", true, 6.0 + i)});
    EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing) << i << ": " << d.reason;
  }
  EXPECT_NE(d.reason.find("unresponsive timeout 10.0 s"), std::string::npos) << d.reason;
  d = story.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", true, 16.0)});
  EXPECT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
}

TEST(Decide, PrimaryFlapsWithinGraceDoesNotFailOver) {
  auto story = healthyStory();
  // Down 2 s, up 1 s, repeatedly: the timer restarts each time the primary commits again.
  for (int round = 0; round < 10; ++round) {
    auto d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
    EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
    d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
    EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
    EXPECT_TRUE(d.actions.empty());
    d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
    EXPECT_EQ(d.next.state, ClusterState::kHealthy);
    EXPECT_FALSE(d.next.failing_since.has_value());
  }
}

TEST(Decide, ReplicaThatStillHearsThePrimaryVetoesFailover) {
  auto story = healthyStory();
  Decision d;
  int vetoes_counted = 0;
  for (int i = 0; i < 15; ++i) {
    d = story.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", true, 0.3)});
    EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u);
    if (d.new_veto) ++vetoes_counted;
  }
  EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed);
  EXPECT_EQ(d.rule, Rule::kFailoverVetoed);
  EXPECT_EQ(d.next.veto, VetoReason::kReplicaStillStreaming);
  EXPECT_EQ(vetoes_counted, 1) << "a veto is counted once, not once per tick";
  EXPECT_NE(d.reason.find("still hears the primary"), std::string::npos) << d.reason;
}

TEST(Decide, StreamingReplicaWithStaleLastMessageConfirmsLoss) {
  auto story = healthyStory();
  Decision d;
  for (int i = 0; i < 11; ++i)
    d = story.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", true, 7.0 + i)});
  EXPECT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
}

TEST(Decide, SilenceThresholdFollowsReplicaWalReceiverTimeout) {
  Policy policy;
  auto replica = replicaNode("pg2", true, 20.0);
  replica.wal_receiver_timeout = 60000ms;  // PostgreSQL's default: idle streams ping every 30 s
  EXPECT_EQ(effectiveReplicaSilence(policy, replica), 31000ms);
  replica.wal_receiver_timeout = 2000ms;
  EXPECT_EQ(effectiveReplicaSilence(policy, replica), policy.replica_silence);

  auto story = healthyStory();
  Decision d;
  replica.wal_receiver_timeout = 60000ms;
  for (int i = 0; i < 15; ++i) d = story.tick({downNode("pg1", ProbeFailure::kTimeout), replica});
  EXPECT_EQ(d.next.veto, VetoReason::kReplicaStillStreaming) << d.reason;
}

TEST(Decide, LaggingReplicaIsRefusedWithReason) {
  Policy policy;
  policy.max_lag_bytes = 1024 * 1024;
  auto story = healthyStory(policy);
  // The primary was last seen 8 MB ahead of what the replica has received.
  story.tick({primaryNode("pg1", 1, 0x3000148 + 8ull * 1024 * 1024), replicaNode("pg2")});
  Decision d;
  for (int i = 0; i < 5; ++i) d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed);
  EXPECT_EQ(d.next.veto, VetoReason::kReplicaLagging);
  EXPECT_NE(d.reason.find("8.0 MB behind"), std::string::npos) << d.reason;
  EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u);
}

TEST(Decide, BothNodesDownPromotesNothing) {
  auto story = healthyStory();
  Decision d;
  for (int i = 0; i < 40; ++i) {
    d = story.tick({downNode("pg1"), downNode("pg2")});
    EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u);
  }
  EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed);
  EXPECT_EQ(d.next.veto, VetoReason::kReplicaUnreachable);
  // Both back as they were: the same primary, no promotion.
  d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy);
  EXPECT_EQ(*d.next.primary, 0u);
}

TEST(Decide, ReplicaOfAnotherClusterIsNeverPromoted) {
  auto story = healthyStory();
  auto stranger = replicaNode("pg2", false);
  stranger.system_identifier = 42;
  Decision d;
  for (int i = 0; i < 5; ++i) d = story.tick({downNode("pg1"), stranger});
  EXPECT_EQ(d.next.veto, VetoReason::kSystemIdentifierMismatch);
  EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u);
}

TEST(Decide, StartingUpPrimaryGetsItsGracePeriod) {
  auto story = healthyStory();
  Decision d;
  for (int i = 0; i < 29; ++i) {
    d = story.tick({downNode("pg1", ProbeFailure::kStartingUp), replicaNode("pg2", false)});
    EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing) << d.reason;
  }
  EXPECT_NE(d.reason.find("starting_up timeout 30.0 s"), std::string::npos) << d.reason;
  d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy);
}

TEST(Decide, PrimaryThatCannotCommitIsFailing) {
  auto story = healthyStory();
  auto stuck = primaryNode("pg1");
  stuck.heartbeat_written = false;
  stuck.failure = ProbeFailure::kCannotCommit;
  stuck.error = "could not extend file: No space left on device";
  auto d = story.tick({stuck, replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing);
  EXPECT_NE(d.reason.find("No space left"), std::string::npos) << d.reason;
}

TEST(Decide, ReturningOldPrimaryIsNeverPrimaryAndMustBeFenced) {
  auto story = healthyStory();
  for (int i = 0; i < 4; ++i) story.tick({downNode("pg1"), replicaNode("pg2", false)});
  ASSERT_EQ(story.memory().state, ClusterState::kPromoting);
  story.tick({downNode("pg1"), primaryNode("pg2", 2)});
  ASSERT_EQ(*story.memory().primary, 1u);

  // pg1 comes back writable on timeline 1.
  ClusterView view{{primaryNode("pg1", 1), primaryNode("pg2", 2)}};
  auto d = story.tick(view.nodes);
  EXPECT_EQ(d.next.state, ClusterState::kFencingRequired);
  EXPECT_EQ(*d.next.primary, 1u);
  ASSERT_EQ(countActions(d, ActionKind::kFence), 1u);
  EXPECT_EQ(d.actions.front().node, 0u);
  auto snapshot = buildSnapshot(d, ClusterView{view.nodes}, story.now(), story.policy(), 1);
  EXPECT_EQ(snapshot.nodes[0].role, NodeRole::kNeedsFencing);
  EXPECT_EQ(snapshot.nodes[1].role, NodeRole::kPrimary);
  EXPECT_TRUE(snapshot.split_brain);

  // Fencing is asked for every tick until it holds.
  d = story.tick(view.nodes);
  EXPECT_EQ(countActions(d, ActionKind::kFence), 1u);
  auto fenced = primaryNode("pg1", 1);
  fenced.read_only = true;
  fenced.heartbeat_written = false;
  d = story.tick({fenced, primaryNode("pg2", 2)});
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  EXPECT_EQ(countActions(d, ActionKind::kFence), 0u);
}

TEST(Decide, TwoWritableNodesOnOneTimelineIsSplitBrainAndNothingIsDone) {
  auto story = healthyStory();
  auto d = story.tick({primaryNode("pg1"), primaryNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kSplitBrain);
  EXPECT_TRUE(d.actions.empty());
  auto snapshot = buildSnapshot(d, ClusterView{{primaryNode("pg1"), primaryNode("pg2")}},
                                story.now(), story.policy(), 1);
  EXPECT_TRUE(snapshot.split_brain);
}

TEST(Decide, PromotionIsRetriedThenGivenUp) {
  Policy policy;
  policy.promote_attempts = 2;
  policy.promote_timeout = 2000ms;
  auto story = healthyStory(policy);
  Decision d;
  for (int i = 0; i < 4; ++i) d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  ASSERT_EQ(d.next.state, ClusterState::kPromoting);
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.rule, Rule::kPromotionPending);
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.rule, Rule::kPromotionRetry);
  EXPECT_EQ(countActions(d, ActionKind::kPromote), 1u);
  story.tick({downNode("pg1"), replicaNode("pg2", false)});
  d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.rule, Rule::kPromotionGaveUp);
  EXPECT_TRUE(d.failover_failed);
  EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed);
  for (int i = 0; i < 5; ++i) {
    d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
    EXPECT_EQ(countActions(d, ActionKind::kPromote), 0u);
    EXPECT_EQ(d.next.veto, VetoReason::kPromoteAttemptsExhausted);
  }
}

TEST(Decide, PromotionAbandonedWhenPrimaryReturnsFirst) {
  auto story = healthyStory();
  for (int i = 0; i < 4; ++i) story.tick({downNode("pg1"), replicaNode("pg2", false)});
  ASSERT_EQ(story.memory().state, ClusterState::kPromoting);
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2", false)}, 11000ms);
  EXPECT_EQ(d.rule, Rule::kPromotionAbandoned);
  EXPECT_TRUE(d.failover_failed);
  EXPECT_EQ(*d.next.primary, 0u);
}

TEST(Decide, StartedWhilePrimaryDownInfersItFromTheReplica) {
  Story story;
  Decision d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kPrimaryFailing) << d.reason;
  ASSERT_TRUE(d.next.primary.has_value());
  EXPECT_EQ(*d.next.primary, 0u);
  for (int i = 0; i < 3; ++i) d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
}

TEST(Decide, TwoReplicasAndNoMemoryIsNoPrimary) {
  Story story;
  auto d = story.tick({replicaNode("pg1", false), replicaNode("pg2", false)});
  EXPECT_EQ(d.next.state, ClusterState::kNoPrimary);
  EXPECT_TRUE(d.actions.empty());
}

TEST(Decide, FollowsAPromotionMadeOutsidePgfailover) {
  auto story = healthyStory();
  auto d = story.tick({replicaNode("pg1", false), primaryNode("pg2", 2)});
  EXPECT_EQ(*d.next.primary, 1u);
  EXPECT_EQ(d.next.state, ClusterState::kDegraded);
}

TEST(Decide, SnapshotReportsRunningTimeoutAndLag) {
  auto story = healthyStory();
  story.tick({downNode("pg1"), replicaNode("pg2", false)});
  auto d = story.tick({downNode("pg1"), replicaNode("pg2", false)});
  auto snapshot = buildSnapshot(d, ClusterView{{downNode("pg1"), replicaNode("pg2", false)}},
                                story.now(), story.policy(), 7);
  ASSERT_TRUE(snapshot.timeout.has_value());
  EXPECT_EQ(snapshot.timeout->kind, TimeoutKind::kConfirmedDown);
  EXPECT_EQ(snapshot.timeout->elapsed, 1000ms);
  EXPECT_EQ(snapshot.timeout->remaining(), 2000ms);
  EXPECT_EQ(snapshot.nodes[0].role, NodeRole::kPrimary);
  EXPECT_EQ(snapshot.nodes[1].role, NodeRole::kReplica);
  ASSERT_TRUE(snapshot.nodes[1].lag_bytes.has_value());
  EXPECT_EQ(*snapshot.nodes[1].lag_bytes, 0u);
  ASSERT_TRUE(snapshot.nodes[1].lag_seconds.has_value());
  EXPECT_DOUBLE_EQ(*snapshot.nodes[1].lag_seconds, 0.5);
  EXPECT_EQ(snapshot.tick, 7u);
}

TEST(Decide, LagInSecondsComparesWithTheHeartbeatReplicasCouldHaveReplayed) {
  Story story;
  auto primary = primaryNode("pg1");
  auto replica = replicaNode("pg2");
  // Each tick the primary writes t; the replica, probed meanwhile, shows t - 1 s: no real lag.
  Decision d;
  for (int t = 1; t <= 3; ++t) {
    primary.heartbeat_unix_seconds = 1000.0 + t;
    replica.heartbeat_unix_seconds = 1000.0 + t - 1;
    d = story.tick({primary, replica});
  }
  auto snapshot = buildSnapshot(d, ClusterView{{primary, replica}}, story.now(), story.policy(), 3);
  ASSERT_TRUE(snapshot.nodes[1].lag_seconds.has_value());
  EXPECT_DOUBLE_EQ(*snapshot.nodes[1].lag_seconds, 0.0);
  // A replica stuck 5 s back shows 4 s of lag against the heartbeat it should have had.
  replica.heartbeat_unix_seconds = 998.0;
  snapshot = buildSnapshot(d, ClusterView{{primary, replica}}, story.now(), story.policy(), 3);
  EXPECT_DOUBLE_EQ(*snapshot.nodes[1].lag_seconds, 4.0);
}

// ---- lifecycle: rejoin, slots, switchover, operator requests, failback ----

Policy lifecyclePolicy() {
  Policy policy;
  policy.slot_names = {"pgfailover_pg1", "pgfailover_pg2"};
  return policy;
}

// A story whose view carries node operations (a host executor exists for every node).
class LifecycleStory {
 public:
  explicit LifecycleStory(Policy policy = lifecyclePolicy()) : story_(policy) {
    operations_.resize(2);
    for (auto& op : operations_) op.available = true;
  }
  Decision tick(std::vector<NodeObservation> nodes, std::optional<AdminRequest> request = {},
                Millis advance = 1000ms) {
    ClusterView view{std::move(nodes)};
    view.operations = operations_;
    view.request = request;
    return story_.tickView(view, advance);
  }
  std::vector<NodeOperation>& operations() { return operations_; }
  Story& story() { return story_; }

 private:
  Story story_;
  std::vector<NodeOperation> operations_;
};

NodeObservation withSlots(NodeObservation n, std::vector<std::string> names) {
  n.slots_observed = true;
  for (auto& name : names) n.slots.push_back(ReplicationSlot{name, true, 0x3000000});
  return n;
}

std::vector<Action> actionsOf(const Decision& d, ActionKind kind) {
  std::vector<Action> out;
  for (const auto& a : d.actions)
    if (a.kind() == kind) out.push_back(a);
  return out;
}

TEST(Lifecycle, PrimaryKeepsASlotForEachReplica) {
  LifecycleStory s;
  auto d = s.tick({withSlots(primaryNode("pg1"), {}), replicaNode("pg2")});
  auto creates = actionsOf(d, ActionKind::kCreateSlot);
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].node, 0u);
  EXPECT_EQ(std::get<CreateSlot>(creates[0].op).slot, "pgfailover_pg2");
  d = s.tick({withSlots(primaryNode("pg1"), {"pgfailover_pg2"}), replicaNode("pg2")});
  EXPECT_TRUE(actionsOf(d, ActionKind::kCreateSlot).empty());
}

// A replica cloned without its slot streams around it; pgfailover tells it to use it (the
// unused slot would retain WAL for nothing), at most every 30 s, and stops once it does.
TEST(Lifecycle, ReplicaStreamingWithoutItsSlotIsToldToUseIt) {
  LifecycleStory s;
  auto primary = withSlots(primaryNode("pg1"), {"pgfailover_pg2"});
  primary.slots[0].active = false;
  auto replica = replicaNode("pg2");
  auto d = s.tick({primary, replica});
  auto uses = actionsOf(d, ActionKind::kUseSlot);
  ASSERT_EQ(uses.size(), 1u) << d.reason;
  EXPECT_EQ(uses[0].node, 1u);
  EXPECT_EQ(std::get<UseSlot>(uses[0].op).slot, "pgfailover_pg2");
  for (int i = 0; i < 29; ++i) {
    d = s.tick({primary, replica});
    EXPECT_TRUE(actionsOf(d, ActionKind::kUseSlot).empty()) << "tick " << i;
  }
  d = s.tick({primary, replica});
  EXPECT_EQ(actionsOf(d, ActionKind::kUseSlot).size(), 1u) << "asked again after 30 s";
  // Streaming from it now.
  primary.slots[0].active = true;
  replica.wal_receiver->slot_name = "pgfailover_pg2";
  for (int i = 0; i < 40; ++i) {
    d = s.tick({primary, replica});
    EXPECT_TRUE(actionsOf(d, ActionKind::kUseSlot).empty());
  }
}

// failover.rejoin off leaves rejoins to the operator, not the slots: a node with a host executor
// keeps its slot, and one that streams around it is told to use it all the same.
TEST(Lifecycle, ReplicaStreamingWithoutItsSlotIsToldToUseItWithRejoinsOff) {
  Policy policy = lifecyclePolicy();
  policy.rejoin = false;
  LifecycleStory s(policy);
  auto primary = withSlots(primaryNode("pg1"), {"pgfailover_pg2"});
  primary.slots[0].active = false;
  auto d = s.tick({primary, replicaNode("pg2")});
  auto uses = actionsOf(d, ActionKind::kUseSlot);
  ASSERT_EQ(uses.size(), 1u) << d.reason;
  EXPECT_EQ(uses[0].node, 1u);
  EXPECT_EQ(std::get<UseSlot>(uses[0].op).slot, "pgfailover_pg2");
  EXPECT_TRUE(actionsOf(d, ActionKind::kRejoin).empty());
}

TEST(Lifecycle, SlotOfANodeGoneTooLongIsDropped) {
  Policy policy = lifecyclePolicy();
  policy.slot_drop_after = 5000ms;
  policy.rejoin = false;
  LifecycleStory s(policy);
  s.tick({withSlots(primaryNode("pg1"), {"pgfailover_pg2"}), replicaNode("pg2")});
  Decision d;
  int drops = 0;
  for (int i = 0; i < 8; ++i) {
    auto primary = withSlots(primaryNode("pg1"), {"pgfailover_pg2"});
    primary.slots[0].active = false;
    d = s.tick({primary, downNode("pg2")});
    drops += static_cast<int>(actionsOf(d, ActionKind::kDropSlot).size());
    EXPECT_TRUE(actionsOf(d, ActionKind::kCreateSlot).empty());
  }
  EXPECT_GE(drops, 1);
  // Once it is dropped, a node that stays gone gets no new slot.
  d = s.tick({withSlots(primaryNode("pg1"), {}), downNode("pg2")});
  EXPECT_TRUE(actionsOf(d, ActionKind::kCreateSlot).empty());
  // Back again: the slot is recreated.
  d = s.tick({withSlots(primaryNode("pg1"), {}), replicaNode("pg2", false)});
  EXPECT_EQ(actionsOf(d, ActionKind::kCreateSlot).size(), 1u);
}

TEST(Lifecycle, NewPrimaryGetsASlotForTheOldOneRightAfterPromotion) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  for (int i = 0; i < 4; ++i) s.tick({downNode("pg1"), replicaNode("pg2", false)});
  auto d = s.tick({downNode("pg1"), primaryNode("pg2", 2)});
  ASSERT_TRUE(d.failover_completed);
  auto creates = actionsOf(d, ActionKind::kCreateSlot);
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].node, 1u);
  EXPECT_EQ(std::get<CreateSlot>(creates[0].op).slot, "pgfailover_pg1");
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].kind, EventKind::kFailover);
  EXPECT_EQ(d.events[0].result, EventResult::kSucceeded);
}

TEST(Lifecycle, FencedOldPrimaryIsRejoinedAtOnce) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  for (int i = 0; i < 4; ++i) s.tick({downNode("pg1"), replicaNode("pg2", false)});
  s.tick({downNode("pg1"), primaryNode("pg2", 2)});
  auto fenced = primaryNode("pg1", 1);
  fenced.read_only = true;
  fenced.heartbeat_written = false;
  auto d = s.tick({fenced, primaryNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kRejoinNode) << d.reason;
  auto rejoins = actionsOf(d, ActionKind::kRejoin);
  ASSERT_EQ(rejoins.size(), 1u);
  EXPECT_EQ(rejoins[0].node, 0u);
  EXPECT_EQ(std::get<Rejoin>(rejoins[0].op).follow, 1u);

  // While it runs, nothing is issued again; its progress shows in the reason.
  s.operations()[0].running = true;
  s.operations()[0].step = "pg_rewind";
  d = s.tick({downNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_TRUE(actionsOf(d, ActionKind::kRejoin).empty());
  EXPECT_NE(d.reason.find("pg_rewind"), std::string::npos) << d.reason;

  // It succeeds and the node streams on timeline 2: healthy, and the result is an event once.
  s.operations()[0].running = false;
  s.operations()[0].finished = 1;
  s.operations()[0].last_succeeded = true;
  s.operations()[0].last_method = "rewind";
  s.operations()[0].last_finished_at = s.story().now().steady;
  auto rejoined = replicaNode("pg1");
  rejoined.wal_receiver->received_timeline = 2;
  d = s.tick({rejoined, primaryNode("pg2", 2)});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy) << d.reason;
  ASSERT_FALSE(d.events.empty());
  EXPECT_EQ(d.events[0].kind, EventKind::kRejoin);
  EXPECT_EQ(d.events[0].result, EventResult::kSucceeded);
  d = s.tick({rejoined, primaryNode("pg2", 2)});
  EXPECT_TRUE(d.events.empty());
}

TEST(Lifecycle, DownReplicaIsRejoinedAfterGraceAndRetriedAfterFailure) {
  Policy policy = lifecyclePolicy();
  policy.rejoin_grace = 3000ms;
  policy.rejoin_retry_interval = 10000ms;
  LifecycleStory s(policy);
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  int ticks_until_rejoin = 0;
  do {
    d = s.tick({primaryNode("pg1"), downNode("pg2")});
    ++ticks_until_rejoin;
  } while (actionsOf(d, ActionKind::kRejoin).empty() && ticks_until_rejoin < 10);
  EXPECT_EQ(ticks_until_rejoin, 4) << "first unhealthy tick + 3 s of grace";
  // It fails: no new attempt until the retry interval has passed.
  s.operations()[1].finished = 1;
  s.operations()[1].last_succeeded = false;
  s.operations()[1].last_error = "ssh: connection refused";
  s.operations()[1].last_finished_at = s.story().now().steady;
  int retried_after = 0;
  do {
    d = s.tick({primaryNode("pg1"), downNode("pg2")});
    ++retried_after;
  } while (actionsOf(d, ActionKind::kRejoin).empty() && retried_after < 20);
  EXPECT_EQ(retried_after, 10);
}

// A rejoin that could not even reach the node's host (ssh did not connect) touched nothing: it
// is reported as host_unreachable, not as a failed rejoin, and retried on the same schedule.
TEST(Lifecycle, RejoinThatCouldNotReachTheHostIsNotAFailedRejoin) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  s.operations()[1].finished = 1;
  s.operations()[1].last_succeeded = false;
  s.operations()[1].last_host_unreachable = true;
  s.operations()[1].last_error = "ssh pg2@10.0.0.2:22: unable to connect: No route to host";
  s.operations()[1].last_finished_at = s.story().now().steady;
  auto d = s.tick({primaryNode("pg1"), downNode("pg2")});
  std::vector<EventResult> results;
  for (const auto& e : d.events)
    if (e.kind == EventKind::kRejoin) results.push_back(e.result);
  EXPECT_EQ(results, std::vector<EventResult>{EventResult::kHostUnreachable});
  EXPECT_NE(d.reason.find("could not reach the host"), std::string::npos) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kRejoin).empty()) << "retried after the interval";
}

// A standby that answers, on the primary's timeline, but does not stream (its link to the
// primary is cut) is left to reconnect by itself for 60 s: a restart cannot fix a network.
TEST(Lifecycle, DisconnectedStandbyGetsAMinuteToReconnectBeforeARestart) {
  Policy policy = lifecyclePolicy();
  policy.rejoin_grace = 3000ms;
  LifecycleStory s(policy);
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  int ticks = 0;
  do {
    d = s.tick({primaryNode("pg1"), replicaNode("pg2", /*streaming=*/false)});
    ++ticks;
  } while (actionsOf(d, ActionKind::kRejoin).empty() && ticks < 100);
  EXPECT_EQ(ticks, 61) << "first unhealthy tick + 60 s";
  // On another timeline it has history to repair: the normal grace applies.
  LifecycleStory other(policy);
  other.tick({primaryNode("pg1", 2), replicaNode("pg2")});
  auto behind = replicaNode("pg2", /*streaming=*/false);
  behind.timeline = 1;
  ticks = 0;
  do {
    d = other.tick({primaryNode("pg1", 2), behind});
    ++ticks;
  } while (actionsOf(d, ActionKind::kRejoin).empty() && ticks < 100);
  EXPECT_LE(ticks, 4) << "the normal 3 s grace, counted from its first unhealthy tick";
}

// A node restarted from outside answers "starting up": a rejoin would stop it half-way, so it
// gets the starting-up grace first; stuck in that state for longer, it is rejoined.
TEST(Lifecycle, NodeThatIsStartingUpIsNotRejoinedUntilTheStartingUpGracePasses) {
  Policy policy = lifecyclePolicy();
  policy.rejoin_grace = 3000ms;
  policy.starting_up_grace = 20000ms;
  LifecycleStory s(policy);
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  for (int i = 0; i < 2; ++i) d = s.tick({primaryNode("pg1"), downNode("pg2")});
  ASSERT_TRUE(actionsOf(d, ActionKind::kRejoin).empty());
  int ticks = 0;
  do {
    d = s.tick({primaryNode("pg1"), downNode("pg2", ProbeFailure::kStartingUp)});
    ++ticks;
  } while (actionsOf(d, ActionKind::kRejoin).empty() && ticks < 60);
  EXPECT_EQ(ticks, 21) << "the first starting-up tick + 20 s";
}

// After both nodes were down, the replica's grace counts from the moment the primary commits
// again, not from its crash: its host is starting it, and a rejoin would race that start.
TEST(Lifecycle, ReplicaGraceStartsWhenThePrimaryIsBackAfterBothWereDown) {
  Policy policy = lifecyclePolicy();
  policy.rejoin_grace = 3000ms;
  LifecycleStory s(policy);
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  for (int i = 0; i < 10; ++i) {
    d = s.tick({downNode("pg1"), downNode("pg2")});
    ASSERT_TRUE(actionsOf(d, ActionKind::kRejoin).empty());
  }
  int ticks = 0;
  do {
    d = s.tick({primaryNode("pg1"), downNode("pg2")});
    ++ticks;
  } while (actionsOf(d, ActionKind::kRejoin).empty() && ticks < 60);
  EXPECT_EQ(ticks, 4) << "the first tick with a primary + 3 s, not at once";
}

// The node's lease guard fenced the primary (it heard from neither pgfailover nor a replica).
NodeObservation selfFencedNode(const std::string& name, std::uint32_t timeline = 1) {
  NodeObservation n = primaryNode(name, timeline);
  n.read_only = true;
  n.self_fenced = true;
  n.heartbeat_written = false;
  n.failure = ProbeFailure::kCannotCommit;
  return n;
}

TEST(SelfFencing, PrimaryFencedByItsGuardIsUnfencedWhileNothingElseIsPrimary) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  for (int i = 0; i < 15; ++i) {
    auto d = s.tick({selfFencedNode("pg1"), replicaNode("pg2")});
    ASSERT_EQ(d.rule, Rule::kUnfenceSelfFencedPrimary) << d.reason;
    const auto unfence = actionsOf(d, ActionKind::kUnfence);
    ASSERT_EQ(unfence.size(), 1u);
    EXPECT_EQ(unfence[0].node, 0u);
    EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty()) << "never, whatever the timer says";
    EXPECT_EQ(d.next.primary, std::optional<std::size_t>(0));
    std::size_t events = 0;
    for (const auto& e : d.events) events += e.kind == EventKind::kUnfence;
    EXPECT_EQ(events, i == 0 ? 1u : 0u) << "one history event per fence, not one per tick";
  }
  auto d = s.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy) << d.reason;
}

TEST(SelfFencing, NotUnfencedWhenAnotherNodeLeftRecoveryOrAPromotionIsInFlight) {
  // The other node is out of recovery on the same timeline (read-only too): not ours to undo.
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto other = primaryNode("pg2");
  other.read_only = true;
  auto d = s.tick({selfFencedNode("pg1"), other});
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
  // The other node was promoted (writable on a newer timeline): the fenced node is the old
  // primary, rejoined, never unfenced.
  LifecycleStory t;
  t.tick({primaryNode("pg1"), replicaNode("pg2")});
  d = t.tick({selfFencedNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(1));
  // An operator fenced it (no marker): pgfailover does not lift an operator's fence.
  LifecycleStory u;
  u.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto by_hand = selfFencedNode("pg1");
  by_hand.self_fenced = false;
  d = u.tick({by_hand, replicaNode("pg2")});
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
}

// pg1 healthy, then crashed while pg2 lost it too: ticks until pgfailover issues pg_promote to
// pg2 (at most 30), and returns that tick's decision.
Decision crashUntilPromote(LifecycleStory& s) {
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  for (int ticks = 0; ticks < 30 && actionsOf(d, ActionKind::kPromote).empty(); ++ticks)
    d = s.tick({downNode("pg1"), replicaNode("pg2", /*streaming=*/false, 30.0)});
  return d;
}

// Promoted, then fenced by its guard before pgfailover's first heartbeat reached it (pgfailover
// was killed right after pg_promote, and the old primary is down): the promotion counts, and the
// new primary is unfenced, never promoted again.
TEST(SelfFencing, PromotedNodeThatFencedItselfIsConfirmedAndUnfenced) {
  LifecycleStory s;
  Decision d = crashUntilPromote(s);
  ASSERT_EQ(actionsOf(d, ActionKind::kPromote).size(), 1u) << d.reason;
  d = s.tick({downNode("pg1"), selfFencedNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kPromotionConfirmed) << d.reason;
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(1));
  d = s.tick({downNode("pg1"), selfFencedNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kUnfenceSelfFencedPrimary) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());

  // The same after a restart that lost the promotion in flight: the state remembers pg1 on
  // timeline 1; pg2, out of recovery on timeline 2 and self-fenced, is the primary.
  Memory remembered;
  remembered.primary = 0;
  remembered.last_primary_timeline = 1;
  LifecycleStory t;
  t.story().mutableMemory() = remembered;
  // The first tick records the promotion it did not see complete, the next lifts the fence.
  d = t.tick({downNode("pg1"), selfFencedNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kUnseenPromotion) << d.reason;
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(1)) << d.reason;
  EXPECT_EQ(d.next.failovers, 1u) << "the promotion it did not see complete is recorded";
  EXPECT_TRUE(d.failover_completed);
  d = t.tick({downNode("pg1"), selfFencedNode("pg2", 2)});
  EXPECT_EQ(actionsOf(d, ActionKind::kUnfence).size(), 1u) << d.reason;
  EXPECT_EQ(d.next.failovers, 1u) << "recorded once";
  EXPECT_FALSE(d.failover_completed);
  // A self-fenced node on the remembered primary's timeline that is not the remembered primary
  // is not adopted (nothing says it was promoted).
  LifecycleStory u;
  remembered.last_primary_timeline = 2;
  u.story().mutableMemory() = remembered;
  d = u.tick({downNode("pg1"), selfFencedNode("pg2", 2)});
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(0)) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
}

// pg_promote was issued to pg2, and pg2 vanished before pgfailover saw the result: it may be a
// primary now. The old primary, back and self-fenced, stays fenced until pg2 is seen again.
TEST(SelfFencing, NoUnfenceWhileAPromotionMayHaveHappenedOutOfSight) {
  LifecycleStory s;
  Decision d = crashUntilPromote(s);
  ASSERT_EQ(actionsOf(d, ActionKind::kPromote).size(), 1u) << d.reason;
  for (int i = 0; i < 60; ++i) {
    d = s.tick({selfFencedNode("pg1"), downNode("pg2", ProbeFailure::kTimeout)});
    ASSERT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << "tick " << i << ": " << d.reason;
  }
  // pg2 answers again, in recovery: the failover pgfailover decided goes on (pg1 is still not a
  // working primary); pg1 is never unfenced while pg2 is being promoted.
  for (int i = 0; i < 15; ++i) {
    d = s.tick({selfFencedNode("pg1"), replicaNode("pg2", /*streaming=*/false, 30.0)});
    EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
  }
  EXPECT_EQ(d.next.promoting, std::optional<std::size_t>(1)) << d.reason;
  d = s.tick({selfFencedNode("pg1"), primaryNode("pg2", 2)});
  EXPECT_EQ(d.rule, Rule::kPromotionConfirmed) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
}

TEST(SelfFencing, AdoptionWithoutStateNeedsEveryOtherNodeInRecoveryAndPrefersTheNewestTimeline) {
  // Nothing remembered, the other node does not answer: it could be a primary; nothing adopted.
  LifecycleStory s;
  auto d = s.tick({selfFencedNode("pg1"), downNode("pg2")});
  EXPECT_FALSE(d.next.primary.has_value()) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
  // Both fenced themselves: the one on the newer timeline is the primary, the other is not.
  LifecycleStory t;
  d = t.tick({selfFencedNode("pg1", 1), selfFencedNode("pg2", 2)});
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(1)) << d.reason;
  const auto unfence = actionsOf(d, ActionKind::kUnfence);
  ASSERT_EQ(unfence.size(), 1u) << d.reason;
  EXPECT_EQ(unfence[0].node, 1u);
  // Both on the same timeline: nothing tells which history is right.
  LifecycleStory u;
  d = u.tick({selfFencedNode("pg1", 2), selfFencedNode("pg2", 2)});
  EXPECT_FALSE(d.next.primary.has_value()) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kUnfence).empty()) << d.reason;
}

// With a lease, no promotion before the old primary's guard has had its chance: the lease of
// the last heartbeat, and of the last tick a replica was seen streaming (its replies vouch for
// the primary), plus the guard's poll. The timeouts normally cover it; here the replica kept
// streaming for two ticks after pgfailover lost the primary.
TEST(SelfFencing, NoPromotionBeforeTheOldPrimarysLeaseRanOut) {
  auto promotedAt = [](Millis lease) {
    Policy policy;
    policy.primary_lease = lease;
    Story s(policy);
    s.tick({primaryNode("pg1"), replicaNode("pg2")});
    s.tick({downNode("pg1"), replicaNode("pg2", true, 1.0)});  // t = 2: failing since here
    s.tick({downNode("pg1"), replicaNode("pg2", true, 2.0)});  // t = 3: still streaming
    for (int t = 4; t < 20; ++t) {
      auto d = s.tick({downNode("pg1"), replicaNode("pg2", /*streaming=*/false, 30.0)});
      if (!actionsOf(d, ActionKind::kPromote).empty()) return t;
      if (lease > Millis{0} && t == 5) {
        EXPECT_NE(d.reason.find("waiting 1.0 s more for the old primary's lease"),
                  std::string::npos)
            << d.reason;
      }
    }
    return 0;
  };
  EXPECT_EQ(promotedAt(0ms), 5) << "the 3 s confirmed-down timeout from t = 2";
  EXPECT_EQ(promotedAt(2500ms), 6) << "last seen streaming at t = 3, + 2.5 s lease + 0.5 s";
  EXPECT_EQ(promotedAt(1000ms), 5) << "a short lease ends within the timeout: no delay";

  // A replica that still hears the primary vetoes the failover; the lease does not hide that.
  Policy policy;
  policy.primary_lease = 2500ms;
  Story s(policy);
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  for (int t = 0; t < 12; ++t)
    d = s.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed) << d.reason;
}

// A tick's time is when its probes start; a silent primary's probe then runs its deadline
// before anything is decided. The lease is counted from when each probe had its answer, and
// compared with the tick's start.
NodeObservation answeredAfter(NodeObservation node, SteadyTime tick, Millis took) {
  node.probed_at = tick;
  node.probe_duration = took;
  return node;
}

TEST(SelfFencing, TheLeaseEndIsComparedWithTheTicksStartWhateverTheProbesTook) {
  auto promotedAt = [](Millis primary_probe) {
    Policy policy;
    policy.primary_lease = 2400ms;
    policy.unresponsive_timeout = 3000ms;
    Story s(policy);
    auto next = [&] { return s.now().steady + 1000ms; };
    s.tick({answeredAfter(primaryNode("pg1"), next(), 10ms),
            answeredAfter(replicaNode("pg2"), next(), 5ms)});
    for (int t = 2; t < 20; ++t) {
      const bool streaming = t <= 3;  // the replica streams until t = 3 (+ 5 ms)
      auto d = s.tick(
          {answeredAfter(downNode("pg1", ProbeFailure::kTimeout), next(), primary_probe),
           answeredAfter(replicaNode("pg2", streaming, streaming ? 1.0 : 30.0), next(), 5ms)});
      if (!actionsOf(d, ActionKind::kPromote).empty()) return t;
    }
    return 0;
  };
  // The lease ends at 3.005 + 2.4 + 0.5 = 5.905 s: the tick of t = 6, even when the silent
  // primary's probe took its whole 1 s and that of t = 5 decides at 6.0 s. The replica may have
  // replied until just before t = 4's probe found it stopped.
  EXPECT_EQ(promotedAt(1000ms), 6);
  EXPECT_EQ(promotedAt(10ms), 6);
}

TEST(SelfFencing, TheLeaseIsCountedFromTheEndOfTheProbeThatSawTheHeartbeat) {
  Policy policy;
  policy.primary_lease = 2500ms;
  policy.confirmed_down_timeout = 2000ms;
  Story s(policy);
  auto next = [&] { return s.now().steady + 1000ms; };
  // The heartbeat commits late in a slow probe: at up to t = 1.9 s, not at the tick's 1 s.
  s.tick({answeredAfter(primaryNode("pg1"), next(), 900ms),
          answeredAfter(replicaNode("pg2", false, 30.0), next(), 5ms)});
  int promoted = 0;
  for (int t = 2; t < 20 && promoted == 0; ++t) {
    auto d = s.tick({answeredAfter(downNode("pg1"), next(), 5ms),
                     answeredAfter(replicaNode("pg2", false, 30.0), next(), 5ms)});
    if (!actionsOf(d, ActionKind::kPromote).empty()) promoted = t;
  }
  // The 2 s timeout runs out at t = 4, the lease only at 1.9 + 2.5 + 0.5 = 4.9 s.
  EXPECT_EQ(promoted, 5);
}

TEST(SelfFencing, WithNoStateTheOnlySelfFencedNodeIsAdoptedAsPrimary) {
  LifecycleStory s;
  auto d = s.tick({selfFencedNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.primary, std::optional<std::size_t>(0)) << d.reason;
  EXPECT_EQ(actionsOf(d, ActionKind::kUnfence).size(), 1u) << d.reason;
  // Two nodes out of recovery, one of them not self-fenced: nothing is adopted.
  LifecycleStory t;
  auto by_hand = primaryNode("pg2");
  by_hand.read_only = true;
  d = t.tick({selfFencedNode("pg1"), by_hand});
  EXPECT_FALSE(d.next.primary.has_value()) << d.reason;
}

TEST(Lifecycle, NoRejoinWithoutAHostExecutor) {
  LifecycleStory s;
  s.operations()[1].available = false;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  for (int i = 0; i < 20; ++i) {
    auto d = s.tick({primaryNode("pg1"), downNode("pg2")});
    EXPECT_TRUE(actionsOf(d, ActionKind::kRejoin).empty());
    EXPECT_EQ(d.next.state, ClusterState::kDegraded);
  }
}

TEST(Lifecycle, NoRejoinWhilePrimaryFails) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  for (int i = 0; i < 20; ++i) {
    auto d = s.tick({downNode("pg1"), downNode("pg2")});
    EXPECT_TRUE(actionsOf(d, ActionKind::kRejoin).empty());
  }
}

TEST(Lifecycle, SwitchoverFencesWaitsForCatchUpThenPromotes) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  AdminRequest request{RequestKind::kSwitchover, std::nullopt, false, 7};
  auto d = s.tick({primaryNode("pg1"), replicaNode("pg2")}, request);
  ASSERT_EQ(d.next.state, ClusterState::kSwitchingOver) << d.reason;
  ASSERT_EQ(actionsOf(d, ActionKind::kFence).size(), 1u);
  EXPECT_EQ(actionsOf(d, ActionKind::kFence)[0].node, 0u);
  EXPECT_FALSE(d.request_refused.has_value());

  // Fenced at 0/3000200; the replica is still at 0/3000148: wait.
  auto fenced = primaryNode("pg1", 1, 0x3000200);
  fenced.read_only = true;
  fenced.heartbeat_written = false;
  d = s.tick({fenced, replicaNode("pg2")});
  EXPECT_EQ(d.rule, Rule::kSwitchoverWaiting) << d.reason;
  EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());
  // Caught up: promote.
  d = s.tick({fenced, replicaNode("pg2", true, 0.1, 0x3000200)});
  EXPECT_EQ(d.rule, Rule::kSwitchoverPromote) << d.reason;
  ASSERT_EQ(actionsOf(d, ActionKind::kPromote).size(), 1u);
  EXPECT_EQ(actionsOf(d, ActionKind::kPromote)[0].node, 1u);
  // Confirmed: a switchover event, not a failover.
  d = s.tick({fenced, primaryNode("pg2", 2)});
  EXPECT_TRUE(d.switchover_completed);
  EXPECT_FALSE(d.failover_completed);
  EXPECT_EQ(d.next.failovers, 0u);
  EXPECT_EQ(*d.next.primary, 1u);
}

// Every event of a request carries its id, from the start to the outcome ticks later.
TEST(Lifecycle, EventsOfARequestCarryItsId) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto d = s.tick({primaryNode("pg1"), downNode("pg2")},
                  AdminRequest{RequestKind::kSwitchover, 1, false, 41});
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].kind, EventKind::kRequest);
  EXPECT_EQ(d.events[0].request_id, 41u);

  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  d = s.tick({primaryNode("pg1"), replicaNode("pg2")},
             AdminRequest{RequestKind::kSwitchover, 1, false, 42});
  ASSERT_EQ(d.events.size(), 1u);
  EXPECT_EQ(d.events[0].kind, EventKind::kSwitchover);
  EXPECT_EQ(d.events[0].request_id, 42u);
  auto fenced = primaryNode("pg1", 1, 0x3000200);
  fenced.read_only = true;
  fenced.heartbeat_written = false;
  s.tick({fenced, replicaNode("pg2", true, 0.1, 0x3000200)});
  d = s.tick({fenced, primaryNode("pg2", 2)});
  ASSERT_TRUE(d.switchover_completed);
  std::size_t tagged = 0;
  for (const auto& e : d.events)
    if (e.kind == EventKind::kSwitchover) tagged += e.request_id == 42u ? 1 : 0;
  EXPECT_EQ(tagged, 1u);

  // An operator failover (forced, pg2 healthy primary now): started and succeeded carry 43.
  // pg1 follows pg2 on its timeline (a standby left on timeline 1 is not promoted).
  auto follower = replicaNode("pg1");
  follower.timeline = 2;
  follower.wal_receiver->received_timeline = 2;
  s.tick({follower, primaryNode("pg2", 2)});
  d = s.tick({follower, primaryNode("pg2", 2)}, AdminRequest{RequestKind::kFailover, 0, true, 43});
  ASSERT_EQ(d.rule, Rule::kOperatorFailover) << d.reason;
  ASSERT_FALSE(d.events.empty());
  for (const auto& e : d.events)
    EXPECT_EQ(e.request_id, 43u) << toString(e.kind) << " " << toString(e.result);
  auto demoted = primaryNode("pg2", 2);
  demoted.read_only = true;
  d = s.tick({primaryNode("pg1", 3), demoted});
  ASSERT_TRUE(d.failover_completed) << d.reason;
  for (const auto& e : d.events) {
    if (e.kind == EventKind::kFailover) {
      EXPECT_EQ(e.request_id, 43u) << toString(e.result);
    }
  }
  EXPECT_EQ(d.next.promote_request_id, 0u);
}

TEST(Lifecycle, PgfailoversOwnFailoverCarriesNoRequestId) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  std::size_t events = 0;
  bool promoted = false;
  for (int i = 0; i < 15; ++i) {
    // Once the promotion is issued, pg2 answers as a primary on timeline 2.
    auto d =
        s.tick({downNode("pg1"), promoted ? primaryNode("pg2", 2) : replicaNode("pg2", false)});
    promoted = promoted || !actionsOf(d, ActionKind::kPromote).empty();
    for (const auto& e : d.events) {
      ++events;
      EXPECT_EQ(e.request_id, 0u) << toString(e.kind) << " " << toString(e.result);
    }
    EXPECT_EQ(d.next.promote_request_id, 0u);
  }
  EXPECT_TRUE(promoted);
  EXPECT_GT(events, 0u);
}

TEST(Lifecycle, SwitchoverThatCannotCatchUpIsAbortedAndUnfenced) {
  Policy policy = lifecyclePolicy();
  policy.switchover_timeout = 3000ms;
  LifecycleStory s(policy);
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  s.tick({primaryNode("pg1"), replicaNode("pg2")},
         AdminRequest{RequestKind::kSwitchover, 1, false, 1});
  auto fenced = primaryNode("pg1", 1, 0x3000200);
  fenced.read_only = true;
  Decision d;
  for (int i = 0; i < 3; ++i) d = s.tick({fenced, replicaNode("pg2")});
  EXPECT_EQ(d.rule, Rule::kSwitchoverAborted) << d.reason;
  ASSERT_EQ(actionsOf(d, ActionKind::kUnfence).size(), 1u);
  EXPECT_EQ(actionsOf(d, ActionKind::kUnfence)[0].node, 0u);
  ASSERT_FALSE(d.events.empty());
  EXPECT_EQ(d.events.back().result, EventResult::kFailed);
  EXPECT_FALSE(d.next.switchover.has_value());
  // Unfenced, the old primary is healthy again; nothing was promoted.
  d = s.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy);
  EXPECT_EQ(*d.next.primary, 0u);
}

TEST(Lifecycle, SwitchoverToALaggingOrMissingReplicaIsRefused) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto d = s.tick({primaryNode("pg1"), downNode("pg2")},
                  AdminRequest{RequestKind::kSwitchover, 1, false, 1});
  ASSERT_TRUE(d.request_refused.has_value());
  EXPECT_NE(d.request_refused->find("unreachable"), std::string::npos) << *d.request_refused;
  EXPECT_TRUE(actionsOf(d, ActionKind::kFence).empty());
  EXPECT_NE(d.next.state, ClusterState::kSwitchingOver);
  d = s.tick({primaryNode("pg1"), replicaNode("pg2")},
             AdminRequest{RequestKind::kSwitchover, 0, false, 2});
  ASSERT_TRUE(d.request_refused.has_value());
  EXPECT_NE(d.request_refused->find("already the primary"), std::string::npos);
}

// Found by the property test with three nodes: pg2's promotion was issued and pg2 vanished
// before it was seen promoted; an operator failover to pg3 would make two primaries if pg2's
// promotion lands. Refused even forced (pg2 cannot be fenced first); with pg2 seen again, done.
TEST(Lifecycle, OperatorFailoverWaitsForAPromotionThatMayStillLand) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2"), replicaNode("pg3")});
  s.story().mutableMemory().unconfirmed_promotion = 1;
  for (bool force : {false, true}) {
    auto d = s.tick({downNode("pg1"), downNode("pg2", ProbeFailure::kTimeout), replicaNode("pg3")},
                    AdminRequest{RequestKind::kFailover, 2, force, 1});
    ASSERT_TRUE(d.request_refused.has_value()) << "force " << force;
    EXPECT_NE(d.request_refused->find("the promotion of 'pg2'"), std::string::npos)
        << *d.request_refused;
    EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());
  }
  auto d = s.tick({downNode("pg1"), replicaNode("pg2", false), replicaNode("pg3")},
                  AdminRequest{RequestKind::kFailover, 2, false, 2});
  EXPECT_EQ(d.rule, Rule::kOperatorFailover) << d.reason;
}

// Found by the property test with three nodes: pg3 still on timeline 1 never followed pg2's
// promotion to timeline 2; promoted, it would start a timeline 2 of its own. A forced failover
// to it is refused; without a target, pg2's follower pg1 is promoted instead.
TEST(Lifecycle, OperatorFailoverNeverForksTheNewestTimeline) {
  LifecycleStory s;
  auto follower = replicaNode("pg1");
  follower.timeline = 2;
  follower.wal_receiver->received_timeline = 2;
  auto stranded = replicaNode("pg3", false, 0.2, 0x3000400);  // further ahead, on timeline 1
  s.tick({follower, primaryNode("pg2", 2), stranded});
  auto d = s.tick({follower, primaryNode("pg2", 2), stranded},
                  AdminRequest{RequestKind::kFailover, 2, true, 1});
  ASSERT_TRUE(d.request_refused.has_value()) << d.reason;
  EXPECT_NE(d.request_refused->find("'pg3' is on timeline 1, the cluster's newest is 2"),
            std::string::npos)
      << *d.request_refused;
  EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());
  d = s.tick({follower, primaryNode("pg2", 2), stranded},
             AdminRequest{RequestKind::kFailover, std::nullopt, true, 2});
  ASSERT_EQ(d.rule, Rule::kOperatorFailover) << d.reason;
  const auto promoted = actionsOf(d, ActionKind::kPromote);
  ASSERT_EQ(promoted.size(), 1u);
  EXPECT_EQ(promoted[0].node, 0u);
}

TEST(Lifecycle, OperatorFailoverIsRefusedWhilePrimaryIsHealthyUnlessForced) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto d = s.tick({primaryNode("pg1"), replicaNode("pg2")},
                  AdminRequest{RequestKind::kFailover, std::nullopt, false, 1});
  ASSERT_TRUE(d.request_refused.has_value());
  EXPECT_NE(d.request_refused->find("healthy"), std::string::npos);
  EXPECT_TRUE(d.actions.empty() || actionsOf(d, ActionKind::kPromote).empty());

  d = s.tick({primaryNode("pg1"), replicaNode("pg2")},
             AdminRequest{RequestKind::kFailover, std::nullopt, true, 2});
  EXPECT_EQ(d.rule, Rule::kOperatorFailover) << d.reason;
  ASSERT_EQ(actionsOf(d, ActionKind::kFence).size(), 1u);
  EXPECT_EQ(actionsOf(d, ActionKind::kFence)[0].node, 0u);
  ASSERT_EQ(actionsOf(d, ActionKind::kPromote).size(), 1u);
  EXPECT_EQ(actionsOf(d, ActionKind::kPromote)[0].node, 1u);
  // The fence action comes before the promotion.
  EXPECT_EQ(d.actions.front().kind(), ActionKind::kFence);
}

TEST(Lifecycle, OperatorFailoverSkipsTheTimeoutWhenPrimaryIsDown) {
  LifecycleStory s;
  s.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto d = s.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", true, 0.1)},
                  AdminRequest{RequestKind::kFailover, 1, false, 1});
  EXPECT_EQ(d.rule, Rule::kOperatorFailover) << d.reason;
  EXPECT_EQ(actionsOf(d, ActionKind::kPromote).size(), 1u);
  EXPECT_TRUE(actionsOf(d, ActionKind::kFence).empty()) << "an unreachable node cannot be fenced";
}

TEST(Lifecycle, OperatorFailoverWithNoKnownPrimaryNeedsATargetAndForce) {
  // Both nodes are standbys (both came back after an outage with standby.signal, or a primary
  // was demoted by hand): nothing says whose history to keep, so pgfailover never picks one.
  LifecycleStory s;
  const auto stranded = replicaNode("pg2", /*streaming=*/false);
  const auto other = replicaNode("pg1", /*streaming=*/false);
  auto d = s.tick({other, stranded});
  ASSERT_FALSE(d.next.primary.has_value()) << d.reason;
  ASSERT_TRUE(actionsOf(d, ActionKind::kPromote).empty());

  d = s.tick({other, stranded}, AdminRequest{RequestKind::kFailover, 1, false, 1});
  ASSERT_TRUE(d.request_refused.has_value());
  EXPECT_NE(d.request_refused->find("explicit target and force"), std::string::npos)
      << *d.request_refused;
  EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());

  d = s.tick({other, stranded}, AdminRequest{RequestKind::kFailover, std::nullopt, true, 2});
  ASSERT_TRUE(d.request_refused.has_value());
  EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());

  d = s.tick({other, stranded}, AdminRequest{RequestKind::kSwitchover, 1, true, 3});
  ASSERT_TRUE(d.request_refused.has_value());

  d = s.tick({other, stranded}, AdminRequest{RequestKind::kFailover, 1, true, 4});
  EXPECT_EQ(d.rule, Rule::kOperatorFailover) << d.reason;
  ASSERT_EQ(actionsOf(d, ActionKind::kPromote).size(), 1u);
  EXPECT_EQ(actionsOf(d, ActionKind::kPromote)[0].node, 1u);
  EXPECT_NE(d.reason.find("no primary known"), std::string::npos) << d.reason;
}

TEST(Lifecycle, FailbackReturnsThePrimaryRoleThroughASwitchover) {
  Policy policy = lifecyclePolicy();
  policy.failback = true;
  policy.preferred = 0;
  policy.failback_delay = 5000ms;
  LifecycleStory s(policy);
  // pg2 is primary (after a failover); pg1 streams from it with no lag.
  auto primary = primaryNode("pg2", 2);
  auto replica = replicaNode("pg1");
  replica.wal_receiver->received_timeline = 2;
  Decision d;
  int ticks = 0;
  do {
    d = s.tick({replica, primary});
    ++ticks;
  } while (d.next.state != ClusterState::kSwitchingOver && ticks < 20);
  EXPECT_EQ(d.rule, Rule::kFailback);
  EXPECT_EQ(ticks, 6) << "healthy (from the first tick) for the 5 s failback delay first";
  EXPECT_EQ(actionsOf(d, ActionKind::kFence)[0].node, 1u);
  EXPECT_EQ(d.next.switchover->to, 0u);
}

TEST(Lifecycle, FailbackIsOffByDefault) {
  Policy policy = lifecyclePolicy();
  policy.preferred = 0;
  LifecycleStory s(policy);
  auto replica = replicaNode("pg1");
  replica.wal_receiver->received_timeline = 2;
  for (int i = 0; i < 60; ++i) {
    auto d = s.tick({replica, primaryNode("pg2", 2)});
    EXPECT_EQ(d.next.state, ClusterState::kHealthy);
  }
}

// ---- synchronous mode ----

Policy syncPolicy(SyncMode mode) {
  Policy policy = lifecyclePolicy();
  policy.sync_mode = mode;
  policy.standalone_after = 5000ms;
  return policy;
}

NodeObservation syncPrimary(const std::string& names, const std::string& sync_peer = "pg2") {
  auto p = primaryNode("pg1");
  p.synchronous_standby_names = names;
  if (!sync_peer.empty())
    p.replication.push_back(
        ReplicationPeer{sync_peer, "127.0.0.1", "streaming", "sync", 0x3000148, 0x3000148});
  return p;
}

TEST(Synchronous, PrimaryIsToldToWaitForTheStreamingReplica) {
  LifecycleStory s(syncPolicy(SyncMode::kOn));
  auto d = s.tick({syncPrimary("", ""), replicaNode("pg2")});
  auto set = actionsOf(d, ActionKind::kSetSynchronousStandbys);
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0].node, 0u);
  EXPECT_EQ(std::get<SetSynchronousStandbys>(set[0].op).names, "FIRST 1 (\"pg2\")");
  d = s.tick({syncPrimary("FIRST 1 (\"pg2\")"), replicaNode("pg2")});
  EXPECT_TRUE(actionsOf(d, ActionKind::kSetSynchronousStandbys).empty());
  EXPECT_EQ(d.next.synchronous_standby, 1u);
}

TEST(Synchronous, OnModeGoesStandaloneOnlyAfterTheTimeout) {
  Policy policy = syncPolicy(SyncMode::kOn);
  policy.rejoin = false;
  LifecycleStory s(policy);
  s.tick({syncPrimary("FIRST 1 (\"pg2\")"), replicaNode("pg2")});
  Decision d;
  int ticks = 0;
  do {
    d = s.tick({syncPrimary("FIRST 1 (\"pg2\")", ""), downNode("pg2")});
    ++ticks;
  } while (actionsOf(d, ActionKind::kSetSynchronousStandbys).empty() && ticks < 20);
  EXPECT_EQ(ticks, 6) << "first unhealthy tick, then 5 s of waiting commits";
  EXPECT_EQ(
      std::get<SetSynchronousStandbys>(actionsOf(d, ActionKind::kSetSynchronousStandbys)[0].op)
          .names,
      "");
  ASSERT_FALSE(d.events.empty());
  EXPECT_EQ(d.events.back().result, EventResult::kStandalone);
}

TEST(Synchronous, StrictModeNeverGoesStandalone) {
  Policy policy = syncPolicy(SyncMode::kStrict);
  policy.rejoin = false;
  LifecycleStory s(policy);
  s.tick({syncPrimary("FIRST 1 (\"pg2\")"), replicaNode("pg2")});
  for (int i = 0; i < 30; ++i) {
    auto d = s.tick({syncPrimary("FIRST 1 (\"pg2\")", ""), downNode("pg2")});
    EXPECT_TRUE(actionsOf(d, ActionKind::kSetSynchronousStandbys).empty());
  }
}

TEST(Synchronous, OnlyTheSynchronousStandbyIsPromoted) {
  // The replica was synchronous when the primary died: failover as usual.
  {
    LifecycleStory s(syncPolicy(SyncMode::kOn));
    s.tick({syncPrimary("FIRST 1 (\"pg2\")"), replicaNode("pg2")});
    Decision d;
    for (int i = 0; i < 4; ++i) d = s.tick({downNode("pg1"), replicaNode("pg2", false)});
    EXPECT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
  }
  // The primary was committing alone: promoting the replica could lose acknowledged commits.
  {
    LifecycleStory s(syncPolicy(SyncMode::kOn));
    s.tick({syncPrimary("", ""), replicaNode("pg2", false)});
    Decision d;
    for (int i = 0; i < 6; ++i) d = s.tick({downNode("pg1"), replicaNode("pg2", false)});
    EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed) << d.reason;
    EXPECT_EQ(d.next.veto, VetoReason::kReplicaNotSynchronous);
    EXPECT_TRUE(actionsOf(d, ActionKind::kPromote).empty());
  }
}

TEST(Synchronous, NewPrimaryStartsAloneAndWaitsForTheRejoinedNode) {
  LifecycleStory s(syncPolicy(SyncMode::kOn));
  s.tick({syncPrimary("FIRST 1 (\"pg2\")"), replicaNode("pg2")});
  for (int i = 0; i < 4; ++i) s.tick({downNode("pg1"), replicaNode("pg2", false)});
  auto promoted = primaryNode("pg2", 2);
  auto d = s.tick({downNode("pg1"), promoted});
  ASSERT_TRUE(d.failover_completed);
  // No replica yet: the new primary's commits are not held back.
  d = s.tick({downNode("pg1"), promoted});
  EXPECT_TRUE(actionsOf(d, ActionKind::kSetSynchronousStandbys).empty());
  auto rejoined = replicaNode("pg1");
  rejoined.wal_receiver->received_timeline = 2;
  d = s.tick({rejoined, promoted});
  auto set = actionsOf(d, ActionKind::kSetSynchronousStandbys);
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0].node, 1u);
  EXPECT_EQ(std::get<SetSynchronousStandbys>(set[0].op).names, "FIRST 1 (\"pg1\")");
}

// The table itself: every row is reachable by id and documented, and the document is generated
// from it. That the rows keep the cluster safe is decide_property_test.cc's job.
TEST(TransitionTable, RowIdsAreUniqueAndDocumented) {
  std::set<std::string_view> ids;
  for (const auto& row : transitionTable()) {
    EXPECT_TRUE(ids.insert(toString(row.rule)).second) << toString(row.rule);
    EXPECT_FALSE(row.when.empty());
    EXPECT_FALSE(row.why.empty());
    EXPECT_NE(row.applies, nullptr);
    EXPECT_NE(row.explain, nullptr);
  }
}

TEST(TransitionTable, DocumentIsNotStale) {
  std::ifstream file(std::string(PGFAILOVER_SOURCE_DIR) + "/docs/state-machine.md");
  ASSERT_TRUE(file.good()) << "docs/state-machine.md is missing; run: pgfailover print-states "
                              "> docs/state-machine.md";
  std::stringstream content;
  content << file.rdbuf();
  // Compared as a boolean: the diff of two long documents helps nobody; regenerate instead.
  EXPECT_TRUE(content.str() == renderStateMachineDoc())
      << "docs/state-machine.md is stale; run: pgfailover print-states > docs/state-machine.md";
}

}  // namespace
}  // namespace pgfailover::core
