// SIGHUP: what of a re-read configuration file the running daemon can take without a restart.
// The safe subset is what only the decision's policy, the logger and the admin check read:
// failover timeouts, log.level, the admin token. Everything else (the node list, ports, probe
// settings the probers hold, the lease they write) needs a restart; a reload names each such
// key and keeps its running value.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace pgfailover::runtime {

struct ReloadPlan {
  // The running configuration with the safe changes applied; what the daemon runs with next.
  config::Config merged;
  std::vector<std::string> applied;  // dotted keys taken, e.g. "failover.unresponsive_timeout_ms"
  std::vector<std::string> refused;  // dotted keys that changed but need a restart
};

// Compares the running configuration with the newly loaded (already valid) one.
ReloadPlan planReload(const config::Config& running, const config::Config& next);

}  // namespace pgfailover::runtime
