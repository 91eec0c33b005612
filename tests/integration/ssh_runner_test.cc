// SshRunner against a real OpenSSH server on 127.0.0.1 (tests/support/sshd.h): commands, exit
// codes and output, session reuse, deadlines, and every way the host key, the known_hosts file,
// the private key or the server can be wrong. The server runs on this host, so each test checks
// a command's effects (or their absence) directly in the file system and /proc.
#include "ssh/ssh_runner.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "ssh/shell.h"
#include "support/pg_cluster.h"
#include "support/process.h"
#include "support/sshd.h"

namespace pgfailover::ssh {
namespace {

using namespace std::chrono_literals;
using testing::TestSshd;

SshTarget targetFor(const TestSshd& sshd) {
  SshTarget target;
  target.host = sshd.host();
  target.port = sshd.port();
  target.user = sshd.user();
  target.private_key_file = sshd.privateKeyFile();
  target.known_hosts_file = sshd.knownHostsFile();
  target.connect_timeout = 3000ms;
  return target;
}

bool exists(const std::string& path) {
  return std::filesystem::exists(path);
}

class SshRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(sshd_.ok()); }
  // A path the remote user may create files in.
  std::string scratch(const std::string& name) const { return sshd_.scratchDir() + "/" + name; }

  TestSshd sshd_;
};

TEST_F(SshRunnerTest, RunsCommandAndCapturesExitCodeAndBothStreams) {
  SshRunner runner(targetFor(sshd_));
  CommandResult result = runner.run("echo hello; echo err >&2; exit 3", 10s);
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_text, "hello\n");
  EXPECT_EQ(result.stderr_text, "err\n");
  EXPECT_TRUE(result.signal.empty());
  EXPECT_FALSE(result.output_truncated);
  EXPECT_FALSE(result.succeeded());
  EXPECT_EQ(result.summary(), "exit 3: err");
}

TEST_F(SshRunnerTest, CommandRunsOnTheHostAsTheConfiguredUser) {
  SshRunner runner(targetFor(sshd_));
  const std::string marker = scratch("ran here");
  CommandResult result = runner.run("id -un; touch " + shellQuote(marker), 10s);
  ASSERT_TRUE(result.succeeded()) << result.summary();
  EXPECT_EQ(result.stdout_text, sshd_.user() + "\n");
  EXPECT_TRUE(exists(marker));
}

TEST_F(SshRunnerTest, ReusesOneSessionAcrossCommands) {
  SshRunner runner(targetFor(sshd_));
  for (int i = 0; i < 5; ++i) {
    CommandResult result = runner.run("echo " + std::to_string(i), 10s);
    ASSERT_TRUE(result.succeeded()) << result.summary();
    EXPECT_EQ(result.stdout_text, std::to_string(i) + "\n");
  }
  EXPECT_EQ(runner.connectCount(), 1u);

  runner.disconnect();
  EXPECT_TRUE(runner.run("true", 10s).succeeded());
  EXPECT_EQ(runner.connectCount(), 2u);
}

TEST_F(SshRunnerTest, ReportsASignalThatEndedTheCommand) {
  SshRunner runner(targetFor(sshd_));
  CommandResult result = runner.run("kill -KILL $$", 10s);
  ASSERT_TRUE(result.status.isOk()) << result.status.message();
  EXPECT_EQ(result.signal, "KILL");
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_FALSE(result.succeeded());
  EXPECT_EQ(result.summary(), "killed by signal KILL");
  // The session survives a command's death.
  EXPECT_TRUE(runner.run("true", 10s).succeeded());
  EXPECT_EQ(runner.connectCount(), 1u);
}

TEST_F(SshRunnerTest, DeadlineIsHonouredAndTheNextCommandReconnects) {
  SshRunner runner(targetFor(sshd_));
  CommandResult result = runner.run("echo started; sleep 30; echo never", 1500ms);
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded) << result.status.message();
  EXPECT_GE(result.took, 1500ms);
  EXPECT_LT(result.took, 3000ms);
  EXPECT_EQ(result.stdout_text, "started\n");  // what came before the deadline is kept
  EXPECT_NE(result.status.message().find("deadline of 1500 ms"), std::string::npos)
      << result.status.message();
  EXPECT_EQ(runner.connectCount(), 1u);

  CommandResult next = runner.run("echo again", 10s);
  ASSERT_TRUE(next.succeeded()) << next.summary();
  EXPECT_EQ(next.stdout_text, "again\n");
  EXPECT_EQ(runner.connectCount(), 2u);
}

TEST_F(SshRunnerTest, DeadlineKillsTheRemoteProcessGroup) {
  SshRunner runner(targetFor(sshd_));
  const std::string pid_file = scratch("sleep.pid");
  const std::string after = scratch("after-sleep");
  // The sleep runs in the background of the command's shell, in its process group.
  CommandResult result = runner.run(
      "sleep 30 & echo $! > " + shellQuote(pid_file) + "; wait; touch " + shellQuote(after),
      1500ms);
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded) << result.status.message();
  ASSERT_TRUE(testing::waitUntil([&] { return exists(pid_file); }, 5s));
  const pid_t sleep_pid = std::stoi(testing::trim(testing::readTextFile(pid_file)));
  if (sshd_.user() == "root") {
    kill(sleep_pid, SIGKILL);
    GTEST_SKIP() << "OpenSSH ignores signal requests in root's sessions (no privilege "
                    "separation after login); this host has no postgres account to log in as";
  }
  // sshd delivered the SIGKILL to the command's process group: the sleep is gone.
  EXPECT_TRUE(testing::waitUntil([&] { return !testing::processAlive(sleep_pid); }, 5s))
      << "sleep " << sleep_pid << " survived the deadline";
  EXPECT_FALSE(exists(after));
}

TEST_F(SshRunnerTest, ChangedHostKeyIsRefusedAndNothingRuns) {
  SshTarget target = targetFor(sshd_);
  target.known_hosts_file = sshd_.wrongKnownHostsFile();
  const std::string before = testing::readTextFile(target.known_hosts_file);
  SshRunner runner(target);
  const std::string marker = scratch("must-not-exist");
  CommandResult result = runner.run("touch " + shellQuote(marker), 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  const std::string& message = result.status.message();
  EXPECT_NE(message.find("host key"), std::string::npos) << message;
  EXPECT_NE(message.find("does not match"), std::string::npos) << message;
  EXPECT_NE(message.find("[127.0.0.1]:" + std::to_string(sshd_.port())), std::string::npos)
      << message;
  EXPECT_NE(message.find(target.known_hosts_file), std::string::npos) << message;
  EXPECT_NE(message.find("SHA256:"), std::string::npos) << message;
  EXPECT_FALSE(exists(marker));
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_EQ(runner.connectCount(), 0u);
  // The file is never "fixed" behind the operator's back.
  EXPECT_EQ(testing::readTextFile(target.known_hosts_file), before);
}

TEST_F(SshRunnerTest, HostMissingFromKnownHostsIsRefusedWithTheFix) {
  SshTarget target = targetFor(sshd_);
  target.known_hosts_file = sshd_.path("empty_known_hosts");
  ASSERT_TRUE(testing::writeTextFile(target.known_hosts_file, ""));
  SshRunner runner(target);
  const std::string marker = scratch("must-not-exist");
  CommandResult result = runner.run("touch " + shellQuote(marker), 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  const std::string& message = result.status.message();
  EXPECT_NE(message.find("is not in known_hosts file"), std::string::npos) << message;
  EXPECT_NE(message.find("ssh-keyscan -p " + std::to_string(sshd_.port()) + " 127.0.0.1 >> '" +
                         target.known_hosts_file + "'"),
            std::string::npos)
      << message;
  EXPECT_FALSE(exists(marker));
  EXPECT_EQ(testing::readTextFile(target.known_hosts_file), "");  // never trusted on first use
}

TEST_F(SshRunnerTest, KnownHostsWithOnlyAnotherPortIsUnknown) {
  // The same host on another port is another entry: port 22's key does not vouch for this one.
  SshTarget target = targetFor(sshd_);
  std::string line = testing::readTextFile(sshd_.knownHostsFile());
  line = "127.0.0.1" + line.substr(line.find(' '));
  target.known_hosts_file = sshd_.path("port22_known_hosts");
  ASSERT_TRUE(testing::writeTextFile(target.known_hosts_file, line));
  SshRunner runner(target);
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status.message().find("is not in known_hosts file"), std::string::npos)
      << result.status.message();
}

TEST_F(SshRunnerTest, MissingKnownHostsFileIsRefused) {
  SshTarget target = targetFor(sshd_);
  target.known_hosts_file = sshd_.path("no_such_known_hosts");
  SshRunner runner(target);
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  const std::string& message = result.status.message();
  EXPECT_NE(message.find("cannot read known_hosts file '" + target.known_hosts_file + "'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
  EXPECT_NE(message.find("ssh-keyscan"), std::string::npos) << message;
  EXPECT_FALSE(exists(target.known_hosts_file));

  target.known_hosts_file = "";
  SshRunner unconfigured(target);
  result = unconfigured.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status.message().find("no known_hosts file configured"), std::string::npos)
      << result.status.message();
}

TEST_F(SshRunnerTest, MissingPrivateKeyFileIsAClearError) {
  SshTarget target = targetFor(sshd_);
  target.private_key_file = sshd_.path("no_such_key");
  SshRunner runner(target);
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  const std::string& message = result.status.message();
  EXPECT_NE(message.find("cannot read private key file '" + target.private_key_file + "'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
}

TEST_F(SshRunnerTest, FileThatIsNotAKeyIsAClearError) {
  SshTarget target = targetFor(sshd_);
  target.private_key_file = sshd_.knownHostsFile();  // readable, but not a private key
  SshRunner runner(target);
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status.message().find("cannot load private key file"), std::string::npos)
      << result.status.message();
}

TEST_F(SshRunnerTest, PassphraseProtectedKeyIsRefusedWithoutPrompting) {
  const std::string key = sshd_.path("encrypted_key");
  testing::ProcessResult keygen = testing::runProcess(
      {"ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", key}, {});
  ASSERT_TRUE(keygen.ok()) << keygen.err;
  SshTarget target = targetFor(sshd_);
  target.private_key_file = key;
  SshRunner runner(target);
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status.message().find("passphrase"), std::string::npos)
      << result.status.message();
}

TEST_F(SshRunnerTest, KeyNotInAuthorizedKeysIsUnauthenticated) {
  SshTarget target = targetFor(sshd_);
  target.private_key_file = sshd_.unauthorizedKeyFile();
  SshRunner runner(target);
  const std::string marker = scratch("must-not-exist");
  CommandResult result = runner.run("touch " + shellQuote(marker), 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kUnauthenticated);
  const std::string& message = result.status.message();
  EXPECT_NE(message.find("refused private key '" + target.private_key_file + "'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("authorized_keys"), std::string::npos) << message;
  EXPECT_FALSE(exists(marker));
}

TEST_F(SshRunnerTest, StoppedSshdIsUnavailableQuickly) {
  SshRunner runner(targetFor(sshd_));
  sshd_.stop();
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kUnavailable) << result.status.message();
  EXPECT_NE(result.status.message().find("unable to connect"), std::string::npos)
      << result.status.message();
  EXPECT_LT(result.took, 1000ms);
}

TEST_F(SshRunnerTest, ReconnectsAfterTheServerDroppedTheSession) {
  SshRunner runner(targetFor(sshd_));
  ASSERT_TRUE(runner.run("true", 10s).succeeded());
  ASSERT_EQ(runner.connectCount(), 1u);

  sshd_.stop();  // kills the session process too
  ASSERT_TRUE(sshd_.start());
  CommandResult result = runner.run("echo back", 10s);
  ASSERT_TRUE(result.succeeded()) << result.summary();
  EXPECT_EQ(result.stdout_text, "back\n");
  EXPECT_EQ(runner.connectCount(), 2u);
}

TEST_F(SshRunnerTest, SilentServerTimesOutWithinConnectTimeout) {
  // A listening socket that never answers: TCP connects, the SSH banner never comes.
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);

  SshTarget target = targetFor(sshd_);
  target.port = ntohs(address.sin_port);
  target.connect_timeout = 700ms;
  SshRunner runner(target);
  CommandResult result = runner.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kUnavailable) << result.status.message();
  EXPECT_NE(result.status.message().find("connect timeout"), std::string::npos)
      << result.status.message();
  EXPECT_GE(result.took, 700ms);
  EXPECT_LT(result.took, 1500ms);

  // With a caller's deadline shorter than connect_timeout, the deadline wins.
  target.connect_timeout = 5000ms;
  SshRunner impatient(target);
  result = impatient.run("true", 500ms);
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded) << result.status.message();
  EXPECT_LT(result.took, 1300ms);
  close(listener);
}

TEST_F(SshRunnerTest, HostThatStopsAnsweringCannotHoldACallPastItsDeadline) {
  SshTarget target = targetFor(sshd_);
  target.connect_timeout = 5000ms;
  SshRunner runner(target);
  ASSERT_TRUE(runner.run("true", 10s).succeeded());

  sshd_.pause();
  CommandResult result = runner.run("true", 1000ms);
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded) << result.status.message();
  EXPECT_LT(result.took, 1500ms);

  // With connect_timeout shorter than the deadline, the dead session is dropped after
  // connect_timeout, and connecting anew (the paused listener never answers) fails after another.
  target.connect_timeout = 400ms;
  SshRunner quick(target);
  sshd_.resume();
  ASSERT_TRUE(quick.run("true", 10s).succeeded());
  sshd_.pause();
  result = quick.run("true", 10s);
  EXPECT_EQ(result.status.code(), StatusCode::kUnavailable) << result.status.message();
  EXPECT_NE(result.status.message().find("connect timeout"), std::string::npos)
      << result.status.message();
  EXPECT_LT(result.took, 2000ms);
  EXPECT_EQ(quick.connectCount(), 1u);

  sshd_.resume();
  // The runner connects anew by itself. On a loaded machine sshd may need longer than the
  // 400 ms connect timeout to authenticate, so a few attempts are allowed; each is a new
  // connection.
  const bool alive = testing::waitUntil(
      [&] {
        result = quick.run("echo alive", 10s);
        return result.succeeded();
      },
      30s);
  ASSERT_TRUE(alive) << result.summary();
  EXPECT_GE(quick.connectCount(), 2u);
}

TEST_F(SshRunnerTest, LargeOutputIsCappedAndTheCommandStillCompletes) {
  SshRunner runner(targetFor(sshd_));
  CommandResult result =
      runner.run("head -c 1000000 /dev/zero | tr '\\0' a; echo; echo tail-marker", 30s);
  ASSERT_TRUE(result.succeeded()) << result.summary();
  EXPECT_TRUE(result.output_truncated);
  EXPECT_LT(result.stdout_text.size(), kMaxOutputBytes + 100);
  EXPECT_NE(result.stdout_text.find("bytes omitted"), std::string::npos);
  EXPECT_NE(result.stdout_text.find("tail-marker"), std::string::npos);
}

TEST_F(SshRunnerTest, ConcurrentCallsShareTheSessionOneAtATime) {
  SshRunner runner(targetFor(sshd_));
  std::vector<std::thread> threads;
  std::vector<CommandResult> results(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = runner.run("echo " + std::to_string(i), 20s); });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(results[i].succeeded()) << results[i].summary();
    EXPECT_EQ(results[i].stdout_text, std::to_string(i) + "\n");
  }
  EXPECT_EQ(runner.connectCount(), 1u);
}

TEST_F(SshRunnerTest, DescribeNamesUserHostAndPort) {
  SshRunner runner(targetFor(sshd_));
  EXPECT_EQ(runner.describe(),
            "ssh " + sshd_.user() + "@127.0.0.1:" + std::to_string(sshd_.port()));
}

}  // namespace
}  // namespace pgfailover::ssh
