#include "common/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pgfailover {

namespace {

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

std::optional<std::string> parseToken(std::string_view raw, std::string& problem) {
  const auto first = std::find_if_not(raw.begin(), raw.end(), isSpace);
  const auto last = std::find_if_not(raw.rbegin(), raw.rend(), isSpace).base();
  if (first >= last) {
    problem = "is empty";
    return std::nullopt;
  }
  std::string token(first, last);
  const bool visible = std::all_of(token.begin(), token.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte != 0x7f;
  });
  if (!visible) {
    problem =
        "holds whitespace or control characters inside the token (a token is one word on one "
        "line)";
    return std::nullopt;
  }
  return token;
}

std::optional<std::string> readTokenFile(const std::string& path, std::string& problem) {
  // O_NONBLOCK: a FIFO planted at the path must not block the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    problem = path + " cannot be read: " + std::strerror(errno);
    return std::nullopt;
  }
  struct stat info {};
  std::string raw;
  bool regular = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  bool failed = false;
  if (regular) {
    char buffer[1024];
    while (raw.size() <= kMaxTokenFileBytes) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) failed = true;
      if (n <= 0) break;
      raw.append(buffer, static_cast<std::size_t>(n));
    }
  }
  const int read_errno = errno;
  ::close(fd);
  if (!regular) {
    problem = path + " is not a regular file";
    return std::nullopt;
  }
  if (failed) {
    problem = path + " cannot be read: " + std::strerror(read_errno);
    return std::nullopt;
  }
  if (raw.size() > kMaxTokenFileBytes) {
    problem = path + " is larger than " + std::to_string(kMaxTokenFileBytes) +
              " bytes; a token file holds only the token";
    return std::nullopt;
  }
  auto token = parseToken(raw, problem);
  if (!token) problem = path + " " + problem;
  return token;
}

std::string unsafeSecretFileMode(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "";
  const unsigned mode = info.st_mode & 07777;
  const bool root_group_read = info.st_uid == 0 && (mode & 0070) == 0040;
  if ((mode & 0007) == 0 && ((mode & 0070) == 0 || root_group_read)) return "";
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", mode);
  return path + " is open to " + ((mode & 0007) != 0 ? "all users" : "its group") + " (mode " +
         octal + "): run chmod 600 " + path +
         " (a file owned by root may be group-readable, 0640 or 0440)";
}

}  // namespace pgfailover
