#include "core/describe.h"

#include <algorithm>
#include <cstdio>

namespace pgfailover::core {

std::string formatSeconds(Millis d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds(d));
  return buffer;
}

std::string formatBytes(std::uint64_t bytes) {
  char buffer[32];
  if (bytes >= 1024ull * 1024 * 1024)
    std::snprintf(buffer, sizeof buffer, "%.1f GB", static_cast<double>(bytes) / (1 << 30));
  else if (bytes >= 1024ull * 1024)
    std::snprintf(buffer, sizeof buffer, "%.1f MB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buffer, sizeof buffer, "%.1f kB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buffer, sizeof buffer, "%llu B", static_cast<unsigned long long>(bytes));
  return buffer;
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

std::string describeProblem(const NodeObservation& node) {
  if (!node.reachable) {
    std::string text = std::string(toString(node.failure));
    if (!node.error.empty()) text += ": " + node.error;
    if (node.host_answers_ping)
      text +=
          *node.host_answers_ping ? "; its host answers ping" : "; its host does not answer ping";
    return text;
  }
  if (node.in_recovery) return "in recovery";
  if (node.read_only && node.self_fenced)
    return "read-only: its lease guard fenced it (it heard from neither pgfailover nor a replica)";
  if (node.read_only) return "read-only";
  if (node.failure == ProbeFailure::kCannotCommit)
    return "cannot commit" + (node.error.empty() ? std::string() : ": " + node.error);
  return "not committing";
}

std::string describeReceiver(const NodeObservation& node) {
  if (!node.wal_receiver) return "no WAL receiver running";
  std::string text = "WAL receiver " + node.wal_receiver->status;
  if (node.wal_receiver->seconds_since_last_message) {
    char buffer[48];
    std::snprintf(buffer, sizeof buffer, ", last message %.1f s ago",
                  *node.wal_receiver->seconds_since_last_message);
    text += buffer;
  }
  return text;
}

std::optional<std::uint64_t> lagBehind(std::optional<Lsn> primary, std::optional<Lsn> replica) {
  if (!primary || !replica) return std::nullopt;
  return *primary > *replica ? *primary - *replica : 0;
}

TimeoutKind timeoutKindFor(const Policy& policy, const NodeObservation& primary) {
  switch (primary.failure) {
    case ProbeFailure::kRefused:
      return TimeoutKind::kConfirmedDown;
    case ProbeFailure::kStartingUp:
      return TimeoutKind::kStartingUp;
    case ProbeFailure::kTimeout:
      if (policy.icmp && policy.primary_lease > Millis{0} && !primary.reachable &&
          primary.host_answers_ping == false)
        return TimeoutKind::kHostLost;
      return TimeoutKind::kUnresponsive;
    default:
      return TimeoutKind::kUnresponsive;
  }
}

Millis timeoutFor(const Policy& policy, TimeoutKind kind) {
  switch (kind) {
    case TimeoutKind::kConfirmedDown:
      return policy.confirmed_down_timeout;
    case TimeoutKind::kStartingUp:
      return policy.starting_up_grace;
    case TimeoutKind::kUnresponsive:
      return policy.unresponsive_timeout;
    case TimeoutKind::kHostLost:
      return std::min(policy.host_lost_timeout, policy.unresponsive_timeout);
  }
  return policy.unresponsive_timeout;
}

}  // namespace pgfailover::core
