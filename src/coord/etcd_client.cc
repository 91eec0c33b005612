#include "coord/etcd_client.h"

#include <httplib.h>

#include <chrono>
#include <utility>

namespace pgfailover::coord {

using nlohmann::json;

namespace {

// gRPC status codes the gateway reports in {"code": N}.
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcUnauthenticated = 16;

// etcd's answers to pgfailover's calls are a few KiB; anything far larger is not etcd.
constexpr std::size_t kMaxAnswerBytes = 4 * 1024 * 1024;

bool tokenRejected(const GatewayError& error) {
  // etcd 3.4 and 3.5: "etcdserver: invalid auth token" (Unauthenticated); a simple token also
  // expires after --auth-token-ttl without use.
  return error.grpc_code == kGrpcUnauthenticated ||
         error.message.find("invalid auth token") != std::string::npos;
}

bool memberUnavailable(const GatewayError& error) {
  // That member has no leader or timed out waiting for one: another member may have one.
  return error.grpc_code == kGrpcUnavailable || error.grpc_code == kGrpcDeadlineExceeded ||
         error.message.find("no leader") != std::string::npos ||
         error.message.find("timed out") != std::string::npos;
}

}  // namespace

struct EtcdClient::Endpoint {
  std::string url;
  std::unique_ptr<httplib::Client> client;
  std::string setup_error;  // why no client could be made (a malformed URL)
};

EtcdClient::EtcdClient(EtcdClientOptions options) : options_(std::move(options)) {
  for (const auto& url : options_.endpoints) {
    auto endpoint = std::make_unique<Endpoint>();
    endpoint->url = url;
    try {
      // httplib throws on a scheme it does not support.
      endpoint->client =
          options_.cert_file.empty()
              ? std::make_unique<httplib::Client>(url)
              : std::make_unique<httplib::Client>(url, options_.cert_file, options_.key_file);
    } catch (const std::exception& e) {
      endpoint->setup_error = e.what();
    }
    if (endpoint->client && !endpoint->client->is_valid()) {
      endpoint->client.reset();
      endpoint->setup_error = "not a usable http:// or https:// URL (or unreadable TLS files)";
    }
    if (endpoint->client) {
      auto& c = *endpoint->client;
      c.set_connection_timeout(options_.connect_timeout);
      c.set_read_timeout(options_.request_timeout);
      c.set_write_timeout(options_.request_timeout);
      c.set_keep_alive(true);
      // Small requests on a kept-alive connection: without it Nagle and delayed ACKs add
      // ~40 ms to every call.
      c.set_tcp_nodelay(true);
      if (!options_.ca_file.empty()) {
        c.set_ca_cert_path(options_.ca_file);
        c.enable_server_certificate_verification(true);
      }
    }
    endpoints_.push_back(std::move(endpoint));
  }
}

EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::currentEndpoint() const {
  static const std::string kNone;
  return endpoints_.empty() ? kNone : endpoints_[current_]->url;
}

EtcdResult<json> EtcdClient::post(Endpoint& endpoint, const std::string& path,
                                  const std::string& body, bool with_token, bool& transport_failed,
                                  bool& token_rejected) {
  transport_failed = false;
  token_rejected = false;
  EtcdResult<json> result;
  const std::string where = "etcd " + endpoint.url + " " + path;
  if (!endpoint.client) {
    transport_failed = true;
    result.status = {StatusCode::kInvalidArgument, where + ": " + endpoint.setup_error};
    return result;
  }
  // The gateway ends its error answers with HTTP trailers (Grpc-Trailer-Content-Type), which
  // this cpp-httplib cannot parse: it reports a read error after the whole body arrived. The
  // status and body are therefore collected as they arrive, and a complete JSON body counts as
  // the answer even when the trailer then fails to parse.
  httplib::Request request;
  request.method = "POST";
  request.path = path;
  request.body = body;
  request.set_header("Content-Type", "application/json");
  if (with_token && !token_.empty()) request.set_header("Authorization", token_.revealForUse());
  int status = 0;
  std::string received;
  bool too_large = false;
  request.response_handler = [&](const httplib::Response& head) {
    status = head.status;
    return true;
  };
  request.content_receiver = [&](const char* data, std::size_t length, std::uint64_t,
                                 std::uint64_t) {
    if (received.size() + length > kMaxAnswerBytes) {
      too_large = true;
      return false;
    }
    received.append(data, length);
    return true;
  };
  httplib::Response head;
  httplib::Error transport_error = httplib::Error::Success;
  const bool sent = endpoint.client->send(request, head, transport_error);
  if (too_large) {
    transport_failed = true;
    result.status = {StatusCode::kInternal,
                     where + ": the answer exceeds " + std::to_string(kMaxAnswerBytes) + " bytes"};
    return result;
  }
  const bool answered =
      status != 0 &&
      (sent || !json::parse(received, nullptr, /*allow_exceptions=*/false).is_discarded());
  if (!answered) {
    transport_failed = true;
    const bool timeout = transport_error == httplib::Error::Read ||
                         transport_error == httplib::Error::ConnectionTimeout;
    result.status = {timeout ? StatusCode::kDeadlineExceeded : StatusCode::kUnavailable,
                     where + ": " + httplib::to_string(transport_error) +
                         (timeout ? " (no answer within the deadline)" : "")};
    return result;
  }
  // A streaming call (lease keepalive) answers one JSON object per line.
  std::string text = received;
  if (auto newline = text.find('\n'); newline != std::string::npos) text.resize(newline);
  if (status != 200) {
    GatewayError error = decodeError(received);
    token_rejected = tokenRejected(error);
    transport_failed = memberUnavailable(error);
    StatusCode code = StatusCode::kFailedPrecondition;
    if (token_rejected || (error.grpc_code == kGrpcInvalidArgument &&
                           error.message.find("authentication failed") != std::string::npos))
      code = StatusCode::kUnauthenticated;
    else if (transport_failed)
      code = StatusCode::kUnavailable;
    else if (error.grpc_code == kGrpcInvalidArgument)
      code = StatusCode::kInvalidArgument;
    // Not the raw body: whatever answers instead of etcd might echo the request, and the
    // authenticate request carries the password.
    std::string message = error.message.empty() ? "not an etcd answer" : error.message;
    result.status = {code, where + ": HTTP " + std::to_string(status) + ": " + message};
    return result;
  }
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    result.status = {StatusCode::kInternal, where + ": the answer is not a JSON object"};
    return result;
  }
  if (auto streamed = parsed.find("result"); streamed != parsed.end() && streamed->is_object()) {
    result.value = *streamed;
  } else if (auto error = parsed.find("error"); error != parsed.end() && error->is_object()) {
    GatewayError decoded = decodeError(text);
    token_rejected = tokenRejected(decoded);
    transport_failed = memberUnavailable(decoded);
    result.status = {token_rejected ? StatusCode::kUnauthenticated : StatusCode::kUnavailable,
                     where + ": " + decoded.message};
  } else {
    result.value = std::move(parsed);
  }
  return result;
}

Status EtcdClient::authenticate(Endpoint& endpoint, bool& transport_failed) {
  json body = {{"name", options_.user}, {"password", options_.password.revealForUse()}};
  bool rejected = false;
  EtcdResult<json> answer = post(endpoint, "/v3/auth/authenticate", body.dump(),
                                 /*with_token=*/false, transport_failed, rejected);
  if (!answer.ok()) {
    if (answer.status.code() == StatusCode::kUnauthenticated ||
        answer.status.code() == StatusCode::kInvalidArgument)
      return {StatusCode::kUnauthenticated,
              "etcd refused user '" + options_.user + "' (" + answer.status.message() +
                  "): check etcd.user and the password in etcd.password_file"};
    return answer.status;
  }
  auto token = answer.value.find("token");
  if (token == answer.value.end() || !token->is_string() || token->get<std::string>().empty())
    return {StatusCode::kInternal, "etcd " + endpoint.url + ": authenticate returned no token"};
  token_ = Secret(token->get<std::string>());
  ++authentications_;
  return Status::ok();
}

EtcdResult<json> EtcdClient::call(const std::string& path, const json& body) {
  const auto started = std::chrono::steady_clock::now();
  EtcdResult<json> result = callEndpoints(path, body);
  ++totals_.requests;
  if (!result.ok()) ++totals_.errors;
  totals_.seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

EtcdResult<json> EtcdClient::callEndpoints(const std::string& path, const json& body) {
  EtcdResult<json> result;
  if (endpoints_.empty()) {
    result.status = {StatusCode::kInvalidArgument, "etcd: no endpoints configured"};
    return result;
  }
  const std::string text = body.dump();
  std::string failures;
  for (std::size_t tried = 0; tried < endpoints_.size(); ++tried) {
    const std::size_t index = (current_ + tried) % endpoints_.size();
    Endpoint& endpoint = *endpoints_[index];
    bool transport_failed = false;
    bool token_rejected = false;
    const bool needs_auth = !options_.user.empty();
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (needs_auth && token_.empty()) {
        Status auth = authenticate(endpoint, transport_failed);
        if (!auth.isOk()) {
          result.status = auth;
          break;
        }
      }
      result = post(endpoint, path, text, needs_auth, transport_failed, token_rejected);
      if (result.ok()) {
        current_ = index;
        return result;
      }
      if (!(needs_auth && token_rejected)) break;
      token_ = Secret();  // expired or revoked: authenticate once more, then give up
    }
    if (!transport_failed) {
      current_ = index;
      return result;  // etcd answered: another member would answer the same
    }
    failures += (failures.empty() ? "" : "; ") + result.status.message();
  }
  if (endpoints_.size() > 1)
    result.status = {result.status.code(), "no etcd endpoint answered (" + failures + ")"};
  return result;
}

EtcdResult<Lease> EtcdClient::grantLease(std::int64_t ttl_seconds) {
  EtcdResult<Lease> result;
  auto answer = call("/v3/lease/grant", {{"TTL", std::to_string(ttl_seconds)}});
  result.status = answer.status;
  if (!answer.ok()) return result;
  if (auto error = answer.value.find("error");
      error != answer.value.end() && error->is_string() && !error->get<std::string>().empty()) {
    result.status = {StatusCode::kFailedPrecondition,
                     "etcd lease grant: " + error->get<std::string>()};
    return result;
  }
  auto id = int64Field(answer.value, "ID");
  auto ttl = int64Field(answer.value, "TTL");
  if (!id || !ttl || *id == 0 || *ttl <= 0) {
    result.status = {StatusCode::kInternal, "etcd lease grant: the answer has no lease ID or TTL"};
    return result;
  }
  result.value = {*id, *ttl};
  return result;
}

EtcdResult<Lease> EtcdClient::keepAlive(std::int64_t lease_id) {
  EtcdResult<Lease> result;
  auto answer = call("/v3/lease/keepalive", {{"ID", std::to_string(lease_id)}});
  result.status = answer.status;
  if (!answer.ok()) return result;
  auto ttl = int64Field(answer.value, "TTL");
  if (!ttl) {
    result.status = {StatusCode::kInternal, "etcd lease keepalive: TTL is not an integer"};
    return result;
  }
  result.value = {lease_id, *ttl > 0 ? *ttl : 0};
  return result;
}

Status EtcdClient::revokeLease(std::int64_t lease_id) {
  return call("/v3/lease/revoke", {{"ID", std::to_string(lease_id)}}).status;
}

EtcdResult<std::vector<KeyValue>> EtcdClient::get(const std::string& key, bool prefix) {
  EtcdResult<std::vector<KeyValue>> result;
  json body = encodeOp(Op::get(key, prefix))["request_range"];
  auto answer = call("/v3/kv/range", body);
  result.status = answer.ok() ? decodeRange(answer.value, result.value) : answer.status;
  return result;
}

EtcdResult<std::int64_t> EtcdClient::put(const std::string& key, const std::string& value,
                                         std::int64_t lease) {
  EtcdResult<std::int64_t> result;
  auto answer = call("/v3/kv/put", encodeOp(Op::put(key, value, lease))["request_put"]);
  result.status = answer.status;
  if (answer.ok()) result.value = headerRevision(answer.value);
  return result;
}

EtcdResult<std::int64_t> EtcdClient::erase(const std::string& key, bool prefix) {
  EtcdResult<std::int64_t> result;
  auto answer =
      call("/v3/kv/deleterange", encodeOp(Op::erase(key, prefix))["request_delete_range"]);
  result.status = answer.status;
  if (answer.ok()) {
    auto deleted = int64Field(answer.value, "deleted");
    result.value = deleted.value_or(0);
  }
  return result;
}

EtcdResult<TxnResult> EtcdClient::txn(const std::vector<Compare>& compares,
                                      const std::vector<Op>& success,
                                      const std::vector<Op>& failure) {
  EtcdResult<TxnResult> result;
  auto answer = call("/v3/kv/txn", encodeTxn(compares, success, failure));
  result.status = answer.ok() ? decodeTxn(answer.value, result.value) : answer.status;
  return result;
}

}  // namespace pgfailover::coord
