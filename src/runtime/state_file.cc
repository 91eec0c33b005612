#include "runtime/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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
  return out.dump(2);
}

std::optional<PersistedState> parseState(const std::string& text, std::string& error) {
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    error = "not valid JSON";
    return std::nullopt;
  }
  try {
    if (root.value("format", 0) != 1) {
      error = "unknown format version";
      return std::nullopt;
    }
    PersistedState state;
    if (root.contains("primary") && root["primary"].is_string())
      state.primary = root["primary"].get<std::string>();
    state.primary_timeline = root.value("primary_timeline", 0u);
    state.system_identifier = std::stoull(root.value("system_identifier", std::string("0")));
    state.failovers = root.value("failovers", 0ull);
    for (const auto& e : root.value("history", json::array())) {
      HistoryEvent event;
      event.at = fromMillis(e.value("at_ms", std::int64_t{0}));
      event.kind = e.value("kind", "");
      event.node = e.value("node", "");
      event.from = e.value("from", "");
      event.to = e.value("to", "");
      event.result = e.value("result", "");
      event.reason = e.value("reason", "");
      event.duration = Millis{e.value("duration_ms", std::int64_t{0})};
      if (const auto id = e.find("request_id"); id != e.end() && id->is_number_unsigned())
        event.request_id = id->get<std::uint64_t>();
      state.addEvent(std::move(event));
    }
    return state;
  } catch (const std::exception& e) {
    error = std::string("malformed field: ") + e.what();
    return std::nullopt;
  }
}

std::optional<PersistedState> StateFile::load(Status& status) const {
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
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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
