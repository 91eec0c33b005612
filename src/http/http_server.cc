#include "http/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/secret_file.h"
#include "http/request_head.h"
#include "http/router.h"

namespace pgfailover::http {

namespace {

// Serving heavy requests must never starve probing. Measured on 2 cores: 16 workers answering
// a saturating load delayed the tick until probes missed their 1 s deadline and /primary
// answered 503 for a healthy primary. The worker (metrics, status, history, admin) therefore
// runs at nice +10 (Linux applies nice per thread), so the tick and probe threads always get
// the CPU first. The event thread stays at the normal priority: it only moves bytes and answers
// the health checks, whose answer is a snapshot read.
void lowerThisThreadsPriority() {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kWorkerNice);
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

std::string openSslError() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text = buffer;  // the last one is the most specific
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

// Loads the certificate chain, the key and the optional client CA; each failure names the
// configuration key and the file, and is kInvalidArgument (a configuration error, exit 2).
Status makeTlsContext(const TlsOptions& tls, SslCtxPtr& out) {
  auto invalid = [](const std::string& key, const std::string& message) {
    return Status{StatusCode::kInvalidArgument, key + ": " + message};
  };
  if (tls.key.empty()) return invalid("http.tls.key", "is required with http.tls.certificate");
  struct stat info {};
  if (::stat(tls.key.c_str(), &info) != 0)
    return invalid("http.tls.key", "cannot read " + tls.key + ": " + std::strerror(errno));
  if (std::string unsafe = unsafeSecretFileMode(tls.key); !unsafe.empty())
    return invalid("http.tls.key", unsafe);
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return {StatusCode::kInternal, "cannot create a TLS context: " + openSslError()};
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Idle connections then hold no TLS buffers; ENABLE_PARTIAL_WRITE lets the state machine send
  // a response in pieces.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) != 1)
    return invalid("http.tls.certificate",
                   "cannot load a PEM certificate from " + tls.certificate + ": " + openSslError());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return invalid("http.tls.key",
                     tls.key + " does not match the certificate " + tls.certificate);
    }
    return invalid("http.tls.key",
                   "cannot load a PEM private key from " + tls.key + ": " + openSslError());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return invalid("http.tls.key", tls.key + " does not match the certificate " + tls.certificate +
                                       ": " + openSslError());
  if (!tls.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), tls.client_ca.c_str(), nullptr) != 1)
      return invalid("http.tls.client_ca",
                     "cannot load CA certificates from " + tls.client_ca + ": " + openSslError());
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca.c_str());
    if (names == nullptr)
      return invalid("http.tls.client_ca",
                     "no CA certificate in " + tls.client_ca + ": " + openSslError());
    SSL_CTX_set_client_CA_list(ctx.get(), names);  // takes ownership
    // Asked for, not required: health checks and Prometheus connect without one; the admin
    // routes check for a verified certificate themselves. A certificate that fails
    // verification still ends the handshake.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  out = std::move(ctx);
  return Status::ok();
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

Response errorResponse(int status, std::string_view message) {
  Response response;
  response.status = status;
  nlohmann::json body;
  body["error"] = reasonPhrase(status);
  body["message"] = message;
  response.body = body.dump();
  return response;
}

std::string serialize(const Response& response, bool head_only, bool keep_alive,
                      std::uint64_t request_id) {
  std::string out;
  out.reserve(256 + (head_only ? 0 : response.body.size()));
  out +=
      "HTTP/1.1 " + std::to_string(response.status) + " " + reasonPhrase(response.status) + "\r\n";
  if (!response.content_type.empty()) out += "Content-Type: " + response.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  // Health answers change every tick; a cache in between would answer for an old tick.
  out += "Cache-Control: no-store\r\n";
  if (request_id != 0) out += "X-Request-Id: " + std::to_string(request_id) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [key, value] : response.headers) out += key + ": " + value + "\r\n";
  out += "\r\n";
  if (!head_only) out += response.body;
  return out;
}

// Which row of kRoutes a decoded path names (the router decides the rest).
const RouteSpec* findRoute(std::string_view path) {
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  for (const auto& spec : kRoutes) {
    if (path == spec.path) return &spec;
    if (spec.per_node && path.size() > spec.path.size() + 1 &&
        path.substr(0, spec.path.size()) == spec.path && path[spec.path.size()] == '/')
      return &spec;
  }
  return nullptr;
}

// Health and role checks (and 404s) are a snapshot read: answered on the event thread. The
// rest renders more (metrics, status, history) or takes a lock (admin submit): the worker.
bool answeredOnEventThread(const RouteSpec* spec) {
  if (spec == nullptr) return true;
  switch (spec->endpoint) {
    case Endpoint::kStatus:
    case Endpoint::kMetrics:
    case Endpoint::kHistory:
    case Endpoint::kSwitchover:
    case Endpoint::kFailover:
      return false;
    default:
      return true;
  }
}

std::string peerAddress(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
  } else if (address.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  }
  return text;
}

constexpr std::uint64_t kListenKey = 1;
constexpr std::uint64_t kStopKey = 2;
constexpr std::uint64_t kDoneKey = 3;
constexpr std::uint64_t kFirstConnectionKey = 16;
constexpr std::size_t kReadChunk = 16 * 1024;
// After an error answer the rest of the request is read and thrown away for a moment, so the
// client sees the answer rather than a reset; bounded in bytes and time.
constexpr std::size_t kMaxDrainBytes = 256 * 1024;
constexpr Millis kDrainTime{500};
constexpr Millis kSweepInterval{100};
// A TLS client's first byte is a handshake record; anything else is plain HTTP sent to the
// HTTPS port.
constexpr unsigned char kTlsHandshakeRecord = 0x16;

enum class Phase { kTlsDetect, kHandshake, kReading, kWorking, kWriting, kDraining };
enum class Io { kDone, kWantRead, kWantWrite, kClosed };

struct Connection {
  std::uint64_t key = 0;
  UniqueFd fd;
  SslPtr ssl;
  std::string peer;
  Phase phase = Phase::kReading;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  SteadyTime deadline{};
  bool request_started = false;
  bool keep_alive = true;
  bool head_only = false;
  bool client_verified = false;
  std::size_t served = 0;
  std::size_t drained = 0;
  std::uint32_t interest = 0;
  // The request being answered, for the access log.
  std::string method;
  std::string path;
  std::uint64_t request_id = 0;
  bool admin_route = false;
};

struct Job {
  std::uint64_t connection = 0;
  std::uint64_t request_id = 0;
  Request request;
  // The connection's deadline: past it the event thread has closed the connection, so the job
  // is dropped unserved (an admin request acted on with no one told would be retried).
  SteadyTime deadline{};
};

struct Done {
  std::uint64_t connection = 0;
  std::uint64_t request_id = 0;
  Response response;
};

}  // namespace

class HttpServer::Loop {
 public:
  Loop(const ServerOptions& options, const core::SnapshotStore& snapshots,
       const metrics::Metrics* metrics, std::atomic<std::size_t>& open)
      : options_(options), snapshots_(snapshots), metrics_(metrics), open_(open) {
    limits_.max_request_line = kMaxRequestLineBytes;
    limits_.max_head_bytes = kMaxHeaderBytes;
    limits_.max_headers = kMaxHeaderCount;
    limits_.max_body = options.max_payload_bytes;
  }
  ~Loop() { stopWorker(); }

  Status open(int& bound_port);
  void run();
  void requestStop() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(stop_fd_.get(), &one, sizeof one);
  }

 private:
  SteadyTime now() const { return std::chrono::steady_clock::now(); }
  void acceptAll();
  void serve(Connection& c);
  bool tryRequest(Connection& c);
  void dispatch(Connection& c, const RequestHead& head, std::string body);
  void respond(Connection& c, const Response& response);
  void refuse(Connection& c, int status, std::string_view message);
  void sweep();
  void close(std::uint64_t key);
  void setInterest(Connection& c, std::uint32_t interest);
  Io readSome(Connection& c, char* buffer, std::size_t size, std::size_t& got);
  Io writeSome(Connection& c);
  Response answer(const Request& request) const;
  void collectDone();
  void workerMain();
  void stopWorker();

  const ServerOptions& options_;
  const core::SnapshotStore& snapshots_;
  const metrics::Metrics* metrics_;
  std::atomic<std::size_t>& open_;
  HeadLimits limits_;
  SslCtxPtr tls_;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd stop_fd_;
  UniqueFd done_fd_;
  bool accept_paused_ = false;
  SteadyTime accept_resume_{};
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::unordered_map<std::string, std::size_t> per_peer_;
  std::vector<std::uint64_t> closing_;
  std::uint64_t next_key_ = kFirstConnectionKey;
  std::uint64_t next_request_id_ = 0;
  std::array<char, kReadChunk> scratch_{};

  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  // The connection whose job the worker is answering now (0: none): it is never expired
  // mid-answer, so an admin request that was acted on is also answered.
  std::uint64_t serving_ = 0;
  std::vector<Done> done_;
  bool worker_stop_ = false;
};

Status HttpServer::Loop::open(int& bound_port) {
  if (!options_.tls.certificate.empty()) {
    if (Status status = makeTlsContext(options_.tls, tls_); !status.isOk()) return status;
  } else if (!options_.tls.key.empty() || !options_.tls.client_ca.empty()) {
    return {StatusCode::kInvalidArgument,
            "http.tls.certificate: is required with http.tls.key or http.tls.client_ca"};
  }

  const std::string where = options_.address + ":" + std::to_string(options_.port);
  auto unavailable = [&](const std::string& what) {
    return Status{StatusCode::kUnavailable,
                  "unable to listen on " + where + " for the HTTP API: " + what};
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(options_.port);
  if (const int rc = ::getaddrinfo(options_.address.c_str(), port_text.c_str(), &hints, &found);
      rc != 0)
    return unavailable(::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);

  int error = 0;
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    UniqueFd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (fd.get() < 0) {
      error = errno;
      continue;
    }
    // SO_REUSEADDR allows a quick restart; SO_REUSEPORT is deliberately not set, it would let a
    // second pgfailover bind the same port and silently share its traffic.
    int yes = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), 1024) != 0) {
      error = errno;
      continue;
    }
    listen_fd_ = std::move(fd);
    break;
  }
  if (listen_fd_.get() < 0) return unavailable(std::strerror(error));
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  bound_port = bound.ss_family == AF_INET6
                   ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                   : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  epoll_fd_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  stop_fd_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  done_fd_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (epoll_fd_.get() < 0 || stop_fd_.get() < 0 || done_fd_.get() < 0)
    return {StatusCode::kInternal, std::string("HTTP event loop: ") + std::strerror(errno)};
  for (const auto& [fd, key] :
       {std::pair{listen_fd_.get(), kListenKey}, std::pair{stop_fd_.get(), kStopKey},
        std::pair{done_fd_.get(), kDoneKey}}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = key;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event);
  }
  // start() returns with the worker already at its lower priority.
  std::promise<void> lowered;
  auto ready = lowered.get_future();
  worker_ = std::thread([this, &lowered] {
    lowerThisThreadsPriority();
    lowered.set_value();
    workerMain();
  });
  ready.wait();
  return Status::ok();
}

void HttpServer::Loop::run() {
  std::array<epoll_event, 64> events{};
  SteadyTime next_sweep = now() + kSweepInterval;
  bool stopping = false;
  while (!stopping) {
    const int count = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()),
                                   static_cast<int>(kSweepInterval.count()));
    for (int i = 0; i < count; ++i) {
      const std::uint64_t key = events[i].data.u64;
      if (key == kStopKey) {
        stopping = true;
      } else if (key == kListenKey) {
        acceptAll();
      } else if (key == kDoneKey) {
        collectDone();
      } else if (auto it = connections_.find(key); it != connections_.end()) {
        Connection& c = *it->second;
        // With no interest while the worker answers, epoll still reports a hang-up or an
        // error, and would keep reporting it: the client is gone, so is the connection.
        if (c.phase == Phase::kWorking && (events[i].events & (EPOLLERR | EPOLLHUP)) != 0)
          closing_.push_back(key);
        else
          serve(c);
      }
    }
    for (const std::uint64_t key : closing_) close(key);
    closing_.clear();
    if (now() >= next_sweep) {
      sweep();
      next_sweep = now() + kSweepInterval;
    }
  }
  while (!connections_.empty()) close(connections_.begin()->first);
  stopWorker();
}

void HttpServer::Loop::acceptAll() {
  while (true) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    const int raw = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&address), &length,
                              SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (raw < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop accepting for a moment instead of spinning on the listener.
        ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd_.get(), nullptr);
        accept_paused_ = true;
        accept_resume_ = now() + kSweepInterval;
      }
      return;
    }
    UniqueFd fd(raw);
    std::string peer = peerAddress(address);
    std::size_t& from_peer = per_peer_[peer];
    if (connections_.size() >= options_.max_connections ||
        from_peer >= options_.max_connections_per_address) {
      if (from_peer == 0) per_peer_.erase(peer);
      // Refused at once, never queued: a plain-HTTP client gets a short 503 (one non-blocking
      // send, whatever fits), a TLS client just the close.
      if (!tls_) {
        const std::string refusal =
            serialize(errorResponse(503, "too many connections; retry later"), false, false, 0);
        [[maybe_unused]] auto written =
            ::send(fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      if (options_.access_log) {
        AccessRecord record;
        record.method = "-";
        record.path = "-";
        record.peer = peer;
        record.status = 503;
        options_.access_log(record);
      }
      continue;
    }
    ++from_peer;
    int yes = 1;
    // Small responses must leave at once: with Nagle on, a response waits for the client's
    // delayed ACK (~40 ms) and every health check pays for it.
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    auto connection = std::make_unique<Connection>();
    Connection& c = *connection;
    c.key = next_key_++;
    c.peer = std::move(peer);
    // The first request's deadline runs from the connection: a client that connects and sends
    // nothing, or handshakes slowly, is closed like one that sends slowly.
    c.deadline = now() + options_.request_timeout;
    c.request_started = true;
    if (tls_) {
      c.ssl.reset(SSL_new(tls_.get()));
      if (!c.ssl || SSL_set_fd(c.ssl.get(), fd.get()) != 1) {
        ERR_clear_error();
        --per_peer_[c.peer];
        if (per_peer_[c.peer] == 0) per_peer_.erase(c.peer);
        continue;
      }
      c.phase = Phase::kTlsDetect;
    }
    c.fd = std::move(fd);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = c.key;
    c.interest = EPOLLIN;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, c.fd.get(), &event);
    connections_.emplace(c.key, std::move(connection));
    open_ = connections_.size();
  }
}

void HttpServer::Loop::setInterest(Connection& c, std::uint32_t interest) {
  if (c.interest == interest) return;
  c.interest = interest;
  epoll_event event{};
  event.events = interest;
  event.data.u64 = c.key;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &event);
}

void HttpServer::Loop::close(std::uint64_t key) {
  const auto it = connections_.find(key);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  if (auto peer = per_peer_.find(c.peer); peer != per_peer_.end() && --peer->second == 0)
    per_peer_.erase(peer);
  connections_.erase(it);
  open_ = connections_.size();
}

Io HttpServer::Loop::readSome(Connection& c, char* buffer, std::size_t size, std::size_t& got) {
  got = 0;
  if (c.ssl) {
    ERR_clear_error();
    const int n = SSL_read(c.ssl.get(), buffer, static_cast<int>(size));
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    const int error = SSL_get_error(c.ssl.get(), n);
    ERR_clear_error();
    if (error == SSL_ERROR_WANT_READ) return Io::kWantRead;
    if (error == SSL_ERROR_WANT_WRITE) return Io::kWantWrite;
    return Io::kClosed;
  }
  while (true) {
    const ssize_t n = ::recv(c.fd.get(), buffer, size, 0);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::kDone;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Io::kWantRead;
    return Io::kClosed;
  }
}

Io HttpServer::Loop::writeSome(Connection& c) {
  while (c.sent < c.out.size()) {
    const char* data = c.out.data() + c.sent;
    const std::size_t size = c.out.size() - c.sent;
    if (c.ssl) {
      ERR_clear_error();
      const int n = SSL_write(c.ssl.get(), data, static_cast<int>(size));
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
        continue;
      }
      const int error = SSL_get_error(c.ssl.get(), n);
      ERR_clear_error();
      if (error == SSL_ERROR_WANT_WRITE) return Io::kWantWrite;
      if (error == SSL_ERROR_WANT_READ) return Io::kWantRead;
      return Io::kClosed;
    }
    const ssize_t n = ::send(c.fd.get(), data, size, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Io::kWantWrite;
    return Io::kClosed;
  }
  return Io::kDone;
}

// Drives one connection as far as it can go without blocking; called on every epoll event for
// it and after the worker answered.
void HttpServer::Loop::serve(Connection& c) {
  while (true) {
    switch (c.phase) {
      case Phase::kTlsDetect: {
        unsigned char first = 0;
        const ssize_t n = ::recv(c.fd.get(), &first, 1, MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          setInterest(c, EPOLLIN);
          return;
        }
        if (n <= 0) return closing_.push_back(c.key);
        if (first != kTlsHandshakeRecord) {
          // Plain HTTP on the HTTPS port: say so in plain HTTP, then close. What the client sent
          // is taken in first, so the close drains it instead of resetting the connection
          // under the answer.
          if (const ssize_t got = ::recv(c.fd.get(), scratch_.data(), scratch_.size(), 0); got > 0)
            c.in.assign(scratch_.data(), static_cast<std::size_t>(got));
          c.ssl.reset();
          c.keep_alive = false;
          c.admin_route = false;
          refuse(c, 400, "this port serves HTTPS; use an https:// URL");
          break;
        }
        c.phase = Phase::kHandshake;
        break;
      }
      case Phase::kHandshake: {
        ERR_clear_error();
        const int rc = SSL_accept(c.ssl.get());
        if (rc == 1) {
          c.client_verified = SSL_get_verify_result(c.ssl.get()) == X509_V_OK &&
                              SSL_get0_peer_certificate(c.ssl.get()) != nullptr;
          c.phase = Phase::kReading;
          break;
        }
        const int error = SSL_get_error(c.ssl.get(), rc);
        ERR_clear_error();
        if (error == SSL_ERROR_WANT_READ) return setInterest(c, EPOLLIN);
        if (error == SSL_ERROR_WANT_WRITE) return setInterest(c, EPOLLOUT);
        return closing_.push_back(c.key);  // a failed handshake: nothing to answer in
      }
      case Phase::kReading: {
        if (tryRequest(c)) break;
        std::size_t got = 0;
        const Io io = readSome(c, scratch_.data(), scratch_.size(), got);
        if (io == Io::kDone) {
          if (!c.request_started) {
            // The next request on a kept-alive connection: its deadline runs from its first
            // byte.
            c.request_started = true;
            c.deadline = now() + options_.request_timeout;
          }
          c.in.append(scratch_.data(), got);
          break;
        }
        if (io == Io::kWantRead) return setInterest(c, EPOLLIN);
        if (io == Io::kWantWrite) return setInterest(c, EPOLLOUT);
        return closing_.push_back(c.key);
      }
      case Phase::kWorking:
        return setInterest(c, 0);
      case Phase::kWriting: {
        const Io io = writeSome(c);
        if (io == Io::kWantWrite) return setInterest(c, EPOLLOUT);
        if (io == Io::kWantRead) return setInterest(c, EPOLLIN);
        if (io == Io::kClosed) return closing_.push_back(c.key);
        ++c.served;
        c.out.clear();
        c.sent = 0;
        if (c.out.capacity() > kReadChunk) c.out.shrink_to_fit();
        if (!c.keep_alive || c.served >= options_.keep_alive_max_requests) {
          if (c.ssl) SSL_shutdown(c.ssl.get());  // close_notify; the peer's is not awaited
          ERR_clear_error();
          if (c.in.empty()) {
            ::shutdown(c.fd.get(), SHUT_RDWR);
            return closing_.push_back(c.key);
          }
          // Unread request bytes at close would make the kernel send a reset that can destroy
          // the answer before the client reads it: half-close, then discard what still comes
          // (raw bytes, TLS records included) for a moment.
          ::shutdown(c.fd.get(), SHUT_WR);
          c.in.clear();
          c.in.shrink_to_fit();
          c.phase = Phase::kDraining;
          c.deadline = now() + std::min(kDrainTime, options_.request_timeout);
          break;
        }
        c.phase = Phase::kReading;
        c.request_started = !c.in.empty();
        c.deadline = now() + (c.request_started ? options_.request_timeout : options_.idle_timeout);
        if (c.in.capacity() > kReadChunk && c.in.size() < kReadChunk) c.in.shrink_to_fit();
        break;
      }
      case Phase::kDraining: {
        const ssize_t n = ::recv(c.fd.get(), scratch_.data(), scratch_.size(), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
          return setInterest(c, EPOLLIN);
        if (n <= 0) return closing_.push_back(c.key);
        c.drained += static_cast<std::size_t>(n);
        if (c.drained > kMaxDrainBytes) return closing_.push_back(c.key);
        break;
      }
    }
  }
}

// Parses what has arrived; true when the connection moved on (answer under way or closing).
bool HttpServer::Loop::tryRequest(Connection& c) {
  if (c.in.empty()) return false;
  HeadParse parse = parseRequestHead(c.in, limits_);
  if (parse.state == HeadState::kIncomplete) return false;
  if (parse.state == HeadState::kError) {
    // For the access log: as much of the request line as there is, so a refused POST to an
    // admin route is logged as one.
    c.method = "-";
    c.path = "-";
    c.admin_route = false;
    const std::string_view line = std::string_view(c.in).substr(0, c.in.find_first_of("\r\n"));
    if (const auto space = line.find(' '); space != std::string_view::npos && space < 16) {
      c.method = std::string(line.substr(0, space));
      const std::string_view target = line.substr(space + 1, line.find(' ', space + 1) - space - 1);
      if (!target.empty() && target.front() == '/' && target.size() <= kMaxRequestLineBytes) {
        c.path = decodedPath(target);
        const RouteSpec* spec = findRoute(c.path);
        c.admin_route = spec != nullptr && spec->access == Access::kAdmin;
      }
    }
    refuse(c, parse.status, parse.message);
    return true;
  }
  const RequestHead& head = parse.head;
  if (c.in.size() < head.head_bytes + head.content_length) return false;
  std::string body = c.in.substr(head.head_bytes, head.content_length);
  c.in.erase(0, head.head_bytes + head.content_length);
  dispatch(c, head, std::move(body));
  return true;
}

void HttpServer::Loop::dispatch(Connection& c, const RequestHead& head, std::string body) {
  Request request;
  request.method = head.method;
  request.path = decodedPath(head.target);
  request.target = head.target;
  request.query = decodedQuery(head.target);
  request.headers = head.headers;
  request.body = std::move(body);

  c.keep_alive = head.keep_alive;
  c.head_only = head.method == "HEAD";
  c.method = head.method;
  c.path = request.path;
  c.request_id = ++next_request_id_;
  const RouteSpec* spec = findRoute(request.path);
  c.admin_route = spec != nullptr && spec->access == Access::kAdmin;

  if (c.admin_route && !options_.tls.client_ca.empty() && !c.client_verified) {
    Response refused =
        errorResponse(403,
                      "the admin routes require a client certificate issued by the CA in "
                      "http.tls.client_ca");
    return respond(c, refused);
  }
  if (answeredOnEventThread(spec)) return respond(c, answer(request));

  {
    std::lock_guard lock(mutex_);
    if (jobs_.size() < std::max<std::size_t>(1, options_.max_queued_requests)) {
      c.phase = Phase::kWorking;
      c.deadline = now() + options_.request_timeout;
      jobs_.push_back(Job{c.key, c.request_id, std::move(request), c.deadline});
      wake_.notify_one();
      return;
    }
  }
  respond(c, errorResponse(503, "too many requests waiting; retry later"));
}

void HttpServer::Loop::respond(Connection& c, const Response& response) {
  const bool keep_alive = c.keep_alive && c.served + 1 < options_.keep_alive_max_requests;
  c.keep_alive = keep_alive;
  c.out = serialize(response, c.head_only, keep_alive, c.request_id);
  c.sent = 0;
  c.phase = Phase::kWriting;
  c.deadline = now() + options_.request_timeout;
  if (options_.access_log) {
    AccessRecord record;
    record.method = c.method;
    record.path = c.path;
    record.peer = c.peer;
    record.status = response.status;
    record.request_id = c.request_id;
    record.admin_route = c.admin_route;
    if (c.admin_route && response.status == 202) {
      const auto body = nlohmann::json::parse(response.body, nullptr, false);
      if (body.is_object() && body.contains("id") && body["id"].is_number_unsigned())
        record.admin_request_id = body["id"].get<std::uint64_t>();
    }
    options_.access_log(record);
  }
}

void HttpServer::Loop::refuse(Connection& c, int status, std::string_view message) {
  c.keep_alive = false;
  c.head_only = false;
  if (c.method.empty()) c.method = "-";
  if (c.path.empty()) c.path = "-";
  c.request_id = ++next_request_id_;
  respond(c, errorResponse(status, message));
}

void HttpServer::Loop::sweep() {
  const SteadyTime at = now();
  if (accept_paused_ && at >= accept_resume_) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kListenKey;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &event);
    accept_paused_ = false;
  }
  std::vector<std::uint64_t> expired;
  // Being answered, or answered and waiting for collectDone(): not expired (see serving_).
  std::vector<std::uint64_t> answering;
  {
    std::lock_guard lock(mutex_);
    if (serving_ != 0) answering.push_back(serving_);
    for (const Done& item : done_) answering.push_back(item.connection);
  }
  for (const auto& [key, connection] : connections_) {
    if (at < connection->deadline) continue;
    if (connection->phase == Phase::kWorking &&
        std::find(answering.begin(), answering.end(), key) != answering.end())
      continue;
    expired.push_back(key);
  }
  for (const std::uint64_t key : expired) {
    Connection& c = *connections_.at(key);
    if (c.phase == Phase::kWorking && options_.access_log) {
      // Queued too long behind other work and dropped unserved (see Job): still one access-log
      // line, so no admin request goes unrecorded.
      AccessRecord record;
      record.method = c.method;
      record.path = c.path;
      record.peer = c.peer;
      record.status = 503;
      record.request_id = c.request_id;
      record.admin_route = c.admin_route;
      options_.access_log(record);
    }
    if (c.phase == Phase::kReading && c.request_started && !c.ssl && !c.in.empty()) {
      // A request that did not arrive in time: one best-effort 408, then the close.
      const std::string timeout = serialize(
          errorResponse(408, "the request did not arrive within " +
                                 std::to_string(options_.request_timeout.count()) + " ms"),
          false, false, 0);
      [[maybe_unused]] auto written =
          ::send(c.fd.get(), timeout.data(), timeout.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close(key);
  }
}

Response HttpServer::Loop::answer(const Request& request) const {
  try {
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
    return route(request, *snapshot, context);
  } catch (...) {
    // route() catches its own; this guards the store and the context.
    return errorResponse(500, "internal error");
  }
}

void HttpServer::Loop::workerMain() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return worker_stop_ || !jobs_.empty(); });
    if (worker_stop_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    if (now() >= job.deadline) continue;  // its connection is closed: see Job
    serving_ = job.connection;
    lock.unlock();
    Response response = answer(job.request);
    lock.lock();
    serving_ = 0;
    done_.push_back(Done{job.connection, job.request_id, std::move(response)});
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(done_fd_.get(), &one, sizeof one);
  }
}

void HttpServer::Loop::collectDone() {
  std::uint64_t count = 0;
  [[maybe_unused]] auto got = ::read(done_fd_.get(), &count, sizeof count);
  std::vector<Done> done;
  {
    std::lock_guard lock(mutex_);
    done.swap(done_);
  }
  for (Done& item : done) {
    const auto it = connections_.find(item.connection);
    // Closed meanwhile (deadline, client gone): the answer has no one to go to.
    if (it == connections_.end()) continue;
    Connection& c = *it->second;
    if (c.phase != Phase::kWorking || c.request_id != item.request_id) continue;
    respond(c, item.response);
    serve(c);
  }
}

void HttpServer::Loop::stopWorker() {
  {
    std::lock_guard lock(mutex_);
    worker_stop_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

ServerOptions serverOptionsFromConfig(const config::Config& config) {
  ServerOptions options;
  options.address = config.http.listen_address;
  options.port = config.http.port;
  const Millis longest_tick =
      config.probe.interval + config.probe.connect_timeout + config.probe.query_timeout;
  options.max_tick_age = std::max(kDefaultMaxTickAge, 3 * longest_tick);
  options.max_lag_bytes = config.failover.max_lag_bytes;
  options.request_timeout = config.http.request_timeout;
  options.idle_timeout = config.http.idle_timeout;
  options.max_connections = static_cast<std::size_t>(config.http.max_connections);
  options.max_connections_per_address =
      static_cast<std::size_t>(config.http.max_connections_per_address);
  options.tls.certificate = config.http.tls.certificate;
  options.tls.key = config.http.tls.key;
  options.tls.client_ca = config.http.tls.client_ca;
  return options;
}

HttpServer::HttpServer(ServerOptions options, const core::SnapshotStore& snapshots,
                       const metrics::Metrics* metrics)
    : options_(std::move(options)), snapshots_(snapshots), metrics_(metrics) {}

HttpServer::~HttpServer() {
  stop();
}

bool HttpServer::running() const {
  return running_;
}

Status HttpServer::start() {
  if (started_) return {StatusCode::kFailedPrecondition, "the HTTP server was already started"};
  started_ = true;
  // OpenSSL writes to the socket with write(): a client that closes mid-response must not kill
  // the process with SIGPIPE (the daemon ignores it too; this covers any other embedder).
  if (!options_.tls.certificate.empty()) {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL)
      ::signal(SIGPIPE, SIG_IGN);
  }
  loop_ = std::make_unique<Loop>(options_, snapshots_, metrics_, open_connections_);
  int port = 0;
  if (Status status = loop_->open(port); !status.isOk()) {
    loop_.reset();
    return status;
  }
  bound_port_ = port;
  running_ = true;
  // The socket listens already, so a request sent right after start() returns waits in the
  // backlog until the loop picks it up.
  thread_ = std::thread([this] {
    loop_->run();
    running_ = false;
  });
  return Status::ok();
}

void HttpServer::stop() {
  if (!thread_.joinable()) return;
  loop_->requestStop();
  thread_.join();
  running_ = false;
  loop_.reset();
}

}  // namespace pgfailover::http
