// The timeline a crashed standby follows, read from the rejoin's pre-flight output: its last
// checkpoint's lags behind every timeline switch until the next restartpoint, so the newest of
// that, its minimum recovery point's and its newest timeline history file's is the one.
#include <gtest/gtest.h>

#include <string>

#include "lifecycle/rejoin.h"

namespace pgfailover::lifecycle {
namespace {

std::string preflight(const std::string& checkpoint, const std::string& min_recovery,
                      const std::string& history) {
  return "Database cluster state:               in archive recovery\n"
         "Latest checkpoint's TimeLineID:       " +
         checkpoint +
         "\n"
         "Min recovery ending loc's timeline:   " +
         min_recovery + "\n" + kNewestHistoryKey + ": " + history + "\n";
}

TEST(StandbyTimeline, TheNewestHistoryFileWinsOverALaggingCheckpoint) {
  EXPECT_EQ(standbyTimeline(preflight("1", "0", "00000003.history")), 3u);
  EXPECT_EQ(standbyTimeline(preflight("2", "3", "")), 3u);
  EXPECT_EQ(standbyTimeline(preflight("4", "0", "00000003.history")), 4u);
  EXPECT_EQ(standbyTimeline(preflight("1", "0", "0000000A.history")), 10u);
}

TEST(StandbyTimeline, GarbageIsNoTimeline) {
  EXPECT_EQ(standbyTimeline(""), 0u);
  EXPECT_EQ(standbyTimeline(preflight("x", "", "foo.history")), 0u);
  EXPECT_EQ(standbyTimeline(preflight("1", "", "ZZZZZZZZ.history")), 1u);
}

}  // namespace
}  // namespace pgfailover::lifecycle
