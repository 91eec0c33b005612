#include "ssh/command_runner.h"

#include <algorithm>

namespace pgfailover::ssh {
namespace {

// The last non-empty line of a stream: what a failing tool usually says last is why it failed.
std::string lastLine(const std::string& text) {
  std::size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  std::size_t begin = text.rfind('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return text.substr(begin, end - begin + 1);
}

}  // namespace

std::string CommandResult::summary() const {
  if (!status.isOk()) return status.message();
  std::string how;
  if (!signal.empty()) {
    how = "killed by signal " + signal;
  } else {
    how = "exit " + std::to_string(exit_code);
  }
  std::string why = lastLine(stderr_text);
  if (why.empty() && exit_code != 0) why = lastLine(stdout_text);
  return why.empty() ? how : how + ": " + why;
}

void OutputCapture::append(const char* data, std::size_t size) {
  const std::size_t head_limit = limit_ / 2;
  const std::size_t tail_limit = limit_ - head_limit;
  if (head_.size() < head_limit) {
    std::size_t take = std::min(size, head_limit - head_.size());
    head_.append(data, take);
    data += take;
    size -= take;
  }
  if (size == 0) return;
  tail_.append(data, size);
  // Trim only when the tail holds twice its limit, so appending stays linear overall.
  if (tail_.size() > 2 * tail_limit) {
    std::size_t excess = tail_.size() - tail_limit;
    dropped_ += excess;
    tail_.erase(0, excess);
  }
}

bool OutputCapture::truncated() const {
  return dropped_ > 0 || tail_.size() > limit_ - limit_ / 2;
}

std::string OutputCapture::text() const {
  const std::size_t tail_limit = limit_ - limit_ / 2;
  std::size_t excess = tail_.size() > tail_limit ? tail_.size() - tail_limit : 0;
  std::size_t dropped = dropped_ + excess;
  if (dropped == 0) return head_ + tail_;
  return head_ + "\n[... " + std::to_string(dropped) + " bytes omitted ...]\n" +
         tail_.substr(excess);
}

}  // namespace pgfailover::ssh
