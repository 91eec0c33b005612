// The daemon (`pgfailover run`) put together: the logger, the snapshot store, metrics, the admin
// queue, the tick loop on its own thread, the HTTP server, readiness and the watchdog for
// systemd, and the signals: SIGHUP reloads the file, SIGTERM/SIGINT stop the daemon. Signals
// are taken by one thread with sigwait, so no handler ever runs inside libpq or OpenSSL.
//
// Deliberately not here: argument parsing and loading the file the first time (src/cli, which
// reports a bad file before anything starts), what a tick does (TickLoop).
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace pgfailover::runtime {

enum class DaemonExit {
  kClean,             // stopped by SIGTERM/SIGINT
  kFailed,            // could not start (state file, HTTP listener)
  kBadConfiguration,  // the file loaded but cannot be used (a TLS certificate or key)
};

// Runs until SIGTERM or SIGINT. `config` was loaded from `config_path` (re-read on SIGHUP);
// `json_logs` overrides log.format when set (--log-format). Blocks SIGTERM, SIGINT and SIGHUP
// in the calling thread, so call it before starting any other thread.
DaemonExit runDaemon(const std::string& config_path, const config::Config& config,
                     std::optional<bool> json_logs);

}  // namespace pgfailover::runtime
