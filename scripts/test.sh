#!/usr/bin/env bash
# The test command (README, CI): installs the Debian packages, checks the sources (formatting
# with clang-format, every shell script with shellcheck), then builds three ways, warnings as errors, and runs the tests (exit non-zero on
# any failure):
#   - plain (BUILD_DIR): the unit tests; this build also serves the package, Helm and lab phases;
#   - AddressSanitizer + UndefinedBehaviorSanitizer (BUILD_DIR-asan): the unit tests and the
#     integration tests (real PostgreSQL 15 servers, one test at a time), the daemon they start
#     instrumented too;
#   - ThreadSanitizer (BUILD_DIR-tsan): the tests that run threads (ctest label "threads",
#     CMakeLists.txt lists them).
# A sanitizer finding in any process (a test, the daemon, a CLI call) fails its phase: the
# reports go to files that are printed after the phase. Whatever the tests start lives under one
# folder of this run; on exit anything still running there is stopped by PID and the folder
# removed, also after a crashed test.
#
# Then the Debian package: built by scripts/package.sh (lintian must pass), installed with apt
# into a clean Debian 12 root where the daemon runs from the installed files against real
# PostgreSQL (tests/labs/deb_install_test.sh). Then the deployment checks: the Helm chart
# offline, the static checks of the container and
# monitoring files (promtool, haproxy -c...), the namespace lab end to end, the chaos
# suite's quick pass, and last the compose lab with a private dockerd (the slowest: it builds
# the images from a debootstrapped base). Each phase prints its duration.
#
# Environment: BUILD_DIR (build-ci), BUILD_TYPE (RelWithDebInfo), JOBS (nproc),
# CTEST_ARGS (extra ctest arguments, e.g. "-R Support"; runs only ctest, no deployment checks),
# SKIP_DEPS=1, SKIP_SOURCE_CHECKS=1, SKIP_ASAN=1 (the integration tests then run in the plain
# build), SKIP_TSAN=1, SKIP_PACKAGE=1, SKIP_HELM=1, SKIP_LABS=1 (static checks, namespace lab,
# chaos, compose), SKIP_CHAOS=1, SKIP_COMPOSE=1.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build-ci}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-$(nproc)}
read -r -a ctest_extra <<<"${CTEST_ARGS:-}"

say() { printf '\ntest.sh: %s\n' "$*" >&2; }
phase_started=$SECONDS
phase() {
  say "$1 (at $((SECONDS - phase_started)) s)"
}

if [[ ${SKIP_DEPS:-0} != 1 ]]; then
  say "installing dependencies"
  bash scripts/install-deps.sh
fi

# The PostgreSQL every test and script uses (15; elsewhere the distribution's, scripts/pg-bin.sh).
PG_BIN=$(bash scripts/pg-bin.sh)
export PG_BIN
say "PostgreSQL: $PG_BIN ($("$PG_BIN/postgres" --version))"

# PgCluster creates its folders here (PGFAILOVER_TEST_TMPDIR); PostgreSQL, run as "postgres"
# when we are root, must be able to enter it.
PGFAILOVER_TEST_TMPDIR=$(mktemp -d /tmp/pgfailover-tests.XXXXXX)
chmod 0755 "$PGFAILOVER_TEST_TMPDIR"
export PGFAILOVER_TEST_TMPDIR

cleanup() {
  local status=$?
  local dir=$PGFAILOVER_TEST_TMPDIR pattern pids
  # Every PostgreSQL process works in a data directory under $dir; crashed tests may have
  # left some. Found by working directory, stopped by PID.
  pattern=$(printf '%s' "$dir" | sed 's/[][*?\\]/\\&/g')
  pids=$(find /proc/[0-9]*/cwd -maxdepth 0 -lname "$pattern/*" 2>/dev/null |
    sed 's|^/proc/\([0-9]*\)/cwd$|\1|' || true)
  if [[ -n $pids ]]; then
    say "stopping processes left behind under $dir: $(echo "$pids" | tr '\n' ' ')"
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 1
  fi
  rm -rf -- "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed_phases=()
if [[ ${SKIP_SOURCE_CHECKS:-0} != 1 ]]; then
  phase "source checks: clang-format, shellcheck"
  bash scripts/check-sources.sh || failed_phases+=("source checks")
fi

# build DIR SANITIZERS: configures (tests on, warnings as errors) and builds; a failed build
# ends the run.
# ccache (scripts/install-deps.sh) makes the second and later runs' builds quick, also from a
# clone at another path: paths under the repo are hashed relative to it, and the working
# directory is left out of the hash (the debug info of a cached object then names the folder it
# was first built in, which no test reads).
export CCACHE_BASEDIR=$REPO_ROOT CCACHE_NOHASHDIR=1
build() {
  local dir=$1 sanitize=$2 launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  say "configuring $dir ($BUILD_TYPE, tests on${sanitize:+, -fsanitize=$sanitize})"
  cmake -S "$REPO_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DBUILD_TESTING=ON \
    -DPGFAILOVER_WERROR=ON -DPGFAILOVER_SANITIZE="$sanitize" "${launcher[@]}"
  say "building $dir with $JOBS jobs"
  cmake --build "$dir" -j "$JOBS"
}

# Each sanitizer writes its reports to files here (log_path, one per process), so a finding in
# a process whose output no test reads (the daemon, a CLI call) still fails the phase.
SANITIZER_LOGS=$PGFAILOVER_TEST_TMPDIR/sanitizers
mkdir -p "$SANITIZER_LOGS"
chmod 1777 "$SANITIZER_LOGS"
SUPPRESSIONS=$REPO_ROOT/tests/sanitizers
# sanitizer_reports PHASE: prints the reports written during PHASE; fails when there were any.
sanitizer_reports() {
  local reports=("$SANITIZER_LOGS"/*)
  [[ -e ${reports[0]} ]] || return 0
  say "$1: sanitizer reports (${#reports[@]}):"
  for report in "${reports[@]}"; do
    printf '==== %s\n' "${report##*/}" >&2
    cat -- "$report" >&2
  done
  mkdir -p "$SANITIZER_LOGS.seen"
  mv -- "${reports[@]}" "$SANITIZER_LOGS.seen/"
  return 1
}

build "$BUILD_DIR" ""
phase "unit tests"
ctest --test-dir "$BUILD_DIR" -L unit --output-on-failure -j "$JOBS" "${ctest_extra[@]}" ||
  failed_phases+=("unit tests")

# Each integration test runs once: a test that passes only on a second try is a bug to fix, not
# to hide. They run in the AddressSanitizer build, not a second time in the plain one.
integration_dir=$BUILD_DIR integration_build=plain
if [[ ${SKIP_ASAN:-0} != 1 ]]; then
  phase "AddressSanitizer + UndefinedBehaviorSanitizer build"
  integration_dir=$BUILD_DIR-asan integration_build="ASan+UBSan"
  build "$integration_dir" address,undefined
  export ASAN_OPTIONS="log_path=$SANITIZER_LOGS/asan:detect_leaks=1:check_initialization_order=1"
  export LSAN_OPTIONS="suppressions=$SUPPRESSIONS/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="log_path=$SANITIZER_LOGS/ubsan:print_stacktrace=1:halt_on_error=1"
  phase "unit tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
  { ctest --test-dir "$integration_dir" -L unit --output-on-failure -j "$JOBS" "${ctest_extra[@]}" &&
    sanitizer_reports "unit tests (ASan+UBSan)"; } || failed_phases+=("unit tests (ASan+UBSan)")
fi
phase "integration tests (real PostgreSQL 15, one at a time, $integration_build build)"
{ ctest --test-dir "$integration_dir" -L integration --output-on-failure "${ctest_extra[@]}" &&
  sanitizer_reports "integration tests"; } || failed_phases+=("integration tests")
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS

if [[ ${SKIP_TSAN:-0} != 1 ]]; then
  phase "ThreadSanitizer build"
  build "$BUILD_DIR-tsan" thread
  export TSAN_OPTIONS="log_path=$SANITIZER_LOGS/tsan:halt_on_error=1:second_deadlock_stack=1:\
suppressions=$SUPPRESSIONS/tsan.supp"
  phase "tests that run threads (ThreadSanitizer)"
  # RUN_SERIAL keeps the integration tests among them one at a time.
  { ctest --test-dir "$BUILD_DIR-tsan" -L threads --output-on-failure -j "$JOBS" "${ctest_extra[@]}" &&
    sanitizer_reports "tests that run threads (TSan)"; } || failed_phases+=("tests that run threads (TSan)")
  unset TSAN_OPTIONS
fi
if [[ -z ${CTEST_ARGS:-} && ${SKIP_PACKAGE:-0} != 1 ]]; then
  # The .deb (its cmake build is kept in build-deb/, so a rebuild is quick with ccache), then
  # installed and run as users run it; also `cmake --install` from this build.
  phase "Debian package: build, lintian, install into a clean Debian 12 root and run"
  { bash scripts/package.sh && BUILD_DIR="$BUILD_DIR" bash tests/labs/deb_install_test.sh; } ||
    failed_phases+=("Debian package")
fi
if [[ -z ${CTEST_ARGS:-} && ${SKIP_HELM:-0} != 1 ]]; then
  # The Helm chart, offline: a real helm binary from npm, Kubernetes schemas, and the
  # rendered pgfailover.json through this build's check-config (docs/kubernetes.md).
  phase "helm chart (offline validation)"
  PGFAILOVER_BIN="$BUILD_DIR/pgfailover" bash tests/helm/run.sh || failed_phases+=("helm chart")
fi
if [[ -z ${CTEST_ARGS:-} && ${SKIP_LABS:-0} != 1 ]]; then
  phase "static checks: compose files, Dockerfiles, HAProxy, Prometheus rules, dashboards"
  bash tests/labs/static_checks.sh || failed_phases+=("static checks")
  # Each lab in its own address range and namespace prefix (docs/lab-netns.md). The lab builds
  # into the test build dir (nothing to do) and must leave its tests on. Two pgfailover
  # instances through etcd (the test's default; the chaos suite runs the single instance, and
  # two for its scenarios 13 and 15 in the quick pass).
  phase "namespace lab, end to end"
  LAB_BUILD_DIR="$BUILD_DIR" NETNS_TEST_NET=10.231.91.0/24 NETNS_TEST_PREFIX=pgfci- \
    LAB_SKIP_DEPS=1 bash tests/labs/netns_test.sh || failed_phases+=("namespace lab")
  if [[ ${SKIP_CHAOS:-0} != 1 && -f tests/chaos/run.sh ]]; then
    phase "chaos suite, quick pass (docs/reliability.md)"
    PGFAILOVER_BIN="$BUILD_DIR/pgfailover" CHAOS_NET=10.231.92.0/24 CHAOS_PREFIX=pgfcc- \
      bash tests/chaos/run.sh --quick || failed_phases+=("chaos suite")
  fi
  if [[ ${SKIP_COMPOSE:-0} != 1 ]]; then
    phase "compose lab with a private dockerd (images built from a debootstrapped base)"
    bash tests/labs/compose_test.sh || failed_phases+=("compose lab")
  fi
fi
phase "done"

if ((${#failed_phases[@]})); then
  printf -v failed_list '%s, ' "${failed_phases[@]}"
  say "FAILED: ${failed_list%, } (see each phase's output above)"
  exit 1
fi
say "all tests passed"
