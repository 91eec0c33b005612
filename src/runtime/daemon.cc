#include "runtime/daemon.h"

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

#include "common/log.h"
#include "core/snapshot_store.h"
#include "http/http_server.h"
#include "metrics/metrics.h"
#include "runtime/admin_queue.h"
#include "runtime/reload.h"
#include "runtime/service_notify.h"
#include "runtime/tick_loop.h"

namespace pgfailover::runtime {

namespace {

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
void reload(const std::string& path, config::Config& current, TickLoop& loop, Logger& log,
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
  auto plan = planReload(current, *result.config);
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

}  // namespace

DaemonExit runDaemon(const std::string& config_path, const config::Config& config,
                     std::optional<bool> json_logs_override) {
  const bool json_logs =
      json_logs_override ? *json_logs_override : config.log.format == config::LogFormat::kJson;
  Logger log(std::cerr, json_logs, Logger::parseLevel(config.log.level));
  log.setJournal(!json_logs && stderrIsJournal());
  ServiceNotifier notifier;

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
  AdminQueue requests;
  TickLoop loop(config, snapshots, metrics, log, &requests);
  if (Status restored = loop.restoreState(); !restored.isOk()) {
    log.error("state_failed", restored.message());
    return DaemonExit::kFailed;
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
    return status.code() == StatusCode::kInvalidArgument ? DaemonExit::kBadConfiguration
                                                         : DaemonExit::kFailed;
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
    log.info("reloading", "received SIGHUP: reloading " + config_path);
    reload(config_path, current, loop, log, token_mutex, token);
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
    return DaemonExit::kClean;
  }
  log.info("stopped", "shutdown while a tick was in flight");
  std::cerr.flush();
  std::_Exit(0);
}

}  // namespace pgfailover::runtime
