// End to end: the real pgfailover binary watching a real PostgreSQL 15 primary and streaming
// replica on loopback. A crash is failed over, with /status, /primary, /replica and /metrics
// telling the truth before and after; a short hang and a cut monitoring link are not.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Writes a pgfailover config for the cluster; `primary_port_override` lets pgfailover reach the
// first node through a forwarder while the replica streams directly.
std::string writeConfig(const PgCluster& cluster, int http_port, int primary_port_override = 0,
                        const std::string& extra_failover = "") {
  const std::string path = cluster.dir() + "/pgfailover.json";
  json nodes = json::array();
  for (std::size_t i = 0; i < cluster.nodes().size(); ++i) {
    const auto& node = cluster.node(i);
    nodes.push_back({{"name", node.name},
                     {"host", "127.0.0.1"},
                     {"port", i == 0 && primary_port_override ? primary_port_override : node.port},
                     {"user", cluster.user()},
                     {"password_file", cluster.passwordFile()}});
  }
  json failover = extra_failover.empty() ? json::object() : json::parse(extra_failover);
  json config = {{"cluster_name", "it"},
                 {"nodes", nodes},
                 {"failover", failover},
                 {"http", {{"listen_address", "127.0.0.1"}, {"port", http_port}}}};
  std::ofstream(path) << config.dump(2);
  return path;
}

json status(int port) {
  auto response = httpGet(port, "/status");
  if (response.status != 200) return json();
  return json::parse(response.body, nullptr, false);
}

std::string stateOf(int port) {
  auto s = status(port);
  return s.is_object() ? s.value("state", "") : "";
}

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    http_port_ = freePort();
  }

  // Starts pgfailover and waits until it reports a healthy cluster.
  void startDaemon(const std::string& config) {
    daemon_ = std::make_unique<DaemonProcess>(config, cluster_.dir() + "/pgfailover.log");
    ASSERT_TRUE(daemon_->start());
    ASSERT_TRUE(waitUntil([&] { return stateOf(http_port_) == "healthy"; }, 30s))
        << "never healthy; last status: " << status(http_port_).dump() << "\n"
        << daemon_->logTail();
  }

  PgCluster cluster_{1};
  int http_port_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(FailoverTest, CrashedPrimaryIsFailedOverAndEveryEndpointTellsTheTruth) {
  startDaemon(writeConfig(cluster_, http_port_));
  const std::string primary = cluster_.node(0).name;
  const std::string replica = cluster_.node(1).name;

  // Before: roles, health checks and metrics agree.
  auto before = status(http_port_);
  EXPECT_EQ(before["primary"], primary);
  EXPECT_EQ(before["nodes"][0]["role"], "primary");
  EXPECT_EQ(before["nodes"][1]["role"], "replica");
  EXPECT_EQ(before["nodes"][1]["wal_receiver"]["status"], "streaming");
  EXPECT_EQ(httpGet(http_port_, "/primary/" + primary).status, 200);
  EXPECT_EQ(httpGet(http_port_, "/primary/" + replica).status, 503);
  EXPECT_EQ(httpGet(http_port_, "/replica/" + replica).status, 200);
  EXPECT_EQ(httpGet(http_port_, "/replica/" + primary).status, 503);
  EXPECT_EQ(httpGet(http_port_, "/readyz").status, 200);
  auto metrics = httpGet(http_port_, "/metrics").body;
  EXPECT_NE(metrics.find("pgfailover_cluster_state{state=\"healthy\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("pgfailover_node_role{node=\"" + primary + "\",role=\"primary\"} 1"),
            std::string::npos)
      << metrics;

  // A row written before the crash must be on the new primary.
  bool ok = false;
  cluster_.sql(0, "CREATE TABLE before_crash(id int); INSERT INTO before_crash VALUES (42)", &ok);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(
      waitUntil([&] { return cluster_.sql(1, "SELECT count(*) FROM before_crash") == "1"; }, 10s));

  cluster_.kill9(0);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto s = status(http_port_);
        return s.is_object() && s["primary"] == replica && s["nodes"][1]["role"] == "primary";
      },
      30s))
      << status(http_port_).dump(2) << "\n"
      << daemon_->logTail();

  EXPECT_EQ(cluster_.sql(1, "SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(cluster_.sql(1, "SELECT id FROM before_crash"), "42");
  cluster_.sql(1, "INSERT INTO before_crash VALUES (43)", &ok);
  EXPECT_TRUE(ok) << "the new primary accepts writes";

  auto after = status(http_port_);
  EXPECT_EQ(after["nodes"][1]["timeline"], 2);
  EXPECT_FALSE(after["nodes"][0]["reachable"].get<bool>());
  ASSERT_TRUE(after["last_failover"].is_object()) << after.dump(2);
  EXPECT_EQ(after["last_failover"]["to"], replica);
  EXPECT_EQ(after["last_failover"]["from"], primary);
  EXPECT_EQ(httpGet(http_port_, "/primary/" + replica).status, 200);
  EXPECT_EQ(httpGet(http_port_, "/primary/" + primary).status, 503);
  EXPECT_EQ(httpGet(http_port_, "/replica/" + replica).status, 503);
  metrics = httpGet(http_port_, "/metrics").body;
  EXPECT_NE(metrics.find("pgfailover_failovers_total{result=\"succeeded\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("pgfailover_node_role{node=\"" + replica + "\",role=\"primary\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("pgfailover_node_up{node=\"" + primary + "\"} 0"), std::string::npos);

  // The old primary comes back writable (no lifecycle executor here): it is never reported as
  // primary; it is fenced read-only and the split-brain gauge saw it.
  cluster_.start(0);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto s = status(http_port_);
        return s.is_object() && s["nodes"][0]["reachable"] == true &&
               s["nodes"][0]["read_only"] == true;
      },
      30s))
      << status(http_port_).dump(2) << "\n"
      << daemon_->logTail();
  after = status(http_port_);
  EXPECT_EQ(after["primary"], replica);
  EXPECT_NE(after["nodes"][0]["role"], "primary");
  EXPECT_EQ(httpGet(http_port_, "/primary/" + primary).status, 503);
  cluster_.sql(0, "INSERT INTO before_crash VALUES (44)", &ok);
  EXPECT_FALSE(ok) << "the fenced old primary must refuse writes";
  metrics = httpGet(http_port_, "/metrics").body;
  EXPECT_NE(metrics.find("pgfailover_failovers_total{result=\"succeeded\"} 1"), std::string::npos)
      << "exactly one promotion";
}

TEST_F(FailoverTest, PrimaryHungShorterThanTheTimeoutIsNotFailedOver) {
  startDaemon(writeConfig(cluster_, http_port_));
  cluster_.stop(0);  // SIGSTOP postmaster and children
  // Hung for 5 s, well below the 10 s unresponsive timeout.
  bool saw_failing = waitUntil([&] { return stateOf(http_port_) == "primary_failing"; }, 5s);
  std::this_thread::sleep_for(3s);  // the hang itself; what is asserted is the outcome after it
  cluster_.resume(0);
  EXPECT_TRUE(saw_failing) << "the hang was noticed";
  ASSERT_TRUE(waitUntil([&] { return stateOf(http_port_) == "healthy"; }, 20s))
      << status(http_port_).dump(2);
  EXPECT_EQ(status(http_port_)["primary"], cluster_.node(0).name);
  EXPECT_EQ(cluster_.sql(1, "SELECT pg_is_in_recovery()"), "t");
  auto metrics = httpGet(http_port_, "/metrics").body;
  EXPECT_NE(metrics.find("pgfailover_failovers_total{result=\"succeeded\"} 0"), std::string::npos);
}

TEST_F(FailoverTest, MonitorCutOffFromPrimaryWhileReplicaStreamsIsVetoed) {
  TcpForwarder forwarder(cluster_.node(0).port);
  startDaemon(writeConfig(cluster_, http_port_, forwarder.listenPort()));
  forwarder.pause();  // pgfailover hears nothing from the primary; the replica still streams
  ASSERT_TRUE(waitUntil([&] { return stateOf(http_port_) == "failover_vetoed"; }, 30s))
      << status(http_port_).dump(2) << "\n"
      << daemon_->logTail();
  auto s = status(http_port_);
  EXPECT_EQ(s["veto"], "replica_still_streaming");
  EXPECT_NE(s["reason"].get<std::string>().find("still hears the primary"), std::string::npos);
  // Several more ticks: still no promotion.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(cluster_.sql(1, "SELECT pg_is_in_recovery()"), "t");
  auto metrics = httpGet(http_port_, "/metrics").body;
  EXPECT_NE(metrics.find("pgfailover_vetoed_failovers_total{reason=\"replica_still_streaming\"} 1"),
            std::string::npos)
      << metrics;
  forwarder.resume();
  ASSERT_TRUE(waitUntil([&] { return stateOf(http_port_) == "healthy"; }, 30s))
      << status(http_port_).dump(2);
  EXPECT_EQ(status(http_port_)["primary"], cluster_.node(0).name);
}

TEST_F(FailoverTest, BadConfigurationExitsWithStatusTwoNamingTheKey) {
  const std::string path = cluster_.dir() + "/bad.json";
  std::ofstream(path) << R"({"nodes": [{"name": "a", "host": "127.0.0.1", "port": 0}],
                             "probe": {"interval_ms": -1}})";
  DaemonProcess bad(DaemonOptions{"", {"run", "--config", path}, cluster_.dir() + "/bad.log", {}});
  ASSERT_TRUE(bad.start());
  auto code = bad.waitForExit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  const auto log = bad.log();
  EXPECT_NE(log.find("nodes[0].port"), std::string::npos) << log;
  EXPECT_NE(log.find("probe.interval_ms"), std::string::npos) << log;
  EXPECT_NE(log.find("at least two nodes"), std::string::npos) << log;
}

TEST_F(FailoverTest, SigtermStopsTheDaemonPromptly) {
  startDaemon(writeConfig(cluster_, http_port_));
  const auto started = std::chrono::steady_clock::now();
  auto code = daemon_->stop(5s);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << daemon_->logTail();
  // Generous bound: the contract is "within a second"; a loaded CI machine gets slack.
  EXPECT_LT(took, 5s);
  EXPECT_NE(daemon_->log().find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::testing
