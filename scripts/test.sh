#!/usr/bin/env bash
# The test command (README, CI): installs the Debian packages, configures and builds with the
# tests on, runs the unit tests, then the integration tests (real PostgreSQL 15 servers, one
# test at a time), and exits non-zero on any failure. Whatever the tests start lives under one
# folder of this run; on exit anything still running there is stopped by PID and the folder
# removed, also after a crashed test.
#
# Then the Debian package: built by scripts/package.sh (lintian must pass), installed with apt
# into a clean Debian 12 root where the daemon runs from the installed files against real
# PostgreSQL (tests/labs/deb_install_test.sh). Then the deployment checks: the Helm chart
# offline, the static checks of the container and
# monitoring files (promtool, haproxy -c, shellcheck...), the namespace lab end to end, the chaos
# suite's quick pass, and last the compose lab with a private dockerd (the slowest: it builds
# the images from a debootstrapped base). Each phase prints its duration.
#
# Environment: BUILD_DIR (build-ci), BUILD_TYPE (RelWithDebInfo), JOBS (nproc),
# CTEST_ARGS (extra ctest arguments, e.g. "-R Support"; runs only ctest, no deployment checks),
# SKIP_DEPS=1, SKIP_PACKAGE=1, SKIP_HELM=1, SKIP_LABS=1 (static checks, namespace lab, chaos, compose),
# SKIP_CHAOS=1, SKIP_COMPOSE=1.
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

say "configuring $BUILD_DIR ($BUILD_TYPE, tests on)"
cmake -S "$REPO_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DPGFAILOVER_BUILD_TESTS=ON
say "building with $JOBS jobs"
cmake --build "$BUILD_DIR" -j "$JOBS"

failed_phases=()
phase "unit tests"
ctest --test-dir "$BUILD_DIR" -L unit --output-on-failure -j "$JOBS" "${ctest_extra[@]}" ||
  failed_phases+=("unit tests")
phase "integration tests (real PostgreSQL 15, one at a time)"
# Each integration test runs once: a test that passes only on a second try is a bug to fix, not
# to hide.
ctest --test-dir "$BUILD_DIR" -L integration --output-on-failure \
  "${ctest_extra[@]}" || failed_phases+=("integration tests")
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
  # into the test build dir (nothing to do) and must leave its tests on.
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
