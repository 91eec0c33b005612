#!/usr/bin/env bash
# End-to-end test of the network-namespace lab (scripts/lab-netns.sh), as root:
#   1. up, wait until healthy (pg1 primary, pg2 streaming). With two instances (the default,
#      NETNS_TEST_INSTANCES=2: pgfailover next to each server, etcd on pg1, pg2 and pgf): exactly
#      one instance acts (the etcd leader key names it); kill -9 it: the other one acts; start it
#      again: it does not take over
#   2. the primary's host crashes (kill -9 of the postmaster and its link down): the replica is
#      promoted
#   3. the old primary comes back as it was (started while still cut off, a writable primary on
#      the old timeline, then its link up): pgfailover fences and rejoins it (healthy again, the
#      old primary now a replica of the new one, the rows written meanwhile replicated to it)
#   3b. kill -9 the replica: pgfailover restarts it (rejoin over ssh) by itself
#   4. one instance only: partition only pgfailover <-> primary: no failover (failover_vetoed,
#      same primary for 15 s) (with an instance on each server's host this fault does not exist;
#      the chaos suite's scenario 3 runs it)
#   5. heal: healthy again
#   6. down, and nothing is left: no namespace with the lab's prefix, no veth, no unreachable
#      route, no process from the lab's pid files (etcd members included), no lab folder.
# The failover is one promotion exactly: pg2 has one timeline history file, and no instance's
# pgfailover_failovers_total{result="succeeded"} went up by more than one.
# When the lab builds pgfailover (no PGFAILOVER_BIN), `up` must leave the build dir's tests
# setting as it was (the lab only configures a build dir it creates).
# Runs in its own lab folder, namespace prefix and range, so a lab of the user's is not touched.
# Exits non-zero with a message naming the step that failed; `down` always runs (trap).
#
# Environment: PGFAILOVER_BIN (skip the build and use this binary), LAB_BUILD_DIR (build),
# NETNS_TEST_NET (10.231.78.0/24), NETNS_TEST_PREFIX (pgft-), NETNS_TEST_INSTANCES (2: two instances
# and etcd; 1: the single instance in pgf, the namespace lab's default shape), LAB_SKIP_DEPS=1.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=$REPO_ROOT/scripts/lab-netns.sh
# shellcheck source=tests/labs/lab-checks.sh
source "$REPO_ROOT/tests/labs/lab-checks.sh"
((EUID == 0)) || {
  echo "netns_test: needs root (network namespaces)" >&2
  exit 1
}

export LAB_NET=${NETNS_TEST_NET:-10.231.78.0/24}
export LAB_PREFIX=${NETNS_TEST_PREFIX:-pgft-}
LAB_DIR=$(mktemp -d /tmp/pgfailover-netns-test.XXXXXX)
chmod 0755 "$LAB_DIR"
export LAB_DIR
export LAB_TIMEOUT=${LAB_TIMEOUT:-120}
NET_BASE=${LAB_NET%.0/24}
INSTANCES=${NETNS_TEST_INSTANCES:-2}
[[ $INSTANCES =~ ^[12]$ ]] || {
  echo "netns_test: NETNS_TEST_INSTANCES must be 1 or 2" >&2
  exit 1
}

START=$SECONDS
step_started=$SECONDS
log() { printf '\nnetns_test [%4ds]: %s\n' "$((SECONDS - START))" "$*" >&2; }
step() {
  step_started=$SECONDS
  log "== $*"
}
fail() {
  printf '\nnetns_test: FAILED: %s\n' "$*" >&2
  exit 1
}

lab() { bash "$LAB" "$@"; }
status_json() { lab status --json 2>/dev/null || true; }
field() { jq -r "$1" <<<"$(status_json)" 2>/dev/null || true; }
# psql from the client namespace to one node (by address), as the lab's superuser.
node_sql() { # node sql
  local ip
  case $1 in pg1) ip=$NET_BASE.11 ;; pg2) ip=$NET_BASE.12 ;; esac
  ip netns exec "${LAB_PREFIX}client" env PGPASSFILE="$LAB_DIR/secrets/pgpass" psql -X -A -t -q \
    -d "host=$ip port=5432 dbname=postgres user=pgfailover sslmode=verify-full sslrootcert=$LAB_DIR/ca/ca.crt connect_timeout=3" -c "$2" 2>/dev/null
}
client_exec() { ip netns exec "${LAB_PREFIX}client" "$@"; }
# The instances' API base URLs: pgf in its own namespace, or pgf1 next to pg1 and pgf2 next to pg2.
instance_urls() {
  if ((INSTANCES == 1)); then echo "http://$NET_BASE.10:8008"; else echo "http://$NET_BASE.11:8008" "http://$NET_BASE.12:8008"; fi
}
# The etcd leader key's value: the acting instance's name ('' when nobody holds it).
leader() {
  client_exec env ETCDCTL_API=3 etcdctl --endpoints="$NET_BASE.11:2379,$NET_BASE.12:2379,$NET_BASE.10:2379" \
    --dial-timeout=1s --command-timeout=2s get --print-value-only /pgfailover/netns-lab/leader 2>/dev/null | head -n1 || true
}
# pgfailover_failovers_total{result="succeeded"} of each instance, in instance order.
failover_counts() {
  local url n
  for url in $(instance_urls); do
    n=$(client_exec curl -s --max-time 3 "$url/metrics" | awk '/^pgfailover_failovers_total\{result="succeeded"\}/ {print int($2)}')
    printf '%s ' "${n:-0}"
  done
}
# Writes through the DSN (the writable node, whichever it is).
dsn_sql() {
  ip netns exec "${LAB_PREFIX}client" psql -X -A -t -q -d "$(lab dsn)" -c "$1"
}

# Polls until `predicate` holds, at most `seconds`; prints the state while waiting.
wait_until() { # seconds description predicate...
  local seconds=$1 what=$2 deadline last='' now
  shift 2
  deadline=$((SECONDS + seconds))
  while ! "$@"; do
    now="$(field '.state') primary=$(field '.primary') $(field '[.nodes[]? | "\(.name)=\(.role)"] | join(" ")')"
    if [[ $now != "$last" ]]; then
      printf '  ... %s\n' "$now" >&2
      last=$now
    fi
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for: $what (last: $now)"
    sleep 1
  done
  log "ok: $what (after $((SECONDS - step_started))s)"
}

role_of() { field "[.nodes[]? | select(.name == \"$1\") | .role][0] // empty"; }
healthy_with() { # primary replica
  [[ $(field .state) == healthy && $(field .primary) == "$1" && $(role_of "$2") == replica ]]
}
primary_is() { [[ $(field .primary) == "$1" && $(role_of "$1") == primary ]]; }
state_is() { [[ $(field .state) == "$1" ]]; }

# Remember every PID the lab's pid files name, to prove afterwards that none is left.
declare -A lab_pids=()
remember_pids() {
  local file pid
  for file in "$LAB_DIR"/pgf/pgfailover{,-2}.pid "$LAB_DIR"/etcd/etcd{1,2,3}.pid "$LAB_DIR"/ssh/pg{1,2}/sshd.pid \
    "$LAB_DIR"/pg{1,2}/data/postmaster.pid; do
    [[ -f $file ]] || continue
    read -r pid <"$file" || continue
    [[ $pid =~ ^[0-9]+$ ]] && lab_pids[$pid]=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)
  done
  return 0
}

check_nothing_left() {
  local problems=() pid cmd
  while read -r ns _; do
    [[ $ns == "$LAB_PREFIX"* ]] && problems+=("namespace $ns still exists")
  done < <(ip netns list 2>/dev/null)
  while read -r line; do
    [[ -n $line ]] && problems+=("veth in the root namespace: $line")
  done < <(ip -o link show type veth 2>/dev/null | grep -E ': (v-(pgf|pg1|pg2|client)|eth0)@' || true)
  if ip -4 route show type unreachable "$LAB_NET" | grep -q .; then
    problems+=("unreachable route for $LAB_NET still in the root namespace")
  fi
  for pid in "${!lab_pids[@]}"; do
    cmd=${lab_pids[$pid]}
    [[ -n $cmd ]] || continue
    if [[ -d /proc/$pid && $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true) == "$cmd" ]]; then
      problems+=("process $pid ($cmd) from the lab's pid files still runs")
    fi
  done
  # Any process still working in the lab folder (a server's backend, say).
  local pattern
  pattern=$(printf '%s' "$LAB_DIR" | sed 's/[][*?\\]/\\&/g')
  while read -r pid; do
    [[ -n $pid ]] && problems+=("process $pid still works in $LAB_DIR")
  done < <(find /proc/[0-9]*/cwd -maxdepth 0 -lname "$pattern/*" 2>/dev/null | sed 's|^/proc/\([0-9]*\)/cwd$|\1|')
  [[ ! -e $LAB_DIR ]] || problems+=("lab folder $LAB_DIR still exists")
  if ((${#problems[@]} > 0)); then
    printf 'netns_test: left behind: %s\n' "${problems[@]}" >&2
    return 1
  fi
  log "nothing left behind: no ${LAB_PREFIX}* namespace, no veth, no route for $LAB_NET, no lab process, no folder"
}

finish() {
  local status=$?
  trap - EXIT
  if ((status != 0)); then
    printf '\n---- /status ----\n' >&2
    status_json | jq . >&2 2>/dev/null || true
    printf '\n---- /history ----\n' >&2
    client_exec curl -s --max-time 3 "$(lab url 2>/dev/null)/history" >&2 2>/dev/null || true
    for f in "$LAB_DIR"/pgf/pgfailover{,-2}.log; do
      [[ -f $f ]] || continue
      printf '\n---- %s (last 60 lines) ----\n' "$f" >&2
      tail -n 60 "$f" >&2 2>/dev/null || true
    done
    printf '\n---- etcd leader key: %s ----\n' "$(leader)" >&2
    for n in pg1 pg2; do
      printf '\n---- %s server log (last 20 lines) ----\n' "$n" >&2
      tail -n 20 "$LAB_DIR/$n/postgresql.log" >&2 2>/dev/null || true
    done
  fi
  remember_pids
  log "down"
  lab down || status=1
  check_nothing_left || status=1
  if ((status == 0)); then
    log "PASSED in $((SECONDS - START))s"
  else
    log "FAILED after $((SECONDS - START))s"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# The build dir's tests setting, when the lab builds into one that exists.
tests_setting() { grep -E '^(PGFAILOVER_BUILD_TESTS|BUILD_TESTING):' "$1/CMakeCache.txt" 2>/dev/null || true; }
build_dir=''
if [[ -z ${PGFAILOVER_BIN:-} ]]; then
  build_dir=$(realpath -m -- "${LAB_BUILD_DIR:-$REPO_ROOT/build}")
  tests_before=$(tests_setting "$build_dir")
fi

step "up (LAB_NET=$LAB_NET, prefix $LAB_PREFIX, folder $LAB_DIR, $INSTANCES instance(s))"
lab up --instances "$INSTANCES"
if [[ -n $build_dir && -n $tests_before ]]; then
  tests_after=$(tests_setting "$build_dir")
  [[ $tests_after == "$tests_before" ]] ||
    fail "up changed the tests setting of $build_dir: '$tests_before' became '$tests_after'"
  log "ok: the build dir keeps its tests setting ($tests_after)"
fi
remember_pids
wait_until 60 "healthy: pg1 primary, pg2 replica" healthy_with pg1 pg2
up_seconds=$((SECONDS - START))

handover_seconds=-
if ((INSTANCES == 2)); then
  step "two instances: exactly one acts"
  leader_is_one() { [[ $(leader) =~ ^pgf[12]$ ]]; }
  wait_until 30 "the etcd leader key names an instance" leader_is_one
  acting=$(leader)
  # Each instance's own view of who acts (its /status: instance, coordination.acting and
  # acting_here), as of its latest tick.
  views_agree() {
    local url status name
    for url in $(instance_urls); do
      status=$(client_exec curl -s --max-time 3 "$url/status" 2>/dev/null || true)
      name=$(jq -r '.instance // empty' <<<"$status" 2>/dev/null || true)
      [[ -n $name && $(jq -r '.coordination.acting' <<<"$status") == "$acting" ]] || return 1
      if [[ $name == "$acting" ]]; then
        [[ $(jq -r '.coordination.acting_here' <<<"$status") == true ]] || return 1
      else
        [[ $(jq -r '.coordination.acting_here' <<<"$status") == false ]] || return 1
      fi
    done
  }
  wait_until 10 "both instances' /status say $acting acts (and only it acts here)" views_agree
  log "ok: $acting acts, the other instance does not"

  step "kill -9 the acting instance ($acting): the other one acts"
  lab pgfailover kill
  killed_at=$SECONDS
  other=pgf1
  [[ $acting == pgf1 ]] && other=pgf2
  other_acts() { [[ $(leader) == "$other" ]]; }
  wait_until 30 "$other holds the leader key" other_acts
  handover_seconds=$((SECONDS - killed_at))
  wait_until 30 "healthy under $other: pg1 primary, pg2 replica" healthy_with pg1 pg2
  [[ $(field .instance) == "$other" && $(field .coordination.acting_here) == true ]] ||
    fail "the API lab status asks is not $other acting: $(field .coordination)"

  step "start $acting again: it does not take over"
  lab pgfailover start
  sleep 3
  [[ $(leader) == "$other" ]] || fail "the leader key moved from $other to '$(leader)' when $acting came back"
  log "ok: $other still acts"
fi

step "TLS: no warning, every connection to the primary encrypted and verified"
[[ $(field '.warnings | length') == 0 ]] || fail "/status warns: $(field '.warnings')"
[[ $(field '[.nodes[].tls.verifies_server] | all') == true ]] || fail "/status: a node is not verified: $(field '[.nodes[].tls]')"
# pgfailover's sessions and pg2's WAL sender, seen on pg1: all over TLS.
tls_sessions=$(node_sql pg1 "SELECT string_agg(a.application_name || '=' || s.ssl, ' ' ORDER BY a.application_name) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL")
[[ $tls_sessions == *pgfailover=true* && $tls_sessions == *pg2=true* && $tls_sessions != *=false* ]] ||
  fail "pg_stat_ssl on pg1 shows unencrypted or missing sessions: '$tls_sessions'"
log "ok: pg_stat_ssl on pg1: $tls_sessions"
# Plain TCP is refused (hostssl), and a client that verifies the node refuses a wrong name.
if ip netns exec "${LAB_PREFIX}client" env PGPASSFILE="$LAB_DIR/secrets/pgpass" psql -X -A -t -q \
  -d "host=$NET_BASE.11 port=5432 dbname=postgres user=pgfailover sslmode=disable connect_timeout=3" -c 'SELECT 1' >/dev/null 2>&1; then
  fail "pg1 accepted a connection without TLS"
fi

step "write through the DSN"
dsn_sql "CREATE TABLE public.netns_test(v int PRIMARY KEY); INSERT INTO public.netns_test VALUES (1)" >/dev/null ||
  fail "cannot write through the DSN"

step "the primary's host crashes: kill -9 pg1's postmaster and cut its link"
failovers_before=$(failover_counts)
lab kill primary
lab link pg1 down
killed_at=$SECONDS
wait_until 60 "pg2 promoted (primary pg2)" primary_is pg2
failover_seconds=$((SECONDS - killed_at))
[[ $(node_sql pg2 'SELECT pg_is_in_recovery()') == f ]] || fail "pg2 is still in recovery"
# One promotion makes one timeline: a second pg_promote would have left 00000003.history.
histories=$(node_sql pg2 "SELECT string_agg(name, ' ' ORDER BY name) FROM pg_ls_waldir() WHERE name LIKE '%.history'")
[[ $histories == 00000002.history ]] || fail "pg2's timeline history files are '$histories': not one promotion"
sleep 2
failovers_after=$(failover_counts)
counted_once "$failovers_before" "$failovers_after" ||
  fail "pgfailover_failovers_total{result=\"succeeded\"} went from '$failovers_before' to '$failovers_after' (per instance): not one failover"
log "ok: one promotion (timeline history: $histories; failovers counted per instance: $failovers_before-> $failovers_after)"
dsn_sql "INSERT INTO public.netns_test VALUES (2)" >/dev/null || fail "cannot write to the new primary through the DSN"
last_to=$(field '.last_failover.to')
[[ ${last_to//\'/} == pg2 ]] || fail "/status has no last_failover to pg2: $(field .last_failover)"
[[ $last_to == pg2 ]] || log "note: /status last_failover.to is $last_to (quoted): a pgfailover bug"

step "the old primary comes back as it was: start pg1 (a primary on the old timeline), then its link"
# Started while still cut off, as a rebooted host would: nothing can fence it before it runs.
lab start pg1
[[ $(ip netns exec "${LAB_PREFIX}pg1" env PGPASSFILE="$LAB_DIR/secrets/pgpass" psql -X -A -t -q \
  -d "host=$NET_BASE.11 port=5432 dbname=postgres user=pgfailover sslmode=verify-full sslrootcert=$LAB_DIR/ca/ca.crt connect_timeout=3" \
  -c 'SELECT pg_is_in_recovery()') == f ]] || fail "pg1 did not come back as a primary (the test needs it to)"
start_at=$SECONDS
lab link pg1 up
seen_roles=''
fenced_or_rejoined() {
  local role
  role=$(role_of pg1)
  [[ $seen_roles == *"$role"* ]] || seen_roles+="$role "
  healthy_with pg2 pg1
}
wait_until 150 "healthy again: pg2 primary, pg1 fenced and rejoined as its replica" fenced_or_rejoined
rejoin_seconds=$((SECONDS - start_at))
log "roles pg1 went through: $seen_roles"
deadline=$((SECONDS + 30))
until [[ $(node_sql pg1 'SELECT count(*) FROM public.netns_test') == 2 ]]; do
  ((SECONDS < deadline)) || fail "pg1 does not have the rows written on pg2 after the rejoin"
  sleep 1
done
[[ $(node_sql pg1 'SELECT pg_is_in_recovery()') == t ]] || fail "pg1 is not in recovery after the rejoin"
[[ $(node_sql pg1 'SELECT received_tli FROM pg_stat_wal_receiver') -ge 2 ]] || fail "pg1 does not stream pg2's timeline"
log "ok: pg1 follows pg2 on its timeline and has both rows"

step "kill -9 the replica (pg1): pgfailover restarts it over ssh by itself"
lab kill replica
replica_killed_at=$SECONDS
not_healthy() { [[ $(field .state) != healthy ]]; }
wait_until 30 "pgfailover noticed the replica is gone" not_healthy
wait_until 150 "healthy again: pg1 back as pg2's replica, started by pgfailover" healthy_with pg2 pg1
replica_seconds=$((SECONDS - replica_killed_at))

if ((INSTANCES == 1)); then
  step "partition pgfailover <-> primary (pg2) only: the replica still hears the primary, no failover"
  failovers_before=$(ip netns exec "${LAB_PREFIX}client" curl -s --max-time 3 "http://$NET_BASE.10:8008/metrics" |
    awk '/^pgfailover_failovers_total\{result="succeeded"\}/ {print $2}')
  lab partition pgfailover from primary
  partition_at=$SECONDS
  wait_until 40 "state failover_vetoed" state_is failover_vetoed
  veto=$(field .veto)
  log "veto reason: $veto; holding the partition for 15 s"
  deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    state=$(field .state)
    case $state in
      promoting) fail "pgfailover is promoting during a pgfailover<->primary partition" ;;
    esac
    [[ $(node_sql pg2 'SELECT pg_is_in_recovery()') == f ]] || fail "pg2 is no longer a writable primary during the partition"
    [[ $(node_sql pg1 'SELECT pg_is_in_recovery()') != f ]] || fail "pg1 left recovery during the partition (a failover happened)"
    sleep 1
  done
  [[ $(field .state) == failover_vetoed ]] || fail "state is $(field .state) after 15 s of partition, expected failover_vetoed"
  failovers_after=$(ip netns exec "${LAB_PREFIX}client" curl -s --max-time 3 "http://$NET_BASE.10:8008/metrics" |
    awk '/^pgfailover_failovers_total\{result="succeeded"\}/ {print $2}')
  [[ $failovers_before == "$failovers_after" ]] || fail "pgfailover_failovers_total went from $failovers_before to $failovers_after during the partition"
  log "ok: no failover for $((SECONDS - partition_at))s of partition (veto: $veto)"

  step "heal"
  lab heal
  wait_until 60 "healthy after heal: pg2 primary, pg1 replica" healthy_with pg2 pg1
fi

log "durations: up ${up_seconds}s, handover ${handover_seconds}s (acting instance killed to the other holding the leader key), failover ${failover_seconds}s (crash to pg2 primary), fence+rejoin ${rejoin_seconds}s (link up to healthy), replica restart ${replica_seconds}s"
