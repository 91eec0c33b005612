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

// Which copy a diverged node gets: pg_rewind copies all of the primary's pg_wal, a fresh copy
// its databases; kAuto takes the smaller, the other policies do what they say.
TEST(ChooseCopy, AutoTakesWhicheverMovesFewerBytes) {
  constexpr std::uint64_t kMB = 1024 * 1024;
  auto big_wal = chooseCopy(RewindPolicy::kAuto, SourceSizes{1200 * kMB, 30 * kMB}, "");
  EXPECT_TRUE(big_wal.clone);
  EXPECT_NE(big_wal.reason.find("pg_wal holds 1200 MB, its databases 30 MB"), std::string::npos)
      << big_wal.reason;
  auto big_data = chooseCopy(RewindPolicy::kAuto, SourceSizes{1200 * kMB, 10240 * kMB}, "");
  EXPECT_FALSE(big_data.clone);
  EXPECT_NE(big_data.reason.find("pg_rewind"), std::string::npos) << big_data.reason;
  // Equal: pg_rewind, which leaves the unchanged files where they are.
  EXPECT_FALSE(chooseCopy(RewindPolicy::kAuto, SourceSizes{64 * kMB, 64 * kMB}, "").clone);
}

TEST(ChooseCopy, UnknownSizesRewindAsBefore) {
  auto unknown =
      chooseCopy(RewindPolicy::kAuto, std::nullopt, "permission denied for pg_ls_waldir");
  EXPECT_FALSE(unknown.clone);
  EXPECT_NE(unknown.reason.find("permission denied for pg_ls_waldir"), std::string::npos)
      << unknown.reason;
}

TEST(ChooseCopy, AlwaysAndNeverIgnoreTheSizes) {
  constexpr std::uint64_t kMB = 1024 * 1024;
  EXPECT_FALSE(chooseCopy(RewindPolicy::kAlways, SourceSizes{1200 * kMB, 30 * kMB}, "").clone);
  EXPECT_TRUE(chooseCopy(RewindPolicy::kNever, SourceSizes{10 * kMB, 10240 * kMB}, "").clone);
  EXPECT_TRUE(chooseCopy(RewindPolicy::kNever, std::nullopt, "").clone);
}

}  // namespace
}  // namespace pgfailover::lifecycle
