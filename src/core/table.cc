// The transition table: one row per transition, its condition over the facts and the sentence
// that explains it, in the order decide() tries them; and the maintenance steps after rows.
#include "core/decide.h"
#include "core/describe.h"
#include "core/effects.h"

namespace pgfailover::core {

namespace {

// ---- conditions (one per row) ----

bool primaryContested(const Facts& f) {
  return f.contested;
}

bool notAllProbed(const Facts& f) {
  return !f.all_probed;
}

bool unseenPromotion(const Facts& f) {
  return f.unseen_promotion;
}

bool promotionConfirmed(const Facts& f) {
  return f.promotion_confirmed;
}

bool promotionFailedPrimaryBack(const Facts& f) {
  return !f.promotion_confirmed && f.primary_ok && f.promotion_overdue;
}

bool promotionRetry(const Facts& f) {
  // The checks behind f.veto are the candidate's: only a retry of that node passed them.
  return !f.promotion_confirmed && f.promotion_overdue &&
         f.memory->promote_attempts < f.policy->promote_attempts && !f.veto &&
         f.candidate == f.memory->promoting;
}

bool promotionOverdue(const Facts& f) {
  return !f.promotion_confirmed && f.promotion_overdue;
}

bool always(const Facts&) {
  return true;
}

bool primarySelfFenced(const Facts& f) {
  return f.primary_self_fenced;
}

bool hasStaleWritable(const Facts& f) {
  return !f.stale_writable.empty();
}

bool noPrimary(const Facts& f) {
  return !f.primary.has_value();
}

bool primaryOkReplicaOk(const Facts& f) {
  return f.primary_ok && f.replica_healthy;
}

bool primaryOkReplicaNotOk(const Facts& f) {
  return f.primary_ok && !f.replica_healthy;
}

bool failingWithinTimeout(const Facts& f) {
  return !f.primary_ok && !f.timeout_elapsed;
}

bool timeoutElapsedVetoed(const Facts& f) {
  return f.timeout_elapsed && f.veto.has_value();
}

bool switchoverCaughtUp(const Facts& f) {
  return f.switchover_caught_up;
}

bool switchoverFailed(const Facts& f) {
  return f.switchover_failed;
}

bool operatorFailover(const Facts& f) {
  return f.failover_requested;
}

bool operatorSwitchover(const Facts& f) {
  return f.switchover_requested;
}

bool failbackDue(const Facts& f) {
  return f.failback_due;
}

bool rejoinDue(const Facts& f) {
  return f.primary_ok && f.rejoin.has_value();
}

bool timeoutElapsedClear(const Facts& f) {
  return f.timeout_elapsed && !f.veto;
}

// ---- explanations ----

std::string failingSentence(const Facts& f) {
  const auto& primary = f.node(*f.primary);
  std::string text = "primary " + f.nameOf(*f.primary) + " failing for " +
                     formatSeconds(f.failing_for) + " (" + describeProblem(primary) + "); " +
                     toString(*f.timeout_kind) + " timeout " + formatSeconds(f.timeout);
  return text;
}

std::string explainSplitBrain(const Facts& f) {
  std::string names;
  for (auto i : f.writable) names += (names.empty() ? "" : " and ") + f.nameOf(i);
  if (f.writable.size() >= 2)
    return "nodes " + names + " both accept writes on timeline " +
           std::to_string(f.node(f.writable.front()).timeline) +
           "; refusing to choose between them";
  return "node " + names + " is writable on the same timeline as the remembered primary " +
         (f.memory->primary ? f.nameOf(*f.memory->primary) : std::string("?")) +
         ", which is not writable; refusing to choose";
}

std::string explainWaiting(const Facts&) {
  return "waiting for the first probe of every node";
}

std::string explainConfirmed(const Facts& f) {
  return "replica " + f.nameOf(*f.memory->promoting) +
         " was promoted and accepts writes on timeline " +
         std::to_string(f.node(*f.memory->promoting).timeline) + "; failover complete";
}

std::string explainAbandoned(const Facts& f) {
  return "promotion of " + f.nameOf(*f.memory->promoting) + " was not confirmed and primary " +
         f.nameOf(*f.primary) + " is healthy again; keeping it";
}

std::string explainRetry(const Facts& f) {
  return "promotion of " + f.nameOf(*f.memory->promoting) + " not confirmed after " +
         formatSeconds(elapsed(f.memory->promote_issued_at, f.now.steady)) + "; attempt " +
         std::to_string(f.memory->promote_attempts + 1) + " of " +
         std::to_string(f.policy->promote_attempts);
}

std::string explainGiveUp(const Facts& f) {
  return "promotion of " + f.nameOf(*f.memory->promoting) + " failed " +
         std::to_string(f.memory->promote_attempts) + " times; giving up until an operator acts";
}

std::string explainPending(const Facts& f) {
  return "waiting for " + f.nameOf(*f.memory->promoting) + " to finish promotion (" +
         describeProblem(f.node(*f.memory->promoting)) + ")";
}

std::string explainFence(const Facts& f) {
  std::string text;
  for (auto i : f.stale_writable)
    text += (text.empty() ? "" : "; ") + f.nameOf(i) + " accepts writes on timeline " +
            std::to_string(f.node(i).timeline);
  return text + " while " + f.nameOf(*f.primary) + " is primary on timeline " +
         std::to_string(f.node(*f.primary).timeline) + "; it must be fenced";
}

std::string explainSelfFenced(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " on timeline " +
         std::to_string(f.node(*f.primary).timeline) +
         " made itself read-only when its lease ran out, and no other node took over; "
         "pgfailover lifts the fence";
}

std::string explainNoPrimary(const Facts& f) {
  std::string text = "no node accepts writes and no primary is known";
  for (std::size_t i = 0; i < f.view->nodes.size(); ++i)
    text += "; " + f.nameOf(i) + ": " +
            (f.node(i).reachable
                 ? (f.node(i).in_recovery ? std::string("replica") : describeProblem(f.node(i)))
                 : describeProblem(f.node(i)));
  return text;
}

std::string explainHealthy(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " commits on timeline " +
         std::to_string(f.node(*f.primary).timeline) + "; replicas stream within the lag limit";
}

std::string explainDegraded(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " commits, but " + f.replica_problem +
         f.operations_note;
}

std::string explainFailing(const Facts& f) {
  std::string text =
      f.lease_wait ? failingSentence(f) + " ran out; waiting " + formatSeconds(*f.lease_wait) +
                         " more for the old primary's lease to run out (its guard fences it first)"
                   : failingSentence(f) + ", " + formatSeconds(f.timeout - f.failing_for) + " left";
  if (f.veto) text += "; would be vetoed now: " + f.veto_detail;
  return text;
}

std::string explainVetoed(const Facts& f) {
  return "failover due (" + failingSentence(f) + " ran out) but vetoed: " + f.veto_detail;
}

std::string explainPromote(const Facts& f) {
  const auto& candidate = f.node(*f.candidate);
  std::string text = failingSentence(f) + " ran out, and replica " + f.nameOf(*f.candidate) +
                     " lost it too (" + describeReceiver(candidate) + "); promoting " +
                     f.nameOf(*f.candidate);
  if (auto pos = candidate.position()) text += " at " + formatLsn(*pos);
  if (f.candidate_lag_bytes) text += " (" + formatBytes(*f.candidate_lag_bytes) + " behind)";
  return text;
}

std::string explainSwitchoverPromote(const Facts& f) {
  const auto& sw = *f.memory->switchover;
  return "switchover: " + f.nameOf(sw.to) + " replayed up to " +
         formatLsn(*f.node(sw.to).replay_lsn) + ", everything the fenced primary " +
         f.nameOf(sw.from) + " wrote; promoting " + f.nameOf(sw.to);
}

std::string explainSwitchoverAbort(const Facts& f) {
  return "switchover aborted: " + f.switchover_problem + "; unfencing " +
         f.nameOf(f.memory->switchover->from);
}

std::string explainSwitchoverWait(const Facts& f) {
  const auto& sw = *f.memory->switchover;
  const auto& target = f.node(sw.to);
  const auto& old = f.node(sw.from);
  return "switchover to " + f.nameOf(sw.to) + ": waiting for it to replay " +
         (old.current_lsn ? formatLsn(*old.current_lsn) : std::string("the primary's last WAL")) +
         " (at " + (target.replay_lsn ? formatLsn(*target.replay_lsn) : std::string("?")) + "), " +
         formatSeconds(f.policy->switchover_timeout - elapsed(sw.started_at, f.now.steady)) +
         " left";
}

std::string explainOperatorFailover(const Facts& f) {
  return "operator requested a failover" + std::string(f.view->request->force ? " (forced)" : "") +
         ": promoting " + f.nameOf(*f.request_target) +
         (f.primary ? " instead of " + f.nameOf(*f.primary) : std::string(", no primary known"));
}

std::string explainOperatorSwitchover(const Facts& f) {
  return "operator requested a switchover to " + f.nameOf(*f.request_target) + ": fencing " +
         f.nameOf(*f.primary) + " and waiting for the target to catch up";
}

std::string explainFailback(const Facts& f) {
  return "failback: the preferred node " + f.nameOf(*f.policy->preferred) +
         " is caught up; switching the primary role back to it";
}

std::string explainRejoin(const Facts& f) {
  return "primary " + f.nameOf(*f.primary) + " commits; rejoining " + f.nameOf(*f.rejoin) + ": " +
         f.rejoin_why;
}

std::string explainUnseenPromotion(const Facts& f) {
  return f.nameOf(*f.primary) + " accepts writes on timeline " +
         std::to_string(f.node(*f.primary).timeline) + ", newer than timeline " +
         std::to_string(f.memory->last_primary_timeline) + " of the remembered primary " +
         f.nameOf(*f.memory->primary) + "; recording the failover pgfailover did not see complete";
}

std::string explainPassThrough(const Facts& f) {
  return failingSentence(f) + " ran out; re-checking the candidate before promoting";
}

using S = ClusterState;

}  // namespace

const std::vector<Transition>& transitionTable() {
  static const std::vector<Transition> table = {
      {Rule::kSplitBrain,
       {},
       S::kSplitBrain,
       "two writable nodes on the same newest timeline, or a writable node on the remembered "
       "primary's timeline while that primary is not writable",
       "none; alert (split-brain gauge)",
       "Nothing tells which history is right: fencing the wrong node loses data and promoting "
       "makes it worse, so an operator decides.",
       primaryContested,
       nullptr,
       explainSplitBrain},
      {Rule::kWaitForFirstProbe,
       {S::kInitializing},
       S::kInitializing,
       "some node has not been probed yet",
       "none",
       "A decision needs a full view; /readyz stays 503 until then.",
       notAllProbed,
       nullptr,
       explainWaiting},
      {Rule::kUnseenPromotion,
       {},
       S::kDegraded,
       "no promotion is in flight, and a node other than the remembered primary is out of "
       "recovery on a newer timeline than the remembered primary's",
       "record the failover (history, failover count)",
       "pgfailover was restarted between pg_promote and its confirmation, or a replica was "
       "promoted by hand: the cluster moved on, and the failover is recorded once; the next "
       "tick fences, unfences or rejoins as the new cluster needs.",
       unseenPromotion,
       recordUnseenPromotion,
       explainUnseenPromotion},
      {Rule::kPromotionConfirmed,
       {S::kPromoting},
       S::kDegraded,
       "the promoted replica is seen writable",
       "record the failover",
       "Promotion is confirmed by observation, never assumed; the old primary is gone or must "
       "be fenced, so the cluster is degraded until a replica streams again.",
       promotionConfirmed,
       completeFailover,
       explainConfirmed},
      {Rule::kPromotionAbandoned,
       {S::kPromoting},
       S::kDegraded,
       "promotion not confirmed by its deadline and the old primary commits again",
       "count a failed failover",
       "Keeping a primary that works beats a promotion that did not happen; a late promotion "
       "shows up as a newer timeline and the old primary gets fenced.",
       promotionFailedPrimaryBack,
       abandonPromotion,
       explainAbandoned},
      {Rule::kPromotionRetry,
       {S::kPromoting},
       S::kPromoting,
       "promotion not confirmed by its deadline (and the old primary's lease, renewed "
       "meanwhile, ran out), attempts remain, no veto, and the best candidate is still the node "
       "promoted",
       "promote again",
       "pg_promote can time out on a busy replica; asking again is harmless. Only the candidate "
       "passed the checks, so another node is never promoted while the first one's promotion "
       "may still land.",
       promotionRetry,
       issuePromote,
       explainRetry},
      {Rule::kPromotionGaveUp,
       {S::kPromoting},
       S::kFailoverVetoed,
       "promotion not confirmed by its deadline and no attempt or candidate remains",
       "count a failed failover; veto",
       "Retrying forever hides a broken replica; the veto and the metric call an operator.",
       promotionOverdue,
       giveUpPromotion,
       explainGiveUp},
      {Rule::kPromotionPending,
       {S::kPromoting},
       S::kPromoting,
       "promotion not yet confirmed, deadline not passed",
       "none",
       "Promotion takes a moment (end-of-recovery checkpoint).",
       always,
       nullptr,
       explainPending},
      {Rule::kSwitchoverPromote,
       {S::kSwitchingOver},
       S::kPromoting,
       "the fenced primary accepts no writes and the target replayed everything it wrote",
       "promote the target",
       "A planned switchover loses nothing: writes stopped first, and the target has every "
       "byte of WAL the old primary produced.",
       switchoverCaughtUp,
       promoteSwitchoverTarget,
       explainSwitchoverPromote},
      {Rule::kSwitchoverAborted,
       {S::kSwitchingOver},
       S::kDegraded,
       "the target stopped being a reachable replica, the primary became unreachable, or the "
       "target did not catch up within failover.switchover_timeout_ms",
       "unfence the primary unless the target was promoted after all; record the failed "
       "switchover",
       "A switchover that cannot finish safely must give the cluster its primary back; a target "
       "that left recovery (a late pg_promote) has the newer history, so the old primary stays "
       "fenced. The unfenced primary's guard starts a whole lease, and a later failover waits "
       "for it.",
       switchoverFailed,
       abortSwitchover,
       explainSwitchoverAbort},
      {Rule::kSwitchoverWaiting,
       {S::kSwitchingOver},
       S::kSwitchingOver,
       "the target is still catching up",
       "keep the primary fenced",
       "Promotion waits for the last byte.",
       always,
       keepSwitchoverFence,
       explainSwitchoverWait},
      {Rule::kUnfenceSelfFencedPrimary,
       {},
       S::kPrimaryFailing,
       "the primary is reachable and read-only because its lease guard fenced it, no other "
       "node is out of recovery on its timeline or a newer one, and no promotion or switchover "
       "is in flight",
       "unfence it (every tick until it commits again); its lease starts again",
       "The guard fences a primary that hears from neither pgfailover nor its replica, because "
       "pgfailover may be promoting the replica; once pgfailover sees it again and nothing "
       "was promoted, the fence only costs writes.",
       primarySelfFenced,
       unfenceSelfFencedPrimary,
       explainSelfFenced},
      {Rule::kFenceStaleWritable,
       {},
       S::kFencingRequired,
       "a node other than the primary accepts writes on an older timeline",
       "fence that node (every tick until it holds)",
       "The node on the newer timeline is the primary; a writable old primary must never take "
       "writes that the new history will throw away.",
       hasStaleWritable,
       fenceStale,
       explainFence},
      {Rule::kOperatorFailover,
       {},
       S::kPromoting,
       "an operator asked for a failover (POST /failover) and the target is a reachable "
       "replica of this cluster; unless forced, only when the primary is not healthy",
       "fence the old primary if it is reachable; promote the target",
       "The operator knows something pgfailover cannot see; the timeout and the replica's "
       "confirmation are skipped, nothing else.",
       operatorFailover,
       beginOperatorFailover,
       explainOperatorFailover},
      {Rule::kOperatorSwitchover,
       {},
       S::kSwitchingOver,
       "an operator asked for a switchover (POST /switchover), the primary commits and the "
       "target streams within the lag limit",
       "fence the primary (read-only, sessions ended)",
       "Stop writes first, then wait for the target to replay the last byte.",
       operatorSwitchover,
       beginOperatorSwitchover,
       explainOperatorSwitchover},
      {Rule::kFailback,
       {S::kHealthy},
       S::kSwitchingOver,
       "failback is on, the preferred node streams with no lag and the cluster has been "
       "healthy for failover.failback_delay_ms",
       "start a switchover to the preferred node",
       "The seed's behaviour, made safe: the primary role returns through a planned "
       "switchover, never through a second failover.",
       failbackDue,
       beginFailback,
       explainFailback},
      {Rule::kNoPrimary,
       {},
       S::kNoPrimary,
       "no writable node and no primary known or inferable",
       "none",
       "Promoting a replica with no known primary could pick a stale node; an operator "
       "decides (POST /failover).",
       noPrimary,
       nullptr,
       explainNoPrimary},
      {Rule::kRejoinNode,
       {},
       S::kDegraded,
       "the primary commits and a node with a host executor is not in recovery (fenced), or "
       "has not been a healthy replica for failover.rejoin_grace_ms (at least 60 s for a "
       "reachable standby on the primary's timeline, or that last streamed on it, whose WAL "
       "receiver reconnects by itself)",
       "rejoin it: stop, pg_rewind (re-clone if that fails), follow the primary, start",
       "The cluster heals itself back to a primary and a streaming replica; one operation per "
       "node at a time, retried after failover.rejoin_retry_interval_ms.",
       rejoinDue,
       issueRejoin,
       explainRejoin},
      {Rule::kPrimaryAndReplicaHealthy,
       {},
       S::kHealthy,
       "the primary commits and a replica streams from it within the lag limit",
       "clear any failure timer and veto",
       "The guarantee the cluster exists for.",
       primaryOkReplicaOk,
       clearFailure,
       explainHealthy},
      {Rule::kPrimaryHealthyReplicaNot,
       {},
       S::kDegraded,
       "the primary commits but no replica streams within the lag limit",
       "clear any failure timer and veto",
       "Writes work, but a failover now would have no safe target.",
       primaryOkReplicaNotOk,
       clearFailure,
       explainDegraded},
      {Rule::kPrimaryFailing,
       {},
       S::kPrimaryFailing,
       "the primary's probe or heartbeat fails and the applicable timeout has not run out",
       "keep the timer running",
       "One lost probe is never enough: the timer runs while every probe fails, and the "
       "timeout depends on the evidence (the timeouts' table below).",
       failingWithinTimeout,
       nullptr,
       explainFailing},
      {Rule::kFailoverVetoed,
       {},
       S::kFailoverVetoed,
       "the timeout ran out but the replica is unreachable, not a replica, of another "
       "cluster, still hears the primary, lags too much, or promotion kept failing",
       "count the veto once; re-check every tick",
       "pgfailover's own view is not enough: the replica must confirm it lost the primary "
       "too, which is what prevents a failover when only pgfailover's link broke.",
       timeoutElapsedVetoed,
       recordVeto,
       explainVetoed},
      {Rule::kPromoteReplica,
       {S::kPrimaryFailing, S::kFailoverVetoed},
       S::kPromoting,
       "the timeout ran out, and the replica is reachable, in recovery, of the same cluster, "
       "lost the primary too, and is within the lag limit",
       "promote the replica (pg_promote)",
       "Every condition a careful DBA checks before promoting holds.",
       timeoutElapsedClear,
       issuePromote,
       explainPromote},
      {Rule::kTimeoutRanOutElsewhere,
       {},
       S::kPrimaryFailing,
       "the timeout ran out while in another state (for example after fencing)",
       "none; the next tick may promote",
       "Every promotion is preceded by a tick that reports the failing primary.",
       timeoutElapsedClear,
       nullptr,
       explainPassThrough},
  };
  return table;
}

const std::vector<MaintenanceStep>& maintenanceSteps() {
  static const std::vector<MaintenanceStep> steps = {
      {"replication-slots",
       {Rule::kRejoinNode, Rule::kPrimaryAndReplicaHealthy, Rule::kPrimaryHealthyReplicaNot},
       "the primary commits, replication.slots is on and the primary's slots were read; only "
       "for nodes with a host executor (ssh or local), whether failover.rejoin is on or off",
       "create the missing slot of each replica on the primary; ask a replica that streams "
       "around its slot to use it (primary_slot_name, again every 30 s); drop the inactive slot "
       "of a node unreachable for replication.slot_drop_after_ms",
       "A slot keeps the WAL a replica still needs, so a rejoin never waits for a re-clone; a "
       "slot nobody streams from would keep WAL until the primary's disk fills.",
       maintainSlots},
      {"synchronous-standbys",
       {Rule::kPrimaryAndReplicaHealthy, Rule::kPrimaryHealthyReplicaNot},
       "synchronous.mode is on or strict and the primary commits",
       "set synchronous_standby_names to the replicas that stream within the lag limit (strict: "
       "every replica); mode on: after synchronous.standalone_after_ms without one, empty it and "
       "record that the primary commits alone",
       "Only a synchronous standby may be promoted without losing acknowledged commits (the "
       "replica_not_synchronous veto); strict mode never lets the primary commit alone.",
       maintainSynchronousStandbys},
  };
  return steps;
}

}  // namespace pgfailover::core
