#include "core/admission.h"

#include <algorithm>

namespace pgfailover::core {

AdmissionNode admissionNode(const NodeObservation& node, std::uint32_t streamed_timeline,
                            bool healthy_replica) {
  AdmissionNode a;
  a.reachable = node.probed && node.reachable;
  a.in_recovery = node.in_recovery;
  a.writable = node.writable();
  a.healthy_replica = healthy_replica;
  a.system_identifier = node.system_identifier;
  a.timeline = std::max(node.timeline, streamed_timeline);
  if (node.streaming()) a.timeline = std::max(a.timeline, node.wal_receiver->received_timeline);
  a.position = node.position();
  return a;
}

const char* toString(Refusal refusal) {
  switch (refusal) {
    case Refusal::kNoPrimaryKnown:
      return "no_primary_known";
    case Refusal::kSecondWritable:
      return "second_writable";
    case Refusal::kAlreadyPrimary:
      return "already_primary";
    case Refusal::kPrimaryNotHealthy:
      return "primary_not_healthy";
    case Refusal::kPrimaryHealthy:
      return "primary_healthy";
    case Refusal::kNotAHealthyReplica:
      return "not_a_healthy_replica";
    case Refusal::kNotPromotable:
      return "not_promotable";
    case Refusal::kOtherCluster:
      return "other_cluster";
    case Refusal::kOlderTimeline:
      return "older_timeline";
    case Refusal::kPromotionMayLand:
      return "promotion_may_land";
    case Refusal::kNoTarget:
      return "no_target";
  }
  return "?";
}

namespace {

Admission refuse(Refusal refusal, std::optional<std::size_t> about = std::nullopt) {
  return Admission{std::nullopt, refusal, about};
}

// The furthest ahead of the nodes `fits` accepts.
template <typename Fits>
std::optional<std::size_t> best(const AdmissionInput& input, Fits fits) {
  std::optional<std::size_t> found;
  for (std::size_t i = 0; i < input.nodes.size(); ++i) {
    if (i == input.primary || !fits(i)) continue;
    if (!found || input.nodes[i].position.value_or(0) > input.nodes[*found].position.value_or(0))
      found = i;
  }
  return found;
}

// A promotion issued earlier, to a node not seen since, may still land: promoting any other node
// too makes two primaries, and both number their timeline after the same parent's, so nothing
// can tell their histories apart afterwards. No force overrides that: unlike a healthy primary,
// a node out of sight cannot be fenced first.
std::optional<std::size_t> promotionMayLand(const AdmissionInput& input, std::size_t target) {
  const auto& pending = input.promotion_may_land;
  if (pending && *pending != target && *pending < input.nodes.size()) return pending;
  const auto& earlier = input.unconfirmed_promotion;
  if (!earlier || *earlier == target || *earlier >= input.nodes.size()) return std::nullopt;
  if (input.nodes[*earlier].reachable) return std::nullopt;  // in sight: whatever happened shows
  return earlier;
}

}  // namespace

std::optional<Refusal> promotionProblem(const AdmissionInput& input, std::size_t i) {
  const auto& node = input.nodes.at(i);
  if (!node.reachable || !node.in_recovery) return Refusal::kNotPromotable;
  if (input.system_identifier != 0 && node.system_identifier != 0 &&
      node.system_identifier != input.system_identifier)
    return Refusal::kOtherCluster;
  // Promoted, it would start the timeline after its own, the number the cluster's newest
  // timeline (or a later one) already carries: two histories under one timeline.
  if (input.newest_timeline != 0 && node.timeline != 0 && node.timeline < input.newest_timeline)
    return Refusal::kOlderTimeline;
  return std::nullopt;
}

Admission admit(const AdmissionInput& input) {
  const bool switchover = input.kind == RequestKind::kSwitchover;
  if (input.target && *input.target >= input.nodes.size()) return refuse(Refusal::kNoTarget);
  if (!input.primary) {
    // Nobody to move away from (pgfailover started after the primary died, or every node came
    // back without a history): only the operator can say which node holds the data to keep,
    // and no other node may take writes.
    if (switchover || !input.force || !input.target) return refuse(Refusal::kNoPrimaryKnown);
    for (std::size_t i = 0; i < input.nodes.size(); ++i)
      if (i != *input.target && input.nodes[i].writable) return refuse(Refusal::kSecondWritable, i);
  }
  if (input.target && input.target == input.primary)
    return refuse(Refusal::kAlreadyPrimary, input.target);

  std::optional<std::size_t> target = input.target;
  if (switchover) {
    if (!input.primary_ok) return refuse(Refusal::kPrimaryNotHealthy, input.primary);
    if (target && !input.nodes[*target].healthy_replica)
      return refuse(Refusal::kNotAHealthyReplica, target);
    if (!target)
      target = best(input, [&](std::size_t i) { return input.nodes[i].healthy_replica; });
  } else {
    if (input.primary_ok && !input.force) return refuse(Refusal::kPrimaryHealthy, input.primary);
    if (target) {
      if (auto problem = promotionProblem(input, *target)) return refuse(*problem, target);
    } else {
      target = best(input, [&](std::size_t i) { return !promotionProblem(input, i); });
    }
  }
  if (!target) return refuse(Refusal::kNoTarget);
  if (auto earlier = promotionMayLand(input, *target))
    return refuse(Refusal::kPromotionMayLand, earlier);
  return Admission{target, std::nullopt, std::nullopt};
}

}  // namespace pgfailover::core
