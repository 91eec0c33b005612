#include "runtime/promotion.h"

#include <chrono>

#include "pg/node_prober.h"
#include "ssh/local_runner.h"
#include "ssh/shell.h"

namespace pgfailover::runtime {

PromotionWorker::PromotionWorker(const config::Config& config, Logger& log,
                                 std::function<void()> finished)
    : config_(config), log_(log), finished_(std::move(finished)) {}

PromotionWorker::~PromotionWorker() {
  shutdown();
}

void PromotionWorker::shutdown() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) thread_.join();
}

Status PromotionWorker::start(std::size_t node, std::optional<std::size_t> old_primary) {
  if (node >= config_.nodes.size())
    return {StatusCode::kInvalidArgument, "promotion names node index " + std::to_string(node)};
  std::lock_guard lock(mutex_);
  if (running_)
    return {StatusCode::kFailedPrecondition,
            "an earlier promotion attempt is still running (fencing hook or pg_promote)"};
  if (thread_.joinable()) thread_.join();  // a finished one
  running_ = true;
  thread_ = std::thread([this, node, old_primary] { run(node, old_primary); });
  return Status::ok();
}

Status PromotionWorker::runFencingHook(std::size_t node, std::size_t old_primary) {
  const auto& hook = config_.failover.fencing_hook;
  if (hook.empty()) return Status::ok();
  const std::string old_name =
      old_primary < config_.nodes.size() ? config_.nodes[old_primary].name : "";
  const std::string command =
      "PGFAILOVER_OLD_PRIMARY=" + ssh::shellQuote(old_name) +
      " PGFAILOVER_NEW_PRIMARY=" + ssh::shellQuote(config_.nodes[node].name) + " " + hook;
  ssh::LocalRunner runner;
  auto result = runner.run(command, config_.failover.fencing_hook_timeout);
  if (result.succeeded()) return Status::ok();
  return {StatusCode::kFailedPrecondition,
          "fencing hook failed, not promoting: " + ssh::redactForLog(result.summary())};
}

void PromotionWorker::run(std::size_t node, std::optional<std::size_t> old_primary) {
  const auto& target = config_.nodes[node];
  const auto started = std::chrono::steady_clock::now();
  Status status = old_primary ? runFencingHook(node, *old_primary) : Status::ok();
  if (status.isOk()) {
    // A prober of this thread's own: the loop's probers are not shared across threads.
    pg::NodeProber prober(target, config_.probe);
    status = prober.promote(config_.failover.promote_timeout);
  }
  const auto took =
      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count();
  if (status.isOk())
    log_.warn("promote_done", "pg_promote on '" + target.name + "' succeeded",
              {{"node", target.name}, {"took_ms", std::to_string(took)}});
  else
    log_.error("promote_failed", status.message(),
               {{"node", target.name}, {"took_ms", std::to_string(took)}});
  running_ = false;
  if (finished_) finished_();
}

}  // namespace pgfailover::runtime
