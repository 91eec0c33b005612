#include "http/router.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <exception>
#include <span>
#include <variant>

#include "common/lsn.h"
#include "core/admission.h"
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
  std::optional<std::size_t> limit;
};

// A positive whole number, digits only ("10"; not "+10", "1e3", "0").
std::optional<std::size_t> parsePositive(std::string_view text) {
  std::size_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value == 0) return std::nullopt;
  return value;
}

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
    } else if (key == param::kLimit) {
      query.limit = parsePositive(value);
      if (!query.limit)
        return errorResponse(400, "bad request",
                             "query parameter 'limit': '" + value +
                                 "' is not a positive whole number (for example 20)");
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

// --- GET /history ---------------------------------------------------------------------------

Response history(const Snapshot& snapshot, const Query& query) {
  Response response;
  response.content_type = std::string(kJsonContentType);
  response.body = snapshot.history_json ? *snapshot.history_json : "[]";
  if (!query.limit) return response;
  Json events = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (events.is_discarded() || !events.is_array())
    return errorResponse(500, "internal error", "the published history is not a JSON array");
  if (events.size() > *query.limit)
    events.erase(events.begin(), events.end() - static_cast<std::ptrdiff_t>(*query.limit));
  response.body = dumpJson(events, 2);
  return response;
}

// --- POST /switchover, POST /failover ---------------------------------------------------------

// A refusal of an admin request that is well-formed but cannot be carried out now: 409 when
// something is in progress, 412 when it is not safe. `reason` is the sentence for the operator.
Response refusal(int status, std::string_view error, const std::string& reason,
                 const Snapshot& snapshot) {
  Json body;
  body["error"] = error;
  body["reason"] = reason;
  body["state"] = core::toString(snapshot.state);
  return jsonResponse(status, body);
}

Response conflict(const std::string& reason, const Snapshot& snapshot) {
  return refusal(409, "conflict", reason, snapshot);
}

Response preconditionFailed(const std::string& reason, const Snapshot& snapshot) {
  return refusal(412, "precondition failed", reason, snapshot);
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

struct AdminBody {
  std::optional<std::string> target;
  bool force = false;
  bool dry_run = false;
};

std::string keyList(std::span<const std::string_view> keys) {
  std::string text;
  for (auto key : keys) {
    if (!text.empty()) text += ", ";
    text += key;
  }
  return text;
}

// The body as a JSON object with only `keys`; an empty body (Content-Length: 0) is `{}`. Every
// problem is a 400 naming the key, so a typo is not read as "use the default".
std::variant<AdminBody, Response> parseAdminBody(const Request& request, std::string_view path,
                                                 std::span<const std::string_view> keys) {
  AdminBody parsed;
  const bool blank = std::all_of(request.body.begin(), request.body.end(), [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
  });
  if (blank) return parsed;
  Json body;
  try {
    body = Json::parse(request.body);
  } catch (const Json::parse_error& error) {
    return errorResponse(
        400, "bad request",
        "the body of " + std::string(path) + " is not valid JSON: " + error.what());
  }
  if (!body.is_object())
    return errorResponse(400, "bad request",
                         "the body of " + std::string(path) + " must be a JSON object, not " +
                             body.type_name() + " (it takes: " + keyList(keys) + ")");
  for (const auto& [key, value] : body.items()) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      return errorResponse(400, "bad request",
                           "unknown key '" + key + "' in the body of " + std::string(path) +
                               " (it takes: " + keyList(keys) + ")");
    if (key == body_key::kTarget) {
      if (value.is_null()) continue;  // null: the best replica, as when the key is absent
      if (!value.is_string() || value.get<std::string>().empty())
        return errorResponse(
            400, "bad request",
            std::string("'target' must be a node name (a non-empty string), not ") +
                (value.is_string() ? "an empty string" : value.type_name()));
      parsed.target = value.get<std::string>();
    } else {
      if (!value.is_boolean())
        return errorResponse(400, "bad request",
                             "'" + key + "' must be true or false, not " + value.type_name());
      (key == body_key::kForce ? parsed.force : parsed.dry_run) = value.get<bool>();
    }
  }
  return parsed;
}

std::optional<std::size_t> nodeIndex(const Snapshot& snapshot, const std::string& name) {
  for (std::size_t i = 0; i < snapshot.nodes.size(); ++i)
    if (snapshot.nodes[i].name == name) return i;
  return std::nullopt;
}

// What is already moving the primary role (or about to), which a new request must not overlap.
// `timer_counts`: a running failover timeout counts too (a switchover must not race it; an
// operator failover is meant for exactly that situation).
std::optional<std::string> inProgress(const Snapshot& snapshot, bool timer_counts) {
  if (snapshot.switchover) {
    const auto& sw = *snapshot.switchover;
    if (sw.from < snapshot.nodes.size() && sw.to < snapshot.nodes.size())
      return "a switchover from " + quoted(snapshot.nodes[sw.from].name) + " to " +
             quoted(snapshot.nodes[sw.to].name) + " is in progress";
    return "a switchover is in progress";
  }
  switch (snapshot.state) {
    case core::ClusterState::kPromoting:
      return "a promotion is in progress (failover or switchover); see GET /history";
    case core::ClusterState::kSwitchingOver:
      return "a switchover is in progress";
    case core::ClusterState::kFencingRequired:
      return "a node must be fenced first: " + snapshot.reason;
    case core::ClusterState::kPrimaryFailing:
      if (!timer_counts) return std::nullopt;
      if (snapshot.timeout)
        return "the primary is failing and a failover timeout is running (" +
               std::string(core::toString(snapshot.timeout->kind)) + ", " +
               secondsText(snapshot.timeout->elapsed) + " of " +
               secondsText(snapshot.timeout->total) + "); use /failover to act now";
      return "the primary is failing and a failover may follow; use /failover to act now";
    default:
      return std::nullopt;
  }
}

// Answers that hold for both admin endpoints before anything else is looked at.
std::optional<Response> checkAdminView(const Snapshot& snapshot, const RouteContext& context,
                                       bool timer_counts, bool primary_required = true) {
  if (isStale(snapshot, context))
    return errorResponse(503, "unavailable",
                         "pgfailover's view is stale: the last tick was " +
                             secondsText(tickAge(snapshot, context)) +
                             " ago; the loop would not take the request");
  if (!snapshot.ready || snapshot.state == core::ClusterState::kInitializing)
    return preconditionFailed("the cluster is initializing: not every node has been probed yet",
                              snapshot);
  if (auto busy = inProgress(snapshot, timer_counts)) return conflict(*busy, snapshot);
  if (snapshot.split_brain || snapshot.state == core::ClusterState::kSplitBrain)
    return preconditionFailed(
        "the cluster is split-brain: more than one node accepts writes; an operator must decide "
        "which history to keep",
        snapshot);
  if (primary_required && (!snapshot.primary || *snapshot.primary >= snapshot.nodes.size()))
    return preconditionFailed(std::string("no primary is known (state ") +
                                  core::toString(snapshot.state) + "); nothing to move away from",
                              snapshot);
  return std::nullopt;
}

// The named target as a node index, or the 400 naming the nodes there are.
std::variant<std::size_t, Response> findTarget(const Snapshot& snapshot, const std::string& name) {
  if (const auto index = nodeIndex(snapshot, name)) return *index;
  std::string names;
  for (const auto& node : snapshot.nodes) names += (names.empty() ? "" : ", ") + node.name;
  return errorResponse(400, "bad request",
                       "'target': no node named " + quoted(name) + " (nodes: " + names + ")");
}

// The body, and its target resolved to a node index: every 400 an admin request can get.
struct AdminInput {
  AdminBody body;
  std::optional<std::size_t> target;
};

std::variant<AdminInput, Response> parseAdminInput(const Request& request, const Snapshot& snapshot,
                                                   std::string_view path,
                                                   std::span<const std::string_view> keys) {
  auto parsed = parseAdminBody(request, path, keys);
  if (auto* bad = std::get_if<Response>(&parsed)) return *bad;
  AdminInput input{std::get<AdminBody>(parsed), std::nullopt};
  if (input.body.target) {
    auto target = findTarget(snapshot, *input.body.target);
    if (auto* bad = std::get_if<Response>(&target)) return *bad;
    input.target = std::get<std::size_t>(target);
  }
  return input;
}

// The primary a request moves away from; null when none is known (a forced failover).
Json primaryName(const Snapshot& snapshot) {
  if (!snapshot.primary || *snapshot.primary >= snapshot.nodes.size()) return nullptr;
  return snapshot.nodes[*snapshot.primary].name;
}

Response submitRequest(const core::AdminRequest& request, const Snapshot& snapshot,
                       const RouteContext& context) {
  const std::string kind = core::toString(request.kind);
  if (!context.submit)
    return errorResponse(503, "unavailable",
                         "this server is not connected to a running loop; " + kind +
                             " requests cannot be carried out");
  const auto id = context.submit(request);
  if (!id) {
    Response response = errorResponse(
        429, "too many requests",
        "too many requests are waiting for the loop (it takes one per tick); retry in a moment");
    response.headers.emplace_back("Retry-After", "1");
    return response;
  }
  Json body;
  body["accepted"] = true;
  body["id"] = *id;
  body["kind"] = kind;
  body["from"] = primaryName(snapshot);
  body["to"] = snapshot.nodes[*request.target].name;
  body["force"] = request.force;
  body["history"] = path::kHistory;
  return jsonResponse(202, body);
}

Response dryRun(const core::AdminRequest& request, const Snapshot& snapshot) {
  Json body;
  body["dry_run"] = true;
  body["would"] = core::toString(request.kind);
  body["from"] = primaryName(snapshot);
  body["to"] = snapshot.nodes[*request.target].name;
  body["force"] = request.force;
  return jsonResponse(200, body);
}

// The operator request as core::admit() judges it, from what the snapshot shows: the nodes as
// last probed, the /primary and /replica checks, and the decision's memory.
core::AdmissionInput admissionInput(core::RequestKind kind, const AdminInput& input,
                                    const Snapshot& snapshot, const RouteContext& context) {
  core::AdmissionInput admission;
  admission.kind = kind;
  admission.target = input.target;
  admission.force = input.body.force;
  for (const auto& node : snapshot.nodes)
    admission.nodes.push_back(
        core::admissionNode(node.observation, node.streamed_timeline,
                            checkReplica(snapshot, node, context.max_lag_bytes).ok));
  if (snapshot.primary && *snapshot.primary < snapshot.nodes.size())
    admission.primary = snapshot.primary;
  admission.primary_ok = admission.primary && checkClusterPrimary(snapshot).ok;
  admission.system_identifier = snapshot.system_identifier;
  admission.newest_timeline = snapshot.newest_timeline;
  admission.unconfirmed_promotion = snapshot.unconfirmed_promotion;
  admission.promotion_may_land = snapshot.promotion_may_land;
  return admission;
}

// Why node i cannot be promoted by an operator failover, in words. Lag is the operator's call.
std::string promotionProblemText(const Snapshot& snapshot, const core::AdmissionInput& admission,
                                 std::size_t i, core::Refusal problem) {
  const auto& node = snapshot.nodes[i];
  const auto& seen = node.observation;
  const std::string name = quoted(node.name);
  switch (problem) {
    case core::Refusal::kOtherCluster:
      return "node " + name + " belongs to another cluster (system identifier " +
             std::to_string(seen.system_identifier) + ", the cluster's is " +
             std::to_string(admission.system_identifier) + ")";
    case core::Refusal::kOlderTimeline:
      return "node " + name + " is on timeline " + std::to_string(admission.nodes[i].timeline) +
             ", the cluster's newest is " + std::to_string(admission.newest_timeline) +
             ": it never followed that promotion, and promoted it would fork a second history "
             "under the same timeline number";
    default:
      break;
  }
  if (!seen.probed) return "node " + name + " has not been probed yet";
  if (!seen.reachable) {
    std::string reason = "node " + name + " is unreachable (" + core::toString(seen.failure) + ")";
    if (!seen.error.empty()) reason += ": " + seen.error;
    return reason;
  }
  return "node " + name + " is not in recovery (it is not a replica)";
}

// A refusal of core::admit() as the HTTP answer: 409 for a healthy primary (a switchover is the
// way, or force), 412 for every other refusal.
Response admissionRefused(const core::Admission& admitted, const core::AdmissionInput& admission,
                          const Snapshot& snapshot, const RouteContext& context) {
  using core::Refusal;
  const std::string about = admitted.about ? quoted(snapshot.nodes[*admitted.about].name) : "";
  const bool switchover = admission.kind == core::RequestKind::kSwitchover;
  switch (*admitted.refusal) {
    case Refusal::kNoPrimaryKnown:
      if (switchover)
        return preconditionFailed(std::string("no primary is known (state ") +
                                      core::toString(snapshot.state) +
                                      "); nothing to move away from",
                                  snapshot);
      return preconditionFailed(std::string("no primary is known (state ") +
                                    core::toString(snapshot.state) +
                                    "): a failover then needs an explicit \"target\" and "
                                    "\"force\": true, because only an operator can tell which "
                                    "node holds the data to keep",
                                snapshot);
    case Refusal::kSecondWritable:
      return preconditionFailed(about +
                                    " accepts writes; promoting another node would make it a "
                                    "second primary",
                                snapshot);
    case Refusal::kAlreadyPrimary:
      return preconditionFailed(about + " is already the primary", snapshot);
    case Refusal::kPrimaryNotHealthy:
      return preconditionFailed("a switchover needs a healthy writable primary: " +
                                    checkClusterPrimary(snapshot).reason + " (use /failover)",
                                snapshot);
    case Refusal::kPrimaryHealthy:
      return conflict("primary " + about +
                          " is healthy; use /switchover, or force the failover "
                          "(it fences the primary and may lose its latest writes)",
                      snapshot);
    case Refusal::kNotAHealthyReplica:
      return preconditionFailed(
          "target " + about + " cannot take over without losing writes: " +
              checkReplica(snapshot, snapshot.nodes[*admitted.about], context.max_lag_bytes).reason,
          snapshot);
    case Refusal::kNotPromotable:
    case Refusal::kOtherCluster:
    case Refusal::kOlderTimeline:
      return preconditionFailed(
          "target " + about + " cannot be promoted: " +
              promotionProblemText(snapshot, admission, *admitted.about, *admitted.refusal),
          snapshot);
    case Refusal::kPromotionMayLand:
      return preconditionFailed(
          "the promotion of " + about + " was issued and has been neither seen to land nor " +
              "cancelled by a restart of " + about +
              ": it may still land, and promoting another node would make two primaries; "
              "bring " +
              about + " back into pgfailover's sight, or restart it, first (force does not " +
              "override this)",
          snapshot);
    case Refusal::kNoTarget:
      break;
  }
  if (switchover)
    return preconditionFailed("no replica can take over without losing writes: " +
                                  checkClusterReplica(snapshot, context.max_lag_bytes).reason,
                              snapshot);
  std::string problems;
  for (std::size_t i = 0; i < snapshot.nodes.size(); ++i) {
    if (i == admission.primary) continue;
    if (auto problem = core::promotionProblem(admission, i))
      problems +=
          (problems.empty() ? "" : "; ") + promotionProblemText(snapshot, admission, i, *problem);
  }
  return preconditionFailed("no reachable replica in recovery to promote" +
                                (problems.empty() ? std::string() : ": " + problems),
                            snapshot);
}

// Admits the request (core::admit, as the decision will again when it carries it out), then
// answers the dry run or hands it to the loop.
Response admitAndSubmit(core::RequestKind kind, const AdminInput& input, const Snapshot& snapshot,
                        const RouteContext& context) {
  const auto admission = admissionInput(kind, input, snapshot, context);
  const auto admitted = core::admit(admission);
  if (admitted.refusal) return admissionRefused(admitted, admission, snapshot, context);
  core::AdminRequest admin;
  admin.kind = kind;
  admin.target = admitted.target;
  admin.force = kind == core::RequestKind::kFailover && input.body.force;
  if (input.body.dry_run) return dryRun(admin, snapshot);
  return submitRequest(admin, snapshot, context);
}

// POST /switchover: the primary commits, the target streams within the lag limit, nothing else
// is moving the primary role. Then the primary is fenced and the target promoted once it has
// replayed everything (the decision's switching_over state).
Response switchover(const Request& request, const Snapshot& snapshot, const RouteContext& context) {
  auto parsed = parseAdminInput(request, snapshot, path::kSwitchover, kSwitchoverKeys);
  if (auto* bad = std::get_if<Response>(&parsed)) return *bad;
  if (auto refused = checkAdminView(snapshot, context, /*timer_counts=*/true)) return *refused;
  return admitAndSubmit(core::RequestKind::kSwitchover, std::get<AdminInput>(parsed), snapshot,
                        context);
}

// POST /failover: promote a replica now, skipping the failover timeout and the replica's
// confirmation. Only when the primary is not healthy, unless forced.
Response failover(const Request& request, const Snapshot& snapshot, const RouteContext& context) {
  auto parsed = parseAdminInput(request, snapshot, path::kFailover, kFailoverKeys);
  if (auto* bad = std::get_if<Response>(&parsed)) return *bad;
  if (auto refused =
          checkAdminView(snapshot, context, /*timer_counts=*/false, /*primary_required=*/false))
    return *refused;
  return admitAndSubmit(core::RequestKind::kFailover, std::get<AdminInput>(parsed), snapshot,
                        context);
}

// --- Admin requests to an instance that does not act ------------------------------------------

// Percent-encodes everything but unreserved characters and `keep` (RFC 3986), for a target
// rebuilt from its decoded parts.
std::string percentEncode(std::string_view text, std::string_view keep) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~' ||
        keep.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

// The path and query as the client sent them, so the acting instance sees the same request.
std::string originalTarget(const Request& request) {
  if (!request.target.empty()) return request.target;
  std::string target = percentEncode(request.path, "/");
  char separator = '?';
  for (const auto& [key, value] : request.query) {
    target += separator;
    target += percentEncode(key, "") + "=" + percentEncode(value, "");
    separator = '&';
  }
  return target;
}

// Why `url` cannot be a redirect's base, or nullopt when it can: an http(s) URL with a host,
// without credentials, a query or a fragment, and nothing that could end a header line. The URL
// comes from etcd, where any instance (or anyone with write access) put it.
std::optional<std::string> apiUrlProblem(std::string_view url) {
  std::string_view rest;
  if (url.rfind("http://", 0) == 0)
    rest = url.substr(7);
  else if (url.rfind("https://", 0) == 0)
    rest = url.substr(8);
  else
    return std::string("it is not an http:// or https:// URL");
  for (const char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return std::string("it contains a space or a control character");
  const std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) return std::string("it names no host");
  if (authority.find('@') != std::string_view::npos) return std::string("it carries credentials");
  if (url.find_first_of("?#") != std::string_view::npos)
    return std::string("it has a query or a fragment");
  return std::nullopt;
}

Response noActingInstance(const Snapshot& snapshot, const std::string& why) {
  const auto& coordination = snapshot.coordination;
  Json body;
  body["error"] = "unavailable";
  body["message"] = "this instance (" + quoted(coordination.instance) +
                    ") does not act, and the request cannot be sent to one that does: " + why +
                    "; retry in a few seconds";
  body["instance"] = coordination.instance;
  body["acting"] =
      coordination.acting_instance.empty() ? Json(nullptr) : Json(coordination.acting_instance);
  body["etcd_reachable"] = coordination.etcd_reachable;
  Response response = jsonResponse(503, body);
  response.headers.emplace_back("Retry-After", "5");
  return response;
}

// An admin request to an instance that does not act: 307 to the acting instance (a client that
// follows it sends the same method and body there), or 503 saying why there is none to send it
// to. Only reached after the token was checked, so a redirect never answers an unauthenticated
// request.
Response redirectToActing(const Request& request, const Snapshot& snapshot) {
  const auto& coordination = snapshot.coordination;
  const std::string& acting = coordination.acting_instance;
  if (acting.empty())
    return noActingInstance(
        snapshot, coordination.etcd_reachable
                      ? "no instance holds the leadership in etcd (an election is under way)"
                      : "etcd is unreachable from this instance, so it cannot tell which "
                        "instance acts");
  if (acting == coordination.instance)
    return noActingInstance(snapshot,
                            "this instance holds the leader key in etcd but may not act now (its "
                            "last lease renewal is too old)");
  if (coordination.acting_api_url.empty())
    return noActingInstance(
        snapshot, "the acting instance " + quoted(acting) + " registered no API URL in etcd");
  if (auto problem = apiUrlProblem(coordination.acting_api_url))
    return noActingInstance(snapshot, "the API URL the acting instance " + quoted(acting) +
                                          " registered in etcd is unusable: " + *problem);
  std::string base = coordination.acting_api_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string location = base + originalTarget(request);
  Json body;
  body["error"] = "not acting";
  body["message"] = "this instance (" + quoted(coordination.instance) +
                    ") does not act; admin requests go to the acting instance " + quoted(acting) +
                    " at " + location;
  body["instance"] = coordination.instance;
  body["acting"] = acting;
  body["term"] = coordination.term;
  body["location"] = location;
  Response response = jsonResponse(307, body);
  response.headers.emplace_back("Location", location);
  return response;
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
    // Before the query and the body are looked at: the acting instance judges the whole
    // request, against its own view.
    if (!snapshot.coordination.acting) return redirectToActing(request, snapshot);
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
    case Endpoint::kHistory:
      return history(snapshot, query);
    case Endpoint::kSwitchover:
      return switchover(request, snapshot, context);
    case Endpoint::kFailover:
      return failover(request, snapshot, context);
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
  const Secret token = context.admin_token_source ? context.admin_token_source()
                       : context.admin_token      ? *context.admin_token
                                                  : Secret();
  if (token.empty())
    return errorResponse(403, "forbidden", "the admin API is disabled: no token is configured");
  constexpr std::string_view kScheme = "Bearer ";
  const auto authorization = request.header("Authorization");
  const bool has_bearer = authorization && authorization->size() > kScheme.size() &&
                          equalsIgnoreCase(authorization->substr(0, kScheme.size()), kScheme);
  bool matches = false;
  if (has_bearer) {
    // Constant time in the token's content, so response timing does not reveal a prefix.
    const std::string_view given = std::string_view(*authorization).substr(kScheme.size());
    const std::string& expected = token.revealForUse();
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
