#include "cli/commands.h"

int main(int argc, char** argv) {
  return pgfailover::cli::runMain(argc, argv);
}
