#include "http/router.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>
#include <variant>

#include "common/lsn.h"
#include "http/health_checks.h"
#include "http/status_json.h"
#include "metrics/metrics.h"

namespace pgfailover::http {

namespace {

using core::NodeSnapshot;
using core::Snapshot;

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::string> findHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers)
    if (equalsIgnoreCase(key, name)) return value;
  return std::nullopt;
}

Response jsonResponse(int status, const Json& body) {
  Response response;
  response.status = status;
  response.content_type = std::string(kJsonContentType);
  response.body = dumpJson(body);
  return response;
}

Response errorResponse(int status, std::string_view error, std::string_view message) {
  Json body;
  body["error"] = error;
  body["message"] = message;
  return jsonResponse(status, body);
}

std::string secondsText(Millis duration) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds(duration));
  return buffer;
}

// Which row of kRoutes a path names, and the NODE of a per-node form.
struct Match {
  const RouteSpec* spec = nullptr;
  std::optional<std::string> node;
};

Match matchRoute(std::string_view path) {
  // "/primary/" is "/primary": load balancer configs differ in trailing slashes.
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  for (const auto& spec : kRoutes) {
    if (path == spec.path) return {&spec, std::nullopt};
    if (!spec.per_node || path.size() <= spec.path.size() + 1) continue;
    if (path.substr(0, spec.path.size()) != spec.path || path[spec.path.size()] != '/') continue;
    std::string_view node = path.substr(spec.path.size() + 1);
    if (node.find('/') != std::string_view::npos) continue;
    return {&spec, std::string(node)};
  }
  return {};
}

struct Query {
  std::optional<std::uint64_t> max_lag_bytes;
};

// Checks every parameter against the route's list; the error names the parameter so an
// operator sees which part of a load balancer's check line is wrong.
std::variant<Query, Response> parseQuery(const Request& request, const RouteSpec& spec) {
  Query query;
  std::vector<std::string_view> seen;
  for (const auto& [key, value] : request.query) {
    const bool known = std::find(spec.params.begin(), spec.params.end(), key) != spec.params.end();
    if (!known || key.empty())
      return errorResponse(400, "bad request",
                           "unknown query parameter '" + key + "' for " + std::string(spec.path));
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      return errorResponse(400, "bad request",
                           "query parameter '" + key + "' given more than once");
    seen.push_back(key);
    if (key == param::kLag) {
      query.max_lag_bytes = parseByteSize(value);
      if (!query.max_lag_bytes)
        return errorResponse(400, "bad request",
                             "query parameter 'lag': '" + value +
                                 "' is not a byte size (for example 1048576, 16MB, 1GB)");
    }
  }
  return query;
}

// How long ago the last tick was, never negative (a request clock read just before the publish
// can be older than the tick it sees).
Millis tickAge(const Snapshot& snapshot, const RouteContext& context) {
  return std::max(Millis{0}, elapsed(snapshot.tick_at, context.now));
}

bool isStale(const Snapshot& snapshot, const RouteContext& context) {
  return tickAge(snapshot, context) > context.max_tick_age;
}

Response healthz(const Snapshot& snapshot, const RouteContext& context) {
  const Millis age = tickAge(snapshot, context);
  const bool stale = age > context.max_tick_age;
  Json body;
  body["status"] = stale ? "stuck" : "ok";
  body["tick"] = snapshot.tick;
  body["tick_age_ms"] = age.count();
  body["max_tick_age_ms"] = context.max_tick_age.count();
  return jsonResponse(stale ? 503 : 200, body);
}

Response readyz(const Snapshot& snapshot) {
  Json body;
  body["ready"] = snapshot.ready;
  body["state"] = core::toString(snapshot.state);
  return jsonResponse(snapshot.ready ? 200 : 503, body);
}

Response metricsResponse(const RouteContext& context) {
  if (context.metrics == nullptr)
    return errorResponse(503, "unavailable", "metrics are not enabled in this process");
  Response response;
  response.content_type = std::string(kMetricsContentType);
  response.body = context.metrics->render();
  return response;
}

std::string_view checkName(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kPrimary:
      return "primary";
    case Endpoint::kReplica:
      return "replica";
    case Endpoint::kReadOnly:
      return "read-only";
    case Endpoint::kHealth:
      return "health";
    default:
      return "unknown";
  }
}

CheckResult runCheck(Endpoint endpoint, const Snapshot& snapshot, const NodeSnapshot* node,
                     const Query& query) {
  switch (endpoint) {
    case Endpoint::kPrimary:
      return node ? checkPrimary(snapshot, *node) : checkClusterPrimary(snapshot);
    case Endpoint::kReplica:
      return node ? checkReplica(snapshot, *node, query.max_lag_bytes)
                  : checkClusterReplica(snapshot, query.max_lag_bytes);
    case Endpoint::kReadOnly:
      return node ? checkReadOnly(snapshot, *node, query.max_lag_bytes)
                  : checkClusterReadOnly(snapshot, query.max_lag_bytes);
    case Endpoint::kHealth:
      return node ? checkHealth(snapshot, *node) : checkClusterHealth(snapshot);
    default:
      return {false, "not a role check", node};
  }
}

Response roleCheck(const RouteSpec& spec, const std::optional<std::string>& node_name,
                   const Snapshot& snapshot, const RouteContext& context, const Query& query) {
  const NodeSnapshot* node = nullptr;
  if (node_name) {
    node = snapshot.node(*node_name);
    if (node == nullptr)
      return errorResponse(404, "not found", "no node named '" + *node_name + "'");
  }
  CheckResult result;
  if (isStale(snapshot, context)) {
    // A stuck loop's last view may predate a failover; vouching for it could route writes to a
    // demoted node, so every role check fails until the loop ticks again.
    result = {false,
              "pgfailover's view is stale: the last tick was " +
                  secondsText(tickAge(snapshot, context)) + " ago (limit " +
                  secondsText(context.max_tick_age) + ")",
              node};
  } else {
    result = runCheck(spec.endpoint, snapshot, node, query);
  }
  return jsonResponse(result.ok ? 200 : 503, checkJson(snapshot, checkName(spec.endpoint), result));
}

Response routeUnchecked(const Request& request, const Snapshot& snapshot,
                        const RouteContext& context) {
  const Match match = matchRoute(request.path);
  if (match.spec == nullptr)
    return errorResponse(404, "not found", "no endpoint at '" + request.path + "'");
  const RouteSpec& spec = *match.spec;

  // Every known path answers OPTIONS, with at least the Allow header.
  const MethodSet allowed = spec.methods | kOptions;
  const Method method = parseMethod(request.method);
  if ((allowed & method) == 0) {
    Response response =
        errorResponse(405, "method not allowed",
                      "method " + request.method + " is not allowed on " + std::string(spec.path));
    response.headers.emplace_back("Allow", allowHeader(allowed));
    return response;
  }
  if (method == kOptions && (spec.methods & kOptions) == 0) {
    Response response;
    response.content_type.clear();
    response.headers.emplace_back("Allow", allowHeader(allowed));
    return response;
  }

  if (spec.access == Access::kAdmin) {
    if (auto refusal = checkAdminAccess(request, context)) return *refusal;
  }

  auto parsed = parseQuery(request, spec);
  if (auto* refusal = std::get_if<Response>(&parsed)) return *refusal;
  const Query& query = std::get<Query>(parsed);

  switch (spec.endpoint) {
    case Endpoint::kHealthz:
      return healthz(snapshot, context);
    case Endpoint::kReadyz:
      return readyz(snapshot);
    case Endpoint::kStatus:
      return jsonResponse(200, statusJson(snapshot));
    case Endpoint::kMetrics:
      return metricsResponse(context);
    case Endpoint::kPrimary:
    case Endpoint::kReplica:
    case Endpoint::kReadOnly:
    case Endpoint::kHealth:
      return roleCheck(spec, match.node, snapshot, context, query);
  }
  return errorResponse(500, "internal error", "route without a handler");
}

}  // namespace

std::optional<std::string> Request::header(std::string_view name) const {
  return findHeader(headers, name);
}

std::optional<std::string> Response::header(std::string_view name) const {
  return findHeader(headers, name);
}

Method parseMethod(std::string_view method) {
  if (method == "GET") return kGet;
  if (method == "HEAD") return kHead;
  if (method == "OPTIONS") return kOptions;
  if (method == "POST") return kPost;
  if (method == "PUT") return kPut;
  if (method == "PATCH") return kPatch;
  if (method == "DELETE") return kDelete;
  return kNoMethod;
}

std::string allowHeader(MethodSet methods) {
  static constexpr std::pair<Method, std::string_view> kNames[] = {
      {kGet, "GET"}, {kHead, "HEAD"},   {kOptions, "OPTIONS"}, {kPost, "POST"},
      {kPut, "PUT"}, {kPatch, "PATCH"}, {kDelete, "DELETE"}};
  std::string text;
  for (const auto& [bit, name] : kNames) {
    if ((methods & bit) == 0) continue;
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

std::optional<Response> checkAdminAccess(const Request& request, const RouteContext& context) {
  if (context.admin_token == nullptr || context.admin_token->empty())
    return errorResponse(403, "forbidden", "the admin API is disabled: no token is configured");
  constexpr std::string_view kScheme = "Bearer ";
  const auto authorization = request.header("Authorization");
  const bool has_bearer = authorization && authorization->size() > kScheme.size() &&
                          equalsIgnoreCase(authorization->substr(0, kScheme.size()), kScheme);
  bool matches = false;
  if (has_bearer) {
    // Constant time in the token's content, so response timing does not reveal a prefix.
    const std::string_view given = std::string_view(*authorization).substr(kScheme.size());
    const std::string& expected = context.admin_token->revealForUse();
    unsigned char difference = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < given.size(); ++i)
      difference |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
    matches = difference == 0;
  }
  if (matches) return std::nullopt;
  Response response = errorResponse(
      401, "unauthorized",
      has_bearer ? "the bearer token is not valid" : "this endpoint requires a bearer token");
  response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pgfailover\"");
  return response;
}

Response route(const Request& request, const Snapshot& snapshot, const RouteContext& context) {
  try {
    return routeUnchecked(request, snapshot, context);
  } catch (const std::exception& error) {
    return errorResponse(500, "internal error", error.what());
  } catch (...) {
    return errorResponse(500, "internal error", "unknown exception");
  }
}

}  // namespace pgfailover::http
