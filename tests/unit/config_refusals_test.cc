// Configuration input pgfailover refuses, each with a message naming the key: node names that
// collide ignoring case or as replication slots, names of dots, control characters in keys and
// values (C0, DEL, C1, NUL), numbers out of range (reported as written), http.port 0, start
// commands with a placeholder inside quotes, and secret files (admin token, password file, ssh
// key) that others than their owner may read. The admin token file is read by the same rules as
// the CLI's (common/secret_file.h).
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>

#include "common/secret_file.h"
#include "config/config.h"
#include "support/config_errors.h"

namespace pgfailover {
namespace {

using pgfailover::testing::joinedErrors;
using pgfailover::testing::noEnv;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

config::LoadResult parse(const std::string& text) {
  return config::parseConfig(text, noEnv);
}

config::LoadResult withNodes(const std::string& first, const std::string& second,
                             const std::string& rest = "") {
  return parse(R"({"nodes": [{"name": ")" + first + R"(", "host": "10.0.0.1"}, {"name": ")" +
               second + R"(", "host": "10.0.0.2"}])" + rest + "}");
}

class SecretFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pgfailover-secrets-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  config::LoadResult withToken(const std::string& path) {
    return parse(
        R"({"nodes": [{"name": "pg1", "host": "h1"}, {"name": "pg2", "host": "h2"}], "admin": {"token_file": ")" +
        path + R"("}})");
  }

  std::string dir_;
};

TEST(ConfigRefusals, NodeNamesEqualIgnoringCaseAreRefused) {
  auto r = withNodes("pg1", "PG1");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(joinedErrors(r).find("nodes[1].name: 'PG1' and 'pg1' differ only in case"),
            std::string::npos)
      << joinedErrors(r);
}

TEST(ConfigRefusals, NodeNamesSharingASlotNameAreRefused) {
  for (const auto& [a, b] : {std::pair{"a.b", "a_b"}, {"a-b", "a.b"}, {"db-1", "DB_1"}}) {
    auto r = withNodes(a, b);
    EXPECT_FALSE(r.ok()) << a << " " << b;
    EXPECT_NE(joinedErrors(r).find("would share the replication slot pgfailover_"),
              std::string::npos)
        << joinedErrors(r);
  }
  EXPECT_EQ(config::replicationSlotName("A.b-C"), "pgfailover_a_b_c");
  auto fine = withNodes("pg-1", "pg-2");
  EXPECT_TRUE(fine.ok()) << joinedErrors(fine);
}

TEST(ConfigRefusals, NamesOfDotsAreRefused) {
  for (const char* name : {".", "..", "..."}) {
    auto r = withNodes(name, "pg2");
    EXPECT_FALSE(r.ok()) << name;
    EXPECT_NE(joinedErrors(r).find("nodes[0].name: must not be only dots"), std::string::npos)
        << joinedErrors(r);
  }
  EXPECT_TRUE(withNodes("pg.1", "pg2").ok());
}

TEST(ConfigRefusals, ControlCharactersInKeysAndValuesAreRefused) {
  auto nul = withNodes("pg1", "pg2", R"(, "replication": {"user": "repl\u0000x"})");
  EXPECT_NE(joinedErrors(nul).find("replication.user: holds a control character"),
            std::string::npos)
      << joinedErrors(nul);
  auto c1 = withNodes("pg1", "pg2", R"(, "cluster_name": "a\u0085b")");
  EXPECT_NE(joinedErrors(c1).find("cluster_name: holds a control character"), std::string::npos)
      << joinedErrors(c1);
  auto key = withNodes("pg1", "pg2", R"(, "probe": {"interval_ms\u001b[2J": 5})");
  EXPECT_FALSE(key.ok());
  EXPECT_NE(joinedErrors(key).find("probe.\"interval_ms\\u001b[2J\" (the key): holds a control"),
            std::string::npos)
      << joinedErrors(key);
  for (const auto& e : key.errors)
    for (unsigned char c : e) EXPECT_GE(c, 0x20) << "a raw control character in: " << e;
  // Printable non-ASCII is fine.
  EXPECT_TRUE(withNodes("pg1", "pg2", R"(, "cluster_name": "café ø")").ok());
}

TEST(ConfigRefusals, OutOfRangeNumbersAreReportedAsWritten) {
  auto port = withNodes("pg1", "pg2", R"(, "http": {"port": 18446744073709551615})");
  EXPECT_NE(
      joinedErrors(port).find("http.port: must be between 1 and 65535, got 18446744073709551615"),
      std::string::npos)
      << joinedErrors(port);
  auto interval = withNodes("pg1", "pg2", R"(, "probe": {"interval_ms": 18446744073709551615})");
  EXPECT_NE(joinedErrors(interval).find("probe.interval_ms: must be at most 1 day, got "
                                        "18446744073709551615"),
            std::string::npos)
      << joinedErrors(interval);
  auto negative = withNodes("pg1", "pg2", R"(, "failover": {"promote_attempts": -3})");
  EXPECT_NE(
      joinedErrors(negative).find("failover.promote_attempts: must be between 1 and 100, got -3"),
      std::string::npos)
      << joinedErrors(negative);
  auto lag = withNodes("pg1", "pg2", R"(, "failover": {"max_lag_bytes": -1})");
  EXPECT_NE(joinedErrors(lag).find("failover.max_lag_bytes: must not be negative, got -1"),
            std::string::npos)
      << joinedErrors(lag);
  auto lease = withNodes("pg1", "pg2", R"(, "probe": {"primary_lease_ms": 18446744073709551615})");
  EXPECT_NE(joinedErrors(lease).find("got 18446744073709551615"), std::string::npos)
      << joinedErrors(lease);
}

TEST(ConfigRefusals, HttpPortZeroIsRefused) {
  auto r = withNodes("pg1", "pg2", R"(, "http": {"port": 0})");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(joinedErrors(r).find("http.port: must be between 1 and 65535, got 0"),
            std::string::npos)
      << joinedErrors(r);
}

TEST(ConfigRefusals, AStartCommandPlaceholderInsideQuotesIsRefused) {
  auto node = [](const std::string& command) {
    nlohmann::json config = {{"nodes",
                              {{{"name", "pg1"}, {"host", "h1"}, {"start_command", command}},
                               {{"name", "pg2"}, {"host", "h2"}}}}};
    return parse(config.dump());
  };
  for (const char* quoted : {R"(pg_ctl start -D "{data_dir}")", R"(sh -c 'pg_ctl -D {data_dir}')",
                             R"(echo "node {node} at x")", R"("{bin_dir}/pg_ctl" start)"}) {
    auto r = node(quoted);
    EXPECT_FALSE(r.ok()) << quoted;
    EXPECT_NE(joinedErrors(r).find("nodes[0].start_command: {"), std::string::npos)
        << joinedErrors(r);
    EXPECT_NE(joinedErrors(r).find("quotes"), std::string::npos) << joinedErrors(r);
  }
  for (const char* bare : {"{bin_dir}/pg_ctl start -D {data_dir} -w -l {data_dir}/log",
                           R"(systemctl start "postgresql@15-main" # {node})", R"(echo \"{node}\")",
                           R"(echo "it's" {node})"}) {
    auto r = node(bare);
    EXPECT_TRUE(r.ok()) << bare << ": " << joinedErrors(r);
  }
  EXPECT_FALSE(node(R"(pg_ctl start "-D)").ok());
}

TEST_F(SecretFiles, ATokenFileOthersCanReadIsRefusedWithTheFix) {
  const std::string path = write("admin.token", "a-long-enough-admin-token\n", 0644);
  auto r = withToken(path);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(joinedErrors(r).find("admin.token_file: " + path +
                                 " is open to all users (mode 0644): "
                                 "run chmod 600 " +
                                 path),
            std::string::npos)
      << joinedErrors(r);
  ASSERT_EQ(::chmod(path.c_str(), 0660), 0);
  EXPECT_NE(joinedErrors(withToken(path)).find("is open to its group (mode 0660)"),
            std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto fine = withToken(path);
  ASSERT_TRUE(fine.ok()) << joinedErrors(fine);
  EXPECT_EQ(joinedErrors(r).find("a-long-enough"), std::string::npos);
}

// As Kubernetes mounts a Secret for a pod with an fsGroup: root:group, 0440.
TEST_F(SecretFiles, AGroupReadableFileIsAcceptedOnlyWhenRootOwnsIt) {
  const std::string path = write("admin.token", "a-long-enough-admin-token\n", 0640);
  if (::geteuid() == 0) {
    EXPECT_TRUE(withToken(path).ok()) << joinedErrors(withToken(path));
    passwd* nobody = getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    ASSERT_EQ(::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  }
  EXPECT_NE(joinedErrors(withToken(path)).find("is open to its group (mode 0640)"),
            std::string::npos)
      << joinedErrors(withToken(path));
}

TEST_F(SecretFiles, APasswordFileOrSshKeyOthersCanReadIsRefused) {
  const std::string password = write("pg.password", "secret-password\n", 0604);
  const std::string key = write("id_ed25519", "not really a key\n", 0644);
  const std::string known = write("known_hosts", "", 0644);  // public: any mode
  nlohmann::json config = {{"nodes",
                            {{{"name", "pg1"}, {"host", "h1"}, {"password_file", password}},
                             {{"name", "pg2"},
                              {"host", "h2"},
                              {"data_dir", "/srv/pg2"},
                              {"ssh", {{"private_key_file", key}, {"known_hosts_file", known}}}}}},
                           {"replication", {{"passfile", "/srv/pgpass"}}}};
  auto r = parse(config.dump());
  EXPECT_NE(joinedErrors(r).find("nodes[0].password_file: password file " + password +
                                 " is open to all users (mode 0604): run chmod 600"),
            std::string::npos)
      << joinedErrors(r);
  EXPECT_NE(joinedErrors(r).find("nodes[1].ssh.private_key_file: " + key + " is open to all users"),
            std::string::npos)
      << joinedErrors(r);
  EXPECT_EQ(joinedErrors(r).find("known_hosts"), std::string::npos) << joinedErrors(r);
  EXPECT_EQ(joinedErrors(r).find("secret-password"), std::string::npos);
  ASSERT_EQ(::chmod(password.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(key.c_str(), 0400), 0);
  auto fine = parse(config.dump());
  EXPECT_TRUE(fine.ok()) << joinedErrors(fine);
}

TEST_F(SecretFiles, ATlsClientKeyOthersCanReadIsRefused) {
  const std::string ca = write("ca.crt", "not really a certificate\n", 0644);  // public
  const std::string cert = write("client.crt", "not really a certificate\n", 0644);
  const std::string key = write("client.key", "not really a key\n", 0604);
  nlohmann::json config = {{"nodes",
                            {{{"name", "pg1"},
                              {"host", "h1"},
                              {"sslmode", "verify-full"},
                              {"sslrootcert", ca},
                              {"sslcert", cert},
                              {"sslkey", key}},
                             {{"name", "pg2"}, {"host", "h2"}}}}};
  auto r = parse(config.dump());
  EXPECT_NE(joinedErrors(r).find("nodes[0].sslkey: " + key + " is open to all users (mode 0604)"),
            std::string::npos)
      << joinedErrors(r);
  EXPECT_EQ(joinedErrors(r).find("ca.crt"), std::string::npos) << joinedErrors(r);
  EXPECT_EQ(joinedErrors(r).find("client.crt"), std::string::npos) << joinedErrors(r);
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  auto fine = parse(config.dump());
  EXPECT_TRUE(fine.ok()) << joinedErrors(fine);
}

TEST_F(SecretFiles, APasswordFileThatIsAFifoIsRefusedWithoutHanging) {
  const std::string fifo = dir_ + "/pg.password";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  nlohmann::json config = {{"nodes",
                            {{{"name", "pg1"}, {"host", "h1"}, {"password_file", fifo}},
                             {{"name", "pg2"}, {"host", "h2"}}}},
                           {"admin", {{"token_file", fifo}}}};
  auto loading = std::async(std::launch::async, [&] { return parse(config.dump()); });
  ASSERT_EQ(loading.wait_for(5s), std::future_status::ready) << "reading a FIFO hangs";
  auto r = loading.get();
  EXPECT_NE(joinedErrors(r).find("nodes[0].password_file: password file " + fifo +
                                 " is not a regular file"),
            std::string::npos)
      << joinedErrors(r);
  EXPECT_NE(joinedErrors(r).find("admin.token_file: " + fifo + " is not a regular file"),
            std::string::npos)
      << joinedErrors(r);
}

// The daemon and the CLI read one token from the same file: surrounding whitespace of any kind
// (a leading space, a trailing tab, CRLF) is not part of it.
TEST_F(SecretFiles, TheDaemonReadsTheTokenTheCliSends) {
  const std::string token = "a-long-enough-admin-token";
  for (const std::string& content :
       {" " + token + "\n", token + "\t\n", token + "\r\n", "\n\t " + token + " \r\n\n", token}) {
    const std::string path = write("admin.token", content, 0600);
    auto r = withToken(path);
    ASSERT_TRUE(r.ok()) << joinedErrors(r);
    EXPECT_EQ(r.config->admin.token.revealForUse(), token);
    std::string problem;
    EXPECT_EQ(readTokenFile(path, problem).value_or("<refused>"), token) << problem;
  }
}

TEST_F(SecretFiles, AnEmptyOrMultiLineTokenIsRefusedByBoth) {
  for (const std::string& content : {std::string(), std::string(" \r\n\t\n"),
                                     std::string("first-line-of-token\nsecond-line-of-token\n"),
                                     std::string("two words of a token\n")}) {
    const std::string path = write("admin.token", content, 0600);
    auto r = withToken(path);
    EXPECT_FALSE(r.ok()) << "[" << content << "]";
    std::string problem;
    EXPECT_FALSE(readTokenFile(path, problem).has_value());
    EXPECT_NE(joinedErrors(r).find("admin.token_file: " + problem), std::string::npos)
        << joinedErrors(r) << " vs " << problem;
    EXPECT_EQ(problem.find("token\n"), std::string::npos);
    EXPECT_EQ(problem.find("second-line"), std::string::npos) << problem;
  }
}

TEST_F(SecretFiles, AHugeTokenFileIsRefused) {
  const std::string path = write("admin.token", std::string(1 << 20, 'x'), 0600);
  std::string problem;
  EXPECT_FALSE(readTokenFile(path, problem).has_value());
  EXPECT_NE(problem.find("is larger than 4096 bytes"), std::string::npos) << problem;
}

TEST(TokenText, SurroundingWhitespaceGoesInnerWhitespaceIsRefused) {
  std::string problem;
  EXPECT_EQ(parseToken(" \ttok-en\r\n", problem).value_or(""), "tok-en");
  EXPECT_EQ(parseToken("tok-en", problem).value_or(""), "tok-en");
  EXPECT_FALSE(parseToken("", problem));
  EXPECT_EQ(problem, "is empty");
  EXPECT_FALSE(parseToken("\r\n", problem));
  EXPECT_EQ(problem, "is empty");
  EXPECT_FALSE(parseToken("tok\ten", problem));
  EXPECT_NE(problem.find("holds whitespace or control characters"), std::string::npos);
  EXPECT_FALSE(parseToken("line-one\r\nline-two", problem));
  EXPECT_FALSE(parseToken(std::string("tok\0en", 6), problem));
  EXPECT_FALSE(parseToken("tok\x7f", problem));
}

}  // namespace
}  // namespace pgfailover
