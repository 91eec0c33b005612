#include "cli/commands.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/admin_commands.h"
#include "cli/status_command.h"
#include "common/log.h"
#include "config/config.h"
#include "core/decide.h"
#include "core/snapshot_store.h"
#include "guard/lease_guard.h"
#include "http/http_server.h"
#include "metrics/metrics.h"
#include "runtime/reload.h"
#include "runtime/service_notify.h"
#include "runtime/tick_loop.h"

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

// True when stderr is the journal stream systemd set up ($JOURNAL_STREAM is "device:inode" of
// it), so a redirected stderr keeps timestamps.
bool stderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (stream == nullptr || fstat(2, &st) != 0) return false;
  return std::string(stream) == std::to_string(st.st_dev) + ":" +
                                    std::to_string(static_cast<unsigned long long>(st.st_ino));
}

std::string joined(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& key : keys) out += (out.empty() ? "" : ", ") + key;
  return out;
}

// SIGHUP: re-read the file and apply what can change safely. A file that does not load leaves
// everything as it was: a typo never stops a running daemon.
void reload(const std::string& path, config::Config& current, runtime::TickLoop& loop, Logger& log,
            std::mutex& token_mutex, Secret& token) {
  auto result = config::loadConfigFile(path);
  if (!result.ok()) {
    std::string problems;
    for (const auto& error : result.errors) problems += (problems.empty() ? "" : "; ") + error;
    log.error("reload_failed",
              "configuration " + path +
                  " not reloaded, still running with the previous one: " + problems);
    return;
  }
  auto plan = runtime::planReload(current, *result.config);
  for (const auto& key : plan.refused)
    log.warn("reload_needs_restart",
             key + " changed in " + path + " but needs a restart; still running with the old value",
             {{"key", key}});
  if (plan.applied.empty()) {
    log.info("reloaded", plan.refused.empty()
                             ? "configuration unchanged"
                             : "nothing that can change without a restart changed");
    current = std::move(plan.merged);
    return;
  }
  loop.reloadPolicy(plan.merged);
  log.setLevel(Logger::parseLevel(plan.merged.log.level));
  {
    std::lock_guard lock(token_mutex);
    token = plan.merged.admin.token;
  }
  current = std::move(plan.merged);
  log.info("reloaded", "applied " + joined(plan.applied), {{"applied", joined(plan.applied)}});
}

int run(const std::vector<std::string>& args) {
  Options options;
  if (!parseRunOptions(args, options, true)) return kExitUsage;
  auto loaded = loadOrReport(options.config_path);
  if (!loaded) return kExitUsage;
  const config::Config config = std::move(*loaded);
  const bool json_logs = options.log_format.empty() ? config.log.format == config::LogFormat::kJson
                                                    : options.log_format == "json";
  Logger log(std::cerr, json_logs, Logger::parseLevel(config.log.level));
  log.setJournal(!json_logs && stderrIsJournal());
  runtime::ServiceNotifier notifier;

  // Signals are taken by one thread with sigwait, so no handler runs inside libpq or OpenSSL.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A peer closing a socket mid-write must not kill the daemon.
  signal(SIGPIPE, SIG_IGN);

  core::SnapshotStore snapshots;
  metrics::Metrics metrics;
  runtime::AdminQueue requests;
  runtime::TickLoop loop(config, snapshots, metrics, log, &requests);
  if (Status restored = loop.restoreState(); !restored.isOk()) {
    log.error("state_failed", restored.message());
    return kExitFailure;
  }
  // What a reload compares the file with; `config` itself is what the loop and the probers were
  // built from and never changes.
  config::Config current = config;
  std::mutex token_mutex;
  Secret token = config.admin.token;
  auto server_options = http::serverOptionsFromConfig(config);
  server_options.admin_token_source = [&token_mutex, &token] {
    std::lock_guard lock(token_mutex);
    return token;
  };
  // Admin requests go to the loop's queue; each accepted one is logged (never the token).
  server_options.submit = [&requests, &log,
                           &config](core::AdminRequest request) -> std::optional<std::uint64_t> {
    const auto id = requests.submit(request);
    const std::string target = request.target && *request.target < config.nodes.size()
                                   ? config.nodes[*request.target].name
                                   : "best replica";
    log.warn(
        id ? "admin_request" : "admin_request_dropped",
        std::string(core::toString(request.kind)) + " to " + target +
            (request.force ? " (forced)" : "") +
            (id ? " queued as request " + std::to_string(*id) : ": too many requests waiting"));
    return id;
  };
  // Every admin request and every 401/403 (a wrong token, a missing client certificate) is
  // logged with who asked and the id to find it by; never a header, so never the token. Other
  // requests only at debug: a load balancer's checks would flood the log.
  server_options.access_log = [&log](const http::AccessRecord& record) {
    const bool refused = record.status == 401 || record.status == 403;
    const LogLevel level = record.admin_route || refused
                               ? (refused ? LogLevel::kWarn : LogLevel::kInfo)
                               : LogLevel::kDebug;
    if (!log.enabled(level)) return;
    std::string message = std::string(record.method) + " " + std::string(record.path) + " from " +
                          std::string(record.peer) + ": " + std::to_string(record.status);
    if (record.admin_request_id)
      message += " (queued as request " + std::to_string(*record.admin_request_id) + ")";
    log.log(level, "http_access", message,
            {{"method", std::string(record.method)},
             {"path", std::string(record.path)},
             {"peer", std::string(record.peer)},
             {"status", std::to_string(record.status)},
             {"http_request_id", std::to_string(record.request_id)},
             {"request_id", record.admin_request_id ? std::to_string(*record.admin_request_id)
                                                    : std::string("-")}});
  };
  http::HttpServer server(server_options, snapshots, &metrics);
  if (Status status = server.start(); !status.isOk()) {
    log.error("http_failed", status.message());
    // A certificate or key that cannot be used is a configuration error, like a bad key.
    return status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  const std::string http_address =
      config.http.listen_address + ":" + std::to_string(server.boundPort());
  log.info("started",
           "pgfailover " PGFAILOVER_VERSION " watching " + std::to_string(config.nodes.size()) +
               " nodes",
           {{"cluster", config.cluster_name}, {"http", http_address}});

  // Ready once the API listens and the first tick published a snapshot; then every tick feeds
  // the watchdog.
  const std::string ready_status = "watching " + std::to_string(config.nodes.size()) +
                                   " nodes of " + config.cluster_name + ", HTTP on " + http_address;
  std::atomic<bool> announced{false};
  loop.setTickObserver([&notifier, &announced, &ready_status] {
    if (!announced) {
      notifier.ready(ready_status);
      announced = true;
    }
    notifier.watchdog();
  });

  for (const auto& warning : config::tlsWarnings(config)) log.warn("tls_unverified", warning);

  std::promise<void> loop_done;
  auto loop_finished = loop_done.get_future();
  std::thread loop_thread([&] {
    loop.run();
    loop_done.set_value();
  });

  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    notifier.reloading();
    log.info("reloading", "received SIGHUP: reloading " + options.config_path);
    reload(options.config_path, current, loop, log, token_mutex, token);
    // Before the first tick, READY=1 is still the tick loop's to send.
    if (announced) notifier.reloaded(ready_status);
  }
  notifier.stopping();
  log.info("stopping", std::string("received ") + (received == SIGTERM ? "SIGTERM" : "SIGINT"));
  loop.requestStop();
  server.stop();
  // A tick may be waiting on a hung node's deadline or a promotion; nothing it holds needs
  // saving, so stop promptly rather than wait it out.
  if (loop_finished.wait_for(std::chrono::milliseconds(800)) == std::future_status::ready) {
    loop_thread.join();
    log.info("stopped", "clean shutdown");
    return kExitOk;
  }
  log.info("stopped", "shutdown while a tick was in flight");
  std::cerr.flush();
  std::_Exit(kExitOk);
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
