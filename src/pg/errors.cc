#include "pg/errors.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

namespace pgfailover::pg {

namespace {

std::string toLower(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lowered;
}

bool containsAny(const std::string& haystack, std::initializer_list<std::string_view> needles) {
  return std::any_of(needles.begin(), needles.end(), [&](std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
  });
}

bool isSqlStateChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

// Position just after a "<severity>:  " separator where a verbose SQLSTATE ("57P03: ") follows,
// or npos. libpq writes the severity, a colon and two spaces, then the code and ": ".
std::size_t findVerboseCode(std::string_view text, std::size_t from) {
  for (std::size_t at = text.find(":  ", from); at != std::string_view::npos;
       at = text.find(":  ", at + 1)) {
    std::size_t code = at + 3;
    if (code + 7 > text.size()) return std::string_view::npos;
    bool all = std::all_of(text.begin() + code, text.begin() + code + 5, isSqlStateChar);
    if (all && text[code + 5] == ':' && text[code + 6] == ' ') return code;
  }
  return std::string_view::npos;
}

// Phrases are matched on the lower-cased text. Libpq concatenates one error per address it
// tried ("localhost" is ::1 and 127.0.0.1), so the order below picks the weakest evidence of
// death among them: any sign of a live server wins over silence, and silence over a refusal.
core::ProbeFailure classifyByMessage(std::string_view message) {
  const std::string text = toLower(message);
  if (containsAny(text, {"is starting up", "is shutting down", "is in recovery mode",
                         "not yet accepting connections", "not accepting connections",
                         "consistent recovery state has not been yet reached"})) {
    return core::ProbeFailure::kStartingUp;
  }
  if (containsAny(text, {"authentication failed", "no pg_hba.conf entry", "too many clients",
                         "too many connections", "remaining connection slots are reserved",
                         "no password supplied", "does not exist", "permission denied"})) {
    return core::ProbeFailure::kRejected;
  }
  if (containsAny(text,
                  {"timeout expired", "timed out", "no route to host", "network is unreachable",
                   "host is unreachable", "could not translate host name", "name resolution"})) {
    return core::ProbeFailure::kTimeout;
  }
  if (containsAny(text,
                  {"connection refused", "connection reset", "server closed the connection",
                   "no such file or directory", "broken pipe", "eof detected",
                   "no connection to the server", "connection not open", "terminating connection",
                   "could not receive data from server", "could not send data to server"})) {
    return core::ProbeFailure::kRefused;
  }
  // Something answered in a way we do not recognise: alive, and something else is wrong. This
  // never starts the short confirmed-down timeout on a guess.
  return core::ProbeFailure::kRejected;
}

}  // namespace

core::ProbeFailure classifyFailure(std::string_view message, std::string_view sqlstate,
                                   bool deadline_expired) {
  if (deadline_expired) return core::ProbeFailure::kTimeout;
  if (!sqlstate.empty()) {
    // cannot_connect_now: starting up, shutting down, in recovery, not yet consistent.
    if (sqlstate == "57P03") return core::ProbeFailure::kStartingUp;
    // crash_shutdown: another backend crashed and the postmaster is resetting; crash recovery
    // follows, so the server is restarting, not gone.
    if (sqlstate == "57P02") return core::ProbeFailure::kStartingUp;
    // admin_shutdown: the server closed our connection (fast shutdown, postmaster death,
    // pg_terminate_backend).
    if (sqlstate == "57P01") return core::ProbeFailure::kRefused;
    // query_canceled: statement_timeout fired on the server, which is as slow as it is alive.
    if (sqlstate == "57014") return core::ProbeFailure::kTimeout;
    // Connection exceptions say little by their code; the text says refused, reset or timeout.
    if (sqlstate.substr(0, 2) != "08") return core::ProbeFailure::kRejected;
  }
  return classifyByMessage(message);
}

std::optional<std::string> extractSqlState(std::string_view verbose_message) {
  std::size_t code = findVerboseCode(verbose_message, 0);
  if (code == std::string_view::npos) return std::nullopt;
  return std::string(verbose_message.substr(code, 5));
}

std::string stripVerboseDetail(std::string_view verbose_message) {
  std::string out;
  std::size_t line_start = 0;
  while (line_start < verbose_message.size()) {
    std::size_t line_end = verbose_message.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = verbose_message.size();
    std::string_view line = verbose_message.substr(line_start, line_end - line_start);
    if (line.substr(0, 9) != "LOCATION:") {
      std::size_t from = 0;
      for (std::size_t code = findVerboseCode(line, from); code != std::string_view::npos;
           code = findVerboseCode(line, from)) {
        out.append(line.substr(from, code - from));
        from = code + 7;  // "57P03: "
      }
      out.append(line.substr(from));
      if (line_end < verbose_message.size()) out.push_back('\n');
    }
    line_start = line_end + 1;
  }
  return out;
}

std::string oneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string redact(std::string_view text, const Secret& secret) {
  std::string out(text);
  const std::string& value = secret.revealForUse();
  if (!value.empty()) {
    for (std::size_t at = out.find(value); at != std::string::npos;
         at = out.find(value, at + std::char_traits<char>::length(Secret::kRedacted))) {
      out.replace(at, value.size(), Secret::kRedacted);
    }
  }
  // A conninfo string echoed back would carry "password=value" or "password='v a l'".
  static constexpr std::string_view kKey = "password=";
  std::string lowered = toLower(out);
  std::string result;
  std::size_t from = 0;
  for (std::size_t at = lowered.find(kKey); at != std::string::npos;
       at = lowered.find(kKey, from)) {
    std::size_t value_start = at + kKey.size();
    std::size_t value_end = value_start;
    if (value_end < out.size() && out[value_end] == '\'') {
      ++value_end;
      while (value_end < out.size() && out[value_end] != '\'') {
        if (out[value_end] == '\\') ++value_end;
        ++value_end;
      }
      value_end = std::min(value_end + 1, out.size());
    } else {
      while (value_end < out.size() && !std::isspace(static_cast<unsigned char>(out[value_end])))
        ++value_end;
    }
    result.append(out, from, value_start - from);
    result.append(Secret::kRedacted);
    from = value_end;
  }
  result.append(out, from, std::string::npos);
  return result;
}

std::string describeNode(std::string_view name, std::string_view host, int port) {
  std::string out = "node '";
  out.append(name);
  out.append("' (");
  out.append(host);
  out.push_back(':');
  out.append(std::to_string(port));
  out.push_back(')');
  return out;
}

std::string nodeMessage(std::string_view node_description, std::string_view text,
                        const Secret& secret) {
  std::string out(node_description);
  out.append(": ");
  out.append(oneLine(redact(text, secret)));
  return out;
}

}  // namespace pgfailover::pg
