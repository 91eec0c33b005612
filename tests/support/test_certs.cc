#include "support/test_certs.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <vector>

namespace pgfailover::testing {

TestCerts makeTestCerts(const std::string& parent) {
  TestCerts certs;
  std::string base = parent;
  if (base.empty()) {
    const char* env = std::getenv("PGFAILOVER_TEST_TMPDIR");
    base = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  std::string pattern = base + "/certs.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    certs.error = "mkdtemp under " + base + " failed";
    return certs;
  }
  certs.dir = pattern;
  std::ofstream(certs.dir + "/server.ext") << "subjectAltName=IP:127.0.0.1\n";
  std::ofstream(certs.dir + "/client.ext") << "extendedKeyUsage=clientAuth\n";
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::vector<std::string> steps = {
      "openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca",
      "openssl req -x509 " + ec +
          " -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca",
      "openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=127.0.0.1",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile server.ext -out server.pem",
      "openssl req " + ec + " -keyout client.key -out client.csr -subj /CN=operator",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile client.ext -out client.pem",
      "openssl req " + ec + " -keyout other-client.key -out other-client.csr -subj /CN=intruder",
      "openssl x509 -req -in other-client.csr -CA other-ca.pem -CAkey other-ca.key "
      "-CAcreateserial -days 2 -extfile client.ext -out other-client.pem",
  };
  for (const auto& step : steps) {
    const std::string command = "cd '" + certs.dir + "' && " + step + " >>openssl.log 2>&1";
    if (std::system(command.c_str()) != 0) {
      certs.error = "failed: " + step + " (see " + certs.dir + "/openssl.log)";
      return certs;
    }
  }
  certs.ca = certs.dir + "/ca.pem";
  certs.server_cert = certs.dir + "/server.pem";
  certs.server_key = certs.dir + "/server.key";
  certs.client_cert = certs.dir + "/client.pem";
  certs.client_key = certs.dir + "/client.key";
  certs.other_cert = certs.dir + "/other-client.pem";
  certs.other_key = certs.dir + "/other-client.key";
  for (const auto& key : {certs.server_key, certs.client_key, certs.other_key})
    ::chmod(key.c_str(), 0600);
  certs.ok = true;
  return certs;
}

}  // namespace pgfailover::testing
