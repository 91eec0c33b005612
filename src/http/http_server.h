// The HTTP listener: one event thread with non-blocking sockets (epoll) reads every connection
// through a small state machine, so a slow or idle client costs a few kilobytes and a file
// descriptor, never a thread. Each complete request goes to the pure router (router.h) with the
// snapshot current at that moment: health and role checks are answered on the event thread
// itself, so they never wait behind anything; /metrics, /status, /history and the admin
// routes go to one worker thread at a lower priority. Binding happens in start() on the
// caller's thread, so a busy port is an error value the daemon reports at start.
//
// Every limit is enforced before the bytes it guards are buffered: a deadline on the whole
// request from its first byte (TLS handshake, head and body), an idle keep-alive timeout,
// connection caps in total and per client address, caps on the request head (431), bodies only
// with a Content-Length up to max_payload_bytes (Transfer-Encoding 411, larger 413).
//
// Deliberately not here: deciding what an endpoint answers (router.cc), and anything that
// blocks on PostgreSQL: a request only copies a pointer out of the SnapshotStore, so a hung
// database can never hang a health check.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/secret.h"
#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "core/snapshot_store.h"
#include "http/router.h"
#include "http/routes.h"

namespace pgfailover::metrics {
class Metrics;
}

namespace pgfailover::http {

// The nice value of the HTTP worker thread (see http_server.cc).
inline constexpr int kWorkerNice = 10;

// Fixed limits on a request head; every real client (HAProxy, curl, kubelet, Prometheus) sends a
// few hundred bytes.
inline constexpr std::size_t kMaxRequestLineBytes = 2048;
inline constexpr std::size_t kMaxHeaderBytes = 8192;  // request line and headers together
inline constexpr std::size_t kMaxHeaderCount = 64;

// HTTPS: file paths as in the configuration (http.tls). Empty certificate: plain HTTP.
struct TlsOptions {
  std::string certificate;
  std::string key;
  // When set, the admin routes require a client certificate this CA verified (403 without).
  std::string client_ca;
};

// One answered request, for the access log. Never carries the Authorization header.
struct AccessRecord {
  std::string_view method;
  std::string_view path;
  std::string_view peer;  // client address
  int status = 0;
  std::uint64_t request_id = 0;  // this server's sequence number, also sent as X-Request-Id
  // The id an accepted admin request was queued under (GET /history's request_id).
  std::optional<std::uint64_t> admin_request_id;
  bool admin_route = false;  // POST /switchover, /failover (Access::kAdmin)
};

struct ServerOptions {
  std::string address = "0.0.0.0";
  int port = kDefaultPort;  // 0 binds an ephemeral port; see HttpServer::boundPort()
  Millis max_tick_age = kDefaultMaxTickAge;
  // The whole request (handshake, head, body) from its first byte, and writing the response.
  Millis request_timeout{2000};
  // An open connection with no request in progress.
  Millis idle_timeout{5000};
  std::size_t keep_alive_max_requests = 100;
  // Connections held at once; over either cap a new connection is answered 503 and closed.
  std::size_t max_connections = 512;
  std::size_t max_connections_per_address = 64;
  // Requests waiting for the worker (metrics, status, history, admin); more are answered 503.
  std::size_t max_queued_requests = 64;
  // No endpoint takes more than a small JSON body; anything larger is refused unread.
  std::size_t max_payload_bytes = 64 * 1024;
  TlsOptions tls;
  // The bearer token admin endpoints require; null or empty disables them (403). Points at the
  // caller's Secret (the loaded configuration), which must outlive the server.
  const Secret* admin_token = nullptr;
  // When set, asked for the current token on every admin request instead (SIGHUP may change it).
  std::function<Secret()> admin_token_source;
  // Where POST /switchover and /failover hand accepted requests (runtime::AdminQueue::submit in
  // the daemon); empty answers them with 503. Called on the HTTP worker threads.
  SubmitRequest submit;
  // The lag limit a switchover target must be within (failover.max_lag_bytes).
  std::uint64_t max_lag_bytes = kDefaultMaxLagBytes;
  // The steady clock, replaceable in tests.
  std::function<SteadyTime()> clock = [] { return std::chrono::steady_clock::now(); };
  // Called on the event thread after each answered request (also the 4xx the server itself
  // sends); must not block.
  std::function<void(const AccessRecord&)> access_log;
};

// Listen address and port from the configuration, and a staleness limit for /healthz that a
// healthy loop never reaches: three times the longest tick (interval + connect + query
// deadlines), at least kDefaultMaxTickAge; the switchover lag limit is failover.max_lag_bytes.
// The admin token and the submit function are left to the caller, who owns the configuration's
// lifetime and the queue.
ServerOptions serverOptionsFromConfig(const config::Config& config);

class HttpServer {
 public:
  // `snapshots` and `metrics` must outlive the server; `metrics` may be null (/metrics → 503).
  HttpServer(ServerOptions options, const core::SnapshotStore& snapshots,
             const metrics::Metrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on a background thread. Returns once requests are accepted; with
  // kUnavailable naming the address when binding fails, kInvalidArgument naming the file when
  // the TLS certificate, key or client CA cannot be loaded. Not restartable after stop().
  Status start();
  // Stops accepting, closes every connection, joins the threads. Idempotent and prompt.
  void stop();

  // The port actually bound (useful with port 0); 0 before start().
  int boundPort() const { return bound_port_; }
  bool running() const;
  // Connections open right now (for tests and the bench).
  std::size_t openConnections() const { return open_connections_; }

  // Implementation (http_server.cc); public only so the .cc's helpers can name it.
  class Loop;

 private:
  ServerOptions options_;
  const core::SnapshotStore& snapshots_;
  const metrics::Metrics* metrics_;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<std::size_t> open_connections_{0};
  int bound_port_ = 0;
  bool started_ = false;
};

}  // namespace pgfailover::http
