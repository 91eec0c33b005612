// One acting pgfailover among several, elected through etcd (docs/coordination.md).
//
// The leader key <prefix>/leader holds the acting instance's name and is attached to that
// instance's lease; etcd deletes it when the lease runs out. Whoever creates the key (a
// transaction that succeeds only while it does not exist) leads, and the key's create_revision
// is its term: a later leader necessarily has a larger one. Every write of the leader goes
// through guardedTxn(), whose compare is "the leader key still has my create_revision and my
// name", so a deposed instance's late write is refused by etcd itself instead of racing the new
// leader's.
//
// The instance also stops acting by its own clock before etcd can have expired its lease:
// acting(now) holds only while now < (send time of the last successful renewal) + TTL - margin.
// The lease's TTL in etcd starts when etcd handles the renewal, which is after it was sent, so
// measured from the send time on our monotonic clock the instance always stops first, whatever
// the network or etcd did meanwhile (a GC pause, a slow disk, quorum loss).
//
// Not thread-safe: the tick loop owns it and calls it once per tick.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "coord/etcd_client.h"

namespace pgfailover::coord {

// The documents the acting instance keeps under the prefix (docs/coordination.md).
inline constexpr const char* kStateDocument = "state";
inline constexpr const char* kPromotionIntentDocument = "promotion-intent";

struct LeadershipOptions {
  std::string name;        // this instance's name, unique among the instances
  std::string prefix;      // "/pgfailover/<cluster>"; keys are <prefix>/leader, <prefix>/<doc>
  Millis lease_ttl{5000};  // whole seconds (etcd leases count seconds)
  // How long before the lease could run out in etcd this instance stops acting. 0: the
  // default, max(1000 ms, TTL / 5).
  Millis acting_margin{0};
};

// Who leads, as read from etcd.
struct LeaderInfo {
  std::string name;        // empty: nobody
  std::int64_t term = 0;   // the leader key's create_revision
  std::int64_t lease = 0;  // the leader's lease ID
};

class Leadership {
 public:
  // The clock is a parameter everywhere so that tests and the tick loop pass the tick's time.
  Leadership(EtcdClient& client, LeadershipOptions options);

  // One election step: makes sure this instance has a live lease (renewing it or granting a
  // new one), then creates the leader key with it unless someone holds it. An instance
  // restarted after a crash finds the key under its own name but its old lease: it waits for
  // that lease to run out like any other instance would. OK when the step
  // ran (whether or not this instance won: see leading()); an error when etcd did not answer.
  Status campaign(SteadyTime now);
  // Renews the lease (one keepalive). When etcd says the lease is gone, this instance is no
  // longer the leader. On error the renewal time stays where it was, so acting() runs out.
  Status renew(SteadyTime now);
  // campaign() when not leading, renew() when leading: what a tick calls.
  Status step(SteadyTime now);
  // Revokes the lease (deleting the leader key with it): a clean stop hands over at once
  // instead of after the TTL.
  Status resign();

  // True while this instance holds the leader key as far as it knows and its own clock says
  // the lease cannot have run out in etcd yet.
  bool acting(SteadyTime now) const;
  // Holding the key as far as this instance last heard (independent of the clock).
  bool leading() const { return term_ != 0; }
  std::int64_t term() const { return term_; }
  std::int64_t leaseId() const { return lease_id_; }
  // The last leader seen in etcd (by campaign() or a refused guardedTxn()).
  const LeaderInfo& lastSeenLeader() const { return seen_; }
  // The instant until which acting() holds (meaningful while leading()).
  SteadyTime actingUntil() const;
  // When the last successful lease grant or renewal was sent (meaningful while leaseId() != 0).
  SteadyTime renewalSentAt() const { return renewal_sent_at_; }
  Millis margin() const { return margin_; }

  // A transaction that etcd applies only while this instance still holds the leader key (same
  // create_revision, same name). Refused locally, without a request, when acting(now) is false.
  // FailedPrecondition when etcd refused it: this instance has been deposed and leading()
  // turns false. Any other error means no answer came: the write may or may not have been
  // applied, and the action it guards must not run.
  EtcdResult<TxnResult> guardedTxn(SteadyTime now, const std::vector<Op>& ops);
  // Stores a JSON document at <prefix>/<name> ("state", "promotion-intent") through
  // guardedTxn(): only the acting leader writes shared state.
  Status putDocument(SteadyTime now, const std::string& name, const nlohmann::json& document);
  // Reads <prefix>/<name> (any instance may read): nullopt when absent.
  EtcdResult<std::optional<nlohmann::json>> readDocument(const std::string& name);
  // Reads the leader key.
  EtcdResult<LeaderInfo> readLeader();

  std::string leaderKey() const { return options_.prefix + "/leader"; }
  std::string documentKey(const std::string& name) const { return options_.prefix + "/" + name; }

 private:
  Status ensureLease(SteadyTime now);
  void lose();

  EtcdClient& client_;
  LeadershipOptions options_;
  Millis margin_;
  std::int64_t lease_id_ = 0;
  Millis lease_ttl_{0};           // as etcd granted it
  SteadyTime renewal_sent_at_{};  // send time of the last successful grant or keepalive
  std::int64_t term_ = 0;
  LeaderInfo seen_;
};

}  // namespace pgfailover::coord
