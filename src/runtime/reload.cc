#include "runtime/reload.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace pgfailover::runtime {

namespace {

using nlohmann::json;

// Dotted key -> value, from the effective configuration as check-config prints it, so every key
// (also one added later) takes part in the comparison without a list to keep in step.
void flatten(const json& value, const std::string& prefix, std::map<std::string, json>& out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items())
      flatten(item, prefix.empty() ? key : prefix + "." + key, out);
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i)
      flatten(value[i], prefix + "[" + std::to_string(i) + "]", out);
  } else {
    out[prefix] = value;
  }
}

std::map<std::string, json> flatKeys(const config::Config& config) {
  std::map<std::string, json> out;
  flatten(json::parse(config::describeConfig(config)), "", out);
  return out;
}

// Failover timeouts read only through the decision's policy.
const std::set<std::string> kPolicyTimeouts = {
    "failover.confirmed_down_timeout_ms", "failover.unresponsive_timeout_ms",
    "failover.host_lost_timeout_ms",      "failover.starting_up_grace_ms",
    "failover.replica_silence_ms",        "failover.rejoin_grace_ms",
    "failover.rejoin_retry_interval_ms",  "failover.switchover_timeout_ms",
    "failover.failback_delay_ms"};

void applyTimeout(const std::string& key, const config::FailoverConfig& from,
                  config::FailoverConfig& to) {
  if (key == "failover.confirmed_down_timeout_ms")
    to.confirmed_down_timeout = from.confirmed_down_timeout;
  if (key == "failover.unresponsive_timeout_ms")
    to.unresponsive_timeout = from.unresponsive_timeout;
  if (key == "failover.host_lost_timeout_ms") to.host_lost_timeout = from.host_lost_timeout;
  if (key == "failover.starting_up_grace_ms") to.starting_up_grace = from.starting_up_grace;
  if (key == "failover.replica_silence_ms") to.replica_silence = from.replica_silence;
  if (key == "failover.rejoin_grace_ms") to.rejoin_grace = from.rejoin_grace;
  if (key == "failover.rejoin_retry_interval_ms")
    to.rejoin_retry_interval = from.rejoin_retry_interval;
  if (key == "failover.switchover_timeout_ms") to.switchover_timeout = from.switchover_timeout;
  if (key == "failover.failback_delay_ms") to.failback_delay = from.failback_delay;
}

}  // namespace

ReloadPlan planReload(const config::Config& running, const config::Config& next) {
  ReloadPlan plan{running, {}, {}};
  const auto before = flatKeys(running);
  const auto after = flatKeys(next);
  std::set<std::string> changed;
  for (const auto& [key, value] : after) {
    auto it = before.find(key);
    if (it == before.end() || it->second != value) changed.insert(key);
  }
  for (const auto& [key, value] : before)
    if (!after.count(key)) changed.insert(key);
  // Secrets are redacted in the description: compare them themselves.
  if (running.admin.token.revealForUse() != next.admin.token.revealForUse())
    changed.insert("admin.token");
  for (std::size_t i = 0; i < std::min(running.nodes.size(), next.nodes.size()); ++i)
    if (running.nodes[i].password.revealForUse() != next.nodes[i].password.revealForUse())
      changed.insert("nodes[" + std::to_string(i) + "].password");

  // A different number of nodes is one change, the node list, not one per key.
  const bool node_count_changed = running.nodes.size() != next.nodes.size();
  std::set<std::string> refused;
  std::vector<std::string> timeouts;
  for (const auto& key : changed) {
    if (node_count_changed && key.rfind("nodes[", 0) == 0) {
      refused.insert("nodes");
    } else if (kPolicyTimeouts.count(key)) {
      timeouts.push_back(key);
    } else if (key == "log.level") {
      plan.merged.log.level = next.log.level;
      plan.applied.push_back(key);
    } else if (key == "admin.token_file" || key == "admin.token") {
      plan.merged.admin = next.admin;
      if (std::find(plan.applied.begin(), plan.applied.end(), "admin.token") == plan.applied.end())
        plan.applied.push_back("admin.token");
    } else {
      refused.insert(key);
    }
  }

  // The primary's lease (written by the probers, fixed until a restart) must still end 500 ms
  // before the shortest failover timeout; timeouts that would break that wait for a restart too.
  config::FailoverConfig failover = plan.merged.failover;
  for (const auto& key : timeouts) applyTimeout(key, next.failover, failover);
  const Millis latest = std::min({failover.confirmed_down_timeout, failover.unresponsive_timeout,
                                  failover.host_lost_timeout}) -
                        Millis{500};
  const bool lease_fits =
      running.probe.primary_lease <= Millis{0} || running.probe.primary_lease <= latest;
  if (lease_fits) {
    plan.merged.failover = failover;
    plan.applied.insert(plan.applied.end(), timeouts.begin(), timeouts.end());
  } else {
    refused.insert(timeouts.begin(), timeouts.end());
  }
  plan.refused.assign(refused.begin(), refused.end());
  std::sort(plan.applied.begin(), plan.applied.end());
  return plan;
}

}  // namespace pgfailover::runtime
