#include "runtime/action_executor.h"

#include <optional>
#include <string>
#include <type_traits>
#include <variant>

namespace pgfailover::runtime {

Status ClusterActionExecutor::execute(const core::Action& action) {
  if (action.node >= probers_.size())
    return {StatusCode::kInvalidArgument, "action names node index " + std::to_string(action.node)};
  auto& prober = *probers_[action.node];
  return std::visit(
      [&](const auto& op) -> Status {
        using Op = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<Op, core::Promote>) {
          // Nothing here waits on a host: the old primary's host is often the one that is gone.
          // Fence at rest runs on its host through the node-operation worker (bounded there), the
          // fencing hook and pg_promote on the promotion worker; the decision confirms the
          // promotion by observation.
          const bool replaces_old = op.replaces && *op.replaces < config_.nodes.size();
          if (replaces_old) operations_.startFenceAtRest(*op.replaces);
          return promotions_.start(action.node, replaces_old ? op.replaces : std::nullopt);
        } else if constexpr (std::is_same_v<Op, core::Fence>) {
          return prober.fenceReadOnly();
        } else if constexpr (std::is_same_v<Op, core::Unfence>) {
          return prober.unfence();
        } else if constexpr (std::is_same_v<Op, core::UseSlot>) {
          return prober.useReplicationSlot(op.slot);
        } else if constexpr (std::is_same_v<Op, core::CreateSlot>) {
          return prober.createReplicationSlot(op.slot);
        } else if constexpr (std::is_same_v<Op, core::DropSlot>) {
          return prober.dropReplicationSlot(op.slot);
        } else if constexpr (std::is_same_v<Op, core::SetSynchronousStandbys>) {
          return prober.setSynchronousStandbyNames(op.names);
        } else {
          static_assert(std::is_same_v<Op, core::Rejoin>, "every action kind is handled");
          if (!operations_.available(action.node))
            return {StatusCode::kFailedPrecondition, "no ssh or local executor for this node"};
          operations_.startRejoin(action.node, op.follow);
          return Status::ok();
        }
      },
      action.op);
}

}  // namespace pgfailover::runtime
