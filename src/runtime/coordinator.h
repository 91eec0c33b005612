// Which of several pgfailover instances acts (docs/coordination.md), as the tick loop sees it:
// each tick it steps the election, learns whether this instance may act, and guards each batch
// of actions with a write that etcd applies only while this instance still leads. Without an
// `etcd` section the single-instance coordinator always acts and writes nothing: the loop
// behaves as it always did.
//
// The shared memory (the state a successor must know, the promotion intent) is part of this
// seam: with etcd it lives in documents under the prefix; a single instance keeps it in its
// state file, which the loop owns.
//
// Not thread-safe: the loop's thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "core/snapshot.h"

namespace pgfailover::runtime {

// The documents kept under the prefix.
inline constexpr const char* kSharedStateDocument = "state";
inline constexpr const char* kPromotionIntentDocument = "promotion-intent";

// A document to write (a value) or delete (nullopt) in one guarded transaction.
using DocumentWrite = std::pair<std::string, std::optional<nlohmann::json>>;

class Coordinator {
 public:
  virtual ~Coordinator() = default;
  // True when several instances coordinate (the state lives in the shared documents).
  virtual bool shared() const = 0;
  // One election step (campaign or renew) and what this instance now knows of who acts.
  virtual core::CoordinationView step(SteadyTime now) = 0;
  // Whether this instance may act at `now` (its lease cannot have run out in etcd yet).
  virtual bool acting(SteadyTime now) const = 0;
  // This instance's name and term, for the heartbeat row ("" and 0 without etcd).
  virtual std::string instance() const = 0;
  virtual std::int64_t term() const = 0;
  // The write that precedes a batch of actions: applied only while this instance leads. An
  // error (refused: deposed; or no answer) means no action may run.
  virtual Status guard(SteadyTime now, const std::vector<DocumentWrite>& writes) = 0;
  // Reads a shared document; nullopt in `document` when absent.
  virtual Status read(const std::string& name, std::optional<nlohmann::json>& document) = 0;
  // A clean stop: gives up acting at once (the lease is revoked; another instance takes over
  // without waiting for the TTL).
  virtual void resign() = 0;
};

// No etcd: this instance always acts, nothing is shared.
class SingleInstanceCoordinator final : public Coordinator {
 public:
  bool shared() const override { return false; }
  core::CoordinationView step(SteadyTime) override { return {}; }
  bool acting(SteadyTime) const override { return true; }
  std::string instance() const override { return ""; }
  std::int64_t term() const override { return 0; }
  Status guard(SteadyTime, const std::vector<DocumentWrite>&) override { return Status::ok(); }
  Status read(const std::string&, std::optional<nlohmann::json>& document) override {
    document.reset();
    return Status::ok();
  }
  void resign() override {}
};

// The URL this instance's API is reached at (etcd.api_url, or derived from the http section;
// see docs/configuration.md).
std::string apiUrlOf(const config::Config& config);

// The coordinator for `config`: over etcd when the etcd section is set, else a single instance.
std::unique_ptr<Coordinator> makeCoordinator(const config::Config& config, Logger& log);

}  // namespace pgfailover::runtime
