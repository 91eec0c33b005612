// /status's TLS fields: each node's sslmode and whether it verifies the server, and the
// configuration's warnings (config::tlsWarnings), as the tick loop publishes them.
#include <gtest/gtest.h>

#include "config/config.h"
#include "core/snapshot.h"
#include "http/status_json.h"

namespace pgfailover::http {
namespace {

TEST(StatusTls, NodesShowTheirSslmodeAndTheWarningsAreListed) {
  auto loaded = config::parseConfig(
      R"({"nodes": [{"name": "pg1", "host": "10.0.0.1", "password_env": "PW"},
                    {"name": "pg2", "host": "10.0.0.2", "password_env": "PW",
                     "sslmode": "verify-full", "sslrootcert": "/etc/hostname"}]})",
      [](const std::string&) { return std::optional<std::string>("secret-password-77"); });
  ASSERT_TRUE(loaded.ok());
  core::Snapshot snapshot;
  for (const auto& node : loaded.config->nodes) {
    core::NodeSnapshot shown;
    shown.name = node.name;
    shown.sslmode = node.sslmode;
    shown.verifies_server = config::verifiesServer(node.sslmode);
    snapshot.nodes.push_back(shown);
  }
  snapshot.warnings = config::tlsWarnings(*loaded.config);
  const Json json = statusJson(snapshot);
  EXPECT_EQ(json["nodes"][0]["tls"]["sslmode"], "prefer");
  EXPECT_EQ(json["nodes"][0]["tls"]["verifies_server"], false);
  EXPECT_EQ(json["nodes"][1]["tls"]["sslmode"], "verify-full");
  EXPECT_EQ(json["nodes"][1]["tls"]["verifies_server"], true);
  ASSERT_EQ(json["warnings"].size(), 1u);
  EXPECT_NE(json["warnings"][0].get<std::string>().find("'pg1'"), std::string::npos);
  EXPECT_EQ(dumpJson(json).find("secret-password-77"), std::string::npos);

  core::Snapshot quiet;
  EXPECT_TRUE(statusJson(quiet)["warnings"].is_array());
  EXPECT_TRUE(statusJson(quiet)["warnings"].empty());
}

}  // namespace
}  // namespace pgfailover::http
