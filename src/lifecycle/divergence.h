// Whether a returning primary diverged from the new primary, decided from the node's own WAL
// and the new primary's timeline history, never from what pgfailover last observed (an async
// primary can have written more after the last probe).
//
// The new primary's history says where its timeline forked from the old one (the switchpoint:
// the first WAL position the old primary's replica did not replay). The old primary diverged
// exactly when it holds a valid WAL record starting at or after that point. Where its valid WAL
// ends is what pg_waldump reports when it reads from the last checkpoint to the first record it
// cannot read: "error in WAL record at A" names the start of the last valid record, the same
// point PostgreSQL's own recovery stops at. A node whose last valid record starts before the
// switchpoint holds a prefix of the new primary's history: it follows the new timeline as a
// standby, with no pg_rewind. Every answer that is not a clear "no" is a rewind.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"

namespace pgfailover::lifecycle {

// One line of a timeline history file: the timeline `parent` ended at `switchpoint`.
struct TimelineFork {
  std::uint32_t parent = 0;
  Lsn switchpoint = 0;
};

// Parses a history file's content ("1\t0/3027AC0\tno recovery target specified\n..."). Comment
// and blank lines are skipped; nullopt when any other line is malformed.
std::optional<std::vector<TimelineFork>> parseTimelineHistory(const std::string& content);

// The start of the last valid record, from pg_waldump's output when it stopped at the end of
// the WAL ("error in WAL record at 0/3027928: invalid record length at 0/3027AC0 ..."). nullopt
// when the output says anything else (a missing file, a damaged start).
std::optional<Lsn> lastValidRecordFromWaldump(const std::string& output);

struct DivergenceInput {
  std::uint32_t node_timeline = 0;        // the node's last checkpoint's timeline
  Lsn checkpoint = 0;                     // where pg_waldump started reading
  std::uint32_t newest_node_history = 0;  // newest NNNNNNNN.history in its pg_wal, 0 if none
  std::string node_history;               // that timeline's own history file (node_timeline > 1)
  std::string waldump_output;
  std::uint32_t primary_timeline = 0;
  std::string primary_history;  // the new primary's history file (TIMELINE_HISTORY)
};

struct DivergenceVerdict {
  bool diverged = true;
  std::string reason;  // one line for the rejoin's log
};

DivergenceVerdict judgeDivergence(const DivergenceInput& input);

}  // namespace pgfailover::lifecycle
