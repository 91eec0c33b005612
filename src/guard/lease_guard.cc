#include "guard/lease_guard.h"

#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/log.h"
#include "guard/lease_rule.h"
#include "pg/connection.h"
#include "pg/sql.h"

namespace pgfailover::guard {

const char* const kLeaseGuardUsage =
    R"(Usage: pgfailover lease-guard --dir DIR [--name NAME] [options]
       pgfailover lease-guard --host SOCKET_DIR|ADDRESS [--port PORT] --name NAME [options]

The node's lease guard: run it on every PostgreSQL host, beside the server, for as long as the
host runs. While its node is a writable primary it checks whether pgfailover's heartbeat lease
(probe.primary_lease_ms) ran out AND a replica pgfailover could promote stopped replying for as
long; then it makes the node read-only before pgfailover can promote that replica (it marks
self_fenced_at in the heartbeat row, sets default_transaction_read_only = on and ends the client
sessions). See docs/lifecycle.md, "Self-fencing".

Where the server is:
  --dir DIR             the node folder of scripts/node (holding pgfailover-node.conf): the
                        port, name and socket directory are read from that file
  --data-dir DIR        the data directory inside such a folder (its parent is the folder)
  --host DIR|ADDRESS    the server's unix socket directory (default DIR/run), or a TCP address
  --run-dir DIR         the same as --host with a socket directory
  --port PORT           the server's port (default: from pgfailover-node.conf, else 5432)
  --dbname DB           the database pgfailover connects to, nodes[].dbname (default postgres)
How it connects (over the unix socket, as the server's OS user, with no password):
  --run-as USER         started as root, become this OS user first (default postgres); started
                        as another user, only that user is accepted
  --user ROLE           the database role (default: the OS user's name). Over TCP a password
                        comes from PGPASSFILE / ~/.pgpass, never from the command line.
What it guards:
  --name NAME           this node's nodes[].name in pgfailover's configuration (default: the
                        cluster_name in pgfailover-node.conf, else the folder's name)
  --heartbeat-table T   pgfailover's probe.heartbeat_table (default pgfailover.heartbeat)
  --heartbeat-owner R   a role besides the superusers that may own the heartbeat table (the
                        role pgfailover writes it as, when that is no superuser). A table owned
                        by anyone else is refused: logged, and nothing in it enforced.
  --check-interval S    seconds between checks (default 0.5)
  --once                check once and exit: 0 nothing to do, 3 fenced the node, 1 could not
                        check the server
  --log-format text|json
  -h, --help

Runs in the foreground until SIGTERM or SIGINT (exit 0); logs to stderr once per change, not
once per check. Every call to the server has a deadline (2 s to connect, 2 s per statement).
)";

namespace {

using namespace std::chrono_literals;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitFenced = 3;
constexpr Millis kCallTimeout{2000};

// The guard's clock: monotonic, and unlike steady_clock it keeps counting while the host is
// suspended, so a lease that ran out during a suspend has run out on resume.
std::int64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

SteadyTime deadlineIn(Millis budget) {
  return std::chrono::steady_clock::now() + budget;
}

std::string trimQuotes(std::string value) {
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r'))
    value.pop_back();
  if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'')
    value = value.substr(1, value.size() - 2);
  return value;
}

// The settings scripts/node writes into pgfailover-node.conf: "key = value" lines.
std::optional<std::string> nodeConfValue(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  std::optional<std::string> found;
  while (std::getline(in, line)) {
    if (line.rfind(key + " = ", 0) == 0) found = trimQuotes(line.substr(key.size() + 3));
  }
  return found;
}

std::optional<int> parsePort(const std::string& text) {
  auto value = pg::parseInt64(text);
  if (!value || *value < 1 || *value > 65535) return std::nullopt;
  return static_cast<int>(*value);
}

// "0.5", "2", "1.25": a positive decimal number of seconds, at least 10 ms, at most an hour.
std::optional<Millis> parseInterval(const std::string& text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  for (char c : text) {
    if ((c < '0' || c > '9') && c != '.') return std::nullopt;
  }
  char* end = nullptr;
  const double seconds = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !(seconds >= 0.01) || seconds > 3600)
    return std::nullopt;
  return Millis(static_cast<std::int64_t>(seconds * 1000 + 0.5));
}

bool isRoleName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f || c == '\'' || c == '"' || c == '\\')
      return false;
  }
  return true;
}

std::string currentUserName() {
  struct passwd* entry = getpwuid(geteuid());
  return entry != nullptr ? entry->pw_name : "";
}

// Started as root: become `user` (groups, then gid, then uid) so that peer authentication and
// the socket directory's permissions see the server's OS user, as with psql run by that user.
bool dropPrivileges(const std::string& user, std::string& error) {
  struct passwd* entry = getpwnam(user.c_str());
  if (entry == nullptr) {
    error = "OS user '" + user + "' (--run-as) does not exist";
    return false;
  }
  if (entry->pw_uid == 0) {
    error = "--run-as must not be root: the guard runs as the server's OS user";
    return false;
  }
  if (initgroups(entry->pw_name, entry->pw_gid) != 0 || setgid(entry->pw_gid) != 0 ||
      setuid(entry->pw_uid) != 0 || setuid(0) == 0) {
    error = "cannot become OS user '" + user + "'";
    return false;
  }
  // libpq reads ~/.pgpass and ~/.postgresql/ of $HOME: that user's, not root's (which it could
  // not read, and which is no business of the guard's).
  if (entry->pw_dir != nullptr) ::setenv("HOME", entry->pw_dir, 1);
  return true;
}

class Guard {
 public:
  Guard(const GuardOptions& options, const pg::QualifiedName& table, Logger& log)
      : options_(options),
        log_(log),
        table_text_(table.schema + "." + table.table),
        table_quoted_(table.quoted()),
        rule_(options.name, table_text_, options.heartbeat_owner, options.once) {
    connect_.host = options.host;
    connect_.port = options.port;
    connect_.dbname = options.dbname;
    connect_.user = options.user;
    connect_.application_name = "pgfailover-lease-guard";
    connect_.connect_timeout = kCallTimeout;
    connect_.statement_timeout = kCallTimeout;
  }

  // One check, and the fence when it is due. 0: nothing done; 3: fenced; 1: not checked.
  int checkOnce() {
    std::string error;
    auto check = read(error);
    if (!check) {
      if (error != last_error_) {
        last_error_ = error;
        log_.warn("check_failed", "cannot check node " + options_.name + ": " + error +
                                      (options_.once ? "" : " (retrying every check)"));
      }
      connection_.close();
      return kExitFailure;
    }
    if (!last_error_.empty()) {
      last_error_.clear();
      log_.info("check_ok", "checking node " + options_.name + " again");
    }
    Decision decision = rule_.evaluate(*check, monotonicMs());
    for (const auto& line : decision.logs) {
      if (line.warning) {
        log_.warn(line.event, line.message);
      } else {
        log_.info(line.event, line.message);
      }
    }
    if (!decision.fence) return kExitOk;
    return fence(decision) ? kExitFenced : kExitOk;
  }

  void close() { connection_.close(); }

 private:
  bool ensureConnected(std::string& error) {
    if (connection_.connected()) return true;
    prepared_catalog_ = prepared_row_ = prepared_row_without_timeline_ = false;
    if (auto failed = connection_.connect(connect_, deadlineIn(kCallTimeout))) {
      error = pg::oneLine(failed->message);
      return false;
    }
    return true;
  }

  // Runs a prepared statement, preparing it first (in the same round trip) on a new session:
  // the server then parses and plans each query once per session, not twice a second. The
  // statements hold no value from the table, only its validated, quoted name.
  pg::ExecOutcome execPrepared(const char* name, const std::string& sql, bool& prepared) {
    const std::string execute = std::string("EXECUTE ") + name;
    auto outcome = exec(
        prepared ? execute : "PREPARE " + std::string(name) + " AS " + sql + "; " + execute, {});
    prepared = outcome.ok();
    return outcome;
  }

  pg::ExecOutcome exec(const std::string& sql, const std::vector<std::string>& params) {
    auto outcome = connection_.exec(sql, params, deadlineIn(kCallTimeout));
    if (!outcome.ok()) connection_.close();
    return outcome;
  }

  // Whether the node takes writes, its timeline, and the heartbeat table as the catalog has it:
  // the table is looked up by name, never read before it exists with the lease columns, so a
  // guard started before pgfailover's first heartbeat leaves no error in the server log.
  std::optional<Check> read(std::string& error) {
    if (!ensureConnected(error)) return std::nullopt;
    const std::string catalog_sql =
        "SELECT s.writable, coalesce(s.timeline, 0), c.oid IS NOT NULL,"
        " coalesce(c.relkind::text, ''), coalesce(pg_get_userbyid(c.relowner), ''),"
        " coalesce((SELECT rolsuper FROM pg_roles WHERE oid = c.relowner), false),"
        " (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
        "   AND NOT a.attisdropped AND a.attname IN ('id', 'ts', 'node', 'lease_ms',"
        "   'self_fenced_at', 'peers')),"
        " (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
        "   AND NOT a.attisdropped AND (a.attname::text, format_type(a.atttypid, NULL)) IN"
        "   (('id', 'integer'), ('ts', 'timestamp with time zone'), ('node', 'text'),"
        "    ('lease_ms', 'integer'), ('self_fenced_at', 'timestamp with time zone'),"
        "    ('peers', 'text'))),"
        " (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND"
        "   a.attname = 'timeline' AND NOT a.attisdropped),"
        " (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND"
        "   a.attname = 'timeline' AND NOT a.attisdropped AND"
        "   format_type(a.atttypid, NULL) = 'bigint'),"
        " (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)"
        " FROM (SELECT NOT rec AND current_setting('default_transaction_read_only') = 'off'"
        "         AS writable,"
        "       CASE WHEN NOT rec THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()),"
        "         1, 8))::bit(32)::bigint END AS timeline"
        "       FROM pg_is_in_recovery() AS rec OFFSET 0) AS s"
        " LEFT JOIN pg_class c ON c.oid = to_regclass(" +
        pg::quoteLiteral(table_quoted_) + ")";
    auto catalog = execPrepared("pgfailover_guard_catalog", catalog_sql, prepared_catalog_);
    if (!catalog.ok()) {
      error = pg::oneLine(catalog.error->message);
      return std::nullopt;
    }
    const auto& r = catalog.result;
    if (r.rows() != 1 || r.columns() != 11) {
      error = "unexpected answer to the catalog query";
      return std::nullopt;
    }
    Check check;
    check.writable = pg::parseBool(r.value(0, 0)).value_or(false);
    check.current_timeline = pg::parseInt64(r.value(0, 1)).value_or(0);
    check.table.exists = pg::parseBool(r.value(0, 2)).value_or(false);
    check.table.relkind = r.value(0, 3).empty() ? 'r' : r.value(0, 3).front();
    check.table.owner = std::string(r.value(0, 4));
    check.table.owner_is_superuser = pg::parseBool(r.value(0, 5)).value_or(false);
    check.table.lease_columns = static_cast<int>(pg::parseInt64(r.value(0, 6)).value_or(0));
    check.table.lease_columns_typed = static_cast<int>(pg::parseInt64(r.value(0, 7)).value_or(0));
    check.table.has_timeline = pg::parseInt64(r.value(0, 8)).value_or(0) == 1;
    check.table.timeline_typed = pg::parseInt64(r.value(0, 9)).value_or(0) == 1;
    check.table.triggers = static_cast<int>(pg::parseInt64(r.value(0, 10)).value_or(0));
    if (!check.writable || !rule_.tableReadable(check.table)) return check;

    // The row, and the newest reply of every streaming walsender by application_name (only
    // the row's peers count, matched by the rule: the row's text never enters SQL).
    const std::string sql =
        "SELECT h.lease_ms, h.ts::text,"
        " (extract(epoch FROM clock_timestamp() - h.ts) * 1000)::bigint, " +
        std::string(check.table.has_timeline ? "h.timeline" : "0") +
        ", h.node, h.peers,"
        " (SELECT coalesce(json_agg(json_build_array(r.name, r.reply::text,"
        "   (extract(epoch FROM clock_timestamp() - r.reply) * 1000)::bigint)), '[]')"
        "  FROM (SELECT application_name AS name, max(reply_time) AS reply"
        "        FROM pg_stat_replication WHERE state = 'streaming'"
        "        GROUP BY application_name) AS r)"
        " FROM " +
        table_quoted_ + " AS h WHERE h.id = 1";
    auto row = check.table.has_timeline ? execPrepared("pgfailover_guard_row", sql, prepared_row_)
                                        : execPrepared("pgfailover_guard_row_without_timeline", sql,
                                                       prepared_row_without_timeline_);
    if (!row.ok()) {
      error = pg::oneLine(row.error->message);
      return std::nullopt;
    }
    const auto& h = row.result;
    if (h.rows() == 0) return check;
    if (h.columns() != 7) {
      error = "unexpected answer to the heartbeat query";
      return std::nullopt;
    }
    check.has_row = true;
    check.lease_ms = pg::parseInt64(h.value(0, 0)).value_or(0);
    check.heartbeat = std::string(h.value(0, 1));
    check.server_heartbeat_age_ms = pg::parseInt64(h.value(0, 2)).value_or(0);
    check.row_timeline = pg::parseInt64(h.value(0, 3)).value_or(0);
    check.row_node = std::string(h.value(0, 4));
    check.peers = std::string(h.value(0, 5));
    auto streaming = nlohmann::json::parse(h.value(0, 6), nullptr, false);
    if (streaming.is_array()) {
      for (const auto& entry : streaming) {
        if (!entry.is_array() || entry.size() != 3 || !entry[0].is_string()) continue;
        StreamingPeer peer;
        peer.name = entry[0].get<std::string>();
        if (entry[1].is_string()) peer.reply = entry[1].get<std::string>();
        if (entry[2].is_number_integer()) peer.server_age_ms = entry[2].get<std::int64_t>();
        check.streaming.push_back(std::move(peer));
      }
    }
    return check;
  }

  bool fence(const Decision& decision) {
    // The mark first, in one statement with the check that nothing changed since (the same
    // heartbeat, no newer reply from that peer): pgfailover lifts only a fence it can tell from
    // an operator's, and only pgfailover's unfence clears the mark.
    auto marked =
        exec("UPDATE " + table_quoted_ +
                 " SET self_fenced_at = now() WHERE id = 1 AND lease_ms > 0 AND ts::text = $1"
                 " AND NOT EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"
                 " AND application_name = $2 AND reply_time::text <> $3) RETURNING 1",
             {decision.heartbeat, decision.stale_peer, decision.stale_peer_last_reply});
    if (!marked.ok()) {
      log_.error("fence_failed", "could not mark the fence in " + table_text_ + " (" +
                                     pg::oneLine(marked.error->message) + "); not fencing (" +
                                     decision.reason + ")");
      return false;
    }
    if (marked.result.rows() != 1) {
      log_.info("fence_skipped", "a heartbeat or a reply of " + decision.stale_peer +
                                     " arrived meanwhile; not fencing");
      return false;
    }
    rule_.fenced();
    // ALTER SYSTEM cannot run in a transaction block: two statements, two calls.
    auto altered = exec("ALTER SYSTEM SET default_transaction_read_only = on", {});
    std::string error;
    auto reloaded = altered.ok() && ensureConnected(error) ? exec("SELECT pg_reload_conf()", {})
                                                           : pg::ExecOutcome{};
    if (!altered.ok() || !reloaded.ok()) {
      const auto& failed = !altered.ok() ? altered : reloaded;
      const std::string why =
          failed.error ? pg::oneLine(failed.error->message) : std::string("no connection");
      log_.error("fence_failed", "ALTER SYSTEM or pg_reload_conf failed (" + why +
                                     "); the node is marked but not fenced (" + decision.reason +
                                     ")");
      return false;
    }
    // Sessions forked after the postmaster reloaded start read-only; wait for that (a new
    // session shows it), then end every client session, which may still be writing.
    const SteadyTime until = deadlineIn(2s);
    while (std::chrono::steady_clock::now() < until) {
      pg::Connection probe;
      if (!probe.connect(connect_, deadlineIn(kCallTimeout))) {
        auto shown = probe.exec("SHOW default_transaction_read_only", deadlineIn(kCallTimeout));
        if (shown.ok() && shown.result.value(0, 0) == "on") break;
      }
      std::this_thread::sleep_for(50ms);
    }
    bool terminated = ensureConnected(error) &&
                      exec(
                          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                          " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                          {})
                          .ok();
    if (!terminated) log_.error("fence_incomplete", "terminating client sessions failed");
    log_.warn("fenced", "fenced node " + options_.name +
                            " (read-only, client sessions ended): " + decision.reason);
    return true;
  }

  const GuardOptions& options_;
  Logger& log_;
  std::string table_text_;
  std::string table_quoted_;
  LeaseRule rule_;
  pg::ConnectOptions connect_;
  pg::Connection connection_;
  bool prepared_catalog_ = false;
  bool prepared_row_ = false;
  bool prepared_row_without_timeline_ = false;
  std::string last_error_;
};

}  // namespace

bool parseGuardOptions(const std::vector<std::string>& args, GuardOptions& options, bool& help,
                       std::string& error) {
  help = false;
  std::string data_dir, port, interval, log_format;
  std::optional<std::string> host, name;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (flag == "-h" || flag == "--help") {
      help = true;
      return true;
    }
    if (flag == "--once") {
      if (inline_value) {
        error = "--once takes no value";
        return false;
      }
      options.once = true;
      continue;
    }
    std::string* target = nullptr;
    std::string host_value, name_value;
    if (flag == "--dir")
      target = &options.node_dir;
    else if (flag == "--data-dir")
      target = &data_dir;
    else if (flag == "--host" || flag == "--run-dir")
      target = &host_value;
    else if (flag == "--port")
      target = &port;
    else if (flag == "--name")
      target = &name_value;
    else if (flag == "--run-as")
      target = &options.run_as;
    else if (flag == "--user")
      target = &options.user;
    else if (flag == "--dbname")
      target = &options.dbname;
    else if (flag == "--heartbeat-table")
      target = &options.heartbeat_table;
    else if (flag == "--heartbeat-owner")
      target = &options.heartbeat_owner;
    else if (flag == "--check-interval")
      target = &interval;
    else if (flag == "--log-format")
      target = &log_format;
    if (target == nullptr) {
      error = "unknown option '" + flag + "' (see pgfailover lease-guard --help)";
      return false;
    }
    if (inline_value) {
      *target = *inline_value;
    } else if (i + 1 < args.size()) {
      *target = args[++i];
    } else {
      error = "option " + flag + " needs a value";
      return false;
    }
    if (target->empty()) {
      error = "option " + flag + " needs a non-empty value";
      return false;
    }
    if (target == &host_value) host = host_value;
    if (target == &name_value) name = name_value;
  }

  if (!data_dir.empty()) {
    const auto parent = std::filesystem::path(data_dir).lexically_normal().parent_path();
    std::error_code ec_dir, ec_parent;
    if (!options.node_dir.empty() && std::filesystem::weakly_canonical(options.node_dir, ec_dir) !=
                                         std::filesystem::weakly_canonical(parent, ec_parent)) {
      error =
          "--dir (" + options.node_dir + ") must be the parent of --data-dir (" + data_dir + ")";
      return false;
    }
    options.node_dir = parent.string();
  }
  if (!options.node_dir.empty()) {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(options.node_dir, ec);
    if (ec) {
      error = "cannot resolve --dir " + options.node_dir;
      return false;
    }
    options.node_dir = absolute.lexically_normal().string();
    while (options.node_dir.size() > 1 && options.node_dir.back() == '/')
      options.node_dir.pop_back();
    const std::string conf = options.node_dir + "/pgfailover-node.conf";
    if (port.empty()) port = nodeConfValue(conf, "port").value_or("");
    if (!name) name = nodeConfValue(conf, "cluster_name");
    if (!name) name = std::filesystem::path(options.node_dir).filename().string();
    if (!host) {
      auto sockets = nodeConfValue(conf, "unix_socket_directories");
      if (sockets && !sockets->empty() && sockets->front() == '/' &&
          sockets->find(',') == std::string::npos) {
        host = *sockets;
      } else {
        host = options.node_dir + "/run";
      }
    }
  }
  if (!host) {
    error = "no server given: pass --dir DIR (the node folder) or --host SOCKET_DIR|ADDRESS";
    return false;
  }
  options.host = *host;
  if (!name) {
    error =
        "--name is required with --host: this node's nodes[].name in pgfailover's configuration";
    return false;
  }
  options.name = *name;
  if (!isValidNodeName(options.name)) {
    error = "--name may hold 1 to 63 letters, digits, '_', '.' and '-' only, got '" + options.name +
            "'";
    return false;
  }
  if (!port.empty()) {
    auto parsed = parsePort(port);
    if (!parsed) {
      error = "--port must be a TCP port 1..65535, got '" + port + "'";
      return false;
    }
    options.port = *parsed;
  }
  if (options.host.front() == '/' &&
      (options.host + "/.s.PGSQL." + std::to_string(options.port)).size() > 107) {
    error = "socket path in " + options.host + " is longer than 107 bytes";
    return false;
  }
  if (!interval.empty()) {
    auto parsed = parseInterval(interval);
    if (!parsed) {
      error =
          "--check-interval must be a number of seconds from 0.01 to 3600, got '" + interval + "'";
      return false;
    }
    options.interval = *parsed;
  }
  auto table = pg::parseTableName(options.heartbeat_table);
  if (!table) {
    error = "--heartbeat-table must be schema.table (letters, digits and _), got '" +
            options.heartbeat_table + "'";
    return false;
  }
  for (const std::string* role :
       {&options.user, &options.run_as, &options.heartbeat_owner, &options.dbname}) {
    if (!role->empty() && !isRoleName(*role)) {
      error = "'" + *role + "' is not a plain role, user or database name";
      return false;
    }
  }
  if (!log_format.empty() && log_format != "text" && log_format != "json") {
    error = "--log-format must be text or json";
    return false;
  }
  options.json_logs = log_format == "json";
  return true;
}

int leaseGuardMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  GuardOptions options;
  bool help = false;
  std::string error;
  if (!parseGuardOptions(args, options, help, error)) {
    err << "pgfailover lease-guard: " << error << "\n";
    return kExitUsage;
  }
  if (help) {
    out << kLeaseGuardUsage;
    return kExitOk;
  }
  if (geteuid() == 0) {
    if (options.run_as.empty()) options.run_as = "postgres";
    if (!dropPrivileges(options.run_as, error)) {
      err << "pgfailover lease-guard: " << error << "\n";
      return kExitFailure;
    }
  } else {
    const std::string me = currentUserName();
    if (!options.run_as.empty() && options.run_as != me) {
      err << "pgfailover lease-guard: running as '" << me << "', so it cannot run as '"
          << options.run_as << "': start it as root or as '" << options.run_as << "'\n";
      return kExitUsage;
    }
    options.run_as = me;
  }
  if (options.user.empty()) options.user = options.run_as;
  // A directory the guard's user cannot enter must not matter: nothing is read relative to it.
  if (::chdir("/") != 0) {
    err << "pgfailover lease-guard: cannot change to /\n";
    return kExitFailure;
  }
  const auto table = *pg::parseTableName(options.heartbeat_table);
  Logger log(err, options.json_logs, LogLevel::kInfo);
  // A server closing the socket mid-write must not kill the guard.
  signal(SIGPIPE, SIG_IGN);

  if (options.once) {
    Guard guard(options, table, log);
    const int status = guard.checkOnce();
    guard.close();
    return status;
  }

  // Signals are taken by this thread with sigwait, so no handler runs inside libpq; the checks
  // run on a thread of their own, which a stop wakes from its sleep between checks.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  log.info("started", "guarding node " + options.name + " (" + options.host + ":" +
                          std::to_string(options.port) + ", " + options.dbname + "." +
                          table.schema + "." + table.table + ", every " +
                          std::to_string(options.interval.count()) + " ms)");
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread checks([&] {
    Guard guard(options, table, log);
    std::unique_lock lock(mutex);
    while (!stopping) {
      lock.unlock();
      guard.checkOnce();
      lock.lock();
      wake.wait_for(lock, options.interval, [&] { return stopping; });
    }
    lock.unlock();
    guard.close();
    done.set_value();
  });

  int received = 0;
  sigwait(&signals, &received);
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  // A check waits at most its deadline on a hung server; the guard holds nothing that needs
  // it to finish (the fence's steps are each idempotent and re-done by the next guard), so it
  // does not wait that long.
  if (finished.wait_for(150ms) == std::future_status::ready) {
    checks.join();
    log.info("stopped", std::string("received ") + (received == SIGTERM ? "SIGTERM" : "SIGINT"));
    return kExitOk;
  }
  log.info("stopped", std::string("received ") + (received == SIGTERM ? "SIGTERM" : "SIGINT") +
                          " while a check was in flight");
  err.flush();
  std::_Exit(kExitOk);
}

}  // namespace pgfailover::guard
