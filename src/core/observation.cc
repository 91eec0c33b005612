#include "core/observation.h"

#include <algorithm>

namespace pgfailover::core {

const char* toString(ProbeFailure failure) {
  switch (failure) {
    case ProbeFailure::kNone:
      return "none";
    case ProbeFailure::kRefused:
      return "refused";
    case ProbeFailure::kTimeout:
      return "timeout";
    case ProbeFailure::kStartingUp:
      return "starting_up";
    case ProbeFailure::kRejected:
      return "rejected";
    case ProbeFailure::kCannotCommit:
      return "cannot_commit";
  }
  return "unknown";
}

const char* toString(RequestKind kind) {
  switch (kind) {
    case RequestKind::kSwitchover:
      return "switchover";
    case RequestKind::kFailover:
      return "failover";
  }
  return "unknown";
}

std::optional<Lsn> NodeObservation::position() const {
  if (!reachable) return std::nullopt;
  if (!in_recovery) return current_lsn;
  if (receive_lsn && replay_lsn) return std::max(*receive_lsn, *replay_lsn);
  return receive_lsn ? receive_lsn : replay_lsn;
}

std::vector<std::size_t> writableNodes(const ClusterView& view) {
  std::vector<std::size_t> writable;
  for (std::size_t i = 0; i < view.nodes.size(); ++i)
    if (view.nodes[i].writable()) writable.push_back(i);
  return writable;
}

}  // namespace pgfailover::core
