#include "http/request_head.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

namespace pgfailover::http {

namespace {

bool isTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), isTokenChar);
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

HeadParse failure(int status, std::string message) {
  HeadParse result;
  result.state = HeadState::kError;
  result.status = status;
  result.message = std::move(message);
  return result;
}

// True when a comma-separated header value lists `token` (Connection: keep-alive, close).
bool listsToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (equalsIgnoreCase(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; a malformed escape is kept as sent (the router then answers 404 or 400 for it).
std::string percentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int high = hexValue(text[i + 1]);
      const int low = hexValue(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

}  // namespace

HeadParse parseRequestHead(std::string_view received, const HeadLimits& limits) {
  std::size_t start = 0;
  while (start < received.size() && (received[start] == '\r' || received[start] == '\n')) ++start;
  if (start > limits.max_request_line)
    return failure(400, "too many empty lines before the request line");
  const std::string_view data = received.substr(start);

  const auto line_end = data.find('\n');
  if (line_end == std::string_view::npos) {
    if (data.size() > limits.max_request_line)
      return failure(414, "the request line is longer than " +
                              std::to_string(limits.max_request_line) + " bytes");
    return {};
  }
  if (line_end > limits.max_request_line)
    return failure(414, "the request line is longer than " +
                            std::to_string(limits.max_request_line) + " bytes");

  // The head ends at the first empty line; lines end in CRLF, a bare LF is tolerated.
  std::size_t head_end = std::string_view::npos;  // one past the blank line's LF
  for (std::size_t pos = line_end; pos != std::string_view::npos; pos = data.find('\n', pos + 1)) {
    const std::size_t next = pos + 1;
    if (next < data.size() && data[next] == '\n') {
      head_end = next + 1;
      break;
    }
    if (next + 1 < data.size() && data[next] == '\r' && data[next + 1] == '\n') {
      head_end = next + 2;
      break;
    }
  }
  if (head_end == std::string_view::npos) {
    if (data.size() > limits.max_head_bytes)
      return failure(431, "the request head (request line and headers) is larger than " +
                              std::to_string(limits.max_head_bytes) + " bytes");
    return {};
  }
  if (head_end > limits.max_head_bytes)
    return failure(431, "the request head (request line and headers) is larger than " +
                            std::to_string(limits.max_head_bytes) + " bytes");

  HeadParse result;
  RequestHead& head = result.head;
  head.head_bytes = start + head_end;

  std::string_view request_line = data.substr(0, line_end);
  if (!request_line.empty() && request_line.back() == '\r') request_line.remove_suffix(1);
  const auto first_space = request_line.find(' ');
  const auto last_space = request_line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space)
    return failure(400, "the request line is not 'METHOD /path HTTP/1.1'");
  const std::string_view method = request_line.substr(0, first_space);
  const std::string_view target =
      request_line.substr(first_space + 1, last_space - first_space - 1);
  const std::string_view version = request_line.substr(last_space + 1);
  if (!isToken(method)) return failure(400, "the request method is not a valid token");
  if (target.empty() || target.front() != '/')
    return failure(400, "the request target must be a path starting with '/'");
  for (const char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return failure(400, "the request target contains a space or a control character");
  if (version == "HTTP/1.0") {
    head.http10 = true;
  } else if (version != "HTTP/1.1") {
    if (version.rfind("HTTP/", 0) == 0)
      return failure(505, "only HTTP/1.0 and HTTP/1.1 are served, not " + std::string(version));
    return failure(400, "the request line does not end in an HTTP version");
  }
  head.method = std::string(method);
  head.target = std::string(target);

  std::optional<std::size_t> content_length;
  bool has_transfer_encoding = false;
  std::optional<bool> connection_keep_alive;
  std::size_t pos = line_end + 1;
  while (true) {
    const auto end = data.find('\n', pos);
    std::string_view line = data.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t')
      return failure(400, "folded header lines (starting with a space) are not accepted");
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return failure(400, "a header line has no ':'");
    const std::string_view name = line.substr(0, colon);
    if (!isToken(name)) return failure(400, "a header name is empty or not a valid token");
    const std::string_view value = trim(line.substr(colon + 1));
    for (const char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
        return failure(400, "header '" + std::string(name) + "' contains a control character");
    if (head.headers.size() >= limits.max_headers)
      return failure(431, "more than " + std::to_string(limits.max_headers) + " headers");
    head.headers.emplace_back(std::string(name), std::string(value));

    if (equalsIgnoreCase(name, "Transfer-Encoding")) {
      has_transfer_encoding = true;
    } else if (equalsIgnoreCase(name, "Content-Length")) {
      std::size_t length = 0;
      const auto [ptr, error] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (value.empty() || error != std::errc() || ptr != value.data() + value.size())
        return failure(400, "Content-Length '" + std::string(value) + "' is not a whole number");
      if (content_length && *content_length != length)
        return failure(400, "conflicting Content-Length headers");
      content_length = length;
    } else if (equalsIgnoreCase(name, "Connection")) {
      if (listsToken(value, "close"))
        connection_keep_alive = false;
      else if (listsToken(value, "keep-alive"))
        connection_keep_alive = true;
    }
  }

  // Bodies are tiny JSON objects; a body of unknown length (chunked) could only be bounded by
  // reading it, so it is refused before a byte of it is read.
  if (has_transfer_encoding)
    return failure(411,
                   "Transfer-Encoding (chunked) request bodies are not accepted; send the "
                   "body with a Content-Length of at most " +
                       std::to_string(limits.max_body) + " bytes");
  if (content_length && *content_length > limits.max_body)
    return failure(413, "the request body (Content-Length " + std::to_string(*content_length) +
                            ") is larger than " + std::to_string(limits.max_body) + " bytes");
  if (!content_length && (method == "POST" || method == "PUT" || method == "PATCH"))
    return failure(411, "a " + std::string(method) +
                            " needs a Content-Length (send {} as the body for an empty request)");
  head.content_length = content_length.value_or(0);
  head.keep_alive = connection_keep_alive.value_or(!head.http10);
  result.state = HeadState::kComplete;
  return result;
}

std::string decodedPath(std::string_view target) {
  return percentDecode(target.substr(0, target.find('?')), false);
}

std::vector<std::pair<std::string, std::string>> decodedQuery(std::string_view target) {
  std::vector<std::pair<std::string, std::string>> query;
  const auto question = target.find('?');
  if (question == std::string_view::npos) return query;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view item = rest.substr(0, amp);
    if (!item.empty()) {
      const auto equals = item.find('=');
      query.emplace_back(percentDecode(item.substr(0, equals), true),
                         equals == std::string_view::npos
                             ? std::string()
                             : percentDecode(item.substr(equals + 1), true));
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return query;
}

}  // namespace pgfailover::http
