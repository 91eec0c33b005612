// What pgfailover must not forget across a restart, in one small JSON file written atomically
// (write to a temporary file, fsync, rename, fsync the folder): who the primary is, the timeline
// and system identifier it was seen on, the failover count, and the event history served by
// GET /history. Everything else is derived again from the cluster itself at the first tick.
//
// Deliberately not here: deciding what a loaded state means (the decision does), or locking
// against a second pgfailover (run exactly one per cluster).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/time.h"

namespace pgfailover::runtime {

// One thing that happened to the cluster: failover, switchover, fence, rejoin, promote.
struct HistoryEvent {
  WallTime at{};
  std::string kind;
  std::string node;    // the node acted on
  std::string from;    // for failover / switchover: the old primary
  std::string to;      // the new primary
  std::string result;  // "succeeded", "failed", "started"
  std::string reason;
  Millis duration{0};
  std::uint64_t request_id = 0;  // the operator request it belongs to; 0 for none
};

struct PersistedState {
  std::optional<std::string> primary;  // node name
  std::uint32_t primary_timeline = 0;
  std::uint64_t system_identifier = 0;
  std::uint64_t failovers = 0;
  // A single instance's promotion intent: the node pg_promote is about to be (or was) sent to,
  // written before the call and cleared once the promotion is confirmed or abandoned. A restart
  // finds it and waits for that promotion instead of starting another. (With etcd the intent is
  // a document of its own.)
  std::optional<std::string> promotion_intent;
  std::deque<HistoryEvent> history;  // oldest first, bounded by kMaxHistory

  static constexpr std::size_t kMaxHistory = 200;
  void addEvent(HistoryEvent event);
};

std::string toJson(const PersistedState& state);
std::string historyToJson(const std::deque<HistoryEvent>& history);
// Parses a state file's text; nullopt and `error` set when it is not a valid state file.
std::optional<PersistedState> parseState(const std::string& text, std::string& error);

class StateFile {
 public:
  explicit StateFile(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // Missing file: an empty state (first start). Unreadable or corrupt: an error naming the file.
  std::optional<PersistedState> load(Status& status) const;
  // Atomic replace; on failure the previous file is intact.
  Status save(const PersistedState& state) const;

 private:
  std::string path_;
};

}  // namespace pgfailover::runtime
