#!/usr/bin/env bash
# End-to-end test of the compose lab (docker-compose.yml + docker-compose.ci.yml), as root, with
# no image pulled from anywhere:
#   1. installs docker.io, docker-compose, debootstrap (idempotent)
#   2. starts a private dockerd: its own socket, data root and pid file; bridges only in
#      10.232.0.0/16 (compose network 10.232.77.0/24) and 10.233.0.0/24 (docker0); no iptables
#      rules, no IP forwarding, no masquerading: containers cannot reach beyond this machine
#   3. a Debian 12 base image: debootstrap --variant=minbase bookworm | docker import (the
#      tarball is cached in COMPOSE_TEST_WORK for the next run)
#   4. builds the images FROM it (PostgreSQL 15 on bookworm), brings the lab up without Grafana
#   5. checks: replication streams; HAProxy's 5432 reaches the primary (a write), 5433 the replica
#   6. docker kill of the primary's container: the replica is promoted; /status and /metrics
#      agree; HAProxy sends writes to the new primary (pg_is_in_recovery() = f, an INSERT works,
#      the earlier row is there); Prometheus has scraped the new roles and raised
#      PgfailoverFailoverHappened
#   7. the old primary's container starts again: its guard asks pgfailover and starts it as a
#      standby (it is never seen writable); pgfailover rejoins it; healthy again
#   8. docker-compose down -v, dockerd stopped by PID.
# Published ports are on 127.0.0.1 only. Prints the duration of each phase.
#
# Environment: COMPOSE_TEST_WORK (/var/tmp/pgfailover-compose: base image tarball and docker
# data root, kept between runs as a cache), COMPOSE_TEST_FRESH=1 (a temporary data root, removed
# at the end), COMPOSE_TEST_KEEP=1 (leave the lab and dockerd running on success; =always: also
# on failure, to inspect),
# LAB_NET_PREFIX (10.232.77).
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
((EUID == 0)) || {
  echo "compose_test: needs root (dockerd)" >&2
  exit 1
}

WORK=${COMPOSE_TEST_WORK:-/var/tmp/pgfailover-compose}
mkdir -p "$WORK"
if [[ ${COMPOSE_TEST_FRESH:-0} == 1 ]]; then
  DATA_ROOT=$(mktemp -d "$WORK/docker-fresh.XXXXXX")
else
  DATA_ROOT=$WORK/docker
fi
EXEC_ROOT=/run/pgfailover-dockerd
SOCKET=$EXEC_ROOT/docker.sock
DOCKERD_PID_FILE=$EXEC_ROOT/dockerd.pid
DOCKERD_LOG=$WORK/dockerd.log
BASE_TAR=$WORK/base-bookworm.tar
BASE_IMAGE=pgfailover-base:bookworm
DOCKER_POOL=10.232.0.0/16
DOCKER_BIP=10.233.0.1/24
export LAB_NET_PREFIX=${LAB_NET_PREFIX:-10.232.77}
export DOCKER_HOST=unix://$SOCKET
export COMPOSE_PROJECT_NAME=pgfailover-ci
export BASE_IMAGE
# Ports on 127.0.0.1 that a developer's own lab (8008, 5432, 6432...) does not use.
export PGF_HTTP_PORT=18008 PGF_PG_PORT=15432 PGF_PG_RO_PORT=15433 PGF_HAPROXY_STATS_PORT=18404 \
  PGF_PROMETHEUS_PORT=19090
export COMPOSE_HTTP_TIMEOUT=300
# Debian's client matches Debian's daemon (another docker CLI may be first on PATH).
DOCKER=/usr/bin/docker
compose() { docker-compose -f docker-compose.yml -f docker-compose.ci.yml "$@"; }

START=$SECONDS
phase_started=$SECONDS
declare -a durations=()
log() { printf '\ncompose_test [%4ds]: %s\n' "$((SECONDS - START))" "$*" >&2; }
phase() {
  phase_started=$SECONDS
  log "== $*"
}
phase_done() { durations+=("$1: $((SECONDS - phase_started))s"); }
fail() {
  printf '\ncompose_test: FAILED: %s\n' "$*" >&2
  exit 1
}

wait_until() { # seconds description predicate...
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for: $what"
    sleep 1
  done
  log "ok: $what ($((SECONDS - phase_started))s into the phase)"
}

# ----- 1. packages --------------------------------------------------------------------------------
phase "packages"
packages=(docker.io docker-compose debootstrap curl jq)
missing=()
for p in "${packages[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
done
command -v psql >/dev/null || missing+=(postgresql-client)
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  # docker.io's maintainer scripts would start the system's dockerd (default 172.17.0.0/16
  # bridge, NAT): forbid starting services during the install unless a policy already does.
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    {
      apt-get -o DPkg::Lock::Timeout=300 update -qq
      apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    }
  ((policy_added == 0)) || rm -f /usr/sbin/policy-rc.d
fi
phase_done packages

# ----- 2. dockerd ---------------------------------------------------------------------------------
dockerd_pid() {
  local pid=''
  [[ -f $DOCKERD_PID_FILE ]] && read -r pid <"$DOCKERD_PID_FILE"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null || true) == /usr/sbin/dockerd ]] || return 0
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$SOCKET" || return 0
  printf '%s\n' "$pid"
}

# Our ranges must not be networks this machine already uses (other than our dockerd's own).
check_ranges() {
  local net routes
  for net in "$DOCKER_POOL" "${DOCKER_BIP%.*}.0/24"; do
    routes=$( (ip -4 route show match "$net"; ip -4 route show root "$net") 2>/dev/null | grep -v '^default' || true)
    [[ -z $routes ]] || fail "$net is already routed on this machine ($(head -n1 <<<"$routes")): another dockerd? stop it or change the ranges"
  done
}

stop_dockerd() {
  local pid deadline
  pid=$(dockerd_pid)
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 60))
  while [[ -n $(dockerd_pid) ]] && ((SECONDS < deadline)); do sleep 0.5; done
  if [[ -n $(dockerd_pid) ]]; then
    log "dockerd (pid $pid) ignored SIGTERM for 60 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  log "stopped dockerd (pid $pid)"
}

# What a stopped dockerd leaves: the nsfs mount of its default network namespace under the exec
# root, and its docker0 bridge (ours when it carries our --bip address).
cleanup_dockerd_leftovers() {
  local target
  while read -r target; do
    if [[ -n $target ]]; then umount "$target" 2>/dev/null || true; fi
  done < <(findmnt -rn -o TARGET 2>/dev/null | grep "^$EXEC_ROOT/" | sort -r)
  rm -rf -- "$EXEC_ROOT"
  if ip -4 -o addr show dev docker0 2>/dev/null | grep -qF " $DOCKER_BIP "; then
    ip link delete docker0
  fi
}

phase "dockerd"
if [[ -z $(dockerd_pid) ]]; then
  cleanup_dockerd_leftovers
  check_ranges
  mkdir -p "$EXEC_ROOT" "$DATA_ROOT"
  log "starting dockerd: socket $SOCKET, data root $DATA_ROOT, bridge $DOCKER_BIP, pool $DOCKER_POOL"
  nohup /usr/sbin/dockerd --host "unix://$SOCKET" --pidfile "$DOCKERD_PID_FILE" \
    --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT/exec" \
    --bip "$DOCKER_BIP" --default-address-pool "base=$DOCKER_POOL,size=24" \
    --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=true \
    --log-level warn >"$DOCKERD_LOG" 2>&1 </dev/null &
fi
deadline=$((SECONDS + 60))
until $DOCKER info >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    tail -n 30 "$DOCKERD_LOG" >&2
    fail "dockerd does not answer on $SOCKET after 60 s (log: $DOCKERD_LOG)"
  fi
  sleep 0.5
done
log "dockerd $($DOCKER version -f '{{.Server.Version}}') running (pid $(dockerd_pid))"
phase_done dockerd

finish() {
  local status=$?
  trap - EXIT
  if ((status != 0)); then
    log "diagnostics"
    compose ps >&2 2>/dev/null || true
    curl -s --max-time 3 "http://127.0.0.1:$PGF_HTTP_PORT/status" 2>/dev/null | jq . >&2 2>/dev/null || true
    for service in init pg1 pg2 pgfailover haproxy prometheus; do
      printf '\n---- %s (last 40 lines) ----\n' "$service" >&2
      compose logs --no-color --tail 40 "$service" >&2 2>/dev/null || true
    done
  fi
  if [[ ${COMPOSE_TEST_KEEP:-0} == always || (${COMPOSE_TEST_KEEP:-0} == 1 && $status == 0) ]]; then
    log "COMPOSE_TEST_KEEP=1: the lab and dockerd (pid $(dockerd_pid), DOCKER_HOST=$DOCKER_HOST) keep running"
  else
    log "docker-compose down -v"
    compose down -v --remove-orphans >&2 2>&1 || status=1
    # Dangling images older than a day: keeps the build cache of recent runs (the builder stage
    # is dangling once built), bounds the data root's growth.
    $DOCKER image prune -f --filter until=24h >/dev/null 2>&1 || true
    stop_dockerd
    cleanup_dockerd_leftovers
    if [[ ${COMPOSE_TEST_FRESH:-0} == 1 ]]; then rm -rf -- "$DATA_ROOT"; fi
  fi
  log "durations: ${durations[*]}; total $((SECONDS - START))s"
  if ((status == 0)); then log "PASSED in $((SECONDS - START))s"; else log "FAILED after $((SECONDS - START))s"; fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# ----- 3. base image ------------------------------------------------------------------------------
phase "base image $BASE_IMAGE"
if $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE already in the data root"
else
  if [[ ! -s $BASE_TAR ]]; then
    rootfs=$WORK/rootfs.tmp
    rm -rf -- "$rootfs"
    log "debootstrap --variant=minbase bookworm (the host's apt cache is reused)"
    debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives bookworm "$rootfs" \
      http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 ||
      {
        tail -n 20 "$WORK/debootstrap.log" >&2
        fail "debootstrap failed (log: $WORK/debootstrap.log)"
      }
    cat >"$rootfs/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.tmp" .
    mv -f -- "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf -- "$rootfs"
  fi
  log "docker import $BASE_TAR"
  $DOCKER import --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
fi
phase_done base-image

# ----- 4. build and up ----------------------------------------------------------------------------
phase "build the images FROM $BASE_IMAGE"
compose config -q
compose build 2>&1 | grep -E '^(Step [0-9]+/[0-9]+ : FROM|Successfully tagged|runtime packages:|lib|ERROR|E: )' >&2 ||
  true
for image in pgfailover/pgfailover pgfailover/postgres-node pgfailover/haproxy pgfailover/prometheus; do
  $DOCKER image inspect "$image:local" >/dev/null 2>&1 || fail "the build left no $image:local (run: docker-compose build)"
done
$DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^pgfailover' >&2
phase_done build

phase "up (without the grafana profile)"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d >&2
status_json() { curl -s --max-time 3 "http://127.0.0.1:$PGF_HTTP_PORT/status" 2>/dev/null || true; }
field() { jq -r "$1" <<<"$(status_json)" 2>/dev/null || true; }
role_of() { field "[.nodes[]? | select(.name == \"$1\") | .role][0] // empty"; }
healthy_with() { [[ $(field .state) == healthy && $(field .primary) == "$1" && $(role_of "$2") == replica ]]; }
wait_until 300 "healthy: pg1 primary, pg2 replica" healthy_with pg1 pg2
[[ $(field '[.nodes[] | select(.name == "pg2") | .wal_receiver.status][0]') == streaming ]] ||
  fail "pg2's WAL receiver does not stream"
in_node() { # service sql
  compose exec -T "$1" runuser -u postgres -- psql -X -A -t -q -h /var/lib/pgfailover-node/run -d postgres -c "$2"
}
[[ $(in_node pg1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1 ]] ||
  fail "pg1 has no streaming replica in pg_stat_replication"
phase_done up

# ----- 5. through HAProxy -------------------------------------------------------------------------
phase "HAProxy: writes on 127.0.0.1:$PGF_PG_PORT, reads on :$PGF_PG_RO_PORT"
PGPASS_FILE=$(mktemp)
chmod 0600 "$PGPASS_FILE"
compose exec -T pg2 cat /lab/client/pgpass >"$PGPASS_FILE"
[[ -s $PGPASS_FILE ]] || fail "no client pgpass in the lab volume"
via_haproxy() { # port sql
  PGPASSFILE=$PGPASS_FILE psql -X -A -t -q -d "host=127.0.0.1 port=$1 dbname=postgres user=pgfailover connect_timeout=3" -c "$2"
}
routes_to() { # port expected-address expected-recovery
  [[ $(via_haproxy "$1" "SELECT host(inet_server_addr()) || ' ' || CASE WHEN pg_is_in_recovery() THEN 't' ELSE 'f' END" 2>/dev/null) == "$2 $3" ]]
}
wait_until 30 "5432 reaches pg1 (the primary)" routes_to "$PGF_PG_PORT" "$LAB_NET_PREFIX.11" f
wait_until 30 "5433 reaches pg2 (the replica)" routes_to "$PGF_PG_RO_PORT" "$LAB_NET_PREFIX.12" t
via_haproxy "$PGF_PG_PORT" "CREATE TABLE public.compose_test(v int PRIMARY KEY); INSERT INTO public.compose_test VALUES (1)" ||
  fail "cannot write through HAProxy"
phase_done haproxy

# ----- 6. failover --------------------------------------------------------------------------------
phase "docker kill pg1 (the primary)"
failovers_before=$(curl -s "http://127.0.0.1:$PGF_HTTP_PORT/metrics" | awk '/^pgfailover_failovers_total\{result="succeeded"\}/ {print $2}')
$DOCKER kill "$(compose ps -q pg1)" >/dev/null
promoted() { [[ $(field .primary) == pg2 && $(role_of pg2) == primary ]]; }
wait_until 90 "pg2 promoted" promoted
failover_seconds=$((SECONDS - phase_started))

metric() { curl -s --max-time 3 "http://127.0.0.1:$PGF_HTTP_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
agree() {
  local state
  state=$(field .state)
  [[ $(metric 'pgfailover_node_role{node="pg2",role="primary"}') == 1 &&
    $(metric 'pgfailover_node_role{node="pg1",role="primary"}') == 0 &&
    $(metric "pgfailover_cluster_state{state=\"$state\"}") == 1 &&
    $(metric 'pgfailover_failovers_total{result="succeeded"}') -gt ${failovers_before:-0} ]]
}
wait_until 10 "/status and /metrics agree (pg2 primary, state, failovers_total up by one)" agree
wait_until 30 "HAProxy's 5432 reaches pg2, not in recovery" routes_to "$PGF_PG_PORT" "$LAB_NET_PREFIX.12" f
via_haproxy "$PGF_PG_PORT" "INSERT INTO public.compose_test VALUES (2)" || fail "cannot write to the new primary through HAProxy"
[[ $(via_haproxy "$PGF_PG_PORT" "SELECT string_agg(v::text, ',' ORDER BY v) FROM public.compose_test") == 1,2 ]] ||
  fail "the new primary does not have both rows"

prom_query() {
  curl -s --max-time 3 -G "http://127.0.0.1:$PGF_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1" |
    jq -r '.data.result | length' 2>/dev/null || echo 0
}
prom_has() { [[ $(prom_query "$1") -ge 1 ]]; }
wait_until 60 "Prometheus scraped pg2 as primary" prom_has 'pgfailover_node_role{node="pg2",role="primary"} == 1'
wait_until 60 "Prometheus raised PgfailoverFailoverHappened" prom_has 'ALERTS{alertname="PgfailoverFailoverHappened"}'
rules=$(curl -s --max-time 3 "http://127.0.0.1:$PGF_PROMETHEUS_PORT/api/v1/rules" | jq '[.data.groups[].rules[]] | length')
[[ $rules -ge 11 ]] || fail "Prometheus loaded $rules alert rules, expected 11"
phase_done failover

# ----- 7. the old primary comes back: guard at start ---------------------------------------------
phase "start pg1 again: the guard starts it as a standby, pgfailover rejoins it"
compose start pg1 >&2
writable_seen=0
pg1_never_writable() {
  local recovery
  recovery=$(in_node pg1 "SELECT pg_is_in_recovery()" 2>/dev/null || true)
  [[ $recovery == f ]] && writable_seen=1
  healthy_with pg2 pg1
}
wait_until 180 "healthy: pg2 primary, pg1 its replica" pg1_never_writable
((writable_seen == 0)) || fail "pg1 was seen writable after its restart: the guard at start did not work"
compose logs --no-color pg1 2>/dev/null | grep -E 'guard|node-guard' | tail -n 5 >&2 || true
deadline=$((SECONDS + 30))
until [[ $(in_node pg1 "SELECT count(*) FROM public.compose_test" 2>/dev/null) == 2 ]]; do
  ((SECONDS < deadline)) || fail "pg1 does not replay pg2's rows"
  sleep 1
done
phase_done rejoin

log "failover took ${failover_seconds}s from docker kill to pg2 promoted"
