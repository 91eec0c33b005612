// decide() driven through long random sequences: a simulated cluster (crashes, hangs, cut
// links, lost hosts, disks that stop committing, a node of another cluster, restarts) observed
// tick by tick with a fake clock, operator requests thrown in, and the decision's actions played
// back plausibly (a promotion lands after a delay or never, a fence makes a node read-only, a
// rejoin turns a node into a standby of the primary, the lease guard fences a primary that
// heard from neither pgfailover nor a replica for the lease). After every tick the safety
// invariants are checked against what the simulation knows to be true.
//
// Every sequence comes from one seed, printed with the trace of the last ticks on failure.
// Re-run one: PGFAILOVER_PROPERTY_SEED=<seed>; change how many: PGFAILOVER_PROPERTY_RUNS=<n>.
//
// Decision types are read only through support/decision_view.h.
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/decide.h"
#include "decide_story.h"
#include "support/decision_view.h"

namespace pgfailover::core {
namespace {

using namespace std::chrono_literals;
using view::Act;

constexpr std::uint64_t kClusterId = 7000;
constexpr std::uint64_t kForeignId = 9100;
constexpr Millis kReceiverTimeout{5000};
// A pair of writable nodes pgfailover sees is fenced by the decision of the tick that sees it,
// and the fence lands before the next one. Two ticks allow the one where the stale node came
// back and the one that fences it.
constexpr int kVisiblePairGraceTicks = 2;
// The longest step of the fake clock between two ticks.
constexpr Millis kLongestStep{4000};

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(engine_) < p; }
  int range(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(engine_); }
  Millis millis(long long lo, long long hi) {
    return Millis{std::uniform_int_distribution<long long>(lo, hi)(engine_)};
  }

 private:
  std::mt19937_64 engine_;
};

// The truth about one node, which pgfailover only sees through its probes.
struct SimNode {
  std::string name;
  bool host_up = true;
  bool running = true;  // the postmaster
  bool hung = false;    // stopped (SIGSTOP): silent, takes no writes
  bool cut_from_monitor = false;
  bool cut_from_peers = false;
  bool disk_stuck = false;  // answers, cannot commit
  int starting_ticks = 0;   // answers "starting up" this many more ticks
  bool in_recovery = false;
  bool read_only = false;
  bool self_fenced = false;
  std::uint32_t timeline = 1;
  Lsn lsn = 0x3000000;
  std::uint64_t sysid = kClusterId;
  std::optional<std::size_t> upstream;
  std::optional<SteadyTime> last_heard_upstream;
  // The lease guard's view: the last heartbeat of pgfailover it saw commit, the last reply of
  // a standby streaming from it.
  SteadyTime lease_renewed{};
  // Per peer: when it last replied while streaming from this node.
  std::vector<SteadyTime> replica_contact = std::vector<SteadyTime>(3);
  std::optional<SteadyTime> promote_at;  // a pg_promote that will land then
  std::int64_t postmaster_starts = 1;    // pg_postmaster_start_time(): changes on each start
  NodeOperation op;
  std::optional<SteadyTime> rejoin_done_at;
  std::size_t rejoin_peer = 0;

  bool answersProbes() const {
    return host_up && running && !hung && !cut_from_monitor && starting_ticks == 0;
  }
  // A stuck disk commits nothing; once it works again the guard judges the node afresh.
  bool takesWrites() const {
    return host_up && running && !hung && !disk_stuck && starting_ticks == 0 && !in_recovery &&
           !read_only;
  }
  bool servesPeers() const { return host_up && running && !hung && !cut_from_peers; }
};

struct Violation {
  std::string what;
};

std::optional<std::uint64_t> envNumber(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  return std::strtoull(text, nullptr, 10);
}

// A primary and one replica, the cluster pgfailover is built for; PGFAILOVER_PROPERTY_NODES=3
// explores a second replica (see the report of issue 14 for what it finds).
std::size_t nodeCount() {
  return envNumber("PGFAILOVER_PROPERTY_NODES").value_or(2) >= 3 ? 3 : 2;
}

class Simulation {
 public:
  explicit Simulation(std::uint64_t seed, std::size_t count = nodeCount()) : rng_(seed) {
    for (std::size_t i = 0; i < count; ++i) {
      SimNode n;
      n.name = "pg" + std::to_string(i + 1);
      n.in_recovery = i != 0;
      if (i != 0) n.upstream = 0;
      nodes_.push_back(n);
    }
    choosePolicy();
    for (auto& n : nodes_) {
      n.lease_renewed = now_.steady;
      for (auto& c : n.replica_contact) c = now_.steady;
      n.op.available = policy_.rejoin && rng_.chance(0.8);
    }
  }

  // Runs `steps` ticks; the first violation ends it.
  std::optional<Violation> run(int steps) {
    for (step_ = 0; step_ < steps; ++step_) {
      trace_.emplace_back();
      if (trace_.size() > 60) trace_.pop_front();
      advanceClock();
      worldEvents();
      evolve();
      ClusterView view = observe();
      maybeRequest(view);
      const Memory before = memory_;
      Decision d = decide(memory_, view, now_, policy_);
      ++rules_fired_[view::ruleOf(d)];
      note("decide: " + view::stateName(before.state) + " -> " + view::stateName(d.next.state) +
           " by " + view::ruleOf(d));
      for (const auto& a : view::actionsOf(d))
        if (a.act != Act::kOther)
          note(std::string("  action ") + view::actName(a.act) + " " + nodes_[a.node].name);
      if (auto v = checkActions(before, d, view)) return v;
      applyActions(d);
      memory_ = d.next;
      if (auto v = checkWritable(view)) return v;
    }
    return std::nullopt;
  }

  const std::map<std::string, int>& rulesFired() const { return rules_fired_; }

  std::string trace() const {
    std::ostringstream out;
    out << describePolicy() << "\n";
    for (const auto& line : trace_) out << line << "\n";
    return out.str();
  }

 private:
  void note(const std::string& text) {
    trace_.back() += (trace_.back().empty() ? "" : "\n") + text;
  }

  void choosePolicy() {
    const Millis timeouts[] = {3000ms, 5000ms, 10000ms};
    policy_.confirmed_down_timeout = timeouts[rng_.range(0, 1)];
    policy_.unresponsive_timeout = timeouts[rng_.range(1, 2)];
    policy_.host_lost_timeout = timeouts[rng_.range(0, 1)];
    policy_.icmp = rng_.chance(0.5);
    policy_.starting_up_grace = rng_.millis(5000, 30000);
    policy_.replica_silence = rng_.millis(2000, 6000);
    policy_.promote_timeout = rng_.millis(1000, 10000);
    policy_.promote_attempts = rng_.range(1, 3);
    policy_.heartbeat = rng_.chance(0.9);
    // As the configuration allows it: at least two heartbeats, ending 500 ms before the
    // shortest failover timeout.
    const Millis latest = std::min({policy_.confirmed_down_timeout, policy_.unresponsive_timeout,
                                    policy_.host_lost_timeout}) -
                          500ms;
    policy_.primary_lease = policy_.heartbeat && rng_.chance(0.7)
                                ? rng_.millis(2000, std::max<long long>(2000, latest.count()))
                                : Millis{0};
    policy_.rejoin = rng_.chance(0.7);
    policy_.rejoin_grace = rng_.millis(2000, 10000);
    policy_.rejoin_retry_interval = rng_.millis(5000, 30000);
    policy_.switchover_timeout = rng_.millis(5000, 30000);
    policy_.failback = rng_.chance(0.2);
    if (policy_.failback) policy_.preferred = 0;
    policy_.failback_delay = rng_.millis(5000, 30000);
    policy_.sync_mode = rng_.chance(0.2) ? SyncMode::kOn : SyncMode::kOff;
    policy_.slots = false;
  }

  std::string describePolicy() const {
    std::ostringstream out;
    out << nodes_.size() << " nodes; timeouts " << policy_.confirmed_down_timeout.count() << "/"
        << policy_.unresponsive_timeout.count() << "/" << policy_.host_lost_timeout.count()
        << " ms, lease " << policy_.primary_lease.count() << " ms, icmp " << policy_.icmp
        << ", heartbeat " << policy_.heartbeat << ", replica silence "
        << policy_.replica_silence.count() << " ms, promote timeout "
        << policy_.promote_timeout.count() << " ms x" << policy_.promote_attempts << ", rejoin "
        << policy_.rejoin << ", failback " << policy_.failback << ", sync "
        << toString(policy_.sync_mode);
    return out.str();
  }

  void advanceClock() {
    // Mostly the probe interval; now and then a slow tick.
    Millis step =
        rng_.chance(0.9) ? rng_.millis(500, 1500) : rng_.millis(1500, kLongestStep.count());
    now_.steady += step;
    now_.wall += step;
    std::ostringstream out;
    out << "t=" << std::chrono::duration_cast<Millis>(now_.steady - start_).count() << " ms";
    note(out.str());
  }

  void event(std::size_t i, const std::string& what) { note("  " + nodes_[i].name + ": " + what); }

  void worldEvents() {
    // Bursts of trouble, then quiet stretches that let the cluster settle.
    const double trouble = (step_ / 40) % 2 == 0 ? 0.05 : 0.01;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto& n = nodes_[i];
      if (n.running && n.host_up && rng_.chance(trouble)) {
        n.running = false;
        n.promote_at.reset();  // a crash ends the startup process, and a promotion with it
        event(i, "postgres crashed");
      } else if (!n.running && n.host_up && rng_.chance(0.15)) {
        n.running = true;
        n.hung = false;
        n.starting_ticks = rng_.range(0, 3);
        n.postmaster_starts += 1;
        event(i, "postgres restarted as it was");
      }
      if (!n.hung && n.running && rng_.chance(trouble / 2)) {
        n.hung = true;
        event(i, "hung");
      } else if (n.hung && rng_.chance(0.2)) {
        n.hung = false;
        event(i, "resumed");
      }
      if (!n.cut_from_monitor && rng_.chance(trouble)) {
        n.cut_from_monitor = true;
        event(i, "cut off from pgfailover");
      } else if (n.cut_from_monitor && rng_.chance(0.15)) {
        n.cut_from_monitor = false;
        event(i, "reachable from pgfailover again");
      }
      if (!n.cut_from_peers && rng_.chance(trouble)) {
        n.cut_from_peers = true;
        event(i, "cut off from the other nodes");
      } else if (n.cut_from_peers && rng_.chance(0.15)) {
        n.cut_from_peers = false;
        event(i, "reaches the other nodes again");
      }
      if (n.host_up && rng_.chance(trouble / 3)) {
        n.host_up = false;
        n.running = false;
        n.promote_at.reset();
        event(i, "host lost");
      } else if (!n.host_up && rng_.chance(0.1)) {
        n.host_up = true;
        n.running = true;
        n.hung = false;
        n.starting_ticks = rng_.range(0, 3);
        n.postmaster_starts += 1;
        // A rebooted host's guard starts afresh, a whole lease from now; with the lease on, its
        // start guard (fencing at rest) starts an old primary read-only.
        n.lease_renewed = now_.steady;
        if (!n.in_recovery && policy_.primary_lease > Millis{0}) {
          n.read_only = true;
          event(i, "host back, postgres started read-only by its start guard");
        } else {
          event(i, "host back, postgres started as it was");
        }
      }
      if (!n.disk_stuck && rng_.chance(trouble / 3)) {
        n.disk_stuck = true;
        event(i, "disk stuck");
      } else if (n.disk_stuck && rng_.chance(0.2)) {
        n.disk_stuck = false;
        event(i, "disk works again");
      }
      // Only a node that is down can be re-initialized.
      if (!n.running && n.host_up && n.in_recovery && n.sysid == kClusterId &&
          rng_.chance(trouble)) {
        n.sysid = kForeignId;
        n.promote_at.reset();
        n.last_heard_upstream.reset();
        n.upstream.reset();
        n.timeline = 1;
        event(i, "re-initialized as a standby of another cluster");
      }
    }
  }

  // Promotions landing, rejoins finishing, streaming, WAL, and the lease guard.
  void evolve() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto& n = nodes_[i];
      if (n.promote_at && *n.promote_at <= now_.steady) {
        if (!n.running || !n.host_up) {
          n.promote_at.reset();
          event(i, "promotion lost (postgres went down)");
        } else if (!n.hung && n.in_recovery) {
          n.promote_at.reset();
          n.in_recovery = false;
          n.read_only = false;
          n.self_fenced = false;
          n.timeline += 1;
          n.upstream.reset();
          n.last_heard_upstream.reset();
          n.lease_renewed = now_.steady;
          for (auto& c : n.replica_contact) c = now_.steady;
          event(i, "promoted, timeline " + std::to_string(n.timeline));
        } else if (!n.in_recovery) {
          n.promote_at.reset();
        }
      }
      if (n.rejoin_done_at && *n.rejoin_done_at <= now_.steady) {
        n.rejoin_done_at.reset();
        const auto& p = nodes_[n.rejoin_peer];
        const bool ok = n.host_up && !n.cut_from_peers && p.servesPeers() && !p.in_recovery &&
                        rng_.chance(0.85);
        n.op.running = false;
        n.op.finished += 1;
        n.op.last_succeeded = ok;
        n.op.last_method = "rewind";
        n.op.last_error = ok ? "" : "pg_rewind failed";
        n.op.last_finished_at = now_.steady;
        if (ok) {
          n.running = true;
          n.hung = false;
          n.starting_ticks = 0;
          n.postmaster_starts += 1;
          n.in_recovery = true;
          n.read_only = false;
          n.self_fenced = false;
          n.promote_at.reset();
          n.timeline = p.timeline;
          n.lsn = p.lsn;
          n.sysid = p.sysid;
          n.upstream = n.rejoin_peer;
          n.last_heard_upstream = now_.steady;
          event(i, "rejoined as a standby of " + p.name);
        } else {
          event(i, "rejoin failed");
        }
      }
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto& n = nodes_[i];
      if (n.takesWrites() && !n.disk_stuck) n.lsn += rng_.range(0, 3) * 0x1000;
      if (auto u = linkedUpstream(i)) {
        auto& p = nodes_[*u];
        n.timeline = p.timeline;
        if (rng_.chance(0.9)) n.lsn = std::max(n.lsn, p.lsn);
        n.last_heard_upstream = now_.steady;
        p.replica_contact[i] = now_.steady;
      }
    }
    for (auto& n : nodes_)
      if (n.starting_ticks > 0 && n.host_up && n.running && !n.hung) --n.starting_ticks;
    // The guard keeps its history while it cannot reach its server (crash, hang): a node that
    // comes back writable after its lease ran out is fenced at once.
    if (policy_.primary_lease > Millis{0}) {
      for (std::size_t i = 0; i < nodes_.size(); ++i) {
        auto& n = nodes_[i];
        if (!n.host_up || !n.running || n.hung || n.starting_ticks > 0 || n.in_recovery ||
            n.read_only)
          continue;
        // The heartbeat is older than the lease and one of the peers pgfailover could promote
        // has not replied for as long (guard/lease_rule.h).
        bool peer_silent = false;
        for (std::size_t j = 0; j < nodes_.size(); ++j)
          if (j != i && now_.steady - n.replica_contact[j] >= policy_.primary_lease)
            peer_silent = true;
        if (now_.steady - n.lease_renewed >= policy_.primary_lease && peer_silent) {
          n.read_only = true;
          n.self_fenced = true;
          event(i, "fenced by its lease guard");
        }
      }
    }
  }

  std::optional<std::size_t> linkedUpstream(std::size_t i) const {
    const auto& n = nodes_[i];
    if (!n.in_recovery || !n.upstream || !n.servesPeers() || n.starting_ticks > 0) return {};
    const auto& p = nodes_[*n.upstream];
    if (!p.servesPeers() || p.starting_ticks > 0 || p.in_recovery || p.sysid != n.sysid ||
        p.timeline < n.timeline)
      return {};
    return n.upstream;
  }

  ClusterView observe() {
    ClusterView view;
    const double wall_seconds = std::chrono::duration<double>(now_.wall.time_since_epoch()).count();
    std::string line = "  seen:";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto& n = nodes_[i];
      NodeObservation o;
      o.name = n.name;
      o.probed = true;
      o.probed_at = now_.steady;
      if (!n.answersProbes()) {
        o.reachable = false;
        if (!n.host_up || n.cut_from_monitor || n.hung)
          o.failure = ProbeFailure::kTimeout;
        else if (!n.running)
          o.failure = ProbeFailure::kRefused;
        else
          o.failure = ProbeFailure::kStartingUp;
        if (n.running && n.host_up && n.starting_ticks > 0 && !n.cut_from_monitor && !n.hung)
          o.failure = ProbeFailure::kStartingUp;
        o.error = toString(o.failure);
        if (policy_.icmp) o.host_answers_ping = n.host_up && !n.cut_from_monitor;
        line += " " + n.name + "=" + toString(o.failure);
      } else {
        o.reachable = true;
        o.in_recovery = n.in_recovery;
        o.read_only = n.read_only;
        o.self_fenced = n.self_fenced;
        o.system_identifier = n.sysid;
        o.postmaster_start_us = n.postmaster_starts;
        o.timeline = n.timeline;
        o.wal_receiver_timeout = kReceiverTimeout;
        if (policy_.icmp) o.host_answers_ping = true;
        if (!n.in_recovery) {
          o.current_lsn = n.lsn;
          const bool commits = !n.read_only && !n.disk_stuck;
          o.heartbeat_written = policy_.heartbeat && commits;
          if (o.heartbeat_written) {
            o.heartbeat_unix_seconds = wall_seconds;
            n.lease_renewed = now_.steady;
          }
          if (!n.read_only && n.disk_stuck) {
            o.failure = ProbeFailure::kCannotCommit;
            o.error = "cannot commit";
          }
          for (std::size_t j = 0; j < nodes_.size(); ++j)
            if (j != i && linkedUpstream(j) == i) {
              ReplicationPeer peer;
              peer.application_name = nodes_[j].name;
              peer.state = "streaming";
              peer.sync_state = policy_.sync_mode == SyncMode::kOff ? "async" : "sync";
              peer.replay_lsn = nodes_[j].lsn;
              o.replication.push_back(peer);
            }
        } else {
          o.receive_lsn = n.lsn;
          o.replay_lsn = n.lsn;
          o.heartbeat_unix_seconds = wall_seconds - 0.5;
          if (linkedUpstream(i)) {
            o.wal_receiver = WalReceiver{
                "streaming", "127.0.0.1", 5432, n.timeline, rng_.range(0, 800) / 1000.0, {}};
          } else if (n.last_heard_upstream &&
                     now_.steady - *n.last_heard_upstream < kReceiverTimeout) {
            // The receiver has not noticed yet: still "streaming", its last message ageing.
            const double age =
                std::chrono::duration<double>(now_.steady - *n.last_heard_upstream).count();
            o.wal_receiver = WalReceiver{"streaming", "127.0.0.1", 5432, n.timeline, age, {}};
          }
        }
        line += " " + n.name + "=" + (n.in_recovery ? "standby" : "primary") + "/tl" +
                std::to_string(n.timeline) + (n.read_only ? "/ro" : "") +
                (n.self_fenced ? "/self" : "") + (n.disk_stuck ? "/stuck" : "") +
                (o.wal_receiver ? "/recv" : "") + (n.sysid != kClusterId ? "/foreign" : "");
      }
      view.nodes.push_back(o);
      if (o.reachable) unconfirmed_[i] = false;
      if (o.reachable && o.writable() && o.heartbeat_written) heartbeat_seen_[i] = now_.steady;
    }
    for (const auto& n : nodes_) view.operations.push_back(n.op);
    note(line);
    return view;
  }

  void maybeRequest(ClusterView& view) {
    if (!rng_.chance(0.02)) return;
    const bool switchover = rng_.chance(0.5);
    std::optional<std::size_t> target;
    // Now and then a node of another cluster, which no request may promote; now and then an
    // index out of range.
    if (rng_.chance(0.7)) target = static_cast<std::size_t>(rng_.range(0, nodes_.size()));
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].sysid != kClusterId && rng_.chance(0.5)) target = i;
    const bool force = !switchover && rng_.chance(0.5);
    view.request = view::makeRequest(switchover ? view::Ask::kSwitchover : view::Ask::kFailover,
                                     target, force, ++request_id_);
    note(std::string("  operator asks a ") + (switchover ? "switchover" : "failover") +
         (force ? " (forced)" : "") + " to " + (target ? std::to_string(*target) : "any"));
  }

  std::optional<Violation> fail(const std::string& what) {
    note("VIOLATION: " + what);
    return Violation{what};
  }

  std::optional<Violation> checkActions(const Memory& before, const Decision& d,
                                        const ClusterView& view) {
    for (const auto& a : view::actionsOf(d)) {
      if (a.act == Act::kPromote) {
        const auto& target = nodes_[a.node];
        if (outstanding_ && *outstanding_ != a.node)
          return fail("promotion of " + target.name + " while the promotion of " +
                      nodes_[*outstanding_].name + " is neither confirmed nor abandoned");
        if (known_id_ && target.sysid != *known_id_)
          return fail("promotion of " + target.name + ", of another cluster (system identifier)");
        // A retry carries on the promotion it repeats.
        const auto origin = outstanding_ ? outstanding_origin_ : view::originOf(d);
        outstanding_origin_ = origin;
        if (origin == view::PromoteOrigin::kOwnFailover) {
          if (auto u = linkedUpstream(a.node))
            return fail("promotion of " + target.name + " while it still hears the primary " +
                        nodes_[*u].name);
          if (policy_.primary_lease > Millis{0}) {
            for (std::size_t j = 0; j < nodes_.size(); ++j) {
              if (j == a.node || !heartbeat_seen_[j]) continue;
              if (now_.steady < *heartbeat_seen_[j] + policy_.primary_lease)
                return fail("promotion of " + target.name + " before the lease of " +
                            nodes_[j].name + " ran out");
            }
            for (std::size_t j = 0; j < nodes_.size(); ++j)
              if (j != a.node && nodes_[j].takesWrites())
                return fail("promotion of " + target.name + " while " + nodes_[j].name +
                            " still takes writes with the lease on (its guard did not fence it)");
          }
        }
        outstanding_ = a.node;
        // Whether it landed or not, pgfailover cannot tell until it sees the node again.
        unconfirmed_[a.node] = true;
      } else if (a.act == Act::kUnfence) {
        // Lifting the fence renews the lease in the guard's eyes.
        heartbeat_seen_[a.node] = now_.steady;
        for (std::size_t j = 0; j < nodes_.size(); ++j) {
          if (j == a.node) continue;
          if (unconfirmed_[j])
            return fail("unfence of " + nodes_[a.node].name + " while the promotion of " +
                        nodes_[j].name + " may have happened out of sight");
          if (!nodes_[j].in_recovery && nodes_[j].timeline > nodes_[a.node].timeline &&
              view.nodes[j].reachable)
            return fail("unfence of " + nodes_[a.node].name + " while " + nodes_[j].name +
                        " was promoted after it (timeline " + std::to_string(nodes_[j].timeline) +
                        ")");
        }
      }
    }
    (void)before;
    if (!d.next.promoting) outstanding_.reset();
    // The cluster is the one pgfailover last saw take writes; before any, it cannot know.
    for (const auto& o : view.nodes)
      if (o.reachable && o.writable()) known_id_ = o.system_identifier;
    return std::nullopt;
  }

  void applyActions(const Decision& d) {
    for (const auto& a : view::actionsOf(d)) {
      auto& n = nodes_[a.node];
      switch (a.act) {
        case Act::kPromote: {
          if (!n.in_recovery || n.promote_at) break;
          const bool lands = n.answersProbes() ? rng_.chance(0.85) : rng_.chance(0.3);
          if (lands)
            n.promote_at = now_.steady + rng_.millis(0, policy_.promote_timeout.count() * 3 / 2);
          break;
        }
        case Act::kFence:
          if (n.answersProbes()) n.read_only = true;
          break;
        case Act::kUnfence:
          // The guard gives a node that became writable again a whole lease before it may
          // fence it (guard/lease_rule.h), as if pgfailover's heartbeat had committed now.
          if (n.answersProbes()) {
            n.read_only = false;
            n.self_fenced = false;
            n.lease_renewed = now_.steady;
          }
          break;
        case Act::kRejoin:
          if (n.op.available && !n.op.running) {
            n.op.running = true;
            n.op.kind = OperationKind::kRejoin;
            n.op.step = "rewind";
            n.op.started_at = now_.steady;
            n.rejoin_done_at = now_.steady + rng_.millis(2000, 15000);
            n.rejoin_peer = a.peer;
            // The rejoin stops the node first.
            n.running = false;
            n.promote_at.reset();
            n.hung = false;
          }
          break;
        case Act::kOther:
          break;
      }
    }
  }

  std::optional<Violation> checkWritable(const ClusterView& view) {
    std::vector<std::size_t> writable;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].takesWrites()) writable.push_back(i);
    if (writable.size() < 2) {
      visible_pair_ticks_ = 0;
      pair_since_.reset();
      return std::nullopt;
    }
    (void)view;
    bool all_visible = true;
    for (auto i : writable) all_visible = all_visible && nodes_[i].answersProbes();
    visible_pair_ticks_ = all_visible ? visible_pair_ticks_ + 1 : 0;
    if (!pair_since_) pair_since_ = now_.steady;
    std::string names;
    for (auto i : writable) names += (names.empty() ? "" : " and ") + nodes_[i].name;
    if (visible_pair_ticks_ > kVisiblePairGraceTicks)
      return fail(names + " both take writes, both seen by pgfailover, for " +
                  std::to_string(visible_pair_ticks_) + " ticks");
    // With the lease on, a writable old primary out of sight is fenced by its guard within the
    // lease: only an operator's failover may promote before, and it lasts a lease at most.
    if (policy_.primary_lease > Millis{0} &&
        now_.steady - *pair_since_ > policy_.primary_lease + 500ms + kLongestStep)
      return fail(names + " both take writes, longer than the lease");
    return std::nullopt;
  }

  Rng rng_;
  std::vector<SimNode> nodes_;
  Policy policy_;
  Memory memory_;
  Now now_{SteadyTime{} + 1h, WallTime{} + std::chrono::hours(24 * 365 * 56)};
  SteadyTime start_ = SteadyTime{} + 1h;
  int step_ = 0;
  std::uint64_t request_id_ = 0;
  std::deque<std::string> trace_;
  std::map<std::string, int> rules_fired_;
  // The checker's own bookkeeping, from what it fed decide() and what it knows to be true.
  std::optional<std::size_t> outstanding_;  // a promotion not yet confirmed or abandoned
  view::PromoteOrigin outstanding_origin_ = view::PromoteOrigin::kOwnFailover;
  std::vector<bool> unconfirmed_ = std::vector<bool>(3, false);  // promoted, not seen since
  std::vector<std::optional<SteadyTime>> heartbeat_seen_ =
      std::vector<std::optional<SteadyTime>>(3);
  std::optional<std::uint64_t> known_id_;
  int visible_pair_ticks_ = 0;
  std::optional<SteadyTime> pair_since_;
};

constexpr int kSteps = 400;

TEST(DecideProperty, RandomSequencesKeepTheSafetyInvariants) {
  std::vector<std::uint64_t> seeds;
  if (auto one = envNumber("PGFAILOVER_PROPERTY_SEED")) {
    seeds.push_back(*one);
  } else {
    // A new set of sequences each run, from a printed base; the same base replays them all.
    const std::uint64_t base =
        envNumber("PGFAILOVER_PROPERTY_BASE").value_or(std::random_device{}());
    const std::uint64_t runs = envNumber("PGFAILOVER_PROPERTY_RUNS").value_or(2000);
    for (std::uint64_t i = 0; i < runs; ++i) seeds.push_back(base * 1000003u + i);
  }
  std::map<std::string, int> fired;
  for (auto seed : seeds) {
    Simulation sim(seed);
    auto violation = sim.run(kSteps);
    if (violation) {
      FAIL() << violation->what << "\nre-run: PGFAILOVER_PROPERTY_SEED=" << seed
             << " ctest --test-dir build -R DecideProperty --output-on-failure\n"
             << sim.trace();
    }
    for (const auto& [rule, count] : sim.rulesFired()) fired[rule] += count;
  }
  if (seeds.size() < 1000) return;
  // The sequences reach the rows that act; a simulation that never got there would pass
  // vacuously.
  for (const char* rule :
       {"promote-replica", "promotion-confirmed", "promotion-retry", "promotion-gave-up",
        "promotion-abandoned", "operator-failover", "operator-switchover", "switchover-promote",
        "switchover-aborted", "fence-stale-writable", "unfence-self-fenced-primary",
        "failover-vetoed", "rejoin-node", "no-primary"})
    EXPECT_GT(fired[rule], 0) << rule << " never fired in " << seeds.size() << " sequences";
}

// Found with PGFAILOVER_PROPERTY_NODES=3: a second standby still on the old timeline (it followed
// the old primary, which is gone) was promoted when the new primary failed. PostgreSQL numbers
// its new timeline like the primary's (its own + 1): two histories on one timeline, which no
// rule can untangle when the other comes back.
TEST(DecideProperty, StandbyThatNeverFollowedThePromotionIsNotPromoted) {
  using namespace story;
  Story s;
  auto new_primary = primaryNode("pg2", 2);
  auto follower = replicaNode("pg1");
  follower.timeline = 2;
  follower.wal_receiver->received_timeline = 2;
  auto stranded = replicaNode("pg3", false);  // timeline 1, no WAL receiver
  for (int i = 0; i < 3; ++i) s.tick({follower, new_primary, stranded});
  ASSERT_EQ(s.memory().primary, 1u);
  Decision d;
  for (int i = 0; i < 15; ++i) {
    d = s.tick({downNode("pg1"), downNode("pg2"), stranded});
    for (const auto& a : view::actionsOf(d))
      EXPECT_NE(a.act, view::Act::kPromote) << "tick " << i << ": " << d.reason;
  }
  EXPECT_EQ(d.next.state, ClusterState::kFailoverVetoed) << d.reason;
}

// Found with PGFAILOVER_PROPERTY_NODES=3 (seed 1353272040803948 before the fix): a split brain
// seen while a promotion was pending left the cluster state, but not the awaited promotion, in
// memory. Ever after, a switchover's promotion ran while the stale one was "in flight", the
// next failover would re-promote the stale node instead of the vetted candidate, and a
// self-fenced primary was never given its writes back.
TEST(DecideProperty, PromotionLeftThroughASplitBrainIsForgotten) {
  using namespace story;
  Policy policy;
  policy.primary_lease = 2000ms;
  Story s(policy);
  for (int i = 0; i < 2; ++i) s.tick({primaryNode("pg1"), replicaNode("pg2"), replicaNode("pg3")});
  Decision d;
  for (int i = 0; i < 10 && d.next.state != ClusterState::kPromoting; ++i)
    d = s.tick({downNode("pg1"), replicaNode("pg2", false), replicaNode("pg3", false)});
  ASSERT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
  // pg1 is back and a restored copy of it takes writes on its timeline too.
  d = s.tick({primaryNode("pg1"), replicaNode("pg2", false), primaryNode("pg3")});
  ASSERT_EQ(d.next.state, ClusterState::kSplitBrain) << d.reason;
  // The operator stopped the copy; the promotion never happened.
  d = s.tick({primaryNode("pg1"), replicaNode("pg2"), downNode("pg3")});
  EXPECT_EQ(d.next.state, ClusterState::kHealthy) << d.reason;
  EXPECT_FALSE(s.memory().promoting.has_value());
  auto fenced = primaryNode("pg1");
  fenced.read_only = true;
  fenced.self_fenced = true;
  fenced.heartbeat_written = false;
  d = s.tick({fenced, replicaNode("pg2"), downNode("pg3")});
  bool unfenced = false;
  for (const auto& a : view::actionsOf(d)) unfenced = unfenced || a.act == view::Act::kUnfence;
  EXPECT_TRUE(unfenced) << view::ruleOf(d) << ": " << d.reason;
}

bool promotes(const Decision& d) {
  for (const auto& a : view::actionsOf(d))
    if (a.act == view::Act::kPromote) return true;
  return false;
}

// Found by the random sequences (before the fix): the primary came back and committed while a
// promotion was pending, then went silent again; the overdue promotion was retried at once,
// before the lease that heartbeat granted ran out, while its guard had not fenced it yet.
TEST(DecideProperty, RetriedPromotionWaitsForALeaseRenewedMeanwhile) {
  using namespace story;
  Policy policy;
  policy.primary_lease = 2000ms;
  policy.promote_timeout = 2000ms;
  Story s(policy);
  for (int i = 0; i < 2; ++i) s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  for (int i = 0; i < 10 && !promotes(d); ++i)
    d = s.tick({downNode("pg1"), replicaNode("pg2", false)});
  ASSERT_TRUE(promotes(d)) << d.reason;
  d = s.tick({primaryNode("pg1"), replicaNode("pg2", false)}, 500ms);
  ASSERT_EQ(d.next.state, ClusterState::kPromoting) << d.reason;
  const SteadyTime renewed = s.now().steady;
  for (int i = 0; i < 6; ++i) {
    d = s.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", false)}, 500ms);
    if (s.now().steady < renewed + policy.primary_lease + 500ms) {
      EXPECT_FALSE(promotes(d)) << "retried " << elapsed(renewed, s.now().steady).count()
                                << " ms after the lease was renewed: " << d.reason;
    }
  }
  // Once the lease ran out, the retry goes ahead.
  EXPECT_EQ(s.memory().promote_attempts, 2) << d.reason;
}

// Found by the random sequences (before the fix): a switchover's target was promoted after all
// (a late pg_promote) while the switchover was being aborted; the abort unfenced the old
// primary although the target was now the primary on a newer timeline.
TEST(DecideProperty, AbortedSwitchoverKeepsTheOldPrimaryFencedOnceTheTargetWasPromoted) {
  using namespace story;
  Story s;
  for (int i = 0; i < 2; ++i) s.tick({primaryNode("pg1"), replicaNode("pg2")});
  ClusterView view{{primaryNode("pg1"), replicaNode("pg2")}};
  view.request = view::makeRequest(view::Ask::kSwitchover, 1, false, 1);
  Decision d = s.tickView(view);
  ASSERT_EQ(d.next.state, ClusterState::kSwitchingOver) << d.reason;
  auto fenced = primaryNode("pg1");
  fenced.read_only = true;
  fenced.heartbeat_written = false;
  d = s.tick({fenced, primaryNode("pg2", 2)});
  for (const auto& a : view::actionsOf(d))
    EXPECT_FALSE(a.act == view::Act::kUnfence && a.node == 0)
        << view::ruleOf(d) << ": " << d.reason;
  EXPECT_EQ(s.memory().primary, 1u);
}

// Found by the random sequences (before the fix), with a lease longer than the replica's
// silence: the replica, out of pgfailover's sight, kept replying to the primary, which was out
// of sight too, so the primary's guard did not fence it. Back in sight, the replica said when it
// last heard the primary; the promotion did not wait a lease from then.
TEST(DecideProperty, PromotionWaitsForTheLeaseAReplicaOutOfSightRenewed) {
  using namespace story;
  Policy policy;
  policy.primary_lease = 4000ms;
  policy.replica_silence = 3000ms;
  Story s(policy);
  for (int i = 0; i < 2; ++i) s.tick({primaryNode("pg1"), replicaNode("pg2")});
  Decision d;
  for (int i = 0; i < 20; ++i)
    d = s.tick({downNode("pg1", ProbeFailure::kTimeout), downNode("pg2", ProbeFailure::kTimeout)});
  ASSERT_EQ(d.next.state, ClusterState::kFailoverVetoed) << d.reason;
  // Heard the primary 3.6 s ago: past its silence threshold (3.5 s), within the lease (4 s).
  d = s.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", true, 3.6)}, 100ms);
  EXPECT_FALSE(promotes(d)) << d.reason;
  // Its receiver gave up; a lease after it last reported streaming, the promotion goes ahead.
  for (int i = 0; i < 5 && !promotes(d); ++i)
    d = s.tick({downNode("pg1", ProbeFailure::kTimeout), replicaNode("pg2", false)});
  EXPECT_TRUE(promotes(d)) << d.reason;
}

// Found with PGFAILOVER_PROPERTY_NODES=3 (seed 3004497199464621 before the fix): an overdue
// promotion was retried on the node it was first sent to, which had vanished meanwhile (and came
// back re-initialized for another cluster), because the checks had passed for the other
// standby, the one that is now the best candidate.
TEST(DecideProperty, RetryPromotesOnlyTheNodeTheChecksWereMadeFor) {
  using namespace story;
  Policy policy;
  policy.promote_timeout = 2000ms;
  Story s(policy);
  for (int i = 0; i < 2; ++i)
    s.tick({primaryNode("pg1"), replicaNode("pg2"), replicaNode("pg3", true, 0.2, 0x3000000)});
  Decision d;
  for (int i = 0; i < 10 && !promotes(d); ++i)
    d = s.tick(
        {downNode("pg1"), replicaNode("pg2", false), replicaNode("pg3", false, 0.2, 0x3000000)});
  ASSERT_TRUE(promotes(d)) << d.reason;
  ASSERT_EQ(s.memory().promoting, 1u);
  for (int i = 0; i < 5; ++i) {
    d = s.tick({downNode("pg1"), downNode("pg2", ProbeFailure::kTimeout),
                replicaNode("pg3", false, 0.2, 0x3000000)});
    for (const auto& a : view::actionsOf(d)) {
      EXPECT_FALSE(a.act == view::Act::kPromote && a.node == 1)
          << "re-promoted pg2, unseen: " << d.reason;
      // Nor pg3: pg2's promotion may still land.
      EXPECT_FALSE(a.act == view::Act::kPromote && a.node == 2)
          << "promoted pg3 while pg2's promotion may land: " << d.reason;
    }
  }
}

// Found with PGFAILOVER_PROPERTY_NODES=3 (these seeds before the fix): pg_promote to one standby
// timed out (its disk was stuck) and the decision gave up; the standby was then seen in
// recovery, which made the decision forget the promotion, and once it went out of sight another
// standby was promoted while the first one's promote request, still pending, landed too. A
// pending request goes only with its node's postmaster (PostgreSQL removes it at start).
TEST(DecideProperty, PendingPromoteRequestBlocksAnotherPromotionUntilItsNodeRestarts) {
  for (std::uint64_t seed : {33000372ull, 11003359ull, 22003765ull}) {
    Simulation sim(seed, 3);
    auto violation = sim.run(kSteps);
    EXPECT_FALSE(violation.has_value())
        << "seed " << seed << ": " << (violation ? violation->what : "") << "\n"
        << sim.trace();
  }
}

}  // namespace
}  // namespace pgfailover::core
