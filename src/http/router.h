// The HTTP API as a pure function: a request and the current snapshot in, a response out. No
// sockets, no clock reads, no locks, so every endpoint, status code and body is tested without a
// network, and the server (http_server.h) is only a thin adapter around this.
//
// The admin endpoints (POST /switchover, POST /failover) check the request against the snapshot
// so the operator gets a clear answer at once (409 something is in progress, 412 not safe), and
// hand an accepted request to the loop through `RouteContext::submit`; the decision judges it
// again against the tick that takes it, and its outcome appears in GET /history.
//
// With several pgfailover instances (docs/coordination.md), only the acting one carries out admin
// requests: another answers them, once the token is checked, with 307 to the acting instance's
// API (`Location: <acting_api_url><path and query>`; 307 keeps the method and the body), or
// 503 when no instance acts or its API URL is unknown. Every other route answers from this
// instance's own observations, whether it acts or not.
//
// Deliberately not here: reading the snapshot store or the clock (the caller passes both),
// access logs, and any call into PostgreSQL. route() never throws: a bug inside a handler
// becomes a 500 with a JSON body.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secret.h"
#include "common/time.h"
#include "core/snapshot.h"
#include "http/routes.h"

namespace pgfailover::metrics {
class Metrics;
}

namespace pgfailover::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Hands an operator's request to the tick loop (runtime::AdminQueue::submit): the id the request
// was given, or nullopt when too many requests already wait. Called from HTTP threads.
using SubmitRequest = std::function<std::optional<std::uint64_t>(core::AdminRequest)>;

// The lag limit a switchover target must be within when the caller passes none: the default of
// failover.max_lag_bytes.
inline constexpr std::uint64_t kDefaultMaxLagBytes = 16ull * 1024 * 1024;

struct Request {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // percent-decoded, without the query string
  // The request target as sent (path and query, not decoded), which a redirect to the acting
  // instance repeats; empty when the caller built the request from parts (then the path and
  // query are encoded again).
  std::string target;
  // Query parameters in the order given, percent-decoded, repeats kept (the router rejects
  // repeats of a parameter it knows, rather than silently picking one).
  std::vector<std::pair<std::string, std::string>> query;
  HeaderList headers;
  std::string body;

  // The first header with this name, compared case-insensitively as HTTP requires.
  std::optional<std::string> header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  HeaderList headers;  // beyond Content-Type, e.g. Allow on a 405

  std::optional<std::string> header(std::string_view name) const;
};

// What the router needs besides the request and the snapshot. Plain values and pointers the
// caller owns; nothing here is read from a clock or a global.
struct RouteContext {
  // The steady clock at the time of the request, compared with the snapshot's tick_at.
  SteadyTime now{};
  // The snapshot counts as stale, and the loop as stuck, once its tick is older than this.
  Millis max_tick_age = kDefaultMaxTickAge;
  // Renders /metrics; null answers /metrics with 503.
  const metrics::Metrics* metrics = nullptr;
  // The bearer token admin routes require; null or empty disables them (403).
  const Secret* admin_token = nullptr;
  // When set, the current token instead (a reload may replace it while requests are served).
  std::function<Secret()> admin_token_source;
  // Where accepted admin requests go; empty answers them with 503 after every check passed.
  SubmitRequest submit;
  // A switchover target must stream within this many bytes of the primary (the decision's
  // failover.max_lag_bytes), so the pre-check refuses what the decision would refuse.
  std::uint64_t max_lag_bytes = kDefaultMaxLagBytes;
};

inline constexpr std::string_view kJsonContentType = "application/json";
// Prometheus text exposition format 0.0.4.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

Response route(const Request& request, const core::Snapshot& snapshot, const RouteContext& context);

// "GET" → kGet; anything unknown → kNoMethod.
Method parseMethod(std::string_view method);
// "GET, HEAD, OPTIONS": the Allow header for a set of methods.
std::string allowHeader(MethodSet methods);

// The admin gate every Access::kAdmin route passes first: nullopt when the request carries
// `Authorization: Bearer <token>` matching `context.admin_token` (compared in constant time),
// otherwise the 401 or 403 to send.
std::optional<Response> checkAdminAccess(const Request& request, const RouteContext& context);

}  // namespace pgfailover::http
