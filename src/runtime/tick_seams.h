// The tick loop's seams: everything the loop reads from or does to the world goes through one of
// these, so that a test can drive observe -> decide -> act -> persist with the real decision and
// stand-ins for the rest. The production wiring (clusterSeams) is libpq probers, the ICMP
// ping, the cluster action executor and the system clocks; the snapshot is published through
// core::SnapshotSink.
//
// Deliberately not here: the decision (core::decide, never replaced) and the state file (a real
// file in tests too: its corruption is one of the things tested).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "core/observation.h"
#include "runtime/action_executor.h"
#include "runtime/coordinator.h"

namespace pgfailover::runtime {

// One node as the loop observes it. probe() and pingHost() run on threads of their own, each
// never concurrently with itself; the loop waits for them only up to their deadline (see
// TickLoop::observe).
class NodeProbe {
 public:
  virtual ~NodeProbe() = default;
  // The node's state; bounded by the probe's own deadline (connect + query timeout).
  virtual core::NodeObservation probe(bool write_heartbeat) = 0;
  // Whether the node's host answers one ICMP echo within about a second (probe.icmp).
  virtual bool pingHost() = 0;
  // At a clean stop, on the primary: its lease, so that its guard stands down.
  virtual Status releaseLease() = 0;
  // Who writes the heartbeat row (the acting instance's name and term, with etcd). Called on
  // the loop's thread between probes of this node, never while one runs.
  virtual void setHeartbeatWriter(const std::string& /*instance*/, std::int64_t /*term*/) {}
};

// The loop's clock: one reading per tick goes into the decision (which never reads a clock).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steady() const = 0;
  virtual WallTime wall() const = 0;
};

class SystemClock final : public Clock {
 public:
  SteadyTime steady() const override { return std::chrono::steady_clock::now(); }
  WallTime wall() const override { return std::chrono::system_clock::now(); }
};

struct TickSeams {
  std::vector<std::unique_ptr<NodeProbe>> probes;  // one per configured node, in its order
  std::unique_ptr<ActionExecutor> executor;
  std::unique_ptr<Clock> clock;
  // Which instance acts; none: a single instance, always acting.
  std::unique_ptr<Coordinator> coordinator;
};

// The production wiring: a pg::NodeProber per node (shared by its probe and its SQL actions,
// which the loop never runs at the same time), the node-operation and promotion workers.
// `promotion_finished` is called from the promotion worker when an attempt ends. The coordinator
// is the etcd election when the etcd section is set.
TickSeams clusterSeams(const config::Config& config, Logger& log,
                       std::function<void()> promotion_finished);

}  // namespace pgfailover::runtime
