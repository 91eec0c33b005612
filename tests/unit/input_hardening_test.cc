// Bad input where pgfailover reads files: a configuration with a key twice, a control character
// in a value, a FIFO or an oversized file; a state file whose numbers are out of type or range,
// or whose temporary file is a planted symlink. Each is refused with a message naming it, and
// nothing hangs or is written through a link.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "config/config.h"
#include "runtime/state_file.h"
#include "support/config_errors.h"

namespace pgfailover {
namespace {

using pgfailover::testing::joinedErrors;
using pgfailover::testing::noEnv;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pgfailover-input-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

const char* kNodes =
    R"("nodes": [{"name": "pg1", "host": "10.0.0.1"}, {"name": "pg2", "host": "10.0.0.2"}])";

TEST(ConfigInput, AKeyTwiceInOneObjectIsRefused) {
  auto r = config::parseConfig(
      std::string("{") + kNodes + R"(, "probe": {"interval_ms": 1000, "interval_ms": 50}})", noEnv);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(joinedErrors(r).find("\"interval_ms\" appears twice"), std::string::npos)
      << joinedErrors(r);
  // The same key in two different objects is fine.
  auto fine = config::parseConfig(std::string("{") + kNodes + "}", noEnv);
  EXPECT_TRUE(fine.ok()) << joinedErrors(fine);
}

TEST(ConfigInput, AControlCharacterInAValueIsRefusedByKey) {
  auto newline = config::parseConfig(
      std::string("{") + kNodes +
          R"(, "replication": {"user": "repl\nshared_preload_libraries = 'x'"}})",
      noEnv);
  EXPECT_FALSE(newline.ok());
  EXPECT_NE(joinedErrors(newline).find("replication.user: holds a control character"),
            std::string::npos)
      << joinedErrors(newline);
  auto tab = config::parseConfig(
      R"({"nodes": [{"name": "pg1", "host": "10.0.0.1\tsslmode=disable"}, {"name": "pg2", "host": "10.0.0.2"}]})",
      noEnv);
  EXPECT_FALSE(tab.ok());
  EXPECT_NE(joinedErrors(tab).find("nodes[0].host: holds a control character"), std::string::npos)
      << joinedErrors(tab);
}

TEST_F(TempDir, AFifoAsConfigurationIsRefusedWithoutHanging) {
  const std::string fifo = dir_ + "/pgfailover.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto loading = std::async(std::launch::async, [&] { return config::loadConfigFile(fifo); });
  ASSERT_EQ(loading.wait_for(5s), std::future_status::ready) << "reading a FIFO hangs";
  auto r = loading.get();
  EXPECT_FALSE(r.ok());
  EXPECT_NE(joinedErrors(r).find("is not a regular file"), std::string::npos) << joinedErrors(r);
}

TEST_F(TempDir, AnOversizedConfigurationIsRefused) {
  const std::string path = dir_ + "/pgfailover.json";
  {
    std::ofstream out(path);
    out << "{" << kNodes << ", \"cluster_name\": \"" << std::string(2 * 1024 * 1024, 'x') << "\"}";
  }
  auto r = config::loadConfigFile(path);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(joinedErrors(r).find("at most 1048576"), std::string::npos) << joinedErrors(r);
}

std::string stateWith(const std::string& fields) {
  return R"({"format": 1, "primary": "pg1", "history": [])" +
         (fields.empty() ? "" : ", " + fields) + "}";
}

TEST(StateInput, NumbersOutOfTypeOrRangeMakeTheFileCorrupt) {
  std::string error;
  EXPECT_TRUE(runtime::parseState(
      stateWith(
          R"("primary_timeline": 3, "system_identifier": "7300000000000000001", "failovers": 2)"),
      error))
      << error;
  for (const std::string bad :
       {R"("primary_timeline": -1)", R"("primary_timeline": 4294967296)",
        R"("primary_timeline": 1.5)", R"("primary_timeline": "3")",
        R"("system_identifier": "12abc")", R"("system_identifier": "-5")",
        R"("system_identifier": "99999999999999999999")", R"("failovers": -3)",
        R"("history": [{"kind": "failover", "duration_ms": -1}])", R"("history": [{"kind": 5}])",
        R"("history": "none")"}) {
    error.clear();
    EXPECT_FALSE(runtime::parseState(stateWith(bad), error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
  error.clear();
  EXPECT_FALSE(runtime::parseState(stateWith(R"("primary_timeline": -1)"), error));
  EXPECT_NE(error.find("primary_timeline is -1"), std::string::npos) << error;
}

// What save() writes, load() reads back: every field, an event with and one without a request.
TEST_F(TempDir, TheStateFileRoundTripsEveryField) {
  runtime::StateFile file(dir_ + "/state.json");
  runtime::PersistedState state;
  state.primary = "pg2";
  state.primary_timeline = 7;
  state.system_identifier = 7300000000000000001ull;
  state.failovers = 3;
  runtime::HistoryEvent plain{WallTime{} + std::chrono::hours(24 * 365 * 56),
                              "failover",
                              "pg2",
                              "pg1",
                              "pg2",
                              "succeeded",
                              "why",
                              Millis{4200},
                              0};
  runtime::HistoryEvent requested = plain;
  requested.kind = "switchover";
  requested.request_id = 42;
  state.addEvent(plain);
  state.addEvent(requested);
  ASSERT_TRUE(file.save(state).isOk());
  Status status;
  auto loaded = file.load(status);
  ASSERT_TRUE(loaded.has_value()) << status.message();
  EXPECT_EQ(loaded->primary, "pg2");
  EXPECT_EQ(loaded->primary_timeline, 7u);
  EXPECT_EQ(loaded->system_identifier, 7300000000000000001ull);
  EXPECT_EQ(loaded->failovers, 3u);
  ASSERT_EQ(loaded->history.size(), 2u);
  EXPECT_EQ(loaded->history[0].request_id, 0u);
  EXPECT_EQ(loaded->history[0].duration, Millis{4200});
  EXPECT_EQ(loaded->history[1].request_id, 42u);
  EXPECT_EQ(loaded->history[1].kind, "switchover");
}

TEST_F(TempDir, ThePlantedSymlinkAtTheTemporaryNameIsNeverWrittenThrough) {
  const std::string path = dir_ + "/state.json";
  const std::string victim = dir_ + "/victim";
  { std::ofstream(victim) << "precious\n"; }
  ASSERT_EQ(symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  runtime::StateFile file(path);
  runtime::PersistedState state;
  state.primary = "pg1";
  ASSERT_TRUE(file.save(state).isOk());
  std::ifstream in(victim);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "precious\n") << "the state was written through the symlink";
  Status status;
  auto loaded = file.load(status);
  ASSERT_TRUE(loaded.has_value()) << status.message();
  EXPECT_EQ(loaded->primary, "pg1");
}

TEST_F(TempDir, AFifoAsStateFileIsRefusedWithoutHanging) {
  const std::string path = dir_ + "/state.json";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  runtime::StateFile file(path);
  auto loading = std::async(std::launch::async, [&] {
    Status status;
    auto state = file.load(status);
    return std::make_pair(state.has_value(), status.message());
  });
  ASSERT_EQ(loading.wait_for(5s), std::future_status::ready) << "reading a FIFO hangs";
  auto [loaded, message] = loading.get();
  EXPECT_FALSE(loaded);
  EXPECT_NE(message.find("not a regular file"), std::string::npos) << message;
}

}  // namespace
}  // namespace pgfailover
