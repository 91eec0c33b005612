#include "runtime/action_executor.h"

#include <optional>
#include <string>

namespace pgfailover::runtime {

Status ClusterActionExecutor::execute(const core::Action& action) {
  if (action.node >= probers_.size())
    return {StatusCode::kInvalidArgument, "action names node index " + std::to_string(action.node)};
  auto& prober = *probers_[action.node];
  switch (action.kind) {
    case core::ActionKind::kPromote: {
      // Nothing here waits on a host: the old primary's host is often the one that is gone.
      // Fence at rest runs on its host through the node-operation worker (bounded there), the
      // fencing hook and pg_promote on the promotion worker; the decision confirms the promotion
      // by observation.
      const bool switchover = action.argument == "switchover";
      const bool replaces_old =
          !switchover && action.peer != action.node && action.peer < config_.nodes.size();
      if (replaces_old) operations_.startFenceAtRest(action.peer);
      return promotions_.start(
          action.node, replaces_old ? std::optional<std::size_t>(action.peer) : std::nullopt);
    }
    case core::ActionKind::kFence:
      return prober.fenceReadOnly();
    case core::ActionKind::kUnfence:
      return prober.unfence();
    case core::ActionKind::kUseSlot:
      return prober.useReplicationSlot(action.argument);
    case core::ActionKind::kCreateSlot:
      return prober.createReplicationSlot(action.argument);
    case core::ActionKind::kDropSlot:
      return prober.dropReplicationSlot(action.argument);
    case core::ActionKind::kSetSynchronousStandbys:
      return prober.setSynchronousStandbyNames(action.argument);
    case core::ActionKind::kRejoin:
      if (!operations_.available(action.node))
        return {StatusCode::kFailedPrecondition, "no ssh or local executor for this node"};
      operations_.startRejoin(action.node, action.peer);
      return Status::ok();
  }
  return {StatusCode::kInternal, "unknown action"};
}

}  // namespace pgfailover::runtime
