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
}  // namespace pgfailover
