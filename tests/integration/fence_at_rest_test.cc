// Fence at rest (lifecycle/fence_at_rest.h) on real processes through the local runner: the
// command writes standby.signal, kills a postmaster that still runs in that data directory (and
// its children), leaves alone a process that merely holds the PID written in postmaster.pid, and
// touches nothing where there is no data directory.
#include "lifecycle/fence_at_rest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ssh/local_runner.h"

namespace pgfailover::lifecycle {
namespace {

namespace fs = std::filesystem;

class FenceAtRestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pgfailover-fence-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      kill(-pid, SIGKILL);  // its group: the sleep under it too
      waitpid(pid, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  // A process whose working directory is `cwd` (what a postmaster looks like from /proc), with a
  // child of its own; not reaped by the command, so the test reaps it.
  pid_t spawnIn(const std::string& cwd) {
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      // Not ctest's output: a leftover child holding it would keep the test "running".
      const int null_fd = open("/dev/null", O_RDWR);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
      if (chdir(cwd.c_str()) != 0) _exit(1);
      execl("/bin/sh", "sh", "-c", "sleep 300 & wait", static_cast<char*>(nullptr));
      _exit(1);
    }
    children_.push_back(pid);
    return pid;
  }
  bool exited(pid_t pid) {
    for (int i = 0; i < 100; ++i) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return true;
      usleep(20000);
    }
    return false;
  }

  std::string dir_;
  std::vector<pid_t> children_;
  ssh::LocalRunner runner_;
};

TEST_F(FenceAtRestTest, WritesStandbySignalWhenThePostmasterIsGone) {
  write("PG_VERSION", "15\n");
  write("postmaster.pid", "999999\n" + dir_ + "\n");
  auto result = fenceAtRest(runner_, dir_, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_FALSE(result.killed_postmaster);
  EXPECT_TRUE(fs::exists(dir_ + "/standby.signal"));
}

TEST_F(FenceAtRestTest, KillsAPostmasterStillRunningInTheDataDirectory) {
  write("PG_VERSION", "15\n");
  const pid_t pid = spawnIn(dir_);
  usleep(200000);  // chdir and the child
  write("postmaster.pid", std::to_string(pid) + "\n" + dir_ + "\n");
  auto result = fenceAtRest(runner_, dir_, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_TRUE(result.killed_postmaster) << result.detail;
  EXPECT_TRUE(exited(pid)) << "the postmaster still runs";
  EXPECT_TRUE(fs::exists(dir_ + "/standby.signal"));
}

TEST_F(FenceAtRestTest, LeavesAloneAProcessThatOnlyHoldsTheRecordedPid) {
  write("PG_VERSION", "15\n");
  const pid_t pid = spawnIn("/");
  usleep(200000);
  write("postmaster.pid", std::to_string(pid) + "\n" + dir_ + "\n");
  auto result = fenceAtRest(runner_, dir_, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_FALSE(result.killed_postmaster);
  EXPECT_EQ(kill(pid, 0), 0) << "a process outside the data directory was killed";
  EXPECT_TRUE(fs::exists(dir_ + "/standby.signal"));
}

TEST_F(FenceAtRestTest, LeavesRunningAPostmasterStartedAsAStandby) {
  write("PG_VERSION", "15\n");
  write("standby.signal", "");
  const pid_t pid = spawnIn(dir_);
  usleep(200000);
  write("postmaster.pid", std::to_string(pid) + "\n" + dir_ + "\n");
  auto result = fenceAtRest(runner_, dir_, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_FALSE(result.killed_postmaster);
  EXPECT_EQ(kill(pid, 0), 0) << "a standby was killed";
}

TEST_F(FenceAtRestTest, NothingWithoutADataDirectoryAndAGarbledPidIsIgnored) {
  auto result = fenceAtRest(runner_, dir_ + "/missing", Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_TRUE(result.no_data_directory);
  EXPECT_FALSE(fs::exists(dir_ + "/missing"));

  write("PG_VERSION", "15\n");
  write("postmaster.pid", "1; touch " + dir_ + "/injected\n");
  result = fenceAtRest(runner_, dir_, Millis{5000});
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_FALSE(fs::exists(dir_ + "/injected"));
  EXPECT_TRUE(fs::exists(dir_ + "/standby.signal"));
}

}  // namespace
}  // namespace pgfailover::lifecycle
