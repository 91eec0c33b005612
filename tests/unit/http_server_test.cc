// The real listener on 127.0.0.1, port 0, spoken to with a real httplib client: methods, content
// types, bind errors, and concurrent requests while the loop republishes the snapshot.
#include "http/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "metrics/metrics.h"

namespace pgfailover::http {
namespace {

using core::ClusterState;
using core::NodeRole;
using core::NodeSnapshot;
using core::Snapshot;
using std::chrono::milliseconds;

NodeSnapshot node(std::string name, int port, NodeRole role, bool in_recovery) {
  NodeSnapshot n;
  n.name = std::move(name);
  n.host = "127.0.0.1";
  n.port = port;
  n.role = role;
  n.observation.probed = true;
  n.observation.reachable = true;
  n.observation.in_recovery = in_recovery;
  n.observation.timeline = 1;
  if (in_recovery) {
    n.observation.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 1, 0.1, {}};
    n.lag_bytes = 0;
  }
  return n;
}

// pg1 primary and pg2 replica, or the other way round after a failover.
std::shared_ptr<const Snapshot> snapshotWithPrimary(std::size_t primary, std::uint64_t tick) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->ready = true;
  snapshot->tick = tick;
  snapshot->tick_at = std::chrono::steady_clock::now();
  snapshot->tick_at_wall = std::chrono::system_clock::now();
  snapshot->cluster_name = "main";
  snapshot->state = ClusterState::kHealthy;
  snapshot->primary = primary;
  snapshot->nodes = {
      node("pg1", 5432, primary == 0 ? NodeRole::kPrimary : NodeRole::kReplica, primary != 0),
      node("pg2", 5433, primary == 1 ? NodeRole::kPrimary : NodeRole::kReplica, primary != 1)};
  for (auto& n : snapshot->nodes) n.observation.probed_at = snapshot->tick_at;
  return snapshot;
}

ServerOptions loopbackOptions() {
  ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  return options;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.publish(snapshotWithPrimary(0, 1));
    metrics_.observeTick(*store_.current());
    server_ = std::make_unique<HttpServer>(loopbackOptions(), store_, &metrics_);
    Status status = server_->start();
    ASSERT_TRUE(status.isOk()) << status.message();
    ASSERT_GT(server_->boundPort(), 0);
  }

  httplib::Client client() const {
    httplib::Client client("127.0.0.1", server_->boundPort());
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    return client;
  }

  core::SnapshotStore store_;
  metrics::Metrics metrics_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, PrimaryNodeAnswersGetHeadAndOptions) {
  auto http = client();
  auto get = http.Get("/primary/pg1");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(get->get_header_value("Cache-Control"), "no-store");
  EXPECT_EQ(nlohmann::json::parse(get->body)["node"], "pg1");

  auto head = http.Head("/primary/pg1");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());

  auto options = http.Options("/primary/pg1");
  ASSERT_TRUE(options);
  EXPECT_EQ(options->status, 200);

  auto replica = http.Options("/primary/pg2");
  ASSERT_TRUE(replica);
  EXPECT_EQ(replica->status, 503);
  auto replica_head = http.Head("/primary/pg2");
  ASSERT_TRUE(replica_head);
  EXPECT_EQ(replica_head->status, 503);
}

// The nice value of each thread of this process, from /proc (field 19 of .../stat).
std::vector<long> threadNiceValues() {
  std::vector<long> values;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    // After "pid (comm) ": state is field 3; nice is field 19.
    for (int i = 3; i <= 19 && fields >> field; ++i)
      if (i == 19) values.push_back(std::stol(field));
  }
  return values;
}

TEST_F(HttpServerTest, WorkersServeAtALowerPriorityThanTheRestOfTheProcess) {
  auto http = client();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(http.Get("/health"));
  const auto values = threadNiceValues();
  const auto lowered = std::count(values.begin(), values.end(), long{kWorkerNice});
  EXPECT_GE(lowered, 1) << "no thread at nice " << kWorkerNice;
  EXPECT_LT(static_cast<std::size_t>(lowered), values.size()) << "every thread was lowered";
  errno = 0;
  EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid())), 0) << "the test thread";
}

TEST_F(HttpServerTest, QueryStringReachesTheRouter) {
  auto http = client();
  auto within = http.Get("/replica/pg2?lag=16MB");
  ASSERT_TRUE(within);
  EXPECT_EQ(within->status, 200);
  auto bad = http.Get("/replica/pg2?lag=lots");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

TEST_F(HttpServerTest, PostToStatusIs405WithAllow) {
  auto http = client();
  auto response = http.Post("/status", "{}", "application/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 405);
  EXPECT_EQ(response->get_header_value("Allow"), "GET, HEAD, OPTIONS");
  auto unknown = http.Get("/does-not-exist");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(unknown->get_header_value("Content-Type"), "application/json");
}

TEST_F(HttpServerTest, MetricsAreServedInTheTextFormat) {
  auto http = client();
  auto response = http.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* family : {"pgfailover_build_info", "pgfailover_node_up", "pgfailover_node_role",
                             "pgfailover_cluster_state", "pgfailover_failovers_total",
                             "pgfailover_probe_duration_seconds"})
    EXPECT_NE(response->body.find(family), std::string::npos) << family;
}

TEST_F(HttpServerTest, StatusIsTheCurrentSnapshot) {
  auto http = client();
  auto before = http.Get("/status");
  ASSERT_TRUE(before);
  EXPECT_EQ(nlohmann::json::parse(before->body)["primary"], "pg1");
  store_.publish(snapshotWithPrimary(1, 2));
  auto after = http.Get("/status");
  ASSERT_TRUE(after);
  EXPECT_EQ(nlohmann::json::parse(after->body)["primary"], "pg2");
  EXPECT_EQ(nlohmann::json::parse(after->body)["tick"], 2);
}

TEST_F(HttpServerTest, OversizedBodyIsRefused) {
  auto http = client();
  auto response = http.Post("/status", std::string(256 * 1024, 'x'), "text/plain");
  // httplib answers 413 without reading the body; the client may see the reset of the unread
  // body before the answer, so either is a refusal. What matters is the server lives on.
  if (response) {
    EXPECT_EQ(response->status, 413);
  }
  auto after = client().Get("/healthz");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(HttpServerTest, ConcurrentChecksWhileTheSnapshotIsRepublishedAreConsistent) {
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    // Fail over back and forth as fast as possible.
    for (std::uint64_t tick = 2; !stop; ++tick) {
      store_.publish(snapshotWithPrimary(tick % 2, tick));
      std::this_thread::yield();
    }
  });
  std::atomic<int> failures{0};
  std::atomic<int> answers{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      auto http = client();
      for (int i = 0; i < 50; ++i) {
        auto response = http.Get("/status");
        if (!response || response->status != 200) {
          ++failures;
          continue;
        }
        // One response is built from one snapshot: the primary named at the top is the node
        // whose role says primary.
        auto status = nlohmann::json::parse(response->body);
        const std::string primary = status["primary"];
        for (const auto& n : status["nodes"]) {
          const bool is_primary = n["name"] == primary;
          if ((n["role"] == "primary") != is_primary) ++failures;
          if (n["in_recovery"] == is_primary) ++failures;
        }
        auto check = http.Get("/primary/pg1");
        if (!check || (check->status != 200 && check->status != 503)) ++failures;
        ++answers;
      }
    });
  }
  for (auto& t : clients) t.join();
  stop = true;
  loop.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(answers, 200);
}

TEST_F(HttpServerTest, StopReturnsPromptlyAndIsIdempotent) {
  auto http = client();
  ASSERT_TRUE(http.Get("/healthz"));
  const auto started = std::chrono::steady_clock::now();
  server_->stop();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  EXPECT_FALSE(server_->running());
  EXPECT_FALSE(client().Get("/healthz"));
}

TEST(HttpServer, BindingABusyPortIsAClearError) {
  core::SnapshotStore store;
  HttpServer first(loopbackOptions(), store, nullptr);
  ASSERT_TRUE(first.start().isOk());
  ServerOptions same = loopbackOptions();
  same.port = first.boundPort();
  HttpServer second(same, store, nullptr);
  Status status = second.start();
  EXPECT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(first.boundPort())),
            std::string::npos)
      << status.message();
  // The first server still answers alone.
  httplib::Client http("127.0.0.1", first.boundPort());
  auto response = http.Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 503);  // nothing published yet
}

TEST(HttpServer, AnUnresolvableAddressIsAClearError) {
  core::SnapshotStore store;
  ServerOptions options = loopbackOptions();
  options.address = "256.0.0.1";
  HttpServer server(options, store, nullptr);
  Status status = server.start();
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("256.0.0.1"), std::string::npos);
}

TEST(HttpServer, StartTwiceIsRefused) {
  core::SnapshotStore store;
  HttpServer server(loopbackOptions(), store, nullptr);
  ASSERT_TRUE(server.start().isOk());
  EXPECT_EQ(server.start().code(), StatusCode::kFailedPrecondition);
}

TEST(HttpServer, HealthzUsesTheInjectedClock) {
  const SteadyTime created = std::chrono::steady_clock::now();
  core::SnapshotStore store(created);
  ServerOptions options = loopbackOptions();
  options.max_tick_age = milliseconds(5000);
  std::atomic<std::int64_t> offset_ms{0};
  options.clock = [&] { return created + milliseconds(offset_ms.load()); };
  HttpServer server(options, store, nullptr);
  ASSERT_TRUE(server.start().isOk());
  httplib::Client http("127.0.0.1", server.boundPort());
  // No tick yet: the loop counts as fresh from the store's creation until the limit passes.
  EXPECT_EQ(http.Get("/healthz")->status, 200);
  offset_ms = 6000;
  EXPECT_EQ(http.Get("/healthz")->status, 503);
}

TEST(HttpServer, OptionsFromConfigScaleTheStalenessLimitWithTheTick) {
  config::Config config;
  config.http.listen_address = "127.0.0.1";
  config.http.port = 9000;
  ServerOptions defaults = serverOptionsFromConfig(config);
  EXPECT_EQ(defaults.address, "127.0.0.1");
  EXPECT_EQ(defaults.port, 9000);
  EXPECT_EQ(defaults.admin_token, nullptr);
  EXPECT_EQ(defaults.max_tick_age, kDefaultMaxTickAge);
  config.probe.interval = milliseconds(5000);
  EXPECT_EQ(serverOptionsFromConfig(config).max_tick_age, milliseconds(3 * 7000));
}

}  // namespace
}  // namespace pgfailover::http
