#include "pg/connection.h"

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <system_error>
#include <thread>

namespace pgfailover::pg {

namespace {

enum class Readiness { kReady, kTimeout, kError };

// Waits until the socket is ready or the deadline passes. POLLERR and POLLHUP count as ready:
// libpq then reads the error itself and reports it in its own words.
Readiness waitForSocket(int fd, bool for_read, bool for_write, SteadyTime deadline) {
  pollfd descriptor{};
  descriptor.fd = fd;
  descriptor.events = static_cast<short>((for_read ? POLLIN : 0) | (for_write ? POLLOUT : 0));
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    auto remaining = std::chrono::ceil<Millis>(deadline - now).count();
    if (remaining < 0) remaining = 0;
    if (remaining > INT_MAX) remaining = INT_MAX;
    descriptor.revents = 0;
    int rc = ::poll(&descriptor, 1, static_cast<int>(remaining));
    if (rc > 0) return Readiness::kReady;
    if (rc == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return Readiness::kTimeout;
      continue;
    }
    if (errno != EINTR) return Readiness::kError;
  }
}

std::string pollFailure() {
  return std::string("poll() failed: ") + std::strerror(errno);
}

std::string timeoutMessage(std::string_view what, SteadyTime started, SteadyTime deadline) {
  auto budget = std::chrono::ceil<Millis>(deadline - started).count();
  if (budget < 0) budget = 0;
  std::string out = "timeout expired after ";
  out.append(std::to_string(budget));
  out.append(" ms while ");
  out.append(what);
  return out;
}

// libpq's connect_timeout counts whole seconds and treats anything below 2 as 2.
std::string connectTimeoutSeconds(Millis timeout) {
  auto seconds = std::chrono::ceil<std::chrono::seconds>(timeout).count();
  return std::to_string(seconds < 2 ? 2 : seconds);
}

void ignoreNotice(void*, const char*) {}

}  // namespace

ExecStatusType QueryResult::status() const {
  return result_ ? PQresultStatus(result_.get()) : PGRES_FATAL_ERROR;
}

int QueryResult::rows() const {
  return result_ ? PQntuples(result_.get()) : 0;
}

int QueryResult::columns() const {
  return result_ ? PQnfields(result_.get()) : 0;
}

bool QueryResult::isNull(int row, int column) const {
  if (!result_ || row < 0 || row >= rows() || column < 0 || column >= columns()) return true;
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string_view QueryResult::value(int row, int column) const {
  if (isNull(row, column)) return {};
  return std::string_view(PQgetvalue(result_.get(), row, column),
                          static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

std::string QueryResult::sqlstate() const {
  if (!result_) return {};
  const char* code = PQresultErrorField(result_.get(), PG_DIAG_SQLSTATE);
  return code ? code : "";
}

std::string QueryResult::errorMessage() const {
  if (!result_) return {};
  // The primary message alone: the formatted one adds the statement text and a caret line.
  const char* primary = PQresultErrorField(result_.get(), PG_DIAG_MESSAGE_PRIMARY);
  if (primary && *primary) return primary;
  return PQresultErrorMessage(result_.get());
}

bool PgCancel::send(std::string* error) {
  if (!cancel_) {
    if (error) *error = "no cancel key";
    return false;
  }
  char buffer[256] = {};
  bool sent = PQcancel(cancel_.get(), buffer, sizeof buffer) == 1;
  if (!sent && error) *error = buffer;
  return sent;
}

bool CancelSlot::launch(PgCancel cancel) {
  if (!cancel.valid()) return false;
  bool expected = false;
  if (!busy_->compare_exchange_strong(expected, true)) return false;
  try {
    std::thread([cancel = std::move(cancel), busy = busy_]() mutable {
      cancel.send();
      busy->store(false);
    }).detach();
  } catch (const std::system_error&) {
    busy_->store(false);
    return false;
  }
  return true;
}

std::optional<PgError> Connection::connect(const ConnectOptions& options, SteadyTime deadline) {
  close();
  const SteadyTime started = std::chrono::steady_clock::now();

  const std::string port = std::to_string(options.port);
  const std::string connect_timeout = connectTimeoutSeconds(options.connect_timeout);
  std::string server_options = "-c synchronous_commit=local";
  if (options.statement_timeout) {
    server_options += " -c statement_timeout=" + std::to_string(options.statement_timeout->count());
  }
  // pgfailover authenticates with passwords; probing for GSSAPI encryption first would only add
  // a round trip and Kerberos library work to every connect.
  const std::string gssencmode = "disable";
  std::vector<const char*> keywords;
  std::vector<const char*> values;
  // libpq reads the values after this lambda returns: each must be a named string that lives
  // until PQconnectStartParams, never a temporary.
  auto add = [&](const char* keyword, const std::string& value) {
    keywords.push_back(keyword);
    values.push_back(value.c_str());
  };
  add("host", options.host);
  add("port", port);
  add("dbname", options.dbname);
  add("user", options.user);
  if (!options.password.empty()) add("password", options.password.revealForUse());
  add("sslmode", options.sslmode);
  if (!options.sslrootcert.empty()) add("sslrootcert", options.sslrootcert);
  if (!options.sslcert.empty()) add("sslcert", options.sslcert);
  if (!options.sslkey.empty()) add("sslkey", options.sslkey);
  add("gssencmode", gssencmode);
  add("application_name", options.application_name);
  add("connect_timeout", connect_timeout);
  add("options", server_options);
  keywords.push_back(nullptr);
  values.push_back(nullptr);

  // expand_dbname = 0: no value is ever parsed as a conninfo string.
  PgConnPtr conn(PQconnectStartParams(keywords.data(), values.data(), 0));
  if (!conn) return PgError{"out of memory while starting a libpq connection", "", false, true};

  auto failure = [&]() {
    std::string text = PQerrorMessage(conn.get());
    PgError error{stripVerboseDetail(text), extractSqlState(text).value_or(""), false, true};
    return error;
  };
  if (PQstatus(conn.get()) == CONNECTION_BAD) return failure();

  // Verbose until connected, so that a refusal during startup carries its SQLSTATE in the text
  // (libpq keeps no result for it); see extractSqlState.
  PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
  // CREATE ... IF NOT EXISTS and friends send notices, which libpq would print on stderr.
  PQsetNoticeProcessor(conn.get(), ignoreNotice, nullptr);

  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK) {
    if (state == PGRES_POLLING_FAILED) return failure();
    int fd = PQsocket(conn.get());
    if (fd < 0) return failure();
    Readiness ready =
        waitForSocket(fd, state == PGRES_POLLING_READING, state == PGRES_POLLING_WRITING, deadline);
    if (ready == Readiness::kTimeout) {
      return PgError{timeoutMessage("connecting", started, deadline), "", true, true};
    }
    if (ready == Readiness::kError) return PgError{pollFailure(), "", false, true};
    state = PQconnectPoll(conn.get());
  }

  PQsetErrorVerbosity(conn.get(), PQERRORS_DEFAULT);
  // Non-blocking from here on, so that neither sending a query nor PQfinish's goodbye message
  // can wait on a full socket buffer.
  if (PQsetnonblocking(conn.get(), 1) != 0) return failure();
  conn_ = std::move(conn);
  return std::nullopt;
}

int Connection::backendPid() const {
  return conn_ ? PQbackendPID(conn_.get()) : 0;
}

ExecOutcome Connection::lost(ExecOutcome outcome, std::string_view fallback) {
  std::string text = conn_ ? PQerrorMessage(conn_.get()) : "";
  if (oneLine(text).empty()) text = fallback;
  bool bad = !conn_ || PQstatus(conn_.get()) == CONNECTION_BAD;
  outcome.error = PgError{text, "", false, bad};
  if (bad) {
    close();
  } else {
    // The protocol state is unknown after a failed send or read; start over next time.
    abandon();
    outcome.error->connection_lost = true;
  }
  return outcome;
}

ExecOutcome Connection::timedOut(ExecOutcome outcome, SteadyTime started, SteadyTime deadline) {
  outcome.error =
      PgError{timeoutMessage("waiting for the query", started, deadline), "", true, true};
  abandon();
  return outcome;
}

void Connection::abandon() {
  if (!conn_) return;
  if (PQtransactionStatus(conn_.get()) == PQTRANS_ACTIVE) {
    cancel_slot_.launch(PgCancel(PQgetCancel(conn_.get())));
  }
  conn_.reset();
}

ExecOutcome Connection::exec(const std::string& sql, const std::vector<std::string>& params,
                             SteadyTime deadline) {
  ExecOutcome outcome;
  const SteadyTime started = std::chrono::steady_clock::now();
  if (!conn_) {
    outcome.error = PgError{"no connection to the server", "", false, true};
    return outcome;
  }
  PGconn* conn = conn_.get();

  int sent = 0;
  if (params.empty()) {
    sent = PQsendQuery(conn, sql.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& param : params) values.push_back(param.c_str());
    sent = PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  }
  if (!sent) return lost(std::move(outcome), "could not send the query");

  // In non-blocking mode the query may sit partly in libpq's buffer; push it out, reading
  // meanwhile so that a server busy writing to us cannot deadlock the exchange.
  for (;;) {
    int flushed = PQflush(conn);
    if (flushed == 0) break;
    if (flushed < 0) return lost(std::move(outcome), "could not send data to server");
    Readiness ready = waitForSocket(PQsocket(conn), true, true, deadline);
    if (ready == Readiness::kTimeout) return timedOut(std::move(outcome), started, deadline);
    if (ready == Readiness::kError) {
      outcome.error = PgError{pollFailure(), "", false, true};
      abandon();
      return outcome;
    }
    if (!PQconsumeInput(conn)) return lost(std::move(outcome), "could not receive data");
  }

  std::optional<PgError> first_error;
  for (;;) {
    while (PQisBusy(conn)) {
      Readiness ready = waitForSocket(PQsocket(conn), true, false, deadline);
      if (ready == Readiness::kTimeout) return timedOut(std::move(outcome), started, deadline);
      if (ready == Readiness::kError) {
        outcome.error = PgError{pollFailure(), "", false, true};
        abandon();
        return outcome;
      }
      if (!PQconsumeInput(conn)) {
        // A server that ends a session says why first (57P01 "terminating connection ..."),
        // then closes; keep its words rather than libpq's "server closed the connection".
        if (!first_error) return lost(std::move(outcome), "could not receive data");
        first_error->connection_lost = true;
        outcome.error = std::move(first_error);
        close();
        return outcome;
      }
    }
    QueryResult result(PQgetResult(conn));
    if (!result) break;
    switch (result.status()) {
      case PGRES_COMMAND_OK:
      case PGRES_TUPLES_OK:
      case PGRES_EMPTY_QUERY:
        if (!first_error) outcome.result = std::move(result);
        break;
      case PGRES_COPY_IN:
      case PGRES_COPY_OUT:
      case PGRES_COPY_BOTH:
        // Never issued by pgfailover; there is no cheap way back to an idle session.
        outcome.error = PgError{"unexpected COPY response", "", false, true};
        close();
        return outcome;
      default:
        if (!first_error) first_error = PgError{result.errorMessage(), result.sqlstate()};
        break;
    }
  }
  if (PQstatus(conn) == CONNECTION_BAD) {
    if (!first_error) first_error = PgError{PQerrorMessage(conn), ""};
    first_error->connection_lost = true;
    close();
  }
  outcome.error = std::move(first_error);
  return outcome;
}

}  // namespace pgfailover::pg
