#include "cli/commands.h"

#include <iostream>

#include "core/decide.h"

namespace pgfailover::cli {

int runMain(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "print-states") {
    std::cout << core::renderStateMachineDoc();
    return 0;
  }
  std::cerr << "pgfailover: not implemented yet\n";
  return 2;
}

}  // namespace pgfailover::cli
