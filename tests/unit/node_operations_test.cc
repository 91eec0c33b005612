// What the node operations (runtime/node_operations.h) tell the decision before anything runs:
// whether each node has a host executor. Nothing here starts an operation.
#include "runtime/node_operations.h"

#include <gtest/gtest.h>

#include <sstream>

namespace pgfailover::runtime {
namespace {

config::Config twoNodes(bool rejoin) {
  config::Config config;
  config.nodes.resize(2);
  config.nodes[0].name = "pg1";
  config.nodes[1].name = "pg2";
  config.nodes[1].exec.kind = config::HostExecKind::kLocal;
  config.nodes[1].exec.run_as = "postgres";
  config.failover.rejoin = rejoin;
  return config;
}

// The decision keeps the replication slots of the nodes with a host executor and checks
// failover.rejoin itself before a rejoin. Had the report said "no executor" with rejoins off,
// a slot made while they were on would be neither used nor dropped, and would retain WAL until
// the primary's disk fills.
TEST(NodeOperations, ANodeWithAHostExecutorIsReportedSoWhetherRejoinsAreOnOrOff) {
  for (bool rejoin : {true, false}) {
    std::ostringstream out;
    Logger log(out, false, LogLevel::kInfo);
    const config::Config config = twoNodes(rejoin);
    NodeOperations operations(config, log);
    const auto reports = operations.reports();
    ASSERT_EQ(reports.size(), 2u);
    EXPECT_FALSE(reports[0].available) << "no executor; rejoin " << rejoin;
    EXPECT_TRUE(reports[1].available) << "local executor; rejoin " << rejoin;
    EXPECT_FALSE(reports[1].running);
  }
}

}  // namespace
}  // namespace pgfailover::runtime
