// A tiny blocking HTTP client for tests (cpp-httplib underneath): one request, a deadline, the
// status and body back. Status 0 means no HTTP answer at all (refused, timed out); `error`
// says why. Loopback only; no TLS, no redirects, no retries.
#pragma once

#include <chrono>
#include <string>

namespace pgfailover::testing {

struct HttpResponse {
  int status = 0;  // 0 when the request got no HTTP answer
  std::string body;
  std::string content_type;
  std::string error;  // why status is 0
  bool ok() const { return status == 200; }
};

HttpResponse httpGet(int port, const std::string& path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(2),
                     const std::string& host = "127.0.0.1");

HttpResponse httpPost(int port, const std::string& path, const std::string& body = "",
                      const std::string& content_type = "application/json",
                      std::chrono::milliseconds timeout = std::chrono::seconds(5),
                      const std::string& host = "127.0.0.1");

}  // namespace pgfailover::testing
