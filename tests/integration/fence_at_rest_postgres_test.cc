// Fence at rest (lifecycle/fence_at_rest.h) against real PostgreSQL 15 postmasters, run as the
// daemon runs it on a node it reaches locally (the local runner, as the server's OS user): a
// primary hung with all its processes stopped is killed with every child, and whatever starts it
// again brings it up as a standby; a node running as a standby is left streaming.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lifecycle/fence_at_rest.h"
#include "ssh/local_runner.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Neither running nor stopped: gone, or a zombie its parent has not reaped yet.
bool ended(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return true;
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("State:", 0) == 0) return line.find('Z') != std::string::npos;
  return true;
}

// The postmaster and its children (the backends, the checkpointer, the WAL sender...).
std::vector<int> postmasterAndChildren(int postmaster) {
  std::vector<int> pids{postmaster};
  std::ifstream children("/proc/" + std::to_string(postmaster) + "/task/" +
                         std::to_string(postmaster) + "/children");
  for (int pid = 0; children >> pid;) pids.push_back(pid);
  return pids;
}

class FenceAtRestPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    ASSERT_TRUE(waitUntil([&] { return cluster_.isStreaming(1); }, 30s));
  }

  PgCluster cluster_;
  // As the daemon's `exec: local` with run_as: the server's own user when the tests run as root.
  ssh::LocalRunner runner_{::geteuid() == 0 ? "postgres" : ""};
};

TEST_F(FenceAtRestPostgresTest, HungPrimaryIsKilledWithItsChildrenAndStartsAgainAsAStandby) {
  const int postmaster = cluster_.postmasterPid(0);
  ASSERT_NE(postmaster, 0);
  const std::vector<int> processes = postmasterAndChildren(postmaster);
  ASSERT_GT(processes.size(), 1u) << "a running primary has children";
  cluster_.stop(0);  // SIGSTOP: hung, not dead; no answer to anyone

  auto result = lifecycle::fenceAtRest(runner_, cluster_.node(0).data_dir, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_TRUE(result.killed_postmaster) << result.detail;
  EXPECT_TRUE(fs::exists(cluster_.node(0).data_dir + "/standby.signal"));
  for (int pid : processes)
    EXPECT_TRUE(waitUntil([&] { return ended(pid); }, 10s))
        << "process " << pid << " of the old primary still runs";

  // Whatever starts it again (an operator, systemd) gets a standby, never a second primary.
  cluster_.start(0);
  ASSERT_TRUE(cluster_.isRunning(0));
  bool ok = false;
  const std::string in_recovery = cluster_.sql(0, "SELECT pg_is_in_recovery()", &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(in_recovery, "t");
}

TEST_F(FenceAtRestPostgresTest, RunningStandbyIsLeftStreaming) {
  const int postmaster = cluster_.postmasterPid(1);
  ASSERT_NE(postmaster, 0);
  auto result = lifecycle::fenceAtRest(runner_, cluster_.node(1).data_dir, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_FALSE(result.killed_postmaster) << result.detail;
  EXPECT_EQ(cluster_.postmasterPid(1), postmaster);
  EXPECT_TRUE(cluster_.isStreaming(1));
}

}  // namespace
}  // namespace pgfailover::testing
