#include "runtime/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace pgfailover::runtime {

namespace {

using nlohmann::json;

std::int64_t toMillis(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
WallTime fromMillis(std::int64_t ms) {
  return WallTime{} + std::chrono::milliseconds(ms);
}

std::string isoTime(WallTime t) {
  const auto ms = toMillis(t);
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                (utc.tm_year + 1900) % 10000, (utc.tm_mon + 1) % 100, utc.tm_mday % 100,
                utc.tm_hour % 100, utc.tm_min % 100, utc.tm_sec % 100, static_cast<int>(ms % 1000));
  return buffer;
}

json eventToJson(const HistoryEvent& e) {
  return {{"at", isoTime(e.at)},
          {"at_ms", toMillis(e.at)},
          {"kind", e.kind},
          {"node", e.node},
          {"from", e.from},
          {"to", e.to},
          {"result", e.result},
          {"reason", e.reason},
          {"duration_ms", e.duration.count()},
          {"request_id", e.request_id == 0 ? json(nullptr) : json(e.request_id)}};
}

Status errnoStatus(const std::string& what, const std::string& path) {
  return {StatusCode::kUnavailable, what + " " + path + ": " + std::strerror(errno)};
}

}  // namespace

void PersistedState::addEvent(HistoryEvent event) {
  history.push_back(std::move(event));
  while (history.size() > kMaxHistory) history.pop_front();
}

std::string historyToJson(const std::deque<HistoryEvent>& history) {
  json events = json::array();
  for (const auto& e : history) events.push_back(eventToJson(e));
  return events.dump(2);
}

std::string toJson(const PersistedState& state) {
  json events = json::array();
  for (const auto& e : state.history) events.push_back(eventToJson(e));
  json out = {{"format", 1},
              {"primary", state.primary ? json(*state.primary) : json(nullptr)},
              {"primary_timeline", state.primary_timeline},
              {"system_identifier", std::to_string(state.system_identifier)},
              {"failovers", state.failovers},
              {"history", events}};
  if (state.promotion_intent) out["promotion_intent"] = {{"node", *state.promotion_intent}};
  return out.dump(2);
}

namespace {

// A field of the state file that is wrong in type or range makes the whole file corrupt: a
// timeline of -1 must not become 4294967295, nor "12abc" 12.
struct CorruptField : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::uint64_t unsignedField(const json& object, const char* key, std::uint64_t max,
                            std::uint64_t absent = 0) {
  const auto it = object.find(key);
  // null is how the file says "none" (an event without an operator request).
  if (it == object.end() || it->is_null()) return absent;
  if (!it->is_number_unsigned() || it->get<std::uint64_t>() > max)
    throw CorruptField(std::string(key) + " is " + it->dump() + ", not a whole number from 0 to " +
                       std::to_string(max));
  return it->get<std::uint64_t>();
}

std::int64_t integerField(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) return 0;
  if (!it->is_number_integer())
    throw CorruptField(std::string(key) + " is " + it->dump() + ", not a whole number");
  return it->get<std::int64_t>();
}

std::string stringField(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) return "";
  if (!it->is_string()) throw CorruptField(std::string(key) + " is " + it->dump() + ", not text");
  return it->get<std::string>();
}

}  // namespace

std::optional<PersistedState> parseState(const std::string& text, std::string& error) {
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    error = "not valid JSON";
    return std::nullopt;
  }
  try {
    if (!root.contains("format") || root["format"] != 1) {
      error = "unknown format version";
      return std::nullopt;
    }
    PersistedState state;
    if (root.contains("primary") && !root["primary"].is_null())
      state.primary = stringField(root, "primary");
    state.primary_timeline =
        static_cast<std::uint32_t>(unsignedField(root, "primary_timeline", 0xFFFFFFFFull));
    const std::string identifier =
        root.contains("system_identifier") ? stringField(root, "system_identifier") : "0";
    if (identifier.empty() || identifier.size() > 20 ||
        identifier.find_first_not_of("0123456789") != std::string::npos)
      throw CorruptField("system_identifier is \"" + identifier + "\", not a decimal number");
    try {
      state.system_identifier = std::stoull(identifier);
    } catch (const std::out_of_range&) {
      throw CorruptField("system_identifier " + identifier + " does not fit 64 bits");
    }
    state.failovers = unsignedField(root, "failovers", ~std::uint64_t{0});
    if (root.contains("promotion_intent") && !root["promotion_intent"].is_null()) {
      const json& intent = root["promotion_intent"];
      if (!intent.is_object() || stringField(intent, "node").empty())
        throw CorruptField("promotion_intent is " + intent.dump() + ", not {\"node\": <name>}");
      state.promotion_intent = stringField(intent, "node");
    }
    const json history = root.contains("history") ? root["history"] : json::array();
    if (!history.is_array()) throw CorruptField("history is not a list");
    for (const auto& e : history) {
      if (!e.is_object()) throw CorruptField("a history event is not an object");
      HistoryEvent event;
      event.at = fromMillis(integerField(e, "at_ms"));
      event.kind = stringField(e, "kind");
      event.node = stringField(e, "node");
      event.from = stringField(e, "from");
      event.to = stringField(e, "to");
      event.result = stringField(e, "result");
      event.reason = stringField(e, "reason");
      const std::int64_t duration = integerField(e, "duration_ms");
      if (duration < 0) throw CorruptField("a history event's duration_ms is negative");
      event.duration = Millis{duration};
      event.request_id = unsignedField(e, "request_id", ~std::uint64_t{0});
      state.addEvent(std::move(event));
    }
    return state;
  } catch (const CorruptField& e) {
    error = e.what();
    return std::nullopt;
  } catch (const std::exception& e) {
    error = std::string("malformed field: ") + e.what();
    return std::nullopt;
  }
}

std::optional<PersistedState> StateFile::load(Status& status) const {
  // A FIFO or a device would block the read; the file pgfailover writes is a regular one.
  struct stat info {};
  if (::stat(path_.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    status = {StatusCode::kFailedPrecondition,
              "state file " + path_ + " is not a regular file; move it aside"};
    return std::nullopt;
  }
  std::ifstream file(path_);
  if (!file) {
    if (errno == ENOENT) {
      status = Status::ok();
      return PersistedState{};
    }
    status = errnoStatus("cannot read state file", path_);
    return std::nullopt;
  }
  std::stringstream text;
  text << file.rdbuf();
  std::string error;
  auto state = parseState(text.str(), error);
  if (!state) {
    status = {StatusCode::kFailedPrecondition, "state file " + path_ + " is corrupt (" + error +
                                                   "); move it aside to start from what the "
                                                   "cluster shows"};
    return std::nullopt;
  }
  status = Status::ok();
  return state;
}

Status StateFile::save(const PersistedState& state) const {
  const std::string tmp = path_ + ".tmp";
  const std::string text = toJson(state) + "\n";
  // A new file of our own, never one that is there already: a symlink planted at the
  // temporary name would otherwise have the state written through it (O_EXCL also refuses to
  // follow a symlink; O_NOFOLLOW says so once more). A leftover of a crash is removed first
  // (unlink removes a symlink itself, not what it points to).
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return errnoStatus("cannot remove", tmp);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errnoStatus("cannot create", tmp);
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = errnoStatus("cannot write", tmp);
      ::close(fd);
      return s;
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = errnoStatus("cannot fsync", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return errnoStatus("cannot rename onto", path_);
  // The rename is durable only once the folder is synced.
  const auto slash = path_.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::ok();
}

}  // namespace pgfailover::runtime
