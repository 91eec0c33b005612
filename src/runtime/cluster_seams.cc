// The tick loop's production seams (runtime/tick_seams.h).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pg/node_prober.h"
#include "runtime/tick_seams.h"
#include "ssh/local_runner.h"
#include "ssh/shell.h"

namespace pgfailover::runtime {

namespace {

class PgNodeProbe final : public NodeProbe {
 public:
  PgNodeProbe(const config::NodeConfig& node, const config::ProbeConfig& probe,
              std::vector<std::string> peers)
      : prober_(node, probe, std::move(peers)), host_(node.host) {}

  core::NodeObservation probe(bool write_heartbeat) override {
    return prober_.probe(write_heartbeat);
  }
  bool pingHost() override {
    ssh::LocalRunner runner;
    return runner.run("ping -n -q -c 1 -W 1 " + ssh::shellQuote(host_), Millis{1500}).succeeded();
  }
  Status releaseLease() override { return prober_.releaseLease(); }
  void setHeartbeatWriter(const std::string& instance, std::int64_t term) override {
    prober_.setHeartbeatWriter(instance, term);
  }

  pg::NodeProber& prober() { return prober_; }

 private:
  pg::NodeProber prober_;
  const std::string host_;
};

// The cluster action executor with the workers it hands work to. Destroyed before the probes
// (TickLoop declares them first): it holds their probers.
class OwningClusterExecutor final : public ActionExecutor {
 public:
  OwningClusterExecutor(const config::Config& config, Logger& log,
                        std::vector<pg::NodeProber*> probers,
                        std::function<void()> promotion_finished)
      : operations_(config, log),
        promotions_(config, log, std::move(promotion_finished)),
        executor_(config, std::move(probers), operations_, promotions_, log) {}
  ~OwningClusterExecutor() override {
    // As the loop always stopped them: the promotion first, then the operations on hosts.
    promotions_.shutdown();
    operations_.shutdown();
  }
  OwningClusterExecutor(const OwningClusterExecutor&) = delete;
  OwningClusterExecutor& operator=(const OwningClusterExecutor&) = delete;

  Status execute(const core::Action& action) override { return executor_.execute(action); }
  std::vector<core::NodeOperation> operationReports() const override {
    return executor_.operationReports();
  }

 private:
  NodeOperations operations_;
  PromotionWorker promotions_;
  ClusterActionExecutor executor_;
};

}  // namespace

TickSeams clusterSeams(const config::Config& config, Logger& log,
                       std::function<void()> promotion_finished) {
  TickSeams seams;
  std::vector<pg::NodeProber*> probers;
  for (const auto& node : config.nodes) {
    std::vector<std::string> peers;
    for (const auto& other : config.nodes)
      if (other.name != node.name) peers.push_back(other.name);
    auto probe = std::make_unique<PgNodeProbe>(node, config.probe, std::move(peers));
    probers.push_back(&probe->prober());
    seams.probes.push_back(std::move(probe));
  }
  seams.executor = std::make_unique<OwningClusterExecutor>(config, log, std::move(probers),
                                                           std::move(promotion_finished));
  seams.clock = std::make_unique<SystemClock>();
  seams.coordinator = makeCoordinator(config, log);
  return seams;
}

}  // namespace pgfailover::runtime
