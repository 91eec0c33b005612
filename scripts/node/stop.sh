#!/usr/bin/env bash
# Stops a node's PostgreSQL with pg_ctl stop -m NODE_STOP_MODE (default fast) under
# NODE_TIMEOUT; when that fails, SIGKILLs the postmaster named in postmaster.pid and whatever
# still works in the data directory. Does nothing when it is not running.
set -euo pipefail
NODE_SCRIPT="stop.sh"
# shellcheck source=scripts/node/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

node_usage() {
  cat <<'EOF2'
Usage: scripts/node/stop.sh --dir DIR [--mode smart|fast|immediate] [--timeout SECONDS]
EOF2
}

node_parse_args "$@"
node_resolve
case $NODE_STOP_MODE in
  smart | fast | immediate) ;;
  *) die "NODE_STOP_MODE must be smart, fast or immediate, got '$NODE_STOP_MODE'" ;;
esac
[[ -d $NODE_DATA_DIR ]] || die "$NODE_DATA_DIR does not exist"

pid=$(node_postmaster_pid)
if [[ -z $pid ]]; then
  node_say "node $NODE_NAME is not running"
  exit 0
fi
# A stopped (SIGSTOP) server cannot shut down; let it run again first.
kill -CONT "$pid" 2>/dev/null || true
for child in $(node_leftover_pids); do kill -CONT "$child" 2>/dev/null || true; done

if node_pg_ctl -m "$NODE_STOP_MODE" -w -t "$NODE_TIMEOUT" stop >/dev/null 2>&1; then
  node_say "node $NODE_NAME stopped ($NODE_STOP_MODE)"
  exit 0
fi
node_say "pg_ctl stop -m $NODE_STOP_MODE did not stop node $NODE_NAME within ${NODE_TIMEOUT}s; sending SIGKILL to pid $pid"
kill -KILL "$pid" 2>/dev/null || true
deadline=$((SECONDS + 10))
while ((SECONDS < deadline)); do
  leftovers=$(node_leftover_pids)
  [[ -z $leftovers ]] && break
  for p in $leftovers; do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.2
done
[[ -z $(node_leftover_pids) ]] || die "processes still run in $NODE_DATA_DIR: $(node_leftover_pids | tr '\n' ' ')"
node_say "node $NODE_NAME killed"
