#include "http/http_server.h"

#include <httplib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "http/router.h"

namespace pgfailover::http {

namespace {

// Serving requests must never starve probing. Measured on 2 cores: 16 workers answering a
// saturating load delayed the tick until probes missed their 1 s deadline and /primary
// answered 503 for a healthy primary. Workers therefore run at nice +10 (Linux applies nice
// per thread), so the tick and probe threads always get the CPU first; requests still use
// whatever is left.
void lowerThisThreadsPriority() {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kWorkerNice);
}

Request toRequest(const httplib::Request& in) {
  Request request;
  request.method = in.method;
  request.path = in.path;
  // Query parameters come from the URL only: httplib also merges an
  // application/x-www-form-urlencoded body into `params`, and that is the type `curl -d` sends
  // by default, which would turn an admin request's JSON body into a bogus parameter. httplib's
  // own parser keeps repeats in order, which is all the router needs to reject them.
  if (const auto question = in.target.find('?'); question != std::string::npos) {
    httplib::Params params;
    httplib::detail::parse_query_text(in.target.substr(question + 1), params);
    for (const auto& [key, value] : params) request.query.emplace_back(key, value);
  }
  for (const auto& [key, value] : in.headers) request.headers.emplace_back(key, value);
  request.body = in.body;
  return request;
}

void writeResponse(const Response& response, httplib::Response& out) {
  out.status = response.status;
  for (const auto& [key, value] : response.headers) out.set_header(key, value);
  // Health answers change every tick; a cache in between would answer for an old tick.
  out.set_header("Cache-Control", "no-store");
  if (!response.body.empty() || !response.content_type.empty())
    out.set_content(response.body, response.content_type);
}

}  // namespace

ServerOptions serverOptionsFromConfig(const config::Config& config) {
  ServerOptions options;
  options.address = config.http.listen_address;
  options.port = config.http.port;
  const Millis longest_tick =
      config.probe.interval + config.probe.connect_timeout + config.probe.query_timeout;
  options.max_tick_age = std::max(kDefaultMaxTickAge, 3 * longest_tick);
  options.max_lag_bytes = config.failover.max_lag_bytes;
  return options;
}

HttpServer::HttpServer(ServerOptions options, const SnapshotStore& snapshots,
                       const metrics::Metrics* metrics)
    : options_(std::move(options)),
      snapshots_(snapshots),
      metrics_(metrics),
      server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() {
  stop();
}

bool HttpServer::running() const {
  return server_ && server_->is_running();
}

void HttpServer::handle(const httplib::Request& in, httplib::Response& out) const {
  lowerThisThreadsPriority();
  Response response;
  try {
    const Request request = toRequest(in);
    // One snapshot for the whole request, even if the loop publishes meanwhile.
    const std::shared_ptr<const core::Snapshot> snapshot = snapshots_.current();
    RouteContext context;
    context.now = options_.clock();
    context.max_tick_age = options_.max_tick_age;
    context.metrics = metrics_;
    context.admin_token = options_.admin_token;
    context.admin_token_source = options_.admin_token_source;
    context.submit = options_.submit;
    context.max_lag_bytes = options_.max_lag_bytes;
    response = route(request, *snapshot, context);
  } catch (...) {
    // route() catches its own; this guards the conversion and the store, so no exception ever
    // reaches httplib's worker thread.
    response = Response{};
    response.status = 500;
    response.body = R"({"error":"internal error"})";
  }
  writeResponse(response, out);
  if (options_.access_log) options_.access_log(in.method, in.path, response.status);
}

Status HttpServer::start() {
  if (started_) return {StatusCode::kFailedPrecondition, "the HTTP server was already started"};
  started_ = true;

  httplib::Server& server = *server_;
  // httplib's default sets SO_REUSEPORT, which would let a second pgfailover bind the same port
  // and silently share its traffic; SO_REUSEADDR alone still allows a quick restart.
  server.set_socket_options([](int socket) {
    int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.set_read_timeout(options_.read_timeout.count(), 0);
  // Small responses must leave at once: with Nagle on, a response waits for the client's delayed
  // ACK (~40 ms) and every health check pays for it.
  server.set_tcp_nodelay(true);
  server.set_write_timeout(options_.write_timeout.count(), 0);
  server.set_keep_alive_timeout(options_.keep_alive_timeout.count());
  server.set_keep_alive_max_count(std::max<std::size_t>(1, options_.keep_alive_max_requests));
  server.set_payload_max_length(options_.max_payload_bytes);
  const std::size_t threads = std::max<std::size_t>(1, options_.threads);
  // httplib takes ownership of the queue it gets from this factory (a unique_ptr inside
  // listen); the raw new is its API.
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  // One handler for every method httplib parses: the router owns the 404/405 decisions so they
  // are the same in tests and in production. HEAD goes to the GET handler and httplib drops
  // the body.
  const httplib::Server::Handler handler = [this](const httplib::Request& in,
                                                  httplib::Response& out) { handle(in, out); };
  constexpr const char* kAnyPath = ".*";
  server.Get(kAnyPath, handler);
  server.Post(kAnyPath, handler);
  server.Put(kAnyPath, handler);
  server.Patch(kAnyPath, handler);
  server.Delete(kAnyPath, handler);
  server.Options(kAnyPath, handler);
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& out, std::exception_ptr) {
        out.status = 500;
        out.set_content(R"({"error":"internal error"})", "application/json");
      });

  errno = 0;
  int port = -1;
  if (options_.port == 0) {
    port = server.bind_to_any_port(options_.address);
  } else if (server.bind_to_port(options_.address, options_.port)) {
    port = options_.port;
  }
  if (port <= 0) {
    const int error = errno;
    std::string message = "unable to listen on " + options_.address + ":" +
                          std::to_string(options_.port) + " for the HTTP API";
    if (error != 0) message += std::string(": ") + std::strerror(error);
    return {StatusCode::kUnavailable, message};
  }
  bound_port_ = port;

  thread_ = std::thread([this] {
    server_->listen_after_bind();
    listener_finished_ = true;
  });
  // httplib's stop() does nothing until the listener runs, so stop() right after start() would
  // hang the join; start() returns only once the accept loop is up.
  while (!server_->is_running() && !listener_finished_)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!server_->is_running()) {
    thread_.join();
    return {StatusCode::kInternal, "the HTTP listener on " + options_.address + ":" +
                                       std::to_string(port) + " stopped right after starting"};
  }
  return Status::ok();
}

void HttpServer::stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace pgfailover::http
