// The property test's only window on the decision's output types (actions, events, rules,
// requests): when they change, this header is the one place the test adapts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/decide.h"

namespace pgfailover::core::view {

// The actions whose effects the simulation plays; the rest (slots, synchronous standbys) change
// nothing it models.
enum class Act { kPromote, kFence, kUnfence, kRejoin, kOther };

struct ActionView {
  Act act = Act::kOther;
  std::size_t node = 0;
  // kRejoin: the node to follow.
  std::size_t peer = 0;
  std::string detail;
};

inline ActionView viewOf(const Action& action) {
  ActionView v;
  v.node = action.node;
  v.detail = action.detail;
  if (const auto* rejoin = action.as<Rejoin>()) v.peer = rejoin->follow;
  switch (action.kind()) {
    case ActionKind::kPromote:
      v.act = Act::kPromote;
      break;
    case ActionKind::kFence:
      v.act = Act::kFence;
      break;
    case ActionKind::kUnfence:
      v.act = Act::kUnfence;
      break;
    case ActionKind::kRejoin:
      v.act = Act::kRejoin;
      break;
    default:
      v.act = Act::kOther;
      break;
  }
  return v;
}

inline std::vector<ActionView> actionsOf(const Decision& d) {
  std::vector<ActionView> out;
  for (const auto& a : d.actions) out.push_back(viewOf(a));
  return out;
}

inline const char* actName(Act act) {
  switch (act) {
    case Act::kPromote:
      return "promote";
    case Act::kFence:
      return "fence";
    case Act::kUnfence:
      return "unfence";
    case Act::kRejoin:
      return "rejoin";
    case Act::kOther:
      return "other";
  }
  return "?";
}

// The id of the row that fired.
inline std::string ruleOf(const Decision& d) {
  return d.rule ? toString(*d.rule) : "";
}

// Why a promotion was issued: the operator skips the timeout and the replica's confirmation,
// a switchover promotes a target that streams from the fenced primary by design; only
// pgfailover's own failover must wait for the replica and the lease.
enum class PromoteOrigin { kOwnFailover, kOperator, kSwitchover };

inline PromoteOrigin originOf(const Decision& d) {
  const std::string rule = ruleOf(d);
  if (rule == "operator-failover") return PromoteOrigin::kOperator;
  if (rule == "switchover-promote") return PromoteOrigin::kSwitchover;
  return PromoteOrigin::kOwnFailover;
}

inline std::string stateName(ClusterState state) {
  return toString(state);
}

// One line per event, for the printed trace of a failing sequence.
inline std::vector<std::string> eventLines(const Decision& d) {
  std::vector<std::string> out;
  for (const auto& e : d.events)
    out.push_back(std::string(toString(e.kind)) + " " + e.node + " " + toString(e.result));
  return out;
}

enum class Ask { kSwitchover, kFailover };

inline AdminRequest makeRequest(Ask ask, std::optional<std::size_t> target, bool force,
                                std::uint64_t id) {
  AdminRequest r;
  r.kind = ask == Ask::kSwitchover ? RequestKind::kSwitchover : RequestKind::kFailover;
  r.target = target;
  r.force = force;
  r.id = id;
  return r;
}

}  // namespace pgfailover::core::view
