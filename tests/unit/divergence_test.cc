// The divergence verdict (src/lifecycle/divergence.h): a returning primary follows the new
// timeline without pg_rewind only when its own WAL proves it holds nothing the new primary
// lacks; every doubt is a rewind.
#include "lifecycle/divergence.h"

#include <gtest/gtest.h>

namespace pgfailover::lifecycle {
namespace {

// pg_waldump 15's last line at the end of a crashed primary's WAL.
constexpr const char* kEndOfWal =
    "pg_waldump: error: error in WAL record at 0/3027928: invalid record length at 0/3027AC0: "
    "wanted 24, got 0\n";

DivergenceInput crashedPrimaryOnTimeline1() {
  DivergenceInput in;
  in.node_timeline = 1;
  in.checkpoint = 0x2000060;
  in.waldump_output = kEndOfWal;
  in.primary_timeline = 2;
  in.primary_history = "1\t0/3027AC0\tno recovery target specified\n";
  return in;
}

TEST(TimelineHistory, ParsesPostgresFormatAndRefusesGarbage) {
  auto forks = parseTimelineHistory(
      "1\t0/3027AC0\tno recovery target specified\n\n"
      "2\t0/5000000\tat restore point \"x\"\n");
  ASSERT_TRUE(forks);
  ASSERT_EQ(forks->size(), 2u);
  EXPECT_EQ((*forks)[0].parent, 1u);
  EXPECT_EQ((*forks)[0].switchpoint, 0x3027AC0u);
  EXPECT_EQ((*forks)[1].parent, 2u);
  EXPECT_FALSE(parseTimelineHistory("1\tnot-an-lsn\n"));
  EXPECT_FALSE(parseTimelineHistory("x\t0/1\n"));
  EXPECT_FALSE(parseTimelineHistory("0\t0/1\n"));
  EXPECT_FALSE(parseTimelineHistory("2\t0/5\n1\t0/6\n")) << "ancestors out of order";
  EXPECT_FALSE(parseTimelineHistory("1\n"));
}

TEST(WaldumpEnd, TakesTheLastValidRecordAndNothingElse) {
  EXPECT_EQ(lastValidRecordFromWaldump(kEndOfWal), Lsn{0x3027928});
  EXPECT_EQ(lastValidRecordFromWaldump(
                "pg_waldump: error: error in WAL record at 1/A0: unexpected pageaddr 0/9000000 in "
                "log segment 000000010000000100000000, offset 0\n"),
            Lsn{0x1000000A0});
  EXPECT_FALSE(lastValidRecordFromWaldump(
      "pg_waldump: error: could not find file \"000000010000000000000004\": No such file"));
  EXPECT_FALSE(lastValidRecordFromWaldump(""));
  EXPECT_FALSE(lastValidRecordFromWaldump("pg_waldump: error: error in WAL record at 0/0: x"));
}

TEST(Divergence, WalEndingBeforeTheForkFollowsWithoutRewind) {
  const auto verdict = judgeDivergence(crashedPrimaryOnTimeline1());
  EXPECT_FALSE(verdict.diverged) << verdict.reason;
  EXPECT_NE(verdict.reason.find("0/3027928"), std::string::npos) << verdict.reason;
}

TEST(Divergence, ARecordAtOrPastTheForkIsDivergence) {
  auto in = crashedPrimaryOnTimeline1();
  in.primary_history = "1\t0/3027928\tno recovery target specified\n";
  EXPECT_TRUE(judgeDivergence(in).diverged) << "last record starts exactly at the fork";
  in.primary_history = "1\t0/3000000\tno recovery target specified\n";
  EXPECT_TRUE(judgeDivergence(in).diverged);
}

TEST(Divergence, EveryDoubtIsARewind) {
  auto in = crashedPrimaryOnTimeline1();
  in.waldump_output = "pg_waldump: error: could not find file";
  EXPECT_TRUE(judgeDivergence(in).diverged) << "WAL end unknown";

  in = crashedPrimaryOnTimeline1();
  in.primary_history = "";
  EXPECT_TRUE(judgeDivergence(in).diverged) << "history unreadable";

  in = crashedPrimaryOnTimeline1();
  in.primary_history = "3\t0/9000000\tx\n";
  EXPECT_TRUE(judgeDivergence(in).diverged) << "node's timeline not an ancestor";

  in = crashedPrimaryOnTimeline1();
  in.newest_node_history = 2;
  EXPECT_TRUE(judgeDivergence(in).diverged) << "node promoted after its checkpoint";

  in = crashedPrimaryOnTimeline1();
  in.checkpoint = 0x4000000;
  EXPECT_TRUE(judgeDivergence(in).diverged) << "WAL ends before its own checkpoint";

  in = crashedPrimaryOnTimeline1();
  in.primary_timeline = 1;
  EXPECT_TRUE(judgeDivergence(in).diverged) << "same timeline";
}

TEST(Divergence, TheNodesOwnAncestryMustBeThePrimarys) {
  DivergenceInput in;
  in.node_timeline = 2;
  in.checkpoint = 0x5000028;
  in.node_history = "1\t0/3027AC0\tno recovery target specified\n";
  in.waldump_output = "pg_waldump: error: error in WAL record at 0/5100000: invalid record length";
  in.primary_timeline = 3;
  in.primary_history = "1\t0/3027AC0\tno recovery target specified\n2\t0/6000000\tx\n";
  EXPECT_FALSE(judgeDivergence(in).diverged) << judgeDivergence(in).reason;
  // Timeline 2 of the primary forked elsewhere than the node's timeline 2: another branch.
  in.node_history = "1\t0/3000000\tno recovery target specified\n";
  EXPECT_TRUE(judgeDivergence(in).diverged);
  in.node_history = "";
  EXPECT_TRUE(judgeDivergence(in).diverged);
}

}  // namespace
}  // namespace pgfailover::lifecycle
