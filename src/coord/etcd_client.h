// A client of etcd v3 through its JSON gateway (POST /v3/...), with cpp-httplib and
// nlohmann-json, the HTTP and JSON libraries pgfailover already uses: no gRPC stack to build,
// link and keep in step with etcd, and the gateway is part of every etcd 3.4 and 3.5 server.
// The few calls pgfailover needs (leases, range, put, txn, delete, authenticate) are all unary
// on the gateway; lease keepalive is a stream in gRPC but one request on the gateway answers
// with one response.
//
// Every call has a deadline: a connect timeout and a read timeout per endpoint, both well under
// a lease TTL, so a call never outlives the lease it would renew. With several endpoints a call
// that cannot reach one (refused, timed out, no leader there) tries the next, and the client
// keeps using the one that answered. Errors are values; nothing throws out of it. The password
// is only ever sent in the authenticate call's body and never appears in a Status message.
//
// Not thread-safe: one owner calls it (the tick loop). The process must ignore SIGPIPE, as the
// daemon does: OpenSSL writes to a connection etcd closed (a refused client certificate) would
// otherwise end it.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/secret.h"
#include "common/status.h"
#include "common/time.h"
#include "coord/etcd_codec.h"

namespace httplib {
class Client;
}

namespace pgfailover::coord {

struct EtcdClientOptions {
  // "http://127.0.0.1:2379" or "https://etcd-1.example:2379".
  std::vector<std::string> endpoints;
  Millis connect_timeout{500};
  Millis request_timeout{1000};
  // TLS (https endpoints): the CA that signed etcd's certificate, and a client certificate and
  // key when etcd asks for one (--client-cert-auth).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // etcd authentication (auth enable): empty user = none.
  std::string user;
  Secret password;
};

template <typename T>
struct EtcdResult {
  Status status;
  T value{};
  bool ok() const { return status.isOk(); }
};

// Calls made since the client was built (each call counts once, whichever endpoints it tried),
// for metrics.
struct EtcdCallTotals {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;  // no answer, or an error answer
  double seconds = 0;        // summed duration
};

struct Lease {
  std::int64_t id = 0;
  std::int64_t ttl_seconds = 0;  // as etcd granted or renewed it; 0 = the lease is gone
};

class EtcdClient {
 public:
  explicit EtcdClient(EtcdClientOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // etcd leases count whole seconds.
  EtcdResult<Lease> grantLease(std::int64_t ttl_seconds);
  // Renews the lease once; value.ttl_seconds == 0 when etcd no longer has it (expired, revoked).
  EtcdResult<Lease> keepAlive(std::int64_t lease_id);
  Status revokeLease(std::int64_t lease_id);

  EtcdResult<std::vector<KeyValue>> get(const std::string& key, bool prefix = false);
  // The store's revision after the put.
  EtcdResult<std::int64_t> put(const std::string& key, const std::string& value,
                               std::int64_t lease = 0);
  // The number of keys deleted.
  EtcdResult<std::int64_t> erase(const std::string& key, bool prefix = false);
  EtcdResult<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                            const std::vector<Op>& failure = {});

  // The endpoint the last call used (for logs and /status).
  const std::string& currentEndpoint() const;
  // How many times the client authenticated (a token expires when unused for etcd's
  // --auth-token-ttl, and is then fetched again).
  int authentications() const { return authentications_; }
  const EtcdCallTotals& totals() const { return totals_; }

 private:
  struct Endpoint;
  // POST `path` with `body` to the current endpoint, then the others; authenticates first when
  // a user is set and no token is held, and once more when etcd rejects the token.
  EtcdResult<nlohmann::json> call(const std::string& path, const nlohmann::json& body);
  EtcdResult<nlohmann::json> callEndpoints(const std::string& path, const nlohmann::json& body);
  // One POST to one endpoint. `transport_failed` is set when it is worth trying another
  // endpoint (no connection, no answer in time, that member has no leader).
  EtcdResult<nlohmann::json> post(Endpoint& endpoint, const std::string& path,
                                  const std::string& body, bool with_token, bool& transport_failed,
                                  bool& token_rejected);
  Status authenticate(Endpoint& endpoint, bool& transport_failed);

  EtcdClientOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::size_t current_ = 0;
  Secret token_;
  int authentications_ = 0;
  EtcdCallTotals totals_;
};

}  // namespace pgfailover::coord
