// The failover defaults are defined once (common/failover_settings.h): the configuration and the
// decision's policy start from them, and the hand-written docs/configuration.md states them.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "common/failover_settings.h"
#include "config/config.h"
#include "core/state.h"

namespace pgfailover {
namespace {

using namespace failover_defaults;

TEST(FailoverDefaults, ConfigurationAndPolicyStartFromTheSameValues) {
  const config::FailoverConfig config;
  const core::Policy policy;
  EXPECT_EQ(config.confirmed_down_timeout, policy.confirmed_down_timeout);
  EXPECT_EQ(config.unresponsive_timeout, policy.unresponsive_timeout);
  EXPECT_EQ(config.host_lost_timeout, policy.host_lost_timeout);
  EXPECT_EQ(config.starting_up_grace, policy.starting_up_grace);
  EXPECT_EQ(config.replica_silence, policy.replica_silence);
  EXPECT_EQ(config.promote_timeout, policy.promote_timeout);
  EXPECT_EQ(config.switchover_timeout, policy.switchover_timeout);
  EXPECT_EQ(config.failback_delay, policy.failback_delay);
  EXPECT_EQ(policy.confirmed_down_timeout, kConfirmedDownTimeout);
}

// docs/configuration.md gives each timeout's default in its table row: "| `key` | ms | `N` |".
TEST(FailoverDefaults, TheConfigurationDocumentStatesThem) {
  std::ifstream file(std::string(PGFAILOVER_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(file.good());
  std::stringstream content;
  content << file.rdbuf();
  const std::string doc = content.str();
  const std::pair<const char*, Millis> keys[] = {
      {"failover.confirmed_down_timeout_ms", kConfirmedDownTimeout},
      {"failover.unresponsive_timeout_ms", kUnresponsiveTimeout},
      {"failover.host_lost_timeout_ms", kHostLostTimeout},
      {"failover.starting_up_grace_ms", kStartingUpGrace},
      {"failover.replica_silence_ms", kReplicaSilence},
      {"failover.promote_timeout_ms", kPromoteTimeout},
      {"failover.switchover_timeout_ms", kSwitchoverTimeout},
  };
  for (const auto& [key, value] : keys) {
    const std::string row =
        std::string("| `") + key + "` | ms | `" + std::to_string(value.count()) + "` |";
    EXPECT_NE(doc.find(row), std::string::npos) << "docs/configuration.md: expected " << row;
  }
}

}  // namespace
}  // namespace pgfailover
