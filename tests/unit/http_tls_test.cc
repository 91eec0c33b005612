// HTTPS on the real listener: certificates made with the openssl command line, spoken to with
// httplib's OpenSSL client. Plain HTTP on the HTTPS port, the client CA on the admin routes,
// unusable certificate and key files, and a handshake that never finishes.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <sstream>

#include "cli/admin_commands.h"
#include "cli/api_client.h"
#include "http/http_server.h"
#include "support/raw_socket.h"
#include "support/test_certs.h"

namespace pgfailover::http {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "tls-test-admin-token";

core::NodeSnapshot node(std::string name, bool replica) {
  core::NodeSnapshot n;
  n.name = std::move(name);
  n.host = "127.0.0.1";
  n.role = replica ? core::NodeRole::kReplica : core::NodeRole::kPrimary;
  n.observation.probed = true;
  n.observation.reachable = true;
  n.observation.in_recovery = replica;
  n.observation.timeline = 1;
  if (replica) {
    n.observation.wal_receiver = core::WalReceiver{"streaming", "127.0.0.1", 5432, 1, 0.1, {}};
    n.lag_bytes = 0;
  } else {
    n.observation.current_lsn = 0x3000000;
  }
  return n;
}

class HttpTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = testing::makeTestCerts(); }

  void SetUp() override {
    ASSERT_TRUE(certs_.ok) << certs_.error;
    auto snapshot = std::make_shared<core::Snapshot>();
    snapshot->ready = true;
    snapshot->tick = 1;
    snapshot->tick_at = std::chrono::steady_clock::now();
    snapshot->state = core::ClusterState::kHealthy;
    snapshot->primary = 0;
    snapshot->nodes = {node("pg1", false), node("pg2", true)};
    store_.publish(snapshot);
  }

  ServerOptions options(bool client_ca) {
    ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.tls.certificate = certs_.server_cert;
    o.tls.key = certs_.server_key;
    if (client_ca) o.tls.client_ca = certs_.ca;
    o.admin_token = &token_;
    o.submit = [](core::AdminRequest) -> std::optional<std::uint64_t> { return 7; };
    o.access_log = [this](const AccessRecord& record) {
      std::lock_guard lock(mutex_);
      log_ += std::string(record.method) + " " + std::string(record.path) + " " +
              std::to_string(record.status) + "\n";
    };
    return o;
  }

  void start(ServerOptions o) {
    server_ = std::make_unique<HttpServer>(std::move(o), store_, nullptr);
    const Status status = server_->start();
    ASSERT_TRUE(status.isOk()) << status.message();
  }

  std::unique_ptr<httplib::SSLClient> https(bool with_client_cert = false,
                                            bool other_ca = false) const {
    std::unique_ptr<httplib::SSLClient> client;
    if (with_client_cert)
      client = std::make_unique<httplib::SSLClient>(
          "127.0.0.1", server_->boundPort(), other_ca ? certs_.other_cert : certs_.client_cert,
          other_ca ? certs_.other_key : certs_.client_key);
    else
      client = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->boundPort());
    client->set_ca_cert_path(certs_.ca.c_str());
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(2, 0);
    client->set_read_timeout(2, 0);
    return client;
  }

  static testing::TestCerts certs_;
  Secret token_{kToken};
  core::SnapshotStore store_;
  std::mutex mutex_;
  std::string log_;
  std::unique_ptr<HttpServer> server_;
};

testing::TestCerts HttpTlsTest::certs_;

TEST_F(HttpTlsTest, ServedOverHttpsWithTheConfiguredCertificate) {
  start(options(false));
  auto client = https();
  auto health = client->Get("/primary/pg1");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->get_header_value("Cache-Control"), "no-store");
  // A route the worker answers, and a second request on the same TLS connection.
  auto status = client->Get("/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200);
  EXPECT_NE(status->body.find("pg2"), std::string::npos);
}

TEST_F(HttpTlsTest, LimitsHoldOverTlsToo) {
  start(options(false));
  // A body without a length (httplib sends it chunked) is refused over TLS as over plain HTTP.
  auto chunked = https()->Post(
      "/switchover",
      [](std::size_t, httplib::DataSink& sink) {
        const std::string block(1024, 'x');
        sink.write(block.data(), block.size());
        sink.done();
        return true;
      },
      "application/json");
  ASSERT_TRUE(chunked) << httplib::to_string(chunked.error());
  EXPECT_EQ(chunked->status, 411);
  auto huge = https()->Get("/healthz", {{"X-Big", std::string(9000, 'a')}});
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 431);
}

TEST_F(HttpTlsTest, PlainHttpToTheHttpsPortIsAClear400) {
  start(options(false));
  httplib::Client plain("127.0.0.1", server_->boundPort());
  plain.set_read_timeout(2, 0);
  auto response = plain.Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_NE(response->body.find("https://"), std::string::npos) << response->body;
}

TEST_F(HttpTlsTest, TheClientCaGuardsTheAdminRoutesOnly) {
  start(options(true));
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  auto without = https()->Post("/switchover", auth, "{}", "application/json");
  ASSERT_TRUE(without) << httplib::to_string(without.error());
  EXPECT_EQ(without->status, 403);
  EXPECT_NE(without->body.find("client certificate"), std::string::npos);

  auto with = https(true)->Post("/switchover", auth, "{}", "application/json");
  ASSERT_TRUE(with) << httplib::to_string(with.error());
  EXPECT_EQ(with->status, 202) << with->body;

  // The certificate does not replace the token.
  auto no_token = https(true)->Post("/switchover", "{}", "application/json");
  ASSERT_TRUE(no_token);
  EXPECT_EQ(no_token->status, 401);

  // Health checks and Prometheus need no client certificate.
  auto health = https()->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  // A certificate from another CA ends the handshake: no answer at all.
  auto intruder = https(true, true)->Post("/switchover", auth, "{}", "application/json");
  EXPECT_FALSE(intruder);

  std::lock_guard lock(mutex_);
  EXPECT_NE(log_.find("POST /switchover 403"), std::string::npos) << log_;
  EXPECT_NE(log_.find("POST /switchover 202"), std::string::npos) << log_;
}

TEST_F(HttpTlsTest, AHandshakeThatNeverFinishesIsCutAtTheDeadline) {
  auto o = options(false);
  o.request_timeout = 800ms;
  start(std::move(o));
  testing::RawSocket socket(server_->boundPort());
  ASSERT_TRUE(socket.send(std::string(1, '\x16')));  // the start of a TLS record, then nothing
  EXPECT_TRUE(socket.closedWithin(2s));
}

TEST_F(HttpTlsTest, UnusableFilesAreRefusedNamingTheKey) {
  struct Case {
    std::string certificate;
    std::string key;
    std::string names;
  };
  const std::string world_readable = certs_.dir + "/world-readable.key";
  std::system(("cp '" + certs_.server_key + "' '" + world_readable + "'").c_str());
  ::chmod(world_readable.c_str(), 0644);
  const std::string not_a_cert = certs_.dir + "/server.ext";
  const std::vector<Case> cases = {
      {certs_.server_cert, certs_.dir + "/missing.key", "http.tls.key"},
      {certs_.server_cert, world_readable, "http.tls.key"},
      {certs_.server_cert, certs_.client_key, "http.tls.key"},  // not the certificate's key
      {not_a_cert, certs_.server_key, "http.tls.certificate"},
      {certs_.dir + "/missing.pem", certs_.server_key, "http.tls.certificate"},
  };
  for (const auto& c : cases) {
    ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.tls.certificate = c.certificate;
    o.tls.key = c.key;
    HttpServer server(o, store_, nullptr);
    const Status status = server.start();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.key << ": " << status.message();
    EXPECT_NE(status.message().find(c.names), std::string::npos) << status.message();
  }
}

// The CLI's client (status, history, switchover, failover) over https://, the CA and the client
// certificate from the environment.
TEST_F(HttpTlsTest, TheCliClientSpeaksHttpsWithTheCaAndClientCertificateFromTheEnvironment) {
  start(options(true));
  const std::string url = "https://127.0.0.1:" + std::to_string(server_->boundPort());
  ::unsetenv("PGFAILOVER_CA_FILE");
  ::unsetenv("PGFAILOVER_CLIENT_CERT");
  ::unsetenv("PGFAILOVER_CLIENT_KEY");
  const auto unverified = cli::ApiClient(url).get("/healthz");
  EXPECT_FALSE(unverified.answered()) << "a certificate from an unknown CA was accepted";

  ::setenv("PGFAILOVER_CA_FILE", certs_.ca.c_str(), 1);
  const auto health = cli::ApiClient(url).get("/healthz");
  EXPECT_EQ(health.status, 200) << health.error;
  const Secret token(kToken);
  EXPECT_EQ(cli::ApiClient(url).post("/switchover", "{}", token).status, 403);

  ::setenv("PGFAILOVER_CLIENT_CERT", certs_.client_cert.c_str(), 1);
  ::setenv("PGFAILOVER_CLIENT_KEY", certs_.client_key.c_str(), 1);
  const auto accepted = cli::ApiClient(url).post("/switchover", "{}", token);
  EXPECT_EQ(accepted.status, 202) << accepted.error << accepted.body;
  ::unsetenv("PGFAILOVER_CA_FILE");
  ::unsetenv("PGFAILOVER_CLIENT_CERT");
  ::unsetenv("PGFAILOVER_CLIENT_KEY");
}

// Two HTTPS instances: the CLI follows the redirect of the one that does not act to the acting
// one, verifying its certificate with the same CA and sending the token along; a redirect from
// https to http (the URL comes from etcd) is refused before any connection.
TEST_F(HttpTlsTest, TheCliFollowsARedirectFromHttpsOnlyToHttps) {
  start(options(false));  // the acting instance (no etcd view: it acts)
  const std::string acting_url = "https://127.0.0.1:" + std::to_string(server_->boundPort());
  auto redirecting = [&](const std::string& acting_api_url) {
    auto s = std::make_shared<core::Snapshot>(*store_.current());
    s->coordination.enabled = true;
    s->coordination.instance = "pgf-a";
    s->coordination.acting = false;
    s->coordination.acting_instance = "pgf-b";
    s->coordination.acting_api_url = acting_api_url;
    s->coordination.etcd_reachable = true;
    return s;
  };
  core::SnapshotStore other_store;
  other_store.publish(redirecting(acting_url));
  std::atomic<int> other_submitted{0};
  ServerOptions o = options(false);
  o.submit = [&other_submitted](core::AdminRequest) -> std::optional<std::uint64_t> {
    return ++other_submitted;
  };
  o.access_log = nullptr;
  HttpServer other(std::move(o), other_store, nullptr);
  ASSERT_TRUE(other.start().isOk());
  const std::string other_url = "https://127.0.0.1:" + std::to_string(other.boundPort());

  ::setenv("PGFAILOVER_CA_FILE", certs_.ca.c_str(), 1);
  cli::AdminCommandOptions cli_options;
  cli_options.environment = [](const std::string& name) -> std::optional<std::string> {
    if (name == cli::kTokenEnvironmentVariable) return std::string(kToken);
    return std::nullopt;
  };
  std::ostringstream out, err;
  EXPECT_EQ(cli::switchoverCommandMain({"--url", other_url, "--wait", "0"}, out, err, cli_options),
            0)
      << err.str();
  EXPECT_NE(out.str().find("sent to the acting instance 'pgf-b' at " + acting_url + "/switchover"),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("switchover accepted (request 7)"), std::string::npos) << out.str();
  EXPECT_EQ(other_submitted.load(), 0);
  {
    std::lock_guard lock(mutex_);
    EXPECT_NE(log_.find("POST /switchover 202"), std::string::npos) << log_;
  }

  testing::SilentListener plain;
  ASSERT_TRUE(plain.ok());
  const std::string plain_url = "http://127.0.0.1:" + std::to_string(plain.port());
  other_store.publish(redirecting(plain_url));
  std::ostringstream out2, err2;
  EXPECT_EQ(
      cli::switchoverCommandMain({"--url", other_url, "--wait", "0"}, out2, err2, cli_options), 1);
  EXPECT_NE(err2.str().find("redirected to " + plain_url +
                            "/switchover, which is not https://: the admin token is only sent "
                            "over the scheme of --url"),
            std::string::npos)
      << err2.str();
  EXPECT_FALSE(plain.connected());
  EXPECT_EQ(other_submitted.load(), 0);
  ::unsetenv("PGFAILOVER_CA_FILE");
}

}  // namespace
}  // namespace pgfailover::http
