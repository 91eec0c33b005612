// The etcd client against an HTTP server on loopback that is not etcd: a clear error, and never
// the password, even from a server that echoes the request back.
#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "coord/etcd_client.h"

namespace pgfailover::coord {
namespace {

class EchoServer {
 public:
  EchoServer() {
    server_.Post(".*", [](const httplib::Request& request, httplib::Response& response) {
      response.status = 500;
      response.set_content(request.body, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound already: connections wait in the backlog until the thread accepts them.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~EchoServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

TEST(EtcdClientErrors, ANonEtcdServerIsAClearErrorThatNeverShowsThePassword) {
  EchoServer echo;
  EtcdClientOptions options;
  options.endpoints = {echo.url()};
  options.user = "pgfailover";
  options.password = Secret("echoed-secret-password");
  EtcdClient client(options);
  auto answer = client.get("/pgfailover/x");
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status.message().find("echoed-secret-password"), std::string::npos)
      << answer.status.message();
  EXPECT_NE(answer.status.message().find(echo.url()), std::string::npos) << answer.status.message();
  EXPECT_NE(answer.status.message().find("not an etcd answer"), std::string::npos)
      << answer.status.message();
}

TEST(EtcdClientErrors, MalformedEndpointsAreErrorsNotExceptions) {
  EtcdClientOptions options;
  options.endpoints = {"ftp://127.0.0.1:1"};
  EtcdClient client(options);
  auto answer = client.get("/k");
  EXPECT_FALSE(answer.ok());
  EtcdClient none(EtcdClientOptions{});
  auto nothing = none.get("/k");
  ASSERT_FALSE(nothing.ok());
  EXPECT_NE(nothing.status.message().find("no endpoints"), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::coord
