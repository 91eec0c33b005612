// The real pgfailover binary watching a real PostgreSQL 15 primary and replica, its HTTP API
// attacked the way issue 11 describes: 50 slow-header clients, 200 idle connections and a
// 200 MB chunked POST at once, while /primary/NODE and /healthz must keep answering, the loop
// keep ticking and the daemon's memory stay flat. Also the access log, HTTPS from the
// configuration, and TLS files the daemon must refuse at start (exit 2).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"
#include "support/raw_socket.h"
#include "support/test_certs.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kToken = "hostile-test-admin-token-0123";

class HttpHostileDaemonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new PgCluster(1); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(cluster_->ok());
    port_ = freePort();
    const std::string token_file = cluster_->dir() + "/admin-token";
    std::ofstream(token_file) << kToken;
    ::chmod(token_file.c_str(), 0600);
    config_ = pgfailoverConfig(*cluster_, port_);
    config_["admin"] = {{"token_file", token_file}};
  }

  std::string writeConfig() { return writePgfailoverConfig(*cluster_, config_, "hostile.json"); }

  void startDaemon() {
    daemon_ = std::make_unique<DaemonProcess>(
        writeConfig(), cluster_->dir() + "/hostile-" + std::to_string(port_) + ".log");
    ASSERT_TRUE(daemon_->start());
    ASSERT_TRUE(waitUntil([&] { return httpGet(port_, "/primary/pg1").status == 200; }, 30s))
        << daemon_->logTail();
  }

  static PgCluster* cluster_;
  int port_ = 0;
  json config_;
  std::unique_ptr<DaemonProcess> daemon_;
};

PgCluster* HttpHostileDaemonTest::cluster_ = nullptr;

TEST_F(HttpHostileDaemonTest, SlowIdleAndChunkedClientsDoNotStopTheChecksOrGrowMemory) {
  startDaemon();
  const int pid = daemon_->pid();
  const long rss_before = procStatusKb(pid, "VmRSS");
  const long peak_before = procStatusKb(pid, "VmHWM");

  std::atomic<bool> done{false};
  std::atomic<long> chunked_mb{0};
  std::atomic<long> most_mb_on_one_connection{0};
  std::thread slow_and_idle([&] {
    std::vector<RawSocket> slow;
    std::vector<RawSocket> idle;
    while (!done) {
      while (slow.size() < 50) slow.emplace_back(port_, "127.0.0.2");
      while (idle.size() < 200)
        idle.emplace_back(port_, "127.0.0." + std::to_string(3 + idle.size() % 4));
      for (auto& socket : slow)
        if (!socket.send("X")) socket = RawSocket(port_, "127.0.0.2");
      for (auto& socket : idle)
        if (socket.closedWithin(0ms)) socket = RawSocket(port_, "127.0.0.3");
      std::this_thread::sleep_for(300ms);
    }
  });
  std::thread chunked([&] {
    // 200 MB announced as chunks; reconnects whenever the server refuses and closes.
    const std::string chunk = "100000\r\n" + std::string(0x100000, 'x') + "\r\n";
    while (!done && chunked_mb < 200) {
      RawSocket socket(port_, "127.0.0.7");
      if (!socket.send("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"))
        continue;
      long on_this_connection = 0;
      while (!done && chunked_mb < 200 && socket.send(chunk)) {
        ++chunked_mb;
        ++on_this_connection;
      }
      most_mb_on_one_connection = std::max(most_mb_on_one_connection.load(), on_this_connection);
    }
  });

  int polls = 0;
  int answered = 0;
  long worst_tick_age_ms = 0;
  for (const auto start = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - start < 8s; std::this_thread::sleep_for(50ms)) {
    ++polls;
    answered += httpGet(port_, "/primary/pg1", 2s).status == 200;
    ++polls;
    const auto health = httpGet(port_, "/healthz", 2s);
    answered += health.status == 200;
    const json body = json::parse(health.body, nullptr, false);
    if (body.is_object())
      worst_tick_age_ms = std::max(worst_tick_age_ms, body.value("tick_age_ms", 0L));
  }
  done = true;
  slow_and_idle.join();
  chunked.join();

  EXPECT_EQ(answered, polls);
  // probe.interval_ms is 1000: the loop kept ticking.
  EXPECT_LT(worst_tick_age_ms, 2500);
  const long rss_after = procStatusKb(pid, "VmRSS");
  const long peak_after = procStatusKb(pid, "VmHWM");
  EXPECT_LT(peak_after - peak_before, 16 * 1024)
      << "peak RSS " << peak_before << " -> " << peak_after << " kB";
  EXPECT_LT(rss_after - rss_before, 16 * 1024)
      << "RSS " << rss_before << " -> " << rss_after << " kB";
  // What one connection gets through is the kernel's socket buffers and the short drain after
  // the 411, not the body: the daemon stops reading it.
  EXPECT_LT(most_mb_on_one_connection.load(), 16) << "the daemon kept reading a refused body";
  EXPECT_TRUE(daemon_->running());
}

TEST_F(HttpHostileDaemonTest, AdminRequestsAndRefusalsAreLoggedWithoutTheToken) {
  startDaemon();
  httplib::Client client("127.0.0.1", port_);
  client.set_read_timeout(5, 0);
  auto refused = client.Post("/switchover", {{"Authorization", "Bearer wrong-token-1234567890"}},
                             "{}", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  auto accepted = client.Post("/switchover", {{"Authorization", std::string("Bearer ") + kToken}},
                              R"({"dry_run": true})", "application/json");
  ASSERT_TRUE(accepted);
  const std::string request_id = accepted->get_header_value("X-Request-Id");
  EXPECT_FALSE(request_id.empty());
  ASSERT_TRUE(waitUntil(
      [&] {
        return daemon_->log().find("POST /switchover from 127.0.0.1: 401") != std::string::npos;
      },
      5s))
      << daemon_->logTail();
  // Refused by the server before routing (no Content-Length): still an admin request, logged.
  RawSocket unannounced(port_);
  ASSERT_TRUE(unannounced.send("POST /switchover HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(unannounced.receive(2s, 12).substr(0, 12), "HTTP/1.1 411");
  ASSERT_TRUE(waitUntil(
      [&] {
        return daemon_->log().find("POST /switchover from 127.0.0.1: 411") != std::string::npos;
      },
      5s))
      << daemon_->logTail();
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("POST /switchover from 127.0.0.1: " + std::to_string(accepted->status)),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("http_request_id=" + request_id), std::string::npos) << log;
  EXPECT_EQ(log.find(kToken), std::string::npos) << "the admin token reached the log";
  EXPECT_EQ(log.find("wrong-token-1234567890"), std::string::npos)
      << "a presented token was logged";
  // Health checks are not logged at the default level.
  EXPECT_EQ(log.find("GET /primary/pg1 from"), std::string::npos);
}

TEST_F(HttpHostileDaemonTest, ServesHttpsFromTheConfiguration) {
  const TestCerts certs = makeTestCerts(cluster_->dir());
  ASSERT_TRUE(certs.ok) << certs.error;
  config_["http"]["tls"] = {{"certificate", certs.server_cert}, {"key", certs.server_key}};
  daemon_ = std::make_unique<DaemonProcess>(writeConfig(), cluster_->dir() + "/https.log");
  ASSERT_TRUE(daemon_->start());
  httplib::SSLClient client("127.0.0.1", port_);
  client.set_ca_cert_path(certs.ca.c_str());
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(1, 0);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto response = client.Get("/primary/pg1");
        return response && response->status == 200;
      },
      30s))
      << daemon_->logTail();
  EXPECT_EQ(httpGet(port_, "/healthz").status, 400) << "plain HTTP on the HTTPS port";
}

TEST_F(HttpHostileDaemonTest, UnusableTlsFilesStopTheDaemonWithExitTwoNamingTheKey) {
  const TestCerts certs = makeTestCerts(cluster_->dir());
  ASSERT_TRUE(certs.ok) << certs.error;
  const std::string readable_key = certs.dir + "/readable.key";
  std::filesystem::copy_file(certs.server_key, readable_key);
  ::chmod(readable_key.c_str(), 0644);
  struct Case {
    std::string key;
    std::string message;
  };
  int attempt = 0;
  for (const Case& c :
       {Case{certs.dir + "/missing.key", "http.tls.key: cannot read"},
        Case{readable_key, "http.tls.key: " + readable_key + " is open to all users (mode 0644)"},
        Case{certs.client_key, "http.tls.key: " + certs.client_key + " does not match"}}) {
    config_["http"]["tls"] = {{"certificate", certs.server_cert}, {"key", c.key}};
    DaemonProcess daemon(writeConfig(),
                         cluster_->dir() + "/bad-tls-" + std::to_string(++attempt) + ".log");
    ASSERT_TRUE(daemon.start());
    const auto exit_status = daemon.waitForExit(20s);
    ASSERT_TRUE(exit_status) << c.key << " did not stop the daemon";
    EXPECT_EQ(*exit_status, 2) << daemon.logTail();
    EXPECT_NE(daemon.log().find(c.message), std::string::npos) << daemon.logTail();
  }
}

}  // namespace
}  // namespace pgfailover::testing
