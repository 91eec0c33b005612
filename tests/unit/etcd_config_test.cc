// The optional "etcd" section: absent changes nothing, defaults, and each mistake named by key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "support/config_errors.h"

namespace pgfailover::config {
namespace {

using pgfailover::testing::joinedErrors;

using nlohmann::json;

json minimal() {
  return json::parse(R"({"cluster_name": "shop",
    "nodes": [{"name": "pg1", "host": "10.0.0.1"}, {"name": "pg2", "host": "10.0.0.2"}]})");
}

LoadResult parse(const json& config) {
  return parseConfig(config.dump(), [](const std::string&) { return std::nullopt; });
}

bool hasError(const LoadResult& r, const std::string& fragment) {
  return joinedErrors(r).find(fragment) != std::string::npos;
}

LoadResult withEtcd(const json& etcd) {
  json config = minimal();
  config["etcd"] = etcd;
  return parse(config);
}

TEST(EtcdConfig, AbsentSectionChangesNothing) {
  LoadResult r = parse(minimal());
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_FALSE(r.config->etcd.enabled);
  EXPECT_EQ(describeConfig(*r.config).find("\"etcd\""), std::string::npos);
}

TEST(EtcdConfig, Defaults) {
  LoadResult r = withEtcd({{"endpoints", {"http://127.0.0.1:2379"}}});
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  const auto& e = r.config->etcd;
  EXPECT_TRUE(e.enabled);
  EXPECT_EQ(e.prefix, "/pgfailover/shop");
  EXPECT_EQ(e.lease_ttl.count(), 5000);
  EXPECT_EQ(e.request_timeout.count(), 1000);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  EXPECT_EQ(e.name, host);
  json described = json::parse(describeConfig(*r.config));
  EXPECT_EQ(described["etcd"]["lease_ttl_ms"], 5000);
  EXPECT_EQ(described["etcd"]["endpoints"][0], "http://127.0.0.1:2379");
}

TEST(EtcdConfig, EveryField) {
  char path[] = "/tmp/pgfailover-etcd-password-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "etcd-secret-pw\n", 15), 15);
  close(fd);
  LoadResult r = withEtcd({{"name", "pgf-a"},
                           {"endpoints", {"https://etcd-1:2379", "https://[::1]:2379"}},
                           {"prefix", "/ha/shop"},
                           {"lease_ttl_ms", 10000},
                           {"request_timeout_ms", 2000},
                           {"tls", {{"ca_file", path}, {"cert_file", path}, {"key_file", path}}},
                           {"user", "pgfailover"},
                           {"password_file", path}});
  std::remove(path);
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  const auto& e = r.config->etcd;
  EXPECT_EQ(e.name, "pgf-a");
  EXPECT_EQ(e.endpoints.size(), 2u);
  EXPECT_EQ(e.prefix, "/ha/shop");
  EXPECT_EQ(e.lease_ttl.count(), 10000);
  EXPECT_EQ(e.request_timeout.count(), 2000);
  EXPECT_EQ(e.tls.ca_file, path);
  EXPECT_EQ(e.user, "pgfailover");
  EXPECT_EQ(e.password.revealForUse(), "etcd-secret-pw");
  const std::string described = describeConfig(*r.config);
  EXPECT_EQ(described.find("etcd-secret-pw"), std::string::npos);
  EXPECT_NE(described.find("<redacted>"), std::string::npos);
}

TEST(EtcdConfig, MistakesAreNamedByKey) {
  EXPECT_TRUE(hasError(withEtcd(json::object()), "etcd.endpoints: is required"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", json::array()}}), "etcd.endpoints: is required"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", {"127.0.0.1:2379"}}}), "etcd.endpoints[0]: must"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", {"http://h:2379/v3"}}}), "etcd.endpoints[0]"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", {"http://h:99999"}}}), "etcd.endpoints[0]"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", {"http://a:2379", "https://b:2379"}}}),
                       "etcd.endpoints: mixes"));
  const json ok = {"http://127.0.0.1:2379"};
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"bogus", 1}}), "etcd.bogus: unknown key"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"name", "two words"}}), "etcd.name"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"prefix", "nope"}}), "etcd.prefix"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"prefix", "/x/"}}), "etcd.prefix"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"lease_ttl_ms", 2500}}),
                       "etcd.lease_ttl_ms: is 2500; must be whole seconds"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"lease_ttl_ms", 1000}}), "etcd.lease_ttl_ms"));
  // 3 s: the instance acts for 2 s after a renewal: two ticks of 1 s, no more room.
  EXPECT_TRUE(
      withEtcd({{"endpoints", ok}, {"lease_ttl_ms", 3000}, {"request_timeout_ms", 1000}}).ok());
  EXPECT_TRUE(
      hasError(withEtcd({{"endpoints", ok}, {"lease_ttl_ms", 2000}}), "must cover two ticks"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"request_timeout_ms", 3000}}),
                       "etcd.request_timeout_ms: is 3000 ms"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"user", "u"}}),
                       "etcd.password_file: is "
                       "required"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"password_file", "/nonexistent"}}),
                       "etcd.user: is required"));
  EXPECT_TRUE(
      hasError(withEtcd({{"endpoints", ok}, {"user", "u"}, {"password_file", "/nonexistent/pw"}}),
               "etcd.password_file: cannot read password file /nonexistent/pw"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"tls", {{"ca_file", "/nonexistent/ca"}}}}),
                       "etcd.tls.ca_file: cannot read /nonexistent/ca"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"tls", {{"ca_file", "/etc/hostname"}}}}),
                       "plain http://"));
  EXPECT_TRUE(hasError(
      withEtcd({{"endpoints", {"https://h:2379"}}, {"tls", {{"cert_file", "/etc/hostname"}}}}),
      "cert_file and key_file go together"));
  EXPECT_TRUE(hasError(withEtcd({{"endpoints", ok}, {"tls", {{"crt", "x"}}}}),
                       "etcd.tls.crt: unknown key"));
  EXPECT_TRUE(hasError(withEtcd("yes"), "etcd: must be an object"));
  // /etc/hostname is 0644: a client key anyone can read is refused like every secret file.
  EXPECT_TRUE(
      hasError(withEtcd({{"endpoints", {"https://h:2379"}},
                         {"tls", {{"cert_file", "/etc/hostname"}, {"key_file", "/etc/hostname"}}}}),
               "etcd.tls.key_file: /etc/hostname is open to all users"));
}

}  // namespace
}  // namespace pgfailover::config
