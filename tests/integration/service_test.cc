// The daemon as a systemd service, without systemd: readiness, watchdog and stop notifications
// arrive on a real unix datagram socket named by $NOTIFY_SOCKET, as systemd would receive them;
// SIGHUP re-reads the file and applies what can change safely (a timeout seen in /status, the
// admin token seen by the admin API) and refuses the rest by name; a broken file changes
// nothing; SIGTERM releases the primary's lease and exits 0.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// What systemd listens on: one datagram per sd_notify() call.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.size() >= sizeof address.sun_path) {
      ADD_FAILURE() << "socket path too long: " << path_;
      return;
    }
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    ::unlink(path_.c_str());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      ADD_FAILURE() << "cannot bind " << path_ << ": " << std::strerror(errno);
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

  // Reads datagrams until one contains `field` (e.g. "READY=1"); everything read is kept.
  bool waitFor(const std::string& field, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (std::size_t i = seen_; i < messages_.size(); ++i)
        if (("\n" + messages_[i] + "\n").find("\n" + field + "\n") != std::string::npos) {
          seen_ = i + 1;
          return true;
        }
      seen_ = messages_.size();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) messages_.emplace_back(buffer, static_cast<std::size_t>(n));
    }
  }
  std::string all() const {
    std::string out;
    for (const auto& m : messages_) out += "[" + m + "] ";
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
  std::size_t seen_ = 0;
};

json status(int port) {
  auto response = httpGet(port, "/status");
  if (response.status != 200) return json();
  return json::parse(response.body, nullptr, false);
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
  ::chmod(path.c_str(), 0600);
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    http_port_ = freePort();
    config_ = pgfailoverConfig(cluster_, http_port_);
    token_a_ = cluster_.dir() + "/token-a";
    token_b_ = cluster_.dir() + "/token-b";
    writeFile(token_a_, "first-admin-token-0123456789\n");
    writeFile(token_b_, "second-admin-token-9876543210\n");
    config_["admin"] = {{"token_file", token_a_}};
    config_path_ = writePgfailoverConfig(cluster_, config_);
  }

  void startDaemon() {
    daemon_ = std::make_unique<DaemonProcess>(DaemonOptions{"",
                                                            {"run", "--config", config_path_},
                                                            cluster_.dir() + "/pgfailover.log",
                                                            {{"NOTIFY_SOCKET", notify_.path()}}});
    ASSERT_TRUE(daemon_->start());
  }

  bool waitForLog(const std::string& text, std::chrono::milliseconds timeout) {
    return waitUntil([&] { return daemon_->log().find(text) != std::string::npos; }, timeout);
  }

  // 0 when the switchover dry run was accepted with this token file.
  int dryRunWith(const std::string& token_file) {
    std::string output;
    return runPgfailover({"switchover", "--url", "http://127.0.0.1:" + std::to_string(http_port_),
                          "--token-file", token_file, "--dry-run"},
                         &output);
  }

  PgCluster cluster_{1};
  int http_port_ = 0;
  json config_;
  std::string config_path_;
  std::string token_a_;
  std::string token_b_;
  NotifySocket notify_{cluster_.dir() + "/notify.sock"};
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(ServiceTest, NotifiesReadinessWatchdogAndStoppingAndReleasesTheLeaseOnSigterm) {
  startDaemon();
  ASSERT_TRUE(notify_.waitFor("READY=1", 30s)) << notify_.all() << "\n" << daemon_->logTail();
  // Ready means the API answers with a snapshot of a tick that ran.
  auto s = status(http_port_);
  ASSERT_TRUE(s.is_object()) << "READY=1 before /status answered";
  EXPECT_GE(s.value("tick", 0), 1);
  EXPECT_TRUE(notify_.waitFor("WATCHDOG=1", 5s)) << notify_.all();
  // A second watchdog ping: it is fed every tick, not once.
  EXPECT_TRUE(notify_.waitFor("WATCHDOG=1", 5s)) << notify_.all();
  ASSERT_TRUE(waitUntil([&] { return status(http_port_).value("state", "") == "healthy"; }, 30s));
  ASSERT_TRUE(waitUntil(
      [&] {
        return cluster_.sql(0, "SELECT lease_ms > 0 FROM pgfailover.heartbeat WHERE id = 1") == "t";
      },
      10s))
      << "the primary never got a lease";

  auto code = daemon_->stop(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << daemon_->logTail();
  EXPECT_TRUE(notify_.waitFor("STOPPING=1", 2s)) << notify_.all();
  EXPECT_NE(daemon_->log().find("lease_released"), std::string::npos) << daemon_->logTail();
  EXPECT_EQ(cluster_.sql(0, "SELECT lease_ms FROM pgfailover.heartbeat WHERE id = 1"), "0");
}

TEST_F(ServiceTest, SighupAppliesTimeoutAndTokenRefusesTheNodeListAndSurvivesABrokenFile) {
  startDaemon();
  ASSERT_TRUE(notify_.waitFor("READY=1", 30s)) << notify_.all() << "\n" << daemon_->logTail();
  ASSERT_TRUE(waitUntil([&] { return status(http_port_).value("state", "") == "healthy"; }, 30s));
  EXPECT_EQ(dryRunWith(token_a_), 0) << daemon_->logTail();
  EXPECT_NE(dryRunWith(token_b_), 0);

  // A longer unresponsive timeout, a new token, and a third node (which needs a restart).
  json next = config_;
  next["failover"]["unresponsive_timeout_ms"] = 20000;
  next["admin"]["token_file"] = token_b_;
  next["nodes"].push_back({{"name", "pg9"}, {"host", "127.0.0.1"}, {"port", freePort()}});
  next["http"]["port"] = freePort();
  writePgfailoverConfig(cluster_, next);
  ASSERT_TRUE(daemon_->signal(SIGHUP));
  ASSERT_TRUE(waitForLog("reloaded", 10s)) << daemon_->logTail();
  EXPECT_TRUE(notify_.waitFor("RELOADING=1", 5s)) << notify_.all();
  EXPECT_TRUE(notify_.waitFor("READY=1", 5s)) << notify_.all();
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("nodes changed in " + config_path_ + " but needs a restart"),
            std::string::npos)
      << daemon_->logTail();
  EXPECT_NE(log.find("http.port changed"), std::string::npos) << daemon_->logTail();
  EXPECT_NE(log.find("applied admin.token, failover.unresponsive_timeout_ms"), std::string::npos)
      << daemon_->logTail();
  // Still two nodes, still on the old port.
  auto s = status(http_port_);
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["nodes"].size(), 2u);

  EXPECT_EQ(dryRunWith(token_b_), 0) << daemon_->logTail();
  EXPECT_NE(dryRunWith(token_a_), 0);

  // The running unresponsive timeout is the reloaded one.
  cluster_.stop(0);
  json timeout;
  const bool saw = waitUntil(
      [&] {
        timeout = status(http_port_)["timeout"];
        return timeout.is_object() && timeout.value("kind", "") == "unresponsive";
      },
      15s);
  cluster_.resume(0);
  ASSERT_TRUE(saw) << status(http_port_).dump(2);
  EXPECT_EQ(timeout["total_ms"], 20000) << timeout.dump();
  ASSERT_TRUE(waitUntil([&] { return status(http_port_).value("state", "") == "healthy"; }, 30s));

  // A file that does not load: logged, nothing changes, the daemon keeps running.
  writeFile(config_path_, "{ \"nodes\": [");
  ASSERT_TRUE(daemon_->signal(SIGHUP));
  ASSERT_TRUE(waitForLog("reload_failed", 10s)) << daemon_->logTail();
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(daemon_->running());
  EXPECT_TRUE(status(http_port_).is_object());
  EXPECT_EQ(dryRunWith(token_b_), 0);
  auto code = daemon_->stop(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << daemon_->logTail();
}

TEST_F(ServiceTest, LogsWithJournalPrioritiesWhenStderrIsTheJournalStream) {
  // systemd names the journal stream it connected to stderr in $JOURNAL_STREAM (device:inode);
  // here stderr is the log file, so naming the file's device and inode is the same situation.
  const std::string log_path = cluster_.dir() + "/journal.log";
  writeFile(log_path, "");
  struct stat st {};
  ASSERT_EQ(::stat(log_path.c_str(), &st), 0);
  const std::string stream =
      std::to_string(st.st_dev) + ":" + std::to_string(static_cast<unsigned long long>(st.st_ino));
  DaemonProcess daemon(
      DaemonOptions{"", {"run", "--config", config_path_}, log_path, {{"JOURNAL_STREAM", stream}}});
  ASSERT_TRUE(daemon.start());
  ASSERT_TRUE(
      waitUntil([&] { return daemon.log().find("started: pgfailover") != std::string::npos; }, 30s))
      << daemon.logTail();
  EXPECT_NE(daemon.log().find("<6>info started: pgfailover"), std::string::npos)
      << daemon.logTail();
  ASSERT_EQ(daemon.stop(10s), 0);
  // A JOURNAL_STREAM naming another file (stderr redirected elsewhere) keeps timestamps.
  const std::string other_log = cluster_.dir() + "/redirected.log";
  DaemonProcess redirected(DaemonOptions{
      "", {"run", "--config", config_path_}, other_log, {{"JOURNAL_STREAM", stream}}});
  ASSERT_TRUE(redirected.start());
  ASSERT_TRUE(waitUntil(
      [&] { return redirected.log().find("started: pgfailover") != std::string::npos; }, 30s))
      << redirected.logTail();
  EXPECT_EQ(redirected.log().find("<6>"), std::string::npos) << redirected.logTail();
  ASSERT_EQ(redirected.stop(10s), 0);
}

}  // namespace
}  // namespace pgfailover::testing
