#include "runtime/node_operations.h"

#include <cctype>
#include <chrono>
#include <optional>
#include <string_view>

#include "lifecycle/fence_at_rest.h"
#include "lifecycle/rejoin.h"
#include "pg/connection.h"
#include "pg/copy_sizes.h"
#include "pg/errors.h"
#include "pg/node_prober.h"
#include "ssh/local_runner.h"
#include "ssh/ssh_runner.h"

namespace pgfailover::runtime {

namespace {

std::unique_ptr<ssh::CommandRunner> makeRunner(const config::NodeConfig& node) {
  switch (node.exec.kind) {
    case config::HostExecKind::kSsh: {
      ssh::SshTarget target;
      target.host = node.exec.ssh.host;
      target.port = node.exec.ssh.port;
      target.user = node.exec.ssh.user;
      target.private_key_file = node.exec.ssh.private_key_file;
      target.known_hosts_file = node.exec.ssh.known_hosts_file;
      target.connect_timeout = node.exec.ssh.connect_timeout;
      return std::make_unique<ssh::SshRunner>(target);
    }
    case config::HostExecKind::kLocal:
      return std::make_unique<ssh::LocalRunner>(node.exec.run_as);
    case config::HostExecKind::kNone:
      return nullptr;
  }
  return nullptr;
}

std::string slotName(const std::string& node) {
  return config::replicationSlotName(node);
}

// pg_rewind decides whether the histories diverged from the source's control file, which names
// the new timeline only once the checkpoint that follows a promotion has completed (a spread
// one, seconds to minutes later). Before that pg_rewind answers "no rewind required" for a node
// that did diverge, and the node then starts on a history the primary does not have. Hence a
// CHECKPOINT on the source first, as pg_rewind's documentation asks. Needs superuser or
// pg_checkpoint for pgfailover's role; returns the error, or "" when done.
// pgfailover's own connection to the primary, for the statements a rejoin runs there.
std::optional<pg::PgError> connectToSource(const config::NodeConfig& source,
                                           const config::ProbeConfig& probe,
                                           pg::Connection& connection) {
  pg::ConnectOptions options;
  options.host = source.host;
  options.port = source.port;
  options.dbname = source.dbname;
  options.user = source.user;
  options.password = source.password;
  options.sslmode = source.sslmode;
  options.sslrootcert = source.sslrootcert;
  options.sslcert = source.sslcert;
  options.sslkey = source.sslkey;
  options.connect_timeout = probe.connect_timeout;
  options.application_name = "pgfailover-action";
  options.statement_timeout = Millis{0};
  return connection.connect(options, std::chrono::steady_clock::now() + probe.connect_timeout);
}

std::string checkpointSource(const config::NodeConfig& source, const config::ProbeConfig& probe) {
  pg::Connection connection;
  if (auto error = connectToSource(source, probe, connection))
    return pg::redact(error->message, source.password);
  auto done = connection.exec("CHECKPOINT", std::chrono::steady_clock::now() + Millis{60000});
  if (!done.ok()) return pg::redact(done.error->message, source.password);
  return "";
}

}  // namespace

namespace {

std::optional<lifecycle::SourceSizes> readSourceSizes(const config::NodeConfig& source,
                                                      const config::ProbeConfig& probe,
                                                      std::string& error) {
  pg::Connection connection;
  if (auto failed = connectToSource(source, probe, connection)) {
    error = pg::redact(failed->message, source.password);
    return std::nullopt;
  }
  auto sizes =
      pg::readCopySizes(connection, std::chrono::steady_clock::now() + Millis{10000}, error);
  if (!sizes) {
    error = pg::redact(error, source.password);
    return std::nullopt;
  }
  return lifecycle::SourceSizes{sizes->pg_wal_bytes, sizes->data_bytes};
}

}  // namespace

std::string replicationSlotName(const std::string& node) {
  return slotName(node);
}

NodeOperations::NodeOperations(const config::Config& config, Logger& log)
    : config_(config), log_(log), slots_(config.nodes.size()) {
  for (std::size_t i = 0; i < config.nodes.size(); ++i) {
    slots_[i].runner = makeRunner(config.nodes[i]);
    // Whether the node has a host executor, not whether rejoins are on (the decision checks
    // failover.rejoin itself): the replication slots are kept for every node with one, and a
    // slot left behind by a run with rejoins on would otherwise retain WAL without bound.
    slots_[i].report.available = slots_[i].runner != nullptr;
  }
}

NodeOperations::~NodeOperations() {
  shutdown();
}

void NodeOperations::shutdown() {
  stop_ = true;
  for (auto& slot : slots_)
    if (slot.thread.joinable()) slot.thread.join();
}

bool NodeOperations::available(std::size_t node) const {
  return node < slots_.size() && slots_[node].runner != nullptr;
}

ssh::CommandRunner* NodeOperations::runner(std::size_t node) const {
  return node < slots_.size() ? slots_[node].runner.get() : nullptr;
}

std::vector<core::NodeOperation> NodeOperations::reports() const {
  std::lock_guard lock(mutex_);
  std::vector<core::NodeOperation> out;
  for (const auto& slot : slots_) out.push_back(slot.report);
  return out;
}

void NodeOperations::startRejoin(std::size_t node, std::size_t primary) {
  if (!available(node) || stop_) return;
  std::lock_guard lock(mutex_);
  auto& slot = slots_[node];
  if (slot.report.running) return;
  if (slot.thread.joinable()) slot.thread.join();  // a finished one
  slot.report.running = true;
  slot.report.kind = core::OperationKind::kRejoin;
  slot.report.step = "starting";
  slot.report.started_at = std::chrono::steady_clock::now();
  slot.thread = std::thread([this, node, primary] { runRejoin(node, primary); });
}

void NodeOperations::startFenceAtRest(std::size_t node) {
  if (node >= slots_.size() || !slots_[node].runner || stop_) return;
  std::lock_guard lock(mutex_);
  auto& slot = slots_[node];
  if (slot.report.running) return;
  if (slot.thread.joinable()) slot.thread.join();  // a finished one
  slot.report.running = true;
  slot.report.kind = core::OperationKind::kFenceAtRest;
  slot.report.step = "fencing at rest";
  slot.report.started_at = std::chrono::steady_clock::now();
  slot.thread = std::thread([this, node] { runFenceAtRest(node); });
}

// Bounded like a probe: the host is often the one that is gone, and a later rejoin of the node
// must not wait long behind it.
constexpr Millis kFenceAtRestDeadline{3000};

void NodeOperations::runFenceAtRest(std::size_t node) {
  const auto& target = config_.nodes[node];
  auto result = lifecycle::fenceAtRest(*slots_[node].runner, target.data_dir, kFenceAtRestDeadline);
  if (result.status.isOk() && result.killed_postmaster)
    log_.warn("fenced_at_rest",
              "the old primary '" + target.name +
                  "' still ran without answering: killed it (postmaster and children) and wrote "
                  "standby.signal",
              {{"node", target.name}});
  else if (result.status.isOk())
    log_.info("fenced_at_rest", "old primary '" + target.name + "': " + result.detail,
              {{"node", target.name}});
  else
    log_.warn("fence_at_rest_failed",
              "could not fence the old primary '" + target.name + "' at rest (" +
                  result.status.message() +
                  "); if it comes back writable it is fenced over SQL and rejoined",
              {{"node", target.name}});
  std::lock_guard lock(mutex_);
  auto& report = slots_[node].report;
  report.running = false;
  report.step.clear();
}

void NodeOperations::runRejoin(std::size_t node, std::size_t primary) {
  const auto& target = config_.nodes[node];
  const auto& source = config_.nodes[primary];
  lifecycle::RejoinPlan plan;
  plan.node = target.name;
  plan.data_dir = target.data_dir;
  plan.bin_dir = target.bin_dir;
  plan.start_command = target.start_command;
  plan.primary_host = source.replication_host.empty() ? source.host : source.replication_host;
  plan.primary_port = source.replication_port != 0 ? source.replication_port : source.port;
  plan.replication_user = config_.replication.user;
  plan.passfile = config_.replication.passfile;
  plan.sslmode = config_.replication.sslmode;
  plan.sslrootcert = config_.replication.sslrootcert;
  if (config_.replication.slots) plan.slot_name = slotName(target.name);
  plan.rewind = config_.failover.rewind == "always"  ? lifecycle::RewindPolicy::kAlways
                : config_.failover.rewind == "never" ? lifecycle::RewindPolicy::kNever
                                                     : lifecycle::RewindPolicy::kAuto;

  // Streaming is verified over libpq with pgfailover's own credentials, on a connection of
  // this thread's own (the tick's prober is not shared across threads).
  pg::NodeProber verifier(target, config_.probe);
  pg::NodeProber source_prober(source, config_.probe);
  auto verify = [this, &verifier, &source_prober](Millis budget) {
    const auto until = std::chrono::steady_clock::now() + budget;
    while (std::chrono::steady_clock::now() < until && !stop_) {
      auto seen = verifier.probe(false);
      // Streaming on the primary's timeline: a node whose history forked off before its own
      // end of WAL connects, streams the old timeline up to the fork, and stops again, over
      // and over; one "streaming" sample of that loop is not a rejoined node.
      if (seen.streaming()) {
        const auto received = seen.wal_receiver->received_timeline;
        const auto primary = source_prober.probe(false);
        if (received == 0 || !primary.reachable || primary.timeline == 0 ||
            received == primary.timeline)
          return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return false;
  };
  auto progress = [this, node](const std::string& step) {
    std::lock_guard lock(mutex_);
    slots_[node].report.step = step;
  };
  log_.warn("rejoin_started",
            "rejoining '" + target.name + "' as a replica of '" + source.name + "' via " +
                slots_[node].runner->describe(),
            {{"node", target.name}});
  const auto started = std::chrono::steady_clock::now();
  if (const auto seen = source_prober.probe(false); seen.reachable)
    plan.primary_timeline = seen.timeline;
  lifecycle::Rejoiner rejoiner(*slots_[node].runner, verify, progress, stop_);
  rejoiner.setBeforeRewind([&] {
    std::string error = checkpointSource(source, config_.probe);
    if (!error.empty())
      log_.warn("checkpoint_failed",
                "CHECKPOINT on '" + source.name + "' failed; pg_rewind may take it for a node " +
                    "on the old timeline: " + error,
                {{"node", source.name}});
    return error;
  });
  rejoiner.setSourceSizes([&](std::string& error) {
    auto sizes = readSourceSizes(source, config_.probe, error);
    if (!sizes)
      log_.warn("source_sizes_failed",
                "cannot read the pg_wal and database sizes of '" + source.name +
                    "' (grant pg_monitor to pgfailover's role); rewinding: " + error,
                {{"node", source.name}});
    return sizes;
  });
  auto result = rejoiner.run(plan, config_.failover.rejoin_timeout);
  const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  if (result.status.isOk())
    log_.warn("rejoin_succeeded", "'" + target.name + "' streams from '" + source.name + "'",
              {{"node", target.name},
               {"method", result.method},
               {"why", result.why},
               {"took_ms", std::to_string(took.count())},
               {"steps", result.detail}});
  else
    log_.error("rejoin_failed", result.status.message(),
               {{"node", target.name},
                {"method", result.method},
                {"took_ms", std::to_string(took.count())},
                {"steps", result.detail}});
  std::lock_guard lock(mutex_);
  auto& report = slots_[node].report;
  report.running = false;
  report.step.clear();
  report.finished += 1;
  report.last_succeeded = result.status.isOk();
  // Only the ssh session's own connect says this (a dropped session later is a real failure:
  // steps may have run).
  const std::string& message = result.status.message();
  report.last_host_unreachable = !report.last_succeeded &&
                                 result.status.code() == StatusCode::kUnavailable &&
                                 (message.find("unable to connect") != std::string::npos ||
                                  message.find("(connect timeout)") != std::string::npos);
  report.last_method = result.method;
  report.last_why = result.why;
  report.last_error = result.status.message();
  report.last_finished_at = std::chrono::steady_clock::now();
  report.last_duration = took;
}

}  // namespace pgfailover::runtime
