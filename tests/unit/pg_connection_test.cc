// src/pg/connection.h without a PostgreSQL server: a closed port, a listener that never
// answers, and a fake server on 127.0.0.1 that speaks just enough of the protocol to refuse a
// startup with a SQLSTATE or to accept a query and never answer it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "pg/connection.h"
#include "pg/errors.h"
#include "support/pg_cluster.h"

namespace pgfailover::pg {
namespace {

using std::chrono::steady_clock;

// A TCP socket bound to 127.0.0.1 on a kernel-chosen port; listening when asked. The kernel
// completes handshakes into the backlog of a listener nobody accepts from, which is what a
// SIGSTOPped postmaster looks like from outside.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    if (listening) ::listen(fd_, 16);
  }
  ~LoopbackSocket() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

ConnectOptions optionsFor(int port) {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.user = "nobody";
  options.password = Secret("never-printed-9f2");
  options.sslmode = "disable";
  return options;
}

TEST(PgConnectionTest, ClosedPortIsRefusedAtOnce) {
  int port = 0;
  {
    // Bound but not listening: connecting is refused.
    LoopbackSocket closed(false);
    port = closed.port();
    Connection connection;
    auto started = steady_clock::now();
    auto error = connection.connect(optionsFor(port), started + std::chrono::seconds(5));
    ASSERT_TRUE(error);
    EXPECT_LT(steady_clock::now() - started, std::chrono::seconds(2));
    EXPECT_FALSE(error->deadline_expired);
    EXPECT_EQ(classifyFailure(*error), core::ProbeFailure::kRefused) << error->message;
    EXPECT_EQ(error->message.find("never-printed-9f2"), std::string::npos);
    EXPECT_FALSE(connection.connected());
  }
}

TEST(PgConnectionTest, SilentServerTimesOutAtTheDeadline) {
  LoopbackSocket silent(true);
  for (const char* sslmode : {"disable", "prefer"}) {
    ConnectOptions options = optionsFor(silent.port());
    options.sslmode = sslmode;
    Connection connection;
    auto started = steady_clock::now();
    auto error = connection.connect(options, started + std::chrono::milliseconds(300));
    auto took = steady_clock::now() - started;
    ASSERT_TRUE(error) << sslmode;
    EXPECT_TRUE(error->deadline_expired) << sslmode;
    EXPECT_EQ(classifyFailure(*error), core::ProbeFailure::kTimeout);
    EXPECT_GE(took, std::chrono::milliseconds(290));
    EXPECT_LT(took, std::chrono::seconds(3)) << "connect overran its deadline";
    EXPECT_FALSE(connection.connected());
  }
}

TEST(PgConnectionTest, DeadlineInThePastFailsWithoutWaiting) {
  LoopbackSocket silent(true);
  Connection connection;
  auto started = steady_clock::now();
  auto error = connection.connect(optionsFor(silent.port()), started - std::chrono::seconds(1));
  ASSERT_TRUE(error);
  EXPECT_TRUE(error->deadline_expired);
  EXPECT_LT(steady_clock::now() - started, std::chrono::seconds(1));
}

TEST(PgConnectionTest, ExecWithoutAConnectionFails) {
  Connection connection;
  ExecOutcome outcome = connection.exec("SELECT 1", steady_clock::now() + std::chrono::seconds(1));
  ASSERT_FALSE(outcome.ok());
  EXPECT_TRUE(outcome.error->connection_lost);
  EXPECT_EQ(connection.backendPid(), 0);
}

TEST(PgConnectionTest, CancelSlotIgnoresAnEmptyCancel) {
  CancelSlot slot;
  EXPECT_FALSE(slot.launch(PgCancel()));
  EXPECT_FALSE(slot.busy());
}

// A one-connection-at-a-time fake PostgreSQL server. For a startup packet it either sends an
// ErrorResponse (when `refuse_sqlstate` is set) or logs in and then swallows queries without
// answering; it records any CancelRequest it receives.
class FakeServer {
 public:
  static constexpr std::int32_t kPid = 4242;
  static constexpr std::int32_t kKey = 777;

  FakeServer(std::string refuse_sqlstate, std::string refuse_message)
      : refuse_sqlstate_(std::move(refuse_sqlstate)), refuse_message_(std::move(refuse_message)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    ::listen(listen_fd_, 16);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  bool cancelReceived() const { return cancel_received_; }
  bool queryReceived() const { return query_received_; }

 private:
  static bool readExactly(int fd, void* buffer, std::size_t size) {
    auto* bytes = static_cast<char*>(buffer);
    while (size > 0) {
      ssize_t n = ::recv(fd, bytes, size, 0);
      if (n <= 0) return false;
      bytes += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }
  static void appendInt(std::string& out, std::int32_t value) {
    std::uint32_t big = htonl(static_cast<std::uint32_t>(value));
    out.append(reinterpret_cast<const char*>(&big), 4);
  }
  static void message(std::string& out, char type, const std::string& body) {
    out.push_back(type);
    appendInt(out, static_cast<std::int32_t>(body.size() + 4));
    out += body;
  }
  static void sendAll(int fd, const std::string& data) {
    ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
  }

  void serve() {
    std::vector<int> open;
    while (!stopping_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) break;
      open.push_back(fd);
      std::int32_t length = 0;
      std::int32_t code = 0;
      if (!readExactly(fd, &length, 4) || !readExactly(fd, &code, 4)) continue;
      length = static_cast<std::int32_t>(ntohl(static_cast<std::uint32_t>(length)));
      code = static_cast<std::int32_t>(ntohl(static_cast<std::uint32_t>(code)));
      std::string rest(static_cast<std::size_t>(std::max(0, length - 8)), '\0');
      if (!readExactly(fd, rest.data(), rest.size())) continue;
      if (code == 80877102) {  // CancelRequest: pid, key
        std::uint32_t pid = 0, key = 0;
        std::memcpy(&pid, rest.data(), 4);
        std::memcpy(&key, rest.data() + 4, 4);
        cancel_received_ = ntohl(pid) == kPid && ntohl(key) == kKey;
        // PQcancel waits for the server to close, as the postmaster does once it read the key.
        ::close(fd);
        open.pop_back();
        continue;
      }
      std::string out;
      if (!refuse_sqlstate_.empty()) {
        std::string body;
        body += 'S' + std::string("FATAL") + '\0';
        body += 'V' + std::string("FATAL") + '\0';
        body += 'C' + refuse_sqlstate_ + '\0';
        body += 'M' + refuse_message_ + '\0';
        body += '\0';
        message(out, 'E', body);
        sendAll(fd, out);
        continue;
      }
      std::string auth_ok;
      appendInt(auth_ok, 0);
      message(out, 'R', auth_ok);
      std::string key_data;
      appendInt(key_data, kPid);
      appendInt(key_data, kKey);
      message(out, 'K', key_data);
      message(out, 'S', std::string("server_version") + '\0' + "15.0" + '\0');
      message(out, 'S', std::string("client_encoding") + '\0' + "UTF8" + '\0');
      message(out, 'Z', "I");
      sendAll(fd, out);
      char type = 0;
      if (readExactly(fd, &type, 1)) query_received_ = true;  // and never answer it
    }
    for (int fd : open) ::close(fd);
  }

  std::string refuse_sqlstate_;
  std::string refuse_message_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cancel_received_{false};
  std::atomic<bool> query_received_{false};
  std::thread thread_;
};

TEST(PgConnectionTest, StartupRefusalCarriesItsSqlStateWhateverTheLanguage) {
  FakeServer server("57P03", "das Datenbanksystem startet");
  Connection connection;
  auto error =
      connection.connect(optionsFor(server.port()), steady_clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->sqlstate, "57P03");
  EXPECT_FALSE(error->deadline_expired);
  EXPECT_EQ(classifyFailure(*error), core::ProbeFailure::kStartingUp) << error->message;
  EXPECT_NE(error->message.find("FATAL:  das Datenbanksystem startet"), std::string::npos)
      << error->message;
  EXPECT_EQ(error->message.find("57P03"), std::string::npos) << error->message;
}

TEST(PgConnectionTest, UnansweredQueryTimesOutAndIsCancelledInTheBackground) {
  FakeServer server("", "");
  CancelSlot slot;
  Connection connection(slot);
  ASSERT_FALSE(
      connection.connect(optionsFor(server.port()), steady_clock::now() + std::chrono::seconds(5)));
  EXPECT_EQ(connection.backendPid(), FakeServer::kPid);

  auto started = steady_clock::now();
  ExecOutcome outcome = connection.exec("SELECT 1", started + std::chrono::milliseconds(300));
  auto took = steady_clock::now() - started;
  ASSERT_FALSE(outcome.ok());
  EXPECT_TRUE(outcome.error->deadline_expired);
  EXPECT_EQ(classifyFailure(*outcome.error), core::ProbeFailure::kTimeout);
  EXPECT_GE(took, std::chrono::milliseconds(290));
  EXPECT_LT(took, std::chrono::seconds(3)) << "the query overran its deadline";
  EXPECT_TRUE(server.queryReceived());
  EXPECT_FALSE(connection.connected()) << "a timed-out connection must be dropped";
  EXPECT_TRUE(testing::waitUntil([&] { return server.cancelReceived(); }, std::chrono::seconds(5)));
  EXPECT_TRUE(testing::waitUntil([&] { return !slot.busy(); }, std::chrono::seconds(5)));
}

}  // namespace
}  // namespace pgfailover::pg
