// The command line: `pgfailover run|check-config|status|switchover|failover|history|print-states|
// lease-guard`, --version, --help.
// Parses arguments and dispatches; the work itself lives in the other modules.
#pragma once

namespace pgfailover::cli {

int runMain(int argc, char** argv);

}  // namespace pgfailover::cli
