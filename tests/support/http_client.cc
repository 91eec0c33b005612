#include "support/http_client.h"

#include <httplib.h>

namespace pgfailover::testing {
namespace {

void applyTimeout(httplib::Client& client, std::chrono::milliseconds timeout) {
  const auto seconds = static_cast<time_t>(timeout.count() / 1000);
  const auto micros = static_cast<time_t>((timeout.count() % 1000) * 1000);
  client.set_connection_timeout(seconds, micros);
  client.set_read_timeout(seconds, micros);
  client.set_write_timeout(seconds, micros);
}

HttpResponse convert(const httplib::Result& result, const std::string& what) {
  HttpResponse response;
  if (!result) {
    response.error = what + ": " + httplib::to_string(result.error());
    return response;
  }
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->get_header_value("Content-Type");
  return response;
}

}  // namespace

HttpResponse httpGet(int port, const std::string& path, std::chrono::milliseconds timeout,
                     const std::string& host) {
  httplib::Client client(host, port);
  applyTimeout(client, timeout);
  return convert(client.Get(path), "GET http://" + host + ":" + std::to_string(port) + path);
}

HttpResponse httpPost(int port, const std::string& path, const std::string& body,
                      const std::string& content_type, std::chrono::milliseconds timeout,
                      const std::string& host) {
  httplib::Client client(host, port);
  applyTimeout(client, timeout);
  return convert(client.Post(path, body, content_type),
                 "POST http://" + host + ":" + std::to_string(port) + path);
}

}  // namespace pgfailover::testing
