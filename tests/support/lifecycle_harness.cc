#include "support/lifecycle_harness.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "support/process.h"

namespace pgfailover::testing {

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// The folder of the PostgreSQL programs PgCluster runs (PG_BIN, else PostgreSQL 15's).
std::string pgBinDir() {
  const std::string pg_ctl = pgBinary("pg_ctl");
  const auto slash = pg_ctl.rfind('/');
  return slash == std::string::npos ? "/usr/lib/postgresql/15/bin" : pg_ctl.substr(0, slash);
}

std::string scriptsDir() {
  return std::string(PGFAILOVER_SOURCE_DIR) + "/scripts/node";
}

bool chownTo(const std::string& path, const char* user) {
  passwd* account = getpwnam(user);
  if (account == nullptr) return geteuid() != 0;  // not root: files are ours already
  return ::chown(path.c_str(), account->pw_uid, account->pw_gid) == 0;
}

}  // namespace

std::string wallClock(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02d:%02d:%02d.%03d", utc.tm_hour % 100, utc.tm_min % 100,
                utc.tm_sec % 100, static_cast<int>(ms % 1000));
  return buffer;
}

HttpResponse adminPost(int port, const std::string& path, const std::string& body,
                       const std::string& token, std::chrono::milliseconds timeout) {
  httplib::Client client("127.0.0.1", port);
  const auto seconds = static_cast<time_t>(timeout.count() / 1000);
  const auto micros = static_cast<time_t>((timeout.count() % 1000) * 1000);
  client.set_connection_timeout(seconds, micros);
  client.set_read_timeout(seconds, micros);
  client.set_write_timeout(seconds, micros);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto result = client.Post(path, headers, body, "application/json");
  HttpResponse response;
  if (!result) {
    response.error = "POST " + path + ": " + httplib::to_string(result.error());
    return response;
  }
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->get_header_value("Content-Type");
  return response;
}

std::string rewindGrantsSql(const std::string& role) {
  const std::string to = " TO \"" + role + "\";";
  return "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean)" + to +
         " GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean)" + to +
         " GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text)" + to +
         " GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, "
         "boolean)" +
         to;
}

// ---------------------------------------------------------------------------------------------
// LifecycleHarness

LifecycleHarness::LifecycleHarness() {
  ok_ = setUp();
}

LifecycleHarness::~LifecycleHarness() {
  // The daemon first: it must not act on nodes while they are being torn down.
  daemon_.reset();
}

bool LifecycleHarness::setUp() {
  if (!cluster_.ok() || !sshd_.ok()) return false;
  dir_ = cluster_.dir() + "/lifecycle";
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    ADD_FAILURE() << "cannot create " << dir_ << ": " << std::strerror(errno);
    return false;
  }
  ::chmod(dir_.c_str(), 0755);
  http_port_ = freePort();

  token_ = randomToken(32);
  token_file_ = dir_ + "/admin.token";
  state_path_ = dir_ + "/state.json";
  replication_passfile_ = dir_ + "/replication.pgpass";
  const std::string password = trim(readTextFile(cluster_.replicationPasswordFile()));
  if (password.empty()) {
    ADD_FAILURE() << "cannot read the replication password " << cluster_.replicationPasswordFile();
    return false;
  }
  if (!writeTextFile(token_file_, token_ + "\n", 0600) ||
      !writeTextFile(replication_passfile_,
                     "*:*:*:" + cluster_.replicationUser() + ":" + password + "\n", 0600) ||
      !chownTo(replication_passfile_, "postgres")) {
    ADD_FAILURE() << "cannot write the token or the passfile in " << dir_ << ": "
                  << std::strerror(errno);
    return false;
  }

  // pg_rewind reads the source's files through these functions; a non-superuser needs them
  // granted (PostgreSQL 15 documentation, pg_rewind). Replicated to the replica like any DDL.
  bool granted = false;
  cluster_.sql(0, rewindGrantsSql(cluster_.replicationUser()), &granted);
  if (!granted) {
    ADD_FAILURE() << "granting pg_rewind's functions to " << cluster_.replicationUser()
                  << " failed";
    return false;
  }
  const std::string check = "SELECT has_function_privilege('" + cluster_.replicationUser() +
                            "', 'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', "
                            "'EXECUTE')";
  if (!waitUntil([&] { return cluster_.sql(1, check) == "t"; }, 30s)) {
    ADD_FAILURE() << "the replica never replayed the GRANTs";
    return false;
  }
  return true;
}

std::string LifecycleHarness::startCommand(std::size_t i) const {
  return "bash " + shellQuote(scriptsDir() + "/start.sh") + " --dir " +
         shellQuote(cluster_.nodeDir(i)) + " --timeout 60";
}

json LifecycleHarness::config(int rejoin_grace_ms) const {
  json nodes = json::array();
  for (std::size_t i = 0; i < cluster_.nodes().size(); ++i) {
    const auto& node = cluster_.node(i);
    nodes.push_back({{"name", node.name},
                     {"host", "127.0.0.1"},
                     {"port", node.port},
                     {"dbname", "postgres"},
                     {"user", cluster_.user()},
                     {"password_file", cluster_.passwordFile()},
                     {"data_dir", node.data_dir},
                     {"bin_dir", pgBinDir()},
                     {"start_command", startCommand(i)},
                     {"ssh",
                      {{"host", sshd_.host()},
                       {"port", sshd_.port()},
                       {"user", sshd_.user()},
                       {"private_key_file", sshd_.privateKeyFile()},
                       {"known_hosts_file", sshd_.knownHostsFile()}}}});
  }
  return {
      {"cluster_name", "lifecycle"},
      {"nodes", nodes},
      {"probe", {{"interval_ms", 1000}}},
      {"failover",
       {{"confirmed_down_timeout_ms", 3000},
        {"unresponsive_timeout_ms", 10000},
        {"rejoin_grace_ms", rejoin_grace_ms}}},
      {"replication", {{"user", cluster_.replicationUser()}, {"passfile", replication_passfile_}}},
      {"admin", {{"token_file", token_file_}}},
      {"state_file", state_path_},
      {"http", {{"listen_address", "127.0.0.1"}, {"port", http_port_}}}};
}

std::string LifecycleHarness::writeConfig(const json& config, const std::string& name) {
  const std::string path = dir_ + "/" + name;
  if (!writeTextFile(path, config.dump(2) + "\n", 0600))
    ADD_FAILURE() << "cannot write " << path << ": " << std::strerror(errno);
  return path;
}

bool LifecycleHarness::startDaemon(const std::string& config_path,
                                   std::chrono::milliseconds healthy_within) {
  daemon_.reset();
  daemon_ = std::make_unique<DaemonProcess>(config_path, dir_ + "/pgfailover.log");
  ++daemon_generation_;
  if (!daemon_->start()) return false;
  if (!waitUntil([&] { return state() == "healthy" || !daemon_->running(); }, healthy_within) ||
      state() != "healthy") {
    ADD_FAILURE() << "pgfailover (start #" << daemon_generation_ << ") never reported healthy\n"
                  << describe();
    return false;
  }
  return true;
}

void LifecycleHarness::killDaemon() {
  if (!daemon_) return;
  daemon_->signal(SIGKILL);
  daemon_->waitForExit(10s);
}

json LifecycleHarness::status() const {
  auto response = httpGet(http_port_, "/status");
  if (response.status != 200) return json();
  return json::parse(response.body, nullptr, false);
}

std::string LifecycleHarness::state() const {
  auto s = status();
  return s.is_object() ? s.value("state", "") : "";
}

json LifecycleHarness::stateFile() const {
  const std::string text = readTextFile(state_path_);
  if (text.empty()) return json();
  json parsed = json::parse(text, nullptr, false);
  return parsed.is_discarded() ? json() : parsed;
}

json LifecycleHarness::history() const {
  auto response = httpGet(http_port_, "/history");
  if (response.status == 200) {
    json parsed = json::parse(response.body, nullptr, false);
    if (parsed.is_array()) return parsed;
    if (parsed.is_object()) {
      for (const char* key : {"events", "history"})
        if (parsed.contains(key) && parsed[key].is_array()) return parsed[key];
    }
  }
  json file = stateFile();
  if (file.is_object() && file.contains("history") && file["history"].is_array())
    return file["history"];
  return json::array();
}

std::string LifecycleHarness::log() const {
  return daemon_ ? daemon_->log() : "";
}

std::string LifecycleHarness::describe() const {
  std::string text = "--- /status ---\n" + status().dump(2) + "\n--- state file ---\n" +
                     stateFile().dump(2) + "\n";
  if (daemon_) text += "--- pgfailover log (tail) ---\n" + daemon_->logTail(60);
  return text;
}

std::string LifecycleHarness::walReceiver(std::size_t i) const {
  return cluster_.sql(i, "SELECT status || ' ' || received_tli FROM pg_stat_wal_receiver");
}

std::string LifecycleHarness::inRecovery(std::size_t i) const {
  return cluster_.sql(i, "SELECT pg_is_in_recovery()");
}

// ---------------------------------------------------------------------------------------------
// Writer

Writer::Writer(std::string conninfo, std::string table, std::chrono::milliseconds interval)
    : conninfo_(std::move(conninfo)), table_(std::move(table)), interval_(interval) {}

Writer::~Writer() {
  stop();
}

void Writer::start() {
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void Writer::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<Writer::Ack> Writer::acks() const {
  std::lock_guard lock(mutex_);
  return acks_;
}

std::size_t Writer::ackCount() const {
  std::lock_guard lock(mutex_);
  return acks_.size();
}

std::string Writer::lastError() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

std::vector<std::chrono::system_clock::time_point> Writer::connects() const {
  std::lock_guard lock(mutex_);
  return connects_;
}

void Writer::run() {
  PGconn* conn = nullptr;
  long long next_id = 1;
  auto fail = [&](const std::string& what) {
    std::lock_guard lock(mutex_);
    last_error_ = what;
  };
  while (!stop_) {
    const auto due = std::chrono::steady_clock::now() + interval_;
    if (conn == nullptr) {
      conn = PQconnectdb(conninfo_.c_str());
      if (PQstatus(conn) != CONNECTION_OK) {
        fail(std::string("connect: ") + PQerrorMessage(conn));
        PQfinish(conn);
        conn = nullptr;
      } else {
        std::lock_guard lock(mutex_);
        connects_.push_back(std::chrono::system_clock::now());
      }
    }
    if (conn != nullptr) {
      const long long id = next_id++;
      ++attempts_;
      const std::string sql = "INSERT INTO " + table_ + " (id, port) VALUES (" +
                              std::to_string(id) +
                              ", inet_server_port()) RETURNING inet_server_port()";
      PGresult* result = PQexec(conn, sql.c_str());
      if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
        Ack ack;
        ack.id = id;
        ack.at = std::chrono::steady_clock::now();
        ack.wall = std::chrono::system_clock::now();
        ack.port = std::atoi(PQgetvalue(result, 0, 0));
        std::lock_guard lock(mutex_);
        acks_.push_back(ack);
      } else {
        // Whatever went wrong (read-only, terminated, connection lost), start over on a new
        // connection, which with target_session_attrs finds the writable node.
        fail(std::string("insert ") + std::to_string(id) + ": " + PQerrorMessage(conn));
        PQfinish(conn);
        conn = nullptr;
      }
      PQclear(result);
    }
    // Pacing of the workload, not synchronization.
    std::this_thread::sleep_until(due);
  }
  if (conn != nullptr) PQfinish(conn);
}

}  // namespace pgfailover::testing
