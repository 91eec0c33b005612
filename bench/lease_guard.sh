#!/usr/bin/env bash
# What the node's lease guard costs its host: the bash guard (scripts/node/lease-guard.sh as it
# was before the subcommand replaced it, a bash loop driving a psql coprocess) beside `pgfailover lease-guard`, each alone
# for BENCH_SECONDS (60) at the default 0.5 s interval on a primary under a rate-limited pgbench
# write load, with the heartbeat table in place (lease 0: every check reads the row, none fences).
#
# Per guard: CPU = utime + stime of the guard's process tree (bash + psql, or the binary) over
# the window, and of the server backend serving it; memory = VmRSS and PSS (smaps_rollup) of that
# tree at the end of the window; and how long SIGTERM takes to end it. Results: a Markdown table
# on stdout and in bench/results/lease_guard.md.
#
#   bash bench/lease_guard.sh            # as root (PostgreSQL runs as postgres) or as any user
# Environment: PGFAILOVER_BIN (default build/pgfailover), BENCH_SECONDS (60), BENCH_LOAD (1: run
# pgbench; 0: idle), BENCH_TPS (200), BENCH_OLD_REF (651f2be, the last commit with the bash
# guard: where it and its common.sh come from),
# PG_BIN (scripts/pg-bin.sh).
set -euo pipefail
REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
die() {
  echo "lease_guard bench: $*" >&2
  exit 1
}
say() { echo "lease_guard bench: $*" >&2; }

SECONDS_WINDOW=${BENCH_SECONDS:-60}
LOAD=${BENCH_LOAD:-1}
TPS=${BENCH_TPS:-200}
OLD_REF=${BENCH_OLD_REF:-651f2be}
PG_BIN=${PG_BIN:-$(bash scripts/pg-bin.sh)}
export PG_BIN
BIN_SRC=${PGFAILOVER_BIN:-build/pgfailover}
[[ -x $BIN_SRC ]] || die "$BIN_SRC is missing: build it (cmake --build build) or set PGFAILOVER_BIN"
[[ $SECONDS_WINDOW =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a whole number of seconds"

WORK=$(mktemp -d /tmp/pgfailover-bench-guard.XXXXXX)
chmod 0755 "$WORK"
NODE=$WORK/pg1
PORT=${BENCH_PORT:-$((20000 + RANDOM % 20000))}
load_pid='' guard_pid=''
cleanup() {
  [[ -n $guard_pid ]] && kill -TERM "$guard_pid" 2>/dev/null
  [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null
  wait 2>/dev/null || true
  bash scripts/node/stop.sh --dir "$NODE" --mode immediate --timeout 20 >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The two guards: the binary (a copy, so a rebuild cannot change it mid-run, without its debug
# sections, as packaged) and the bash guard with the common.sh it sourced, from OLD_REF.
mkdir -p "$WORK/bin" "$WORK/old"
objcopy --strip-debug "$BIN_SRC" "$WORK/bin/pgfailover"
git show "$OLD_REF:scripts/node/lease-guard.sh" >"$WORK/old/lease-guard.sh" ||
  die "no scripts/node/lease-guard.sh on $OLD_REF"
git show "$OLD_REF:scripts/node/common.sh" >"$WORK/old/common.sh"
chmod 0755 "$WORK/bin" "$WORK/old" "$WORK/bin/pgfailover"

printf 'bench-superuser-%s\n' "$RANDOM$RANDOM" >"$WORK/su.pw"
printf 'bench-repl-%s\n' "$RANDOM$RANDOM" >"$WORK/repl.pw"
chmod 0644 "$WORK/su.pw" "$WORK/repl.pw"
say "primary on port $PORT in $NODE"
bash scripts/node/init-primary.sh --dir "$NODE" --name pg1 --port "$PORT" \
  --superuser-password-file "$WORK/su.pw" --repl-password-file "$WORK/repl.pw" \
  --no-sync >"$WORK/init.log" 2>&1 || {
  cat "$WORK/init.log" >&2
  die "init-primary.sh failed"
}
psql_node() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$PG_BIN/psql" -X -q -At -h "$NODE/run" -p "$PORT" -d postgres "$@"
  else
    "$PG_BIN/psql" -X -q -At -h "$NODE/run" -p "$PORT" -d postgres "$@"
  fi
}
# The table and row as pgfailover writes them (src/pg/node_prober.cc), lease 0.
psql_node -c "CREATE SCHEMA pgfailover; CREATE TABLE pgfailover.heartbeat (id int PRIMARY KEY,
  ts timestamptz NOT NULL, node text NOT NULL, lease_ms integer NOT NULL DEFAULT 0,
  self_fenced_at timestamptz, peers text NOT NULL DEFAULT '', timeline bigint NOT NULL DEFAULT 0);
  INSERT INTO pgfailover.heartbeat VALUES (1, now(), 'pg1', 0, NULL, 'pg2',
  ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint)" >/dev/null

if [[ $LOAD == 1 ]]; then
  as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
  as_pg "$PG_BIN/pgbench" -q -i -s 2 -h "$NODE/run" -p "$PORT" postgres >"$WORK/pgbench-init.log" 2>&1 ||
    die "pgbench -i failed: $(tail -3 "$WORK/pgbench-init.log")"
  # Long enough for both windows; ended by the cleanup.
  as_pg "$PG_BIN/pgbench" -n -c 2 -j 1 -R "$TPS" -T $((4 * SECONDS_WINDOW + 60)) \
    -h "$NODE/run" -p "$PORT" postgres >"$WORK/pgbench.log" 2>&1 &
  load_pid=$!
fi

# utime + stime (clock ticks) of a process, plus what its reaped children used.
ticks() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
    echo 0
    return
  }
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  # Fields after "comm": state is [0]; utime [11], stime [12], cutime [13], cstime [14].
  echo $((f[11] + f[12] + f[13] + f[14]))
}
tree() { # pid: it and its descendants
  local pid=$1 child
  echo "$pid"
  # shellcheck disable=SC2013  # the children files hold PIDs separated by spaces
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree "$child"; done
}
tree_ticks() {
  local sum=0 pid
  for pid in $(tree "$1"); do sum=$((sum + $(ticks "$pid"))); done
  echo "$sum"
}
kb() { # field file
  awk -v f="$1:" '$1 == f {print $2; exit}' "$2" 2>/dev/null || echo 0
}
backend_pid() { # application_name
  psql_node -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$1'
    AND backend_type = 'client backend' AND pid <> pg_backend_pid() LIMIT 1"
}
HZ=$(getconf CLK_TCK)

measure() { # label application_name command...
  local label=$1 app=$2 backend t0 b0 t1 b1 rss=0 pss=0 pid start end gone waited=0 procs
  shift 2
  "$@" >"$WORK/$label.log" 2>&1 &
  guard_pid=$!
  for _ in $(seq 100); do
    backend=$(backend_pid "$app")
    [[ -n $backend ]] && break
    sleep 0.1
  done
  [[ -n $backend ]] || die "$label: no backend with application_name $app (see $WORK/$label.log)"
  sleep 2
  t0=$(tree_ticks "$guard_pid")
  b0=$(ticks "$backend")
  start=$EPOCHREALTIME
  sleep "$SECONDS_WINDOW"
  t1=$(tree_ticks "$guard_pid")
  b1=$(ticks "$backend")
  end=$EPOCHREALTIME
  procs=0
  for pid in $(tree "$guard_pid"); do
    rss=$((rss + $(kb VmRSS "/proc/$pid/status")))
    pss=$((pss + $(kb Pss "/proc/$pid/smaps_rollup")))
    procs=$((procs + 1))
  done
  local t_stop=$EPOCHREALTIME
  kill -TERM "$guard_pid"
  # Gone: reaped by wait, so time it with a poll of the process state (Z once it exited).
  while :; do
    gone=$(awk '{print $3}' "/proc/$guard_pid/stat" 2>/dev/null || echo X)
    [[ $gone == Z || $gone == X ]] && break
    ((waited++ < 2000)) || break
    sleep 0.005
  done
  local t_gone=$EPOCHREALTIME
  wait "$guard_pid" 2>/dev/null || true
  guard_pid=''
  grep -q "fenced node" "$WORK/$label.log" && die "$label fenced the node: the bench's row is wrong"
  local window cpu bcpu stop_ms
  window=$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v w="$window" 'BEGIN {printf "%.2f", 100 * t / hz / w}')
  bcpu=$(awk -v t=$((b1 - b0)) -v hz="$HZ" -v w="$window" 'BEGIN {printf "%.2f", 100 * t / hz / w}')
  stop_ms=$(awk -v a="$t_stop" -v b="$t_gone" 'BEGIN {printf "%.0f", 1000 * (b - a)}')
  printf '| %s | %d | %s (%d ticks) | %s | %.1f | %.1f | %s |\n' "$label" "$procs" "$cpu" \
    $((t1 - t0)) "$bcpu" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" \
    "$(awk -v k="$pss" 'BEGIN {print k / 1024}')" "$stop_ms" >>"$WORK/rows"
  say "$label: $(tail -1 "$WORK/rows")"
}

: >"$WORK/rows"
measure "bash guard (lease-guard.sh at $OLD_REF)" psql bash "$WORK/old/lease-guard.sh" --dir "$NODE" --name pg1
measure "pgfailover lease-guard" pgfailover-lease-guard \
  "$WORK/bin/pgfailover" lease-guard --dir "$NODE" --name pg1

load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  printf 'Lease guard, %s UTC, %s s per guard at 0.5 s, %s, load average at the end %s, %s CPUs; binary %s (commit %s).\n\n' \
    "$(date -u +%Y-%m-%dT%H:%M)" "$SECONDS_WINDOW" \
    "$([[ $LOAD == 1 ]] && echo "pgbench -c 2 -R $TPS writing" || echo "no load")" "$load" \
    "$(nproc)" "$(basename "$BIN_SRC")" "$(git rev-parse --short HEAD)"
  printf '| guard | processes | CPU %% of a core (guard) | CPU %% (its backend) | RSS MB | PSS MB | SIGTERM to exit (ms) |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|\n'
  cat "$WORK/rows"
} | tee bench/results/lease_guard.md
