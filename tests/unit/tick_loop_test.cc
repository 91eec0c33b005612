// The tick loop (runtime/tick_loop.h) through its seams: observe -> decide -> act -> persist ->
// publish with the real decision (core::decide) and stand-ins for what it touches: node probes
// that answer what a test says (or throw, or hang), an executor that records actions (or
// throws), a clock the test moves, a snapshot sink. The state file is a real file.
#include "runtime/tick_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/snapshot_store.h"
#include "decide_story.h"
#include "metrics/metrics.h"
#include "runtime/state_file.h"

namespace pgfailover::runtime {
namespace {

using namespace std::chrono_literals;
using core::story::downNode;
using core::story::primaryNode;
using core::story::replicaNode;

// Answers what the test last set; can throw, or hang until released.
class FakeProbe : public NodeProbe {
 public:
  explicit FakeProbe(core::NodeObservation seen) : seen_(std::move(seen)) {}

  core::NodeObservation probe(bool write_heartbeat) override {
    ++probes_;
    if (write_heartbeat) ++heartbeats_;
    if (hang_) gate_.wait();
    std::lock_guard lock(mutex_);
    ++returned_;
    if (throws_) throw std::runtime_error("probe exploded");
    return seen_;
  }
  bool pingHost() override { return false; }
  Status releaseLease() override { return Status::ok(); }

  void set(core::NodeObservation seen) {
    std::lock_guard lock(mutex_);
    seen_ = std::move(seen);
  }
  void setThrows(bool throws) {
    std::lock_guard lock(mutex_);
    throws_ = throws;
  }
  // The next probe hangs until release().
  void hang() {
    gate_ = release_.get_future().share();
    hang_ = true;
  }
  void release() {
    hang_ = false;
    release_.set_value();
  }
  int probes() const { return probes_; }
  int heartbeats() const { return heartbeats_; }
  int returned() const { return returned_; }

 private:
  std::mutex mutex_;
  core::NodeObservation seen_;
  bool throws_ = false;
  std::atomic<bool> hang_{false};
  std::promise<void> release_;
  std::shared_future<void> gate_;
  std::atomic<int> probes_{0};
  std::atomic<int> heartbeats_{0};
  std::atomic<int> returned_{0};
};

// Records every action; throws on the kind it is told to.
class FakeExecutor : public ActionExecutor {
 public:
  explicit FakeExecutor(std::size_t nodes) : nodes_(nodes) {}
  Status execute(const core::Action& action) override {
    taken.push_back(action);
    if (throw_on && *throw_on == action.kind()) throw std::runtime_error("executor exploded");
    return Status::ok();
  }
  std::vector<core::NodeOperation> operationReports() const override {
    return std::vector<core::NodeOperation>(nodes_);
  }
  std::size_t count(core::ActionKind kind) const {
    std::size_t n = 0;
    for (const auto& action : taken) n += action.kind() == kind ? 1 : 0;
    return n;
  }

  std::vector<core::Action> taken;
  std::optional<core::ActionKind> throw_on;

 private:
  std::size_t nodes_;
};

class FakeClock : public Clock {
 public:
  SteadyTime steady() const override { return steady_; }
  WallTime wall() const override { return wall_; }
  void advance(Millis by) {
    steady_ += by;
    wall_ += by;
  }

 private:
  // The decision's unit tests' epoch, so that their observations (heartbeats) fit.
  SteadyTime steady_ = SteadyTime{} + 1h;
  WallTime wall_ = WallTime{} + std::chrono::hours(24 * 365 * 50);
};

// Publishes into a store, or throws when told to.
class FlakySink : public core::SnapshotSink {
 public:
  void publish(std::shared_ptr<const core::Snapshot> snapshot) override {
    if (throws) throw std::runtime_error("sink exploded");
    store.publish(std::move(snapshot));
  }
  core::SnapshotStore store;
  bool throws = false;
};

// Several instances (runtime/coordinator.h) without etcd: the test says whether this instance
// acts and whether etcd accepts its guarded writes, and holds the shared documents.
class FakeCoordinator : public Coordinator {
 public:
  bool shared() const override { return true; }
  core::CoordinationView step(SteadyTime) override {
    if (clock && step_takes > Millis{0}) clock->advance(step_takes);
    core::CoordinationView view;
    view.enabled = true;
    view.instance = "a";
    view.acting = acting_now;
    view.acting_instance = acting_now ? "a" : "b";
    view.etcd_reachable = true;
    return view;
  }
  bool acting(SteadyTime now) const override {
    return acting_now && (!acting_until || now < *acting_until);
  }
  std::string instance() const override { return "a"; }
  std::int64_t term() const override { return 7; }
  Status guard(SteadyTime, const std::vector<DocumentWrite>& writes) override {
    ++guards;
    if (refuse) return {StatusCode::kFailedPrecondition, "etcd refused the write"};
    for (const auto& [name, document] : writes) {
      if (document)
        documents[name] = *document;
      else
        documents.erase(name);
    }
    return Status::ok();
  }
  Status read(const std::string& name, std::optional<nlohmann::json>& document) override {
    const auto it = documents.find(name);
    document.reset();
    if (it != documents.end()) document = it->second;
    return Status::ok();
  }
  void resign() override {}

  bool acting_now = false;
  std::optional<SteadyTime> acting_until;  // the acting window's end, when set
  FakeClock* clock = nullptr;              // advanced by each step by step_takes
  Millis step_takes{0};
  bool refuse = false;
  int guards = 0;
  std::map<std::string, nlohmann::json> documents;
};

class TickLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pgfailover-tick-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    loop_.reset();  // before the fakes it uses
    std::filesystem::remove_all(dir_);
  }

  std::string statePath() const { return (dir_ / "state.json").string(); }

  void start(const std::string& extra = "", std::unique_ptr<Coordinator> coordinator = nullptr) {
    auto loaded = config::parseConfig(
        R"({"nodes": [{"name": "pg1", "host": "127.0.0.1"}, {"name": "pg2", "host": "127.0.0.2"}],
            "probe": {"interval_ms": 50, "connect_timeout_ms": 100, "query_timeout_ms": 100},
            "state_file": ")" +
            statePath() + "\"" + extra + "}",
        [](const std::string&) { return std::nullopt; });
    ASSERT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors.front());
    config_ = std::move(*loaded.config);
    TickSeams seams;
    auto p1 = std::make_unique<FakeProbe>(primaryNode("pg1"));
    auto p2 = std::make_unique<FakeProbe>(replicaNode("pg2"));
    pg1_ = p1.get();
    pg2_ = p2.get();
    seams.probes.push_back(std::move(p1));
    seams.probes.push_back(std::move(p2));
    auto executor = std::make_unique<FakeExecutor>(2);
    executor_ = executor.get();
    seams.executor = std::move(executor);
    auto clock = std::make_unique<FakeClock>();
    clock_ = clock.get();
    seams.clock = std::move(clock);
    seams.coordinator = std::move(coordinator);
    loop_ = std::make_unique<TickLoop>(config_, std::move(seams), sink_, metrics_, log_);
  }

  bool tick() {
    clock_->advance(1000ms);
    return loop_->tickOnce(clock_->steady());
  }
  // Ticks with the primary refusing and the replica cut off from it until a promotion is taken.
  void tickUntilPromotion() {
    pg1_->set(downNode("pg1"));
    pg2_->set(replicaNode("pg2", false));
    for (int i = 0; i < 30 && executor_->count(core::ActionKind::kPromote) == 0; ++i)
      ASSERT_TRUE(tick()) << log_text_.str();
    ASSERT_EQ(executor_->count(core::ActionKind::kPromote), 1u) << log_text_.str();
  }
  double tickFailures() const {
    return metrics_.value("pgfailover_tick_failures_total", {}).value_or(-1);
  }
  std::uint64_t publishedTick() const { return sink_.store.current()->tick; }

  std::filesystem::path dir_;
  config::Config config_;
  FlakySink sink_;
  metrics::Metrics metrics_;
  std::ostringstream log_text_;
  Logger log_{log_text_, false, LogLevel::kDebug};
  FakeProbe* pg1_ = nullptr;
  FakeProbe* pg2_ = nullptr;
  FakeExecutor* executor_ = nullptr;
  FakeClock* clock_ = nullptr;
  std::unique_ptr<TickLoop> loop_;
};

TEST_F(TickLoopTest, ObservesDecidesActsPersistsAndPublishes) {
  start();
  ASSERT_TRUE(loop_->restoreState().isOk());
  ASSERT_TRUE(tick());
  auto snapshot = sink_.store.current();
  EXPECT_EQ(snapshot->tick, 1u);
  EXPECT_EQ(snapshot->state, core::ClusterState::kHealthy);
  ASSERT_TRUE(loop_->memory().primary.has_value());
  EXPECT_EQ(*loop_->memory().primary, 0u);

  tickUntilPromotion();
  const auto& promote = executor_->taken.back();
  EXPECT_EQ(promote.kind(), core::ActionKind::kPromote);
  EXPECT_EQ(promote.node, 1u);
  EXPECT_EQ(loop_->memory().state, core::ClusterState::kPromoting);

  // pg2 answers as the new primary: the failover completes, and the state file says so.
  pg2_->set(primaryNode("pg2", 2));
  ASSERT_TRUE(tick());
  EXPECT_EQ(sink_.store.current()->state, core::ClusterState::kDegraded);
  Status status;
  auto persisted = StateFile(statePath()).load(status);
  ASSERT_TRUE(persisted) << status.message();
  ASSERT_TRUE(persisted->primary.has_value());
  EXPECT_EQ(*persisted->primary, "pg2");
  EXPECT_EQ(persisted->primary_timeline, 2u);
  EXPECT_EQ(persisted->failovers, 1u);
  EXPECT_EQ(tickFailures(), 0);
}

TEST_F(TickLoopTest, AnActionThatThrowsIsAFailedActionAndTheTickGoesOn) {
  start();
  ASSERT_TRUE(tick());
  executor_->throw_on = core::ActionKind::kPromote;
  tickUntilPromotion();
  EXPECT_NE(log_text_.str().find("promote_failed"), std::string::npos) << log_text_.str();
  EXPECT_NE(log_text_.str().find("threw: executor exploded"), std::string::npos);
  // The tick completed: the decision is kept and published, no tick failed.
  EXPECT_EQ(loop_->memory().state, core::ClusterState::kPromoting);
  EXPECT_EQ(sink_.store.current()->state, core::ClusterState::kPromoting);
  EXPECT_EQ(tickFailures(), 0);
}

TEST_F(TickLoopTest, AProbeThatThrowsFailsTheTickAndTheLoopGoesOn) {
  start();
  ASSERT_TRUE(tick());
  const auto before = loop_->memory();
  pg1_->setThrows(true);
  EXPECT_FALSE(tick());
  EXPECT_FALSE(tick());
  EXPECT_EQ(tickFailures(), 2);
  EXPECT_NE(log_text_.str().find("tick_failed"), std::string::npos);
  EXPECT_NE(log_text_.str().find("probe exploded"), std::string::npos);
  // Nothing was decided on a tick that failed before acting: same memory, nothing published.
  EXPECT_EQ(publishedTick(), 1u);
  EXPECT_EQ(loop_->memory().state, before.state);
  EXPECT_TRUE(executor_->taken.empty());

  pg1_->setThrows(false);
  EXPECT_TRUE(tick());
  EXPECT_EQ(publishedTick(), 2u);
  EXPECT_EQ(tickFailures(), 2);
}

TEST_F(TickLoopTest, ATickThatFailsAfterItsActionsKeepsItsDecisionSoNoActionRepeats) {
  start();
  ASSERT_TRUE(tick());
  pg1_->set(downNode("pg1"));
  pg2_->set(replicaNode("pg2", false));
  sink_.throws = true;
  int failed = 0;
  for (int i = 0; i < 30 && executor_->count(core::ActionKind::kPromote) == 0; ++i)
    failed += tick() ? 0 : 1;
  ASSERT_EQ(executor_->count(core::ActionKind::kPromote), 1u) << log_text_.str();
  EXPECT_GT(failed, 0);
  EXPECT_EQ(tickFailures(), failed);
  EXPECT_NE(log_text_.str().find("its actions started and its decision is kept"),
            std::string::npos);
  EXPECT_EQ(loop_->memory().state, core::ClusterState::kPromoting);
  // The promotion is not taken again while it is being confirmed.
  sink_.throws = false;
  EXPECT_TRUE(tick());
  EXPECT_EQ(executor_->count(core::ActionKind::kPromote), 1u);
  EXPECT_EQ(sink_.store.current()->state, core::ClusterState::kPromoting);
}

TEST_F(TickLoopTest, AProbeThatOutlivesItsDeadlineCountsAsSilentAndDoesNotStopTheLoop) {
  start();
  ASSERT_TRUE(tick());
  pg1_->hang();
  ASSERT_TRUE(tick());  // returns although pg1's probe does not
  auto seen = sink_.store.current()->nodes.at(0).observation;
  EXPECT_FALSE(seen.reachable);
  EXPECT_EQ(seen.failure, core::ProbeFailure::kTimeout);
  EXPECT_NE(seen.error.find("past its deadline"), std::string::npos) << seen.error;
  // The hung probe is not started again while it runs; the node stays silent.
  const int probes = pg1_->probes();
  ASSERT_TRUE(tick());
  EXPECT_EQ(pg1_->probes(), probes);
  EXPECT_EQ(sink_.store.current()->nodes.at(0).observation.failure, core::ProbeFailure::kTimeout);
  EXPECT_EQ(tickFailures(), 0);

  pg1_->release();
  for (int i = 0; i < 500 && pg1_->returned() < probes; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(pg1_->returned(), probes);
  // The next tick takes the finished probe and starts a fresh one, which answers.
  ASSERT_TRUE(tick());
  EXPECT_TRUE(sink_.store.current()->nodes.at(0).observation.reachable);
  EXPECT_EQ(pg1_->probes(), probes + 1);
}

TEST_F(TickLoopTest, ACorruptStateFileStopsTheStartNamingTheFile) {
  std::ofstream(statePath()) << "{\"primary\": \"pg1\", \"timeline\": ";
  start();
  const Status status = loop_->restoreState();
  EXPECT_FALSE(status.isOk());
  EXPECT_NE(status.message().find(statePath()), std::string::npos) << status.message();
}

TEST_F(TickLoopTest, AStateFileThatCannotBeWrittenIsLoggedAndTheLoopGoesOn) {
  start();
  std::filesystem::remove_all(dir_);  // the state file's folder is gone
  ASSERT_TRUE(tick());
  tickUntilPromotion();
  pg2_->set(primaryNode("pg2", 2));
  EXPECT_TRUE(tick());
  EXPECT_NE(log_text_.str().find("state_save_failed"), std::string::npos) << log_text_.str();
  EXPECT_EQ(sink_.store.current()->state, core::ClusterState::kDegraded);
  EXPECT_EQ(tickFailures(), 0);
}

// run(): the tick observer (readiness, systemd's watchdog) is fed only by ticks that complete,
// so a daemon whose every tick fails gets restarted by systemd.
TEST_F(TickLoopTest, FailedTicksDoNotFeedTheWatchdogAndTheLoopKeepsTicking) {
  start();
  std::atomic<int> observed{0};
  loop_->setTickObserver([&observed] { ++observed; });
  pg1_->setThrows(true);
  std::thread thread([this] { loop_->run(); });
  for (int i = 0; i < 400 && tickFailures() < 3; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(tickFailures(), 3);
  EXPECT_EQ(observed, 0);
  pg1_->setThrows(false);
  for (int i = 0; i < 400 && observed == 0; ++i) std::this_thread::sleep_for(10ms);
  loop_->requestStop();
  thread.join();
  EXPECT_GT(observed, 0);
}

TEST_F(TickLoopTest, SeamsThatDoNotMatchTheNodesAreRefused) {
  start();
  TickSeams seams;
  seams.probes.push_back(std::make_unique<FakeProbe>(primaryNode("pg1")));
  seams.executor = std::make_unique<FakeExecutor>(2);
  EXPECT_THROW(TickLoop(config_, std::move(seams), sink_, metrics_, log_), std::invalid_argument);
}

// The acting instance died between recording the failover in the shared state and deleting
// its intent (the next tick's write). The successor finds the intent's node already recorded
// as the primary on a newer timeline: nothing to wait for, nothing to count or record again.
TEST_F(TickLoopTest, ATakeoverAfterThePromotionWasRecordedDoesNotRecordItAgain) {
  auto owned = std::make_unique<FakeCoordinator>();
  FakeCoordinator* coordinator = owned.get();
  PersistedState shared;
  shared.primary = "pg2";
  shared.primary_timeline = 2;
  shared.failovers = 1;
  HistoryEvent failover;
  failover.kind = "failover";
  failover.from = "pg1";
  failover.to = "pg2";
  failover.node = "pg2";
  failover.result = "succeeded";
  shared.addEvent(failover);
  coordinator->documents[kSharedStateDocument] = nlohmann::json::parse(toJson(shared));
  coordinator->documents[kPromotionIntentDocument] = {
      {"node", "pg2"}, {"timeline", 1}, {"instance", "b"}, {"term", 3}};
  coordinator->acting_now = true;
  start("", std::move(owned));
  pg1_->set(downNode("pg1"));
  pg2_->set(primaryNode("pg2", 2));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(tick()) << log_text_.str();
  EXPECT_NE(log_text_.str().find("already recorded"), std::string::npos) << log_text_.str();
  EXPECT_FALSE(loop_->memory().promoting.has_value());
  EXPECT_EQ(loop_->memory().failovers, 1u);
  EXPECT_EQ(coordinator->documents.count(kPromotionIntentDocument), 0u);
  const auto& state = coordinator->documents[kSharedStateDocument];
  EXPECT_EQ(state["failovers"], 1) << state.dump(2);
  std::size_t failovers = 0;
  for (const auto& event : state["history"])
    if (event.value("kind", "") == "failover") ++failovers;
  EXPECT_EQ(failovers, 1u) << state.dump(2);
  EXPECT_EQ(executor_->count(core::ActionKind::kPromote), 0u);
}

// Whether this instance may act is judged after the election step, which can wait out a
// deadline on every etcd endpoint: an instance cut off from etcd whose window closed during the
// step neither writes the heartbeat nor acts in that tick.
TEST_F(TickLoopTest, AnActingWindowThatClosedDuringTheStepStopsTheTick) {
  auto owned = std::make_unique<FakeCoordinator>();
  FakeCoordinator* coordinator = owned.get();
  coordinator->acting_now = true;
  start("", std::move(owned));
  coordinator->clock = clock_;
  ASSERT_TRUE(tick());
  ASSERT_TRUE(tick());
  ASSERT_GT(pg1_->heartbeats(), 0) << "the acting instance writes the heartbeat";
  const int written = pg1_->heartbeats() + pg2_->heartbeats();
  // etcd stops answering: the step now takes 3 s, and the window closes 1 s into the next one.
  coordinator->step_takes = 3000ms;
  coordinator->acting_until = clock_->steady() + 1000ms + 1000ms;
  pg1_->set(downNode("pg1"));
  pg2_->set(replicaNode("pg2", false));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(tick());
  EXPECT_EQ(pg1_->heartbeats() + pg2_->heartbeats(), written) << log_text_.str();
  EXPECT_TRUE(executor_->taken.empty()) << log_text_.str();
  EXPECT_NE(log_text_.str().find("acting_stopped"), std::string::npos);
}

}  // namespace
}  // namespace pgfailover::runtime

namespace pgfailover::runtime {
namespace {

// A single instance writes the promotion's intent to its state file before pg_promote: a restart
// before the promotion is seen waits for that promotion instead of starting the countdown and
// a promotion again.
TEST_F(TickLoopTest, APromotionIntentInTheStateFileIsWaitedForAfterARestart) {
  start();
  ASSERT_TRUE(loop_->restoreState().isOk());
  ASSERT_TRUE(tick());
  tickUntilPromotion();
  Status status;
  auto persisted = StateFile(statePath()).load(status);
  ASSERT_TRUE(persisted) << status.message();
  ASSERT_TRUE(persisted->promotion_intent.has_value());
  EXPECT_EQ(*persisted->promotion_intent, "pg2");

  // Restarted: the replica is still in recovery and the old primary still down.
  start();
  ASSERT_TRUE(loop_->restoreState().isOk());
  EXPECT_NE(log_text_.str().find("promotion_intent_found"), std::string::npos);
  pg1_->set(downNode("pg1"));
  pg2_->set(replicaNode("pg2", false));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(tick());
  EXPECT_EQ(executor_->count(core::ActionKind::kPromote), 0u) << log_text_.str();
  ASSERT_TRUE(loop_->memory().promoting.has_value());
  EXPECT_EQ(*loop_->memory().promoting, 1u);

  // It lands: confirmed and recorded, and (once seen again after that tick) the intent is gone.
  pg2_->set(primaryNode("pg2", 2));
  ASSERT_TRUE(tick());
  ASSERT_TRUE(tick());
  persisted = StateFile(statePath()).load(status);
  ASSERT_TRUE(persisted) << status.message();
  EXPECT_FALSE(persisted->promotion_intent.has_value());
  EXPECT_EQ(*persisted->primary, "pg2");
  EXPECT_EQ(persisted->failovers, 1u);
}

// An instance that does not act decides like the acting one but takes nothing; when it starts
// acting it takes the shared memory over: a promotion intent there is waited for, never
// doubled, and cleared once the promotion is seen.
TEST_F(TickLoopTest, OnlyTheActingInstanceActsAndATakeoverWaitsForTheSharedIntent) {
  auto owned = std::make_unique<FakeCoordinator>();
  FakeCoordinator* coordinator = owned.get();
  start("", std::move(owned));
  ASSERT_TRUE(tick());
  pg1_->set(downNode("pg1"));
  pg2_->set(replicaNode("pg2", false));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(tick());
  EXPECT_TRUE(executor_->taken.empty()) << log_text_.str();
  EXPECT_NE(log_text_.str().find("not_acting: decided promote on 'pg2'"), std::string::npos);
  EXPECT_EQ(coordinator->guards, 0);
  EXPECT_EQ(sink_.store.current()->coordination.acting_instance, "b");

  // The acting instance wrote its intent and died; this one takes over.
  coordinator->documents[kPromotionIntentDocument] = {{"node", "pg2"}, {"instance", "b"}};
  coordinator->acting_now = true;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(tick());
  EXPECT_EQ(executor_->count(core::ActionKind::kPromote), 0u) << log_text_.str();
  EXPECT_NE(log_text_.str().find("possibly under way"), std::string::npos);
  ASSERT_TRUE(loop_->memory().promoting.has_value());
  EXPECT_TRUE(sink_.store.current()->coordination.acting);

  pg2_->set(primaryNode("pg2", 2));
  ASSERT_TRUE(tick());
  ASSERT_TRUE(tick());
  EXPECT_EQ(coordinator->documents.count(kPromotionIntentDocument), 0u);
  ASSERT_EQ(coordinator->documents.count(kSharedStateDocument), 1u);
  EXPECT_EQ(coordinator->documents[kSharedStateDocument]["primary"], "pg2");
}

// A guarded write etcd refuses (this instance was deposed) cancels the tick's actions.
TEST_F(TickLoopTest, ARefusedGuardCancelsTheActions) {
  auto owned = std::make_unique<FakeCoordinator>();
  FakeCoordinator* coordinator = owned.get();
  coordinator->acting_now = true;
  coordinator->refuse = true;
  start("", std::move(owned));
  ASSERT_TRUE(tick());
  pg1_->set(downNode("pg1"));
  pg2_->set(replicaNode("pg2", false));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(tick());
  EXPECT_GE(coordinator->guards, 1);
  EXPECT_TRUE(executor_->taken.empty()) << log_text_.str();
  EXPECT_NE(log_text_.str().find("etcd refused the write"), std::string::npos);
  EXPECT_EQ(coordinator->documents.count(kPromotionIntentDocument), 0u);
}

}  // namespace
}  // namespace pgfailover::runtime
