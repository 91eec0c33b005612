// Sentences and figures shared by the decision's phases (facts, rows, snapshot): how a node's
// problem, a duration or a byte count reads in a reason, and which failover timeout applies.
// Internal to src/core.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/observation.h"
#include "core/state.h"

namespace pgfailover::core {

std::string formatSeconds(Millis d);

std::string formatBytes(std::uint64_t bytes);

std::string quoted(const std::string& name);

// Why a node is not usable, in a few words, for reasons and vetoes.
std::string describeProblem(const NodeObservation& node);

std::string describeReceiver(const NodeObservation& node);

std::optional<std::uint64_t> lagBehind(std::optional<Lsn> primary, std::optional<Lsn> replica);

// Silence alone proves nothing: the primary may be hung or only cut off from pgfailover. Its
// host not answering ICMP either says the host (or its whole network) is gone, and with the
// lease on, the old primary's guard has fenced it by the time a promotion may happen if it
// still runs anywhere (holdForTheLease). The replica must have lost it too, as for every kind
// (chooseCandidate). A primary that is only stalled while its host answers keeps the long wait.
TimeoutKind timeoutKindFor(const Policy& policy, const NodeObservation& primary);

Millis timeoutFor(const Policy& policy, TimeoutKind kind);

}  // namespace pgfailover::core
