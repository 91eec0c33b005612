// The HTTP listener: cpp-httplib on its own thread with a small worker pool, one catch-all
// handler that hands each request to the pure router (router.h) together with the snapshot
// current at that moment. Binding happens in start() on the caller's thread, so a busy port is
// an error value the daemon reports at start, not a crash or a silent half-start.
//
// Deliberately not here: deciding what an endpoint answers (router.cc), TLS, and anything that
// blocks on PostgreSQL: a handler only copies a pointer out of the SnapshotStore, so a hung
// database can never hang a health check.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/secret.h"
#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "http/router.h"
#include "http/routes.h"
#include "http/snapshot_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace pgfailover::metrics {
class Metrics;
}

namespace pgfailover::http {

// The nice value of the HTTP worker threads (see http_server.cc).
inline constexpr int kWorkerNice = 10;

struct ServerOptions {
  std::string address = "0.0.0.0";
  int port = kDefaultPort;  // 0 binds an ephemeral port; see HttpServer::boundPort()
  // Workers serving requests. Each slow client holds one for up to read_timeout, so there are
  // enough that a few stalled connections cannot starve the load balancer's checks.
  std::size_t threads = 16;
  Millis max_tick_age = kDefaultMaxTickAge;
  std::chrono::seconds read_timeout{2};
  std::chrono::seconds write_timeout{2};
  // Short on purpose: an idle keep-alive connection holds a worker, and stop() waits for it.
  std::chrono::seconds keep_alive_timeout{1};
  std::size_t keep_alive_max_requests = 100;
  // No endpoint takes more than a small JSON body; anything larger is refused unread.
  std::size_t max_payload_bytes = 64 * 1024;
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
  // Called after each response (method, path, status), e.g. for a debug-level access log.
  std::function<void(std::string_view, std::string_view, int)> access_log;
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
  HttpServer(ServerOptions options, const SnapshotStore& snapshots,
             const metrics::Metrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on a background thread. Returns once requests are accepted, or
  // with kUnavailable naming the address when binding fails. Not restartable after stop().
  Status start();
  // Stops accepting, finishes requests in flight, joins the threads. Idempotent; waits at most
  // about keep_alive_timeout for an idle keep-alive connection.
  void stop();

  // The port actually bound (useful with port 0); 0 before start().
  int boundPort() const { return bound_port_; }
  bool running() const;

 private:
  void handle(const httplib::Request& in, httplib::Response& out) const;

  ServerOptions options_;
  const SnapshotStore& snapshots_;
  const metrics::Metrics* metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> listener_finished_{false};
  int bound_port_ = 0;
  bool started_ = false;
};

}  // namespace pgfailover::http
