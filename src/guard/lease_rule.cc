#include "guard/lease_rule.h"

#include <cstdio>
#include <utility>

namespace pgfailover::guard {

namespace {

// Whoever can write the table chooses this text: it goes into a log line only with anything
// unprintable escaped and its length bounded.
std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  if (text.size() > 64) out += "...";
  return out;
}

std::vector<std::string> splitPeers(std::string_view text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    out.emplace_back(
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// The log-once memories stay small whatever the table holds.
constexpr std::size_t kMaxRemembered = 32;

}  // namespace

bool isValidNodeName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

LeaseRule::LeaseRule(std::string node_name, std::string table_name, std::string heartbeat_owner,
                     bool once)
    : name_(std::move(node_name)),
      table_(std::move(table_name)),
      heartbeat_owner_(std::move(heartbeat_owner)),
      once_(once) {}

void LeaseRule::resetHistory() {
  writable_since_.reset();
  peer_last_.clear();
  peer_seen_.clear();
}

void LeaseRule::fenced() {
  resetHistory();
}

void LeaseRule::logOnce(std::set<std::string>& seen, const std::string& key, LogLine line,
                        Decision& out) {
  if (seen.count(key) != 0) return;
  if (seen.size() >= kMaxRemembered) seen.clear();
  seen.insert(key);
  out.logs.push_back(std::move(line));
}

std::optional<std::string> LeaseRule::tableProblem(const TableCatalog& table) const {
  if (table.relkind != 'r') {
    return "is not an ordinary table (relkind '" + printable(std::string(1, table.relkind)) + "')";
  }
  if (!table.owner_is_superuser && (heartbeat_owner_.empty() || table.owner != heartbeat_owner_)) {
    return "is owned by role '" + printable(table.owner) + "', which is not a superuser" +
           (heartbeat_owner_.empty() ? std::string(" (and no --heartbeat-owner is given)")
                                     : " nor --heartbeat-owner '" + heartbeat_owner_ + "'") +
           ": a table someone else created or took over is not pgfailover's";
  }
  if (table.triggers > 0) {
    return "has " + std::to_string(table.triggers) +
           " trigger(s), which would run as the guard's superuser when it marks a fence; "
           "pgfailover's table has none";
  }
  if (table.lease_columns_typed != kLeaseColumns || (table.has_timeline && !table.timeline_typed)) {
    return "has columns of other types than pgfailover creates (id integer, ts timestamptz, "
           "node text, lease_ms integer, self_fenced_at timestamptz, peers text, timeline "
           "bigint)";
  }
  return std::nullopt;
}

bool LeaseRule::tableReadable(const TableCatalog& table) const {
  return table.exists && table.lease_columns == kLeaseColumns && !tableProblem(table);
}

Decision LeaseRule::inspectTable(const Check& check) {
  Decision out;
  // Until the table exists with its lease columns there is no lease; an older pgfailover's
  // table without them is no problem either.
  if (!check.table.exists || check.table.lease_columns != kLeaseColumns) {
    logged_table_problem_.clear();
    return out;
  }
  if (auto problem = tableProblem(check.table)) {
    if (*problem != logged_table_problem_) {
      logged_table_problem_ = *problem;
      out.logs.push_back({true, "heartbeat_table_refused",
                          "the heartbeat table " + table_ + " " + *problem +
                              "; enforcing nothing from it until that is fixed"});
    }
    return out;
  }
  if (!logged_table_problem_.empty()) {
    logged_table_problem_.clear();
    out.logs.push_back({false, "heartbeat_table_accepted",
                        "the heartbeat table " + table_ + " passes validation now"});
  }
  out.table_usable = true;
  return out;
}

Decision LeaseRule::evaluate(const Check& check, std::int64_t now_ms) {
  Decision out = inspectTable(check);
  if (!out.table_usable || !check.writable) {
    resetHistory();
    return out;
  }

  std::int64_t hb_age = check.server_heartbeat_age_ms;
  const std::string heartbeat = check.has_row ? check.heartbeat : std::string();
  if (!once_) {
    // Ages count on this host's clock from the moment the guard saw a value change. A node
    // that just became writable starts every age at zero: pgfailover's first heartbeat is a
    // tick away.
    if (!writable_since_) {
      writable_since_ = now_ms;
      hb_last_ = heartbeat;
      hb_seen_ = now_ms;
      peer_last_.clear();
      peer_seen_.clear();
    }
    if (heartbeat != hb_last_) {
      hb_last_ = heartbeat;
      hb_seen_ = now_ms;
    }
    hb_age = now_ms - hb_seen_;
  }
  if (!check.has_row) return out;

  // Only this node's own lease binds it: the row written for it on the timeline it writes on.
  const std::string key = check.row_node + "/" + std::to_string(check.row_timeline);
  if (check.row_node == name_) {
    if (check.row_timeline != 0 && check.row_timeline != check.current_timeline) {
      logOnce(logged_foreign_, key,
              {false, "not_own_lease",
               "the heartbeat row in " + table_ + " was written for this node on timeline " +
                   std::to_string(check.row_timeline) + ", not on its current timeline " +
                   std::to_string(check.current_timeline) +
                   " (it predates the node's promotion): not this node's lease, nothing to "
                   "enforce until pgfailover writes its heartbeat here"},
              out);
      return out;
    }
  } else if (check.row_timeline == check.current_timeline) {
    // Written on this node's timeline, hence on this node, by pgfailover, which knows the node
    // by another name: the lease is this node's all the same.
    logOnce(logged_misnamed_, key,
            {true, "misnamed_row",
             "WARNING: the heartbeat row in " + table_ + " was written on this node's timeline " +
                 std::to_string(check.current_timeline) + " for node '" +
                 printable(check.row_node) + "', but this guard runs with --name " + name_ +
                 ": --name must be the node's nodes[].name in pgfailover's configuration; "
                 "enforcing the lease anyway"},
            out);
  } else {
    const std::string where = check.row_timeline == 0
                                  ? std::string("by a pgfailover that writes no timeline")
                                  : "on timeline " + std::to_string(check.row_timeline);
    logOnce(logged_foreign_, key,
            {false, "not_own_lease",
             "the heartbeat row in " + table_ + " was written for node '" +
                 printable(check.row_node) + "' " + where + " (this node is " + name_ +
                 " on timeline " + std::to_string(check.current_timeline) +
                 "): not this node's lease, nothing to enforce until pgfailover writes its "
                 "heartbeat here"},
            out);
    return out;
  }

  if (check.lease_ms <= 0 || hb_age <= check.lease_ms) return out;

  std::string stale;
  std::int64_t stale_age = 0;
  const std::vector<std::string> peers = splitPeers(check.peers);
  // pgfailover names at most its configured nodes; a longer list is not its row.
  if (peers.size() > kMaxRemembered) return out;
  for (const std::string& peer : peers) {
    // A name pgfailover would never write: the row is not to be trusted.
    if (!isValidNodeName(peer)) return out;
    // The node never vouches for itself, and is never the replica pgfailover could promote.
    if (peer == name_) continue;
    const StreamingPeer* streaming = nullptr;
    for (const auto& s : check.streaming) {
      if (s.name == peer) streaming = &s;
    }
    std::int64_t age = 0;
    if (once_) {
      age = streaming && streaming->reply && streaming->server_age_ms ? *streaming->server_age_ms
                                                                      : check.lease_ms + 1;
    } else {
      auto seen = peer_seen_.try_emplace(peer, *writable_since_).first;
      if (streaming && streaming->reply && *streaming->reply != peer_last_[peer]) {
        peer_last_[peer] = *streaming->reply;
        seen->second = now_ms;
      }
      age = now_ms - seen->second;
    }
    if (age > check.lease_ms) {
      stale = peer;
      stale_age = age;
      break;
    }
  }
  // No stale peer, or none named but this node, or none at all (a row from an older
  // pgfailover): nobody pgfailover could promote can be told apart.
  if (stale.empty()) return out;
  out.fence = true;
  out.heartbeat = check.heartbeat;
  out.stale_peer = stale;
  auto last = peer_last_.find(stale);
  out.stale_peer_last_reply = last == peer_last_.end() ? std::string() : last->second;
  out.reason = "no heartbeat from pgfailover for " + std::to_string(hb_age) +
               " ms and no reply from replica " + stale + " for at least " +
               std::to_string(stale_age) + " ms: the " + std::to_string(check.lease_ms) +
               " ms lease ran out";
  return out;
}

}  // namespace pgfailover::guard
