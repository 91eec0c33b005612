// Whether an operator's switchover or failover may be carried out, and on which node: one
// judgement for both places that answer a request. The HTTP router answers early, from the last
// published snapshot (which carries the decision's memory); the decision judges the request
// again at the tick that carries it out, from the same memory and that tick's observations. Each
// side words the refusal (and picks the HTTP status) itself.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/observation.h"
#include "core/state.h"

namespace pgfailover::core {

// What admission looks at of one node.
struct AdmissionNode {
  bool reachable = false;    // probed and answering
  bool in_recovery = false;  // a standby
  bool writable = false;
  // Streams from the primary within the lag limit, by the caller's measure (the decision's facts,
  // or the router's /replica check).
  bool healthy_replica = false;
  std::uint64_t system_identifier = 0;
  // The newest timeline it is known to have followed: a standby's checkpoint timeline lags, the
  // one it streams (or last streamed) on does not.
  std::uint32_t timeline = 0;
  std::optional<Lsn> position;
};

// `streamed_timeline`: the timeline the node last streamed on (Memory::streamed_timeline), 0 when
// unknown.
AdmissionNode admissionNode(const NodeObservation& node, std::uint32_t streamed_timeline,
                            bool healthy_replica);

struct AdmissionInput {
  RequestKind kind = RequestKind::kSwitchover;
  std::optional<std::size_t> target;  // an index into nodes; none: the best node
  bool force = false;
  std::vector<AdmissionNode> nodes;
  std::optional<std::size_t> primary;
  bool primary_ok = false;  // the primary commits
  // From the decision's memory: the cluster's system identifier and newest timeline as last seen
  // on its primary (0: not known yet), and a node whose promotion was issued and that has not
  // been seen since.
  std::uint64_t system_identifier = 0;
  std::uint32_t newest_timeline = 0;
  std::optional<std::size_t> unconfirmed_promotion;
  // A node whose promote request may still be pending (Memory::promotion_may_land), even in
  // sight and in recovery.
  std::optional<std::size_t> promotion_may_land;
};

enum class Refusal {
  kNoPrimaryKnown,      // a switchover, or a failover without an explicit target and force
  kSecondWritable,      // no primary known, and `about` (not the target) accepts writes
  kAlreadyPrimary,      // the target is the primary
  kPrimaryNotHealthy,   // a switchover needs a primary that commits
  kPrimaryHealthy,      // a failover of a primary that commits needs force
  kNotAHealthyReplica,  // switchover target: does not stream within the lag limit
  kNotPromotable,       // failover target: unreachable, or not in recovery
  kOtherCluster,        // the target's system identifier is not the cluster's
  kOlderTimeline,       // the target never followed the cluster's newest timeline
  kPromotionMayLand,    // `about`'s promotion was issued and may still land out of sight
  kNoTarget,            // no node qualifies as the best one
};
const char* toString(Refusal refusal);

struct Admission {
  std::optional<std::size_t> target;  // set when admitted
  std::optional<Refusal> refusal;     // set when refused
  std::optional<std::size_t> about;   // the node the refusal is about
};

Admission admit(const AdmissionInput& input);

// Why node i cannot be promoted by an operator failover (the target checks of admit()), or
// nullopt; for a refusal that lists every node.
std::optional<Refusal> promotionProblem(const AdmissionInput& input, std::size_t i);

}  // namespace pgfailover::core
