// One log line per event: human-readable text by default, JSON lines with --log-format json.
// Thread-safe; lines are written whole to stderr. Callers pass no secrets: messages are built
// from names, states and libpq errors, none of which carry a password.
#pragma once

#include <atomic>
#include <initializer_list>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace pgfailover {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// `text` with every control character written as an escape (\n, \r, \t, \xHH): what a text
// log line holds of a message or field, so that one event stays one line.
std::string oneLine(std::string_view text);

class Logger {
 public:
  using Field = std::pair<std::string_view, std::string>;

  Logger(std::ostream& out, bool json, LogLevel level) : out_(out), json_(json), level_(level) {}

  // `event` is a short stable key ("decision", "promote", "probe_failed"); `message` a sentence.
  void log(LogLevel level, std::string_view event, std::string_view message,
           std::initializer_list<Field> fields = {});
  void info(std::string_view event, std::string_view message,
            std::initializer_list<Field> fields = {}) {
    log(LogLevel::kInfo, event, message, fields);
  }
  void warn(std::string_view event, std::string_view message,
            std::initializer_list<Field> fields = {}) {
    log(LogLevel::kWarn, event, message, fields);
  }
  void error(std::string_view event, std::string_view message,
             std::initializer_list<Field> fields = {}) {
    log(LogLevel::kError, event, message, fields);
  }
  void debug(std::string_view event, std::string_view message,
             std::initializer_list<Field> fields = {}) {
    log(LogLevel::kDebug, event, message, fields);
  }
  bool enabled(LogLevel level) const { return level >= level_.load(); }
  // SIGHUP applies a new log.level while other threads log.
  void setLevel(LogLevel level) { level_ = level; }
  // Under systemd with stderr going to the journal: text lines carry the syslog priority as a
  // "<N>" prefix (journald files the line under it) and no timestamp (journald adds its own).
  void setJournal(bool journal) { journal_ = journal; }

  static LogLevel parseLevel(std::string_view text);

 private:
  std::mutex mutex_;
  std::ostream& out_;
  bool json_;
  std::atomic<LogLevel> level_;
  bool journal_ = false;
};

}  // namespace pgfailover
