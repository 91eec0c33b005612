// What the decision's unit tests share: fake observations of a primary, a replica and a node
// that is down, and a Story that drives decide() tick by tick with a fake clock, as the runtime
// would.
#pragma once

#include <string>
#include <vector>

#include "core/decide.h"

namespace pgfailover::core::story {

using namespace std::chrono_literals;

inline NodeObservation primaryNode(const std::string& name, std::uint32_t timeline = 1,
                                   Lsn lsn = 0x3000148) {
  NodeObservation n;
  n.name = name;
  n.probed = true;
  n.reachable = true;
  n.in_recovery = false;
  n.system_identifier = 7000;
  n.timeline = timeline;
  n.current_lsn = lsn;
  n.heartbeat_written = true;
  n.heartbeat_unix_seconds = 1000.0;
  return n;
}

inline NodeObservation replicaNode(const std::string& name, bool streaming = true,
                                   double last_message_age = 0.2, Lsn lsn = 0x3000148) {
  NodeObservation n;
  n.name = name;
  n.probed = true;
  n.reachable = true;
  n.in_recovery = true;
  n.system_identifier = 7000;
  n.timeline = 1;
  n.receive_lsn = lsn;
  n.replay_lsn = lsn;
  n.wal_receiver_timeout = 5000ms;
  n.heartbeat_unix_seconds = 999.5;
  if (streaming)
    n.wal_receiver = WalReceiver{"streaming", "127.0.0.1", 6432, 1, last_message_age, {}};
  return n;
}

inline NodeObservation downNode(const std::string& name,
                                ProbeFailure failure = ProbeFailure::kRefused) {
  NodeObservation n;
  n.name = name;
  n.probed = true;
  n.reachable = false;
  n.failure = failure;
  n.error = std::string("node '") + name + "': " + toString(failure);
  return n;
}

class Story {
 public:
  explicit Story(Policy policy = Policy{}) : policy_(policy) {}

  Decision tick(std::vector<NodeObservation> nodes, Millis advance = 1000ms,
                std::vector<NodeOperation> operations = {}) {
    ClusterView view{std::move(nodes)};
    view.operations = std::move(operations);
    return tickView(view, advance);
  }
  Decision tickView(const ClusterView& view, Millis advance = 1000ms) {
    now_.steady += advance;
    now_.wall += advance;
    Decision d = decide(memory_, view, now_, policy_);
    memory_ = d.next;
    last_view_ = view;
    return d;
  }

  const Memory& memory() const { return memory_; }
  Memory& mutableMemory() { return memory_; }
  Now now() const { return now_; }
  const Policy& policy() const { return policy_; }

 private:
  Policy policy_;
  Memory memory_;
  Now now_{SteadyTime{} + 1h, WallTime{} + std::chrono::hours(24 * 365 * 50)};
  ClusterView last_view_;
};

}  // namespace pgfailover::core::story
