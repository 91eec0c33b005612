// Parsing an HTTP/1.x request head out of the bytes received so far, with every limit checked
// before more is read: the server (http_server.cc) calls this after each read, so an oversized
// or malformed head is refused as soon as its first bad byte is in, and nothing beyond the
// limits is ever buffered. Pure: no sockets, no clock.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/router.h"

namespace pgfailover::http {

struct HeadLimits {
  std::size_t max_request_line = 2048;
  std::size_t max_head_bytes = 8192;  // request line, headers and the blank line
  std::size_t max_headers = 64;
  std::size_t max_body = 64 * 1024;
};

struct RequestHead {
  std::string method;
  std::string target;  // as sent: path and query, not decoded
  bool http10 = false;
  HeaderList headers;
  std::size_t head_bytes = 0;  // bytes of the head, blank line included
  std::size_t content_length = 0;
  bool keep_alive = true;
};

enum class HeadState { kIncomplete, kComplete, kError };

struct HeadParse {
  HeadState state = HeadState::kIncomplete;
  RequestHead head;     // when kComplete
  int status = 0;       // when kError: the 4xx/5xx to answer before closing
  std::string message;  // when kError: what was wrong, for the client
};

// Looks at `received` (the start of a request; leading empty lines are skipped as RFC 9112
// allows). kIncomplete: nothing wrong yet, read more. kError: the answer to send.
HeadParse parseRequestHead(std::string_view received, const HeadLimits& limits);

// The path part of a target, percent-decoded; and its query as (key, value) pairs in the order
// given, percent-decoded with '+' as a space.
std::string decodedPath(std::string_view target);
std::vector<std::pair<std::string, std::string>> decodedQuery(std::string_view target);

}  // namespace pgfailover::http
