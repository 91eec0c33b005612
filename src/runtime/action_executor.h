// How the loop's actions reach the cluster: an action (promote, fence, slots, rejoin) goes to
// the node's prober (bounded SQL), the node-operation worker (commands on a node's host) or the
// promotion worker. The loop's only side effects on the cluster go through ActionExecutor.
//
// Deliberately not here: which actions to take (src/core) and how an action's outcome is logged
// (the tick loop).
#pragma once

#include <utility>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "config/config.h"
#include "core/decide.h"
#include "pg/node_prober.h"
#include "runtime/node_operations.h"
#include "runtime/promotion.h"

namespace pgfailover::runtime {

// Runs an action against a node; the loop's only side effects on the cluster go through it, so
// a test can see every action that was taken.
class ActionExecutor {
 public:
  virtual ~ActionExecutor() = default;
  virtual Status execute(const core::Action& action) = 0;
  // How the long operations it started on a node's host (rejoin, fencing at rest) are going, one
  // entry per node: an input of every tick's decision.
  virtual std::vector<core::NodeOperation> operationReports() const = 0;
};

// Executes actions with the node probers (libpq, bounded SQL on reachable nodes), the
// node-operation worker (commands on a node's host) and the promotion worker.
class ClusterActionExecutor : public ActionExecutor {
 public:
  ClusterActionExecutor(const config::Config& config, std::vector<pg::NodeProber*> probers,
                        NodeOperations& operations, PromotionWorker& promotions, Logger& log)
      : config_(config),
        probers_(std::move(probers)),
        operations_(operations),
        promotions_(promotions),
        log_(log) {}
  Status execute(const core::Action& action) override;
  std::vector<core::NodeOperation> operationReports() const override {
    return operations_.reports();
  }

 private:
  const config::Config& config_;
  std::vector<pg::NodeProber*> probers_;
  NodeOperations& operations_;
  PromotionWorker& promotions_;
  Logger& log_;
};

}  // namespace pgfailover::runtime
