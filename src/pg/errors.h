// Turns what libpq and the server said into a core::ProbeFailure and a one-line message that
// names the node. Everything here is a pure function over strings, so the classification is
// tested without a server. It deliberately does not talk to libpq: src/pg/connection.h gathers
// the message, the SQLSTATE and whether our own deadline expired, and hands them in.
//
// SQLSTATE wins over the message text when there is one, because server messages follow the
// server's lc_messages while SQLSTATEs do not. libpq's own messages (refused, timeout, reset)
// carry no SQLSTATE and are matched in English: pgfailover never calls setlocale, so libpq
// reports in English.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/secret.h"
#include "core/observation.h"

namespace pgfailover::pg {

// What went wrong with one libpq operation, before it is classified.
struct PgError {
  std::string message;            // libpq's or the server's text, possibly several lines
  std::string sqlstate;           // five characters, or empty when the server did not send one
  bool deadline_expired = false;  // our deadline ran out, not libpq's or the server's
  bool connection_lost = false;   // the connection is unusable afterwards
};

// The strength of evidence a failure gives that the node is down. `message` may be several
// lines and in any case. `deadline_expired` means our own deadline ran out, which is always
// silence, whatever the message says.
core::ProbeFailure classifyFailure(std::string_view message, std::string_view sqlstate,
                                   bool deadline_expired);
inline core::ProbeFailure classifyFailure(const PgError& error) {
  return classifyFailure(error.message, error.sqlstate, error.deadline_expired);
}

// libpq builds connection-time errors from the server's ErrorResponse and then drops it, so the
// SQLSTATE is only available in the text. With PQERRORS_VERBOSE the text reads
// "...failed: FATAL:  57P03: the database system is starting up\nLOCATION:  ...". Returns the
// first SQLSTATE found after a severity, or nullopt.
std::optional<std::string> extractSqlState(std::string_view verbose_message);

// Removes what PQERRORS_VERBOSE adds (the "57P03: " code and the LOCATION lines), so the text
// reads as libpq's default style again.
std::string stripVerboseDetail(std::string_view verbose_message);

// Collapses newlines, tabs and runs of spaces into single spaces and trims the ends: an
// observation's error is one line.
std::string oneLine(std::string_view text);

// Replaces every occurrence of the secret (and any "password=..." a conninfo string might
// carry) with "<redacted>". Defence in depth: pgfailover passes the password only as a keyword
// value, but a message must never carry it even if libpq or the server echoed it.
std::string redact(std::string_view text, const Secret& secret);

// "node 'pg1' (127.0.0.1:5433)", the prefix of every message about a node.
std::string describeNode(std::string_view name, std::string_view host, int port);

// The error text for an observation or a Status: "<node>: <one line, redacted>".
std::string nodeMessage(std::string_view node_description, std::string_view text,
                        const Secret& secret);

}  // namespace pgfailover::pg
