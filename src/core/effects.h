// What the rows of the transition table do beyond the state change: the actions, events and
// memory changes of each row, and the maintenance steps that follow rows. Internal to src/core.
#pragma once

#include "core/decide.h"

namespace pgfailover::core {

void maintainSynchronousStandbys(const Facts& f, Decision& d);

void issuePromote(const Facts& f, Decision& d);

// Keeps one physical slot per replica on a healthy primary; drops the slot of a node that has
// been unreachable for slot_drop_after so retained WAL cannot fill the disk.
void maintainSlots(const Facts& f, Decision& d);

void completeFailover(const Facts& f, Decision& d);

void abandonPromotion(const Facts& f, Decision& d);

void giveUpPromotion(const Facts& f, Decision& d);

void fenceStale(const Facts& f, Decision& d);

void unfenceSelfFencedPrimary(const Facts& f, Decision& d);

void clearFailure(const Facts&, Decision& d);

void issueRejoin(const Facts& f, Decision& d);

void beginOperatorSwitchover(const Facts& f, Decision& d);

void beginFailback(const Facts& f, Decision& d);

void promoteSwitchoverTarget(const Facts& f, Decision& d);

void abortSwitchover(const Facts& f, Decision& d);

void keepSwitchoverFence(const Facts& f, Decision& d);

void beginOperatorFailover(const Facts& f, Decision& d);

// A promotion this process did not see complete: pgfailover was restarted between pg_promote
// and the tick that confirms it (or a replica was promoted by hand). The cluster moved to a
// newer timeline; that failover is recorded once, so /history and the failover count stay true.
void recordUnseenPromotion(const Facts& f, Decision& d);

void recordVeto(const Facts& f, Decision& d);

}  // namespace pgfailover::core
