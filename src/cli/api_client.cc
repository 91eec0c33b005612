#include "cli/api_client.h"

#include <httplib.h>

#include <cstdlib>
#include <exception>
#include <utility>

namespace pgfailover::cli {

namespace {

// Splits "http://host:port/prefix" into the part httplib's client takes and a path prefix, so
// pgfailover behind a reverse proxy path still works.
std::pair<std::string, std::string> splitUrl(std::string url) {
  if (url.find("://") == std::string::npos) url = "http://" + url;
  const std::size_t authority = url.find("://") + 3;
  const std::size_t slash = url.find('/', authority);
  if (slash == std::string::npos) return {url, ""};
  std::string prefix = url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url.substr(0, slash), prefix};
}

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

httplib::Client makeClient(const std::string& base, const std::string& ca_file,
                           const std::string& client_cert, const std::string& client_key) {
  httplib::Client client =
      client_cert.empty() ? httplib::Client(base) : httplib::Client(base, client_cert, client_key);
  if (!ca_file.empty()) client.set_ca_cert_path(ca_file.c_str());
  client.enable_server_certificate_verification(true);
  // httplib would re-send the Authorization header to wherever a redirect points; the admin
  // commands decide that themselves (admin_commands.cc).
  client.set_follow_location(false);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  client.set_write_timeout(5, 0);
  return client;
}

ApiResponse toResponse(const httplib::Result& result) {
  ApiResponse response;
  if (!result) {
    response.error = httplib::to_string(result.error());
    return response;
  }
  response.status = result->status;
  response.body = result->body;
  response.location = result->get_header_value("Location");
  return response;
}

}  // namespace

ApiClient::ApiClient(std::string url)
    : ca_file_(environment("PGFAILOVER_CA_FILE")),
      client_cert_(environment("PGFAILOVER_CLIENT_CERT")),
      client_key_(environment("PGFAILOVER_CLIENT_KEY")) {
  std::tie(base_, prefix_) = splitUrl(std::move(url));
  try {
    valid_ = httplib::Client(base_).is_valid();
  } catch (const std::exception&) {
    valid_ = false;  // httplib throws on a scheme it does not support ("ftp://")
  }
}

ApiResponse ApiClient::get(const std::string& path) const {
  if (!valid_) return {0, {}, "invalid URL", {}};
  httplib::Client client = makeClient(base_, ca_file_, client_cert_, client_key_);
  return toResponse(client.Get(prefix_ + path));
}

ApiResponse ApiClient::post(const std::string& path, const std::string& json,
                            const Secret& token) const {
  if (!valid_) return {0, {}, "invalid URL", {}};
  httplib::Client client = makeClient(base_, ca_file_, client_cert_, client_key_);
  const httplib::Headers headers = {{"Authorization", "Bearer " + token.revealForUse()}};
  return toResponse(client.Post(prefix_ + path, headers, json, "application/json"));
}

}  // namespace pgfailover::cli
