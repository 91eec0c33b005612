#include "support/etcd.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::testing {

EtcdCluster::EtcdCluster(int members, std::vector<std::string> extra_args, bool tls)
    : extra_args_(std::move(extra_args)), tls_(tls) {
  // As the daemon does (cli/commands.cc): OpenSSL writing to a connection etcd closed (a
  // refused client certificate) raises SIGPIPE, which must be an error, not the test's end.
  ::signal(SIGPIPE, SIG_IGN);
  const char* base_env = std::getenv("PGFAILOVER_TEST_TMPDIR");
  std::string base = base_env != nullptr && *base_env != '\0' ? base_env : "/tmp";
  std::string pattern = base + "/pgfailover-etcd-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    ADD_FAILURE() << "EtcdCluster: mkdtemp(" << pattern << ") failed: " << std::strerror(errno);
    return;
  }
  dir_ = buffer.data();
  if (::access("/usr/bin/etcd", X_OK) != 0) {
    ADD_FAILURE() << "EtcdCluster: /usr/bin/etcd is missing (scripts/install-deps.sh installs "
                     "Debian's etcd-server)";
    return;
  }
  if (tls_ && !makeCertificates()) return;
  cluster_token_ = "pgfailover-test-" + randomToken(8);
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = "etcd" + std::to_string(i);
    m.client_port = freePort();
    m.peer_port = freePort();
    m.data_dir = dir_ + "/" + m.name;
    members_.push_back(std::move(m));
  }
  for (int i = 0; i < members; ++i) {
    members_[i].process = makeProcess(i);
    if (!members_[i].process->start()) return;
  }
  for (int i = 0; i < members; ++i)
    if (!waitHealthy(i)) {
      ADD_FAILURE() << "EtcdCluster: member " << i << " is not healthy after 20 s:\n"
                    << members_[i].process->logTail(30);
      return;
    }
  ok_ = true;
}

EtcdCluster::~EtcdCluster() {
  // Each DaemonProcess prints its log's tail when the test failed: before the folder goes.
  for (auto& m : members_) m.process.reset();
  if (dir_.empty()) return;
  const bool failed = ::testing::Test::HasFailure();
  const char* keep = std::getenv("PGFAILOVER_KEEP_TEST_DIRS");
  if (failed && keep != nullptr && std::string(keep) == "1") {
    std::fprintf(stderr, "EtcdCluster: kept %s (PGFAILOVER_KEEP_TEST_DIRS=1)\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::unique_ptr<DaemonProcess> EtcdCluster::makeProcess(int i) const {
  const Member& m = members_[i];
  std::string initial_cluster;
  for (const auto& other : members_)
    initial_cluster += (initial_cluster.empty() ? "" : ",") + other.name +
                       "=http://127.0.0.1:" + std::to_string(other.peer_port);
  DaemonOptions options;
  options.binary = "/usr/bin/etcd";
  options.log_path = dir_ + "/" + m.name + ".log";
  const std::string client = clientUrl(i);
  const std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
  options.args = {"--name=" + m.name,
                  "--data-dir=" + m.data_dir,
                  "--listen-client-urls=" + client,
                  "--advertise-client-urls=" + client,
                  "--listen-peer-urls=" + peer,
                  "--initial-advertise-peer-urls=" + peer,
                  "--initial-cluster=" + initial_cluster,
                  "--initial-cluster-state=new",
                  "--initial-cluster-token=" + cluster_token_,
                  "--logger=zap",
                  "--log-outputs=stderr"};
  if (tls_) {
    for (std::string flag :
         {"--cert-file=" + dir_ + "/server.crt", "--key-file=" + dir_ + "/server.key",
          "--trusted-ca-file=" + caFile(), std::string("--client-cert-auth")})
      options.args.push_back(flag);
  }
  options.args.insert(options.args.end(), extra_args_.begin(), extra_args_.end());
  return std::make_unique<DaemonProcess>(std::move(options));
}

std::string EtcdCluster::clientUrl(int i) const {
  return std::string(tls_ ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(members_.at(i).client_port);
}

bool EtcdCluster::makeCertificates() {
  // ECDSA P-256 keys: fast to make. Server certificate for IP 127.0.0.1; client certificate
  // for "pgfailover"; a second CA that signed neither.
  const std::string script = R"(set -e
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -subj /CN=pgfailover-test-ca -days 2 -out ca.crt
key other-ca.key
openssl req -x509 -new -key other-ca.key -subj /CN=pgfailover-other-ca -days 2 -out other-ca.crt
key server.key
openssl req -new -key server.key -subj /CN=127.0.0.1 -out server.csr
printf 'subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth
' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt 2>/dev/null
key client.key
openssl req -new -key client.key -subj /CN=pgfailover -out client.csr
printf 'extendedKeyUsage=clientAuth
' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.crt 2>/dev/null
chmod 0600 ca.key other-ca.key server.key client.key
)";
  ProcessOptions options;
  options.merge_stderr = true;
  options.timeout = std::chrono::seconds(30);
  ProcessResult result = runProcess({"/bin/sh", "-c", script, "sh", dir_}, options);
  if (!result.ok()) {
    ADD_FAILURE() << "EtcdCluster: making test certificates with openssl failed:\n" << result.out;
    return false;
  }
  return true;
}

std::vector<std::string> EtcdCluster::clientUrls() const {
  std::vector<std::string> urls;
  for (int i = 0; i < size(); ++i) urls.push_back(clientUrl(i));
  return urls;
}

void EtcdCluster::kill(int i) {
  members_.at(i).process->signal(SIGKILL);
  members_.at(i).process->stop(std::chrono::seconds(5));
}

bool EtcdCluster::restart(int i) {
  auto& m = members_.at(i);
  if (m.process && m.process->running()) return true;
  m.process = makeProcess(i);
  return m.process->start();
}

void EtcdCluster::pause(int i) {
  DaemonProcess& process = *members_.at(i).process;
  process.signal(SIGSTOP);
  // SIGSTOP takes effect asynchronously: wait until every thread of it is stopped, so that
  // nothing is answered after pause() returned.
  const std::string task_dir = "/proc/" + std::to_string(process.pid()) + "/task";
  waitUntil(
      [&] {
        std::error_code ec;
        for (const auto& task : std::filesystem::directory_iterator(task_dir, ec)) {
          const std::string stat = readTextFile(task.path().string() + "/stat");
          const auto close = stat.rfind(')');
          if (close == std::string::npos || close + 2 >= stat.size()) return false;
          if (stat[close + 2] != 'T' && stat[close + 2] != 't') return false;
        }
        return !ec;
      },
      std::chrono::seconds(5));
}

void EtcdCluster::resume(int i) {
  members_.at(i).process->signal(SIGCONT);
}

bool EtcdCluster::waitHealthy(int i, std::chrono::milliseconds timeout) {
  return waitUntil(
      [&] {
        httplib::Client client =
            tls_ ? httplib::Client(clientUrl(i), clientCertFile(), clientKeyFile())
                 : httplib::Client(clientUrl(i));
        if (tls_) client.set_ca_cert_path(caFile());
        client.set_connection_timeout(std::chrono::milliseconds(300));
        client.set_read_timeout(std::chrono::seconds(1));
        auto response = client.Get("/health");
        return response && response->status == 200 &&
               response->body.find("\"true\"") != std::string::npos;
      },
      timeout);
}

int EtcdCluster::etcdctl(const std::vector<std::string>& args, std::string* output,
                         const std::string& user, const std::string& password,
                         const std::string& stdin_text) {
  std::vector<std::string> argv = {"etcdctl", "--endpoints=" + clientUrl(0),
                                   "--command-timeout=5s"};
  ProcessOptions options;
  options.env = {{"ETCDCTL_API", "3"}};
  if (!user.empty()) {
    // Through the environment, never argv: a password on a command line is visible in ps.
    options.env.emplace_back("ETCDCTL_USER", user + ":" + password);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  options.merge_stderr = true;
  options.stdin_text = stdin_text;
  options.timeout = std::chrono::seconds(20);
  ProcessResult result = runProcess(argv, options);
  if (output != nullptr) *output = result.out;
  return result.exit_code;
}

}  // namespace pgfailover::testing
