// `pgfailover status`: the table rendered from a sample /status document, the command against a
// real server on 127.0.0.1, and the errors an operator sees when the API is not there.
#include "cli/status_command.h"

#include <gtest/gtest.h>

#include <sstream>

#include "http/http_server.h"

namespace pgfailover::cli {
namespace {

using Json = nlohmann::json;

const char* kSampleStatus = R"json({
  "cluster_name": "main",
  "version": "0.1.0",
  "ready": true,
  "state": "primary_failing",
  "reason": "primary pg1 unreachable for 4.2 s (timeout 10 s)",
  "primary": "pg1",
  "timeout": {"kind": "unresponsive", "total_ms": 10000, "elapsed_ms": 4200, "remaining_ms": 5800},
  "veto": null,
  "split_brain": false,
  "last_failover": {"started_at": "2024-05-01T12:49:50.000Z",
                    "completed_at": "2024-05-01T12:49:53.400Z",
                    "from": "pg0", "to": "pg1", "duration_ms": 3400, "reason": "pg0 refused"},
  "tick": 1234,
  "tick_at": "2024-05-01T12:51:30.000Z",
  "nodes": [
    {"name": "pg1", "host": "10.0.0.1", "port": 5432, "role": "primary", "reachable": false,
     "failure": "timeout", "error": "timeout expired after 1000 ms", "in_recovery": null,
     "read_only": null, "timeline": null, "lag_bytes": null, "lag_seconds": null,
     "wal_receiver": null, "last_probe": {"at": "2024-05-01T12:51:29.000Z", "duration_ms": 1000}},
    {"name": "pg2", "host": "10.0.0.2", "port": 5432, "role": "replica", "reachable": true,
     "failure": "none", "error": null, "in_recovery": true, "read_only": false, "timeline": 3,
     "lag_bytes": 3145728, "lag_seconds": 1.25,
     "wal_receiver": {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432},
     "last_probe": {"at": "2024-05-01T12:51:29.900Z", "duration_ms": 2}}
  ]
})json";

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(StatusCommand, TableShowsTheClusterLineTimeoutAndOneRowPerNode) {
  const std::string table = renderStatusTable(Json::parse(kSampleStatus));
  const auto rows = lines(table);
  ASSERT_GE(rows.size(), 9u) << table;
  EXPECT_EQ(rows[0], "Cluster: main (state: primary_failing, primary: pg1, tick 1234)");
  EXPECT_EQ(rows[1], "Reason: primary pg1 unreachable for 4.2 s (timeout 10 s)");
  EXPECT_EQ(rows[2], "Timeout: unresponsive, 4.2 s of 10.0 s elapsed, 5.8 s left");
  EXPECT_EQ(rows[3], "Last failover: pg0 -> pg1 at 2024-05-01T12:49:53.400Z (3.4 s)");
  EXPECT_EQ(table.substr(table.find("+--")),
            "+--------+---------------+---------+-----------------------+----+----------+---------+"
            "-------------------------------+\n"
            "| Member | Host          | Role    | State                 | TL | Lag (MB) | Lag (s) |"
            " Error                         |\n"
            "+--------+---------------+---------+-----------------------+----+----------+---------+"
            "-------------------------------+\n"
            "| pg1    | 10.0.0.1:5432 | primary | unreachable (timeout) |    |          |         |"
            " timeout expired after 1000 ms |\n"
            "| pg2    | 10.0.0.2:5432 | replica | streaming             |  3 |      3.0 |     1.2 |"
            "                               |\n"
            "+--------+---------------+---------+-----------------------+----+----------+---------+"
            "-------------------------------+\n");
}

TEST(StatusCommand, TableFlagsSplitBrainAndVeto) {
  Json status = Json::parse(kSampleStatus);
  status["split_brain"] = true;
  status["veto"] = "replica_lagging";
  status["timeout"] = nullptr;
  const std::string table = renderStatusTable(status);
  EXPECT_NE(table.find("SPLIT BRAIN"), std::string::npos);
  EXPECT_NE(table.find("Failover vetoed: replica_lagging"), std::string::npos);
  EXPECT_EQ(table.find("Timeout:"), std::string::npos);
}

TEST(StatusCommand, ARunningRejoinIsTheNodesState) {
  Json status = Json::parse(kSampleStatus);
  status["nodes"][0]["rejoin"] = {{"running", true}, {"step", "pg_rewind"}, {"attempts", 0}};
  status["nodes"][1]["rejoin"] = {{"running", false}, {"step", nullptr}, {"attempts", 1}};
  const std::string table = renderStatusTable(status);
  EXPECT_NE(table.find("| rejoining (pg_rewind) "), std::string::npos) << table;
  EXPECT_NE(table.find("| streaming "), std::string::npos) << table;
}

TEST(StatusCommand, WithEtcdTheTableNamesTheInstancesAndWhichActs) {
  Json status = Json::parse(kSampleStatus);
  status["instance"] = "pgf-a";
  status["coordination"] = {{"enabled", true},        {"acting", "pgf-b"},
                            {"acting_here", false},   {"term", 41},
                            {"etcd_reachable", true}, {"instances", {"pgf-a", "pgf-b", "pgf-c"}},
                            {"acting_api_url", "x"},  {"since_last_renewal_ms", nullptr}};
  auto rows = lines(renderStatusTable(status));
  ASSERT_GE(rows.size(), 2u);
  EXPECT_EQ(rows[1], "Instances: pgf-a (this one), pgf-b (acting, term 41), pgf-c");

  status["instance"] = "pgf-b";
  status["coordination"]["acting_here"] = true;
  rows = lines(renderStatusTable(status));
  EXPECT_EQ(rows[1], "Instances: pgf-a, pgf-b (this one, acting, term 41), pgf-c");

  // Nobody acts and this instance cannot reach etcd; it is not registered there either.
  status["instance"] = "pgf-d";
  status["coordination"]["acting"] = nullptr;
  status["coordination"]["term"] = nullptr;
  status["coordination"]["etcd_reachable"] = false;
  rows = lines(renderStatusTable(status));
  EXPECT_EQ(rows[1],
            "Instances: pgf-a, pgf-b, pgf-c, pgf-d (this one); no instance acts; etcd unreachable "
            "from this one");

  // Without etcd: no such line.
  status["coordination"] = {{"enabled", false}, {"acting_here", true}};
  rows = lines(renderStatusTable(status));
  EXPECT_EQ(rows[1].rfind("Reason: ", 0), 0u) << rows[1];
}

TEST(StatusCommand, TableToleratesMissingFields) {
  const std::string table = renderStatusTable(Json::parse(R"({"nodes": [{"name": "pg1"}]})"));
  EXPECT_NE(table.find("| pg1 "), std::string::npos);
  EXPECT_NE(table.find("primary: none"), std::string::npos);
  EXPECT_NO_THROW(renderStatusTable(Json::parse("[1, 2]")));
}

TEST(StatusCommand, LongErrorsAreShortenedAndKeptOnOneLine) {
  Json status = Json::parse(kSampleStatus);
  status["nodes"][0]["error"] = std::string(100, 'e') + "\nsecond line";
  const std::string table = renderStatusTable(status);
  EXPECT_NE(table.find(std::string(57, 'e') + "..."), std::string::npos);
  EXPECT_EQ(table.find("second line"), std::string::npos);
}

class StatusCommandServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto snapshot = std::make_shared<core::Snapshot>();
    snapshot->ready = true;
    snapshot->tick = 7;
    snapshot->tick_at = std::chrono::steady_clock::now();
    snapshot->cluster_name = "lab";
    snapshot->state = core::ClusterState::kHealthy;
    snapshot->primary = 0;
    core::NodeSnapshot primary;
    primary.name = "pg1";
    primary.host = "127.0.0.1";
    primary.port = 5432;
    primary.role = core::NodeRole::kPrimary;
    primary.observation.probed = true;
    primary.observation.reachable = true;
    primary.observation.timeline = 1;
    snapshot->nodes = {primary};
    store_.publish(snapshot);
    http::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<http::HttpServer>(options, store_, nullptr);
    ASSERT_TRUE(server_->start().isOk());
    url_ = "http://127.0.0.1:" + std::to_string(server_->boundPort());
  }

  core::SnapshotStore store_;
  std::unique_ptr<http::HttpServer> server_;
  std::string url_;
};

TEST_F(StatusCommandServer, PrintsTheTableFromALiveServer) {
  std::ostringstream out, err;
  EXPECT_EQ(runStatusCommand(url_, false, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("Cluster: lab (state: healthy, primary: pg1, tick 7)"),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("| pg1    | 127.0.0.1:5432 | primary | running |"), std::string::npos)
      << out.str();
  EXPECT_TRUE(err.str().empty());
}

TEST_F(StatusCommandServer, ALiveServerOfSeveralInstancesShowsWhichActs) {
  auto snapshot = std::make_shared<core::Snapshot>(*store_.current());
  snapshot->coordination.enabled = true;
  snapshot->coordination.instance = "pgf-c";
  snapshot->coordination.acting = false;
  snapshot->coordination.acting_instance = "pgf-a";
  snapshot->coordination.acting_api_url = "https://pgf-a.example:8008";
  snapshot->coordination.term = 1207;
  snapshot->coordination.etcd_reachable = true;
  snapshot->coordination.instances = {"pgf-a", "pgf-c"};
  store_.publish(snapshot);
  std::ostringstream out, err;
  EXPECT_EQ(runStatusCommand(url_, false, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("\nInstances: pgf-a (acting, term 1207), pgf-c (this one)\n"),
            std::string::npos)
      << out.str();
}

TEST_F(StatusCommandServer, JsonPrintsTheDocument) {
  std::ostringstream out, err;
  EXPECT_EQ(statusCommandMain({"--url", url_ + "/", "--json"}, out, err), 0) << err.str();
  Json status = Json::parse(out.str());
  EXPECT_EQ(status["cluster_name"], "lab");
  EXPECT_EQ(status["nodes"][0]["name"], "pg1");
}

TEST_F(StatusCommandServer, AcceptsAUrlWithoutScheme) {
  std::ostringstream out, err;
  const std::string bare = url_.substr(std::string("http://").size());
  EXPECT_EQ(statusCommandMain({"--url=" + bare}, out, err), 0) << err.str();
}

TEST_F(StatusCommandServer, UnreachableApiIsExitOneWithTheUrl) {
  const std::string port = std::to_string(server_->boundPort());
  server_->stop();
  std::ostringstream out, err;
  EXPECT_EQ(runStatusCommand(url_, false, out, err), 1);
  EXPECT_TRUE(out.str().empty());
  EXPECT_NE(err.str().find("cannot reach http://127.0.0.1:" + port + "/status"), std::string::npos)
      << err.str();
}

TEST_F(StatusCommandServer, AnErrorStatusIsExitOne) {
  std::ostringstream out, err;
  // A path prefix the server does not know: it answers 404.
  EXPECT_EQ(runStatusCommand(url_ + "/nothing-here", false, out, err), 1);
  EXPECT_NE(err.str().find("HTTP 404"), std::string::npos) << err.str();
}

TEST(StatusCommand, UsageErrorsAreExitTwo) {
  std::ostringstream out, err;
  EXPECT_EQ(statusCommandMain({"--url"}, out, err), 2);
  EXPECT_EQ(statusCommandMain({"--verbose"}, out, err), 2);
  EXPECT_NE(err.str().find("unknown argument '--verbose'"), std::string::npos);
  std::ostringstream help;
  EXPECT_EQ(statusCommandMain({"--help"}, help, err), 0);
  EXPECT_NE(help.str().find("usage: pgfailover status"), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::cli
