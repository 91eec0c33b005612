#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace pgfailover {

namespace {

const char* levelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// sd-daemon(3)'s SD_DEBUG..SD_ERR.
const char* syslogPrefix(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "<7>";
    case LogLevel::kInfo:
      return "<6>";
    case LogLevel::kWarn:
      return "<4>";
    case LogLevel::kError:
      return "<3>";
  }
  return "<6>";
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                (utc.tm_year + 1900) % 10000, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                utc.tm_sec, static_cast<int>(ms));
  return buffer;
}

}  // namespace

LogLevel Logger::parseLevel(std::string_view text) {
  if (text == "debug") return LogLevel::kDebug;
  if (text == "warn") return LogLevel::kWarn;
  if (text == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

// One event, one line: a control character in a message or a field (a request path from the
// network, a node's error text, a multi-line step log) is written as an escape, so nothing can
// start a forged line or, in the journal, a forged priority.
std::string oneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

void Logger::log(LogLevel level, std::string_view event, std::string_view message,
                 std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  std::string line;
  if (json_) {
    nlohmann::json j = {
        {"ts", timestamp()}, {"level", levelName(level)}, {"event", event}, {"msg", message}};
    for (const auto& [key, value] : fields) j[std::string(key)] = value;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    // In the journal the priority prefix replaces the timestamp (journald stamps each line).
    line = (journal_ ? std::string(syslogPrefix(level)) : timestamp() + " ") + levelName(level) +
           " " + std::string(event) + ": " + oneLine(message);
    for (const auto& [key, value] : fields) line += " " + std::string(key) + "=" + oneLine(value);
  }
  line += '\n';
  std::lock_guard lock(mutex_);
  out_ << line << std::flush;
}

}  // namespace pgfailover
