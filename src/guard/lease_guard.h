// `pgfailover lease-guard`: the node's lease guard, run on every PostgreSQL host beside the
// server for as long as the host runs (docs/lifecycle.md, "Self-fencing"; the rule itself is in
// lease_rule.h). It talks to the local server through one libpq connection (src/pg/connection)
// whose every call has a deadline, as the server's OS user over the unix socket by default.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "common/time.h"

namespace pgfailover::guard {

struct GuardOptions {
  std::string node_dir;  // the node folder of scripts/node (holds pgfailover-node.conf)
  std::string host;      // a socket directory (starts with '/') or a TCP address
  int port = 5432;
  std::string name;
  std::string run_as;  // OS user, when started as root
  std::string user;    // database role; default: the OS user
  std::string dbname = "postgres";
  std::string heartbeat_table = "pgfailover.heartbeat";
  std::string heartbeat_owner;
  Millis interval{500};
  bool once = false;
  bool json_logs = false;
};

// Exit status: 0 nothing to do (or stopped by SIGTERM/SIGINT), 3 fenced the node (--once),
// 1 the server could not be checked (--once) or privileges could not be dropped, 2 bad usage.
int leaseGuardMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Parses the command line and resolves the node folder's settings; false with a message in
// `error` (exit 2) when something is wrong. `help` is set for --help.
bool parseGuardOptions(const std::vector<std::string>& args, GuardOptions& options, bool& help,
                       std::string& error);

extern const char* const kLeaseGuardUsage;

}  // namespace pgfailover::guard
