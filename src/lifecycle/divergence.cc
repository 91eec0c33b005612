#include "lifecycle/divergence.h"

#include <cstdlib>
#include <sstream>

namespace pgfailover::lifecycle {

namespace {

std::optional<std::uint32_t> parseTimeline(const std::string& text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  const unsigned long long value = std::strtoull(text.c_str(), nullptr, 10);
  if (value == 0 || value > 0xFFFFFFFFull) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

}  // namespace

std::optional<std::vector<TimelineFork>> parseTimelineHistory(const std::string& content) {
  std::vector<TimelineFork> forks;
  std::istringstream lines(content);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line.substr(first));
    std::string parent_text, lsn_text;
    if (!(fields >> parent_text >> lsn_text)) return std::nullopt;
    const auto parent = parseTimeline(parent_text);
    const auto switchpoint = parseLsn(lsn_text);
    if (!parent || !switchpoint) return std::nullopt;
    // PostgreSQL writes the ancestors in order, each older than the next.
    if (!forks.empty() &&
        (*parent <= forks.back().parent || *switchpoint < forks.back().switchpoint))
      return std::nullopt;
    forks.push_back({*parent, *switchpoint});
  }
  return forks;
}

std::optional<Lsn> lastValidRecordFromWaldump(const std::string& output) {
  static constexpr std::string_view kMarker = "error in WAL record at ";
  const auto at = output.rfind(kMarker);
  if (at == std::string::npos) return std::nullopt;
  const auto start = at + kMarker.size();
  const auto colon = output.find(':', start);
  if (colon == std::string::npos) return std::nullopt;
  const auto lsn = parseLsn(output.substr(start, colon - start));
  if (!lsn || *lsn == 0) return std::nullopt;
  return lsn;
}

DivergenceVerdict judgeDivergence(const DivergenceInput& in) {
  auto rewind = [](std::string why) { return DivergenceVerdict{true, std::move(why)}; };
  if (in.node_timeline == 0 || in.primary_timeline <= in.node_timeline)
    return rewind("the node's timeline " + std::to_string(in.node_timeline) +
                  " is not older than the primary's " + std::to_string(in.primary_timeline));
  // A node promoted after its last checkpoint writes on a newer timeline than the checkpoint
  // names, and pg_waldump reading the checkpoint's timeline would stop early.
  if (in.newest_node_history > in.node_timeline)
    return rewind("the node switched to timeline " + std::to_string(in.newest_node_history) +
                  " after its last checkpoint");
  const auto primary = parseTimelineHistory(in.primary_history);
  if (!primary || primary->empty()) return rewind("the primary's timeline history is unreadable");
  const TimelineFork* fork = nullptr;
  for (const auto& entry : *primary)
    if (entry.parent == in.node_timeline) fork = &entry;
  if (fork == nullptr)
    return rewind("timeline " + std::to_string(in.node_timeline) +
                  " is not in the primary's history");
  // The node's own ancestry must be the primary's up to the node's timeline: the same numbers
  // forked at the same points (two nodes promoted apart can reach the same number).
  if (in.node_timeline > 1) {
    const auto own = parseTimelineHistory(in.node_history);
    if (!own || own->empty()) return rewind("the node's own timeline history is unreadable");
    if (own->size() > primary->size())
      return rewind("the node's history is longer than the primary's");
    for (std::size_t i = 0; i < own->size(); ++i)
      if ((*own)[i].parent != (*primary)[i].parent ||
          (*own)[i].switchpoint != (*primary)[i].switchpoint)
        return rewind("the node's timeline history differs from the primary's");
  }
  const auto last = lastValidRecordFromWaldump(in.waldump_output);
  if (!last) return rewind("cannot tell where the node's WAL ends");
  if (*last < in.checkpoint) return rewind("the node's WAL ends before its own last checkpoint");
  if (*last >= fork->switchpoint)
    return rewind("the node's WAL goes on to " + formatLsn(*last) + ", at or past the fork at " +
                  formatLsn(fork->switchpoint) + ": it diverged");
  return DivergenceVerdict{false, "the node's WAL ends at " + formatLsn(*last) +
                                      ", before timeline " + std::to_string(in.primary_timeline) +
                                      "'s fork at " + formatLsn(fork->switchpoint) +
                                      ": nothing to rewind"};
}

}  // namespace pgfailover::lifecycle
