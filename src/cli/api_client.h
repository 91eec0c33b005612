// A small HTTP client for the commands that talk to a running pgfailover (`status`, `history`,
// `switchover`, `failover`): splits the --url into server and path prefix, applies short
// deadlines, and returns the answer or the transport error as a value.
//
// An https:// URL is served over TLS with the server's certificate verified: against the system's
// CAs, or against $PGFAILOVER_CA_FILE; $PGFAILOVER_CLIENT_CERT and $PGFAILOVER_CLIENT_KEY present
// a client certificate (the admin routes require one when the server sets http.tls.client_ca).
// Environment variables rather than flags, so every command takes them alike.
//
// Deliberately not here: interpreting answers (each command does), retries, following redirects
// (the admin commands follow one, on their own terms), and printing anything; the bearer token
// is sent in one header and never appears in an error or a URL.
#pragma once

#include <string>
#include <string_view>

#include "common/secret.h"

namespace pgfailover::cli {

struct ApiResponse {
  int status = 0;        // the HTTP status; 0 when the server did not answer
  std::string body;      // the answer's body
  std::string error;     // why there is no answer ("Could not establish connection")
  std::string location;  // the Location header of a redirect, else empty
  bool answered() const { return status != 0; }
};

class ApiClient {
 public:
  // "http://host:port", "https://host:port", "host:port" or "http://host:port/prefix" (behind a
  // reverse proxy path).
  explicit ApiClient(std::string url);

  // False for a URL the client cannot use (an unsupported scheme).
  bool valid() const { return valid_; }
  // "http" or "https".
  std::string scheme() const { return base_.substr(0, base_.find("://")); }
  // The full URL of `path`, for messages.
  std::string urlOf(std::string_view path) const { return base_ + prefix_ + std::string(path); }

  // `path` starts with '/' and may carry a query string ("/history?limit=5").
  ApiResponse get(const std::string& path) const;
  // POSTs a JSON body with `Authorization: Bearer <token>`.
  ApiResponse post(const std::string& path, const std::string& json, const Secret& token) const;

 private:
  std::string base_;
  std::string prefix_;
  std::string ca_file_;
  std::string client_cert_;
  std::string client_key_;
  bool valid_ = false;
};

}  // namespace pgfailover::cli
