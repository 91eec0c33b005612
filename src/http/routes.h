// Every path the HTTP API serves, with its methods, query parameters and access level, in one
// table, plus the API's default port. The router (router.cc) dispatches on this table and the
// docs (docs/http-api.md) list the same rows; a path exists nowhere else. This header holds data
// only: what each endpoint answers lives in router.cc and health_checks.cc.
//
// Admin endpoints (POST /switchover, POST /failover) are rows with `Access::kAdmin`: the router
// refuses them without a valid `Authorization: Bearer <token>` before any handler runs, and
// their JSON bodies are described by the kSwitchoverKeys / kFailoverKeys lists below.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/time.h"

namespace pgfailover::http {

// The port Patroni's REST API uses, so HAProxy configurations written for Patroni carry over.
inline constexpr int kDefaultPort = 8008;

// /healthz answers 503 once the last tick is older than this (when the caller passes no limit).
inline constexpr Millis kDefaultMaxTickAge{10000};

// HTTP methods as bits, so a route's accepted methods are one small value.
enum Method : std::uint32_t {
  kNoMethod = 0,
  kGet = 1u << 0,
  kHead = 1u << 1,
  kOptions = 1u << 2,
  kPost = 1u << 3,
  kPut = 1u << 4,
  kPatch = 1u << 5,
  kDelete = 1u << 6,
};
using MethodSet = std::uint32_t;

// Read-only endpoints answer anyone; admin endpoints require the configured bearer token.
enum class Access { kPublic, kAdmin };

enum class Endpoint {
  kHealthz,  // the loop ticked recently (liveness)
  kReadyz,   // every node has been observed (readiness)
  kStatus,   // the whole snapshot as JSON
  kMetrics,  // Prometheus text format
  kPrimary,  // Patroni-style role checks, for load balancers
  kReplica,
  kReadOnly,
  kHealth,
  kHistory,     // failovers, switchovers, fences, rejoins, refused requests
  kSwitchover,  // admin: a planned switchover
  kFailover,    // admin: an operator's failover
};

namespace path {
inline constexpr std::string_view kHealthz = "/healthz";
inline constexpr std::string_view kReadyz = "/readyz";
inline constexpr std::string_view kLiveness = "/liveness";    // Patroni's name for /healthz
inline constexpr std::string_view kReadiness = "/readiness";  // Patroni's name for /readyz
inline constexpr std::string_view kStatus = "/status";
inline constexpr std::string_view kMetrics = "/metrics";
inline constexpr std::string_view kPrimary = "/primary";
inline constexpr std::string_view kReadWrite = "/read-write";
inline constexpr std::string_view kMaster = "/master";  // Patroni's old name for /primary
inline constexpr std::string_view kLeader = "/leader";
inline constexpr std::string_view kReplica = "/replica";
inline constexpr std::string_view kReadOnly = "/read-only";
inline constexpr std::string_view kHealth = "/health";
inline constexpr std::string_view kHistory = "/history";
inline constexpr std::string_view kSwitchover = "/switchover";
inline constexpr std::string_view kFailover = "/failover";
}  // namespace path

namespace param {
// Maximum replication lag: bytes ("1048576") or with a unit ("16MB", "1GB"), as Patroni takes it.
inline constexpr std::string_view kLag = "lag";
// /history: only the newest N events.
inline constexpr std::string_view kLimit = "limit";
}  // namespace param

// Keys of the admin endpoints' JSON bodies; any other key is a 400, so a typo ("taget") is not
// silently read as "the best replica".
namespace body_key {
inline constexpr std::string_view kTarget = "target";   // string: the node to promote
inline constexpr std::string_view kDryRun = "dry_run";  // bool: check and answer, submit nothing
inline constexpr std::string_view kForce = "force";     // bool, failover: even if the primary is ok
}  // namespace body_key
inline constexpr std::string_view kSwitchoverKeys[] = {body_key::kTarget, body_key::kDryRun};
inline constexpr std::string_view kFailoverKeys[] = {body_key::kTarget, body_key::kForce,
                                                     body_key::kDryRun};

// Health checks answer OPTIONS like GET because HAProxy's `option httpchk` sends OPTIONS unless
// told otherwise; HEAD is what curl -I and some balancers send.
inline constexpr MethodSet kCheckMethods = kGet | kHead | kOptions;
inline constexpr MethodSet kReadMethods = kGet | kHead;

struct RouteSpec {
  std::string_view path;
  Endpoint endpoint;
  // Also served as `path/NODE`, answering for that one node instead of the cluster.
  bool per_node;
  MethodSet methods;
  // Accepted query parameters; any other parameter is a 400. Empty entries are unused slots.
  std::array<std::string_view, 2> params;
  Access access;
};

inline constexpr RouteSpec kRoutes[] = {
    {path::kHealthz, Endpoint::kHealthz, false, kCheckMethods, {}, Access::kPublic},
    {path::kLiveness, Endpoint::kHealthz, false, kCheckMethods, {}, Access::kPublic},
    {path::kReadyz, Endpoint::kReadyz, false, kCheckMethods, {}, Access::kPublic},
    {path::kReadiness, Endpoint::kReadyz, false, kCheckMethods, {}, Access::kPublic},
    {path::kStatus, Endpoint::kStatus, false, kReadMethods, {}, Access::kPublic},
    {path::kMetrics, Endpoint::kMetrics, false, kReadMethods, {}, Access::kPublic},
    {path::kPrimary, Endpoint::kPrimary, true, kCheckMethods, {}, Access::kPublic},
    {path::kReadWrite, Endpoint::kPrimary, true, kCheckMethods, {}, Access::kPublic},
    {path::kMaster, Endpoint::kPrimary, true, kCheckMethods, {}, Access::kPublic},
    {path::kLeader, Endpoint::kPrimary, true, kCheckMethods, {}, Access::kPublic},
    {path::kReplica, Endpoint::kReplica, true, kCheckMethods, {param::kLag}, Access::kPublic},
    {path::kReadOnly, Endpoint::kReadOnly, true, kCheckMethods, {param::kLag}, Access::kPublic},
    {path::kHealth, Endpoint::kHealth, true, kCheckMethods, {}, Access::kPublic},
    {path::kHistory, Endpoint::kHistory, false, kReadMethods, {param::kLimit}, Access::kPublic},
    {path::kSwitchover, Endpoint::kSwitchover, false, kPost, {}, Access::kAdmin},
    {path::kFailover, Endpoint::kFailover, false, kPost, {}, Access::kAdmin},
};

}  // namespace pgfailover::http
