// The `http` section's limits and `http.tls` files: defaults, ranges, and TLS files that are
// missing, not regular files or readable by others, each refused naming its key.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "config/config.h"
#include "http/http_server.h"
#include "support/config_errors.h"
#include "support/test_certs.h"

namespace pgfailover::config {
namespace {

using pgfailover::testing::joinedErrors;

using namespace std::chrono_literals;

LoadResult parseWithHttp(const std::string& http) {
  return parseConfig(R"({"nodes": [{"name": "pg1", "host": "10.0.0.1"},
                                    {"name": "pg2", "host": "10.0.0.2"}],
                         "http": )" +
                         http + "}",
                     [](const std::string&) { return std::nullopt; });
}

TEST(HttpConfig, LimitsHaveSafeDefaultsAndReachTheServer) {
  const auto r = parseWithHttp(R"({"port": 9000})");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->http.request_timeout, 2000ms);
  EXPECT_EQ(r.config->http.idle_timeout, 5000ms);
  EXPECT_EQ(r.config->http.max_connections, 512);
  EXPECT_EQ(r.config->http.max_connections_per_address, 64);
  EXPECT_FALSE(r.config->http.tls.enabled());

  const auto set = parseWithHttp(R"({"request_timeout_ms": 500, "idle_timeout_ms": 900,
                                     "max_connections": 100, "max_connections_per_address": 10})");
  ASSERT_TRUE(set.ok()) << joinedErrors(set);
  const http::ServerOptions options = http::serverOptionsFromConfig(*set.config);
  EXPECT_EQ(options.request_timeout, 500ms);
  EXPECT_EQ(options.idle_timeout, 900ms);
  EXPECT_EQ(options.max_connections, 100u);
  EXPECT_EQ(options.max_connections_per_address, 10u);
}

TEST(HttpConfig, BadLimitsAreRefusedNamingTheKey) {
  EXPECT_NE(
      joinedErrors(parseWithHttp(R"({"request_timeout_ms": 0})")).find("http.request_timeout_ms"),
      std::string::npos);
  EXPECT_NE(joinedErrors(parseWithHttp(R"({"max_connections": 2})")).find("http.max_connections"),
            std::string::npos);
  EXPECT_NE(
      joinedErrors(parseWithHttp(R"({"max_connections": 16, "max_connections_per_address": 32})"))
          .find("http.max_connections_per_address: must not exceed"),
      std::string::npos);
  EXPECT_NE(joinedErrors(parseWithHttp(R"({"tls": {"certificate": "/x.pem", "kye": "/x.key"}})"))
                .find("http.tls.kye: unknown key"),
            std::string::npos);
  EXPECT_NE(joinedErrors(parseWithHttp(R"({"tls": "on"})")).find("tls: must be an object"),
            std::string::npos);
}

TEST(HttpConfig, TlsFilesAreCheckedNamingTheKey) {
  const testing::TestCerts certs = testing::makeTestCerts();
  ASSERT_TRUE(certs.ok) << certs.error;
  const auto tls = [](const std::string& cert, const std::string& key, const std::string& ca = "") {
    return parseWithHttp(R"({"tls": {"certificate": ")" + cert + R"(", "key": ")" + key +
                         R"(", "client_ca": ")" + ca + R"("}})");
  };
  const auto good = tls(certs.server_cert, certs.server_key, certs.ca);
  ASSERT_TRUE(good.ok()) << joinedErrors(good);
  EXPECT_TRUE(good.config->http.tls.enabled());
  EXPECT_EQ(http::serverOptionsFromConfig(*good.config).tls.client_ca, certs.ca);
  // check-config shows the files (paths only: nothing secret).
  EXPECT_NE(describeConfig(*good.config).find(certs.server_key), std::string::npos);

  const std::string readable = certs.dir + "/readable.key";
  std::ifstream in(certs.server_key);
  std::ofstream(readable) << in.rdbuf();
  // The rule of every secret file: open to all users is refused (a root-owned 0640 is what
  // Kubernetes mounts, and allowed).
  ::chmod(readable.c_str(), 0644);
  EXPECT_NE(joinedErrors(tls(certs.server_cert, readable))
                .find("http.tls.key: " + readable + " is open to all users (mode 0644)"),
            std::string::npos)
      << joinedErrors(tls(certs.server_cert, readable));
  EXPECT_NE(joinedErrors(tls(certs.server_cert, certs.dir + "/none.key"))
                .find("http.tls.key: cannot read"),
            std::string::npos);
  EXPECT_NE(joinedErrors(tls(certs.dir, certs.server_key))
                .find("http.tls.certificate: " + certs.dir + " is not a regular file"),
            std::string::npos);
  EXPECT_NE(joinedErrors(tls(certs.server_cert, "")).find("http.tls.key: is required"),
            std::string::npos);
  EXPECT_NE(
      joinedErrors(tls("", "", certs.ca)).find("http.tls.client_ca: needs http.tls.certificate"),
      std::string::npos);
}

}  // namespace
}  // namespace pgfailover::config
