// The test harness itself, against real PostgreSQL 15: the cluster that scripts/node/ sets up
// streams, the fault helpers do what they say, and the TCP forwarder passes bytes and goes
// silent on pause(). Every other integration test builds on these.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "support/daemon.h"
#include "support/http_client.h"
#include "support/pg_cluster.h"
#include "support/process.h"

namespace pgfailover::testing {
namespace {

using namespace std::chrono_literals;

// psql through 127.0.0.1:port with the cluster's passfile; connect_timeout in seconds.
ProcessResult psqlAt(const PgCluster& cluster, int port, const std::string& query,
                     int connect_timeout = 5) {
  ProcessOptions options;
  options.env = {{"PGPASSFILE", cluster.passfile()}};
  options.timeout = 30s;
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port) +
                         " dbname=postgres user=" + cluster.user() +
                         " connect_timeout=" + std::to_string(connect_timeout);
  return runProcess(
      {pgBinary("psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", query}, options);
}

TEST(SupportClusterTest, ReplicaStreamsFromPrimary) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster.nodes().size(), 2u);
  EXPECT_NE(cluster.node(0).port, cluster.node(1).port);

  EXPECT_EQ(cluster.sql(0, "SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(cluster.sql(1, "SELECT pg_is_in_recovery()"), "t");
  EXPECT_TRUE(waitUntil(
      [&] {
        return cluster.sql(0, "SELECT application_name || ':' || state FROM pg_stat_replication") ==
               "pg2:streaming";
      },
      30s))
      << cluster.sql(0, "SELECT * FROM pg_stat_replication");
  EXPECT_TRUE(cluster.isStreaming(1));

  // A write on the primary reaches the replica.
  bool ok = false;
  cluster.sql(0, "CREATE TABLE harness(v int); INSERT INTO harness VALUES (42)", &ok);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(waitUntil([&] { return cluster.sql(1, "SELECT v FROM harness") == "42"; }, 30s));

  // What the node scripts promise: the settings, the roles, the passfile.
  EXPECT_EQ(cluster.sql(0, "SHOW wal_log_hints"), "on");
  EXPECT_EQ(cluster.sql(1, "SHOW wal_receiver_timeout"), "5s");
  EXPECT_EQ(cluster.sql(1, "SHOW cluster_name"), "pg2");
  EXPECT_EQ(cluster.sql(1, "SHOW port"), std::to_string(cluster.node(1).port));
  EXPECT_EQ(cluster.sql(0, "SELECT rolsuper FROM pg_roles WHERE rolname = 'pgfailover'"), "t");
  EXPECT_EQ(cluster.sql(0, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'"),
            "t");
  EXPECT_TRUE(std::filesystem::exists(cluster.replicationPassfile(1)));
  EXPECT_TRUE(std::filesystem::exists(cluster.node(1).data_dir + "/standby.signal"));
  EXPECT_NE(cluster.dsn(0).find("password=" + cluster.password()), std::string::npos);
  EXPECT_EQ(trim(readTextFile(cluster.passwordFile())), cluster.password());
}

TEST(SupportClusterTest, PasswordIsRequiredOverTcp) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  ProcessOptions options;
  options.env = {{"PGPASSWORD", "wrong"}, {"PGPASSFILE", "/dev/null"}};
  options.timeout = 30s;
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(cluster.node(0).port) +
                         " dbname=postgres user=pgfailover connect_timeout=5";
  ProcessResult result =
      runProcess({pgBinary("psql"), "-XAtc", "SELECT 1", "-d", conninfo}, options);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("password authentication failed"), std::string::npos) << result.err;
}

TEST(SupportClusterTest, Kill9ThenStartBringsTheNodeBack) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  int before = cluster.postmasterPid(0);
  ASSERT_GT(before, 0);
  EXPECT_TRUE(cluster.isRunning(0));

  cluster.kill9(0);
  EXPECT_FALSE(cluster.isRunning(0));
  EXPECT_EQ(cluster.postmasterPid(0), 0);
  bool ok = true;
  cluster.sql(0, "SELECT 1", &ok);
  EXPECT_FALSE(ok);
  // The replica notices within wal_receiver_timeout (5 s) or at once on a reset.
  EXPECT_TRUE(waitUntil([&] { return !cluster.isStreaming(1); }, 20s));

  cluster.start(0);
  EXPECT_TRUE(cluster.isRunning(0));
  EXPECT_NE(cluster.postmasterPid(0), before);
  EXPECT_EQ(cluster.sql(0, "SELECT pg_is_in_recovery()"), "f");
  // wal_retrieve_retry_interval = 1s: the replica reconnects on its own.
  EXPECT_TRUE(waitUntil([&] { return cluster.isStreaming(1); }, 30s));
}

TEST(SupportClusterTest, Kill9OfTheReplicaAndStartKeepsItAStandby) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  cluster.kill9(1);
  EXPECT_FALSE(cluster.isRunning(1));
  cluster.start(1);
  EXPECT_EQ(cluster.sql(1, "SELECT pg_is_in_recovery()"), "t");
  EXPECT_TRUE(waitUntil([&] { return cluster.isStreaming(1); }, 30s));
}

TEST(SupportClusterTest, StopFreezesTheServerAndResumeThawsIt) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  cluster.stop(0);
  EXPECT_TRUE(cluster.isRunning(0));  // stopped, not gone
  // A frozen server accepts TCP connections in the kernel but never answers.
  ProcessResult frozen = psqlAt(cluster, cluster.node(0).port, "SELECT 1", 2);
  EXPECT_NE(frozen.exit_code, 0);
  EXPECT_FALSE(frozen.timed_out) << "connect_timeout=2 should have ended psql";
  EXPECT_NE(frozen.err.find("timeout"), std::string::npos) << frozen.err;

  cluster.resume(0);
  EXPECT_TRUE(waitUntil([&] { return cluster.sql(0, "SELECT 1") == "1"; }, 20s));
  EXPECT_TRUE(waitUntil([&] { return cluster.isStreaming(1); }, 30s));
}

TEST(SupportClusterTest, DestructorStopsAFrozenClusterAndRemovesItsFolder) {
  std::string dir;
  std::vector<int> pids;
  {
    PgCluster cluster(1);
    ASSERT_TRUE(cluster.ok());
    dir = cluster.dir();
    pids = {cluster.postmasterPid(0), cluster.postmasterPid(1)};
    cluster.stop(1);
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  for (int pid : pids) EXPECT_FALSE(processAlive(pid)) << pid;
}

TEST(SupportClusterTest, TwoReplicasAndExtraSettings) {
  PgClusterOptions options;
  options.replicas = 2;
  options.settings = {"synchronous_commit = off"};
  PgCluster cluster(options);
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster.nodes().size(), 3u);
  EXPECT_TRUE(cluster.isStreaming(1));
  EXPECT_TRUE(cluster.isStreaming(2));
  EXPECT_EQ(cluster.sql(2, "SHOW synchronous_commit"), "off");
  EXPECT_TRUE(waitUntil(
      [&] { return cluster.sql(0, "SELECT count(*) FROM pg_stat_replication") == "2"; }, 30s));
}

TEST(SupportClusterTest, NodeScriptsAreIdempotentAndRefuseWrongUse) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  std::string output;
  // start.sh on a running node does nothing.
  EXPECT_EQ(cluster.runNodeScript(0, "start.sh", {}, &output), 0) << output;
  EXPECT_NE(output.find("already running"), std::string::npos) << output;
  // A standby is not turned into a primary...
  EXPECT_NE(cluster.runNodeScript(1, "init-primary.sh",
                                  {"--superuser-password-file", cluster.passwordFile(),
                                   "--repl-password-file", cluster.replicationPasswordFile()},
                                  &output),
            0);
  EXPECT_NE(output.find("standby"), std::string::npos) << output;
  // ...nor a primary overwritten by a clone.
  EXPECT_NE(cluster.runNodeScript(0, "clone-replica.sh",
                                  {"--primary-host", "127.0.0.1", "--primary-port",
                                   std::to_string(cluster.node(1).port), "--repl-password-file",
                                   cluster.replicationPasswordFile()},
                                  &output),
            0);
  EXPECT_NE(output.find("not a standby"), std::string::npos) << output;
  // A missing password file is named.
  EXPECT_NE(cluster.runNodeScript(0, "init-primary.sh",
                                  {"--superuser-password-file", "/nonexistent/pw",
                                   "--repl-password-file", cluster.replicationPasswordFile()},
                                  &output),
            0);
  EXPECT_NE(output.find("/nonexistent/pw"), std::string::npos) << output;
  // Re-running init-primary.sh on the primary keeps its data and its roles working.
  bool ok = false;
  cluster.sql(0, "CREATE TABLE kept(v int)", &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(cluster.runNodeScript(0, "init-primary.sh",
                                  {"--superuser-password-file", cluster.passwordFile(),
                                   "--repl-password-file", cluster.replicationPasswordFile()},
                                  &output),
            0)
      << output;
  EXPECT_EQ(cluster.sql(0, "SELECT count(*) FROM kept"), "0");
  // stop.sh, then start.sh.
  EXPECT_EQ(cluster.runNodeScript(1, "stop.sh", {}, &output), 0) << output;
  EXPECT_FALSE(cluster.isRunning(1));
  EXPECT_EQ(cluster.runNodeScript(1, "stop.sh", {}, &output), 0) << output;
  cluster.start(1);
  EXPECT_TRUE(waitUntil([&] { return cluster.isStreaming(1); }, 30s));
}

TEST(SupportForwarderTest, PassesAQueryAndGoesSilentWhenPaused) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  TcpForwarder forwarder(cluster.node(0).port);
  ASSERT_GT(forwarder.listenPort(), 0);

  ProcessResult through = psqlAt(cluster, forwarder.listenPort(), "SELECT 40 + 2");
  EXPECT_EQ(through.exit_code, 0) << through.err;
  EXPECT_EQ(trim(through.out), "42");

  forwarder.pause();
  auto started = std::chrono::steady_clock::now();
  ProcessResult paused = psqlAt(cluster, forwarder.listenPort(), "SELECT 1", 2);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_NE(paused.exit_code, 0) << paused.out;
  EXPECT_FALSE(paused.timed_out);
  EXPECT_NE(paused.err.find("timeout"), std::string::npos) << paused.err;
  EXPECT_GE(took, 1500ms);  // silence until connect_timeout, not a refusal

  forwarder.resume();
  ProcessResult resumed = psqlAt(cluster, forwarder.listenPort(), "SELECT 'again'");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(trim(resumed.out), "again");
}

TEST(SupportForwarderTest, PauseFreezesAnOpenConnectionAndCloseAllResetsIt) {
  PgCluster cluster(0);
  ASSERT_TRUE(cluster.ok());
  TcpForwarder forwarder(cluster.node(0).port);

  // A long-lived psql session reading queries from a pipe.
  int to_psql[2];
  ASSERT_EQ(pipe(to_psql), 0);
  std::string log = cluster.dir() + "/psql-session.log";
  std::string command = "PGPASSFILE=" + shellQuote(cluster.passfile()) + " " + pgBinary("psql") +
                        " -XAtq -d 'host=127.0.0.1 port=" + std::to_string(forwarder.listenPort()) +
                        " dbname=postgres user=pgfailover connect_timeout=5' > " + shellQuote(log) +
                        " 2>&1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(to_psql[0], 0);
    ::close(to_psql[0]);
    ::close(to_psql[1]);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(to_psql[0]);
  auto send = [&](const std::string& text) {
    return write(to_psql[1], text.data(), text.size()) == static_cast<ssize_t>(text.size());
  };
  ASSERT_TRUE(send("SELECT 'first';\n"));
  EXPECT_TRUE(waitUntil([&] { return readTextFile(log).find("first") != std::string::npos; }, 10s))
      << readTextFile(log);
  EXPECT_EQ(forwarder.connectionCount(), 1);

  forwarder.pause();
  ASSERT_TRUE(send("SELECT 'second';\n"));
  std::this_thread::sleep_for(1500ms);  // proving an absence: nothing may arrive meanwhile
  EXPECT_EQ(readTextFile(log).find("second"), std::string::npos) << readTextFile(log);
  forwarder.resume();
  EXPECT_TRUE(waitUntil([&] { return readTextFile(log).find("second") != std::string::npos; }, 10s))
      << readTextFile(log);

  forwarder.closeAll();
  EXPECT_TRUE(waitUntil([&] { return forwarder.connectionCount() == 0; }, 5s));
  ASSERT_TRUE(send("SELECT 'third';\n"));
  ::close(to_psql[1]);
  int status = 0;
  EXPECT_TRUE(waitUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 20s));
  std::string text = readTextFile(log);
  EXPECT_EQ(text.find("third"), std::string::npos) << text;
  EXPECT_NE(text.find("connection"), std::string::npos) << text;  // "server closed the connection"
}

TEST(SupportDaemonTest, CapturesOutputAndStopsWithSigterm) {
  std::string dir =
      std::filesystem::temp_directory_path() / ("pgfailover-daemon-" + randomToken(8));
  std::filesystem::create_directories(dir);
  DaemonOptions options;
  options.binary = "/bin/sh";
  options.args = {"-c", "echo started $GREETING; exec sleep 60"};
  options.log_path = dir + "/daemon.log";
  options.env = {{"GREETING", "hello"}};
  {
    DaemonProcess daemon(options);
    ASSERT_TRUE(daemon.start());
    EXPECT_TRUE(daemon.running());
    EXPECT_TRUE(
        waitUntil([&] { return daemon.log().find("started hello") != std::string::npos; }, 5s));
    auto status = daemon.stop(5s);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(*status, 128 + SIGTERM);
    EXPECT_FALSE(daemon.running());
  }
  std::filesystem::remove_all(dir);
}

TEST(SupportDaemonTest, KillsAProcessThatIgnoresSigterm) {
  std::string dir =
      std::filesystem::temp_directory_path() / ("pgfailover-daemon-" + randomToken(8));
  std::filesystem::create_directories(dir);
  DaemonOptions options;
  options.binary = "/bin/bash";
  options.args = {"-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"};
  options.log_path = dir + "/daemon.log";
  DaemonProcess daemon(options);
  ASSERT_TRUE(daemon.start());
  EXPECT_TRUE(waitUntil([&] { return daemon.log().find("ready") != std::string::npos; }, 5s));
  auto status = daemon.stop(500ms);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 128 + SIGKILL);
  std::filesystem::remove_all(dir);
}

TEST(SupportDaemonTest, ReportsAnEarlyExit) {
  std::string dir =
      std::filesystem::temp_directory_path() / ("pgfailover-daemon-" + randomToken(8));
  std::filesystem::create_directories(dir);
  DaemonOptions options;
  options.binary = "/bin/sh";
  options.args = {"-c", "echo bad config >&2; exit 3"};
  options.log_path = dir + "/daemon.log";
  DaemonProcess daemon(options);
  ASSERT_TRUE(daemon.start());
  auto status = daemon.waitForExit(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 3);
  EXPECT_NE(daemon.log().find("bad config"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(SupportHttpTest, GetAndPostAgainstALocalServer) {
  httplib::Server server;
  server.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"hello\":true}", "application/json");
  });
  server.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 202;
    res.set_content(req.body, "text/plain");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread thread([&] { server.listen_after_bind(); });
  ASSERT_TRUE(waitUntil([&] { return server.is_running(); }, 5s));

  HttpResponse hello = httpGet(port, "/hello");
  EXPECT_EQ(hello.status, 200);
  EXPECT_TRUE(hello.ok());
  EXPECT_EQ(hello.body, "{\"hello\":true}");
  EXPECT_EQ(hello.content_type, "application/json");
  EXPECT_EQ(httpGet(port, "/missing").status, 404);
  HttpResponse echo = httpPost(port, "/echo", "ping", "text/plain");
  EXPECT_EQ(echo.status, 202);
  EXPECT_EQ(echo.body, "ping");

  server.stop();
  thread.join();
  HttpResponse refused = httpGet(port, "/hello", 1s);
  EXPECT_EQ(refused.status, 0);
  EXPECT_FALSE(refused.error.empty());
}

TEST(SupportConfigTest, ConfigForAClusterNamesEveryNode) {
  PgCluster cluster(1);
  ASSERT_TRUE(cluster.ok());
  auto config = pgfailoverConfig(cluster, 18008);
  ASSERT_EQ(config["nodes"].size(), 2u);
  EXPECT_EQ(config["nodes"][1]["name"], "pg2");
  EXPECT_EQ(config["nodes"][1]["port"], cluster.node(1).port);
  EXPECT_EQ(config["nodes"][0]["password_file"], cluster.passwordFile());
  EXPECT_EQ(config["http"]["port"], 18008);
  std::string path = writePgfailoverConfig(cluster, config);
  EXPECT_EQ(nlohmann::json::parse(readTextFile(path)), config);
}

TEST(SupportPortTest, FreePortsAreDistinctAndBindable) {
  int a = freePort(), b = freePort();
  EXPECT_NE(a, b);
  EXPECT_GE(a, 1024);
  EXPECT_GE(b, 1024);
}

}  // namespace
}  // namespace pgfailover::testing
