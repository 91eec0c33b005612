#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions are called from the block at the end, which shellcheck does not follow
# The chaos suite (issue 5): a fault matrix in the namespace lab (scripts/lab-netns.sh), judged by
# an independent client (tests/chaos/checker.py) that writes through the lab's multi-host DSN and
# samples both nodes directly. Every scenario is an explicit pass/fail with its expected outcome
# asserted: no split-brain window, no write acknowledged by a node on an abandoned timeline, no
# lost acknowledged write (synchronous mode, and every scenario without a failover), the expected
# number of promotions (zero where a failover would be false), and the cluster back to a primary
# plus a streaming replica by itself within a generous limit. Timings are measured and written
# to the results, never asserted; the one bound asserted is a safety property: in scenario 16 the
# instance cut off from etcd must stop acting within its lease TTL, before another one acts.
#
# Usage: tests/chaos/run.sh [--quick] [--scenarios 1,3,5-7] [--repeat N] [--modes async,sync]
#                           [--results DIR] [--stop-on-failure]
#   --quick      the CI set: scenarios 1..12 once in async and once in sync mode (the nodes'
#                lease guard on, no fencing hook; with *-stonith modes, only scenario 10 there),
#                and of the two-instance scenarios 13 and 15 once, in async mode only
#   --scenarios  which of 1..16 (default all); --repeat N runs each N times per mode (default 1).
#                1..12 run with one pgfailover (the lab's `up`); 13..16 with two instances and a
#                3-member etcd (`up --instances 2`: pgf1 next to pg1, pgf2 next to pg2), in a lab
#                of their own
#   --modes      async (synchronous.mode off), sync (synchronous.mode on); default both.
#                async-stonith, sync-stonith: the same with failover.fencing_hook powering the old
#                primary off before each failover promotion (LAB_FENCING_HOOK=1)
#   --results    folder for per-run JSON, raw checker records and logs (default
#                /tmp/pgf-chaos-results/<UTC time>)
# Environment: PGFAILOVER_BIN (default: build-chaos/pgfailover, built if missing), CHAOS_LAB_DIR
# (/tmp/pgf-chaos-lab), CHAOS_NET (10.231.78.0/24), CHAOS_PREFIX (pgfch-), LAB_SKIP_DEPS=1,
# CHAOS_LEASE_GUARD=0 (the nodes run no lease guard: to measure what it closes).
# Needs root, /usr/bin/python3 with python3-psycopg2, jq, curl, nftables (the lab's packages).
# One lab per mode; everything is torn down by PID on exit, also on failure or Ctrl-C.
# Exit status: 0 when every run passed, 1 when one failed, 2 on a usage or setup error.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_SH=$REPO_ROOT/scripts/lab-netns.sh
CHECKER=$REPO_ROOT/tests/chaos/checker.py
PYTHON=/usr/bin/python3 # Debian's: python3-psycopg2 is a Debian package

ALL_SCENARIOS=(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
# Scenarios that need two pgfailover instances coordinated through etcd (docs/coordination.md).
MULTI_SCENARIOS=(13 14 15 16)
is_multi() { [[ " ${MULTI_SCENARIOS[*]} " == *" $1 "* ]]; }
declare -A TITLE=(
  [1]="kill -9 of the primary's postmaster"
  [2]="the primary's host lost (link down, then its postmaster killed; link back later)"
  [3]="only pgfailover loses the primary (partition pgf <-> primary)"
  [4]="only the replica loses the primary (partition replica <-> primary)"
  [5]="the primary hangs (SIGSTOP) past the failover timeout, then resumes"
  [6]="the primary hangs (SIGSTOP) for 5 s, below the failover timeout"
  [7]="the primary's link flaps: 4 x (3 s down, 4 s up)"
  [8]="the replica dies (kill -9 and its link down for 25 s)"
  [9]="pgfailover killed -9 while promoting, then restarted"
  [10]="the old primary returns after a failover, postmaster still running (link restored)"
  [11]="both nodes crash, then both are started again (old primary first)"
  [12]="planned switchover under write load, there and back"
  [13]="two instances: the host of the primary and of the acting instance lost together"
  [14]="two instances: the acting instance killed -9 mid-failover (promotion intent in etcd)"
  [15]="two instances: etcd quorum lost for 30 s (every member killed), nothing else"
  [16]="two instances: the acting instance cut off from etcd only (it still reaches the nodes)"
)
# Expected promotions (new timelines) per scenario.
declare -A PROMOTIONS=([1]=1 [2]=1 [3]=0 [4]=0 [5]=1 [6]=0 [7]=0 [8]=0 [9]=1 [10]=1 [11]=0 [12]=2 [13]=1 [14]=1 [15]=0 [16]=0)

CONVERGE_LIMIT=${CHAOS_CONVERGE_LIMIT:-240} # s to get back to healthy after the fault ends (a re-clone takes ~90 s)
FAILOVER_LIMIT=60                           # s for an expected failover to be visible

say() { printf 'chaos [%s]: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  printf 'chaos: error: %s\n' "$*" >&2
  exit 2
}

usage() { sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# ----- options --------------------------------------------------------------------------------

scenarios=() repeat=1 modes=(async sync) results='' quick=0 stop_on_failure=0
expand_list() { # "1,3,5-7" -> 1 3 5 6 7
  local part a b
  IFS=',' read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
      a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
      for ((i = a; i <= b; i++)); do printf '%s\n' "$i"; done
    elif [[ $part =~ ^[0-9]+$ ]]; then
      printf '%s\n' "$part"
    else
      die "bad scenario list '$1'"
    fi
  done
}
while (($# > 0)); do
  case $1 in
    --quick)
      quick=1
      modes=(async sync)
      ;;
    --scenarios) mapfile -t scenarios < <(expand_list "${2:?--scenarios takes a list}") && shift ;;
    --repeat)
      repeat=${2:?--repeat takes a number}
      [[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat takes a positive number"
      shift
      ;;
    --modes)
      IFS=',' read -r -a modes <<<"${2:?--modes takes async,sync}"
      shift
      ;;
    --results) results=${2:?--results takes a folder} && shift ;;
    --stop-on-failure) stop_on_failure=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
((${#scenarios[@]} > 0)) || scenarios=("${ALL_SCENARIOS[@]}")
for s in "${scenarios[@]}"; do [[ -n ${TITLE[$s]:-} ]] || die "no scenario $s (1..16)"; done
for m in "${modes[@]}"; do
  [[ $m =~ ^(async|sync)(-stonith)?$ ]] || die "mode '$m': use async, sync, async-stonith, sync-stonith"
done
# The quick set (CI): every scenario once asynchronously and once synchronously (24 runs, about
# 15 minutes on a quiet 2-core machine). Scenario 10 runs without a fencing hook: the nodes'
# lease guard is what closes its window (docs/lifecycle.md, "Self-fencing"). A mode list given
# after --quick (e.g. --modes async-stonith) runs scenario 10 only in *-stonith modes. Of the
# two-instance scenarios the quick set runs 13 (the acting instance lost with the primary's host:
# the takeover and the failover) and 15 (etcd without quorum: nothing may move) in async mode
# only: their lab of their own and the two runs add about 75 s (measured 73 s on 2 loaded cores).
QUICK_STONITH=(10)
QUICK_MULTI=(13 15)
QUICK_MULTI_MODES=(async)

((EUID == 0)) || die "needs root (network namespaces): run it with sudo"
if ! [[ -x $PYTHON ]] || ! "$PYTHON" -c 'import psycopg2' 2>/dev/null; then
  die "$PYTHON with psycopg2 is needed: apt-get install python3-psycopg2"
fi
for tool in jq curl ip; do command -v "$tool" >/dev/null || die "$tool not found"; done

export LAB_DIR=${CHAOS_LAB_DIR:-/tmp/pgf-chaos-lab}
export LAB_NET=${CHAOS_NET:-10.231.78.0/24}
export LAB_PREFIX=${CHAOS_PREFIX:-pgfch-}
export LAB_TIMEOUT=${LAB_TIMEOUT:-120}
NET_BASE=${LAB_NET%.0/24}
CLIENT_NS=${LAB_PREFIX}client
SINGLE_URL=http://$NET_BASE.10:8008
# The lab's shape: 1 (one pgfailover in pgf, scenarios 1..12) or 2 (pgf1 in pg1's namespace,
# pgf2 in pg2's, etcd members on pg1, pg2 and pgf; scenarios 13..16).
shape=1
ETCD_PREFIX=/pgfailover/netns-lab # scripts/lab-netns.sh's etcd.prefix
ETCD_ENDPOINTS=$NET_BASE.11:2379,$NET_BASE.12:2379,$NET_BASE.10:2379
ETCD_CLIENT_PORT=2379
LEASE_TTL_S=5                 # etcd.lease_ttl_ms's default, which the lab keeps
ETCD_CUT_TABLE=pgfchaos_etcd  # scenario 16's nftables table inside the acting instance's host
if [[ -z ${PGFAILOVER_BIN:-} ]]; then
  PGFAILOVER_BIN=$REPO_ROOT/build-chaos/pgfailover
  if [[ ! -x $PGFAILOVER_BIN ]]; then
    say "building pgfailover into $REPO_ROOT/build-chaos"
    cmake -S "$REPO_ROOT" -B "$REPO_ROOT/build-chaos" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
    cmake --build "$REPO_ROOT/build-chaos" -j "$(nproc)" --target pgfailover >/dev/null
  fi
fi
export PGFAILOVER_BIN
[[ -x $PGFAILOVER_BIN ]] || die "PGFAILOVER_BIN $PGFAILOVER_BIN is not an executable"
BIN_SHA=$(sha1sum "$PGFAILOVER_BIN" | cut -c1-12)
results=${results:-/tmp/pgf-chaos-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p -- "$results"
results=$(realpath -- "$results")
SUITE_START=$SECONDS

# ----- lab helpers ----------------------------------------------------------------------------

lab() { bash "$LAB_SH" "$@"; }
now() { date +%s.%N; }

# ----- two instances: who acts ------------------------------------------------------------------

inst_ip() { printf '%s.1%s\n' "$NET_BASE" "$1"; } # pgf1 next to pg1 (.11), pgf2 next to pg2 (.12)
inst_url() { printf 'http://%s:8008\n' "$(inst_ip "$1")"; }
inst_log() { if (($1 == 1)); then echo "$LAB_DIR/pgf/pgfailover.log"; else echo "$LAB_DIR/pgf/pgfailover-$1.log"; fi; }
inst_pid_file() { if (($1 == 1)); then echo "$LAB_DIR/pgf/pgfailover.pid"; else echo "$LAB_DIR/pgf/pgfailover-$1.pid"; fi; }
etcdctl_lab() {
  ip netns exec "$CLIENT_NS" env ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" \
    --dial-timeout=500ms --command-timeout=1s "$@" 2>/dev/null
}
# The etcd leader key's value (pgf1, pgf2), '' when nobody holds it or etcd has no quorum.
leader() { etcdctl_lab get --print-value-only "$ETCD_PREFIX/leader" | head -n1 || true; }
leader_inst() { local l; l=$(leader); [[ $l =~ ^pgf([12])$ ]] && printf '%s\n' "${BASH_REMATCH[1]}"; return 0; }
# The promotion intent the acting instance writes (guarded) before pg_promote; '' when none.
promotion_intent() { etcdctl_lab get --print-value-only "$ETCD_PREFIX/promotion-intent" | head -n1 || true; }
# Instance I's PID from the lab's pid file, when that process runs the binary (by PID only).
inst_pid() {
  local pid='' exe
  read -r pid <"$(inst_pid_file "$1")" 2>/dev/null || true
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == "$PGFAILOVER_BIN" || $exe == "$PGFAILOVER_BIN (deleted)" ]] || return 0
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 0
  printf '%s\n' "$pid"
}
inst_answers() { ip netns exec "$CLIENT_NS" curl -s -f --max-time 2 -o /dev/null "$(inst_url "$1")/status" 2>/dev/null; }

# The API the runner asks: the only instance, or the acting one (by the leader key), or when
# nobody acts (etcd down, a handover) the first instance that answers: every instance observes.
api_url() {
  if ((shape == 1)); then
    printf '%s\n' "$SINGLE_URL"
    return
  fi
  local i
  i=$(leader_inst)
  if [[ -n $i ]]; then
    inst_url "$i"
    return
  fi
  for i in 1 2; do
    if inst_answers "$i"; then
      inst_url "$i"
      return
    fi
  done
  inst_url 1
}
status_json() { ip netns exec "$CLIENT_NS" curl -s -f --max-time 2 "$(api_url)/status" 2>/dev/null || true; }
metrics() { ip netns exec "$CLIENT_NS" curl -s -f --max-time 2 "$(api_url)/metrics" 2>/dev/null || true; }
# /history of the acting instance (which took the history over from <prefix>/state in etcd).
history_json() { ip netns exec "$CLIENT_NS" curl -s -f --max-time 2 "$(api_url)/history" 2>/dev/null || echo '[]'; }
field() { jq -r "$1 // empty" <<<"$(status_json)" 2>/dev/null || true; }
other_node() { if [[ $1 == pg1 ]]; then echo pg2; else echo pg1; fi; }
node_ip() { if [[ $1 == pg1 ]]; then echo "$NET_BASE.11"; else echo "$NET_BASE.12"; fi; }

# healthy per pgfailover: state healthy, one primary, the other a replica whose WAL receiver
# streams. Prints the primary's name.
healthy_primary() {
  jq -r 'select(.state == "healthy") | . as $s
    | [.nodes[] | select(.role == "replica" and .wal_receiver.status == "streaming")] as $r
    | select(($r | length) >= 1 and ([.nodes[] | select(.role == "primary")] | length) == 1)
    | .primary' <<<"$(status_json)" 2>/dev/null || true
}

wait_healthy() { # seconds -> prints primary; 1 on timeout
  local deadline=$((SECONDS + $1)) p
  while ((SECONDS < deadline)); do
    p=$(healthy_primary)
    if [[ -n $p ]]; then
      printf '%s\n' "$p"
      return 0
    fi
    sleep 0.5
  done
  return 1
}

# Writable per pg_is_in_recovery() asked directly (not pgfailover's view).
node_writable() { # node
  [[ $(ip netns exec "$CLIENT_NS" env PGPASSFILE="$LAB_DIR/secrets/pgpass" psql -X -A -t -q \
    -d "host=$(node_ip "$1") port=5432 dbname=postgres user=pgfailover connect_timeout=2" \
    -c "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'" 2>/dev/null) == t ]]
}

wait_primary_is() { # node seconds
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    [[ $(field .primary) == "$1" ]] && node_writable "$1" && return 0
    sleep 0.3
  done
  return 1
}

failovers_recorded() { # succeeded failover events in /history
  history_json | jq '[.[] | select(.kind == "failover" and .result == "succeeded")] | length' 2>/dev/null || echo 0
}
switchovers_recorded() {
  history_json | jq '[.[] | select(.kind == "switchover" and .result == "succeeded")] | length' 2>/dev/null || echo 0
}

# ----- background processes (stopped by PID) -------------------------------------------------

checker_pid='' poller_pid='' lab_up=0

# Every 0.25 s: pgfailover's state, primary and roles, one line each, for the assertions that
# need to know what pgfailover said during the fault (vetoed, degraded, failing).
start_poller() { # file
  local file=$1
  (
    trap 'exit 0' TERM
    while :; do
      l=''
      if ((shape == 2)); then
        l=$(leader)
        if [[ $l =~ ^pgf([12])$ ]]; then
          s=$(ip netns exec "$CLIENT_NS" curl -s -f --max-time 2 "$(inst_url "${BASH_REMATCH[1]}")/status" 2>/dev/null || true)
        else
          s=$(status_json)
        fi
      else
        s=$(status_json)
      fi
      if [[ -n $s ]]; then
        jq -c --arg t "$(now)" --arg l "$l" '{t: ($t | tonumber), state, primary, veto, leader: $l,
          standalone: (.synchronous.standalone // null),
          nodes: [.nodes[] | {name, role, reachable, wal: (.wal_receiver.status // null)}]}' <<<"$s" 2>/dev/null || true
      else
        printf '{"t":%s,"state":"no-answer","leader":"%s"}\n' "$(now)" "$l"
      fi
      sleep 0.25
    done
  ) >>"$file" 2>/dev/null &
  # shellcheck disable=SC2034 # read through ${!1} in stop_bg
  poller_pid=$!
}
stop_bg() { # pid-var
  local pid=${!1}
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 5))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf -v "$1" '%s' ''
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_bg poller_pid
  if [[ -n $checker_pid ]]; then
    # The checker runs as a child of `ip netns exec` (exec'd: same PID).
    kill -TERM "$checker_pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$checker_pid" 2>/dev/null || true
  fi
  if ((lab_up)); then
    say "tearing the lab down"
    lab down >>"$results/lab.log" 2>&1 || say "lab down failed: see $results/lab.log"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_start() { # mode shape
  local sync=off hook=0
  local -a up_args=()
  shape=${2:-1}
  ((shape == 1)) || up_args=(--instances "$shape")
  [[ $1 == sync* ]] && sync=on
  [[ $1 == *-stonith ]] && hook=1
  if [[ -e $LAB_DIR ]]; then
    say "a lab is left in $LAB_DIR: taking it down first"
    lab down >>"$results/lab.log" 2>&1 || die "cannot remove the old lab in $LAB_DIR (see $results/lab.log)"
  fi
  say "lab up ($1: synchronous.mode $sync, fencing hook $hook, lease guard ${CHAOS_LEASE_GUARD:-1}, $shape pgfailover instance(s); $LAB_NET, $LAB_PREFIX, $LAB_DIR)"
  lab_up=1
  LAB_SYNC=$sync LAB_FENCING_HOOK=$hook LAB_LEASE_GUARD=${CHAOS_LEASE_GUARD:-1} LAB_ICMP=1 lab up "${up_args[@]}" >>"$results/lab.log" 2>&1 || die "lab up failed: see $results/lab.log"
  wait_healthy 120 >/dev/null || die "the new lab did not become healthy within 120 s"
}
lab_stop() {
  say "lab down ($shape instance(s))"
  lab down >>"$results/lab.log" 2>&1 || die "lab down failed: see $results/lab.log"
  lab_up=0
}

# Before every run: a healthy cluster, no fault left over. A run that failed may leave one; heal
# it, start what is stopped, and if that is not enough, build the lab afresh.
ensure_healthy() { # mode
  local p
  if p=$(wait_healthy 30); then
    return 0
  fi
  say "not healthy before the run: healing the network and starting what is down"
  lab heal >>"$results/lab.log" 2>&1 || true
  if ((shape == 2)); then
    etcd_cut_remove
    lab start etcd >>"$results/lab.log" 2>&1 || true
  fi
  for n in pg1 pg2; do
    lab cont "$n" >>"$results/lab.log" 2>&1 || true
  done
  lab pgfailover start >>"$results/lab.log" 2>&1 || true
  if p=$(wait_healthy 90); then
    return 0
  fi
  for n in pg1 pg2; do
    lab start "$n" --guard >>"$results/lab.log" 2>&1 || true
  done
  if p=$(wait_healthy 150); then
    return 0
  fi
  say "still not healthy: rebuilding the lab"
  local was=$shape
  lab_stop
  lab_start "$1" "$was"
}

# Two instances before a run: both run (a run may have left one stopped), etcd has its three
# members and one instance acts.
ensure_instances() {
  local i deadline
  etcd_cut_remove
  for i in 1 2; do
    if [[ -z $(inst_pid "$i") ]]; then
      say "pgfailover pgf$i is not running before the run: starting it"
      lab pgfailover start >>"$results/lab.log" 2>&1 || true
    fi
  done
  if ! etcdctl_lab endpoint health >/dev/null; then
    lab start etcd >>"$results/lab.log" 2>&1 || true
  fi
  deadline=$((SECONDS + 60))
  until [[ -n $(leader_inst) ]] && inst_answers 1 && inst_answers 2; do
    ((SECONDS < deadline)) || die "two instances: no instance acts, or one does not answer, 60 s before the run"
    sleep 0.5
  done
}

# Scenario 16's cut, inside the acting instance's host: new connections to etcd's client port
# from that namespace are dropped (their SYN: stateless, no conntrack that would also catch the
# open connections it never saw start), and so is everything of the instance's own open connections
# to it (found by its PID with ss). The etcd member on the same host keeps its own connection to
# its client port (its JSON gateway, which the other instance may be using) and its peers.
etcd_cut() { # instance
  local i=$1 ns=${LAB_PREFIX}pg$1 pid ports
  pid=$(inst_pid "$i")
  [[ -n $pid ]] || return 1
  ip netns exec "$ns" nft -f - <<EOF || return 1
table inet $ETCD_CUT_TABLE {
  chain out {
    type filter hook output priority 0; policy accept;
    tcp dport $ETCD_CLIENT_PORT tcp flags & (syn | ack) == syn drop
  }
}
EOF
  # With new connections refused, the instance's open ones are all there are to find.
  ports=$(ip netns exec "$ns" ss -Htnp state established "( dport = :$ETCD_CLIENT_PORT )" 2>/dev/null |
    awk -v pid="pid=$pid," 'index($0, pid) { n = split($3, a, ":"); print a[n] }' | sort -un | paste -sd, -)
  if [[ -n $ports ]]; then
    ip netns exec "$ns" nft add rule inet "$ETCD_CUT_TABLE" out tcp dport "$ETCD_CLIENT_PORT" tcp sport "{ $ports }" drop || return 1
  fi
  printf '%s\n' "${ports:-none}"
}
etcd_cut_remove() {
  local h
  for h in pg1 pg2; do
    ip netns exec "${LAB_PREFIX}$h" nft delete table inet "$ETCD_CUT_TABLE" 2>/dev/null || true
  done
}

# ----- one run --------------------------------------------------------------------------------

failures=()   # what went wrong in this run
observed=()   # notes for the result file
expect() { # description condition-command...
  local what=$1
  shift
  if "$@"; then
    observed+=("ok: $what")
  else
    failures+=("$what")
    say "  FAIL: $what"
  fi
}
event() { printf '{"t":%s,"event":"%s"}\n' "$(now)" "$1" >>"$run_dir/events.jsonl"; }
poll_saw() { # jq-filter: true when some poller line matches
  [[ -s $run_dir/status.jsonl ]] && jq -e -s "any(.[]; $1)" "$run_dir/status.jsonl" >/dev/null 2>&1
}
saw_state() { poll_saw ".state == \"$1\""; }

# The node's postmaster exists and is not a zombie (PID 1 here does not reap orphans).
lab_postmaster_running() {
  local pid='' state
  read -r pid <"$LAB_DIR/$1/data/postmaster.pid" 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
  [[ -n $state && $state != Z ]]
}

# A lab command of a scenario. One that fails is a failed run (named in its result), not the end
# of the suite: the run goes on to the convergence wait and the checker's report.
inject() {
  if ! lab "$@" >>"$run_dir/lab.log" 2>&1; then
    failures+=("lab $*: failed (see lab.log)")
    say "  FAIL: lab $* failed"
  fi
}

# The faults. Each leaves the cluster to heal by itself; they assert what must hold while the
# fault lasts (no promotion where none is allowed, what pgfailover reports).
scenario_1() {
  inject kill "$primary0"
  event fault
  expect "failover to $replica0 within ${FAILOVER_LIMIT}s" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
}
scenario_2() {
  inject link "$primary0" down
  event fault
  inject kill "$primary0"
  expect "failover to $replica0 within ${FAILOVER_LIMIT}s" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
  sleep 5
  event heal
  inject link "$primary0" up
}
no_failover_for() { # seconds: the old primary stays the primary and the replica in recovery
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    if node_writable "$replica0"; then
      failures+=("$replica0 became writable during the fault (a false failover)")
      say "  FAIL: $replica0 became writable during the fault"
      return 0
    fi
    sleep 1
  done
}
scenario_3() {
  inject partition pgfailover from "$primary0"
  event fault
  no_failover_for 20 # twice the 10 s unresponsive timeout
  expect "pgfailover lost the primary and vetoed the failover (state failover_vetoed seen)" saw_state failover_vetoed
  event heal
  inject heal
}
scenario_4() {
  inject partition "$replica0" from "$primary0"
  event fault
  no_failover_for 25
  expect "the replica lost the primary (its WAL receiver seen not streaming)" \
    poll_saw "any(.nodes[]?; .name == \"$replica0\" and .wal != \"streaming\")"
  expect "pgfailover kept $primary0 as the primary" poll_saw "(.t > $(jq -s '.[0].t' "$run_dir/events.jsonl")) and .primary == \"$primary0\""
  event heal
  inject heal
}
scenario_5() {
  inject stop "$primary0"
  event fault
  expect "failover to $replica0 within ${FAILOVER_LIMIT}s" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
  sleep 2
  event heal
  if [[ $mode == *-stonith ]] && ! lab_postmaster_running "$primary0"; then
    observed+=("the fencing hook powered $primary0 off: nothing left to resume")
  elif ! lab_postmaster_running "$primary0"; then
    # pgfailover's fence at rest reached the host over ssh and killed the hung postmaster and
    # its children (src/lifecycle/fence_at_rest.cc): nothing is left to wake up as a second primary.
    observed+=("pgfailover killed the hung $primary0 over ssh at the promotion: nothing left to resume")
  else
    inject cont "$primary0"
  fi
}
scenario_6() {
  inject stop "$primary0"
  event fault
  no_failover_for 5
  event heal
  inject cont "$primary0"
  no_failover_for 12 # past the 10 s timeout that would have run out had the timer not been reset
  expect "pgfailover saw the primary failing (state primary_failing seen)" saw_state primary_failing
}
scenario_7() {
  event fault
  local i
  for i in 1 2 3 4; do
    inject link "$primary0" down
    no_failover_for 3
    inject link "$primary0" up
    no_failover_for 4
  done
  event heal
  no_failover_for 12
  expect "pgfailover saw the primary failing during the flaps (state primary_failing seen)" saw_state primary_failing
}
scenario_8() {
  inject kill "$replica0"
  event fault
  inject link "$replica0" down
  no_failover_for 25
  expect "/status said degraded" saw_state degraded
  expect "the metrics said degraded" grep -q '^pgfailover_cluster_state{state="degraded"} 1' "$run_dir/metrics-during.txt"
  if [[ $mode == sync* ]]; then
    expect "the metrics said the primary commits alone (pgfailover_synchronous_standalone 1)" \
      grep -q '^pgfailover_synchronous_standalone 1' "$run_dir/metrics-during.txt"
  fi
  # In synchronous mode commits wait for the standby until standalone_after_ms (10 s) ran out.
  expect "$primary0 kept acknowledging writes during the fault (after its first 12 s)" \
    acked_by_between "$primary0" "$(jq -s '.[0].t + 12' "$run_dir/events.jsonl")" "$(now)"
  event heal
  inject link "$replica0" up
}
# Writes the checker has had acknowledged by NODE between two times (from its raw records).
acked_by_between() { # node from to
  jq -e -s --arg ip "$(node_ip "$1")" --argjson a "$2" --argjson b "$3" \
    'any(.[]; .k == "w" and .r == "ok" and .node == $ip and .t1 > $a and .t1 < $b)' \
    "$run_dir/raw.jsonl" >/dev/null 2>&1
}
scenario_9() {
  inject kill "$primary0"
  event fault
  # Kill pgfailover the moment the promotion is under way: state promoting, or the replica
  # already writable (pg_promote returned) before a tick confirmed it.
  local hit=''
  if ! hit=$(promotion_under_way); then
    failures+=("no promotion started within ${FAILOVER_LIMIT}s")
    return 0
  fi
  inject pgfailover kill
  event pgfailover-killed
  observed+=("pgfailover killed at: $hit; /status then: $(field .state)")
  sleep 3
  inject pgfailover start
  event pgfailover-started
  expect "failover to $replica0 completed after the restart" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
}
scenario_10() {
  inject link "$primary0" down
  event fault
  expect "failover to $replica0 within ${FAILOVER_LIMIT}s" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
  sleep 5
  event heal
  inject link "$primary0" up
}
scenario_11() {
  inject kill "$primary0"
  event fault
  inject kill "$replica0"
  no_failover_for 8
  event heal
  # Both hosts come back at once (their init starts PostgreSQL), the old primary a moment first.
  # Started one after the other, the replica stays down while the old primary recovers, which
  # is long enough for pgfailover to begin rejoining it - and an outside start racing a rejoin
  # is a known limitation (docs/lab-netns.md), not what this scenario is about.
  local pid1 pid2
  lab start "$primary0" >>"$run_dir/lab.log" 2>&1 &
  pid1=$!
  sleep 0.5
  lab start "$replica0" >>"$run_dir/lab.log" 2>&1 &
  pid2=$!
  wait "$pid1" || failures+=("could not start $primary0 (see lab.log)")
  wait "$pid2" || failures+=("could not start $replica0 (see lab.log)")
}
scenario_12() {
  event fault
  if ! lab switchover "$replica0" >>"$run_dir/lab.log" 2>&1; then
    failures+=("switchover to $replica0 failed (see lab.log)")
    return 0
  fi
  expect "switched over to $replica0" wait_primary_is "$replica0" 30
  local p
  if ! p=$(wait_healthy "$CONVERGE_LIMIT") || [[ $p != "$replica0" ]]; then
    failures+=("not healthy with $replica0 as the primary after the first switchover")
    return 0
  fi
  event back
  if ! lab switchover "$primary0" >>"$run_dir/lab.log" 2>&1; then
    failures+=("switchover back to $primary0 failed (see lab.log)")
    return 0
  fi
  expect "switched back to $primary0" wait_primary_is "$primary0" 30
}

# ----- two instances (scenarios 13..16) ----------------------------------------------------------

measure() { printf '{"%s":%s}\n' "$1" "$2" >>"$run_dir/measures.jsonl"; } # name number
other_inst() { if [[ $1 == 1 ]]; then echo 2; else echo 1; fi; }
node_inst() { echo "${1#pg}"; } # the instance next to a node: pgf1 next to pg1
# An instance crashes: SIGKILL by the PID in its pid file.
kill_inst() { # instance
  local pid
  pid=$(inst_pid "$1")
  if [[ -z $pid ]]; then
    failures+=("pgfailover pgf$1 was not running when it was to be killed")
    return 1
  fi
  kill -KILL "$pid"
  local deadline=$((SECONDS + 10))
  while [[ -n $(inst_pid "$1") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  printf '{"t":%s,"event":"pgf%s-killed"}\n' "$(now)" "$1" >>"$run_dir/events.jsonl"
}
leader_is() { [[ $(leader) == "pgf$1" ]]; }
wait_leader_is() { # instance seconds
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    leader_is "$1" && return 0
    sleep 0.25
  done
  return 1
}
# Back to one acting instance: the leader key names an instance that runs, and both answer.
one_acting() {
  local i
  i=$(leader_inst)
  [[ -n $i && -n $(inst_pid "$i") ]] && inst_answers 1 && inst_answers 2
}
wait_one_acting() { # seconds
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    one_acting && return 0
    sleep 0.5
  done
  return 1
}
# The first line of an instance's log with EVENT after a time (epoch seconds), as epoch seconds.
log_event_after() { # instance event after
  local line ts
  while IFS= read -r line; do
    ts=$(date -u -d "${line%% *}" +%s.%N 2>/dev/null) || continue
    if awk -v a="$ts" -v b="$3" 'BEGIN { exit !(a > b) }'; then
      printf '%s\n' "$ts"
      return 0
    fi
  done < <(grep -a " $2: " "$(inst_log "$1")" 2>/dev/null || true)
  return 1
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; } # from to

# Scenario 13 needs the acting instance on the primary's host: a clean stop of the acting one
# (it resigns, the other takes the key at once), then it starts again as the standby instance.
prepare_13() {
  local want
  want=$(node_inst "$primary0")
  for _ in 1 2 3; do
    leader_is "$want" && return 0
    say "  moving the acting instance to pgf$want, next to the primary $primary0 (now: $(leader))"
    lab pgfailover stop >>"$run_dir/lab.log" 2>&1 || true
    wait_leader_is "$want" 30 || true
    lab pgfailover start >>"$run_dir/lab.log" 2>&1 || true
    wait_one_acting 60 || true
  done
  leader_is "$want" || die "could not make pgf$want (next to the primary $primary0) the acting instance"
}
scenario_13() {
  local acting other t0
  acting=$(node_inst "$primary0")
  other=$(other_inst "$acting")
  t0=$(now)
  # The host is gone: its cable, then everything on it that matters dies (its postmaster and the
  # acting pgfailover; its etcd member, cut off, is a minority of one).
  inject link "$primary0" down
  event fault
  kill_inst "$acting" || true
  inject kill "$primary0"
  if wait_leader_is "$other" 30; then
    observed+=("ok: pgf$other took the leader key")
    measure handover_s "$(elapsed "$t0" "$(now)")"
  else
    failures+=("pgf$other did not take the leader key within 30 s (leader: '$(leader)')")
  fi
  expect "failover to $replica0 within ${FAILOVER_LIMIT}s" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
  sleep 5
  event heal
  # The host comes back: its cable, and its init starts pgfailover again (as the standby one).
  inject link "$primary0" up
  inject pgfailover start
}
# Waits up to FAILOVER_LIMIT for a promotion to be under way and prints what showed it: the
# promotion intent in etcd (with "intent", two-instance labs), /status saying promoting, or the
# replica writable already. Fails when none showed.
promotion_under_way() {
  local deadline=$((SECONDS + FAILOVER_LIMIT)) intent
  while ((SECONDS < deadline)); do
    if [[ ${1:-} == intent ]]; then
      intent=$(promotion_intent)
      if [[ -n $intent ]]; then
        echo "promotion intent in etcd ($(jq -c '{node, instance, term}' <<<"$intent" 2>/dev/null))"
        return 0
      fi
    fi
    if [[ $(field .state) == promoting ]]; then
      echo promoting
      return 0
    fi
    if node_writable "$replica0"; then
      echo replica-writable
      return 0
    fi
    sleep 0.05
  done
  return 1
}
scenario_14() {
  local t0 hit='' acting other
  inject kill "$primary0"
  event fault
  t0=$(now)
  # The moment the acting instance wrote its promotion intent (before pg_promote), or /status
  # says promoting, or the replica is writable already.
  if ! hit=$(promotion_under_way intent); then
    failures+=("no promotion started within ${FAILOVER_LIMIT}s")
    return 0
  fi
  acting=$(leader_inst)
  if [[ -z $acting ]]; then
    failures+=("nobody held the leader key at the promotion")
    return 0
  fi
  other=$(other_inst "$acting")
  kill_inst "$acting" || return 0
  observed+=("pgf$acting killed -9 at: $hit, $(elapsed "$t0" "$(now)") s after the primary's crash")
  local t_kill
  t_kill=$(now)
  if wait_leader_is "$other" 30; then
    observed+=("ok: pgf$other took the leader key")
    measure handover_s "$(elapsed "$t_kill" "$(now)")"
  else
    failures+=("pgf$other did not take the leader key within 30 s (leader: '$(leader)')")
  fi
  expect "failover to $replica0 completed by pgf$other" wait_primary_is "$replica0" "$FAILOVER_LIMIT"
  event heal
  # Its init starts the killed instance again: the other one keeps acting.
  inject pgfailover start
  sleep 3
  expect "pgf$other still acts after pgf$acting came back" leader_is "$other"
}
scenario_15() {
  local t0 t1 from to
  inject kill etcd
  event fault
  t0=$(now)
  # 30 s without quorum: nobody may act, so nothing is promoted or demoted; the primary serves.
  local deadline=$((SECONDS + 30)) demoted=0 promoted=0
  while ((SECONDS < deadline)); do
    node_writable "$primary0" || demoted=$((demoted + 1))
    node_writable "$replica0" && promoted=$((promoted + 1))
    sleep 1
  done
  t1=$(now)
  expect "$replica0 never writable while etcd was down (seen $promoted times)" [ "$promoted" == 0 ]
  expect "$primary0 writable all along while etcd was down (not writable $demoted times)" [ "$demoted" == 0 ]
  event heal
  inject start etcd
  # Acknowledged writes in every 5 s of the outage (the first 2 s left for the kill to land).
  for ((from = 0; from < 30; from += 5)); do
    to=$((from + 5))
    expect "$primary0 acknowledged writes in seconds $from-$to of the etcd outage" \
      acked_by_between "$primary0" "$(awk -v t="$t0" -v f="$from" 'BEGIN { printf "%.3f", t + f }')" \
      "$(awk -v t="$t0" -v f="$to" -v e="$t1" 'BEGIN { x = t + f; if (x > e) x = e; printf "%.3f", x }')"
  done
  local t_start
  t_start=$(now)
  if wait_one_acting 60; then
    observed+=("ok: pgf$(leader_inst) acts again")
    measure etcd_back_to_acting_s "$(elapsed "$t_start" "$(now)")"
  else
    failures+=("no instance acts within 60 s of etcd's restart (leader: '$(leader)')")
  fi
}
scenario_16() {
  local acting other ports t0 stopped acted
  acting=$(leader_inst)
  if [[ -z $acting ]]; then
    failures+=("nobody holds the leader key before the cut")
    return 0
  fi
  other=$(other_inst "$acting")
  t0=$(now)
  if ! ports=$(etcd_cut "$acting"); then
    failures+=("could not cut pgf$acting off from etcd")
    return 0
  fi
  event fault
  observed+=("pgf$acting cut off from etcd (its open connections from ports: $ports)")
  if wait_leader_is "$other" 30; then
    measure handover_s "$(elapsed "$t0" "$(now)")"
  else
    failures+=("pgf$other did not take the leader key within 30 s (leader: '$(leader)')")
  fi
  no_failover_for 10
  # From the instances' logs: the cut one stops acting, within its lease TTL, before the other
  # one acts. Never two acting at once.
  sleep 1
  if stopped=$(log_event_after "$acting" acting_stopped "$t0"); then
    measure acting_stopped_after_cut_s "$(elapsed "$t0" "$stopped")"
    expect "pgf$acting stopped acting within its lease TTL (${LEASE_TTL_S} s) of the cut ($(elapsed "$t0" "$stopped") s)" \
      awk -v a="$stopped" -v b="$t0" -v ttl="$LEASE_TTL_S" 'BEGIN { exit !(a - b <= ttl) }'
  else
    failures+=("pgf$acting's log has no acting_stopped after the cut")
  fi
  if acted=$(log_event_after "$other" acting "$t0"); then
    measure other_acting_after_cut_s "$(elapsed "$t0" "$acted")"
    if [[ -n ${stopped:-} ]]; then
      expect "pgf$acting stopped acting ($(elapsed "$t0" "$stopped") s) before pgf$other acted ($(elapsed "$t0" "$acted") s)" \
        awk -v a="$stopped" -v b="$acted" 'BEGIN { exit !(a < b) }'
    fi
  else
    failures+=("pgf$other's log has no 'acts now' after the cut")
  fi
  event heal
  etcd_cut_remove
  sleep 3
  expect "pgf$other still acts once pgf$acting reaches etcd again" leader_is "$other"
}

run_one() { # mode scenario rep
  local mode=$1 n=$2 rep=$3
  run_dir=$results/$mode/s$n-r$rep
  mkdir -p -- "$run_dir"
  failures=() observed=()
  ensure_healthy "$mode"
  ((shape == 1)) || ensure_instances
  primary0=$(healthy_primary)
  replica0=$(other_node "$primary0")
  : >"$run_dir/measures.jsonl"
  if declare -F "prepare_$n" >/dev/null; then
    "prepare_$n"
    primary0=$(wait_healthy 60) || die "not healthy after preparing scenario $n"
    replica0=$(other_node "$primary0")
  fi
  local failovers0 switchovers0 run_id t_start
  failovers0=$(failovers_recorded)
  switchovers0=$(switchovers_recorded)
  run_id="$mode-s$n-r$rep-$(date +%s)"
  local start_ms
  start_ms=$(date +%s%3N)
  say "== $mode scenario $n (run $rep): ${TITLE[$n]}; primary $primary0"
  t_start=$SECONDS
  : >"$run_dir/events.jsonl"
  rm -f -- "$run_dir/ready"
  ip netns exec "$CLIENT_NS" "$PYTHON" "$CHECKER" record --dsn "$(lab dsn)" \
    --node "pg1=$NET_BASE.11" --node "pg2=$NET_BASE.12" --passfile "$LAB_DIR/secrets/pgpass" \
    --run-id "$run_id" --events "$run_dir/events.jsonl" --raw "$run_dir/raw.jsonl" \
    --ready-file "$run_dir/ready" --max-seconds 900 >"$run_dir/report.json" 2>"$run_dir/checker.log" &
  checker_pid=$!
  local deadline=$((SECONDS + 60))
  until [[ -e $run_dir/ready ]]; do
    kill -0 "$checker_pid" 2>/dev/null || die "the checker exited at start: $(tail -n 5 "$run_dir/checker.log")"
    ((SECONDS < deadline)) || die "the checker did not start writing within 60 s"
    sleep 0.2
  done
  start_poller "$run_dir/status.jsonl"
  sleep 2 # a baseline of acknowledged writes before the fault

  if [[ $n == 8 ]]; then
    # Scenario 8 checks the metrics while the replica is gone: sample them near the end.
    (sleep 20 && metrics >"$run_dir/metrics-during.txt") &
    local metrics_pid=$!
  fi
  "scenario_$n"
  if [[ $n == 8 ]]; then wait "$metrics_pid" 2>/dev/null || true; fi

  # Converge by itself: no operator action from here on.
  local healthy_at='' p
  if p=$(wait_healthy "$CONVERGE_LIMIT"); then
    healthy_at=$SECONDS
    event healthy
  else
    failures+=("not back to a healthy primary + streaming replica within ${CONVERGE_LIMIT}s")
  fi
  if ((shape == 2)); then
    expect "back to one acting instance (leader key: $(leader)), both instances answer" wait_one_acting 60
  fi
  sleep 2 # the checker's samples must see health hold, not one lucky moment
  stop_bg poller_pid
  kill -TERM "$checker_pid" 2>/dev/null || true
  deadline=$((SECONDS + 120))
  while kill -0 "$checker_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$checker_pid" 2>/dev/null; then
    kill -KILL "$checker_pid" 2>/dev/null || true
    failures+=("the checker did not finish its report within 120 s")
  fi
  wait "$checker_pid" 2>/dev/null || true
  checker_pid=''

  local report=$run_dir/report.json failovers1 switchovers1
  failovers1=$(failovers_recorded)
  switchovers1=$(switchovers_recorded)
  status_json >"$run_dir/status-end.json"
  history_json >"$run_dir/history.json"
  tail -n 300 "$LAB_DIR/pgf/pgfailover.log" >"$run_dir/pgfailover.log" 2>/dev/null || true
  if ((shape == 2)); then
    tail -n 300 "$(inst_log 2)" >"$run_dir/pgfailover-2.log" 2>/dev/null || true
  fi

  if ! jq -e 'type == "object"' "$report" >/dev/null 2>&1; then
    failures+=("the checker produced no report (see checker.log)")
  else
    r() { jq -r "$1" "$report"; }
    # The checks must be able to fail: without acknowledged writes and samples they prove nothing.
    expect "the checker wrote (acknowledged writes: $(r .acknowledged))" [ "$(r .acknowledged)" -gt 20 ]
    expect "the checker sampled both nodes together ($(r .moments_sampled) moments)" [ "$(r .moments_sampled)" -gt 20 ]
    expect "no split-brain window (saw $(r .split_brain_windows))" [ "$(r .split_brain_windows)" == 0 ]
    expect "no write acknowledged on an abandoned timeline (saw $(r .stale_acks))" [ "$(r .stale_acks)" == 0 ]
    expect "promotions: ${PROMOTIONS[$n]} expected, $(r .promotions) seen" [ "$(r .promotions)" == "${PROMOTIONS[$n]}" ]
    local fo_expected=${PROMOTIONS[$n]} so_expected=0
    if [[ $n == 12 ]]; then fo_expected=0 so_expected=2; fi
    expect "pgfailover's /history: $fo_expected failover(s) expected, $((failovers1 - failovers0)) recorded" \
      [ "$((failovers1 - failovers0))" == "$fo_expected" ]
    expect "pgfailover's /history: $so_expected switchover(s) expected, $((switchovers1 - switchovers0)) recorded" \
      [ "$((switchovers1 - switchovers0))" == "$so_expected" ]
    expect "the rows were read back from a single final primary ($(r .final_primary))" [ "$(r .final_primary)" != null ]
    expect "the checker's samples end healthy: a primary and a streaming replica" [ "$(r .healthy_at_end)" == true ]
    if [[ $mode == sync* || ${PROMOTIONS[$n]} == 0 || $n == 12 ]]; then
      expect "no acknowledged write lost (lost: $(r .lost_acked))" [ "$(r .lost_acked)" == 0 ]
    fi
    expect "the replica has every acknowledged row the primary has (missing: $(r .replica_missing_acked))" \
      [ "$(r .replica_missing_acked)" == 0 ]
    local final want
    final=$(r .final_primary)
    if ((PROMOTIONS[$n] == 1)); then want=$replica0; else want=$primary0; fi
    expect "final primary $want (is $final)" [ "$final" == "$want" ]
  fi

  local verdict=pass
  ((${#failures[@]} == 0)) || verdict=fail
  jq -n --arg mode "$mode" --argjson scenario "$n" --argjson rep "$rep" --arg title "${TITLE[$n]}" \
    --arg verdict "$verdict" --arg primary0 "$primary0" --argjson seconds "$((SECONDS - t_start))" \
    --argjson healthy_after "$([[ -n $healthy_at ]] && echo $((healthy_at - t_start)) || echo null)" \
    --argjson failovers "$((failovers1 - failovers0))" --argjson switchovers "$((switchovers1 - switchovers0))" \
    --arg bin "$PGFAILOVER_BIN" --arg bin_sha "$BIN_SHA" --arg commit "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --argjson observed "$(if ((${#observed[@]} == 0)); then echo '[]'; else printf '%s\n' "${observed[@]}" | jq -R . | jq -s -c .; fi)" \
    --slurpfile report <(jq . "$report" 2>/dev/null || echo null) \
    --argjson instances "$shape" --argjson measures "$(jq -s -c 'add // {}' "$run_dir/measures.jsonl" 2>/dev/null || echo '{}')" \
    --argjson events "$(jq -c --argjson t "$start_ms" '[.[] | select(.at_ms >= $t)
        | {at, kind, result, node, reason: (.reason[0:160])}]' "$run_dir/history.json" 2>/dev/null || echo '[]')" \
    --args '{mode: $mode, scenario: $scenario, rep: $rep, title: $title, verdict: $verdict,
             failures: $ARGS.positional, checks_passed: $observed, primary_before: $primary0, run_seconds: $seconds,
             healthy_seen_by_runner_after_s: $healthy_after, failovers_in_history: $failovers, switchovers_in_history: $switchovers,
             history_during_run: $events, binary: $bin, binary_sha1: $bin_sha, commit: $commit,
             instances: $instances, measures: $measures, checker: $report[0]}' \
    "${failures[@]}" >"$run_dir/result.json"
  if [[ $verdict == pass ]]; then
    say "   PASS $mode scenario $n run $rep ($((SECONDS - t_start)) s; $(jq -r '.checker | "gap \(.longest_write_gap_s)s, fault->new-primary write \(.fault_to_first_new_primary_write_s)s, healthy after \(.fault_to_healthy_s)s, lost \(.lost_acked), promotions \(.promotions)"' "$run_dir/result.json"))"
  else
    say "   FAIL $mode scenario $n run $rep: ${failures[*]}"
  fi
  printf '%s\n' "$verdict" >"$run_dir/verdict"
}

# ----- the matrix -----------------------------------------------------------------------------
# One compound command ending in `exit`, so that bash has read all of it before it runs: the
# file can be edited while a long matrix runs without confusing the running copy.
{

  say "results in $results; binary $PGFAILOVER_BIN"
  total=0 failed=0
  for mode in "${modes[@]}"; do
    list=("${scenarios[@]}")
    if ((quick)) && [[ $mode == *-stonith ]]; then
      list=()
      for s in "${scenarios[@]}"; do [[ " ${QUICK_STONITH[*]} " == *" $s "* ]] && list+=("$s"); done
    elif ((quick)); then
      list=()
      for s in "${scenarios[@]}"; do
        if ! is_multi "$s"; then
          list+=("$s")
        elif [[ " ${QUICK_MULTI[*]} " == *" $s "* && " ${QUICK_MULTI_MODES[*]} " == *" $mode "* ]]; then
          list+=("$s")
        fi
      done
    fi
    # One lab per shape: scenarios 1..12 with one instance, 13..16 with two and etcd.
    for want_shape in 1 2; do
      group=()
      for s in "${list[@]}"; do
        if is_multi "$s"; then ((want_shape == 2)) && group+=("$s"); else ((want_shape == 1)) && group+=("$s"); fi
      done
      ((${#group[@]} > 0)) || continue
      lab_start "$mode" "$want_shape"
      for ((rep = 1; rep <= repeat; rep++)); do
        for n in "${group[@]}"; do
          total=$((total + 1))
          run_one "$mode" "$n" "$rep"
          if [[ $(<"$run_dir/verdict") != pass ]]; then
            failed=$((failed + 1))
            if ((stop_on_failure)); then
              say "stopping at the first failure (--stop-on-failure)"
              break 4
            fi
          fi
        done
      done
      lab_stop
    done
  done

  jq -s 'map({mode, scenario, rep, verdict, failures})' "$results"/*/s*-r*/result.json >"$results/summary.json" 2>/dev/null || true
  say "$((total - failed)) of $total runs passed in $((SECONDS - SUITE_START)) s; results: $results"
  "$PYTHON" "$REPO_ROOT/tests/chaos/summarize.py" "$results" 2>/dev/null || true
  ((failed == 0)) || exit 1
  exit 0
}
