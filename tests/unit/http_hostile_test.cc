// The HTTP server under clients that misbehave on purpose, over real loopback sockets: slow
// headers, idle connections, chunked and oversized bodies, huge heads, too many connections.
// Each source address 127.0.0.x is its own client to the server, as pods are in a cluster.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "http/http_server.h"
#include "support/raw_socket.h"

namespace pgfailover::http {
namespace {

using namespace std::chrono_literals;
using testing::procStatusKb;
using testing::RawSocket;

std::shared_ptr<const core::Snapshot> healthySnapshot() {
  auto snapshot = std::make_shared<core::Snapshot>();
  snapshot->ready = true;
  snapshot->tick = 1;
  snapshot->tick_at = std::chrono::steady_clock::now();
  snapshot->tick_at_wall = std::chrono::system_clock::now();
  snapshot->cluster_name = "main";
  snapshot->state = core::ClusterState::kHealthy;
  snapshot->primary = 0;
  core::NodeSnapshot node;
  node.name = "pg1";
  node.host = "127.0.0.1";
  node.port = 5432;
  node.role = core::NodeRole::kPrimary;
  node.observation.probed = true;
  node.observation.reachable = true;
  node.observation.in_recovery = false;
  node.observation.timeline = 1;
  node.observation.probed_at = snapshot->tick_at;
  snapshot->nodes = {node};
  return snapshot;
}

class HttpHostileTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    store_.publish(healthySnapshot());
    options.address = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options, store_, nullptr);
    const Status status = server_->start();
    ASSERT_TRUE(status.isOk()) << status.message();
  }
  int port() const { return server_->boundPort(); }

  // One check as a load balancer makes it: a new connection, 2 s to answer (HAProxy's
  // `timeout check` in docs/haproxy.md).
  int check(const std::string& path) const {
    httplib::Client client("127.0.0.1", port());
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(2, 0);
    auto response = client.Get(path);
    return response ? response->status : 0;
  }

  core::SnapshotStore store_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpHostileTest, SlowHeadersAndIdleConnectionsDoNotDelayHealthChecks) {
  start();
  std::atomic<bool> done{false};
  std::atomic<std::size_t> most_open{0};
  // 50 clients from 127.0.0.2 trickling a header one byte every 200 ms, and 200 from
  // 127.0.0.3-6 that connect and send nothing; each reconnects when the server closes it, as
  // an attacker would.
  std::thread attacker([&] {
    std::vector<RawSocket> slow;
    std::vector<RawSocket> idle;
    const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    std::vector<std::size_t> offset(50, 0);
    while (!done) {
      while (slow.size() < 50) slow.emplace_back(port(), "127.0.0.2");
      while (idle.size() < 200)
        idle.emplace_back(port(), "127.0.0." + std::to_string(3 + idle.size() % 4));
      for (std::size_t i = 0; i < slow.size(); ++i) {
        const char byte = offset[i] < request.size() ? request[offset[i]] : 'a';
        if (!slow[i].send(std::string(1, byte))) {
          slow[i] = RawSocket(port(), "127.0.0.2");
          offset[i] = 0;
          continue;
        }
        ++offset[i];
      }
      for (auto& socket : idle)
        if (socket.closedWithin(0ms)) socket = RawSocket(port(), "127.0.0.3");
      most_open = std::max<std::size_t>(most_open, server_->openConnections());
      std::this_thread::sleep_for(200ms);
    }
  });
  std::this_thread::sleep_for(500ms);
  int answered = 0;
  int polls = 0;
  for (const auto start = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - start < 5s; std::this_thread::sleep_for(50ms)) {
    polls += 2;
    answered += check("/healthz") == 200;
    answered += check("/primary/pg1") == 200;
  }
  done = true;
  attacker.join();
  EXPECT_EQ(answered, polls) << "health checks went unanswered behind slow clients";
  EXPECT_GE(most_open.load(), 200u) << "the attack did not hold its connections";
}

TEST_F(HttpHostileTest, AHeaderTrickledInIsCutAtTheRequestDeadline) {
  ServerOptions options;
  options.request_timeout = 1000ms;
  start(options);
  RawSocket socket(port());
  ASSERT_TRUE(socket.ok());
  ASSERT_TRUE(socket.send("GET /healthz HTTP/1.1\r\nX-Slow: "));
  const auto began = std::chrono::steady_clock::now();
  std::string answer;
  bool closed = false;
  // One byte every 100 ms keeps every single read far inside any per-read timeout.
  while (!closed && std::chrono::steady_clock::now() - began < 5s) {
    if (!socket.send("a")) break;
    answer += socket.receive(100ms);
    closed = !answer.empty() || socket.closedWithin(0ms);
  }
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_LT(took, 3s) << "the request was not cut at its 1 s deadline";
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
}

TEST_F(HttpHostileTest, ASilentConnectionAndAnIdleKeptAliveOneAreClosed) {
  ServerOptions options;
  options.request_timeout = 500ms;
  options.idle_timeout = 700ms;
  start(options);
  RawSocket silent(port());
  EXPECT_TRUE(silent.closedWithin(2s));
  RawSocket kept(port());
  ASSERT_TRUE(kept.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(kept.receive(1s, 20).find("HTTP/1.1 200"), std::string::npos);
  EXPECT_TRUE(kept.closedWithin(2s));
  std::this_thread::sleep_for(50ms);  // the count is updated just after the close
  EXPECT_EQ(server_->openConnections(), 0u);
}

TEST_F(HttpHostileTest, AChunkedBodyIsRefused411WithoutBeingRead) {
  start();
  const long peak_before = procStatusKb(::getpid(), "VmHWM");
  RawSocket socket(port());
  ASSERT_TRUE(socket.send(
      "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n"));
  const std::string answer = socket.receive(2s, 12);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 411") << answer;
  // Keep streaming as a hostile client would: the server stops reading and closes long before
  // 200 MB went through.
  const std::string megabyte(1 << 20, 'x');
  std::size_t sent_mb = 0;
  while (sent_mb < 200 && socket.send(megabyte)) ++sent_mb;
  EXPECT_LT(sent_mb, 200u) << "the server kept reading a refused body";
  const long peak_after = procStatusKb(::getpid(), "VmHWM");
  EXPECT_LT(peak_after - peak_before, 16 * 1024)
      << "peak RSS grew by " << peak_after - peak_before << " kB";
  EXPECT_EQ(check("/healthz"), 200);
}

TEST_F(HttpHostileTest, AnOversizedHeadIsRefusedWithTheLimitNamed) {
  start();
  std::string big = "GET /healthz HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i)
    big += "X-Filler-" + std::to_string(i) + ": " + std::string(100, 'y') + "\r\n";
  big += "\r\n";
  RawSocket huge(port());
  huge.send(big);
  std::string answer = huge.receive(2s);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 431") << answer.substr(0, 200);
  EXPECT_NE(answer.find("8192 bytes"), std::string::npos);

  std::string many = "GET /healthz HTTP/1.1\r\n";
  for (int i = 0; i < 65; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  many += "\r\n";
  RawSocket counted(port());
  counted.send(many);
  answer = counted.receive(2s);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 431") << answer.substr(0, 200);
  EXPECT_NE(answer.find("more than 64 headers"), std::string::npos);

  RawSocket long_line(port());
  long_line.send("GET /" + std::string(3000, 'a') + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(long_line.receive(2s, 12).substr(0, 12), "HTTP/1.1 414");
}

TEST_F(HttpHostileTest, BadRequestsGetAClear4xx) {
  start();
  struct Case {
    std::string request;
    std::string status;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"POST /switchover HTTP/1.1\r\nHost: x\r\n\r\n", "411", "Content-Length"},
      {"POST /switchover HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", "413", "65536"},
      {"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400", "conflicting"},
      {"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400", "Content-Length"},
      {"GET /healthz HTTP/2.0\r\n\r\n", "505", "HTTP/2.0"},
      {"GET healthz HTTP/1.1\r\n\r\n", "400", "starting with '/'"},
      {"GET /healthz\r\n\r\n", "400", "request line"},
      {"GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n", "400", "no ':'"},
      {"GET /healthz HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "400", "folded"},
      {std::string("GET /healthz HTTP/1.1\r\nX: a\x01b\r\n\r\n"), "400", "control character"},
  };
  for (const auto& c : cases) {
    RawSocket socket(port());
    ASSERT_TRUE(socket.send(c.request));
    const std::string answer = socket.receive(2s);
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 " + c.status) << c.request << "\n" << answer;
    EXPECT_NE(answer.find(c.names), std::string::npos) << c.request << "\n" << answer;
    EXPECT_TRUE(socket.closedWithin(2s)) << c.request;
  }
  EXPECT_EQ(check("/healthz"), 200);
}

TEST_F(HttpHostileTest, ConnectionsOverTheCapsAreRefusedAtOnce) {
  ServerOptions options;
  options.max_connections = 8;
  options.max_connections_per_address = 4;
  start(options);
  std::vector<RawSocket> held;
  for (int i = 0; i < 4; ++i) held.emplace_back(port(), "127.0.0.2");
  RawSocket fifth(port(), "127.0.0.2");
  const std::string refused = fifth.receive(1s, 12);
  EXPECT_EQ(refused.substr(0, 12), "HTTP/1.1 503") << refused;
  EXPECT_TRUE(fifth.closedWithin(1s));
  // Another address still gets in.
  EXPECT_EQ(check("/primary/pg1"), 200);

  for (int i = 0; i < 4; ++i) held.emplace_back(port(), "127.0.0.3");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server_->openConnections(), 8u);
  RawSocket ninth(port(), "127.0.0.4");
  EXPECT_EQ(ninth.receive(1s, 12).substr(0, 12), "HTTP/1.1 503");
  held.clear();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(check("/primary/pg1"), 200) << "a freed slot is usable again";
}

TEST_F(HttpHostileTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  start();
  RawSocket socket(port());
  ASSERT_TRUE(socket.send(
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /primary/pg1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string answer = socket.receive(2s);
  const auto first = answer.find("HTTP/1.1 200");
  const auto second = answer.find("HTTP/1.1 200", first + 1);
  const auto third = answer.find("HTTP/1.1 404", second + 1);
  EXPECT_NE(first, std::string::npos) << answer;
  EXPECT_NE(second, std::string::npos) << answer;
  EXPECT_NE(third, std::string::npos) << answer;
  EXPECT_TRUE(socket.closedWithin(1s));
}

TEST_F(HttpHostileTest, GarbageOnManyConnectionsLeavesTheServerAnsweringAndHoldingNothing) {
  ServerOptions options;
  options.request_timeout = 500ms;
  start(options);
  std::mt19937 random(11);
  const std::string valid = "GET /primary/pg1 HTTP/1.1\r\nHost: a\r\n\r\n";
  for (int round = 0; round < 300; ++round) {
    RawSocket socket(port(), "127.0.0." + std::to_string(2 + round % 8));
    std::string text = valid;
    if (round % 3 == 0) {
      text.resize(random() % 64);
      for (auto& c : text) c = static_cast<char>(random() % 256);
    } else {
      for (int edits = 1 + static_cast<int>(random() % 5); edits > 0; --edits)
        text[random() % text.size()] = static_cast<char>(random() % 256);
      text.resize(random() % (text.size() + 1));  // sometimes cut short, then closed
    }
    socket.send(text);
  }
  EXPECT_EQ(check("/primary/pg1"), 200);
  // Everything above is closed by now (the client side) or cut at the 500 ms deadline.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(server_->openConnections(), 0u);
}

}  // namespace
}  // namespace pgfailover::http
