// The API of one of several pgfailover instances (docs/coordination.md), as pure functions of a
// request and a snapshot whose coordination view says who acts: admin requests to an instance
// that does not act are redirected to the one that does (307), or refused with 503 when none
// does, always after the token check; /status shows the view; the health and role routes answer
// the same whether the instance acts or not.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/router.h"

namespace pgfailover::http {
namespace {

using core::ClusterState;
using core::NodeRole;
using core::NodeSnapshot;
using core::Snapshot;
using Json = nlohmann::json;
using std::chrono::milliseconds;

const SteadyTime kTickAt = SteadyTime{} + std::chrono::hours(1);
constexpr const char* kToken = "coordination-admin-token";
constexpr const char* kActingUrl = "https://pgf-b.example:8008";

NodeSnapshot node(std::string name, bool replica) {
  NodeSnapshot n;
  n.name = std::move(name);
  n.host = "127.0.0.1";
  n.role = replica ? NodeRole::kReplica : NodeRole::kPrimary;
  auto& seen = n.observation;
  seen.probed = true;
  seen.reachable = true;
  seen.in_recovery = replica;
  seen.system_identifier = 7000000000000000001ull;
  seen.timeline = 2;
  seen.heartbeat_written = !replica;
  if (replica) {
    seen.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 2, 0.1, {}};
    n.lag_bytes = 512;
  } else {
    seen.current_lsn = 0x3000000;
  }
  return n;
}

Snapshot healthy() {
  Snapshot s;
  s.ready = true;
  s.tick = 9;
  s.tick_at = kTickAt;
  s.cluster_name = "main";
  s.state = ClusterState::kHealthy;
  s.primary = 0;
  s.nodes = {node("pg1", false), node("pg2", true)};
  s.system_identifier = s.nodes[0].observation.system_identifier;
  s.newest_timeline = 2;
  return s;
}

// Instance pgf-a of three; pgf-b acts, in term 41.
Snapshot notActing(Snapshot s = healthy()) {
  auto& view = s.coordination;
  view.enabled = true;
  view.instance = "pgf-a";
  view.acting = false;
  view.acting_instance = "pgf-b";
  view.acting_api_url = kActingUrl;
  view.term = 41;
  view.etcd_reachable = true;
  view.instances = {"pgf-a", "pgf-b", "pgf-c"};
  return s;
}

Snapshot acting(Snapshot s = healthy()) {
  s = notActing(std::move(s));
  auto& view = s.coordination;
  view.instance = "pgf-b";
  view.acting = true;
  view.since_last_renewal = milliseconds(230);
  return s;
}

class HttpCoordination : public ::testing::Test {
 protected:
  RouteContext context() {
    RouteContext context;
    context.now = kTickAt + milliseconds(400);
    context.admin_token = &token_;
    context.submit = [this](core::AdminRequest request) -> std::optional<std::uint64_t> {
      submitted_.push_back(request);
      return submitted_.size();
    };
    return context;
  }

  static Request post(std::string target, std::string body,
                      std::optional<std::string> authorization = std::string("Bearer ") + kToken) {
    Request request;
    request.method = "POST";
    request.target = target;
    request.path = target.substr(0, target.find('?'));
    request.body = std::move(body);
    if (authorization) request.headers.emplace_back("Authorization", *authorization);
    return request;
  }

  static Request get(std::string path) {
    Request request;
    request.method = "GET";
    request.path = std::move(path);
    return request;
  }

  Response send(const Request& request, const Snapshot& snapshot) {
    return route(request, snapshot, context());
  }

  static Json body(const Response& response) { return Json::parse(response.body); }

  // The 503 for `snapshot` on both admin routes, with its message.
  std::string refusedMessage(const Snapshot& snapshot) {
    std::string message;
    for (const char* path : {"/switchover", "/failover"}) {
      const Response response = send(post(path, R"({"force": true})"), snapshot);
      EXPECT_EQ(response.status, 503) << path << " " << response.body;
      EXPECT_EQ(response.header("Location"), std::nullopt) << path;
      EXPECT_EQ(response.header("Retry-After"), "5") << path;
      message = body(response)["message"].get<std::string>();
    }
    EXPECT_TRUE(submitted_.empty());
    return message;
  }

  Secret token_{kToken};
  std::vector<core::AdminRequest> submitted_;
};

// --- admin requests to an instance that does not act ------------------------------------------

TEST_F(HttpCoordination, AdminRequestsToANonActingInstanceAreRedirectedToTheActingOne) {
  for (const char* path : {"/switchover", "/failover"}) {
    const Response response = send(post(path, R"({"target": "pg2"})"), notActing());
    ASSERT_EQ(response.status, 307) << path << " " << response.body;
    const std::string location = std::string(kActingUrl) + path;
    EXPECT_EQ(response.header("Location"), location);
    EXPECT_EQ(response.content_type, "application/json");
    const Json answer = body(response);
    EXPECT_EQ(answer["error"], "not acting");
    EXPECT_EQ(answer["instance"], "pgf-a");
    EXPECT_EQ(answer["acting"], "pgf-b");
    EXPECT_EQ(answer["term"], 41);
    EXPECT_EQ(answer["location"], location);
    EXPECT_NE(answer["message"].get<std::string>().find("'pgf-b' at " + location),
              std::string::npos)
        << answer;
  }
  // Nothing was handed to this instance's loop: only the acting one carries requests out.
  EXPECT_TRUE(submitted_.empty());
}

TEST_F(HttpCoordination, TheActingInstanceServesAdminRequestsAsBefore) {
  const Response response = send(post("/switchover", R"({"target": "pg2"})"), acting());
  EXPECT_EQ(response.status, 202) << response.body;
  EXPECT_EQ(response.header("Location"), std::nullopt);
  ASSERT_EQ(submitted_.size(), 1u);
  EXPECT_EQ(submitted_[0].target, std::optional<std::size_t>(1));
  // Without etcd the instance acts alone, as before coordination existed.
  EXPECT_EQ(send(post("/failover", R"({"force": true, "dry_run": true})"), healthy()).status, 200);
}

TEST_F(HttpCoordination, TheRedirectRepeatsThePathAndQueryAsSent) {
  // Whatever the query says is for the acting instance to judge (here: a 400 there).
  Response response = send(post("/switchover/?dry%20run=1&x=%2F", "{}"), notActing());
  EXPECT_EQ(response.status, 307);
  EXPECT_EQ(response.header("Location"),
            std::string(kActingUrl) + "/switchover/?dry%20run=1&x=%2F");

  // Behind a reverse proxy path, with or without a trailing slash.
  Snapshot proxied = notActing();
  proxied.coordination.acting_api_url = "https://gateway.example/pgf-b/";
  response = send(post("/failover", "{}"), proxied);
  EXPECT_EQ(response.header("Location"), "https://gateway.example/pgf-b/failover");

  // A request built from decoded parts (no target as sent) is encoded again.
  Request parts = post("/failover", "{}");
  parts.target.clear();
  parts.query = {{"a b", "c/d&e"}};
  response = send(parts, notActing());
  EXPECT_EQ(response.header("Location"), std::string(kActingUrl) + "/failover?a%20b=c%2Fd%26e");
}

TEST_F(HttpCoordination, TheTokenIsCheckedBeforeAnyRedirect) {
  // Without the token a caller learns nothing, not even which instance acts or where.
  for (const char* path : {"/switchover", "/failover"}) {
    for (const std::optional<std::string>& authorization :
         {std::optional<std::string>(), std::optional<std::string>("Bearer wrong-token")}) {
      const Response response = send(post(path, "{}", authorization), notActing());
      EXPECT_EQ(response.status, 401) << path;
      EXPECT_EQ(response.header("Location"), std::nullopt);
      EXPECT_EQ(response.body.find("pgf-b"), std::string::npos) << response.body;
    }
  }
  RouteContext without = context();
  without.admin_token = nullptr;
  const Response disabled = route(post("/switchover", "{}"), notActing(), without);
  EXPECT_EQ(disabled.status, 403);
  EXPECT_EQ(disabled.header("Location"), std::nullopt);
  // OPTIONS and a wrong method are answered here, before the token: no redirect either.
  Request options = post("/switchover", "", std::nullopt);
  options.method = "OPTIONS";
  EXPECT_EQ(send(options, notActing()).status, 200);
  Request wrong_method = post("/switchover", "");
  wrong_method.method = "GET";
  EXPECT_EQ(send(wrong_method, notActing()).status, 405);
}

TEST_F(HttpCoordination, NoActingInstanceIs503SayingWhy) {
  Snapshot election = notActing();
  election.coordination.acting_instance.clear();
  election.coordination.acting_api_url.clear();
  EXPECT_NE(refusedMessage(election).find("no instance holds the leadership"), std::string::npos);
  const Json answer = body(send(post("/switchover", "{}"), election));
  EXPECT_EQ(answer["acting"], nullptr);
  EXPECT_EQ(answer["instance"], "pgf-a");
  EXPECT_EQ(answer["etcd_reachable"], true);

  Snapshot cut_off = election;
  cut_off.coordination.etcd_reachable = false;
  EXPECT_NE(refusedMessage(cut_off).find("etcd is unreachable from this instance"),
            std::string::npos);

  // This instance still holds the key but its own clock says stop: sending the request to
  // itself would loop.
  Snapshot overdue = notActing();
  overdue.coordination.acting_instance = "pgf-a";
  overdue.coordination.acting_api_url = "https://pgf-a.example:8008";
  EXPECT_NE(refusedMessage(overdue).find("holds the leader key"), std::string::npos);

  Snapshot unknown_url = notActing();
  unknown_url.coordination.acting_api_url.clear();
  EXPECT_NE(refusedMessage(unknown_url).find("'pgf-b' registered no API URL"), std::string::npos);
}

TEST_F(HttpCoordination, AnUnusableActingUrlIs503NeverALocation) {
  const std::pair<const char*, const char*> cases[] = {
      {"ftp://pgf-b.example", "not an http:// or https:// URL"},
      {"pgf-b.example:8008", "not an http:// or https:// URL"},
      {"https://pgf-b.example\r\nSet-Cookie: a=b", "a space or a control character"},
      {"https://", "names no host"},
      {"https://operator:pw@pgf-b.example", "carries credentials"},
      {"https://pgf-b.example/?next=x", "a query or a fragment"},
  };
  for (const auto& [url, problem] : cases) {
    Snapshot bad = notActing();
    bad.coordination.acting_api_url = url;
    EXPECT_NE(refusedMessage(bad).find(problem), std::string::npos) << url;
  }
}

// --- the same answer from every instance ------------------------------------------------------

// HAProxy, the kubelet and Prometheus may ask any instance: nothing but /status and /metrics may
// depend on whether the one asked acts.
TEST_F(HttpCoordination, PublicRoutesAnswerTheSameWhetherTheInstanceActsOrNot) {
  Snapshot failing = healthy();
  failing.state = ClusterState::kPrimaryFailing;
  failing.nodes[0].observation.reachable = false;
  failing.nodes[0].observation.failure = core::ProbeFailure::kRefused;
  Snapshot starting = healthy();
  starting.ready = false;
  starting.state = ClusterState::kInitializing;
  Snapshot stale = healthy();
  stale.tick_at = kTickAt - std::chrono::minutes(5);
  stale.history_json = std::make_shared<const std::string>(R"([{"kind": "fence"}])");
  Snapshot election = notActing();
  election.coordination.acting_instance.clear();
  election.coordination.etcd_reachable = false;

  std::size_t compared = 0;
  for (const Snapshot& base : {healthy(), failing, starting, stale}) {
    const Snapshot views[] = {base, notActing(base), acting(base), [&] {
                                Snapshot s = base;
                                s.coordination = election.coordination;
                                return s;
                              }()};
    for (const auto& spec : kRoutes) {
      if (spec.access != Access::kPublic || spec.endpoint == Endpoint::kStatus ||
          spec.endpoint == Endpoint::kMetrics)
        continue;
      std::vector<std::string> paths = {std::string(spec.path)};
      if (spec.per_node)
        for (const char* name : {"pg1", "pg2", "pg9"}) paths.push_back(paths[0] + "/" + name);
      for (const auto& path : paths) {
        for (const char* method : {"GET", "HEAD", "OPTIONS"}) {
          Request request = get(path);
          request.method = method;
          const Response expected = send(request, views[0]);
          for (const auto& view : views) {
            const Response got = send(request, view);
            EXPECT_EQ(got.status, expected.status) << method << " " << path;
            EXPECT_EQ(got.body, expected.body) << method << " " << path;
            EXPECT_EQ(got.headers, expected.headers) << method << " " << path;
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 200u);
  // And they do answer differently across cluster states, so the comparison means something.
  EXPECT_NE(send(get("/primary"), healthy()).status, send(get("/primary"), failing).status);
}

// --- /status ----------------------------------------------------------------------------------

TEST_F(HttpCoordination, StatusShowsWhoActs) {
  Snapshot here = acting();
  here.coordination.term = 57;
  Json status = body(send(get("/status"), here));
  EXPECT_EQ(status["instance"], "pgf-b");
  Json view = status["coordination"];
  EXPECT_EQ(view["enabled"], true);
  EXPECT_EQ(view["acting"], "pgf-b");
  EXPECT_EQ(view["acting_here"], true);
  EXPECT_EQ(view["acting_api_url"], kActingUrl);
  EXPECT_EQ(view["term"], 57);
  EXPECT_EQ(view["instances"], Json({"pgf-a", "pgf-b", "pgf-c"}));
  EXPECT_EQ(view["etcd_reachable"], true);
  EXPECT_EQ(view["since_last_renewal_ms"], 230);

  status = body(send(get("/status"), notActing()));
  EXPECT_EQ(status["instance"], "pgf-a");
  view = status["coordination"];
  EXPECT_EQ(view["acting"], "pgf-b");
  EXPECT_EQ(view["acting_here"], false);
  EXPECT_EQ(view["since_last_renewal_ms"], nullptr);

  Snapshot election = notActing();
  election.coordination.acting_instance.clear();
  election.coordination.acting_api_url.clear();
  election.coordination.etcd_reachable = false;
  view = body(send(get("/status"), election))["coordination"];
  EXPECT_EQ(view["acting"], nullptr);
  EXPECT_EQ(view["acting_api_url"], nullptr);
  EXPECT_EQ(view["etcd_reachable"], false);
}

TEST_F(HttpCoordination, StatusWithoutEtcdSaysThisInstanceActsAlone) {
  const Json status = body(send(get("/status"), healthy()));
  EXPECT_EQ(status["instance"], nullptr);
  const Json view = status["coordination"];
  EXPECT_EQ(view["enabled"], false);
  EXPECT_EQ(view["acting_here"], true);
  EXPECT_EQ(view["acting"], nullptr);
  EXPECT_EQ(view["acting_api_url"], nullptr);
  EXPECT_EQ(view["term"], nullptr);
  EXPECT_EQ(view["instances"], Json::array());
  EXPECT_EQ(view["etcd_reachable"], nullptr);
  EXPECT_EQ(view["since_last_renewal_ms"], nullptr);
}

}  // namespace
}  // namespace pgfailover::http
