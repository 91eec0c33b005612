// The admin endpoints as pure functions of a request and a snapshot: POST /switchover and
// POST /failover (auth, body validation, the pre-checks that answer 409 / 412 at once, what is
// handed to the loop), and GET /history.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/router.h"

namespace pgfailover::http {
namespace {

using core::AdminRequest;
using core::ClusterState;
using core::NodeRole;
using core::NodeSnapshot;
using core::RequestKind;
using core::Snapshot;
using Json = nlohmann::json;
using std::chrono::milliseconds;

const SteadyTime kTickAt = SteadyTime{} + std::chrono::hours(1);
constexpr const char* kToken = "s3cret-admin-token";
constexpr std::uint64_t kSystemIdentifier = 7234567890123456789ull;

NodeSnapshot primaryNode(std::string name) {
  NodeSnapshot node;
  node.name = std::move(name);
  node.role = NodeRole::kPrimary;
  auto& seen = node.observation;
  seen.probed = true;
  seen.reachable = true;
  seen.system_identifier = kSystemIdentifier;
  seen.timeline = 3;
  seen.current_lsn = 0x3000548;
  seen.heartbeat_written = true;
  return node;
}

NodeSnapshot replicaNode(std::string name, Lsn replayed, std::uint64_t lag_bytes) {
  NodeSnapshot node;
  node.name = std::move(name);
  node.role = NodeRole::kReplica;
  auto& seen = node.observation;
  seen.probed = true;
  seen.reachable = true;
  seen.in_recovery = true;
  seen.system_identifier = kSystemIdentifier;
  seen.timeline = 3;
  seen.receive_lsn = replayed;
  seen.replay_lsn = replayed;
  seen.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 3, 0.2, {}};
  node.lag_bytes = lag_bytes;
  return node;
}

// pg1 primary that commits; pg2 streams 1 kB behind.
Snapshot healthy() {
  Snapshot snapshot;
  snapshot.ready = true;
  snapshot.tick = 42;
  snapshot.tick_at = kTickAt;
  snapshot.cluster_name = "main";
  snapshot.state = ClusterState::kHealthy;
  snapshot.reason = "primary pg1 commits; replica pg2 streams 1.0 kB behind";
  snapshot.primary = 0;
  snapshot.nodes = {primaryNode("pg1"), replicaNode("pg2", 0x3000148, 1024)};
  // The decision's memory of the cluster, which requests are admitted against.
  snapshot.system_identifier = snapshot.nodes[0].observation.system_identifier;
  snapshot.newest_timeline = snapshot.nodes[0].observation.timeline;
  return snapshot;
}

// The primary pg1 stopped answering; a failover timeout runs.
Snapshot primaryFailing() {
  Snapshot snapshot = healthy();
  snapshot.state = ClusterState::kPrimaryFailing;
  auto& seen = snapshot.nodes[0].observation;
  seen.reachable = false;
  seen.failure = core::ProbeFailure::kRefused;
  seen.error = "connection refused";
  seen.heartbeat_written = false;
  snapshot.timeout = core::RunningTimeout{core::TimeoutKind::kConfirmedDown, milliseconds(3000),
                                          milliseconds(1200)};
  auto& replica = snapshot.nodes[1].observation;
  replica.wal_receiver.reset();
  return snapshot;
}

// Collects what the router hands to the loop, and answers with ids like the real queue.
struct FakeQueue {
  std::vector<AdminRequest> submitted;
  bool full = false;
  SubmitRequest function() {
    return [this](AdminRequest request) -> std::optional<std::uint64_t> {
      if (full) return std::nullopt;
      submitted.push_back(request);
      return submitted.size() + 6;
    };
  }
};

class HttpAdmin : public ::testing::Test {
 protected:
  RouteContext context() {
    RouteContext context;
    context.now = kTickAt + milliseconds(500);
    context.max_tick_age = milliseconds(10000);
    context.admin_token = &token_;
    context.submit = queue_.function();
    return context;
  }

  static Request post(std::string path, std::string body,
                      std::optional<std::string> authorization = std::string("Bearer ") + kToken) {
    Request request;
    request.method = "POST";
    request.path = std::move(path);
    request.body = std::move(body);
    if (authorization) request.headers.emplace_back("Authorization", *authorization);
    return request;
  }

  Response send(const Request& request, const Snapshot& snapshot = healthy()) {
    return route(request, snapshot, context());
  }

  static Json body(const Response& response) { return Json::parse(response.body); }

  Secret token_{kToken};
  FakeQueue queue_;
};

// --- access -----------------------------------------------------------------------------------

TEST_F(HttpAdmin, SwitchoverWithoutATokenIs401AndSubmitsNothing) {
  Response response = send(post("/switchover", R"({"target": "pg2"})", std::nullopt));
  EXPECT_EQ(response.status, 401);
  EXPECT_EQ(response.header("WWW-Authenticate"), "Bearer realm=\"pgfailover\"");
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, AWrongTokenIs401AndNeverEchoed) {
  for (const char* path : {"/switchover", "/failover"}) {
    Response response = send(post(path, R"({"force": true})", "Bearer s3cret-admin-tokem"));
    EXPECT_EQ(response.status, 401) << path;
    EXPECT_EQ(response.body.find("s3cret"), std::string::npos) << response.body;
  }
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, NoConfiguredTokenIs403) {
  RouteContext without = context();
  without.admin_token = nullptr;
  EXPECT_EQ(route(post("/switchover", "{}"), healthy(), without).status, 403);
  Secret empty;
  without.admin_token = &empty;
  EXPECT_EQ(route(post("/failover", "{}", "Bearer "), healthy(), without).status, 403);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, TheTokenIsCheckedBeforeTheBody) {
  // A caller without the token learns nothing about what the endpoint would accept.
  Response response = send(post("/switchover", "{not json", std::nullopt));
  EXPECT_EQ(response.status, 401);
}

TEST_F(HttpAdmin, OtherMethodsAre405WithAllow) {
  for (const char* path : {"/switchover", "/failover"}) {
    for (const char* method : {"GET", "HEAD", "PUT", "DELETE"}) {
      Request request = post(path, "");
      request.method = method;
      Response response = send(request);
      EXPECT_EQ(response.status, 405) << method << " " << path;
      EXPECT_EQ(response.header("Allow"), "OPTIONS, POST");
    }
  }
  Request options = post("/switchover", "", std::nullopt);
  options.method = "OPTIONS";
  Response response = send(options);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.header("Allow"), "OPTIONS, POST");
  EXPECT_TRUE(queue_.submitted.empty());
}

// --- bodies -----------------------------------------------------------------------------------

TEST_F(HttpAdmin, MalformedJsonIs400) {
  Response response = send(post("/switchover", R"({"target": "pg2")"));
  EXPECT_EQ(response.status, 400);
  EXPECT_NE(body(response)["message"].get<std::string>().find("not valid JSON"), std::string::npos);
  EXPECT_EQ(send(post("/failover", "[1, 2]")).status, 400);
  EXPECT_EQ(send(post("/failover", R"("pg2")")).status, 400);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, UnknownKeyIs400NamingIt) {
  Response response = send(post("/switchover", R"({"taget": "pg2"})"));
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(body(response)["message"],
            "unknown key 'taget' in the body of /switchover (it takes: target, dry_run)");
  // force belongs to /failover only.
  EXPECT_EQ(send(post("/switchover", R"({"force": true})")).status, 400);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, WrongTypesAre400NamingTheKey) {
  Response target = send(post("/switchover", R"({"target": 2})"));
  EXPECT_EQ(target.status, 400);
  EXPECT_EQ(body(target)["message"],
            "'target' must be a node name (a non-empty string), not number");
  Response empty = send(post("/switchover", R"({"target": ""})"));
  EXPECT_EQ(empty.status, 400);
  Response dry_run = send(post("/switchover", R"({"dry_run": "yes"})"));
  EXPECT_EQ(dry_run.status, 400);
  EXPECT_EQ(body(dry_run)["message"], "'dry_run' must be true or false, not string");
  Response force = send(post("/failover", R"({"force": 1})"));
  EXPECT_EQ(force.status, 400);
  EXPECT_EQ(body(force)["message"], "'force' must be true or false, not number");
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, UnknownNodeIs400ListingTheNodes) {
  Response response = send(post("/switchover", R"({"target": "pg9"})"));
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(body(response)["message"], "'target': no node named 'pg9' (nodes: pg1, pg2)");
  // Even while something is in progress: a typo is a typo.
  Snapshot promoting = healthy();
  promoting.state = ClusterState::kPromoting;
  EXPECT_EQ(send(post("/failover", R"({"target": "pg9", "force": true})"), promoting).status, 400);
  EXPECT_TRUE(queue_.submitted.empty());
}

// --- switchover -------------------------------------------------------------------------------

TEST_F(HttpAdmin, SwitchoverIsAcceptedAndHandedToTheLoop) {
  Response response = send(post("/switchover", R"({"target": "pg2"})"));
  ASSERT_EQ(response.status, 202) << response.body;
  EXPECT_EQ(response.content_type, "application/json");
  const Json answer = body(response);
  EXPECT_EQ(answer["accepted"], true);
  EXPECT_EQ(answer["id"], 7);
  EXPECT_EQ(answer["kind"], "switchover");
  EXPECT_EQ(answer["from"], "pg1");
  EXPECT_EQ(answer["to"], "pg2");
  ASSERT_EQ(queue_.submitted.size(), 1u);
  const AdminRequest& request = queue_.submitted[0];
  EXPECT_EQ(request.kind, RequestKind::kSwitchover);
  EXPECT_EQ(request.target, std::optional<std::size_t>(1));
  EXPECT_FALSE(request.force);
}

TEST_F(HttpAdmin, AnEmptyBodyPicksTheMostAdvancedStreamingReplica) {
  Snapshot snapshot = healthy();
  snapshot.nodes.push_back(replicaNode("pg3", 0x3000500, 72));
  snapshot.nodes.push_back(replicaNode("pg4", 0x3000540, 8));
  snapshot.nodes[3].observation.wal_receiver.reset();  // furthest, but not streaming
  for (const char* empty : {"", "  \n", "{}", R"({"target": null})"}) {
    queue_.submitted.clear();
    Response response = send(post("/switchover", empty), snapshot);
    ASSERT_EQ(response.status, 202) << response.body;
    EXPECT_EQ(body(response)["to"], "pg3");
    ASSERT_EQ(queue_.submitted.size(), 1u);
    EXPECT_EQ(queue_.submitted[0].target, std::optional<std::size_t>(2));
  }
}

TEST_F(HttpAdmin, DryRunAnswersWhatWouldHappenAndSubmitsNothing) {
  Response response = send(post("/switchover", R"({"dry_run": true})"));
  ASSERT_EQ(response.status, 200) << response.body;
  const Json answer = body(response);
  EXPECT_EQ(answer["would"], "switchover");
  EXPECT_EQ(answer["from"], "pg1");
  EXPECT_EQ(answer["to"], "pg2");
  EXPECT_EQ(answer["dry_run"], true);
  EXPECT_TRUE(queue_.submitted.empty());

  // A dry run is checked like the real thing.
  Snapshot promoting = healthy();
  promoting.state = ClusterState::kPromoting;
  EXPECT_EQ(send(post("/switchover", R"({"dry_run": true})"), promoting).status, 409);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, SwitchoverWhileSomethingIsInProgressIs409) {
  struct Case {
    const char* name;
    ClusterState state;
    bool switchover;
    const char* reason;
  };
  for (const Case& c : {
           Case{"promoting", ClusterState::kPromoting, false, "a promotion is in progress"},
           Case{"switching over", ClusterState::kSwitchingOver, true,
                "a switchover from 'pg1' to 'pg2' is in progress"},
           Case{"primary failing", ClusterState::kPrimaryFailing, false,
                "the primary is failing and a failover timeout is running (confirmed_down, 1.2 s "
                "of 3.0 s)"},
           Case{"fencing required", ClusterState::kFencingRequired, false,
                "a node must be fenced first"},
       }) {
    Snapshot snapshot = c.state == ClusterState::kPrimaryFailing ? primaryFailing() : healthy();
    snapshot.state = c.state;
    if (c.switchover) snapshot.switchover = core::Switchover{0, 1, kTickAt, {}, 3};
    Response response = send(post("/switchover", R"({"target": "pg2"})"), snapshot);
    EXPECT_EQ(response.status, 409) << c.name;
    const Json answer = body(response);
    EXPECT_EQ(answer["error"], "conflict") << c.name;
    EXPECT_EQ(answer["state"], core::toString(c.state)) << c.name;
    EXPECT_NE(answer["reason"].get<std::string>().find(c.reason), std::string::npos)
        << c.name << ": " << answer["reason"];
  }
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, SwitchoverToALaggingReplicaIs412) {
  Snapshot snapshot = healthy();
  snapshot.nodes[1].lag_bytes = 32ull * 1024 * 1024;
  Response response = send(post("/switchover", R"({"target": "pg2"})"), snapshot);
  EXPECT_EQ(response.status, 412);
  const Json answer = body(response);
  EXPECT_EQ(answer["error"], "precondition failed");
  EXPECT_EQ(answer["reason"],
            "target 'pg2' cannot take over without losing writes: replica 'pg2' lags 32.0 MB "
            "(limit 16.0 MB)");

  // The limit is the configured one.
  RouteContext generous = context();
  generous.max_lag_bytes = 64ull * 1024 * 1024;
  EXPECT_EQ(route(post("/switchover", R"({"target": "pg2"})"), snapshot, generous).status, 202);
}

TEST_F(HttpAdmin, SwitchoverToAReplicaThatDoesNotStreamIs412) {
  Snapshot snapshot = healthy();
  snapshot.nodes[1].observation.wal_receiver->status = "waiting";
  Response response = send(post("/switchover", R"({"target": "pg2"})"), snapshot);
  EXPECT_EQ(response.status, 412);
  EXPECT_NE(body(response)["reason"].get<std::string>().find(
                "replica 'pg2' is not streaming (WAL receiver 'waiting')"),
            std::string::npos);
  // Without a target: no candidate at all.
  Response any = send(post("/switchover", "{}"), snapshot);
  EXPECT_EQ(any.status, 412);
  EXPECT_NE(body(any)["reason"].get<std::string>().find("no replica can take over"),
            std::string::npos);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, SwitchoverToAnUnreachableReplicaOrThePrimaryIs412) {
  Snapshot snapshot = healthy();
  snapshot.nodes[1].observation.reachable = false;
  snapshot.nodes[1].observation.failure = core::ProbeFailure::kTimeout;
  EXPECT_EQ(send(post("/switchover", R"({"target": "pg2"})"), snapshot).status, 412);
  Response primary = send(post("/switchover", R"({"target": "pg1"})"));
  EXPECT_EQ(primary.status, 412);
  EXPECT_EQ(body(primary)["reason"], "'pg1' is already the primary");
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, SwitchoverNeedsAHealthyWritablePrimary) {
  Snapshot fenced = healthy();
  fenced.state = ClusterState::kDegraded;
  fenced.nodes[0].observation.read_only = true;
  Response response = send(post("/switchover", "{}"), fenced);
  EXPECT_EQ(response.status, 412);
  EXPECT_NE(body(response)["reason"].get<std::string>().find(
                "a switchover needs a healthy writable primary: node 'pg1' is read-only"),
            std::string::npos);

  Snapshot none = healthy();
  none.state = ClusterState::kNoPrimary;
  none.primary.reset();
  EXPECT_EQ(send(post("/switchover", "{}"), none).status, 412);

  Snapshot split = healthy();
  split.state = ClusterState::kSplitBrain;
  split.split_brain = true;
  EXPECT_EQ(send(post("/switchover", "{}"), split).status, 412);

  Snapshot initializing = healthy();
  initializing.ready = false;
  initializing.state = ClusterState::kInitializing;
  EXPECT_EQ(send(post("/switchover", "{}"), initializing).status, 412);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, AStaleViewIs503) {
  RouteContext late = context();
  late.now = kTickAt + milliseconds(20000);
  Response response = route(post("/switchover", "{}"), healthy(), late);
  EXPECT_EQ(response.status, 503);
  EXPECT_NE(body(response)["message"].get<std::string>().find("stale"), std::string::npos);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, AFullQueueIs429AndNoLoopIs503) {
  queue_.full = true;
  Response full = send(post("/switchover", "{}"));
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(full.header("Retry-After"), "1");

  RouteContext detached = context();
  detached.submit = nullptr;
  EXPECT_EQ(route(post("/switchover", "{}"), healthy(), detached).status, 503);
}

// --- failover ---------------------------------------------------------------------------------

TEST_F(HttpAdmin, FailoverOfAHealthyPrimaryWithoutForceIs409) {
  Response response = send(post("/failover", R"({"target": "pg2"})"));
  EXPECT_EQ(response.status, 409);
  EXPECT_NE(body(response)["reason"].get<std::string>().find(
                "primary 'pg1' is healthy; use /switchover, or force the failover"),
            std::string::npos);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, ForcedFailoverCarriesTheForceFlag) {
  Response response = send(post("/failover", R"({"target": "pg2", "force": true})"));
  ASSERT_EQ(response.status, 202) << response.body;
  EXPECT_EQ(body(response)["kind"], "failover");
  EXPECT_EQ(body(response)["force"], true);
  ASSERT_EQ(queue_.submitted.size(), 1u);
  EXPECT_EQ(queue_.submitted[0].kind, RequestKind::kFailover);
  EXPECT_EQ(queue_.submitted[0].target, std::optional<std::size_t>(1));
  EXPECT_TRUE(queue_.submitted[0].force);
}

TEST_F(HttpAdmin, FailoverOfAFailingPrimaryNeedsNoForce) {
  // The replica lost its WAL receiver with the primary: not streaming, but promotable.
  Response response = send(post("/failover", "{}"), primaryFailing());
  ASSERT_EQ(response.status, 202) << response.body;
  EXPECT_EQ(body(response)["from"], "pg1");
  EXPECT_EQ(body(response)["to"], "pg2");
  ASSERT_EQ(queue_.submitted.size(), 1u);
  EXPECT_EQ(queue_.submitted[0].target, std::optional<std::size_t>(1));
  EXPECT_FALSE(queue_.submitted[0].force);
}

TEST_F(HttpAdmin, FailoverTargetMustBeAReachableReplicaOfThisCluster) {
  Snapshot unreachable = primaryFailing();
  unreachable.nodes[1].observation.reachable = false;
  unreachable.nodes[1].observation.failure = core::ProbeFailure::kTimeout;
  Response response = send(post("/failover", R"({"target": "pg2"})"), unreachable);
  EXPECT_EQ(response.status, 412);
  EXPECT_EQ(body(response)["reason"],
            "target 'pg2' cannot be promoted: node 'pg2' is unreachable (timeout)");
  Response any = send(post("/failover", "{}"), unreachable);
  EXPECT_EQ(any.status, 412);
  EXPECT_NE(body(any)["reason"].get<std::string>().find("no reachable replica in recovery"),
            std::string::npos);

  Snapshot writable = primaryFailing();
  writable.nodes[1].observation.in_recovery = false;
  EXPECT_EQ(send(post("/failover", R"({"target": "pg2"})"), writable).status, 412);

  Snapshot foreign = primaryFailing();
  foreign.nodes[1].observation.system_identifier = 42;
  Response other = send(post("/failover", R"({"target": "pg2"})"), foreign);
  EXPECT_EQ(other.status, 412);
  EXPECT_NE(body(other)["reason"].get<std::string>().find("belongs to another cluster"),
            std::string::npos);

  EXPECT_EQ(send(post("/failover", R"({"target": "pg1"})"), primaryFailing()).status, 412);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, FailoverWhilePromotingIs409) {
  Snapshot promoting = primaryFailing();
  promoting.state = ClusterState::kPromoting;
  Response response = send(post("/failover", R"({"force": true})"), promoting);
  EXPECT_EQ(response.status, 409);
  EXPECT_TRUE(queue_.submitted.empty());
}

TEST_F(HttpAdmin, FailoverWithoutAKnownPrimaryNeedsAnExplicitTargetAndForce) {
  Snapshot none = primaryFailing();
  none.state = ClusterState::kNoPrimary;
  none.primary.reset();
  for (const char* request : {R"({"force": true})", R"({"target": "pg2"})", "{}"}) {
    Response response = send(post("/failover", request), none);
    EXPECT_EQ(response.status, 412) << request;
    EXPECT_NE(body(response)["reason"].get<std::string>().find("explicit \"target\""),
              std::string::npos)
        << response.body;
  }
  EXPECT_TRUE(queue_.submitted.empty());
  // A switchover has nothing to move away from.
  EXPECT_EQ(send(post("/switchover", R"({"target": "pg2"})"), none).status, 412);
  EXPECT_TRUE(queue_.submitted.empty());

  Response accepted = send(post("/failover", R"({"target": "pg2", "force": true})"), none);
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  ASSERT_EQ(queue_.submitted.size(), 1u);
  EXPECT_EQ(queue_.submitted[0].target, 1u);
  EXPECT_TRUE(queue_.submitted[0].force);
}

// pg2's promotion was issued and pg2 vanished before it was confirmed: it may still land, so
// promoting pg3 would make two primaries. Refused, forced or not (pg2 cannot be fenced first).
TEST_F(HttpAdmin, NoFailoverWhileAnEarlierPromotionMayLand) {
  Snapshot snapshot = primaryFailing();
  snapshot.nodes.push_back(replicaNode("pg3", 0x3000148, 1024));
  snapshot.nodes[1].observation.reachable = false;
  snapshot.nodes[1].observation.failure = core::ProbeFailure::kTimeout;
  snapshot.unconfirmed_promotion = 1;
  for (const char* request :
       {"{}", R"({"target": "pg3"})", R"({"target": "pg3", "force": true})"}) {
    Response response = send(post("/failover", request), snapshot);
    EXPECT_EQ(response.status, 412) << request;
    EXPECT_NE(body(response)["reason"].get<std::string>().find(
                  "the promotion of 'pg2' was issued and has been neither seen to land nor "
                  "cancelled by a restart of 'pg2'"),
              std::string::npos)
        << response.body;
  }
  EXPECT_TRUE(queue_.submitted.empty());
  // Seen again (the loop then forgets it), pg3 may be promoted.
  snapshot.unconfirmed_promotion.reset();
  EXPECT_EQ(send(post("/failover", R"({"target": "pg3"})"), snapshot).status, 202);
}

// pg2 still on timeline 2 never followed the promotion to 3: promoted, it would start a timeline
// 3 of its own. Refused even forced; the best replica is then one that followed, though behind.
TEST_F(HttpAdmin, NoFailoverToAStandbyOnAnOlderTimeline) {
  Snapshot snapshot = primaryFailing();
  snapshot.nodes[1].observation.timeline = 2;
  snapshot.nodes[1].streamed_timeline = 2;
  Response response = send(post("/failover", R"({"target": "pg2", "force": true})"), snapshot);
  EXPECT_EQ(response.status, 412);
  EXPECT_NE(body(response)["reason"].get<std::string>().find(
                "target 'pg2' cannot be promoted: node 'pg2' is on timeline 2, the cluster's "
                "newest is 3"),
            std::string::npos)
      << response.body;
  // What it last streamed counts over its checkpoint's timeline.
  snapshot.nodes[1].streamed_timeline = 3;
  snapshot.nodes.push_back(replicaNode("pg3", 0x3000200, 0));  // further ahead
  snapshot.nodes[2].observation.wal_receiver.reset();
  snapshot.nodes[2].observation.timeline = 2;
  Response any = send(post("/failover", "{}"), snapshot);
  ASSERT_EQ(any.status, 202) << any.body;
  EXPECT_EQ(body(any)["to"], "pg2");
}

TEST_F(HttpAdmin, FailoverDryRunSubmitsNothing) {
  Response response = send(post("/failover", R"({"dry_run": true})"), primaryFailing());
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(body(response)["would"], "failover");
  EXPECT_EQ(body(response)["to"], "pg2");
  EXPECT_TRUE(queue_.submitted.empty());
}

// --- history ----------------------------------------------------------------------------------

const char* kHistory = R"([
  {"at": "2024-05-01T12:00:00.000Z", "at_ms": 1714564800000, "kind": "switchover", "node": "pg2",
   "from": "pg1", "to": "pg2", "result": "started", "reason": "requested by an operator",
   "duration_ms": 0},
  {"at": "2024-05-01T12:00:02.000Z", "at_ms": 1714564802000, "kind": "switchover", "node": "pg2",
   "from": "pg1", "to": "pg2", "result": "succeeded", "reason": "planned switchover",
   "duration_ms": 2000},
  {"at": "2024-05-01T12:00:05.000Z", "at_ms": 1714564805000, "kind": "rejoin", "node": "pg1",
   "from": "", "to": "pg2", "result": "started", "reason": "fenced", "duration_ms": 0}
])";

Request getHistory(std::vector<std::pair<std::string, std::string>> query = {}) {
  Request request;
  request.method = "GET";
  request.path = "/history";
  request.query = std::move(query);
  return request;
}

Snapshot withHistory() {
  Snapshot snapshot = healthy();
  snapshot.history_json = std::make_shared<const std::string>(kHistory);
  return snapshot;
}

TEST_F(HttpAdmin, HistoryServesThePublishedDocument) {
  Response response = send(getHistory(), withHistory());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body, kHistory);
  // Public, like /status: no token needed.
  RouteContext anonymous = context();
  anonymous.admin_token = nullptr;
  EXPECT_EQ(route(getHistory(), withHistory(), anonymous).status, 200);
}

TEST_F(HttpAdmin, HistoryBeforeAnyEventIsAnEmptyArray) {
  Response response = send(getHistory());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(body(response), Json::array());
}

TEST_F(HttpAdmin, HistoryLimitKeepsTheNewestEvents) {
  Response response = send(getHistory({{"limit", "2"}}), withHistory());
  ASSERT_EQ(response.status, 200);
  const Json events = body(response);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["result"], "succeeded");
  EXPECT_EQ(events[1]["kind"], "rejoin");
  // Key order is kept.
  EXPECT_LT(response.body.find("\"at\""), response.body.find("\"kind\""));
  EXPECT_EQ(body(send(getHistory({{"limit", "50"}}), withHistory())).size(), 3u);
}

TEST_F(HttpAdmin, HistoryBadLimitIs400) {
  for (const char* bad : {"0", "-1", "abc", "1.5", "", "+2", "99999999999999999999999"}) {
    Response response = send(getHistory({{"limit", bad}}), withHistory());
    EXPECT_EQ(response.status, 400) << bad;
    EXPECT_NE(body(response)["message"].get<std::string>().find("'limit'"), std::string::npos);
  }
  EXPECT_EQ(send(getHistory({{"limit", "1"}, {"limit", "2"}}), withHistory()).status, 400);
  EXPECT_EQ(send(getHistory({{"since", "1"}}), withHistory()).status, 400);
}

TEST_F(HttpAdmin, HistoryIsReadOnly) {
  Request request = getHistory();
  request.method = "POST";
  Response response = send(request, withHistory());
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.header("Allow"), "GET, HEAD, OPTIONS");
}

}  // namespace
}  // namespace pgfailover::http
