// The decision, with a fake clock: a lost host (silent, no ICMP answer, lease on) is failed over
// on failover.host_lost_timeout_ms instead of the long silence timeout, and only then; a node
// that comes back by itself (its host's start guard, systemd, an operator) is recorded as a
// rejoin with its method and duration.
#include <gtest/gtest.h>

#include "core/decide.h"
#include "decide_story.h"

namespace pgfailover::core {
namespace {

using namespace std::chrono_literals;

using namespace story;

NodeObservation silentNode(const std::string& name, std::optional<bool> ping) {
  NodeObservation n;
  n.name = name;
  n.probed = true;
  n.reachable = false;
  n.failure = ProbeFailure::kTimeout;
  n.error = "timeout expired";
  n.host_answers_ping = ping;
  return n;
}

Policy leasePolicy(bool icmp = true, Millis lease = 2500ms) {
  Policy p;
  p.icmp = icmp;
  p.primary_lease = lease;
  p.rejoin = false;  // rejoins are not under test here
  return p;
}

// Ticks a silent primary (its host answering ping or not) beside a replica that lost it, until
// the promotion is decided; returns the seconds from the first failed probe, or -1.
double secondsToPromotion(Policy policy, std::optional<bool> ping) {
  Story story(policy);
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy) << d.reason;
  for (int tenth = 1; tenth <= 200; ++tenth) {
    d = story.tick({silentNode("pg1", ping), replicaNode("pg2", /*streaming=*/false)}, 100ms);
    for (const auto& a : d.actions)
      if (a.kind() == ActionKind::kPromote) return tenth / 10.0;
  }
  return -1;
}

TEST(HostLost, SilentPrimaryWhoseHostAnswersNoPingIsFailedOverOnTheShortTimeout) {
  const double seconds = secondsToPromotion(leasePolicy(), false);
  // host_lost_timeout (5 s), and not before the lease (2.5 s + 0.5 s from the last heartbeat).
  EXPECT_GE(seconds, 5.0);
  EXPECT_LT(seconds, 6.0);
}

// The silence runs from the start of the first failed probe to the end of the last one: a
// silent primary's probe takes its whole connect deadline before the tick decides.
TEST(HostLost, TheSilenceIsCountedToTheEndOfTheLastFailedProbe) {
  auto promotedAfter = [](Millis primary_probe) {
    Story story(leasePolicy());
    story.tick({primaryNode("pg1"), replicaNode("pg2")});
    for (int t = 1; t <= 20; ++t) {
      auto silent = silentNode("pg1", false);
      silent.probed_at = story.now().steady + 1000ms;
      silent.probe_duration = primary_probe;
      auto d = story.tick({silent, replicaNode("pg2", /*streaming=*/false)});
      for (const auto& a : d.actions)
        if (a.kind() == ActionKind::kPromote) return t;
    }
    return 0;
  };
  // Failing since the tick of t = 1: 5 s of silence end with the probe of t = 5 when each
  // probe waits out its 1 s deadline, with that of t = 6 when it fails at once.
  EXPECT_EQ(promotedAfter(1000ms), 5);
  EXPECT_EQ(promotedAfter(10ms), 6);
}

TEST(HostLost, SilentPrimaryWhoseHostAnswersPingKeepsTheLongTimeout) {
  const double seconds = secondsToPromotion(leasePolicy(), true);
  EXPECT_GE(seconds, 10.0);  // a stalled PostgreSQL on a live host: unresponsive_timeout
}

TEST(HostLost, NeitherWithoutIcmpNorWithoutTheLease) {
  EXPECT_GE(secondsToPromotion(leasePolicy(/*icmp=*/false), false), 10.0);
  EXPECT_GE(secondsToPromotion(leasePolicy(/*icmp=*/true, /*lease=*/0ms), false), 10.0);
  // No ping result at all (the check could not run) is not a lost host either.
  EXPECT_GE(secondsToPromotion(leasePolicy(), std::nullopt), 10.0);
}

TEST(HostLost, ReplicaStillHearingThePrimaryVetoesIt) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  for (int tenth = 1; tenth <= 120; ++tenth) {
    auto d = story.tick({silentNode("pg1", false), replicaNode("pg2", /*streaming=*/true)}, 100ms);
    for (const auto& a : d.actions) EXPECT_NE(a.kind(), ActionKind::kPromote) << d.reason;
  }
  EXPECT_EQ(story.memory().state, ClusterState::kFailoverVetoed);
}

TEST(HostLost, TheRunningTimeoutIsNamedInTheReason) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  auto d = story.tick({silentNode("pg1", false), replicaNode("pg2", false)});
  EXPECT_NE(d.reason.find("host_lost"), std::string::npos) << d.reason;
}

std::size_t rejoinEvents(const Decision& d, const std::string& method, Millis* duration = nullptr) {
  std::size_t n = 0;
  for (const auto& e : d.events)
    if (e.kind == EventKind::kRejoin && e.result == EventResult::kSucceeded && e.method == method) {
      ++n;
      if (duration) *duration = e.duration;
    }
  return n;
}

TEST(Returns, NodeStartedByItsHostIsRecordedAsARejoinWithItsDuration) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  // The replica goes away for a while, starts up, then streams again: nobody ran anything.
  for (int i = 0; i < 5; ++i) story.tick({primaryNode("pg1"), downNode("pg2")});
  story.tick({primaryNode("pg1"), downNode("pg2", ProbeFailure::kStartingUp)}, 500ms);
  story.tick({primaryNode("pg1"), replicaNode("pg2", /*streaming=*/false)}, 500ms);
  Millis took{0};
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2")}, 500ms);
  EXPECT_EQ(rejoinEvents(d, "host_start", &took), 1u);
  EXPECT_EQ(took, 1500ms) << "from the last tick it was seen down";
  // Once only.
  d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(rejoinEvents(d, "host_start"), 0u);
}

TEST(Returns, OldPrimaryBackAsAStandbyAfterAFailoverIsRecorded) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  // pg2 is the primary on timeline 2 (the failover itself is not under test here).
  for (int i = 0; i < 3; ++i) story.tick({downNode("pg1"), primaryNode("pg2", 2)});
  auto back = replicaNode("pg1");
  back.timeline = 2;
  back.wal_receiver->received_timeline = 2;
  auto d = story.tick({back, primaryNode("pg2", 2)});
  EXPECT_EQ(rejoinEvents(d, "host_start"), 1u);
  bool named = false;
  for (const auto& e : d.events)
    if (e.kind == EventKind::kRejoin && e.node == "pg1") named = true;
  EXPECT_TRUE(named);
}

TEST(Returns, ARejoinOfPgfailoversOwnIsNotRecordedTwice) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  story.tick({primaryNode("pg1"), downNode("pg2")});
  NodeOperation finished;
  finished.available = true;
  finished.finished = 1;
  finished.last_succeeded = true;
  finished.last_method = "rewind";
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2")}, 1000ms, {{}, finished});
  EXPECT_EQ(rejoinEvents(d, "rewind"), 1u);
  EXPECT_EQ(rejoinEvents(d, "host_start"), 0u);
}

TEST(Returns, AFailedAttemptOnAnUnreachableHostDoesNotHideTheReturn) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  story.tick({primaryNode("pg1"), downNode("pg2")});
  NodeOperation unreachable;
  unreachable.available = true;
  unreachable.finished = 1;
  unreachable.last_host_unreachable = true;
  unreachable.last_method = "rewind";
  auto d = story.tick({primaryNode("pg1"), downNode("pg2")}, 1000ms, {{}, unreachable});
  std::size_t counted_apart = 0;
  for (const auto& e : d.events) counted_apart += e.result == EventResult::kHostUnreachable ? 1 : 0;
  EXPECT_EQ(counted_apart, 1u);
  d = story.tick({primaryNode("pg1"), replicaNode("pg2")}, 1000ms, {{}, unreachable});
  EXPECT_EQ(rejoinEvents(d, "host_start"), 1u);
}

TEST(Returns, AReplicaThatOnlyLaggedOrWasNeverDownIsNoRejoin) {
  Story story(leasePolicy());
  story.tick({primaryNode("pg1"), replicaNode("pg2")});
  story.tick({primaryNode("pg1"), replicaNode("pg2", /*streaming=*/false)});
  auto d = story.tick({primaryNode("pg1"), replicaNode("pg2")});
  EXPECT_EQ(rejoinEvents(d, "host_start"), 0u);
}

// A standby cut off from the primary whose probe reads an older timeline (its last checkpoint's,
// without a WAL receiver) is still the standby that streamed on the primary's timeline a moment
// ago: it gets the reconnect grace (60 s), not the rejoin grace (5 s).
TEST(Returns, ReplicaCutOffAfterAFailoverGetsTheReconnectGrace) {
  Policy policy = leasePolicy();
  policy.rejoin = true;
  Story story(policy);
  auto streaming = replicaNode("pg1");
  streaming.timeline = 3;
  streaming.wal_receiver->received_timeline = 3;
  story.tick({streaming, primaryNode("pg2", 3)});
  auto cut_off = replicaNode("pg1", /*streaming=*/false);
  cut_off.timeline = 2;  // its checkpoint's
  NodeOperation available;
  available.available = true;
  for (int i = 0; i < 30; ++i) {
    auto d = story.tick({cut_off, primaryNode("pg2", 3)}, 1000ms, {available, available});
    for (const auto& a : d.actions)
      EXPECT_NE(a.kind(), ActionKind::kRejoin) << i << ": " << d.reason;
  }
  bool rejoined = false;
  for (int i = 0; i < 40 && !rejoined; ++i) {
    auto d = story.tick({cut_off, primaryNode("pg2", 3)}, 1000ms, {available, available});
    for (const auto& a : d.actions) rejoined |= a.kind() == ActionKind::kRejoin;
  }
  EXPECT_TRUE(rejoined) << "restarted once the reconnect grace ran out";
}

}  // namespace
}  // namespace pgfailover::core
