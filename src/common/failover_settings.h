// Failover settings that both the configuration (src/config) and the decision (src/core) know:
// the defaults of the failover timeouts and the synchronous replication mode. Defined once here,
// because config and core depend on common and not on each other; docs/state-machine.md is
// generated from these values, and docs/configuration.md lists the same ones.
#pragma once

#include <cstdint>

#include "common/time.h"

namespace pgfailover {

// Synchronous replication managed by pgfailover (synchronous_standby_names on the primary).
enum class SyncMode {
  kOff,     // asynchronous: failover may lose what the replica had not received (bounded by lag)
  kOn,      // commits wait for the replica; alone after `standalone_after` without one
  kStrict,  // commits always wait for a replica; never alone
};

namespace failover_defaults {

// Proof the primary is down: connection refused, reset or closed by the server.
inline constexpr Millis kConfirmedDownTimeout{3000};
// Silence: probe deadlines expire, no route, rejected, cannot commit.
inline constexpr Millis kUnresponsiveTimeout{10000};
// Silence from a host that does not answer ICMP either, with the lease on.
inline constexpr Millis kHostLostTimeout{5000};
// The primary answers that it is starting up, shutting down or in recovery.
inline constexpr Millis kStartingUpGrace{30000};
inline constexpr Millis kReplicaSilence{5000};
inline constexpr std::uint64_t kMaxLagBytes = 16ull * 1024 * 1024;
inline constexpr Millis kPromoteTimeout{10000};
inline constexpr int kPromoteAttempts = 3;
inline constexpr Millis kRejoinGrace{5000};
inline constexpr Millis kRejoinRetryInterval{30000};
inline constexpr Millis kSwitchoverTimeout{30000};
inline constexpr Millis kSlotDropAfter{3600000};
inline constexpr Millis kFailbackDelay{30000};
inline constexpr Millis kStandaloneAfter{10000};

}  // namespace failover_defaults

// The failover settings the configuration holds and the decision reads, as one struct both
// derive from: config::FailoverConfig adds what only the runtime uses, core::Policy what the
// decision takes from other sections; the runtime hands this part over whole.
struct FailoverSettings {
  // Proof the primary is down (connection refused or reset).
  Millis confirmed_down_timeout{failover_defaults::kConfirmedDownTimeout};
  // The primary is merely silent (probe deadlines expire, no route).
  Millis unresponsive_timeout{failover_defaults::kUnresponsiveTimeout};
  // The primary is silent and its host is lost: it does not answer ICMP either (probe.icmp), and
  // the lease is on, so that by the time it runs out the old primary's guard has fenced it if it
  // still runs anywhere. The replica must have lost it too, as always. Never longer than
  // unresponsive_timeout.
  Millis host_lost_timeout{failover_defaults::kHostLostTimeout};
  // Grace while the primary says it is starting up, shutting down or recovering.
  Millis starting_up_grace{failover_defaults::kStartingUpGrace};
  // The replica counts as having lost the primary once it heard nothing for this long (or its
  // WAL receiver stopped). The effective value is never below half its wal_receiver_timeout
  // plus one second, since a healthy idle stream can be that quiet.
  Millis replica_silence{failover_defaults::kReplicaSilence};
  std::uint64_t max_lag_bytes = failover_defaults::kMaxLagBytes;
  // pg_promote(wait => true, wait_seconds => this).
  Millis promote_timeout{failover_defaults::kPromoteTimeout};
  int promote_attempts = failover_defaults::kPromoteAttempts;

  // Lifecycle: rejoin a node that is not a healthy replica (needs a host executor), after it was
  // down or not streaming for rejoin_grace; again rejoin_retry_interval after a failed rejoin.
  bool rejoin = true;
  Millis rejoin_grace{failover_defaults::kRejoinGrace};
  Millis rejoin_retry_interval{failover_defaults::kRejoinRetryInterval};
  // How long a switchover's target may take to catch up with the fenced primary.
  Millis switchover_timeout{failover_defaults::kSwitchoverTimeout};
  // Return the primary role to the preferred node once it was healthy and caught up this long.
  bool failback = false;
  Millis failback_delay{failover_defaults::kFailbackDelay};
};

}  // namespace pgfailover
