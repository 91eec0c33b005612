// Building shell command lines safely and logging them without their secrets. Every command
// pgfailover runs on a node goes through a shell (sshd runs `$SHELL -c command`; LocalRunner runs
// `/bin/sh -c command`), so every value put into one, a data directory or a conninfo string,
// is quoted with shellQuote(), and every command line is passed through redactForLog() before
// it reaches a log line, an error message or /status.
//
// What it deliberately does not do: parse shell syntax. redactForLog() is a conservative
// pattern match over the text; it hides more than needed rather than less, and it only knows
// the secret shapes pgfailover itself writes (see its comment).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgfailover::ssh {

// `text` as one single-quoted shell word: 'it'\''s' for it's, '' for the empty string.
// Always quoted, so the result is safe whatever the text holds (spaces, $, `, ;, newlines).
std::string shellQuote(std::string_view text);

// argv as a command line: each word left bare when it holds only characters that no shell
// treats specially ([A-Za-z0-9_@%+=:,./-]), single-quoted otherwise. For readable logs:
// shellJoin({"pg_ctl", "stop", "-D", "/var/lib/postgresql/15/main", "-m", "fast"}) is
// "pg_ctl stop -D /var/lib/postgresql/15/main -m fast".
std::string shellJoin(const std::vector<std::string>& argv);

// `text` with secrets replaced by "<redacted>", for logging a command line (or its output):
//   - the value of any key=value whose key ends in "password", "passwd", "secret" or "token"
//     (case-insensitive): conninfo "password=...", "PGPASSWORD=...", "--password=...",
//     "sslpassword=..."; a quoted value ('...' or "...") is hidden up to its closing quote, an
//     unquoted one up to the next blank;
//   - the password in a URI's user information: "postgresql://user:SECRET@host".
// Quote characters that only close an enclosing shell word are kept so the line still reads.
std::string redactForLog(std::string_view text);

inline constexpr std::string_view kRedacted = "<redacted>";

}  // namespace pgfailover::ssh
