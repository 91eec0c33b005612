#!/usr/bin/env bash
# bench/compose_failover.sh [--runs N] [--no-build] [--keep] [--out FILE]
#
# Write downtime of the compose lab when the primary's container is killed: a client
# (bench/compose_writer.py) INSERTs every 50 ms through HAProxy's read-write port; the primary's
# container gets `docker kill` (SIGKILL: its address goes silent, like a host that died); the
# time from the kill to the first write acknowledged by another node through HAProxy is the
# figure. Then the killed container starts again (`scripts/lab-compose.sh start`): the time to
# healthy, and to streaming again as a replica (pgfailover's /status), are noted too. Repeated
# N times (default 5), alternating naturally between pg1 and pg2 as each run kills whichever
# is the primary. Writes bench/results/compose_failover.json and prints the median.
#
# The lab: a running compose lab (scripts/lab-compose.sh, project LAB_COMPOSE_PROJECT) is used
# as it is; otherwise `scripts/lab-compose.sh up` brings one up (as root: the private dockerd,
# see docs/lab-compose.md) and `down` removes it at the end unless --keep. Traffic goes to
# 127.0.0.1 only (HAProxy's and pgfailover's published ports).
set -euo pipefail

BENCH_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$BENCH_DIR/.." && pwd)
LAB=$REPO_ROOT/scripts/lab-compose.sh
PY=/usr/bin/python3 # Debian's python3 (python3-psycopg2), whatever else is first on PATH

say() { printf 'compose_failover [%s]: %s\n' "$(date -u +%T)" "$*" >&2; }
die() {
  printf 'compose_failover: error: %s\n' "$*" >&2
  exit 1
}

runs=5 build=1 keep=0 out=$BENCH_DIR/results/compose_failover.json
while (($# > 0)); do
  case $1 in
    --runs)
      runs=${2:?--runs needs a number}
      shift
      ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    --out)
      out=${2:?--out needs a file}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs takes a positive whole number"
"$PY" -c 'import psycopg2' 2>/dev/null || die "$PY lacks psycopg2 (apt-get install python3-psycopg2)"
command -v jq >/dev/null || die "jq is needed"
command -v psql >/dev/null || die "psql is needed (postgresql-client)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgfailover-compose-bench.XXXXXX")
WRITES=$WORK/writes.jsonl
RUNS=$WORK/runs.jsonl
writer_pid=''
brought_up=0
cleanup() {
  local status=$?
  if [[ -n $writer_pid ]] && kill -0 "$writer_pid" 2>/dev/null; then
    kill -TERM "$writer_pid" 2>/dev/null || true
    wait "$writer_pid" 2>/dev/null || true
  fi
  if ((brought_up && !keep)); then
    say "removing the lab this run brought up (--keep leaves it)"
    bash "$LAB" down || status=1
  fi
  rm -rf -- "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status_json() { bash "$LAB" status --json 2>/dev/null || true; }
healthy_streaming() {
  local json
  json=$(status_json)
  [[ -n $json && $(jq -r .state <<<"$json") == healthy &&
    $(jq -r '[.nodes[] | select(.role == "replica" and .wal_receiver.status == "streaming")] | length' <<<"$json") -ge 1 ]]
}

# ----- the lab ----------------------------------------------------------------------------------
if healthy_streaming; then
  say "using the running compose lab"
else
  say "no healthy compose lab answers: scripts/lab-compose.sh up"
  up_args=()
  ((build)) || up_args+=(--no-build)
  brought_up=1
  bash "$LAB" up "${up_args[@]}"
fi
# docker and its socket as the lab uses them (DOCKER_HOST, COMPOSE_PROJECT_NAME).
eval "$(bash "$LAB" env)"
DOCKER=docker
if [[ ${DOCKER_HOST:-} == unix:///run/pgfailover-dockerd/* && -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; fi
container_of() {
  $DOCKER ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter "label=com.docker.compose.service=$1" | head -n1
}
dsn=$(bash "$LAB" dsn)
port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$dsn")
passfile=$(sed -n 's/.*passfile=\([^ ]*\).*/\1/p' <<<"$dsn")
http_port=$($DOCKER port "$(container_of pgfailover-1)" 8008/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1)
[[ -n $port && -n $passfile && -n $http_port ]] || die "cannot read the lab's ports from '$dsn'"
# pgfailover's API is HTTPS only; its certificate (for 127.0.0.1 too) is from the lab's CA.
ca_file=$WORK/lab-ca.crt
bash "$LAB" ca >"$ca_file" || die "cannot read the lab's CA (scripts/lab-compose.sh ca)"
metrics() { curl -s --max-time 3 --cacert "$ca_file" "https://127.0.0.1:$http_port/metrics"; }
psql -X -q -d "$dsn" -c 'CREATE TABLE IF NOT EXISTS public.bench_compose(id bigserial PRIMARY KEY, sent timestamptz, at timestamptz DEFAULT clock_timestamp())' ||
  die "cannot create the table through HAProxy"

git_commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$REPO_ROOT" status --porcelain -- src CMakeLists.txt 2>/dev/null | wc -l)
image_id=$($DOCKER inspect -f '{{.Image}}' "$(container_of pgfailover-1)" 2>/dev/null | cut -c8-19)
pgfailover_version=$(metrics | sed -n 's/^pgfailover_build_info{.*version="\([^"]*\)".*/\1/p' | head -n1)
unresponsive_ms=$($DOCKER exec "$(container_of pgfailover-1)" sh -c 'cat /lab/pgfailover/pgfailover.json' 2>/dev/null |
  jq -r '.failover.unresponsive_timeout_ms // empty' 2>/dev/null || true)

say "writer: an INSERT every 50 ms through 127.0.0.1:$port (HAProxy)"
"$PY" "$BENCH_DIR/compose_writer.py" --port "$port" --passfile "$passfile" --out "$WRITES" \
  --interval 0.05 --max-seconds $((runs * 600)) &
writer_pid=$!

# The time of the first acknowledged write after $1 (unix s) by an address other than $2.
first_write_after() {
  jq -r --argjson t "$1" --arg old "$2" 'select(.ok and .sent >= $t and .addr != $old) | .t' "$WRITES" 2>/dev/null | head -n1
}
writes_flowing() { # acknowledged writes during the last second
  [[ -n $(first_write_after "$(($(date +%s) - 1))" none) ]]
}

for ((run = 1; run <= runs; run++)); do
  deadline=$((SECONDS + 300))
  until healthy_streaming && writes_flowing; do
    ((SECONDS < deadline)) || die "run $run: the lab is not healthy with writes flowing after 300 s"
    sleep 1
  done
  sleep "$(shuf -i 2-4 -n 1)"
  json=$(status_json)
  old=$(jq -r .primary <<<"$json")
  old_addr=$(jq -r --arg n "$old" '.nodes[] | select(.name == $n) | .host' <<<"$json")
  id=$(container_of "$old")
  [[ -n $id && -n $old_addr ]] || die "run $run: no container or address for the primary '$old'"
  load1=$(cut -d' ' -f1 /proc/loadavg)
  say "run $run/$runs: docker kill $old (the primary, $old_addr); load $load1"
  t_kill=$(date +%s.%N)
  $DOCKER kill "$id" >/dev/null
  t_killed=$(date +%s.%N)

  promoted='' new='' t_promoted='' t_write=''
  deadline=$((SECONDS + 120))
  while [[ -z $t_write ]]; do
    ((SECONDS < deadline)) || die "run $run: no write acknowledged by another node within 120 s of the kill"
    if [[ -z $promoted ]]; then
      new=$(status_json | jq -r --arg old "$old" 'select(.primary != null and .primary != $old) | .primary' 2>/dev/null || true)
      if [[ -n $new ]]; then
        promoted=1
        t_promoted=$(date +%s.%N)
      fi
    fi
    t_write=$(first_write_after "$t_kill" "$old_addr")
    [[ -n $t_write ]] || sleep 0.1
  done
  [[ -n $new ]] || new=$(status_json | jq -r '.primary // empty')
  down_s=$(jq -n --argjson a "$t_kill" --argjson b "$t_write" '$b - $a | . * 1000 | round / 1000')
  say "run $run: first write acknowledged by $new ${down_s}s after the kill"
  failover_duration=$(metrics |
    awk '$1 == "pgfailover_last_failover_duration_seconds" {print $2}')

  # The old primary comes back: the guard starts it as a standby, pgfailover rejoins it if needed.
  t_start=$(date +%s.%N)
  bash "$LAB" start "$old"
  t_healthy=$(date +%s.%N)
  deadline=$((SECONDS + 300))
  until [[ $(status_json | jq -r --arg n "$old" '.nodes[] | select(.name == $n) | "\(.role) \(.wal_receiver.status // "")"') == "replica streaming" ]]; do
    ((SECONDS < deadline)) || die "run $run: $old does not stream as a replica 300 s after docker start"
    sleep 0.5
  done
  t_streaming=$(date +%s.%N)
  say "run $run: $old healthy $(jq -n --argjson a "$t_start" --argjson b "$t_healthy" '$b - $a | . * 10 | round / 10')s and streaming again $(jq -n --argjson a "$t_start" --argjson b "$t_streaming" '$b - $a | . * 10 | round / 10')s after docker start"
  jq -cn --argjson run "$run" --arg killed "$old" --arg promoted "$new" --argjson t_kill "$t_kill" \
    --argjson t_killed "$t_killed" --argjson t_write "$t_write" --arg t_promoted "$t_promoted" \
    --argjson t_start "$t_start" --argjson t_healthy "$t_healthy" --argjson t_streaming "$t_streaming" \
    --arg load1 "$load1" --arg failover_duration "${failover_duration:-}" '{
      run: $run, killed: $killed, promoted: $promoted, load1: ($load1 | tonumber),
      kill_at: $t_kill, docker_kill_s: ($t_killed - $t_kill),
      kill_to_first_write_s: ($t_write - $t_kill),
      kill_to_promoted_seen_s: (if $t_promoted == "" then null else ($t_promoted | tonumber) - $t_kill end),
      pgfailover_last_failover_duration_s: (if $failover_duration == "" then null else ($failover_duration | tonumber) end),
      start_to_healthy_s: ($t_healthy - $t_start), start_to_streaming_s: ($t_streaming - $t_start)
    }' >>"$RUNS"
done

kill -TERM "$writer_pid" 2>/dev/null || true
wait "$writer_pid" 2>/dev/null || true
writer_pid=''

mkdir -p -- "$(dirname -- "$out")"
"$PY" - "$RUNS" "$WRITES" "$out" <<EOF
import json, statistics, sys, datetime
runs = [json.loads(l) for l in open(sys.argv[1])]
writes = [json.loads(l) for l in open(sys.argv[2])]
acked = sorted(w["t"] for w in writes if w["ok"])
for r in runs:
    # The longest gap between two acknowledged writes around the kill.
    around = [t for t in acked if r["kill_at"] - 5 <= t <= r["kill_at"] + r["kill_to_first_write_s"] + 5]
    r["longest_gap_s"] = max((b - a for a, b in zip(around, around[1:])), default=None)
    r["errors_after_kill"] = sum(1 for w in writes if not w["ok"] and r["kill_at"] <= w["t"] <= r["kill_at"] + r["kill_to_first_write_s"])
    for k, v in list(r.items()):
        if isinstance(v, float):
            r[k] = round(v, 3)
def summary(key):
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}
result = {
    "benchmark": "compose lab: docker kill of the primary's container -> first write acknowledged through HAProxy",
    "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    "git_commit": "$git_commit", "src_files_changed_in_worktree": int("$git_dirty"),
    "pgfailover_image": "$image_id", "pgfailover_version": "$pgfailover_version",
    "unresponsive_timeout_ms": int("${unresponsive_ms:-0}") or None,
    "writer": "bench/compose_writer.py, one INSERT every 50 ms through 127.0.0.1:$port (HAProxy), reconnecting at once",
    "runs": runs,
    "kill_to_first_write_s": summary("kill_to_first_write_s"),
    "kill_to_promoted_seen_s": summary("kill_to_promoted_seen_s"),
    "start_to_streaming_s": summary("start_to_streaming_s"),
    "start_to_healthy_s": summary("start_to_healthy_s"),
}
json.dump(result, open(sys.argv[3], "w"), indent=2)
open(sys.argv[3], "a").write("\n")
s = result["kill_to_first_write_s"]
print(f"docker kill of the primary -> first write through HAProxy: median {s['median']} s "
      f"(min {s['min']}, max {s['max']}, {s['n']} runs); old primary streaming again "
      f"{result['start_to_streaming_s']['median']} s (median) after docker start; {sys.argv[3]}")
EOF
