// The lease guard's decision (`pgfailover lease-guard`, docs/lifecycle.md "Self-fencing"), with
// no I/O and no clock: the loop in lease_guard.cc reads the server and the clock and hands both
// in, so unit tests drive every rule with a fake clock.
//
// While its node is a writable primary, the guard asks whether anyone still vouches for it:
// pgfailover, whose heartbeat row carries a lease, and the replicas pgfailover could promote
// (the row's peers), whose WAL receivers reply every wal_receiver_status_interval. When the
// heartbeat has not changed for longer than the lease AND one of those peers has not replied for
// as long, pgfailover may be about to promote that peer: the node must become read-only first.
//
// Only this node's own lease counts: the row must have been written for this node (its node
// column is the guard's name) on the timeline the node writes on now. A row for another node,
// or from an older timeline (replicated from the old primary before this node was promoted), is
// not this node's lease: logged once, nothing enforced. A row on the current timeline naming
// another node means the guard's name differs from pgfailover's nodes[].name: a warning once,
// and the lease is enforced all the same. A row without a timeline (0: an older pgfailover) is
// matched by its node name alone. The node itself is skipped among the peers.
//
// Never fenced: a replica, a node already read-only, a lease of 0, a row that is not this node's
// lease, a primary whose every peer still streams, a row naming no peer but the node, a node
// that became writable less than a lease ago, and a node whose heartbeat table is missing or
// fails validation (not pgfailover's table: nothing in it is trusted).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pgfailover::guard {

// The heartbeat table as the catalog describes it.
struct TableCatalog {
  bool exists = false;
  char relkind = 'r';
  std::string owner;
  bool owner_is_superuser = false;
  // Of id, ts, node, lease_ms, self_fenced_at, peers: how many exist, and how many have the
  // type pgfailover creates them with.
  int lease_columns = 0;
  int lease_columns_typed = 0;
  bool has_timeline = false;
  bool timeline_typed = false;
  // Triggers run their function as whoever writes the row (the guard, a superuser), and a role
  // with the TRIGGER privilege may add one: pgfailover's table has none.
  int triggers = 0;
};
inline constexpr int kLeaseColumns = 6;

// The newest reply of one streaming walsender, by application_name.
struct StreamingPeer {
  std::string name;
  std::optional<std::string> reply;  // reply_time as text; nullopt when it never replied
  std::optional<std::int64_t> server_age_ms;
};

// What one check read from the server.
struct Check {
  bool writable = false;  // out of recovery and not default_transaction_read_only
  std::int64_t current_timeline = 0;
  TableCatalog table;
  // The heartbeat row (id 1), read only when the node is writable and the table is valid.
  bool has_row = false;
  std::int64_t lease_ms = 0;
  std::string heartbeat;  // ts as text: compared, never parsed
  std::int64_t server_heartbeat_age_ms = 0;
  std::int64_t row_timeline = 0;  // 0: no timeline column, or a pgfailover that writes none
  std::string row_node;
  std::string peers;  // the row's peers column, comma-separated names
  std::vector<StreamingPeer> streaming;
};

struct LogLine {
  bool warning = false;
  std::string event;
  std::string message;
};

struct Decision {
  bool fence = false;
  // When fencing: what the mark's UPDATE re-checks (the same heartbeat, no newer reply of the
  // stale peer) and why.
  std::string heartbeat;
  std::string stale_peer;
  std::string stale_peer_last_reply;  // "" when the guard never saw it reply
  std::string reason;
  // Lines to log: each situation once, not on every check.
  std::vector<LogLine> logs;
  bool table_usable = false;
};

// 1 to 63 letters, digits, '_', '.', '-': a node name (nodes[].name, cluster_name).
bool isValidNodeName(std::string_view name);

class LeaseRule {
 public:
  // `once`: a single check with no history; the server's clock then gives the ages.
  // `heartbeat_owner`: a role besides the superusers that may own the table ("" for none).
  LeaseRule(std::string node_name, std::string table_name, std::string heartbeat_owner, bool once);

  // Whether the row may be read at all: the table exists with the lease columns and passes
  // validation (evaluate() logs why not).
  bool tableReadable(const TableCatalog& table) const;
  // The whole check, `now_ms` on the guard's monotonic clock.
  Decision evaluate(const Check& check, std::int64_t now_ms);
  // The mark was written: from now on the node counts as not writable for this guard, so once
  // pgfailover lifts the fence its next heartbeat gets a whole lease.
  void fenced();

 private:
  void resetHistory();
  Decision inspectTable(const Check& check);
  void logOnce(std::set<std::string>& seen, const std::string& key, LogLine line, Decision& out);
  std::optional<std::string> tableProblem(const TableCatalog& table) const;

  std::string name_;
  std::string table_;
  std::string heartbeat_owner_;
  bool once_;
  std::optional<std::int64_t> writable_since_;
  std::string hb_last_;
  std::int64_t hb_seen_ = 0;
  std::map<std::string, std::string> peer_last_;
  std::map<std::string, std::int64_t> peer_seen_;
  std::set<std::string> logged_foreign_;
  std::set<std::string> logged_misnamed_;
  std::string logged_table_problem_;
};

}  // namespace pgfailover::guard
