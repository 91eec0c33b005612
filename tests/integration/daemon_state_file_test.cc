// The real daemon and its state file at start (runtime/tick_loop.h, restoreState): a corrupt file
// stops the start with exit status 1 and an error naming the file (starting without it could forget
// that a node must be fenced); once it is moved aside, as the error says, the daemon starts from
// what the cluster shows and writes the file anew.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DaemonStateFileTest, CorruptStateFileStopsTheStartNamingItAndAMovedAsideOneStartsAfresh) {
  PgCluster cluster;
  ASSERT_TRUE(cluster.ok());
  const int http_port = freePort();
  const std::string state_path = cluster.dir() + "/state.json";
  auto config = pgfailoverConfig(cluster, http_port);
  config["state_file"] = state_path;
  const std::string config_path = writePgfailoverConfig(cluster, config);

  // Cut off mid-write by hand (the daemon itself writes atomically): not JSON any more.
  std::ofstream(state_path) << R"({"primary": "pg1", "primary_timeline": )";
  {
    DaemonProcess daemon(config_path, cluster.dir() + "/corrupt.log");
    ASSERT_TRUE(daemon.start());
    auto code = daemon.waitForExit(20s);
    ASSERT_TRUE(code.has_value()) << "still running with a corrupt state file";
    EXPECT_EQ(*code, 1);
    const std::string log = daemon.log();
    EXPECT_NE(log.find("state_failed"), std::string::npos) << log;
    EXPECT_NE(log.find(state_path), std::string::npos) << log;
  }

  fs::rename(state_path, state_path + ".corrupt");
  DaemonProcess daemon(config_path, cluster.dir() + "/afresh.log");
  ASSERT_TRUE(daemon.start());
  ASSERT_TRUE(waitUntil(
      [&] {
        auto status = httpGet(http_port, "/status");
        return status.ok() &&
               nlohmann::json::parse(status.body, nullptr, false).value("state", "") == "healthy";
      },
      30s))
      << daemon.logTail();
  ASSERT_TRUE(waitUntil([&] { return fs::exists(state_path); }, 10s)) << daemon.logTail();
  const auto state = nlohmann::json::parse(readFile(state_path), nullptr, false);
  ASSERT_FALSE(state.is_discarded()) << readFile(state_path);
  EXPECT_EQ(state.value("primary", ""), cluster.node(0).name) << state.dump();
  auto code = daemon.stop(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << daemon.logTail();
}

}  // namespace
}  // namespace pgfailover::testing
