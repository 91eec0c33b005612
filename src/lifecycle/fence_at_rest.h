// Fence at rest: at a failover promotion, make sure the old primary can never come back as a
// second writable primary, whatever restarts it later (an operator, systemd, a container's
// restart policy). On the old primary's host, `standby.signal` goes into its data directory, so
// that any start brings it up as a standby (the rejoin follows). If its postmaster still runs,
// it is the one pgfailover could not get an answer from for the whole timeout while the replica
// lost it too (hung: SIGSTOP, stuck I/O; or cut off from both): it is killed with its children
// (SIGKILL also ends stopped processes), so that it cannot wake up beside the promoted node.
//
// The PID in postmaster.pid is trusted only when that process's working directory is the data
// directory (a postmaster chdirs there) and it is not a zombie: a reused PID is left alone. A
// postmaster that runs with standby.signal in its directory was started as a standby (its
// host's start guard brought it back as one while the promotion went on): not a second primary,
// and left running, so that it streams within seconds instead of being killed and rewound.
//
// Deliberately not here: when to fence (src/core), threads and waiting (the caller runs this
// beside the promotion, never on the tick thread: the host is often the one that is gone).
#pragma once

#include <string>

#include "common/status.h"
#include "common/time.h"
#include "ssh/command_runner.h"

namespace pgfailover::lifecycle {

struct FenceAtRestResult {
  Status status;                   // ok: standby.signal is in place (or no data directory)
  bool killed_postmaster = false;  // a still-running postmaster was killed
  bool no_data_directory = false;  // nothing to fence: no PG_VERSION in the directory
  std::string detail;              // what the command said, one line
};

// The shell command, for the node's shell (sh -c). Exposed for tests.
std::string fenceAtRestCommand(const std::string& data_dir);

// Runs the command through `runner` within `deadline`. An unreachable host comes back as a
// kUnavailable or kDeadlineExceeded status: expected when the host itself is gone.
FenceAtRestResult fenceAtRest(ssh::CommandRunner& runner, const std::string& data_dir,
                              Millis deadline);

}  // namespace pgfailover::lifecycle
