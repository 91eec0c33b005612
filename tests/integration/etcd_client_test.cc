// The etcd v3 JSON-gateway client against a real etcd (Debian's etcd-server): key-value calls
// and transactions, several endpoints of which the first do not answer, authentication with a
// user and password (and a wrong password refused with a clear error), a token that expired,
// and a 3-member cluster that loses its quorum and gets it back.
#include "coord/etcd_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "coord/leadership.h"
#include "support/etcd.h"
#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::coord {
namespace {

using pgfailover::testing::EtcdCluster;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

EtcdClientOptions clientOptions(std::vector<std::string> endpoints) {
  EtcdClientOptions options;
  options.endpoints = std::move(endpoints);
  options.connect_timeout = milliseconds(300);
  options.request_timeout = milliseconds(700);
  return options;
}

// A TCP port that accepts connections (the kernel's backlog) but never answers: a hung host.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "SilentListener: cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(EtcdClient, KeyValueAndTransactions) {
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  EtcdClient client(clientOptions(etcd.clientUrls()));

  // Keys and values are bytes: base64 on the wire carries any of them.
  const std::string binary_value("\x00\xff\n\"quoted\" \xc3\xa9", 14);
  auto put = client.put("/p/a", binary_value);
  ASSERT_TRUE(put.ok()) << put.status.message();
  EXPECT_GT(put.value, 1);
  ASSERT_TRUE(client.put("/p/b", "two").ok());
  ASSERT_TRUE(client.put("/q", "outside").ok());

  auto one = client.get("/p/a");
  ASSERT_TRUE(one.ok()) << one.status.message();
  ASSERT_EQ(one.value.size(), 1u);
  EXPECT_EQ(one.value[0].value, binary_value);
  EXPECT_EQ(one.value[0].create_revision, put.value);
  EXPECT_EQ(one.value[0].mod_revision, put.value);
  EXPECT_EQ(one.value[0].version, 1);

  auto prefixed = client.get("/p/", /*prefix=*/true);
  ASSERT_TRUE(prefixed.ok());
  ASSERT_EQ(prefixed.value.size(), 2u);
  EXPECT_EQ(prefixed.value[0].key, "/p/a");
  EXPECT_EQ(prefixed.value[1].key, "/p/b");
  auto absent = client.get("/nothing");
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent.value.empty());

  // A transaction on mod_revision: the first writer wins, the second sees the new value.
  auto first = client.txn({Compare::modRevision("/p/b", prefixed.value[1].mod_revision)},
                          {Op::put("/p/b", "first")}, {Op::get("/p/b")});
  ASSERT_TRUE(first.ok()) << first.status.message();
  EXPECT_TRUE(first.value.succeeded);
  auto second = client.txn({Compare::modRevision("/p/b", prefixed.value[1].mod_revision)},
                           {Op::put("/p/b", "second")}, {Op::get("/p/b")});
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second.value.succeeded);
  ASSERT_EQ(second.value.ranges.size(), 1u);
  ASSERT_EQ(second.value.ranges[0].size(), 1u);
  EXPECT_EQ(second.value.ranges[0][0].value, "first");
  auto by_value = client.txn({Compare::valueIs("/p/b", "first")}, {Op::erase("/p/", true)});
  ASSERT_TRUE(by_value.ok());
  EXPECT_TRUE(by_value.value.succeeded);
  auto after = client.get("/p/", true);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after.value.empty());
  auto erased = client.erase("/q");
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(erased.value, 1);

  // A key on a lease goes with the lease.
  auto lease = client.grantLease(5);
  ASSERT_TRUE(lease.ok()) << lease.status.message();
  EXPECT_EQ(lease.value.ttl_seconds, 5);
  ASSERT_TRUE(client.put("/leased", "x", lease.value.id).ok());
  auto renewed = client.keepAlive(lease.value.id);
  ASSERT_TRUE(renewed.ok()) << renewed.status.message();
  EXPECT_EQ(renewed.value.ttl_seconds, 5);
  ASSERT_TRUE(client.revokeLease(lease.value.id).isOk());
  auto gone = client.get("/leased");
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone.value.empty());
  auto dead = client.keepAlive(lease.value.id);
  ASSERT_TRUE(dead.ok()) << dead.status.message();
  EXPECT_EQ(dead.value.ttl_seconds, 0);
  // Putting on a lease that no longer exists is an error etcd names.
  auto orphan = client.put("/leased", "x", lease.value.id);
  EXPECT_FALSE(orphan.ok());
  EXPECT_NE(orphan.status.message().find("lease not found"), std::string::npos)
      << orphan.status.message();
  // The error answer's trailer left the kept-alive connection unusable: the next call must not
  // trip over it.
  auto next = client.get("/leased");
  EXPECT_TRUE(next.ok()) << next.status.message();
}

TEST(EtcdClient, UnreachableEndpointsAreSkipped) {
  EtcdCluster etcd;
  ASSERT_TRUE(etcd.ok());
  SilentListener silent;
  const std::string refused = "http://127.0.0.1:" + std::to_string(testing::freePort());
  EtcdClient client(clientOptions({refused, silent.url(), etcd.clientUrl(0)}));
  const auto start = Clock::now();
  auto put = client.put("/k", "v");
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(put.ok()) << put.status.message();
  EXPECT_EQ(client.currentEndpoint(), etcd.clientUrl(0));
  // The refused one fails at once, the silent one after its read deadline.
  EXPECT_LT(took, milliseconds(3000)) << "the deadlines did not bound the call";
  std::printf("put through a refused and a silent endpoint first: %lld ms\n",
              static_cast<long long>(took.count()));
  // The client stays on the endpoint that answered.
  const auto again = Clock::now();
  ASSERT_TRUE(client.get("/k").ok());
  EXPECT_LT(Clock::now() - again, milliseconds(500));

  // With no endpoint answering, the error names each one.
  EtcdClient nowhere(clientOptions({refused, silent.url()}));
  auto failed = nowhere.get("/k");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status.message().find(refused), std::string::npos) << failed.status.message();
  EXPECT_NE(failed.status.message().find(silent.url()), std::string::npos)
      << failed.status.message();
}

// Creates root and a user "pgfailover" allowed under /pgfailover/, then enables authentication.
void enableAuth(EtcdCluster& etcd, const std::string& password) {
  std::string out;
  ASSERT_EQ(etcd.etcdctl({"user", "add", "root", "--interactive=false"}, &out, "", "",
                         "root-password-for-test\n"),
            0)
      << out;
  ASSERT_EQ(etcd.etcdctl({"user", "add", "pgfailover", "--interactive=false"}, &out, "", "",
                         password + "\n"),
            0)
      << out;
  ASSERT_EQ(etcd.etcdctl({"role", "add", "pgfailover"}, &out), 0) << out;
  ASSERT_EQ(etcd.etcdctl({"role", "grant-permission", "pgfailover", "--prefix=true", "readwrite",
                          "/pgfailover/"},
                         &out),
            0)
      << out;
  ASSERT_EQ(etcd.etcdctl({"user", "grant-role", "pgfailover", "pgfailover"}, &out), 0) << out;
  ASSERT_EQ(etcd.etcdctl({"auth", "enable"}, &out), 0) << out;
}

TEST(EtcdClient, AuthenticatesWithUserAndPassword) {
  // Simple tokens expire after one idle second here, so the test also sees a re-authentication.
  EtcdCluster etcd(1, {"--auth-token-ttl=1"});
  ASSERT_TRUE(etcd.ok());
  const std::string password = "pw-" + testing::randomToken(16);
  ASSERT_NO_FATAL_FAILURE(enableAuth(etcd, password));

  EtcdClientOptions options = clientOptions(etcd.clientUrls());
  options.user = "pgfailover";
  options.password = Secret(password);
  EtcdClient client(options);
  LeadershipOptions lo;
  lo.name = "a";
  lo.prefix = "/pgfailover/auth";
  lo.lease_ttl = milliseconds(2000);
  Leadership leadership(client, lo);
  ASSERT_TRUE(leadership.campaign(Clock::now()).isOk());
  EXPECT_TRUE(leadership.leading());
  std::this_thread::sleep_for(milliseconds(2500));  // the token expires meanwhile
  Status renewed = leadership.renew(Clock::now());
  // The lease itself has a 2 s TTL and was not renewed for 2.5 s: either answer is fine, but
  // the call must have been authenticated again rather than failing on the stale token.
  EXPECT_NE(renewed.code(), StatusCode::kUnauthenticated) << renewed.message();
  auto put = client.put("/pgfailover/auth/x", "1");
  EXPECT_TRUE(put.ok()) << put.status.message();
  EXPECT_EQ(client.authentications(), 2) << "the expired token was not replaced";
  // Outside its role's prefix the user is refused, with etcd's reason.
  auto denied = client.put("/elsewhere", "1");
  EXPECT_FALSE(denied.ok());
  EXPECT_NE(denied.status.message().find("permission denied"), std::string::npos)
      << denied.status.message();

  // Without credentials etcd refuses.
  EtcdClient anonymous(clientOptions(etcd.clientUrls()));
  auto anonymous_put = anonymous.put("/pgfailover/auth/x", "2");
  EXPECT_FALSE(anonymous_put.ok());

  // A wrong password: a clear error naming the user and the setting, never the password.
  EtcdClientOptions wrong = options;
  wrong.password = Secret("not-the-" + password);
  EtcdClient refused(wrong);
  auto refused_put = refused.put("/pgfailover/auth/x", "3");
  ASSERT_FALSE(refused_put.ok());
  EXPECT_EQ(refused_put.status.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(refused_put.status.message().find("etcd refused user 'pgfailover'"), std::string::npos)
      << refused_put.status.message();
  EXPECT_NE(refused_put.status.message().find("password_file"), std::string::npos);
  EXPECT_EQ(refused_put.status.message().find(password), std::string::npos);
  auto value = client.get("/pgfailover/auth/x");
  ASSERT_TRUE(value.ok());
  ASSERT_EQ(value.value.size(), 1u);
  EXPECT_EQ(value.value[0].value, "1");
}

TEST(EtcdClient, QuorumLossStopsActingBeforeTheTtlAndRecovers) {
  EtcdCluster etcd(3);
  ASSERT_TRUE(etcd.ok());
  EtcdClient client(clientOptions(etcd.clientUrls()));
  LeadershipOptions lo;
  lo.name = "a";
  lo.prefix = "/pgfailover/quorum";
  lo.lease_ttl = milliseconds(3000);
  Leadership a(client, lo);
  ASSERT_TRUE(a.campaign(Clock::now()).isOk());
  ASSERT_TRUE(a.leading());

  etcd.kill(1);
  etcd.kill(2);
  const auto killed_at = Clock::now();
  // Renew every 200 ms as a tick would. etcd's last member cannot renew without a quorum (a
  // stale leader may for up to an election timeout); a's own clock must stop it before the
  // lease could run out in etcd, measured from the last renewal that succeeded.
  Clock::time_point last_ok = killed_at;
  Clock::time_point stopped_acting{};
  int failures = 0;
  Status last_error;
  while (Clock::now() < killed_at + milliseconds(12000)) {
    const auto now = Clock::now();
    Status renewed = a.renew(now);
    if (renewed.isOk()) {
      last_ok = now;
    } else {
      ++failures;
      last_error = renewed;
    }
    if (!a.acting(Clock::now())) {
      stopped_acting = Clock::now();
      break;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  ASSERT_NE(stopped_acting, Clock::time_point{}) << "a kept acting without a quorum";
  EXPECT_GT(failures, 0);
  // By its own clock a stops acting a margin before the TTL counted from its last renewal's
  // send time, which is before etcd started counting.
  EXPECT_LE(a.actingUntil(), last_ok + milliseconds(3000) - a.margin());
  EXPECT_FALSE(a.acting(last_ok + milliseconds(3000) - a.margin()));
  EXPECT_FALSE(last_error.isOk());
  std::printf(
      "quorum lost: last renewal %lld ms after the kill, acting stopped %lld ms after "
      "it (TTL 3000 ms, margin %lld ms); last error: %s\n",
      static_cast<long long>(std::chrono::duration_cast<milliseconds>(last_ok - killed_at).count()),
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(stopped_acting - last_ok).count()),
      static_cast<long long>(a.margin().count()), last_error.message().c_str());

  // The members come back: a leads again (its lease outlived the outage, or a new campaign
  // wins since nobody else runs), and only one instance leads.
  ASSERT_TRUE(etcd.restart(1));
  ASSERT_TRUE(etcd.restart(2));
  ASSERT_TRUE(etcd.waitHealthy(0));
  ASSERT_TRUE(testing::waitUntil(
      [&] { return a.step(Clock::now()).isOk() && a.acting(Clock::now()); }, milliseconds(20000)));
  EtcdClient client_b(clientOptions(etcd.clientUrls()));
  lo.name = "b";
  Leadership b(client_b, lo);
  ASSERT_TRUE(b.campaign(Clock::now()).isOk());
  EXPECT_FALSE(b.leading());
  EXPECT_EQ(b.lastSeenLeader().name, "a");
  EXPECT_TRUE(a.putDocument(Clock::now(), "state", {{"ok", true}}).isOk());
}

}  // namespace
}  // namespace pgfailover::coord
