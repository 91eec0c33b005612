// `pgfailover switchover`, `failover` and `history` against a real HttpServer on 127.0.0.1 whose
// submit function stands in for the loop: it records the request and republishes the snapshot
// with the history events the loop would record, so --wait sees the outcome.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>

#include "cli/admin_commands.h"
#include "cli/commands.h"
#include "http/http_server.h"
#include "support/raw_socket.h"

namespace pgfailover::cli {
namespace {

using Json = nlohmann::json;

constexpr const char* kToken = "cli-test-token";

Json event(std::int64_t at_ms, std::string kind, std::string node, std::string from, std::string to,
           std::string result, std::string reason, std::int64_t duration_ms = 0) {
  return {{"at", "2024-05-01T12:00:00.000Z"}, {"at_ms", at_ms},
          {"kind", std::move(kind)},          {"node", std::move(node)},
          {"from", std::move(from)},          {"to", std::move(to)},
          {"result", std::move(result)},      {"reason", std::move(reason)},
          {"duration_ms", duration_ms}};
}

// An earlier switchover to pg2 that succeeded: --wait must not take it for the new one's outcome.
Json oldHistory() {
  return Json::array(
      {event(1000, "switchover", "pg2", "pg1", "pg2", "succeeded", "planned switchover", 900)});
}

core::NodeSnapshot node(std::string name, bool replica) {
  core::NodeSnapshot n;
  n.name = std::move(name);
  n.host = "127.0.0.1";
  n.port = replica ? 5433 : 5432;
  n.role = replica ? core::NodeRole::kReplica : core::NodeRole::kPrimary;
  n.observation.probed = true;
  n.observation.reachable = true;
  n.observation.in_recovery = replica;
  n.observation.timeline = 1;
  if (replica) {
    n.observation.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 1, 0.1, {}};
    n.lag_bytes = 0;
  }
  return n;
}

std::shared_ptr<const core::Snapshot> snapshot(core::ClusterState state, const Json& history) {
  auto s = std::make_shared<core::Snapshot>();
  s->ready = true;
  s->tick = 1;
  s->tick_at = std::chrono::steady_clock::now();
  s->state = state;
  s->primary = 0;
  s->nodes = {node("pg1", false), node("pg2", true)};
  if (state == core::ClusterState::kPrimaryFailing) {
    s->nodes[0].observation.reachable = false;
    s->nodes[0].observation.failure = core::ProbeFailure::kRefused;
  }
  s->history_json = std::make_shared<const std::string>(history.dump(2));
  return s;
}

class AdminCommandServer : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.publish(snapshot(core::ClusterState::kHealthy, oldHistory()));
    http::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.admin_token = &token_;
    options.submit = [this](core::AdminRequest request) -> std::optional<std::uint64_t> {
      std::lock_guard lock(mutex_);
      submitted_.push_back(request);
      // What the loop would record for it, published as the next tick would.
      if (!after_submit_.empty()) {
        Json history = oldHistory();
        for (const auto& e : after_submit_) history.push_back(e);
        store_.publish(snapshot(state_after_submit_, history));
      }
      return submitted_.size();
    };
    server_ = std::make_unique<http::HttpServer>(options, store_, nullptr);
    ASSERT_TRUE(server_->start().isOk());
    url_ = "http://127.0.0.1:" + std::to_string(server_->boundPort());
    options_.environment = [](const std::string& name) -> std::optional<std::string> {
      if (name == kTokenEnvironmentVariable) return std::string(kToken);
      return std::nullopt;
    };
    options_.poll_interval = std::chrono::milliseconds(20);
  }

  void recordAfterSubmit(std::vector<Json> events,
                         core::ClusterState state = core::ClusterState::kHealthy) {
    std::lock_guard lock(mutex_);
    after_submit_ = std::move(events);
    state_after_submit_ = state;
  }

  std::vector<core::AdminRequest> submitted() {
    std::lock_guard lock(mutex_);
    return submitted_;
  }

  // Another instance, pgf-a, that does not act and says `acting_api_url` (pgf-b's) acts; its
  // own history is empty, and nothing submitted to it would be carried out.
  struct Bystander {
    core::SnapshotStore store;
    std::unique_ptr<http::HttpServer> server;
    std::vector<core::AdminRequest> submitted;
    std::string url;
  };
  std::unique_ptr<Bystander> bystander(const std::string& acting_api_url,
                                       const std::string& acting_instance = "pgf-b") {
    auto b = std::make_unique<Bystander>();
    auto s =
        std::make_shared<core::Snapshot>(*snapshot(core::ClusterState::kHealthy, Json::array()));
    s->coordination.enabled = true;
    s->coordination.instance = "pgf-a";
    s->coordination.acting = false;
    s->coordination.acting_instance = acting_instance;
    s->coordination.acting_api_url = acting_api_url;
    s->coordination.etcd_reachable = true;
    b->store.publish(s);
    http::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.admin_token = &token_;
    options.submit = [raw = b.get()](core::AdminRequest request) -> std::optional<std::uint64_t> {
      raw->submitted.push_back(request);
      return raw->submitted.size();
    };
    b->server = std::make_unique<http::HttpServer>(options, b->store, nullptr);
    EXPECT_TRUE(b->server->start().isOk());
    b->url = "http://127.0.0.1:" + std::to_string(b->server->boundPort());
    return b;
  }

  std::vector<std::string> args(std::vector<std::string> rest) const {
    rest.insert(rest.begin(), {"--url", url_});
    return rest;
  }

  Secret token_{kToken};
  core::SnapshotStore store_;
  std::unique_ptr<http::HttpServer> server_;
  std::string url_;
  AdminCommandOptions options_;
  std::mutex mutex_;
  std::vector<core::AdminRequest> submitted_;
  std::vector<Json> after_submit_;
  core::ClusterState state_after_submit_ = core::ClusterState::kHealthy;
  std::ostringstream out_, err_;
};

// Events tagged with another request's id are someone else's, whatever their kind and target.
TEST_F(AdminCommandServer, WaitFollowsOnlyEventsOfItsOwnRequest) {
  auto tagged = [](Json e, int id) {
    e["request_id"] = id;
    return e;
  };
  recordAfterSubmit({
      tagged(event(5000, "switchover", "pg2", "pg1", "pg2", "failed", "someone else's"), 99),
      tagged(event(5100, "switchover", "pg2", "pg1", "pg2", "started", "requested"), 1),
      tagged(event(7300, "switchover", "pg2", "pg1", "pg2", "succeeded", "planned", 2300), 1),
  });
  EXPECT_EQ(switchoverCommandMain(args({"--to", "pg2", "--wait", "10"}), out_, err_, options_), 0)
      << err_.str() << out_.str();
  EXPECT_EQ(out_.str().find("someone else's"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("switchover succeeded: 'pg2' is the primary"), std::string::npos)
      << out_.str();
}

TEST_F(AdminCommandServer, SwitchoverWaitsForTheSucceededEventAndExitsZero) {
  recordAfterSubmit({
      event(5000, "switchover", "pg2", "pg1", "pg2", "started", "requested by an operator"),
      event(7300, "switchover", "pg2", "pg1", "pg2", "succeeded", "planned switchover", 2300),
  });
  EXPECT_EQ(switchoverCommandMain(args({"--to", "pg2", "--wait", "10"}), out_, err_, options_), 0)
      << err_.str();
  const std::string out = out_.str();
  EXPECT_NE(out.find("switchover accepted (request 1): 'pg1' -> 'pg2'"), std::string::npos) << out;
  EXPECT_NE(out.find("switchover started (pg1 -> pg2): requested by an operator"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("switchover succeeded (pg1 -> pg2): planned switchover, took 2.3 s"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("switchover succeeded: 'pg2' is the primary"), std::string::npos) << out;
  EXPECT_EQ(out.find(kToken), std::string::npos);
  EXPECT_EQ(err_.str().find(kToken), std::string::npos);
  const auto requests = submitted();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].kind, core::RequestKind::kSwitchover);
  EXPECT_EQ(requests[0].target, std::optional<std::size_t>(1));
}

TEST_F(AdminCommandServer, SwitchoverRefusedByTheLoopExitsOne) {
  recordAfterSubmit({event(5000, "request", "", "", "", "refused",
                           "switchover refused: replica pg2 lags 32.0 MB (limit 16.0 MB)")});
  EXPECT_EQ(switchoverCommandMain(args({}), out_, err_, options_), 1) << out_.str();
  EXPECT_NE(err_.str().find("refused: switchover refused: replica pg2 lags 32.0 MB"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(out_.str().find("switchover succeeded"), std::string::npos) << out_.str();
}

TEST_F(AdminCommandServer, SwitchoverThatFailsExitsOne) {
  recordAfterSubmit({
      event(5000, "switchover", "pg2", "pg1", "pg2", "started", "requested by an operator"),
      event(9000, "switchover", "pg2", "pg1", "pg2", "failed",
            "target pg2 did not catch up within 30.0 s", 30000),
  });
  EXPECT_EQ(switchoverCommandMain(args({"--to=pg2"}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("failed: target pg2 did not catch up"), std::string::npos)
      << err_.str();
}

TEST_F(AdminCommandServer, NoOutcomeWithinTheWaitExitsOne) {
  EXPECT_EQ(switchoverCommandMain(args({"--wait", "1"}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("no outcome within 1 s"), std::string::npos) << err_.str();
  EXPECT_EQ(submitted().size(), 1u);
}

TEST_F(AdminCommandServer, WaitZeroReturnsOnceAccepted) {
  EXPECT_EQ(switchoverCommandMain(args({"--wait", "0"}), out_, err_, options_), 0) << err_.str();
  EXPECT_NE(out_.str().find("not waiting"), std::string::npos);
  EXPECT_EQ(submitted().size(), 1u);
}

TEST_F(AdminCommandServer, DryRunSubmitsNothing) {
  EXPECT_EQ(switchoverCommandMain(args({"--dry-run"}), out_, err_, options_), 0) << err_.str();
  EXPECT_NE(out_.str().find("dry run: a switchover from 'pg1' to 'pg2' would be accepted"),
            std::string::npos)
      << out_.str();
  EXPECT_TRUE(submitted().empty());
}

TEST_F(AdminCommandServer, AConflictIsPrintedAndExitsOne) {
  store_.publish(snapshot(core::ClusterState::kPromoting, oldHistory()));
  EXPECT_EQ(switchoverCommandMain(args({}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("HTTP 409 conflict: a promotion is in progress"), std::string::npos)
      << err_.str();
  EXPECT_TRUE(submitted().empty());
}

TEST_F(AdminCommandServer, AnUnknownTargetIsAUsageError) {
  EXPECT_EQ(switchoverCommandMain(args({"--to", "pg9"}), out_, err_, options_), 2);
  EXPECT_NE(err_.str().find("no node named 'pg9'"), std::string::npos) << err_.str();
}

TEST_F(AdminCommandServer, AWrongTokenExitsOneWithoutPrintingIt) {
  options_.environment = [](const std::string&) -> std::optional<std::string> {
    return std::string("not-the-token");
  };
  EXPECT_EQ(switchoverCommandMain(args({}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("HTTP 401 unauthorized"), std::string::npos) << err_.str();
  EXPECT_EQ(err_.str().find("not-the-token"), std::string::npos);
  EXPECT_EQ(out_.str().find("not-the-token"), std::string::npos);
}

TEST_F(AdminCommandServer, TheTokenFileWinsOverTheEnvironment) {
  const std::string path = ::testing::TempDir() + "/pgfailover-cli-token";
  std::ofstream(path) << "  " << kToken << "\n";
  options_.environment = [](const std::string&) -> std::optional<std::string> {
    return std::string("not-the-token");
  };
  EXPECT_EQ(
      switchoverCommandMain(args({"--token-file", path, "--wait", "0"}), out_, err_, options_), 0)
      << err_.str();
  std::remove(path.c_str());
}

TEST_F(AdminCommandServer, ForcedFailoverWaitsForItsOutcome) {
  recordAfterSubmit({
      event(5000, "failover", "pg2", "pg1", "pg2", "started", "requested by an operator (forced)"),
      event(6000, "failover", "pg2", "pg1", "pg2", "succeeded", "operator requested a failover",
            1000),
  });
  EXPECT_EQ(failoverCommandMain(args({"--force", "--to", "pg2"}), out_, err_, options_), 0)
      << err_.str();
  EXPECT_NE(out_.str().find("failover succeeded: 'pg2' is the primary"), std::string::npos)
      << out_.str();
  const auto requests = submitted();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].kind, core::RequestKind::kFailover);
  EXPECT_TRUE(requests[0].force);
}

TEST_F(AdminCommandServer, FailoverOfAHealthyPrimaryWithoutForceExitsOne) {
  EXPECT_EQ(failoverCommandMain(args({}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("HTTP 409 conflict: primary 'pg1' is healthy"), std::string::npos)
      << err_.str();
  EXPECT_TRUE(submitted().empty());
}

TEST_F(AdminCommandServer, FailoverRefusedByTheLoopExitsOne) {
  store_.publish(snapshot(core::ClusterState::kPrimaryFailing, oldHistory()));
  recordAfterSubmit(
      {event(5000, "request", "", "", "", "refused", "failover refused: no reachable replica")},
      core::ClusterState::kPrimaryFailing);
  EXPECT_EQ(failoverCommandMain(args({}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("refused: failover refused: no reachable replica"), std::string::npos)
      << err_.str();
}

TEST_F(AdminCommandServer, AnUnreachableApiExitsOne) {
  server_->stop();
  EXPECT_EQ(switchoverCommandMain(args({}), out_, err_, options_), 1);
  EXPECT_NE(err_.str().find("cannot reach " + url_ + "/history"), std::string::npos) << err_.str();
  std::ostringstream out, err;
  EXPECT_EQ(switchoverCommandMain(args({"--wait", "0"}), out, err, options_), 1);
  EXPECT_NE(err.str().find("cannot reach " + url_ + "/switchover"), std::string::npos) << err.str();
}

// --- several instances: the request goes to the acting one -----------------------------------

TEST_F(AdminCommandServer, ARequestToANonActingInstanceFollowsOneRedirectToTheActingOne) {
  auto other = bystander(url_);
  recordAfterSubmit({
      event(5000, "switchover", "pg2", "pg1", "pg2", "started", "requested by an operator"),
      event(7300, "switchover", "pg2", "pg1", "pg2", "succeeded", "planned switchover", 2300),
  });
  std::vector<std::string> arguments = {"--url", other->url, "--to", "pg2", "--wait", "10"};
  EXPECT_EQ(switchoverCommandMain(arguments, out_, err_, options_), 0) << err_.str() << out_.str();
  const std::string out = out_.str();
  EXPECT_NE(out.find("instance 'pgf-a' does not act; sent to the acting instance 'pgf-b' at " +
                     url_ + "/switchover"),
            std::string::npos)
      << out;
  // The outcome is only in the acting instance's history, which the command followed.
  EXPECT_NE(out.find("switchover succeeded: 'pg2' is the primary"), std::string::npos) << out;
  EXPECT_TRUE(other->submitted.empty());
  const auto requests = submitted();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].kind, core::RequestKind::kSwitchover);
  EXPECT_EQ(requests[0].target, std::optional<std::size_t>(1));
  EXPECT_EQ(out.find(kToken), std::string::npos);
  EXPECT_EQ(err_.str().find(kToken), std::string::npos);
}

TEST_F(AdminCommandServer, ADryRunIsRedirectedToo) {
  auto other = bystander(url_ + "/");
  std::vector<std::string> arguments = {"--url", other->url, "--dry-run", "--force"};
  EXPECT_EQ(failoverCommandMain(arguments, out_, err_, options_), 0) << err_.str();
  EXPECT_NE(out_.str().find("sent to the acting instance 'pgf-b' at " + url_ + "/failover"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("dry run: a failover from 'pg1' to 'pg2' would be accepted"),
            std::string::npos)
      << out_.str();
  EXPECT_TRUE(submitted().empty());
}

// An https URL was chosen so that the token never crosses the network in the clear; a redirect
// to http (an address from etcd) must not undo that, and an http one is not taken to https
// either: the token goes only where the scheme of --url says.
TEST_F(AdminCommandServer, TheTokenIsNeverSentOverAnotherScheme) {
  testing::SilentListener listener;
  ASSERT_TRUE(listener.ok());
  const std::string port = std::to_string(listener.port());
  auto other = bystander("https://127.0.0.1:" + port);
  std::vector<std::string> arguments = {"--url", other->url, "--wait", "0"};
  EXPECT_EQ(switchoverCommandMain(arguments, out_, err_, options_), 1) << out_.str();
  EXPECT_NE(err_.str().find("redirected to https://127.0.0.1:" + port +
                            "/switchover, which is not http://: the admin token is only sent "
                            "over the scheme of --url"),
            std::string::npos)
      << err_.str();
  // Not even a connection was opened to the redirect's address.
  EXPECT_FALSE(listener.connected());
  EXPECT_TRUE(other->submitted.empty());
}

TEST_F(AdminCommandServer, NoActingInstanceExitsOneSayingWhy) {
  auto other = bystander("", "");
  std::vector<std::string> arguments = {"--url", other->url, "--to", "pg2", "--wait", "0"};
  EXPECT_EQ(switchoverCommandMain(arguments, out_, err_, options_), 1) << out_.str();
  EXPECT_NE(err_.str().find("HTTP 503 unavailable: this instance ('pgf-a') does not act"),
            std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("no instance holds the leadership"), std::string::npos) << err_.str();
  EXPECT_TRUE(other->submitted.empty());
  EXPECT_TRUE(submitted().empty());
}

// Only one redirect: a second means leadership moved in between, and chasing it could loop.
TEST_F(AdminCommandServer, ASecondRedirectIsNotFollowed) {
  auto second = bystander(url_);
  auto first = bystander(second->url);
  std::vector<std::string> arguments = {"--url", first->url, "--wait", "0"};
  EXPECT_EQ(switchoverCommandMain(arguments, out_, err_, options_), 1) << out_.str();
  EXPECT_NE(err_.str().find(second->url + "/switchover does not act either and redirected to " +
                            url_ + "/switchover"),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(first->submitted.empty());
  EXPECT_TRUE(second->submitted.empty());
  EXPECT_TRUE(submitted().empty());
}

TEST_F(AdminCommandServer, HistoryPrintsATable) {
  EXPECT_EQ(historyCommandMain(args({}), out_, err_), 0) << err_.str();
  EXPECT_NE(out_.str().find("| switchover | succeeded | pg2  | pg1  | pg2 |"), std::string::npos)
      << out_.str();
  std::ostringstream json, err;
  EXPECT_EQ(historyCommandMain(args({"--json", "--limit", "1"}), json, err), 0) << err.str();
  EXPECT_EQ(Json::parse(json.str())[0]["kind"], "switchover");
}

// --- arguments --------------------------------------------------------------------------------

class AdminCommandArgs : public ::testing::Test {
 protected:
  int switchover(std::vector<std::string> args) {
    return switchoverCommandMain(args, out_, err_, options_);
  }
  int failover(std::vector<std::string> args) {
    return failoverCommandMain(args, out_, err_, options_);
  }

  AdminCommandOptions options_{
      [](const std::string&) -> std::optional<std::string> { return std::string(kToken); },
      std::chrono::milliseconds(20)};
  std::ostringstream out_, err_;
};

TEST_F(AdminCommandArgs, TheTokenIsNeverTakenFromTheCommandLine) {
  EXPECT_EQ(switchover({"--token=hunter2"}), 2);
  EXPECT_EQ(failover({"--token", "hunter2"}), 2);
  EXPECT_NE(err_.str().find("never taken from the command line"), std::string::npos) << err_.str();
  EXPECT_EQ(err_.str().find("hunter2"), std::string::npos) << err_.str();
  // Nor echoed when misspelt.
  EXPECT_EQ(switchover({"--tokne=hunter2"}), 2);
  EXPECT_NE(err_.str().find("unknown argument '--tokne=...'"), std::string::npos) << err_.str();
  EXPECT_EQ(err_.str().find("hunter2"), std::string::npos) << err_.str();
}

TEST_F(AdminCommandArgs, BadArgumentsAreUsageErrors) {
  EXPECT_EQ(switchover({"--bogus"}), 2);
  EXPECT_NE(err_.str().find("unknown argument '--bogus'"), std::string::npos);
  EXPECT_EQ(switchover({"--to"}), 2);
  EXPECT_NE(err_.str().find("--to needs a value"), std::string::npos);
  EXPECT_EQ(switchover({"--wait", "soon"}), 2);
  EXPECT_EQ(switchover({"--wait=-1"}), 2);
  EXPECT_NE(err_.str().find("--wait takes a whole number of seconds"), std::string::npos);
  EXPECT_EQ(switchover({"--force"}), 2);  // a failover option
  EXPECT_EQ(switchover({"--dry-run=yes"}), 2);
  EXPECT_EQ(failover({"--url"}), 2);
  EXPECT_EQ(failover({"--url", "ftp://127.0.0.1:1"}), 2);
  EXPECT_TRUE(out_.str().empty());
}

TEST_F(AdminCommandArgs, AMissingTokenIsAUsageError) {
  options_.environment = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  EXPECT_EQ(switchover({}), 2);
  EXPECT_NE(err_.str().find("no admin token: pass --token-file FILE or set PGFAILOVER_TOKEN"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(failover({"--token-file", "/nonexistent/pgfailover-token"}), 2);
  EXPECT_NE(err_.str().find("the token file /nonexistent/pgfailover-token cannot be read"),
            std::string::npos)
      << err_.str();
}

TEST_F(AdminCommandArgs, AnEmptyOrMalformedTokenIsAUsageError) {
  const std::string path = ::testing::TempDir() + "/pgfailover-empty-token";
  std::ofstream(path) << "\n  \n";
  EXPECT_EQ(switchover({"--token-file", path}), 2);
  EXPECT_NE(err_.str().find("the token file " + path + " is empty"), std::string::npos);
  std::remove(path.c_str());
  options_.environment = [](const std::string&) -> std::optional<std::string> {
    return std::string("two words");
  };
  EXPECT_EQ(switchover({}), 2);
  EXPECT_NE(err_.str().find("$PGFAILOVER_TOKEN holds whitespace or control characters"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(err_.str().find("two words"), std::string::npos);
}

TEST_F(AdminCommandArgs, HelpPrintsTheUsage) {
  EXPECT_EQ(switchover({"--help"}), 0);
  EXPECT_NE(out_.str().find("usage: pgfailover switchover"), std::string::npos);
  EXPECT_EQ(failover({"-h"}), 0);
  EXPECT_NE(out_.str().find("--force"), std::string::npos);
}

TEST(HistoryCommand, ArgumentsAndTable) {
  std::ostringstream out, err;
  EXPECT_EQ(historyCommandMain({"--limit", "0"}, out, err), 2);
  EXPECT_EQ(historyCommandMain({"--limit"}, out, err), 2);
  EXPECT_EQ(historyCommandMain({"--verbose"}, out, err), 2);
  EXPECT_EQ(historyCommandMain({"--help"}, out, err), 0);
  EXPECT_NE(out.str().find("usage: pgfailover history"), std::string::npos);

  EXPECT_EQ(renderHistoryTable(Json::array()), "No events recorded.\n");
  EXPECT_EQ(renderHistoryTable(Json::object()), "No events recorded.\n");
  const std::string table = renderHistoryTable(Json::array(
      {event(1, "failover", "pg2", "pg1", "pg2", "succeeded", std::string(150, 'r'), 3400),
       Json::object({{"kind", "fence"}})}));
  EXPECT_NE(table.find("| failover | succeeded | pg2  | pg1  | pg2 | 3.4 s | " +
                       std::string(97, 'r') + "... |"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("| fence "), std::string::npos) << table;
}

TEST(CommandLine, RunMainDispatchesTheAdminCommands) {
  const char* history[] = {"pgfailover", "history", "--limit", "0"};
  EXPECT_EQ(runMain(4, const_cast<char**>(history)), 2);
  const char* switchover[] = {"pgfailover", "switchover", "--token", "x"};
  EXPECT_EQ(runMain(4, const_cast<char**>(switchover)), 2);
  const char* failover[] = {"pgfailover", "failover", "--help"};
  EXPECT_EQ(runMain(3, const_cast<char**>(failover)), 0);
}

}  // namespace
}  // namespace pgfailover::cli
