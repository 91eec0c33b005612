// core::admit(): the one judgement of an operator's switchover or failover, which the HTTP
// router answers early with and the decision applies at the tick that carries it out.
#include "core/admission.h"

#include <gtest/gtest.h>

namespace pgfailover::core {
namespace {

// pg1 primary on timeline 2 (failing unless told), pg2 and pg3 standbys that followed it.
AdmissionInput threeNodes(RequestKind kind, std::optional<std::size_t> target, bool force) {
  AdmissionInput input;
  input.kind = kind;
  input.target = target;
  input.force = force;
  for (int i = 0; i < 3; ++i) {
    AdmissionNode node;
    node.reachable = true;
    node.in_recovery = i != 0;
    node.writable = i == 0;
    node.healthy_replica = i != 0;
    node.system_identifier = 7000;
    node.timeline = 2;
    node.position = 0x3000000 + static_cast<Lsn>(i);
    input.nodes.push_back(node);
  }
  input.primary = 0;
  input.primary_ok = false;
  input.system_identifier = 7000;
  input.newest_timeline = 2;
  return input;
}

TEST(Admission, AFailoverTakesTheFurthestPromotableStandby) {
  const auto admitted = admit(threeNodes(RequestKind::kFailover, std::nullopt, false));
  ASSERT_FALSE(admitted.refusal) << toString(*admitted.refusal);
  EXPECT_EQ(admitted.target, 2u);
}

// A promotion issued to pg2, which vanished before it was confirmed, may still land: promoting
// pg3 too would make two primaries, numbered alike. Refused, forced or not, with or without a
// target; pg2 itself may be asked again.
TEST(Admission, NoSecondPromotionWhileAnEarlierOneMayLand) {
  for (bool force : {false, true}) {
    for (auto target : {std::optional<std::size_t>{}, std::optional<std::size_t>{2}}) {
      auto input = threeNodes(RequestKind::kFailover, target, force);
      input.unconfirmed_promotion = 1;
      input.nodes[1].reachable = false;
      const auto admitted = admit(input);
      ASSERT_TRUE(admitted.refusal) << "force " << force;
      EXPECT_EQ(*admitted.refusal, Refusal::kPromotionMayLand);
      EXPECT_EQ(admitted.about, 1u);
    }
  }
  auto again = threeNodes(RequestKind::kFailover, 1, true);
  again.unconfirmed_promotion = 1;
  again.nodes[1].reachable = false;
  EXPECT_EQ(admit(again).refusal, Refusal::kNotPromotable);  // out of sight: not promotable now
  // Seen again, whatever happened to it is in plain sight: no longer in the way.
  auto seen = threeNodes(RequestKind::kFailover, 2, false);
  seen.unconfirmed_promotion = 1;
  EXPECT_EQ(admit(seen).target, 2u);
  // A switchover promotes too.
  auto switchover = threeNodes(RequestKind::kSwitchover, 2, false);
  switchover.primary_ok = true;
  switchover.unconfirmed_promotion = 1;
  switchover.nodes[1].reachable = false;
  EXPECT_EQ(admit(switchover).refusal, Refusal::kPromotionMayLand);
}

// pg2's pg_promote timed out: pg2 is in sight, in recovery, and its promote request is still
// pending (it lands when pg2's startup process gets going). Promoting pg3 is refused, forced or
// not; pg2 itself may be asked again; once the loop saw pg2 restarted (it forgets the request),
// pg3 may be promoted.
TEST(Admission, NoSecondPromotionWhileAPendingPromoteRequestMayLand) {
  for (bool force : {false, true}) {
    auto input = threeNodes(RequestKind::kFailover, 2, force);
    input.promotion_may_land = 1;
    const auto admitted = admit(input);
    ASSERT_TRUE(admitted.refusal) << "force " << force;
    EXPECT_EQ(*admitted.refusal, Refusal::kPromotionMayLand);
    EXPECT_EQ(admitted.about, 1u);
  }
  auto same = threeNodes(RequestKind::kFailover, 1, false);
  same.promotion_may_land = 1;
  EXPECT_EQ(admit(same).target, 1u);
  auto forgotten = threeNodes(RequestKind::kFailover, 2, false);
  EXPECT_EQ(admit(forgotten).target, 2u);
}

// pg3 still on timeline 1 never followed the promotion to 2: promoted, it would start a
// timeline 2 of its own. Refused even forced; without a target, pg2 is taken instead.
TEST(Admission, NoPromotionOfAStandbyOnAnOlderTimeline) {
  for (bool force : {false, true}) {
    auto input = threeNodes(RequestKind::kFailover, 2, force);
    input.primary_ok = force;
    input.nodes[2].timeline = 1;
    const auto admitted = admit(input);
    ASSERT_TRUE(admitted.refusal);
    EXPECT_EQ(*admitted.refusal, Refusal::kOlderTimeline);
    EXPECT_EQ(admitted.about, 2u);
  }
  auto any = threeNodes(RequestKind::kFailover, std::nullopt, false);
  any.nodes[2].timeline = 1;
  EXPECT_EQ(admit(any).target, 1u);
  any.nodes[1].timeline = 1;
  EXPECT_EQ(admit(any).refusal, Refusal::kNoTarget);
}

// The timeline it streams on counts, not its checkpoint's.
TEST(Admission, TheStreamedTimelineCounts) {
  NodeObservation standby;
  standby.probed = true;
  standby.reachable = true;
  standby.in_recovery = true;
  standby.timeline = 1;
  EXPECT_EQ(admissionNode(standby, 2, false).timeline, 2u);
  standby.wal_receiver = WalReceiver{"streaming", "127.0.0.1", 5432, 3, 0.1, {}};
  EXPECT_EQ(admissionNode(standby, 0, false).timeline, 3u);
}

TEST(Admission, TheRefusalsBothSidesShare) {
  auto healthy = threeNodes(RequestKind::kFailover, 1, false);
  healthy.primary_ok = true;
  EXPECT_EQ(admit(healthy).refusal, Refusal::kPrimaryHealthy);
  healthy.force = true;
  EXPECT_EQ(admit(healthy).target, 1u);

  EXPECT_EQ(admit(threeNodes(RequestKind::kFailover, 0, true)).refusal, Refusal::kAlreadyPrimary);

  auto foreign = threeNodes(RequestKind::kFailover, 1, false);
  foreign.nodes[1].system_identifier = 42;
  EXPECT_EQ(admit(foreign).refusal, Refusal::kOtherCluster);

  auto failing = threeNodes(RequestKind::kSwitchover, 1, false);
  EXPECT_EQ(admit(failing).refusal, Refusal::kPrimaryNotHealthy);
  failing.primary_ok = true;
  failing.nodes[1].healthy_replica = false;
  EXPECT_EQ(admit(failing).refusal, Refusal::kNotAHealthyReplica);
  failing.target.reset();
  EXPECT_EQ(admit(failing).target, 2u);

  auto none = threeNodes(RequestKind::kFailover, 1, false);
  none.primary.reset();
  EXPECT_EQ(admit(none).refusal, Refusal::kNoPrimaryKnown);
  none.force = true;
  EXPECT_EQ(admit(none).refusal, Refusal::kSecondWritable);
  EXPECT_EQ(admit(none).about, 0u);
  none.nodes[0].writable = false;
  EXPECT_EQ(admit(none).target, 1u);
}

}  // namespace
}  // namespace pgfailover::core
