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
#   5. checks: replication streams, pg2 from its slot; pgfailover's API answers over HTTPS only
#      (its certificate from the lab's CA verifies for every name it is reached by; plain HTTP
#      gets the 400 that says to use https; the key is 0600 and pgfailover's); HAProxy's 5432
#      reaches the primary (a write), 5433 the replica, its checks pass over verified TLS
#      (`show stat`: L7OK); Prometheus scrapes pgfailover over https and the target is up
#   5b. two pgfailover instances (pgfailover-1, pgfailover-2) and etcd-1..3: exactly one acts
#      (the etcd leader key names it, each instance's /status agrees); docker kill of the acting
#      one: the other acts within the lease; the killed one started again stands by
#   6. docker kill of the primary's container: the replica is promoted, once (pg2 has one
#      timeline history file; no instance counts more than one failover); /status and /metrics
#      agree; HAProxy sends writes to the new primary (pg_is_in_recovery() = f, an INSERT works,
#      the earlier row is there); Prometheus has scraped the new roles and raised
#      PgfailoverFailoverHappened
#   7. the old primary's container starts again: its guard asks pgfailover (over https) and
#      starts it as a standby on its slot (it is never seen writable); pgfailover rejoins it; healthy again
#   8. every query of every panel of the Grafana dashboard returns data from the lab's Prometheus
#   9. docker-compose down -v, dockerd stopped by PID (unless another lab's containers remain).
# Steps 1-4 are scripts/lib/compose-env.sh, which scripts/lab-compose.sh (the lab by hand) uses too.
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

# The private dockerd, the base image and the build: scripts/lib/compose-env.sh, the same code
# as the lab by hand (scripts/lab-compose.sh).
CE_TAG=compose_test
CE_WORK=${COMPOSE_TEST_WORK:-/var/tmp/pgfailover-compose}
mkdir -p "$CE_WORK"
if [[ ${COMPOSE_TEST_FRESH:-0} == 1 ]]; then
  CE_DATA_ROOT=$(mktemp -d "$CE_WORK/docker-fresh.XXXXXX")
fi
# shellcheck source=scripts/lib/compose-env.sh
source "$REPO_ROOT/scripts/lib/compose-env.sh"
# shellcheck source=tests/labs/lab-checks.sh
source "$REPO_ROOT/tests/labs/lab-checks.sh"
ce_use_private_engine
export LAB_NET_PREFIX=${LAB_NET_PREFIX:-10.232.77}
export COMPOSE_PROJECT_NAME=pgfailover-ci
# Ports on 127.0.0.1 that a developer's own lab (8008, 5432, 6432...) does not use.
export PGF_HTTP_PORT=18008 PGF_HTTP_PORT_2=18009 PGF_PG_PORT=15432 PGF_PG_RO_PORT=15433 \
  PGF_HAPROXY_STATS_PORT=18404 PGF_PROMETHEUS_PORT=19090
DOCKER=$CE_DOCKER
compose() { ce_compose "$@"; }

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
ce_install_packages
phase_done packages

# ----- 2. dockerd ---------------------------------------------------------------------------------
phase "dockerd"
ce_start_dockerd
phase_done dockerd

finish() {
  local status=$?
  trap - EXIT
  if ((status != 0)); then
    log "diagnostics"
    compose ps >&2 2>/dev/null || true
    if [[ -s ${CA_FILE:-} ]]; then
      curl -s --max-time 3 --cacert "$CA_FILE" "https://127.0.0.1:$PGF_HTTP_PORT/status" 2>/dev/null | jq . >&2 2>/dev/null || true
    fi
    for service in etcd-1 init pg1 pg2 pgfailover-1 pgfailover-2 haproxy prometheus; do
      printf '\n---- %s (last 40 lines) ----\n' "$service" >&2
      compose logs --no-color --tail 40 "$service" >&2 2>/dev/null || true
    done
  fi
  if [[ ${COMPOSE_TEST_KEEP:-0} == always || (${COMPOSE_TEST_KEEP:-0} == 1 && $status == 0) ]]; then
    log "COMPOSE_TEST_KEEP=1: the lab and dockerd (pid $(ce_dockerd_pid), DOCKER_HOST=$DOCKER_HOST) keep running"
  else
    log "docker-compose down -v"
    compose down -v --remove-orphans >&2 2>&1 || status=1
    # Dangling images older than a day: keeps the build cache of recent runs (the builder stage
    # is dangling once built), bounds the data root's growth.
    $DOCKER image prune -f --filter until=24h >/dev/null 2>&1 || true
    if ce_dockerd_idle; then
      ce_stop_dockerd
      if [[ ${COMPOSE_TEST_FRESH:-0} == 1 ]]; then rm -rf -- "$CE_DATA_ROOT"; fi
    else
      log "dockerd (pid $(ce_dockerd_pid)) keeps running: other containers remain on it (a lab by hand?)"
    fi
  fi
  log "durations: ${durations[*]}; total $((SECONDS - START))s"
  if ((status == 0)); then log "PASSED in $((SECONDS - START))s"; else log "FAILED after $((SECONDS - START))s"; fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# ----- 3. base image ------------------------------------------------------------------------------
phase "base image $BASE_IMAGE"
ce_base_image
phase_done base-image

# ----- 4. build and up ----------------------------------------------------------------------------
# The images install the Debian package users install, built for the base image's release (the
# host's Debian 12); its cmake build in build-deb/ is reused, so this is quick after test.sh's
# package phase.
phase "the Debian package the images install (scripts/package.sh)"
deb_path=$(SKIP_LINTIAN=1 bash "$REPO_ROOT/scripts/package.sh" | tail -n 1)
export PGFAILOVER_DEB=${deb_path#"$REPO_ROOT"/}
phase_done package

phase "build the images FROM $BASE_IMAGE"
ce_build
phase_done build

phase "up (without the grafana profile)"
compose down -v --remove-orphans >/dev/null 2>&1 || true
# The same LAB_NET_PREFIX as a lab by hand on this dockerd would collide with it.
for net in $($DOCKER network ls --format '{{.Name}}'); do
  [[ $net != "${COMPOSE_PROJECT_NAME}_lab" ]] || continue
  if [[ $($DOCKER network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$net" 2>/dev/null) == "$LAB_NET_PREFIX.0/24" ]]; then
    fail "network $net (another compose lab: scripts/lab.sh --compose down?) already uses $LAB_NET_PREFIX.0/24; remove it or set LAB_NET_PREFIX"
  fi
done
compose up -d >&2
# pgfailover's API is HTTPS only, with a certificate from the lab's CA (lab-init): every call
# below verifies it against that CA, read from the lab volume (never curl -k).
CA_FILE=$(mktemp)
fetch_ca() { compose exec -T pg1 cat /lab/ca/ca.crt >"$CA_FILE" 2>/dev/null && grep -q 'BEGIN CERTIFICATE' "$CA_FILE"; }
wait_until 60 "the lab's CA in the lab volume" fetch_ca
api() { # path [curl args...]
  local path=$1
  shift
  curl -s --max-time 3 --cacert "$CA_FILE" "$@" "https://127.0.0.1:$PGF_HTTP_PORT$path"
}
api_of() { # service path [curl args...]: pgfailover-1's or pgfailover-2's API, on its published port
  local port=$PGF_HTTP_PORT path=$2
  [[ $1 == pgfailover-2 ]] && port=$PGF_HTTP_PORT_2
  shift 2
  curl -s --max-time 3 --cacert "$CA_FILE" "$@" "https://127.0.0.1:$port$path"
}
status_json() { api /status 2>/dev/null || true; }
field() { jq -r "$1" <<<"$(status_json)" 2>/dev/null || true; }
role_of() { field "[.nodes[]? | select(.name == \"$1\") | .role][0] // empty"; }
healthy_with() { [[ $(field .state) == healthy && $(field .primary) == "$1" && $(role_of "$2") == replica ]]; }
wait_until 300 "healthy: pg1 primary, pg2 replica" healthy_with pg1 pg2
lab_up_at=$SECONDS
[[ $(field '[.nodes[] | select(.name == "pg2") | .wal_receiver.status][0]') == streaming ]] ||
  fail "pg2's WAL receiver does not stream"
in_node() { # service sql
  compose exec -T "$1" runuser -u postgres -- psql -X -A -t -q -h /var/lib/pgfailover-node/run -d postgres -c "$2"
}
[[ $(in_node pg1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1 ]] ||
  fail "pg1 has no streaming replica in pg_stat_replication"
# pg2 streams from the slot pgfailover keeps for it (pgfailover_pg2) from the start: its
# entrypoint created the slot and set primary_slot_name before cloning.
[[ $(in_node pg2 "SELECT slot_name FROM pg_stat_wal_receiver") == pgfailover_pg2 ]] ||
  fail "pg2 does not stream from its slot pgfailover_pg2 (pg_stat_wal_receiver.slot_name: '$(in_node pg2 "SELECT slot_name FROM pg_stat_wal_receiver" 2>/dev/null || true)')"
# TLS (lab-init's CA): pgfailover verifies both nodes, so /status has no warning, and its
# sessions and pg2's WAL sender reach pg1 encrypted.
[[ $(field '.warnings | length') == 0 ]] || fail "/status warns: $(field .warnings)"
tls_sessions=$(in_node pg1 "SELECT string_agg(a.application_name || '=' || s.ssl, ' ' ORDER BY a.application_name) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL")
[[ $tls_sessions == *pgfailover=true* && $tls_sessions == *pg2=true* && $tls_sessions != *=false* ]] ||
  fail "pg_stat_ssl on pg1 shows unencrypted or missing sessions: '$tls_sessions'"
log "ok: no /status warning; pg_stat_ssl on pg1: $tls_sessions"
# Nothing of pgfailover's own start (its probes and heartbeat, the nodes' lease guards, which
# run before pgfailover created its table) leaves an ERROR in either server's log. Checked once
# the guards have run a few times against the table.
sleep 3
start_errors=$(compose logs --no-color pg1 pg2 2>/dev/null | grep -E '(ERROR|PANIC): ' || true)
[[ -z $start_errors ]] || fail "error lines in the servers' logs at the lab's start: $start_errors"
log "ok: no ERROR or PANIC line in pg1's and pg2's logs at the lab's start"
phase_done up

# ----- 5a. the API over HTTPS only ----------------------------------------------------------------
phase "pgfailover's API: HTTPS only, verified against the lab's CA"
# Plain HTTP to the HTTPS port: the 400 that names the fix, never the API.
plain_body=$(mktemp)
plain_code=$(curl -s --max-time 3 -o "$plain_body" -w '%{http_code}' "http://127.0.0.1:$PGF_HTTP_PORT/status" || true)
if [[ $plain_code != 400 ]] || ! grep -qF 'use an https:// URL' "$plain_body"; then
  fail "plain HTTP to pgfailover's port: $plain_code '$(head -c 200 "$plain_body")', expected 400 saying to use https"
fi
! grep -q '"primary"' "$plain_body" || fail "plain HTTP got /status"
log "ok: plain HTTP gets $plain_code: $(head -c 120 "$plain_body")"
# Without the lab's CA the certificate does not verify (curl: 60), so the checks above and below
# really verify it.
no_ca_rc=0
curl -s --max-time 3 -o /dev/null "https://127.0.0.1:$PGF_HTTP_PORT/healthz" || no_ca_rc=$?
((no_ca_rc == 60)) || fail "https without the lab's CA: curl exit $no_ca_rc, expected 60 (certificate not verified)"
# Every name it is reached by is in the certificate: the service name (HAProxy's check-sni,
# Prometheus), the address (the nodes' guard), loopback (docker exec, the published port).
for url in https://pgfailover-1:8008 https://pgfailover-2:8008 "https://$LAB_NET_PREFIX.10:8008" "https://$LAB_NET_PREFIX.13:8008"; do
  compose exec -T pg2 curl -sf --max-time 3 --cacert /lab/ca/ca.crt -o /dev/null "$url/healthz" ||
    fail "pg2 cannot reach $url/healthz with the certificate verified"
done
compose exec -T pgfailover-1 curl -sf --max-time 3 --cacert /lab/ca/ca.crt -o /dev/null https://localhost:8008/healthz ||
  fail "https://localhost:8008 does not verify inside the pgfailover container"
# The CLI through docker exec, as scripts/lab-compose.sh runs it (PGFAILOVER_CA_FILE from the
# service's environment).
cli_status=$(compose exec -T pgfailover-1 pgfailover status --url https://127.0.0.1:8008) ||
  fail "pgfailover status --url https://127.0.0.1:8008 in the container failed: $cli_status"
[[ $cli_status == *pg1* && $cli_status == *pg2* ]] || fail "pgfailover status printed: $cli_status"
# The key: 0600, owned by pgfailover's user (uid 10001), in its 0700 folder.
key_mode=$(compose exec -T pgfailover-1 stat -c '%a %u' /lab/pgfailover/tls/server.key)
[[ $key_mode == "600 10001" ]] || fail "pgfailover's TLS key is '$key_mode' (mode, uid), expected '600 10001'"
compose exec -T pg2 runuser -u postgres -- test -r /lab/pgfailover/tls/server.key 2>/dev/null &&
  fail "another container's user can read pgfailover's TLS key"
container_healthy() { [[ $($DOCKER inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$(compose ps -q "$1")") == healthy ]]; }
wait_until 40 "the pgfailover-1 container's healthcheck (https, verified) says healthy" container_healthy pgfailover-1
wait_until 40 "the pgfailover-2 container's healthcheck (https, verified) says healthy" container_healthy pgfailover-2
log "ok: https verifies as pgfailover-1, pgfailover-2, $LAB_NET_PREFIX.10, .13, localhost, 127.0.0.1; no CA: curl 60; key $key_mode"
phase_done https

# ----- 5b. two instances, one acting --------------------------------------------------------------
phase "two pgfailover instances through etcd: one acts; the acting one killed, the other acts"
# The leader key, read in an etcd member's container (etcdctl, v3 API); '' when nobody holds it.
leader() {
  local service value
  for service in etcd-1 etcd-2 etcd-3; do
    if value=$(compose exec -T "$service" etcdctl --command-timeout=2s get --print-value-only /pgfailover/compose-lab/leader 2>/dev/null); then
      printf '%s\n' "$value" | head -n1
      return 0
    fi
  done
}
leader_is_an_instance() { [[ $(leader) =~ ^pgfailover-[12]$ ]]; }
wait_until 30 "the etcd leader key names an instance" leader_is_an_instance
acting=$(leader)
other=pgfailover-1
[[ $acting == pgfailover-1 ]] && other=pgfailover-2
# Each instance's own view of who acts (its /status: instance, coordination.acting and
# acting_here), as of its latest tick.
views_agree() {
  local service status want
  for service in pgfailover-1 pgfailover-2; do
    status=$(api_of "$service" /status 2>/dev/null || true)
    want=false
    [[ $service == "$acting" ]] && want=true
    [[ $(jq -r '.instance // empty' <<<"$status" 2>/dev/null) == "$service" &&
      $(jq -r '.coordination.acting' <<<"$status") == "$acting" &&
      $(jq -r '.coordination.acting_here' <<<"$status") == "$want" ]] || return 1
  done
}
wait_until 10 "both instances' /status say $acting acts (and only it acts here)" views_agree
log "ok: $acting acts, $other stands by"
$DOCKER kill "$(compose ps -q "$acting")" >/dev/null
killed_at=$SECONDS
other_acts() { [[ $(leader) == "$other" ]]; }
wait_until 30 "$other holds the leader key" other_acts
handover_seconds=$((SECONDS - killed_at))
other_says_acting() { [[ $(api_of "$other" /status | jq -r '.coordination.acting_here' 2>/dev/null) == true ]]; }
wait_until 10 "$other's /status says it acts" other_says_acting
# The killed one comes back (HAProxy checks through pgfailover-1's API, the nodes' guard asks
# it): it stands by, $other keeps acting.
compose start "$acting" >&2
answers_healthz() { [[ $(api_of "$1" /healthz -o /dev/null -w '%{http_code}' 2>/dev/null) == 200 ]]; }
wait_until 60 "$acting answers /healthz again" answers_healthz "$acting"
[[ $(leader) == "$other" ]] || fail "the leader key moved from $other to '$(leader)' when $acting came back"
[[ $(api_of "$acting" /status | jq -r '.coordination.acting_here') == false ]] || fail "$acting acts again after its restart while $other holds the key"
log "ok: $other took over ${handover_seconds}s after $acting was killed; $acting back, standing by"
phase_done instances

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
# HAProxy's checks over TLS: each server's check_status in `show stat` (the stats page's CSV).
# L7OK is a 200 from pgfailover over a verified TLS session; the replica's server in `primary`
# is down on the 503 (L7STS), not on a TLS failure (L6*).
haproxy_stat() { # proxy server -> "status check_status"
  curl -s --max-time 3 "http://127.0.0.1:$PGF_HAPROXY_STATS_PORT/;csv" | awk -F, -v px="$1" -v sv="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == px && $2 == sv { print $col["status"], $col["check_status"] }'
}
haproxy_checks_ok() {
  [[ $(haproxy_stat primary pg1) == "UP L7OK" && $(haproxy_stat primary pg2) == "DOWN L7STS" &&
    $(haproxy_stat replicas pg2) == "UP L7OK" ]]
}
wait_until 30 "HAProxy's checks over TLS: primary/pg1 UP L7OK, primary/pg2 DOWN L7STS, replicas/pg2 UP L7OK" haproxy_checks_ok
via_haproxy "$PGF_PG_PORT" "CREATE TABLE public.compose_test(v int PRIMARY KEY); INSERT INTO public.compose_test VALUES (1)" ||
  fail "cannot write through HAProxy"
phase_done haproxy

# ----- 6. failover --------------------------------------------------------------------------------
phase "docker kill pg1 (the primary)"
# Successful failovers as each instance counts them (counted_once: tests/labs/lab-checks.sh).
failover_counts() {
  local service n
  for service in pgfailover-1 pgfailover-2; do
    n=$(api_of "$service" /metrics | awk '/^pgfailover_failovers_total\{result="succeeded"\}/ {print int($2)}')
    printf '%s ' "${n:-0}"
  done
}
failovers_before=$(failover_counts)
$DOCKER kill "$(compose ps -q pg1)" >/dev/null
promoted() { [[ $(field .primary) == pg2 && $(role_of pg2) == primary ]]; }
wait_until 90 "pg2 promoted" promoted
failover_seconds=$((SECONDS - phase_started))

metric() { api /metrics | awk -v m="$1" '$1 == m {print $2}'; }
agree() {
  local state
  state=$(field .state)
  [[ $(metric 'pgfailover_node_role{node="pg2",role="primary"}') == 1 &&
    $(metric 'pgfailover_node_role{node="pg1",role="primary"}') == 0 &&
    $(metric "pgfailover_cluster_state{state=\"$state\"}") == 1 ]] &&
    counted_once "$failovers_before" "$(failover_counts)"
}
wait_until 10 "/status and /metrics agree (pg2 primary, state, each instance's failovers_total up by one at most)" agree
# One promotion, one new timeline: a second pg_promote would have left 00000003.history.
histories=$(in_node pg2 "SELECT string_agg(name, ' ' ORDER BY name) FROM pg_ls_waldir() WHERE name LIKE '%.history'")
[[ $histories == 00000002.history ]] || fail "pg2's timeline history files are '$histories': not one promotion"
wait_until 30 "HAProxy's 5432 reaches pg2, not in recovery" routes_to "$PGF_PG_PORT" "$LAB_NET_PREFIX.12" f
via_haproxy "$PGF_PG_PORT" "INSERT INTO public.compose_test VALUES (2)" || fail "cannot write to the new primary through HAProxy"
[[ $(via_haproxy "$PGF_PG_PORT" "SELECT string_agg(v::text, ',' ORDER BY v) FROM public.compose_test") == 1,2 ]] ||
  fail "the new primary does not have both rows"

prom_query() {
  curl -s --max-time 3 -G "http://127.0.0.1:$PGF_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1" |
    jq -r '.data.result | length' 2>/dev/null || echo 0
}
prom_has() { [[ $(prom_query "$1") -ge 1 ]]; }
# Prometheus scrapes both instances over https (tls_config.ca_file: the lab's CA), both up.
prom_target_up() {
  [[ $(curl -s --max-time 3 "http://127.0.0.1:$PGF_PROMETHEUS_PORT/api/v1/targets" |
    jq -r '[.data.activeTargets[] | select(.labels.job == "pgfailover") | "\(.scrapeUrl) \(.health)"] | sort | join(",")' 2>/dev/null) == "https://pgfailover-1:8008/metrics up,https://pgfailover-2:8008/metrics up" ]]
}
wait_until 30 "Prometheus's pgfailover targets: https://pgfailover-1:8008/metrics and -2, up" prom_target_up
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
# The guard learnt the primary from pgfailover over https, not from the peers' fallback. (The
# log is read whole first: grep -q stopping early would fail the pipe under pipefail.)
pg1_log=$(compose logs --no-color pg1 2>/dev/null || true)
[[ $pg1_log == *"pgfailover says the primary is 'pg2'"* ]] ||
  fail "pg1's guard did not get the primary from pgfailover's https /status"
deadline=$((SECONDS + 30))
until [[ $(in_node pg1 "SELECT count(*) FROM public.compose_test" 2>/dev/null) == 2 ]]; do
  ((SECONDS < deadline)) || fail "pg1 does not replay pg2's rows"
  sleep 1
done
# The guard started pg1 on its own slot on pg2 (pgfailover created it after the promotion), and
# pgfailover never had to tell a replica to use its slot.
pg1_on_its_slot() {
  [[ $(in_node pg1 "SELECT slot_name FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null || true) == pgfailover_pg1 ]]
}
wait_until 30 "pg1 streams from its slot pgfailover_pg1" pg1_on_its_slot
if compose logs --no-color pgfailover-1 pgfailover-2 2>/dev/null | grep -F 'streams without its slot' >&2; then
  fail "pgfailover saw a replica streaming without its slot"
fi
phase_done rejoin

# ----- 8. the dashboard: every panel's queries have data ------------------------------------------
# After a failover and the old primary's return, every query of the shipped dashboard (each
# target's expr, each panel) must return at least one series from the lab's Prometheus. Grafana's
# variables are replaced the way Grafana would: $__rate_interval by 1m (4 scrape intervals of
# 5 s, rounded up), $__interval by 15s, $__range by the time since the lab came up, and each
# query variable (label_values(metric, label)) by its values, joined as a regex.
phase "dashboard: every query of monitoring/grafana/dashboards/pgfailover.json has data"
DASHBOARD=monitoring/grafana/dashboards/pgfailover.json
prom_get() { # path [curl args...]
  local path=$1
  shift
  curl -s --max-time 5 -G "http://127.0.0.1:$PGF_PROMETHEUS_PORT$path" "$@"
}
range_seconds=$((SECONDS - lab_up_at))
((range_seconds >= 60)) || range_seconds=60
declare -A variable_values=()
while IFS=$'\t' read -r name type definition; do
  case $type in
    query)
      [[ $definition =~ ^label_values\(([a-z_:][a-z0-9_:]*),[[:space:]]*([a-z_][a-z0-9_]*)\)$ ]] ||
        fail "dashboard variable \$$name: cannot resolve '$definition' (only label_values(metric, label))"
      values=$(prom_get "/api/v1/label/${BASH_REMATCH[2]}/values" --data-urlencode "match[]=${BASH_REMATCH[1]}" |
        jq -r '.data // [] | join("|")')
      [[ -n $values ]] || fail "dashboard variable \$$name ($definition) has no value in Prometheus"
      variable_values[$name]=$values
      ;;
    datasource) ;;
    *) fail "dashboard variable \$$name has type $type, which this test does not resolve" ;;
  esac
done < <(jq -r '.templating.list[] | [.name, .type, (.definition // "")] | @tsv' "$DASHBOARD")
log "variables: $(for v in "${!variable_values[@]}"; do printf '$%s=%s ' "$v" "${variable_values[$v]}"; done)\$__range=${range_seconds}s"
substitute() { # expr -> expr with every variable replaced
  local expr=$1 v
  expr=${expr//"\$__rate_interval"/1m}
  expr=${expr//"\${__rate_interval}"/1m}
  expr=${expr//"\$__interval"/15s}
  expr=${expr//"\${__interval}"/15s}
  expr=${expr//"\$__range"/${range_seconds}s}
  expr=${expr//"\${__range}"/${range_seconds}s}
  for v in "${!variable_values[@]}"; do
    expr=${expr//"\${$v}"/${variable_values[$v]}}
    expr=${expr//"\$$v"/${variable_values[$v]}}
  done
  [[ $expr != *'$'* ]] || fail "a dashboard query keeps an unresolved variable: $expr"
  printf '%s\n' "$expr"
}
# title, refId, expr of every target of every panel (rows included, should one carry a query).
mapfile -t dashboard_targets < <(jq -r '.panels[] | .title as $t | (.targets // [])[] | [$t, (.refId // "?"), .expr] | @tsv' "$DASHBOARD")
((${#dashboard_targets[@]} > 0)) || fail "no query found in $DASHBOARD"
empty_panels=()
dashboard_has_data() {
  local line title ref expr query answer
  empty_panels=()
  for line in "${dashboard_targets[@]}"; do
    IFS=$'\t' read -r title ref expr <<<"$line"
    query=$(substitute "$expr")
    answer=$(prom_get /api/v1/query --data-urlencode "query=$query" |
      jq -r 'if .status == "success" then (.data.result | length | tostring) else "error: " + (.error // "?") end' 2>/dev/null ||
      echo "error: no answer")
    if [[ ! $answer =~ ^[1-9][0-9]*$ ]]; then
      empty_panels+=("'$title' ($ref): ${answer/#0/no series} for $query")
    fi
  done
  ((${#empty_panels[@]} == 0))
}
# Rates need two scrapes after a change: give Prometheus a few scrape intervals.
deadline=$((SECONDS + 45))
until dashboard_has_data; do
  if ((SECONDS >= deadline)); then
    printf '  panel without data: %s\n' "${empty_panels[@]}" >&2
    fail "${#empty_panels[@]} of ${#dashboard_targets[@]} dashboard queries return no series (Grafana would show 'No data')"
  fi
  sleep 5
done
log "ok: all ${#dashboard_targets[@]} queries of $(jq '[.panels[] | select(.targets)] | length' "$DASHBOARD") panels return data"
phase_done dashboard

log "handover took ${handover_seconds}s from docker kill of $acting to $other holding the leader key; failover took ${failover_seconds}s from docker kill to pg2 promoted"
