// Certificates for TLS tests, made with the openssl command line in a fresh folder: a CA, a
// server certificate for 127.0.0.1 (subjectAltName IP), a client certificate from the same CA,
// and a client certificate from a second, unrelated CA. Keys are mode 0600.
#pragma once

#include <string>

namespace pgfailover::testing {

struct TestCerts {
  bool ok = false;
  std::string dir;
  std::string ca;           // ca.pem
  std::string server_cert;  // server.pem
  std::string server_key;   // server.key
  std::string client_cert;  // client.pem (issued by ca)
  std::string client_key;   // client.key
  std::string other_cert;   // other-client.pem (issued by another CA)
  std::string other_key;    // other-client.key
  std::string error;        // why ok is false
};

// Makes the set under a new folder in `parent` (PGFAILOVER_TEST_TMPDIR or /tmp when empty).
TestCerts makeTestCerts(const std::string& parent = "");

}  // namespace pgfailover::testing
