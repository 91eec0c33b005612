// `pgfailover lease-guard`'s command line: the node folder's settings, the flags the node
// scripts took, and a clear error (exit 2) for every bad value.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "guard/lease_guard.h"

namespace pgfailover::guard {
namespace {

class LeaseGuardOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lease-guard-options.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void writeConf(const std::string& text) { std::ofstream(dir_ + "/pgfailover-node.conf") << text; }

  bool parse(std::vector<std::string> args, GuardOptions& options, std::string& error) {
    bool help = false;
    return parseGuardOptions(args, options, help, error);
  }

  std::string dir_;
};

TEST_F(LeaseGuardOptionsTest, NodeFolderGivesPortNameAndSocket) {
  writeConf(
      "# data_directory: x\ncluster_name = 'pg7'\nport = 6543\n"
      "unix_socket_directories = '" +
      dir_ + "/sock'\n");
  GuardOptions options;
  std::string error;
  ASSERT_TRUE(parse({"--dir", dir_ + "/"}, options, error)) << error;
  EXPECT_EQ(options.name, "pg7");
  EXPECT_EQ(options.port, 6543);
  EXPECT_EQ(options.host, dir_ + "/sock");
  EXPECT_EQ(options.node_dir, dir_);
  EXPECT_EQ(options.interval.count(), 500);
  EXPECT_EQ(options.heartbeat_table, "pgfailover.heartbeat");
  EXPECT_EQ(options.dbname, "postgres");
  EXPECT_FALSE(options.once);
}

TEST_F(LeaseGuardOptionsTest, FlagsWinOverTheNodeFolder) {
  writeConf("cluster_name = 'pg7'\nport = 6543\n");
  GuardOptions options;
  std::string error;
  ASSERT_TRUE(parse(
      {"--data-dir", dir_ + "/data", "--name", "pg1", "--port=7000", "--run-dir", "/run/x",
       "--check-interval", "0.2", "--once", "--heartbeat-table", "Ops.Beat", "--dbname", "app"},
      options, error))
      << error;
  EXPECT_EQ(options.node_dir, dir_);
  EXPECT_EQ(options.name, "pg1");
  EXPECT_EQ(options.port, 7000);
  EXPECT_EQ(options.host, "/run/x");
  EXPECT_EQ(options.interval.count(), 200);
  EXPECT_TRUE(options.once);
  EXPECT_EQ(options.dbname, "app");
}

TEST_F(LeaseGuardOptionsTest, WithoutAConfTheFolderNameAndItsRunDirectory) {
  GuardOptions options;
  std::string error;
  ASSERT_TRUE(parse({"--dir", dir_}, options, error)) << error;
  EXPECT_EQ(options.name, std::filesystem::path(dir_).filename().string());
  EXPECT_EQ(options.host, dir_ + "/run");
  EXPECT_EQ(options.port, 5432);
}

TEST_F(LeaseGuardOptionsTest, BadValuesAreNamed) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "no server given"},
      {{"--host", "/tmp"}, "--name is required"},
      {{"--dir", dir_, "--name", "a b"}, "--name may hold"},
      {{"--dir", dir_, "--port", "0"}, "--port must be"},
      {{"--dir", dir_, "--port", "x"}, "--port must be"},
      {{"--dir", dir_, "--check-interval", "0"}, "--check-interval must be"},
      {{"--dir", dir_, "--check-interval", "-1"}, "--check-interval must be"},
      {{"--dir", dir_, "--check-interval", "1e3"}, "--check-interval must be"},
      {{"--dir", dir_, "--heartbeat-table", "heartbeat"}, "--heartbeat-table must be"},
      {{"--dir", dir_, "--heartbeat-table", "a.b'; DROP"}, "--heartbeat-table must be"},
      {{"--dir", dir_, "--heartbeat-owner", "x'y"}, "not a plain role"},
      {{"--dir", dir_, "--log-format", "xml"}, "--log-format"},
      {{"--dir", dir_, "--bogus"}, "unknown option '--bogus'"},
      {{"--dir"}, "needs a value"},
      {{"--dir", dir_, "--name", ""}, "non-empty"},
      {{"--dir", dir_, "--once=1"}, "--once takes no value"},
  };
  for (const auto& [args, needle] : cases) {
    GuardOptions options;
    std::string error;
    EXPECT_FALSE(parse(args, options, error)) << needle;
    EXPECT_NE(error.find(needle), std::string::npos) << error;
  }
}

TEST_F(LeaseGuardOptionsTest, MainExitsTwoOnBadUsageAndZeroOnHelp) {
  std::ostringstream out, err;
  EXPECT_EQ(leaseGuardMain({"--check-interval", "x", "--dir", dir_}, out, err), 2);
  EXPECT_NE(err.str().find("--check-interval"), std::string::npos) << err.str();
  std::ostringstream help_out, help_err;
  EXPECT_EQ(leaseGuardMain({"--help"}, help_out, help_err), 0);
  EXPECT_NE(help_out.str().find("--heartbeat-owner"), std::string::npos);
  EXPECT_NE(help_out.str().find("--once"), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::guard
