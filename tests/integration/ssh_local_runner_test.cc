// LocalRunner with real processes: exit codes, both streams, the deadline killing the whole
// process group, the detached-output grace, the clean environment and running as another user.
#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "ssh/local_runner.h"
#include "ssh/shell.h"
#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::ssh {
namespace {

using namespace std::chrono_literals;

class LocalRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/pgfailover-local-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

TEST_F(LocalRunnerTest, CapturesExitCodeAndBothStreams) {
  LocalRunner runner;
  CommandResult result = runner.run("echo hello; echo err >&2; exit 3", 10s);
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_text, "hello\n");
  EXPECT_EQ(result.stderr_text, "err\n");
  EXPECT_EQ(result.summary(), "exit 3: err");
  EXPECT_TRUE(runner.run("true", 10s).succeeded());
}

TEST_F(LocalRunnerTest, ReportsASignalThatEndedTheCommand) {
  LocalRunner runner;
  CommandResult result = runner.run("kill -TERM $$", 10s);
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_EQ(result.signal, "TERM");
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_FALSE(result.succeeded());
}

TEST_F(LocalRunnerTest, DeadlineKillsTheWholeProcessGroup) {
  LocalRunner runner;
  const std::string pid_file = path("sleep.pid");
  const std::string after = path("after");
  CommandResult result = runner.run("echo started; sleep 30 & echo $! > " + shellQuote(pid_file) +
                                        "; wait; touch " + shellQuote(after),
                                    1000ms);
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded) << result.status.message();
  EXPECT_GE(result.took, 1000ms);
  EXPECT_LT(result.took, 2500ms);
  EXPECT_EQ(result.stdout_text, "started\n");
  const pid_t sleep_pid = std::stoi(testing::trim(testing::readTextFile(pid_file)));
  EXPECT_TRUE(testing::waitUntil([&] { return !testing::processAlive(sleep_pid); }, 5s))
      << "sleep " << sleep_pid << " survived the deadline";
  EXPECT_FALSE(std::filesystem::exists(after));
}

TEST_F(LocalRunnerTest, DoesNotWaitForABackgroundProcessHoldingItsOutput) {
  // Like `pg_ctl start` without -l: the server keeps stdout open after the command exited.
  LocalRunner runner;
  const std::string pid_file = path("daemon.pid");
  CommandResult result =
      runner.run("sleep 30 & echo $! > " + shellQuote(pid_file) + "; echo done", 10s);
  ASSERT_TRUE(result.succeeded()) << result.summary();
  EXPECT_EQ(result.stdout_text, "done\n");
  EXPECT_LT(result.took, 2000ms);
  const pid_t daemon_pid = std::stoi(testing::trim(testing::readTextFile(pid_file)));
  EXPECT_TRUE(testing::processAlive(daemon_pid));  // left running: it is not a timeout
  kill(daemon_pid, SIGKILL);
}

TEST_F(LocalRunnerTest, DoesNotPassPgfailoversEnvironmentOn) {
  ASSERT_EQ(setenv("PGFAILOVER_TEST_SECRET", "hunter2", 1), 0);
  LocalRunner runner;
  CommandResult result =
      runner.run("echo \"${PGFAILOVER_TEST_SECRET:-unset}\"; echo \"$HOME\"; pwd", 10s);
  unsetenv("PGFAILOVER_TEST_SECRET");
  ASSERT_TRUE(result.succeeded()) << result.summary();
  passwd* self = getpwuid(geteuid());
  ASSERT_NE(self, nullptr);
  const std::string home = self->pw_dir;
  EXPECT_EQ(result.stdout_text, "unset\n" + home + "\n" + home + "\n");
}

TEST_F(LocalRunnerTest, StdinIsEmpty) {
  LocalRunner runner;
  CommandResult result = runner.run("cat; echo end", 10s);
  ASSERT_TRUE(result.succeeded()) << result.summary();
  EXPECT_EQ(result.stdout_text, "end\n");
}

TEST_F(LocalRunnerTest, RunsAsAnotherUserWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  if (getpwnam("postgres") == nullptr) GTEST_SKIP() << "no postgres user on this host";
  LocalRunner runner("postgres");
  EXPECT_EQ(runner.describe(), "local (as postgres)");
  CommandResult result = runner.run("id -un; echo \"$USER\"; touch /root/x-should-fail", 10s);
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_EQ(result.stdout_text, "postgres\npostgres\n");
  EXPECT_NE(result.exit_code, 0);  // postgres cannot write to /root
  EXPECT_FALSE(std::filesystem::exists("/root/x-should-fail"));
}

TEST_F(LocalRunnerTest, UnknownUserIsAFailedPrecondition) {
  LocalRunner runner("no-such-user-pgfailover");
  const std::string marker = path("must-not-exist");
  CommandResult result = runner.run("touch " + shellQuote(marker), 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status.message().find("no-such-user-pgfailover"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(LocalRunnerTest, LargeOutputIsCapped) {
  LocalRunner runner;
  CommandResult result = runner.run("head -c 1000000 /dev/zero | tr '\\0' a; echo; echo end", 30s);
  ASSERT_TRUE(result.succeeded()) << result.summary();
  EXPECT_TRUE(result.output_truncated);
  EXPECT_LT(result.stdout_text.size(), kMaxOutputBytes + 100);
  EXPECT_NE(result.stdout_text.find("end\n"), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::ssh
