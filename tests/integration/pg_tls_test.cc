// libpq TLS against real servers: with sslmode verify-full pgfailover talks only to a node whose
// certificate its CA signed for the node's address, and never sends the password anywhere else;
// with the default sslmode prefer the password goes to whatever answers, which the daemon warns
// about at start and in /status. The nodes are set up by scripts/node/ (TLS on, a CA in
// <cluster dir>/ca), as in every lab.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "config/config.h"
#include "pg/connection.h"
#include "pg/node_prober.h"
#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

config::NodeConfig nodeConfig(const PgCluster& cluster, const std::string& host,
                              const std::string& sslmode, const std::string& sslrootcert) {
  config::NodeConfig node;
  node.name = cluster.node(0).name;
  node.host = host;
  node.port = cluster.node(0).port;
  node.user = cluster.user();
  node.password = Secret(cluster.password());
  node.sslmode = sslmode;
  node.sslrootcert = sslrootcert;
  return node;
}

config::ProbeConfig probeConfig() {
  config::ProbeConfig probe;
  probe.connect_timeout = Millis{2000};
  probe.query_timeout = Millis{2000};
  probe.heartbeat = false;
  return probe;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// How many times the server log says `needle`.
int countInLog(const PgCluster& cluster, const std::string& needle) {
  const std::string log = readFile(cluster.logFile(0));
  int count = 0;
  for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++count;
  return count;
}

// A CA of its own, unrelated to the nodes' (what an impostor's certificate chains to).
std::string makeOtherCa(const std::string& dir) {
  const std::string command =
      "openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" +
      dir + "/other-ca.key' -out '" + dir + "/other-ca.crt' -days 2 -subj '/CN=other CA' 2>&1";
  std::string output;
  EXPECT_EQ(runCommand(command, &output), 0) << output;
  return dir + "/other-ca.crt";
}

PgClusterOptions loggingConnections() {
  PgClusterOptions options;
  options.replicas = 0;
  options.settings = {"log_connections = on"};
  return options;
}

TEST(PgTls, VerifyFullConnectsOnlyToTheNodeItsCaSignedAndTheLinkIsEncrypted) {
  PgCluster cluster(loggingConnections());
  ASSERT_TRUE(cluster.ok());
  const std::string ca = cluster.dir() + "/ca/ca.crt";
  const std::string other_ca = makeOtherCa(cluster.dir());
  const int authorized_before = countInLog(cluster, "connection authorized: user=pgfailover");

  // A certificate from another CA at the node's address: refused during the TLS handshake,
  // before the startup message, so no password (nor even the user name) reaches the server.
  pg::NodeProber impostor(nodeConfig(cluster, "127.0.0.1", "verify-full", other_ca), probeConfig());
  auto seen = impostor.probe(false);
  EXPECT_FALSE(seen.reachable);
  EXPECT_NE(seen.error.find("certificate verify failed"), std::string::npos) << seen.error;
  // The right CA, but a host name the certificate does not name.
  pg::NodeProber wrong_name(nodeConfig(cluster, "localhost", "verify-full", ca), probeConfig());
  seen = wrong_name.probe(false);
  EXPECT_FALSE(seen.reachable);
  EXPECT_NE(seen.error.find("does not match host name \"localhost\""), std::string::npos)
      << seen.error;
  EXPECT_EQ(countInLog(cluster, "connection authorized: user=pgfailover"), authorized_before);
  EXPECT_EQ(countInLog(cluster, "password authentication failed"), 0);

  // The nodes' CA and the address in the certificate: connected, and the session is encrypted.
  const auto node = nodeConfig(cluster, "127.0.0.1", "verify-full", ca);
  pg::NodeProber prober(node, probeConfig());
  seen = prober.probe(false);
  EXPECT_TRUE(seen.reachable) << seen.error;
  pg::Connection connection;
  pg::ConnectOptions options;
  options.host = node.host;
  options.port = node.port;
  options.user = node.user;
  options.password = node.password;
  options.sslmode = node.sslmode;
  options.sslrootcert = node.sslrootcert;
  ASSERT_FALSE(connection.connect(options, std::chrono::steady_clock::now() + 5s));
  auto ssl = connection.exec("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                             std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(ssl.ok()) << ssl.error->message;
  EXPECT_EQ(ssl.result.value(0, 0), "t");
  EXPECT_EQ(ssl.result.value(0, 1).substr(0, 4), "TLSv");
  // The log does record authorized sessions: the count above could have moved.
  EXPECT_GT(countInLog(cluster, "connection authorized: user=pgfailover"), authorized_before);
}

TEST(PgTls, SuperuserNeedsAClientCertificateWhenTheNodeAsksForOne) {
  PgClusterOptions options;
  options.replicas = 0;
  PgCluster cluster(options);
  ASSERT_TRUE(cluster.ok());
  std::string output;
  ASSERT_EQ(cluster.runNodeScript(
                0, "init-primary.sh",
                {"--superuser-clientcert", "--superuser-password-file", cluster.passwordFile(),
                 "--repl-password-file", cluster.replicationPasswordFile()},
                &output),
            0)
      << output;
  const std::string ca_dir = cluster.dir() + "/ca";
  // pgfailover's client certificate: CN = the superuser, from the nodes' CA.
  const std::string cert = cluster.dir() + "/client.crt";
  const std::string key = cluster.dir() + "/client.key";
  ASSERT_EQ(runCommand("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-keyout '" +
                           key + "' -subj '/CN=" + cluster.user() +
                           "' 2>/dev/null | "
                           "openssl x509 -req -CA '" +
                           ca_dir + "/ca.crt' -CAkey '" + ca_dir +
                           "/ca.key' -set_serial 7 -days 2 -out '" + cert +
                           "' 2>&1 && chmod 0600 '" + key + "'",
                       &output),
            0)
      << output;

  pg::ConnectOptions connect;
  connect.host = "127.0.0.1";
  connect.port = cluster.node(0).port;
  connect.user = cluster.user();
  connect.password = Secret(cluster.password());
  connect.sslmode = "verify-full";
  connect.sslrootcert = ca_dir + "/ca.crt";
  pg::Connection connection;
  // The password alone: refused.
  auto refused = connection.connect(connect, std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->message.find("certificate"), std::string::npos) << refused->message;
  // With the certificate: in, over TLS, authenticated by both.
  connect.sslcert = cert;
  connect.sslkey = key;
  auto error = connection.connect(connect, std::chrono::steady_clock::now() + 5s);
  ASSERT_FALSE(error.has_value()) << error->message;
  auto ssl = connection.exec("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                             std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(ssl.ok()) << ssl.error->message;
  EXPECT_EQ(ssl.result.value(0, 0), "t");
  EXPECT_EQ(ssl.result.value(0, 1), "/CN=" + cluster.user());
  // The server's OS user has no way in over TCP at all.
  std::string hba = readFile(cluster.nodeDir(0) + "/pg_hba.conf");
  EXPECT_NE(hba.find("scram-sha-256 clientcert=verify-full"), std::string::npos) << hba;
  EXPECT_NE(hba.find("reject"), std::string::npos) << hba;
}

// A server that declines TLS and asks for the password in clear, as an impostor would; it
// records the password a client sends.
class PasswordCatcher {
 public:
  PasswordCatcher() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_, 4), 0);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~PasswordCatcher() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  std::string caught() const {
    std::lock_guard lock(mutex_);
    return caught_;
  }
  int connections() const { return connections_; }

 private:
  static bool readAll(int fd, char* buffer, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      pollfd descriptor{fd, POLLIN, 0};
      if (::poll(&descriptor, 1, 3000) <= 0) return false;
      const ssize_t got = ::read(fd, buffer + done, size - done);
      if (got <= 0) return false;
      done += static_cast<std::size_t>(got);
    }
    return true;
  }
  static std::uint32_t int32(const char* bytes) {
    std::uint32_t value;
    std::memcpy(&value, bytes, 4);
    return ntohl(value);
  }
  // One session: SSLRequest -> 'N'; startup message -> AuthenticationCleartextPassword; then
  // the client's PasswordMessage, if it sends one.
  void session(int fd) {
    char header[8];
    if (!readAll(fd, header, 8)) return;
    std::size_t already = 8;  // bytes of the startup message read so far
    if (int32(header) == 8 && int32(header + 4) == 80877103) {
      if (::write(fd, "N", 1) != 1) return;
      if (!readAll(fd, header, 4)) return;
      already = 4;
    }
    const std::uint32_t length = int32(header);
    if (length < 8 || length > 10000) return;
    std::string rest(length - already, '\0');
    if (!readAll(fd, rest.data(), rest.size())) return;
    const char ask[] = {'R', 0, 0, 0, 8, 0, 0, 0, 3};
    if (::write(fd, ask, sizeof ask) != static_cast<ssize_t>(sizeof ask)) return;
    char type_and_length[5];
    if (!readAll(fd, type_and_length, 5) || type_and_length[0] != 'p') return;
    const std::uint32_t size = int32(type_and_length + 1);
    if (size < 5 || size > 10000) return;
    std::string password(size - 4, '\0');
    if (!readAll(fd, password.data(), password.size())) return;
    std::lock_guard lock(mutex_);
    caught_ = password.c_str();
  }
  void serve() {
    while (!stop_) {
      pollfd descriptor{listener_, POLLIN, 0};
      if (::poll(&descriptor, 1, 100) <= 0) continue;
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      session(fd);
      ::close(fd);
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::string caught_;
};

TEST(PgTls, PreferHandsThePasswordToAnImpostorAndVerifyFullDoesNot) {
  const std::string password = "the-node-password-3141";
  auto attempt = [&](int port, const std::string& sslmode) {
    pg::ConnectOptions options;
    options.host = "127.0.0.1";
    options.port = port;
    options.user = "pgfailover";
    options.password = Secret(password);
    options.sslmode = sslmode;
    options.sslrootcert = "/dev/null";
    pg::Connection connection;
    auto error = connection.connect(options, std::chrono::steady_clock::now() + 5s);
    return error ? error->message : std::string("connected");
  };
  {
    PasswordCatcher impostor;
    attempt(impostor.port(), "prefer");
    EXPECT_EQ(impostor.caught(), password) << "sslmode prefer is expected to leak the password";
  }
  {
    PasswordCatcher impostor;
    const std::string error = attempt(impostor.port(), "verify-full");
    EXPECT_GE(impostor.connections(), 1);
    EXPECT_EQ(impostor.caught(), "");
    EXPECT_NE(error.find("SSL"), std::string::npos) << error;
  }
}

json statusOf(int port) {
  auto response = httpGet(port, "/status");
  if (response.status != 200) return json();
  return json::parse(response.body, nullptr, false);
}

TEST(PgTls, DaemonWarnsAboutAPasswordWithoutVerificationAndNotWithVerifyFull) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  const std::string ca = cluster.dir() + "/ca/ca.crt";
  const int http_port = freePort();

  // pgfailoverConfig: password_file, sslmode left at libpq's prefer.
  json config = pgfailoverConfig(cluster, http_port);
  {
    DaemonProcess daemon(writePgfailoverConfig(cluster, config, "prefer.json"),
                         cluster.dir() + "/prefer.log");
    ASSERT_TRUE(daemon.start());
    json status;
    ASSERT_TRUE(waitUntil(
        [&] {
          status = statusOf(http_port);
          return status.is_object() && status.value("state", "") == "healthy";
        },
        30s))
        << status.dump() << daemon.logTail();
    ASSERT_TRUE(status["warnings"].is_array());
    ASSERT_EQ(status["warnings"].size(), 2u) << status["warnings"].dump();
    EXPECT_NE(status["warnings"][0].get<std::string>().find("nodes[0] 'pg1'"), std::string::npos);
    EXPECT_NE(status["warnings"][1].get<std::string>().find("sslmode prefer"), std::string::npos);
    EXPECT_EQ(status["nodes"][0]["tls"]["sslmode"], "prefer");
    EXPECT_EQ(status["nodes"][0]["tls"]["verifies_server"], false);
    EXPECT_EQ(status.dump().find(cluster.password()), std::string::npos);
    const std::string log = daemon.log();
    EXPECT_NE(log.find("tls_unverified"), std::string::npos) << log;
    EXPECT_EQ(log.find(cluster.password()), std::string::npos);
    daemon.stop();
  }
  for (auto& node : config["nodes"]) {
    node["sslmode"] = "verify-full";
    node["sslrootcert"] = ca;
  }
  DaemonProcess daemon(writePgfailoverConfig(cluster, config, "verified.json"),
                       cluster.dir() + "/verified.log");
  ASSERT_TRUE(daemon.start());
  json status;
  ASSERT_TRUE(waitUntil(
      [&] {
        status = statusOf(http_port);
        return status.is_object() && status.value("state", "") == "healthy";
      },
      30s))
      << status.dump() << daemon.logTail();
  EXPECT_EQ(status["warnings"], json::array());
  EXPECT_EQ(status["nodes"][1]["tls"]["verifies_server"], true);
  EXPECT_EQ(daemon.log().find("tls_unverified"), std::string::npos);
  // Every session pgfailover holds on the primary is encrypted.
  const std::string sessions = cluster.sql(
      0,
      "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING "
      "(pid) WHERE a.application_name = 'pgfailover'");
  EXPECT_FALSE(sessions.empty());
  EXPECT_EQ(sessions.find("false"), std::string::npos) << sessions;
}

}  // namespace
}  // namespace pgfailover::testing
