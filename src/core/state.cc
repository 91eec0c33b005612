#include "core/state.h"

namespace pgfailover::core {

const char* toString(ClusterState state) {
  switch (state) {
    case ClusterState::kInitializing:
      return "initializing";
    case ClusterState::kHealthy:
      return "healthy";
    case ClusterState::kDegraded:
      return "degraded";
    case ClusterState::kPrimaryFailing:
      return "primary_failing";
    case ClusterState::kFailoverVetoed:
      return "failover_vetoed";
    case ClusterState::kPromoting:
      return "promoting";
    case ClusterState::kFencingRequired:
      return "fencing_required";
    case ClusterState::kNoPrimary:
      return "no_primary";
    case ClusterState::kSplitBrain:
      return "split_brain";
    case ClusterState::kSwitchingOver:
      return "switching_over";
  }
  return "unknown";
}

const char* toString(NodeRole role) {
  switch (role) {
    case NodeRole::kPrimary:
      return "primary";
    case NodeRole::kReplica:
      return "replica";
    case NodeRole::kUnknown:
      return "unknown";
    case NodeRole::kNeedsFencing:
      return "needs-fencing";
    case NodeRole::kFenced:
      return "fenced";
  }
  return "unknown";
}

const char* toString(TimeoutKind kind) {
  switch (kind) {
    case TimeoutKind::kConfirmedDown:
      return "confirmed_down";
    case TimeoutKind::kUnresponsive:
      return "unresponsive";
    case TimeoutKind::kHostLost:
      return "host_lost";
    case TimeoutKind::kStartingUp:
      return "starting_up";
  }
  return "unknown";
}

const char* toString(VetoReason reason) {
  switch (reason) {
    case VetoReason::kReplicaUnreachable:
      return "replica_unreachable";
    case VetoReason::kReplicaNotInRecovery:
      return "replica_not_in_recovery";
    case VetoReason::kSystemIdentifierMismatch:
      return "system_identifier_mismatch";
    case VetoReason::kReplicaStillStreaming:
      return "replica_still_streaming";
    case VetoReason::kReplicaLagging:
      return "replica_lagging";
    case VetoReason::kPromoteAttemptsExhausted:
      return "promote_attempts_exhausted";
    case VetoReason::kReplicaNotSynchronous:
      return "replica_not_synchronous";
  }
  return "unknown";
}

const char* toString(SyncMode mode) {
  switch (mode) {
    case SyncMode::kOff:
      return "off";
    case SyncMode::kOn:
      return "on";
    case SyncMode::kStrict:
      return "strict";
  }
  return "off";
}

const char* toString(ActionKind kind) {
  switch (kind) {
    case ActionKind::kPromote:
      return "promote";
    case ActionKind::kFence:
      return "fence";
    case ActionKind::kUnfence:
      return "unfence";
    case ActionKind::kRejoin:
      return "rejoin";
    case ActionKind::kCreateSlot:
      return "create_slot";
    case ActionKind::kDropSlot:
      return "drop_slot";
    case ActionKind::kSetSynchronousStandbys:
      return "set_synchronous_standbys";
    case ActionKind::kUseSlot:
      return "use_slot";
  }
  return "unknown";
}

const char* toString(EventKind value) {
  switch (value) {
    case EventKind::kFailover:
      return "failover";
    case EventKind::kSwitchover:
      return "switchover";
    case EventKind::kFence:
      return "fence";
    case EventKind::kUnfence:
      return "unfence";
    case EventKind::kRejoin:
      return "rejoin";
    case EventKind::kRequest:
      return "request";
    case EventKind::kSynchronous:
      return "synchronous";
    case EventKind::kSlotDropped:
      return "slot_dropped";
  }
  return "unknown";
}

const char* toString(EventResult value) {
  switch (value) {
    case EventResult::kSucceeded:
      return "succeeded";
    case EventResult::kFailed:
      return "failed";
    case EventResult::kStarted:
      return "started";
    case EventResult::kRefused:
      return "refused";
    case EventResult::kStandalone:
      return "standalone";
    case EventResult::kHostUnreachable:
      return "host_unreachable";
  }
  return "unknown";
}

const char* toString(Rule value) {
  switch (value) {
    case Rule::kSplitBrain:
      return "split-brain";
    case Rule::kWaitForFirstProbe:
      return "wait-for-first-probe";
    case Rule::kUnseenPromotion:
      return "unseen-promotion";
    case Rule::kPromotionConfirmed:
      return "promotion-confirmed";
    case Rule::kPromotionAbandoned:
      return "promotion-abandoned";
    case Rule::kPromotionRetry:
      return "promotion-retry";
    case Rule::kPromotionGaveUp:
      return "promotion-gave-up";
    case Rule::kPromotionPending:
      return "promotion-pending";
    case Rule::kSwitchoverPromote:
      return "switchover-promote";
    case Rule::kSwitchoverAborted:
      return "switchover-aborted";
    case Rule::kSwitchoverWaiting:
      return "switchover-waiting";
    case Rule::kUnfenceSelfFencedPrimary:
      return "unfence-self-fenced-primary";
    case Rule::kFenceStaleWritable:
      return "fence-stale-writable";
    case Rule::kOperatorFailover:
      return "operator-failover";
    case Rule::kOperatorSwitchover:
      return "operator-switchover";
    case Rule::kFailback:
      return "failback";
    case Rule::kNoPrimary:
      return "no-primary";
    case Rule::kRejoinNode:
      return "rejoin-node";
    case Rule::kPrimaryAndReplicaHealthy:
      return "primary-and-replica-healthy";
    case Rule::kPrimaryHealthyReplicaNot:
      return "primary-healthy-replica-not";
    case Rule::kPrimaryFailing:
      return "primary-failing";
    case Rule::kFailoverVetoed:
      return "failover-vetoed";
    case Rule::kPromoteReplica:
      return "promote-replica";
    case Rule::kTimeoutRanOutElsewhere:
      return "timeout-ran-out-elsewhere";
  }
  return "unknown";
}

}  // namespace pgfailover::core
