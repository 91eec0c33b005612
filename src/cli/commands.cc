#include "cli/commands.h"

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/admin_commands.h"
#include "cli/status_command.h"
#include "config/config.h"
#include "core/decide.h"
#include "guard/lease_guard.h"
#include "runtime/daemon.h"

namespace pgfailover::cli {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kUsage = R"(pgfailover - PostgreSQL failover for a primary and its streaming replica

Usage:
  pgfailover run --config FILE [--log-format text|json]
      Probe the nodes, fail over when the primary is really gone, serve the HTTP API.
      SIGTERM/SIGINT stop it (the primary's lease is released); SIGHUP re-reads FILE and applies
      the failover timeouts, log.level and the admin token, naming every other changed key as
      needing a restart (a file that does not load changes nothing). Under systemd it reports
      readiness and feeds the watchdog (sd_notify), and logs with journal priorities.
  pgfailover check-config --config FILE
      Validate FILE and print the effective configuration (secrets redacted).
  pgfailover status [--url URL] [--json]
      Show the cluster as pgfailover sees it (default URL http://127.0.0.1:8008).
  pgfailover switchover [--url URL] [--to NODE] [--token-file FILE] [--dry-run] [--wait SECONDS]
      Planned switchover: fence the primary, let the target catch up, promote it; waits for the
      outcome (default 60 s). The admin token comes from FILE or $PGFAILOVER_TOKEN.
  pgfailover failover [--url URL] [--to NODE] [--force] [--token-file FILE] [--dry-run]
                      [--wait SECONDS]
      Promote a replica now, when the primary is not healthy (or with --force).
  pgfailover history [--url URL] [--limit N] [--json]
      Failovers, switchovers, fences, rejoins and refused requests, oldest first.
  pgfailover lease-guard --dir DIR [--name NAME] [--once] [options]
      The node's lease guard, beside PostgreSQL on every node (lease-guard --help).
  pgfailover print-states
      Print the state machine (docs/state-machine.md) generated from the decision table.
  pgfailover --version | --help

Exit status: 0 success, 1 runtime failure, 2 bad usage or configuration.
)";

struct Options {
  std::string config_path;
  std::string log_format;
};

// Parses `--config FILE` and `--log-format F`; anything else is a usage error.
bool parseRunOptions(const std::vector<std::string>& args, Options& options,
                     bool allow_log_format) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) {
        std::cerr << "pgfailover: " << arg << " needs a value\n";
        return false;
      }
      out = args[++i];
      return true;
    };
    if (arg == "--config" || arg == "-c") {
      if (!value(options.config_path)) return false;
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(9);
    } else if (allow_log_format && arg == "--log-format") {
      if (!value(options.log_format)) return false;
    } else if (allow_log_format && arg.rfind("--log-format=", 0) == 0) {
      options.log_format = arg.substr(13);
    } else {
      std::cerr << "pgfailover: unknown argument '" << arg << "'\n\n" << kUsage;
      return false;
    }
  }
  if (options.config_path.empty()) {
    std::cerr << "pgfailover: --config FILE is required\n";
    return false;
  }
  if (!options.log_format.empty() && options.log_format != "text" && options.log_format != "json") {
    std::cerr << "pgfailover: --log-format must be text or json\n";
    return false;
  }
  return true;
}

std::optional<config::Config> loadOrReport(const std::string& path) {
  auto result = config::loadConfigFile(path);
  if (!result.ok()) {
    std::cerr << "pgfailover: invalid configuration " << path << ":\n";
    for (const auto& error : result.errors) std::cerr << "  " << error << "\n";
    return std::nullopt;
  }
  return std::move(result.config);
}

int checkConfig(const std::vector<std::string>& args) {
  Options options;
  if (!parseRunOptions(args, options, false)) return kExitUsage;
  auto config = loadOrReport(options.config_path);
  if (!config) return kExitUsage;
  std::cout << config::describeConfig(*config) << "\n";
  return kExitOk;
}

int run(const std::vector<std::string>& args) {
  Options options;
  if (!parseRunOptions(args, options, true)) return kExitUsage;
  auto loaded = loadOrReport(options.config_path);
  if (!loaded) return kExitUsage;
  std::optional<bool> json_logs;
  if (!options.log_format.empty()) json_logs = options.log_format == "json";
  switch (runtime::runDaemon(options.config_path, *loaded, json_logs)) {
    case runtime::DaemonExit::kClean:
      return kExitOk;
    case runtime::DaemonExit::kBadConfiguration:
      return kExitUsage;
    case runtime::DaemonExit::kFailed:
      return kExitFailure;
  }
  return kExitFailure;
}

}  // namespace

int runMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string command = args.front();
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (command == "--version" || command == "version") {
    std::cout << "pgfailover " << PGFAILOVER_VERSION << "\n";
    return kExitOk;
  }
  if ((command == "run" || command == "check-config") && rest.size() == 1 &&
      (rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << kUsage;
    return kExitOk;
  }
  if (command == "run") return run(rest);
  if (command == "check-config") return checkConfig(rest);
  if (command == "status") return statusCommandMain(rest, std::cout, std::cerr);
  if (command == "switchover") return switchoverCommandMain(rest, std::cout, std::cerr);
  if (command == "failover") return failoverCommandMain(rest, std::cout, std::cerr);
  if (command == "history") return historyCommandMain(rest, std::cout, std::cerr);
  if (command == "lease-guard") return guard::leaseGuardMain(rest, std::cout, std::cerr);
  if (command == "print-states") {
    if (!rest.empty()) {
      std::cerr << "pgfailover: print-states takes no arguments\n";
      return kExitUsage;
    }
    std::cout << core::renderStateMachineDoc();
    return kExitOk;
  }
  std::cerr << "pgfailover: unknown command '" << command << "'\n\n" << kUsage;
  return kExitUsage;
}

}  // namespace pgfailover::cli
