// Rejoin: turn a node that is not a healthy replica (a fenced or crashed old primary, a replica
// that lost its way) into a replica streaming from the current primary, by running plain
// commands on its host through a CommandRunner (ssh or local): stop it, pg_rewind it from the
// primary, point it at the primary (standby.signal, primary_conninfo, primary_slot_name), start
// it, and wait until it streams. When pg_rewind cannot be used or fails, fall back to a fresh
// pg_basebackup into a new data directory, keeping the old one aside until the new one streams.
//
// Nothing needs installing on the node beyond PostgreSQL itself. Passwords never appear in a
// command: replication connections use the passfile on the node's host.
//
// Deliberately not here: deciding that a node needs rejoining (src/core), threads (the caller
// runs this off the tick thread), and SQL against the node (the caller's verify callback).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/time.h"
#include "ssh/command_runner.h"

namespace pgfailover::lifecycle {

// How a node that diverged from the primary gets the primary's data back. PostgreSQL 15's
// pg_rewind copies the changed blocks of the data files but every file of the primary's pg_wal
// whole (retained, recycled and preallocated segments alike), so its cost is bounded by the
// primary's pg_wal (max_wal_size, wal_keep_size, slots), not by the data; a fresh copy costs
// the data. kAuto takes whichever moves fewer bytes; kAlways pg_rewind whenever it can work;
// kNever always a fresh copy (as Patroni's use_pg_rewind: false). A restart or a follow, which
// copies nothing, is taken first under every policy.
enum class RewindPolicy { kAuto, kAlways, kNever };

// What the two ways would copy, read from the primary just before deciding.
struct SourceSizes {
  std::uint64_t pg_wal_bytes = 0;  // sum(size) of pg_ls_waldir(): what pg_rewind copies whole
  std::uint64_t data_bytes = 0;    // sum of pg_database_size(): what pg_basebackup copies
};

struct CopyChoice {
  bool clone = false;
  std::string reason;  // one line for the rejoin's steps, /history and the log
};

// The choice itself, without I/O. `sizes` is empty when they could not be read (`why`): then
// kAuto rewinds, as it always did.
CopyChoice chooseCopy(RewindPolicy policy, const std::optional<SourceSizes>& sizes,
                      const std::string& why_unknown);

struct RejoinPlan {
  std::string node;  // name, also the application_name it streams with
  std::string data_dir;
  std::string bin_dir;
  std::string start_command;  // empty: pg_ctl start
  std::string primary_host;
  int primary_port = 5432;
  std::string replication_user;
  std::string passfile;  // on the node's host
  // TLS to the primary; sslrootcert is a file on the node's host. Empty: libpq's defaults.
  std::string sslmode;
  std::string sslrootcert;
  std::string slot_name;  // empty: no slot
  // The primary's timeline; 0 when unknown. A standby already on it is restarted, not rewound.
  std::uint32_t primary_timeline = 0;
  RewindPolicy rewind = RewindPolicy::kAuto;
  // Free disk to leave beyond a fresh copy's size before re-cloning (the old data stays until
  // the new copy streams, so both must fit).
  std::uint64_t reserve_disk_bytes = 256ull * 1024 * 1024;
};

struct RejoinResult {
  Status status;
  // "restart" (a standby on the primary's timeline), "follow" (an old primary whose WAL ends
  // before the fork: started as a standby, no pg_rewind), "rewind" or "clone"
  std::string method;
  std::string detail;  // what happened, one line per step, for logs and /history
  // Why this method, in one line (/history's reason): what the node's WAL showed against the
  // fork, and why a copy was pg_rewind or a fresh one.
  std::string why;
};

class Rejoiner {
 public:
  // `verify_streaming` polls the node (over libpq) until it streams or `deadline` passes.
  // `progress` is told each step's name as it starts. `stop` aborts between steps.
  Rejoiner(ssh::CommandRunner& runner, std::function<bool(Millis deadline)> verify_streaming,
           std::function<void(const std::string& step)> progress, const std::atomic<bool>& stop)
      : runner_(runner),
        verify_streaming_(std::move(verify_streaming)),
        progress_(std::move(progress)),
        stop_(stop) {}

  // Called right before pg_rewind, and only then: the caller's CHECKPOINT on the primary
  // (pg_rewind reads the primary's timeline from its control file, which names the new timeline
  // only after the first checkpoint since the promotion). Returns an error message or "". A
  // restart or a follow needs no checkpoint, and on a large primary it can take seconds.
  void setBeforeRewind(std::function<std::string()> before_rewind) {
    before_rewind_ = std::move(before_rewind);
  }

  // Reads what pg_rewind and a fresh copy would move (RewindPolicy::kAuto), on the caller's
  // connection to the primary; an empty result and `error` set when that failed. Without it,
  // kAuto rewinds.
  void setSourceSizes(std::function<std::optional<SourceSizes>(std::string& error)> sizes) {
    source_sizes_ = std::move(sizes);
  }

  RejoinResult run(const RejoinPlan& plan, Millis budget);

 private:
  struct Step {
    bool ok = false;
    std::string summary;
    std::string stdout_text;
    int exit_code = -1;
  };
  Step exec(const std::string& name, const std::string& command, Millis deadline);
  // keep_wal_end: an immediate stop at once, so that a running primary writes no shutdown
  // checkpoint past where its WAL ended.
  Status stopServer(const RejoinPlan& plan, bool keep_wal_end = false);
  // Writes standby.signal and the streaming settings into data directory `dir`.
  Status followPrimary(const RejoinPlan& plan, const std::string& dir);
  Status startAndVerify(const RejoinPlan& plan, SteadyTime deadline, Millis verify_budget);
  // Whether the stopped node holds WAL the primary does not (divergence.h); true whenever
  // that cannot be established.
  bool divergedFromPrimary(const RejoinPlan& plan, const std::string& control_data);
  // Why a fresh copy is taken although pg_rewind could work, or "" to rewind: the plan's
  // policy, the primary's sizes, and room on the node's disk for both copies side by side.
  std::string cloneInsteadOfRewind(const RejoinPlan& plan);
  // `du` of `dir` (0 when it does not exist) and the free space beside `beside` (both
  // shell-quoted), after the shell command `prepare` (if any); not ok when that fails.
  Step measureDisk(const std::string& prepare, const std::string& dir, const std::string& beside,
                   long long& used_kb, long long& free_kb);
  Millis remaining(SteadyTime deadline) const;

  ssh::CommandRunner& runner_;
  std::function<bool(Millis)> verify_streaming_;
  std::function<void(const std::string&)> progress_;
  std::function<std::string()> before_rewind_;
  std::function<std::optional<SourceSizes>(std::string&)> source_sizes_;
  std::string divergence_;   // the verdict on the node's WAL against the fork, when judged
  std::string copy_reason_;  // why pg_rewind or a fresh copy, when chosen
  const std::atomic<bool>& stop_;
  std::string log_;
};

// Where a rejoin keeps the node's data while it works on it (the data directory "out of
// service"), and where a fresh copy is made.
std::string rejoinWorkDir(const std::string& data_dir);
std::string rejoinCloneDir(const std::string& data_dir);

// The pieces, exposed for unit tests.
std::string replicationConninfo(const RejoinPlan& plan, bool for_streaming);
// The postgresql.auto.conf lines that make the node follow the primary.
std::string standbySettings(const RejoinPlan& plan);
// A field of pg_controldata's output ("" when absent), and whether pg_rewind can work on a
// data directory with that control data (wal_log_hints on, or data checksums).
std::string controlDataValue(const std::string& output, const std::string& key);
bool canRewind(const std::string& control_data);
// The rejoin's pre-flight prints pg_controldata and then this key with the newest timeline
// history file in pg_wal ("00000003.history", or nothing).
inline constexpr const char* kNewestHistoryKey = "pgfailover newest timeline history";
// The timeline a standby follows, from that output: the newest of its last checkpoint's (which
// lags behind every timeline switch until the next restartpoint, minutes later), its minimum
// recovery point's, and its newest timeline history file's. 0 when none is readable.
std::uint32_t standbyTimeline(const std::string& preflight);

}  // namespace pgfailover::lifecycle
