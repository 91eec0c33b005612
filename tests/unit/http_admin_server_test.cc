// The admin endpoints through the real listener on 127.0.0.1, port 0: the bearer token travels
// in a real header, the submit function runs on an HTTP worker thread, /history is served with
// its content type.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "http/http_server.h"

namespace pgfailover::http {
namespace {

using core::NodeRole;
using core::NodeSnapshot;
using Json = nlohmann::json;

constexpr const char* kToken = "server-test-token";

NodeSnapshot node(std::string name, bool replica) {
  NodeSnapshot n;
  n.name = std::move(name);
  n.host = "127.0.0.1";
  n.role = replica ? NodeRole::kReplica : NodeRole::kPrimary;
  n.observation.probed = true;
  n.observation.reachable = true;
  n.observation.in_recovery = replica;
  n.observation.timeline = 1;
  if (replica) {
    n.observation.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 1, 0.1, {}};
    n.lag_bytes = 0;
  } else {
    n.observation.current_lsn = 0x3000000;
  }
  return n;
}

class HttpAdminServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto snapshot = std::make_shared<core::Snapshot>();
    snapshot->ready = true;
    snapshot->tick = 1;
    snapshot->tick_at = std::chrono::steady_clock::now();
    snapshot->state = core::ClusterState::kHealthy;
    snapshot->primary = 0;
    snapshot->nodes = {node("pg1", false), node("pg2", true)};
    snapshot->history_json = std::make_shared<const std::string>(
        R"([{"at": "2024-05-01T12:00:00.000Z", "kind": "fence", "result": "started"}])");
    store_.publish(snapshot);

    ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.admin_token = &token_;
    options.submit = [this](core::AdminRequest request) -> std::optional<std::uint64_t> {
      // A slow queue (a loaded machine) holds the one worker for this long.
      std::this_thread::sleep_for(std::chrono::milliseconds(submit_delay_ms_.load()));
      std::lock_guard lock(mutex_);
      submitted_.push_back(request);
      return 41 + submitted_.size();
    };
    options.access_log = [this](const AccessRecord& record) {
      std::lock_guard lock(mutex_);
      access_log_ += std::string(record.method) + " " + std::string(record.path) + " " +
                     std::to_string(record.status) + "\n";
    };
    server_ = std::make_unique<HttpServer>(options, store_, nullptr);
    Status status = server_->start();
    ASSERT_TRUE(status.isOk()) << status.message();
  }

  httplib::Client client() const {
    httplib::Client client("127.0.0.1", server_->boundPort());
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    return client;
  }

  std::vector<core::AdminRequest> submitted() {
    std::lock_guard lock(mutex_);
    return submitted_;
  }

  std::atomic<int> submit_delay_ms_{0};
  Secret token_{kToken};
  core::SnapshotStore store_;
  std::mutex mutex_;
  std::vector<core::AdminRequest> submitted_;
  std::string access_log_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpAdminServer, SwitchoverWithTheTokenIsAccepted) {
  auto http = client();
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kToken}};
  auto response = http.Post("/switchover", headers, R"({"target": "pg2"})", "application/json");
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 202) << response->body;
  EXPECT_EQ(response->get_header_value("Content-Type"), "application/json");
  const Json answer = Json::parse(response->body);
  EXPECT_EQ(answer["id"], 42);
  EXPECT_EQ(answer["from"], "pg1");
  EXPECT_EQ(answer["to"], "pg2");
  const auto requests = submitted();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].kind, core::RequestKind::kSwitchover);
  EXPECT_EQ(requests[0].target, std::optional<std::size_t>(1));
}

TEST_F(HttpAdminServer, SwitchoverWithoutTheTokenIs401AndTheTokenIsNeverLogged) {
  auto http = client();
  auto missing = http.Post("/switchover", "{}", "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_EQ(missing->get_header_value("WWW-Authenticate"), "Bearer realm=\"pgfailover\"");
  const httplib::Headers wrong = {{"Authorization", "Bearer not-the-token"}};
  auto refused = http.Post("/failover", wrong, R"({"force": true})", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  EXPECT_TRUE(submitted().empty());

  const httplib::Headers right = {{"Authorization", std::string("Bearer ") + kToken}};
  ASSERT_TRUE(http.Post("/switchover", right, "{}", "application/json"));
  std::lock_guard lock(mutex_);
  EXPECT_NE(access_log_.find("POST /switchover 401"), std::string::npos) << access_log_;
  EXPECT_NE(access_log_.find("POST /switchover 202"), std::string::npos) << access_log_;
  EXPECT_EQ(access_log_.find(kToken), std::string::npos);
  EXPECT_EQ(access_log_.find("not-the-token"), std::string::npos);
}

// An admin request queued behind a slow one past its deadline is dropped unserved (its
// connection is closed, and it is logged), never acted on with no one told; the one being
// served when the deadline passes is still answered.
TEST_F(HttpAdminServer, AnAdminRequestQueuedPastItsDeadlineIsNeverActedOn) {
  submit_delay_ms_ = 3000;  // longer than the 2 s request deadline
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kToken}};
  std::optional<int> first_status;
  std::thread first([&] {
    auto http = client();
    if (auto response =
            http.Post("/switchover", headers, R"({"target": "pg2"})", "application/json"))
      first_status = response->status;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto http = client();
  auto second = http.Post("/failover", headers, R"({"force": true})", "application/json");
  first.join();
  EXPECT_FALSE(second) << "the queued request was answered " << second->status;
  EXPECT_EQ(first_status, std::optional<int>(202));
  submit_delay_ms_ = 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto requests = submitted();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].kind, core::RequestKind::kSwitchover);
  std::lock_guard lock(mutex_);
  EXPECT_NE(access_log_.find("POST /switchover 202"), std::string::npos) << access_log_;
  EXPECT_NE(access_log_.find("POST /failover 503"), std::string::npos) << access_log_;
}

TEST_F(HttpAdminServer, AJsonBodySentAsAFormLikeCurlDashDIsStillTheBody) {
  // `curl -d '{"target": "pg2"}'` labels the body application/x-www-form-urlencoded; httplib
  // parses such bodies into parameters, which must not reach the router as a query.
  auto http = client();
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kToken}};
  auto response = http.Post("/switchover", headers, R"({"target": "pg2"})",
                            "application/x-www-form-urlencoded");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 202) << response->body;
  EXPECT_EQ(submitted().size(), 1u);
  // The URL's own query still counts, percent-decoded.
  auto limited = http.Get("/history?limit=%31");
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 200) << limited->body;
  auto unknown = http.Post("/switchover?target=pg2", headers, "{}", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
}

// Over a real connection: the redirect to the acting instance carries Location and keeps the
// request's path and query as sent; httplib (like curl without -L) does not follow it, and a
// request without the token is still a 401.
TEST_F(HttpAdminServer, ANonActingInstanceRedirectsAdminRequestsToTheActingOne) {
  auto snapshot = std::make_shared<core::Snapshot>(*store_.current());
  snapshot->coordination.enabled = true;
  snapshot->coordination.instance = "pgf-a";
  snapshot->coordination.acting = false;
  snapshot->coordination.acting_instance = "pgf-b";
  snapshot->coordination.acting_api_url = "http://127.0.0.2:8008";
  snapshot->coordination.etcd_reachable = true;
  store_.publish(snapshot);

  auto http = client();
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kToken}};
  auto response =
      http.Post("/switchover?note=1", headers, R"({"target": "pg2"})", "application/json");
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 307) << response->body;
  EXPECT_EQ(response->reason, "Temporary Redirect");
  EXPECT_EQ(response->get_header_value("Location"), "http://127.0.0.2:8008/switchover?note=1");
  EXPECT_EQ(Json::parse(response->body)["acting"], "pgf-b");
  auto unauthenticated = http.Post("/failover", "{}", "application/json");
  ASSERT_TRUE(unauthenticated);
  EXPECT_EQ(unauthenticated->status, 401);
  EXPECT_FALSE(unauthenticated->has_header("Location"));
  EXPECT_TRUE(submitted().empty());
  std::lock_guard lock(mutex_);
  EXPECT_NE(access_log_.find("POST /switchover 307"), std::string::npos) << access_log_;
}

TEST_F(HttpAdminServer, GetOnSwitchoverIs405WithAllow) {
  auto http = client();
  auto response = http.Get("/switchover");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 405);
  EXPECT_EQ(response->get_header_value("Allow"), "OPTIONS, POST");
}

TEST_F(HttpAdminServer, OversizedAdminBodyIsRefused) {
  auto http = client();
  const httplib::Headers headers = {{"Authorization", std::string("Bearer ") + kToken}};
  auto response =
      http.Post("/switchover", headers, std::string(256 * 1024, ' '), "application/json");
  // httplib answers 413 without reading the body; the client may see the reset first.
  if (response) {
    EXPECT_EQ(response->status, 413);
  }
  EXPECT_TRUE(submitted().empty());
}

TEST_F(HttpAdminServer, HistoryIsServedAsJson) {
  auto http = client();
  auto response = http.Get("/history?limit=1");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(Json::parse(response->body)[0]["kind"], "fence");
  auto bad = http.Get("/history?limit=none");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

}  // namespace
}  // namespace pgfailover::http
