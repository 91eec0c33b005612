// The real daemon started on a state file it cannot trust (corrupt, truncated, wrong-typed, of
// an unknown format): it exits non-zero with an error naming the file and what is wrong in it,
// before it acts on the cluster (no heartbeat written, no HTTP listener), and leaves the file
// exactly as it was, so the operator can inspect it. The same daemon with the file moved aside
// starts and acts: the checks below would see it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct BadState {
  std::string name;
  std::string text;
  std::string problem;  // what the error must say is wrong
};

std::string readAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct FileStamp {
  std::string bytes;
  long long mtime_ns = 0;
  ino_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stampOf(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return {readAll(path),
          static_cast<long long>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec,
          info.st_ino};
}

class StateFileStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    http_port_ = freePort();
    state_path_ = cluster_.dir() + "/pgfailover-state.json";
    auto config = pgfailoverConfig(cluster_, http_port_);
    config["state_file"] = state_path_;
    config_path_ = writePgfailoverConfig(cluster_, config);
  }

  // What pgfailover's heartbeat left on the primary: "absent" before its first tick.
  std::string heartbeatMark() {
    bool ok = false;
    const std::string exists =
        cluster_.sql(0, "SELECT to_regclass('pgfailover.heartbeat') IS NOT NULL", &ok);
    EXPECT_TRUE(ok);
    if (exists != "t") return "absent";
    return cluster_.sql(0,
                        "SELECT count(*) || ' ' || coalesce(max(ts)::text, '') FROM "
                        "pgfailover.heartbeat");
  }

  bool httpAnswers() { return httpGet(http_port_, "/healthz", 1s).status != 0; }

  PgCluster cluster_{1};
  int http_port_ = 0;
  std::string state_path_;
  std::string config_path_;
};

TEST_F(StateFileStartTest, UntrustworthyStateFileStopsTheStartAndIsLeftAsItWas) {
  const std::string valid =
      R"({"format": 1, "primary": "pg1", "primary_timeline": 1, "system_identifier": "7300000000000000001", "failovers": 2, "history": []})";
  const std::vector<BadState> cases = {
      {"not JSON", "this is not a state file\n", "not valid JSON"},
      {"truncated", valid.substr(0, valid.size() / 2), "not valid JSON"},
      {"empty", "", "not valid JSON"},
      {"binary", std::string("\x00\xff\xfe{\x01", 5), "not valid JSON"},
      {"a list", "[1, 2, 3]", "not valid JSON"},
      {"unknown format", R"({"format": 2, "primary": "pg1"})", "unknown format version"},
      {"timeline as text", R"({"format": 1, "primary": "pg1", "primary_timeline": "two"})",
       "primary_timeline"},
      {"negative timeline", R"({"format": 1, "primary": "pg1", "primary_timeline": -1})",
       "primary_timeline"},
      {"primary as a number", R"({"format": 1, "primary": 7})", "primary"},
      {"identifier not decimal", R"({"format": 1, "system_identifier": "12ab"})",
       "system_identifier"},
      {"history not a list", R"({"format": 1, "history": {"kind": "failover"}})",
       "history is not a list"},
      {"failovers too large", R"({"format": 1, "failovers": 1e30})", "failovers"},
  };
  const std::string before = heartbeatMark();
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.name);
    {
      std::ofstream file(state_path_, std::ios::binary | std::ios::trunc);
      file << bad.text;
    }
    ::chmod(state_path_.c_str(), 0600);
    const FileStamp stamp = stampOf(state_path_);
    DaemonProcess daemon(config_path_, cluster_.dir() + "/pgfailover-" +
                                           std::to_string(&bad - cases.data()) + ".log");
    ASSERT_TRUE(daemon.start());
    const auto status = daemon.waitForExit(30s);
    ASSERT_TRUE(status.has_value()) << "the daemon kept running on a corrupt state file\n"
                                    << daemon.logTail();
    // Refused, not crashed: an exit status, not a signal.
    EXPECT_GT(*status, 0) << daemon.logTail();
    EXPECT_LT(*status, 128) << daemon.logTail();
    const std::string log = daemon.log();
    EXPECT_NE(log.find(state_path_), std::string::npos) << "the error names no file\n" << log;
    EXPECT_NE(log.find(bad.problem), std::string::npos)
        << "the error does not say what is wrong (" << bad.problem << ")\n"
        << log;
    EXPECT_TRUE(stampOf(state_path_) == stamp) << "the state file was rewritten";
    EXPECT_FALSE(fs::exists(state_path_ + ".tmp"));
    EXPECT_EQ(heartbeatMark(), before) << "the daemon wrote its heartbeat: it acted";
    EXPECT_FALSE(httpAnswers());
  }

  // The same daemon with the file moved aside starts, serves and writes its heartbeat and its
  // state: what the checks above would have seen had it started.
  fs::rename(state_path_, state_path_ + ".bad");
  DaemonProcess daemon(config_path_, cluster_.dir() + "/pgfailover-good.log");
  ASSERT_TRUE(daemon.start());
  EXPECT_TRUE(waitUntil([&] { return httpAnswers(); }, 30s)) << daemon.logTail();
  EXPECT_TRUE(waitUntil([&] { return heartbeatMark() != before; }, 30s)) << daemon.logTail();
  EXPECT_TRUE(waitUntil([&] { return fs::exists(state_path_); }, 30s)) << daemon.logTail();
  EXPECT_TRUE(daemon.running());
  daemon.stop();
}

}  // namespace
}  // namespace pgfailover::testing
