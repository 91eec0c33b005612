// Configuration parsing: defaults, every validation error naming its key, secrets never shown.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/config_errors.h"

namespace pgfailover::config {
namespace {

using pgfailover::testing::joinedErrors;

using namespace std::chrono_literals;

std::optional<std::string> fakeEnv(const std::string& name) {
  if (name == "PG_SECRET") return std::string("s3cret-from-env");
  return std::nullopt;
}

const char* kMinimal = R"({
  "nodes": [
    {"name": "pg1", "host": "10.0.0.1"},
    {"name": "pg2", "host": "10.0.0.2"}
  ]
})";

LoadResult parse(const std::string& text) {
  return parseConfig(text, fakeEnv);
}

bool hasError(const LoadResult& r, const std::string& fragment) {
  for (const auto& e : r.errors)
    if (e.find(fragment) != std::string::npos) return true;
  return false;
}

TEST(Config, MinimalConfigGetsSaneDefaults) {
  auto r = parse(kMinimal);
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  const auto& c = *r.config;
  ASSERT_EQ(c.nodes.size(), 2u);
  EXPECT_EQ(c.nodes[0].port, 5432);
  EXPECT_EQ(c.nodes[0].dbname, "postgres");
  EXPECT_EQ(c.probe.interval, 1000ms);
  EXPECT_EQ(c.probe.connect_timeout, 1000ms);
  EXPECT_EQ(c.failover.confirmed_down_timeout, 3000ms);
  EXPECT_EQ(c.failover.unresponsive_timeout, 10000ms);
  EXPECT_EQ(c.failover.max_lag_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(c.http.port, 8008);
  EXPECT_TRUE(c.probe.heartbeat);
  EXPECT_EQ(c.failover.rewind, "auto");
}

TEST(Config, RewindPolicyIsOneOfThreeWords) {
  for (const char* word : {"auto", "always", "never"}) {
    auto r =
        parse(std::string(R"({"nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h2"}],
                                   "failover": {"rewind": ")") +
              word + "\"}}");
    ASSERT_TRUE(r.ok()) << word << ": " << joinedErrors(r);
    EXPECT_EQ(r.config->failover.rewind, word);
  }
  auto r = parse(R"({"nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h2"}],
                     "failover": {"rewind": "sometimes"}})");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(hasError(r, "failover.rewind: must be \"auto\", \"always\" or \"never\""))
      << joinedErrors(r);
  r = parse(R"({"nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h2"}],
                "failover": {"rewind": true}})");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(hasError(r, "failover.rewind")) << joinedErrors(r);
}

TEST(Config, ReadsEveryKey) {
  auto r = parse(R"({
    "cluster_name": "prod",
    "nodes": [
      {"name": "a", "host": "h1", "port": 6432, "dbname": "app", "user": "ha", "sslmode": "require",
       "password_env": "PG_SECRET"},
      {"name": "b", "host": "h2", "port": 6433}
    ],
    "probe": {"interval_ms": 500, "connect_timeout_ms": 700, "query_timeout_ms": 800,
              "heartbeat": false, "heartbeat_table": "ha.beat"},
    "failover": {"confirmed_down_timeout_ms": 2000, "unresponsive_timeout_ms": 8000,
                 "starting_up_grace_ms": 20000, "replica_silence_ms": 4000,
                 "max_lag_bytes": "1MB", "promote_timeout_ms": 5000, "promote_attempts": 2},
    "http": {"listen_address": "127.0.0.1", "port": 9000},
    "log": {"format": "json", "level": "debug"}
  })");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  const auto& c = *r.config;
  EXPECT_EQ(c.cluster_name, "prod");
  EXPECT_EQ(c.nodes[0].password.revealForUse(), "s3cret-from-env");
  EXPECT_EQ(c.nodes[0].sslmode, "require");
  EXPECT_EQ(c.probe.query_timeout, 800ms);
  EXPECT_FALSE(c.probe.heartbeat);
  EXPECT_EQ(c.probe.heartbeat_table, "ha.beat");
  EXPECT_EQ(c.failover.max_lag_bytes, 1024u * 1024);
  EXPECT_EQ(c.failover.promote_attempts, 2);
  EXPECT_EQ(c.http.port, 9000);
  EXPECT_EQ(c.log.format, LogFormat::kJson);
}

TEST(Config, PrimaryLeaseDefaultsBelowTheShortestTimeoutAndIsChecked) {
  auto r = parse(kMinimal);
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->probe.primary_lease, 2500ms) << "min(3 s, 10 s) - 500 ms";

  auto with = [](const std::string& probe, const std::string& failover) {
    return parse(R"({"nodes": [{"name": "pg1", "host": "h1"}, {"name": "pg2", "host": "h2"}],
                    "probe": {)" +
                 probe + R"(}, "failover": {)" + failover + "}}");
  };
  r = with(R"("interval_ms": 500)", R"("confirmed_down_timeout_ms": 1500)");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->probe.primary_lease, 1000ms);
  r = with(R"("primary_lease_ms": 0)", "");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->probe.primary_lease, 0ms);
  r = with(R"("heartbeat": false)", "");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->probe.primary_lease, 0ms) << "no heartbeat renews it";

  r = with(R"("primary_lease_ms": 2800)", "");
  EXPECT_TRUE(hasError(r,
                       "probe.primary_lease_ms: is 2800 ms; it must end before pgfailover "
                       "may promote: at most 2500 ms"))
      << joinedErrors(r);
  r = with(R"("primary_lease_ms": 1500)", "");
  EXPECT_TRUE(hasError(r, "must cover two heartbeats (2 x probe.interval_ms = 2000 ms)"))
      << joinedErrors(r);
  r = with("", R"("confirmed_down_timeout_ms": 2000)");
  EXPECT_TRUE(hasError(r,
                       "probe.primary_lease_ms (by default min(failover timeouts) - 500 ms): "
                       "is 1500 ms"))
      << joinedErrors(r);
  r = with(R"("primary_lease_ms": -1)", "");
  EXPECT_TRUE(hasError(r, "probe.primary_lease_ms: must be an integer")) << joinedErrors(r);
  r = with(R"("heartbeat": false, "primary_lease_ms": 2000)", "");
  EXPECT_TRUE(hasError(r, "probe.primary_lease_ms: needs probe.heartbeat")) << joinedErrors(r);
}

TEST(Config, InvalidJsonIsReportedWithPosition) {
  auto r = parse("{\"nodes\": [");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(hasError(r, "invalid JSON")) << joinedErrors(r);
}

TEST(Config, EveryOffendingKeyIsNamedAtOnce) {
  auto r = parse(R"({
    "nodes": [
      {"name": "pg1", "host": "h1", "port": "5432", "colour": "red"},
      {"name": "pg1", "host": "h2", "port": 70000}
    ],
    "probe": {"interval_ms": 0, "connect_timeout_ms": -5, "heartbeat": "yes"},
    "failover": {"unresponsive_timeout_ms": 1.5, "max_lag_bytes": "lots"},
    "http": {"port": -1},
    "log": {"format": "xml"},
    "extra": 1
  })");
  EXPECT_FALSE(r.ok());
  for (const char* key :
       {"nodes[0].port: must be an integer", "nodes[0].colour: unknown key",
        "nodes[1].name: duplicate node name 'pg1'", "nodes[1].port: must be between 1 and 65535",
        "probe.interval_ms: must be a positive duration", "probe.connect_timeout_ms",
        "probe.heartbeat: must be true or false", "failover.unresponsive_timeout_ms",
        "failover.max_lag_bytes", "http.port", "log.format", "extra: unknown key"}) {
    EXPECT_TRUE(hasError(r, key)) << "missing: " << key << "\n" << joinedErrors(r);
  }
}

TEST(Config, SingleNodeIsRejected) {
  auto r = parse(R"({"nodes": [{"name": "pg1", "host": "h1"}]})");
  EXPECT_TRUE(hasError(r, "nodes: needs at least two nodes")) << joinedErrors(r);
}

TEST(Config, MissingNodesAndWrongTypesAreNamed) {
  EXPECT_TRUE(hasError(parse("{}"), "nodes: is required"));
  EXPECT_TRUE(hasError(parse(R"({"nodes": {}})"), "nodes: must be a list"));
  EXPECT_TRUE(hasError(parse(R"({"nodes": [1, 2]})"), "nodes[0]: must be an object"));
  EXPECT_TRUE(hasError(parse(R"({"nodes": [{"name": "a"}, {"host": "h"}]})"),
                       "nodes[0].host: is required"));
  EXPECT_TRUE(hasError(parse(R"({"nodes": [{"name": "a"}, {"host": "h"}]})"),
                       "nodes[1].name: is required"));
  EXPECT_TRUE(hasError(parse("[]"), "must be a JSON object"));
  EXPECT_TRUE(hasError(parse(R"({"probe": 3, "nodes": []})"), "probe: must be an object"));
}

TEST(Config, NodeNamesMustBeUrlSafe) {
  auto r = parse(R"({"nodes": [{"name": "pg 1/x", "host": "h1"}, {"name": "b", "host": "h2"}]})");
  EXPECT_TRUE(hasError(r, "nodes[0].name: must be 1-63 characters")) << joinedErrors(r);
}

TEST(Config, DuplicateAddressesAreRejected) {
  auto r = parse(R"({"nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h1"}]})");
  EXPECT_TRUE(hasError(r, "duplicate address h1:5432")) << joinedErrors(r);
}

TEST(Config, PasswordSourcesAreExclusiveAndMustResolve) {
  auto r = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "password_env": "PG_SECRET", "password_file": "/x"},
    {"name": "b", "host": "h2", "password_env": "NOT_SET"}]})");
  EXPECT_TRUE(hasError(r, "nodes[0]: password_file and password_env are exclusive"))
      << joinedErrors(r);
  EXPECT_TRUE(hasError(r, "nodes[1].password_env: environment variable NOT_SET is not set"))
      << joinedErrors(r);
  auto missing = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "password_file": "/nonexistent/pw"},
    {"name": "b", "host": "h2"}]})");
  EXPECT_TRUE(
      hasError(missing, "nodes[0].password_file: cannot read password file /nonexistent/pw"));
}

TEST(Config, PasswordFileIsReadAndNeverDescribed) {
  char path[] = "/tmp/pgfailover-pw-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string secret = "very-secret-password";
  ASSERT_EQ(write(fd, (secret + "\n").data(), secret.size() + 1),
            static_cast<ssize_t>(secret.size() + 1));
  close(fd);
  auto r = parse(std::string(R"({"nodes": [{"name": "a", "host": "h1", "password_file": ")") +
                 path + R"("}, {"name": "b", "host": "h2", "password_env": "PG_SECRET"}]})");
  std::remove(path);
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->nodes[0].password.revealForUse(), secret);
  const std::string described = describeConfig(*r.config);
  EXPECT_EQ(described.find(secret), std::string::npos);
  EXPECT_EQ(described.find("s3cret-from-env"), std::string::npos);
  EXPECT_NE(described.find("<redacted>"), std::string::npos);
  EXPECT_NE(described.find("\"confirmed_down_timeout_ms\": 3000"), std::string::npos) << described;
}

TEST(Config, TlsFilesAreCheckedAndModesValidated) {
  auto r = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.crt"},
    {"name": "b", "host": "h2", "sslmode": "verify-everything", "sslcert": "/etc/hostname"}],
    "replication": {"sslmode": "maybe"}})");
  for (const char* key :
       {"nodes[0].sslrootcert: cannot read /nonexistent/ca.crt", "nodes[1].sslmode: must be one of",
        "nodes[1]: sslcert and sslkey go", "replication.sslmode: must be one of"})
    EXPECT_TRUE(hasError(r, key)) << "missing: " << key << "\n" << joinedErrors(r);
  auto ok = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "sslmode": "verify-full", "sslrootcert": "/etc/hostname"},
    {"name": "b", "host": "h2", "sslmode": "verify-ca"}],
    "replication": {"sslmode": "verify-full", "sslrootcert": "/on/the/nodes/ca.crt"}})");
  ASSERT_TRUE(ok.ok()) << joinedErrors(ok);
  EXPECT_EQ(ok.config->nodes[0].sslrootcert, "/etc/hostname");
  EXPECT_EQ(ok.config->replication.sslrootcert, "/on/the/nodes/ca.crt");
}

TEST(Config, UnverifiedTlsWithAPasswordIsWarnedAbout) {
  // pg1: password + prefer (warned); pg2: password + verify-full; pg3: no password of its own.
  auto r = parse(R"({"nodes": [
    {"name": "pg1", "host": "h1", "password_env": "PG_SECRET"},
    {"name": "pg2", "host": "h2", "password_env": "PG_SECRET", "sslmode": "verify-full"},
    {"name": "pg3", "host": "h3", "sslmode": "require"}]})");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  auto warnings = tlsWarnings(*r.config);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("nodes[0] 'pg1'"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("sslmode prefer"), std::string::npos) << warnings[0];
  EXPECT_EQ(warnings[0].find("s3cret-from-env"), std::string::npos);

  // Rejoin writes replication connections: their sslmode is checked too.
  auto rejoin = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "local": {}, "data_dir": "/a", "sslmode": "verify-full"},
    {"name": "b", "host": "h2", "local": {}, "data_dir": "/b", "sslmode": "verify-full"}],
    "replication": {"passfile": "/p"}})");
  ASSERT_TRUE(rejoin.ok()) << joinedErrors(rejoin);
  warnings = tlsWarnings(*rejoin.config);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("replication.sslmode prefer"), std::string::npos) << warnings[0];
  auto verified = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "local": {}, "data_dir": "/a", "sslmode": "verify-full"},
    {"name": "b", "host": "h2", "local": {}, "data_dir": "/b", "sslmode": "verify-full"}],
    "replication": {"passfile": "/p", "sslmode": "verify-full", "sslrootcert": "/ca.crt"}})");
  ASSERT_TRUE(verified.ok()) << joinedErrors(verified);
  EXPECT_TRUE(tlsWarnings(*verified.config).empty());
}

TEST(Config, MissingFileIsAClearError) {
  auto r = loadConfigFile("/nonexistent/pgfailover.json");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(hasError(r, "cannot read configuration file /nonexistent/pgfailover.json"));
}

TEST(Config, DescribedConfigParsesBackToTheSameValues) {
  auto r = parse(kMinimal);
  ASSERT_TRUE(r.ok());
  // The description is the effective config; minus the redacted password field it is valid input.
  auto described = nlohmann::json::parse(describeConfig(*r.config));
  for (auto& node : described["nodes"]) node.erase("password");
  described["admin"].erase("token");
  auto again = parse(described.dump());
  ASSERT_TRUE(again.ok()) << joinedErrors(again);
  EXPECT_EQ(describeConfig(*again.config), describeConfig(*r.config));
}

TEST(Config, HostExecutionIsValidated) {
  auto r = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "ssh": {"private_key_file": "/nonexistent/key",
                                        "known_hosts_file": "/nonexistent/known_hosts"}},
    {"name": "b", "host": "h2", "ssh": {}, "local": {}, "data_dir": "/d"}],
    "failover": {"preferred_node": "zz"},
    "admin": {"token_file": "/nonexistent/token"}})");
  for (const char* key : {"nodes[0].ssh.private_key_file: cannot read /nonexistent/key",
                          "nodes[0].ssh.known_hosts_file: cannot read /nonexistent/known_hosts",
                          "nodes[0].data_dir: is required when ssh or local is set",
                          "nodes[1]: ssh and local are exclusive",
                          "failover.preferred_node: names no configured node",
                          "admin.token_file: /nonexistent/token cannot be read",
                          "replication.passfile: is required"}) {
    EXPECT_TRUE(hasError(r, key)) << "missing: " << key << "\n" << joinedErrors(r);
  }
}

TEST(Config, LocalExecutionAndLifecycleKeys) {
  auto r = parse(R"({"nodes": [
    {"name": "a", "host": "h1", "local": {"run_as": "postgres"}, "data_dir": "/srv/a"},
    {"name": "b", "host": "h2", "local": {}, "data_dir": "/srv/b", "replication_port": 6000}],
    "replication": {"passfile": "/srv/pgpass", "slots": false, "slot_drop_after_ms": 60000},
    "failover": {"failback": true, "preferred_node": "b", "switchover_timeout_ms": 5000},
    "state_file": "/var/lib/pgfailover/state.json"})");
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  const auto& c = *r.config;
  EXPECT_EQ(c.nodes[0].exec.kind, HostExecKind::kLocal);
  EXPECT_EQ(c.nodes[0].exec.run_as, "postgres");
  EXPECT_EQ(c.nodes[1].replication_port, 6000);
  EXPECT_FALSE(c.replication.slots);
  EXPECT_TRUE(c.failover.failback);
  EXPECT_EQ(c.failover.preferred_node, "b");
  EXPECT_EQ(c.failover.switchover_timeout, 5000ms);
  EXPECT_EQ(c.state_file, "/var/lib/pgfailover/state.json");
}

TEST(Config, AdminTokenMustBeLongEnoughAndIsRedacted) {
  char path[] = "/tmp/pgfailover-token-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "short\n", 6), 6);
  close(fd);
  auto r =
      parse(std::string(R"({"nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h2"}],
                 "admin": {"token_file": ")") +
            path + "\"}}");
  EXPECT_TRUE(hasError(r, "admin.token_file: the token must be at least 16 characters"))
      << joinedErrors(r);
  std::ofstream(path) << "a-long-enough-admin-token-123\n";
  r = parse(std::string(R"({"nodes": [{"name": "a", "host": "h1"}, {"name": "b", "host": "h2"}],
            "admin": {"token_file": ")") +
            path + "\"}}");
  std::remove(path);
  ASSERT_TRUE(r.ok()) << joinedErrors(r);
  EXPECT_EQ(r.config->admin.token.revealForUse(), "a-long-enough-admin-token-123");
  EXPECT_EQ(describeConfig(*r.config).find("a-long-enough"), std::string::npos);
}

TEST(Config, EveryKeyIsDocumented) {
  std::ifstream file(std::string(PGFAILOVER_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(file.good());
  std::stringstream doc;
  doc << file.rdbuf();
  for (const auto& key : knownKeys())
    EXPECT_NE(doc.str().find("`" + key + "`"), std::string::npos) << key << " is not documented";
}

}  // namespace
}  // namespace pgfailover::config
