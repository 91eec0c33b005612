// The "etcd" configuration section end to end: parsed by the daemon's config parser, turned into
// client options, and used against a real etcd that serves https only and requires a client
// certificate; a client trusting another CA, or without a client certificate, is refused.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "coord/etcd_client.h"
#include "coord/from_config.h"
#include "coord/leadership.h"
#include "support/etcd.h"

namespace pgfailover::coord {
namespace {

using pgfailover::testing::EtcdCluster;
using Clock = std::chrono::steady_clock;

config::EtcdConfig etcdSection(const nlohmann::json& etcd) {
  nlohmann::json root = {
      {"cluster_name", "tls"},
      {"nodes",
       {{{"name", "pg1"}, {"host", "127.0.0.1"}}, {{"name", "pg2"}, {"host", "127.0.0.2"}}}},
      {"etcd", etcd}};
  config::LoadResult r =
      config::parseConfig(root.dump(), [](const std::string&) { return std::nullopt; });
  std::string errors;
  for (const auto& e : r.errors) errors += e + "\n";
  EXPECT_TRUE(r.ok()) << errors;
  return r.ok() ? r.config->etcd : config::EtcdConfig{};
}

TEST(EtcdTls, ConfiguredClientCertificateAndCaReachHttpsEtcd) {
  EtcdCluster etcd(1, {}, /*tls=*/true);
  ASSERT_TRUE(etcd.ok());
  config::EtcdConfig section = etcdSection({{"name", "tls-a"},
                                            {"endpoints", {etcd.clientUrl(0)}},
                                            {"lease_ttl_ms", 3000},
                                            {"tls",
                                             {{"ca_file", etcd.caFile()},
                                              {"cert_file", etcd.clientCertFile()},
                                              {"key_file", etcd.clientKeyFile()}}}});
  ASSERT_TRUE(section.enabled);
  EXPECT_EQ(section.prefix, "/pgfailover/tls");

  EtcdClient client(clientOptionsFrom(section));
  Leadership leadership(client, leadershipOptionsFrom(section));
  Status campaigned = leadership.campaign(Clock::now());
  ASSERT_TRUE(campaigned.isOk()) << campaigned.message();
  EXPECT_TRUE(leadership.acting(Clock::now()));
  ASSERT_TRUE(
      leadership.putDocument(Clock::now(), kPromotionIntentDocument, {{"promote", "pg2"}}).isOk());
  auto leader = leadership.readLeader();
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(leader.value.name, "tls-a");

  // etcd's certificate is verified: a client trusting another CA does not talk to it.
  EtcdClientOptions wrong_ca = clientOptionsFrom(section);
  wrong_ca.ca_file = etcd.otherCaFile();
  EtcdClient untrusting(wrong_ca);
  auto refused = untrusting.get("/pgfailover/tls/leader");
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status.message().find("SSL"), std::string::npos) << refused.status.message();

  // etcd requires a client certificate.
  EtcdClientOptions no_cert = clientOptionsFrom(section);
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  EtcdClient anonymous(no_cert);
  EXPECT_FALSE(anonymous.get("/pgfailover/tls/leader").ok());
}

}  // namespace
}  // namespace pgfailover::coord
