#!/usr/bin/env bash
# The compose lab by hand (docs/lab-compose.md): docker-compose.yml's pg1, pg2, two pgfailover
# instances coordinated through etcd-1..3, HAProxy and Prometheus, brought up, driven and removed by one command each, also where no
# image can be pulled. `scripts/lab.sh --compose COMMAND` runs this script.
#
# Two engines:
#   private  (where no Docker engine answers, or LAB_COMPOSE_ENGINE=private; root): the same way
#            as tests/labs/compose_test.sh, with scripts/lib/compose-env.sh: Debian's docker.io
#            and docker-compose (v1), a private dockerd on /run/pgfailover-dockerd/docker.sock,
#            a Debian 12 base image from debootstrap, every image built from it with
#            docker-compose.ci.yml. Nothing is pulled from any registry.
#   system   (a Docker engine answers, or LAB_COMPOSE_ENGINE=system): that engine, with
#            `docker compose` (v2) or else `docker-compose` (v1), docker-compose.yml alone:
#            prom/prometheus and grafana/grafana-oss are pulled, the rest builds from BASE_IMAGE
#            (ubuntu:24.04 unless set).
# Containers are stopped and killed by docker, the private dockerd by its PID; nothing by name.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
CE_TAG=lab-compose
CE_WORK=${LAB_COMPOSE_WORK:-/var/tmp/pgfailover-compose}
# shellcheck source=scripts/lib/compose-env.sh
source "$REPO_ROOT/scripts/lib/compose-env.sh"

say() { printf 'lab-compose: %s\n' "$*" >&2; }
die() {
  printf 'lab-compose: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: scripts/lab-compose.sh COMMAND   (or: scripts/lab.sh --compose COMMAND)

  up [--no-build] [--grafana]
                 bring the lab up (pg1, pg2, two pgfailover instances of which one acts,
                 etcd-1..3, HAProxy, Prometheus) and wait until pg2 streams from pg1, pgfailover calls the
                 cluster healthy and HAProxy's 5432 answers. Private engine: installs
                 docker.io, docker-compose, debootstrap; starts the private dockerd; builds
                 the base image and the images (--no-build: use the images built before).
                 --grafana: also Grafana (system engine only: it must be pulled)
  status [--json]  containers, then pgfailover's view (pgfailover status; --json: GET /status)
  history        failovers, fences, rejoins, switchovers (pgfailover history)
  switchover [NODE]  a planned switchover (to NODE, default the replica)
  kill NODE      docker kill of the node's container (SIGKILL: the host dies, its address
                 goes silent)
  kill pgfailover  docker kill of the acting instance's container (the etcd leader key's)
  kill etcd      docker kill of the three etcd members' containers (their volumes stay)
  start NODE     start the node's container again; waits until its PostgreSQL answers
  start pgfailover | etcd  start the instances' (or etcd members') containers that do not run
  stop NODE      docker stop of the node's container (PostgreSQL stops cleanly)
  logs [SERVICE] [ARGS]  last lines of a service's output (default the acting pgfailover; SERVICE is a
                 compose service or primary/replica; ARGS go to `logs`, e.g. -f)
  psql [ARGS]    psql through HAProxy's read-write port (the primary)
  dsn [--ro]     the libpq connection string psql uses (--ro: HAProxy's read-only port)
  env            shell exports for using docker / docker-compose on this lab by hand
  ca             the lab's CA certificate (PEM), which signed pgfailover's HTTPS certificate:
                 scripts/lab.sh --compose ca >lab-ca.crt
                 curl --cacert lab-ca.crt https://127.0.0.1:8008/status
  compose ARGS   docker-compose (or docker compose) with this lab's files and project
  down           remove the containers, networks and volumes (secrets included); private
                 engine: then stop the private dockerd (by PID) unless another lab uses it

NODE is pg1, pg2, primary or replica (whichever node has that role now, from /status).
Environment: LAB_COMPOSE_ENGINE (auto | private | system), LAB_COMPOSE_PROJECT (pgfailover:
the network is PROJECT_lab), LAB_COMPOSE_TIMEOUT (300 s), LAB_COMPOSE_WORK
(/var/tmp/pgfailover-compose: cache of the private engine), LAB_COMPOSE_CMD (the compose
command of the system engine, e.g. "docker-compose"), and docker-compose.yml's own variables:
PGF_PG_PORT (5432), PGF_PG_RO_PORT (5433), PGF_HAPROXY_STATS_PORT (8404), PGF_HTTP_PORT
(8008: pgfailover-1), PGF_HTTP_PORT_2 (8009: pgfailover-2), PGF_PROMETHEUS_PORT (9090), PGF_GRAFANA_PORT (3000), LAB_NET_PREFIX (10.232.77),
BASE_IMAGE (system engine), PGF_BUILD_JOBS (compile jobs). See docs/lab-compose.md.
EOF
}

PROJECT=${LAB_COMPOSE_PROJECT:-pgfailover}
[[ $PROJECT =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "LAB_COMPOSE_PROJECT must be lower-case letters, digits, '-' or '_'"
export COMPOSE_PROJECT_NAME=$PROJECT
TIMEOUT=${LAB_COMPOSE_TIMEOUT:-300}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "LAB_COMPOSE_TIMEOUT must be a whole number of seconds"
SERVICES=(init pg1 pg2 pgfailover-1 pgfailover-2 etcd-1 etcd-2 etcd-3 haproxy prometheus grafana)
# The pgfailover instances (each one's etcd.name is its service's host name) and etcd members.
INSTANCES=(pgfailover-1 pgfailover-2)
ETCD_SERVICES=(etcd-1 etcd-2 etcd-3)
ETCD_PREFIX=/pgfailover/compose-lab

# ----- engine ---------------------------------------------------------------------------------

# A Docker engine of the machine's own (DOCKER_HOST or the default socket) answers.
system_engine_answers() {
  command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1
}

ENGINE=${LAB_COMPOSE_ENGINE:-auto}
case $ENGINE in
  private | system) ;;
  auto)
    if [[ -n $(ce_dockerd_pid) ]]; then
      ENGINE=private
    elif system_engine_answers; then
      ENGINE=system
    else
      ENGINE=private
    fi
    ;;
  *) die "LAB_COMPOSE_ENGINE must be auto, private or system, got '$ENGINE'" ;;
esac

declare -a COMPOSE_CMD=()
if [[ $ENGINE == private ]]; then
  ce_use_private_engine
  DOCKER=$CE_DOCKER
else
  DOCKER=docker
  if [[ -n ${LAB_COMPOSE_CMD:-} ]]; then
    read -r -a COMPOSE_CMD <<<"$LAB_COMPOSE_CMD"
  elif command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    COMPOSE_CMD=(docker compose)
  elif command -v docker-compose >/dev/null; then
    COMPOSE_CMD=(docker-compose)
  fi
fi

compose() {
  if [[ $ENGINE == private ]]; then
    ce_compose "$@"
  else
    ((${#COMPOSE_CMD[@]} > 0)) || die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
    (cd -- "$REPO_ROOT" && "${COMPOSE_CMD[@]}" -f docker-compose.yml "$@")
  fi
}

engine_answers() { $DOCKER info >/dev/null 2>&1; }

require_engine() {
  engine_answers && return 0
  if [[ $ENGINE == private ]]; then
    die "the private dockerd does not run ($CE_SOCKET): no lab; 'scripts/lab.sh --compose up' first"
  fi
  die "the Docker engine does not answer (DOCKER_HOST=${DOCKER_HOST:-default})"
}

# The container of a service of this project, in any state ('' when there is none). The labels
# are the same with docker-compose v1 and docker compose v2.
container_of() {
  $DOCKER ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" 2>/dev/null | head -n1
}
running() { # container
  [[ -n $1 && $($DOCKER inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
}
health_of() { $DOCKER inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null || true; }

# The host port a service's container port is published on: from the running container (so
# that later commands need no state), else the variable docker-compose.yml reads.
published_port() { # service container-port variable default
  local id port=''
  id=$(container_of "$1")
  if [[ -n $id ]]; then
    port=$($DOCKER port "$id" "$2/tcp" 2>/dev/null | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1)
  fi
  [[ -n $port ]] || port=${!3:-$4}
  printf '%s\n' "$port"
}
http_port() { published_port pgfailover-1 8008 PGF_HTTP_PORT 8008; }
http_port_2() { published_port pgfailover-2 8008 PGF_HTTP_PORT_2 8009; }
pg_port() { published_port haproxy 5432 PGF_PG_PORT 5432; }
pg_ro_port() { published_port haproxy 5433 PGF_PG_RO_PORT 5433; }

# The leader key's value (the acting instance's service), from the first etcd member that answers
# (a member without a quorum does not); empty when nobody holds it or etcd does not answer.
etcd_leader() {
  local service id value
  for service in "${ETCD_SERVICES[@]}"; do
    id=$(container_of "$service")
    running "$id" || continue
    if value=$($DOCKER exec "$id" etcdctl --command-timeout=2s get --print-value-only "$ETCD_PREFIX/leader" 2>/dev/null); then
      printf '%s\n' "$value" | head -n1
      return 0
    fi
  done
  return 0
}

# The acting instance's service ('' when none holds the leader key).
acting_service() {
  local leader s
  leader=$(etcd_leader)
  for s in "${INSTANCES[@]}"; do
    if [[ $s == "$leader" ]]; then
      printf '%s\n' "$s"
      return 0
    fi
  done
}

# The instance to ask: the acting one when its container runs, else the first that runs (every
# instance publishes the same view); '' when none runs.
api_service() {
  local s
  s=$(acting_service)
  if [[ -n $s ]] && running "$(container_of "$s")"; then
    printf '%s\n' "$s"
    return 0
  fi
  for s in "${INSTANCES[@]}"; do
    if running "$(container_of "$s")"; then
      printf '%s\n' "$s"
      return 0
    fi
  done
}

# pgfailover's API is HTTPS only, its certificate from the lab's CA (/lab/ca/ca.crt in the lab
# volume). Asked from inside an instance's container (curl, loopback: in the certificate), so the
# host needs no copy of the CA; `ca` prints it for curl on the published port.
LAB_CA=/lab/ca/ca.crt
status_json() {
  local id service
  service=$(api_service)
  [[ -n $service ]] || return 0
  id=$(container_of "$service")
  $DOCKER exec "$id" curl -sf --max-time 3 --cacert "$LAB_CA" https://127.0.0.1:8008/status 2>/dev/null || true
}

# NODE arguments (resolve_node): pgfailover's /status, else psql inside the running node
# containers.
lab_status_json() { status_json; }
lab_node_recovery() {
  local id
  id=$(container_of "$1")
  running "$id" || return 0
  $DOCKER exec "$id" runuser -u postgres -- psql -X -A -t -q -h /var/lib/pgfailover-node/run \
    -d postgres -c 'SELECT pg_is_in_recovery()'
}
# shellcheck source=scripts/lib/lab-roles.sh
source "$REPO_ROOT/scripts/lib/lab-roles.sh"

resolve_service() {
  case ${1:-} in
    primary | replica) resolve_node "$1" ;;
    *)
      local s
      for s in "${SERVICES[@]}"; do
        if [[ $s == "${1:-}" ]]; then
          printf '%s\n' "$s"
          return
        fi
      done
      die "unknown service '${1:-}': ${SERVICES[*]}, primary or replica"
      ;;
  esac
}

# The client's pgpass, copied from the lab volume (written by the init service) into a file of
# our own (0600); the same secrets until `down`.
PGPASS=${LAB_COMPOSE_PGPASS:-${TMPDIR:-/tmp}/pgfailover-compose-$PROJECT-$EUID.pgpass}
ensure_pgpass() {
  [[ -s $PGPASS ]] && return 0
  local node id
  for node in pg1 pg2; do
    id=$(container_of "$node")
    running "$id" || continue
    (
      umask 077
      $DOCKER exec "$id" cat /lab/client/pgpass >"$PGPASS.tmp"
    ) 2>/dev/null || continue
    if [[ -s $PGPASS.tmp ]]; then
      mv -f -- "$PGPASS.tmp" "$PGPASS"
      return 0
    fi
  done
  rm -f -- "$PGPASS.tmp"
  die "cannot read the client's pgpass from the lab volume (no node container runs)"
}

dsn() { # port
  printf 'host=127.0.0.1 port=%s dbname=postgres user=pgfailover passfile=%s connect_timeout=3\n' "$1" "$PGPASS"
}

# The pgfailover CLI inside the acting instance's container (the host needs no build of it).
pgfailover_cli() {
  local id service
  service=$(api_service)
  [[ -n $service ]] || die "no pgfailover container runs"
  id=$(container_of "$service")
  $DOCKER exec -e PGFAILOVER_CA_FILE="$LAB_CA" "$id" /usr/local/bin/pgfailover "$@"
}

# ----- up ---------------------------------------------------------------------------------------

port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

check_ports() {
  local var default port entry
  local -a checks=(PGF_PG_PORT:5432 PGF_PG_RO_PORT:5433 PGF_HAPROXY_STATS_PORT:8404 PGF_HTTP_PORT:8008
    PGF_HTTP_PORT_2:8009 PGF_PROMETHEUS_PORT:9090)
  [[ ${WITH_GRAFANA:-0} == 1 ]] && checks+=(PGF_GRAFANA_PORT:3000)
  for entry in "${checks[@]}"; do
    var=${entry%%:*} default=${entry#*:}
    port=${!var:-$default}
    if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
      die "$var must be a TCP port, got '$port'"
    fi
    if port_in_use "$port"; then
      die "127.0.0.1:$port ($var) is taken by another program: free it or set $var (e.g. $var=1$default)"
    fi
  done
}

# Another compose lab on the same engine with the same LAB_NET_PREFIX would collide.
check_other_labs() {
  local net prefix=${LAB_NET_PREFIX:-10.232.77} subnet
  while read -r net; do
    [[ -n $net && $net != "${PROJECT}_lab" ]] || continue
    subnet=$($DOCKER network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$net" 2>/dev/null || true)
    if [[ $subnet == "$prefix.0/24" ]]; then
      die "another compose lab's network $net already uses $subnet on this engine (tests/labs/compose_test.sh's keep option, or another project): remove it (docker-compose -p ${net%_lab} down -v) or set LAB_NET_PREFIX"
    fi
  done < <($DOCKER network ls --format '{{.Name}}' 2>/dev/null)
}

cluster_ready() {
  local json
  json=$(status_json)
  [[ -n $json ]] || return 1
  [[ $(jq -r '.state' <<<"$json" 2>/dev/null) == healthy &&
    -n $(jq -r '.primary // empty' <<<"$json" 2>/dev/null) &&
    $(jq -r '[.nodes[]? | select(.role == "replica" and .wal_receiver.status == "streaming")] | length' <<<"$json" 2>/dev/null) -ge 1 ]]
}

haproxy_writes() {
  if command -v psql >/dev/null; then
    [[ $(PGPASSFILE=$PGPASS psql -X -A -t -q -d "$(dsn "$(pg_port)")" -c 'SELECT NOT pg_is_in_recovery()' 2>/dev/null) == t ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$(pg_port)") 2>/dev/null
  fi
}

wait_for() { # description predicate...
  local what=$1 deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for: $what (see: scripts/lab.sh --compose status, logs)"
    sleep 1
  done
}

cmd_up() {
  local build=1 arg
  WITH_GRAFANA=0
  for arg in "$@"; do
    case $arg in
      --no-build) build=0 ;;
      --grafana) WITH_GRAFANA=1 ;;
      *) die "up takes --no-build and --grafana only" ;;
    esac
  done
  local started=$SECONDS
  local -a profile=()
  if [[ $ENGINE == private ]]; then
    ((EUID == 0)) || die "the private engine needs root (its own dockerd); or use a Docker engine of yours: LAB_COMPOSE_ENGINE=system"
    ((WITH_GRAFANA == 0)) || die "--grafana needs grafana/grafana-oss from a registry: use a Docker engine that can pull (LAB_COMPOSE_ENGINE=system)"
    say "engine: private dockerd ($CE_SOCKET), images built FROM $CE_BASE_IMAGE with docker-compose.ci.yml"
    ce_install_packages
    ce_start_dockerd
  else
    ((${#COMPOSE_CMD[@]} > 0)) || die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
    engine_answers || die "the Docker engine does not answer (DOCKER_HOST=${DOCKER_HOST:-default})"
    say "engine: the Docker engine at ${DOCKER_HOST:-the default socket}, with '${COMPOSE_CMD[*]}' (images pulled and built FROM ${BASE_IMAGE:-ubuntu:24.04})"
    ((WITH_GRAFANA == 0)) || profile=(--profile grafana)
  fi
  command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

  if [[ -z $(container_of pgfailover-1) ]]; then
    check_ports
    check_other_labs
  fi
  if [[ $ENGINE == private ]]; then
    ce_base_image
    if ((build)) || ! ce_images_present; then
      ce_build
    fi
    say "docker-compose up -d (project $PROJECT)"
    compose up -d >&2
  elif ((build)); then
    compose "${profile[@]}" up -d --build >&2
  else
    compose "${profile[@]}" up -d >&2
  fi

  say "waiting up to ${TIMEOUT}s for a healthy cluster (a primary, a streaming replica)"
  wait_for "pgfailover calls the cluster healthy with a streaming replica" cluster_ready
  rm -f -- "$PGPASS"
  ensure_pgpass
  wait_for "HAProxy's 127.0.0.1:$(pg_port) reaches the primary" haproxy_writes
  local json
  json=$(status_json)
  say "ready after $((SECONDS - started))s: primary $(jq -r .primary <<<"$json"), replica $(jq -r '[.nodes[] | select(.role == "replica") | .name] | join(",")' <<<"$json")"
  cat >&2 <<EOF
  read-write (the primary)  psql "$(dsn "$(pg_port)")"
  read-only (a replica)     port $(pg_ro_port) on 127.0.0.1
  pgfailover's API (HTTPS)  https://127.0.0.1:$(http_port)/status (pgfailover-1), :$(http_port_2) (pgfailover-2)
                            (CA: scripts/lab.sh --compose ca); acting: $(acting_service)
  HAProxy statistics        http://127.0.0.1:$(published_port haproxy 8404 PGF_HAPROXY_STATS_PORT 8404)/
  Prometheus                http://127.0.0.1:$(published_port prometheus 9090 PGF_PROMETHEUS_PORT 9090)/
try: scripts/lab.sh --compose status; scripts/lab.sh --compose psql; scripts/lab.sh --compose kill primary
EOF
}

# ----- commands -----------------------------------------------------------------------------

cmd_status() {
  require_engine
  if [[ ${1:-} == --json ]]; then
    local json
    json=$(status_json)
    [[ -n $json ]] || die "pgfailover does not answer at https://127.0.0.1:8008 in its container"
    printf '%s\n' "$json"
    return
  fi
  [[ -z ${1:-} ]] || die "status takes only --json"
  compose ps
  echo
  if [[ -n $(api_service) ]]; then
    pgfailover_cli status --url https://127.0.0.1:8008
  else
    say "no pgfailover container runs"
  fi
  local leader
  leader=$(etcd_leader)
  printf '\netcd leader key %s/leader: %s\n' "$ETCD_PREFIX" "${leader:-nobody (or etcd does not answer)}"
}

# The acting instance's container, killed (SIGKILL) like a crashed host.
kill_acting() {
  local service id
  service=$(acting_service)
  [[ -n $service ]] || die "no instance holds the leader key ($ETCD_PREFIX/leader): nothing acts"
  id=$(container_of "$service")
  running "$id" || die "$service holds the leader key but its container does not run"
  $DOCKER kill "$id" >/dev/null
  say "killed $service, the acting instance (docker kill, SIGKILL)"
}

# Every etcd member's container killed at once: the whole etcd cluster down (data kept).
kill_etcd() {
  local service id killed=()
  for service in "${ETCD_SERVICES[@]}"; do
    id=$(container_of "$service")
    running "$id" || continue
    $DOCKER kill "$id" >/dev/null
    killed+=("$service")
  done
  say "killed ${killed[*]:-no etcd member (none ran)} (docker kill, SIGKILL)"
}

# Starts the containers of SERVICES that do not run and waits until each is healthy.
start_services() { # service...
  local service id deadline health
  local -a stopped=()
  for service in "$@"; do
    id=$(container_of "$service")
    [[ -n $id ]] || die "$service has no container: 'scripts/lab.sh --compose up' first"
    running "$id" || stopped+=("$service")
  done
  if ((${#stopped[@]} == 0)); then
    say "$* already run"
    return 0
  fi
  compose start "${stopped[@]}" >&2
  for service in "${stopped[@]}"; do
    id=$(container_of "$service")
    deadline=$((SECONDS + TIMEOUT))
    until [[ $(health_of "$id") == healthy ]]; do
      running "$id" || die "$service's container exited: scripts/lab.sh --compose logs $service"
      ((SECONDS < deadline)) || die "$service is not healthy after ${TIMEOUT}s"
      sleep 1
    done
    say "$service runs (healthy)"
  done
}

cmd_kill() {
  require_engine
  case ${1:-} in
    pgfailover)
      kill_acting
      return
      ;;
    etcd)
      kill_etcd
      return
      ;;
  esac
  local node id started
  node=$(resolve_node "${1:-}")
  id=$(container_of "$node")
  running "$id" || die "$node's container is not running"
  started=$(date +%s.%N)
  $DOCKER kill "$id" >/dev/null
  say "killed $node's container (docker kill, SIGKILL) at $(date -u -d "@$started" +%T.%3N) UTC"
}

cmd_start() {
  require_engine
  case ${1:-} in
    pgfailover)
      start_services "${INSTANCES[@]}"
      return
      ;;
    etcd)
      start_services "${ETCD_SERVICES[@]}"
      return
      ;;
  esac
  local node id deadline health
  node=$(resolve_node "${1:-}")
  id=$(container_of "$node")
  [[ -n $id ]] || die "$node has no container: 'scripts/lab.sh --compose up' first"
  if running "$id"; then
    say "$node's container already runs"
    return
  fi
  compose start "$node" >&2
  say "waiting up to ${TIMEOUT}s for $node's PostgreSQL (the container's health check)"
  deadline=$((SECONDS + TIMEOUT))
  while true; do
    health=$(health_of "$id")
    [[ $health == healthy ]] && break
    running "$id" || die "$node's container exited: scripts/lab.sh --compose logs $node"
    ((SECONDS < deadline)) || die "$node is not healthy after ${TIMEOUT}s (health: ${health:-none})"
    sleep 1
  done
  $DOCKER logs "$id" 2>&1 | grep -F 'guard at start' | tail -n 1 >&2 || true
  say "$node runs; pgfailover rejoins it if its history diverged (scripts/lab.sh --compose status)"
}

cmd_stop() {
  require_engine
  local node
  node=$(resolve_node "${1:-}")
  compose stop "$node" >&2
}

cmd_logs() {
  require_engine
  local service
  if [[ -z ${1:-} || ${1:-} == pgfailover ]]; then
    service=$(api_service)
    service=${service:-pgfailover-1}
  else
    service=$(resolve_service "$1")
  fi
  (($# == 0)) || shift
  if (($# == 0)); then
    compose logs --no-color --tail "${LAB_LOG_LINES:-50}" "$service"
  else
    compose logs --no-color "$@" "$service"
  fi
}

cmd_psql() {
  require_engine
  command -v psql >/dev/null || die "psql is not installed (apt-get install postgresql-client)"
  ensure_pgpass
  exec psql "$(dsn "$(pg_port)")" "$@"
}

cmd_dsn() {
  require_engine
  ensure_pgpass
  case ${1:-} in
    '') dsn "$(pg_port)" ;;
    --ro) dsn "$(pg_ro_port)" ;;
    *) die "dsn takes only --ro" ;;
  esac
}

cmd_env() {
  local cmd=docker-compose
  [[ $ENGINE == system && ${#COMPOSE_CMD[@]} -gt 0 ]] && cmd=${COMPOSE_CMD[*]}
  printf '# The compose lab by hand (engine: %s). Then e.g.: %s ps\n' "$ENGINE" "$cmd"
  if [[ $ENGINE == private ]]; then
    printf 'export DOCKER_HOST=%q\n' "$DOCKER_HOST"
    printf 'export BASE_IMAGE=%q\n' "$BASE_IMAGE"
    printf 'export COMPOSE_FILE=%q\n' "$REPO_ROOT/docker-compose.yml:$REPO_ROOT/docker-compose.ci.yml"
    printf '# Debian'"'"'s docker client (/usr/bin/docker) matches the private dockerd.\n'
  else
    printf 'export COMPOSE_FILE=%q\n' "$REPO_ROOT/docker-compose.yml"
  fi
  printf 'export COMPOSE_PROJECT_NAME=%q\n' "$PROJECT"
  printf '# network: %s_lab; volumes: %s_lab, %s_pg1-data, ...\n' "$PROJECT" "$PROJECT" "$PROJECT"
}

cmd_down() {
  # Volumes left in the private data root (a dockerd stopped without `down`): start it to remove
  # them.
  if [[ $ENGINE == private ]] && ! engine_answers && ((EUID == 0)) &&
    compgen -G "$CE_DATA_ROOT/volumes/${PROJECT}_*" >/dev/null; then
    ce_start_dockerd
  fi
  if ! engine_answers; then
    say "no Docker engine answers: nothing to remove"
    rm -f -- "$PGPASS"
    [[ $ENGINE == private ]] && ce_cleanup_dockerd_leftovers
    return 0
  fi
  say "removing the lab (project $PROJECT): containers, network, volumes"
  compose --profile grafana down -v --remove-orphans >&2
  rm -f -- "$PGPASS"
  if [[ $ENGINE == private ]]; then
    # Dangling images older than a day: keeps the build cache of recent builds.
    $CE_DOCKER image prune -f --filter until=24h >/dev/null 2>&1 || true
    if ce_dockerd_idle; then
      ce_stop_dockerd
    else
      say "the private dockerd keeps running (pid $(ce_dockerd_pid)): other containers remain on it ($($CE_DOCKER ps -a --format '{{.Names}}' | tr '\n' ' '))"
    fi
  fi
}

command=${1:-help}
shift || true
case $command in
  up) cmd_up "$@" ;;
  status) cmd_status "$@" ;;
  history)
    require_engine
    pgfailover_cli history --url https://127.0.0.1:8008 "$@"
    ;;
  switchover)
    require_engine
    to=()
    [[ -n ${1:-} ]] && to=(--to "$(resolve_node "$1")")
    pgfailover_cli switchover --url https://127.0.0.1:8008 --token-file /lab/pgfailover/admin.token "${to[@]}"
    ;;
  kill) cmd_kill "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  logs) cmd_logs "$@" ;;
  psql) cmd_psql "$@" ;;
  dsn) cmd_dsn "$@" ;;
  env) cmd_env ;;
  ca)
    require_engine
    service=$(api_service)
    [[ -n $service ]] || die "no pgfailover container runs"
    $DOCKER exec "$(container_of "$service")" cat "$LAB_CA"
    ;;
  compose)
    require_engine
    compose "$@"
    ;;
  down) cmd_down ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    die "unknown command '$command'"
    ;;
esac
