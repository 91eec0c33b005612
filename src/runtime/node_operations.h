// Long operations on a node's host (rejoin) run here, off the tick thread, one at a time per
// node, each under its deadline. The tick reads their progress and results as observations
// (core::NodeOperation), so the decision stays pure and the loop never waits on ssh.
//
// Deliberately not here: choosing what to run (src/core) or how (src/lifecycle).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "config/config.h"
#include "core/observation.h"
#include "ssh/command_runner.h"

namespace pgfailover::runtime {

// The physical slot a node streams from: "pgfailover_" + its name, lower case, [a-z0-9_].
std::string replicationSlotName(const std::string& node);

class NodeOperations {
 public:
  NodeOperations(const config::Config& config, Logger& log);
  ~NodeOperations();
  NodeOperations(const NodeOperations&) = delete;
  NodeOperations& operator=(const NodeOperations&) = delete;

  bool available(std::size_t node) const;
  // Starts rejoining `node` as a replica of `primary`; ignored while one runs for that node.
  void startRejoin(std::size_t node, std::size_t primary);
  // Starts fencing the old primary `node` at rest (lifecycle/fence_at_rest.h) on its host,
  // whether or not rejoins are enabled; ignored while an operation runs for that node or when
  // it has no host executor. It occupies the node's slot, so no rejoin can overlap it; it is
  // not a rejoin and leaves the rejoin results alone.
  void startFenceAtRest(std::size_t node);
  // One report per configured node.
  std::vector<core::NodeOperation> reports() const;
  // Asks running operations to stop between steps, and waits for them.
  void shutdown();
  // The node's command runner (ssh or local), or null; for the fencing of other actions.
  ssh::CommandRunner* runner(std::size_t node) const;

 private:
  struct Slot {
    std::unique_ptr<ssh::CommandRunner> runner;
    core::NodeOperation report;
    std::thread thread;
  };
  void runRejoin(std::size_t node, std::size_t primary);
  void runFenceAtRest(std::size_t node);

  const config::Config& config_;
  Logger& log_;
  mutable std::mutex mutex_;
  std::vector<Slot> slots_;
  std::atomic<bool> stop_{false};
};

}  // namespace pgfailover::runtime
