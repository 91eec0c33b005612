// One libpq connection whose every operation is bounded by a deadline: a hung or SIGSTOPped
// server, or a network that went silent, never holds the caller past the deadline. Connecting
// is PQconnectStartParams + PQconnectPoll + poll(2); a query is PQsendQuery(Params) + PQflush +
// poll + PQconsumeInput until PQgetResult returns null. When a query outlives its deadline the
// connection is dropped (the next user reconnects) and the server is asked to cancel it from a
// background thread, because PQcancel blocks and PostgreSQL 15's libpq has no async cancel.
//
// What it deliberately does not do: retry, classify errors (src/pg/errors.h does), or resolve
// host names without blocking. libpq calls getaddrinfo itself, which no deadline bounds, so a
// node's host is best an IP address or an /etc/hosts name. A Connection is used by one thread
// at a time.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.h"
#include "common/time.h"
#include "pg/errors.h"

namespace pgfailover::pg {

struct PgConnDeleter {
  void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
struct PgCancelDeleter {
  void operator()(PGcancel* cancel) const noexcept { PQfreeCancel(cancel); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;
using PgCancelPtr = std::unique_ptr<PGcancel, PgCancelDeleter>;

// One statement's result in text format.
class QueryResult {
 public:
  QueryResult() = default;
  explicit QueryResult(PGresult* result) : result_(result) {}

  explicit operator bool() const { return result_ != nullptr; }
  ExecStatusType status() const;
  int rows() const;
  int columns() const;
  bool isNull(int row, int column) const;
  // The value as text; empty for NULL (use isNull to tell them apart).
  std::string_view value(int row, int column) const;
  // For a failed statement: its SQLSTATE (may be empty) and primary message.
  std::string sqlstate() const;
  std::string errorMessage() const;

 private:
  PgResultPtr result_;
};

// The cancel key of a running query, usable after its connection is gone.
class PgCancel {
 public:
  explicit PgCancel(PGcancel* cancel = nullptr) : cancel_(cancel) {}
  bool valid() const { return cancel_ != nullptr; }
  // Blocks until the server took the request or the attempt failed: PQcancel opens a new
  // connection to the postmaster, which a stopped server never answers.
  bool send(std::string* error = nullptr);

 private:
  PgCancelPtr cancel_;
};

// Runs cancels on detached threads, at most one at a time per slot (one slot per node), so a
// node that stays hung collects one blocked thread rather than one per tick. Copies share the
// slot. The thread owns its PgCancel and the slot's flag and touches nothing else, so it may
// outlive the connection, the prober and the slot's other copies.
class CancelSlot {
 public:
  CancelSlot() : busy_(std::make_shared<std::atomic<bool>>(false)) {}
  // Starts a cancel unless one is still running. Returns whether it started.
  bool launch(PgCancel cancel);
  bool busy() const { return busy_->load(); }

 private:
  std::shared_ptr<std::atomic<bool>> busy_;
};

struct ConnectOptions {
  std::string host;
  int port = 5432;
  std::string dbname = "postgres";
  std::string user = "postgres";
  Secret password;  // passed as a keyword value, never inside a conninfo string
  std::string sslmode = "prefer";
  // File paths; empty leaves libpq's defaults (~/.postgresql/root.crt ...).
  std::string sslrootcert;
  std::string sslcert;
  std::string sslkey;
  std::string application_name = "pgfailover";
  // Also handed to libpq as connect_timeout (whole seconds, at least 2, libpq's minimum); the
  // deadline given to connect() is what really bounds the attempt.
  Millis connect_timeout{1000};
  // When set, the server cancels any statement of this session that runs longer: a second
  // bound, on the server's side, in case our cancel never reaches it.
  std::optional<Millis> statement_timeout;
};

// The outcome of exec(): the last statement's result, or the first error.
struct ExecOutcome {
  QueryResult result;
  std::optional<PgError> error;
  bool ok() const { return !error.has_value(); }
};

class Connection {
 public:
  explicit Connection(CancelSlot cancel_slot = {}) : cancel_slot_(std::move(cancel_slot)) {}
  Connection(Connection&&) = default;
  Connection& operator=(Connection&&) = default;

  // Closes any current connection and opens a new one, giving up at `deadline`. Every session
  // runs with synchronous_commit=local: a commit then proves the node can write its own WAL,
  // even when a synchronous standby is missing. Returns the error, or nullopt when connected.
  std::optional<PgError> connect(const ConnectOptions& options, SteadyTime deadline);
  bool connected() const { return conn_ != nullptr; }
  void close() { conn_.reset(); }

  // Sends `sql` and reads every result before `deadline`. Without parameters it uses the simple
  // protocol (several statements allowed); with parameters the extended protocol, text format.
  // On the deadline the query is cancelled in the background and the connection dropped; when
  // the server closes the connection it is dropped too (error.connection_lost).
  ExecOutcome exec(const std::string& sql, const std::vector<std::string>& params,
                   SteadyTime deadline);
  ExecOutcome exec(const std::string& sql, SteadyTime deadline) { return exec(sql, {}, deadline); }

  // The server process serving this connection; 0 when not connected.
  int backendPid() const;

 private:
  ExecOutcome lost(ExecOutcome outcome, std::string_view fallback);
  ExecOutcome timedOut(ExecOutcome outcome, SteadyTime started, SteadyTime deadline);
  // Cancels the running query in the background and drops the connection.
  void abandon();

  PgConnPtr conn_;
  CancelSlot cancel_slot_;
};

}  // namespace pgfailover::pg
