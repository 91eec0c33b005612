#!/usr/bin/env bash
# The loopback lab: two PostgreSQL 15 servers on 127.0.0.1, pg1 (primary) and pg2 (streaming
# replica), set up by scripts/node/ like the seed's two hosts, and pgfailover watching them.
# Everything lives in one folder (LAB_DIR) and is stopped by PID; nothing is killed by name.
# See docs/lab.md.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
NODE_SCRIPTS=$REPO_ROOT/scripts/node
NODES=(pg1 pg2)

say() { printf 'lab: %s\n' "$*" >&2; }
die() {
  printf 'lab: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: scripts/lab.sh [--netns | --compose] COMMAND

  --netns        the same lab with one network namespace per host, each with its own
                 address, PostgreSQL and sshd (scripts/lab-netns.sh, docs/lab-netns.md)
  --compose      the compose lab: pg1, pg2, pgfailover, HAProxy, Prometheus in containers,
                 also without a registry (scripts/lab-compose.sh: up, status, kill NODE,
                 start NODE, stop NODE, logs, psql, down...; docs/lab-compose.md)

  up             install packages, build pgfailover, start pg1 (primary), pg2 (replica) and
                 pgfailover; returns once replication streams and /readyz answers 200
  status [--json]  pgfailover's view (pgfailover status; --json: raw GET /status)
  history        failovers, fences, rejoins, switchovers (pgfailover history)
  switchover [NODE]  a planned switchover (to NODE, default the replica), with the lab's token
  dsn            a libpq connection string that always reaches the writable node
  url            pgfailover's base URL
  psql [ARGS]    psql on that DSN
  kill NODE      kill -9 the node's postmaster (a crash)
  start NODE     start the node's PostgreSQL again, as its data directory is
  stop NODE      stop the node's PostgreSQL cleanly (pg_ctl stop -m fast)
  rejoin NODE    re-clone a node that is not the primary from the primary (pg_basebackup)
  logs [NAME]    last lines of pgfailover's log, or of NAME's (pg1, pg2, primary, replica)
  down           stop pgfailover and both servers, remove the lab folder

NODE is pg1, pg2, primary or replica (whichever node has that role now).
Environment: LAB_DIR (.lab, or /tmp/pgfailover-lab when "postgres" cannot enter the repo),
LAB_PG1_PORT (6432), LAB_PG2_PORT (6433) or LAB_PG_PORTS=P1,P2, LAB_HTTP_PORT (8008),
LAB_TIMEOUT (90 s), LAB_BUILD_DIR (build), LAB_BUILD_TYPE (RelWithDebInfo), LAB_SKIP_DEPS=1,
LAB_SKIP_BUILD=1, PGFAILOVER_BIN (a binary to use: nothing is built), LAB_LEASE_GUARD=0 (no lease guard
next to the nodes: pgfailover lease-guard). See docs/lab.md.
EOF
}

# ----- settings -------------------------------------------------------------------------------

default_lab_dir() {
  local dir=$REPO_ROOT/.lab
  # Run as root, PostgreSQL runs as "postgres", which must be able to reach the lab folder.
  if ((EUID == 0)) && ! runuser -u postgres -- test -x "$REPO_ROOT" 2>/dev/null; then
    dir=/tmp/pgfailover-lab
  fi
  printf '%s\n' "$dir"
}

LAB_DIR=$(realpath -m -- "${LAB_DIR:-$(default_lab_dir)}")
LAB_ENV=$LAB_DIR/lab.env
MARKER=$LAB_DIR/.pgfailover-lab
LAB_TIMEOUT=${LAB_TIMEOUT:-90}
[[ $LAB_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "LAB_TIMEOUT must be a whole number of seconds"

if [[ -f $LAB_ENV ]]; then
  # A lab that exists keeps the ports it was made with.
  # shellcheck source=/dev/null
  source "$LAB_ENV"
else
  if [[ -n ${LAB_PG_PORTS:-} ]]; then
    IFS=', ' read -r LAB_PG1_PORT LAB_PG2_PORT _ <<<"$LAB_PG_PORTS"
  fi
  LAB_PG1_PORT=${LAB_PG1_PORT:-6432}
  LAB_PG2_PORT=${LAB_PG2_PORT:-6433}
  LAB_HTTP_PORT=${LAB_HTTP_PORT:-8008}
  LAB_BUILD_DIR=$(realpath -m -- "${LAB_BUILD_DIR:-$REPO_ROOT/build}")
  # A given binary is used as it is (as in the namespace lab): nothing is built.
  [[ -n ${PGFAILOVER_BIN:-} ]] && LAB_SKIP_BUILD=1
  PGFAILOVER_BIN=$(realpath -m -- "${PGFAILOVER_BIN:-$LAB_BUILD_DIR/pgfailover}")
fi
for port_var in LAB_PG1_PORT LAB_PG2_PORT LAB_HTTP_PORT; do
  port=${!port_var}
  if [[ ! $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "$port_var must be a TCP port, got '$port'"
  fi
done
[[ $LAB_PG1_PORT != "$LAB_PG2_PORT" ]] || die "pg1 and pg2 need different ports (both $LAB_PG1_PORT)"

URL=http://127.0.0.1:$LAB_HTTP_PORT
CONFIG=$LAB_DIR/pgfailover.json
PID_FILE=$LAB_DIR/pgfailover.pid
LOG_FILE=$LAB_DIR/pgfailover.log
PASSWORD_FILE=$LAB_DIR/pgfailover.password
REPL_PASSWORD_FILE=$LAB_DIR/replication.password
ADMIN_TOKEN_FILE=$LAB_DIR/admin.token
REPL_USER=${NODE_REPL_USER:-replicator}
PG_BIN_DIR=$(bash "$REPO_ROOT/scripts/pg-bin.sh" 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PGPASS=$LAB_DIR/pgpass
SUPERUSER=pgfailover

node_port() {
  case $1 in
    pg1) printf '%s\n' "$LAB_PG1_PORT" ;;
    pg2) printf '%s\n' "$LAB_PG2_PORT" ;;
  esac
}
node_dir() { printf '%s\n' "$LAB_DIR/$1"; }
node_initialized() { [[ -f $LAB_DIR/$1/data/PG_VERSION ]]; }

# ----- helpers --------------------------------------------------------------------------------

# psql over TCP as the lab's superuser (password from the lab's pgpass file).
lab_psql() {
  local port=$1
  shift
  PGPASSFILE=$PGPASS psql -X -A -t -q \
    -d "host=127.0.0.1 port=$port dbname=postgres user=$SUPERUSER sslmode=verify-full sslrootcert=$LAB_DIR/ca/ca.crt connect_timeout=3" "$@"
}

# The PID in a node's postmaster.pid when that process lives (not a zombie), or nothing.
postmaster_pid() {
  local file=$LAB_DIR/$1/data/postmaster.pid pid='' state
  [[ -f $file ]] && read -r pid <"$file"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null || true)
  [[ -n $state && $state != Z ]] || return 0
  # A reused PID works elsewhere: a postmaster works in its data directory.
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null || true) == "$LAB_DIR/$1/data" ]] || return 0
  printf '%s\n' "$pid"
}

# pgfailover's PID from the pid file when that process is pgfailover, or nothing.
daemon_pid() {
  local pid=
  [[ -f $PID_FILE ]] && read -r pid <"$PID_FILE"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  # A reused PID runs another program (after a rebuild the running one shows as "(deleted)").
  local exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == "$PGFAILOVER_BIN" || $exe == "$PGFAILOVER_BIN (deleted)" ]] || return 0
  local state
  state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null || true)
  [[ $state != Z ]] || return 0
  printf '%s\n' "$pid"
}

port_in_use() {
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL$1" 2>/dev/null || true
}

# pg1/pg2, or the node that has the role primary/replica now: pgfailover's /status first,
# pg_is_in_recovery() when pgfailover does not answer.
resolve_node() {
  local want=${1:-}
  case $want in
    pg1 | pg2)
      printf '%s\n' "$want"
      return
      ;;
    primary | replica) ;;
    '') die "which node? pg1, pg2, primary or replica" ;;
    *) die "unknown node '$want': use pg1, pg2, primary or replica" ;;
  esac
  local json name
  if json=$(curl -sf --max-time 2 "$URL/status" 2>/dev/null) && command -v jq >/dev/null; then
    name=$(jq -r --arg role "$want" \
      '[.nodes[]? | select(.role == $role) | .name][0] // empty' <<<"$json" 2>/dev/null || true)
    if [[ $name == pg1 || $name == pg2 ]]; then
      printf '%s\n' "$name"
      return
    fi
  fi
  local node recovery
  for node in "${NODES[@]}"; do
    recovery=$(lab_psql "$(node_port "$node")" -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
    if [[ ($want == primary && $recovery == f) || ($want == replica && $recovery == t) ]]; then
      say "pgfailover did not say which node is the $want; pg_is_in_recovery() says $node"
      printf '%s\n' "$node"
      return
    fi
  done
  die "no node is the $want now (neither pgfailover's /status nor pg_is_in_recovery() names one)"
}

new_password() {
  local password
  password=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  [[ ${#password} -eq 24 ]] || die "cannot generate a password"
  printf '%s' "$password"
}

write_secret() { # file content
  (
    umask 077
    printf '%s' "$2" >"$1.tmp"
  )
  mv -f -- "$1.tmp" "$1"
}

require_lab() {
  [[ -f $MARKER ]] || die "no lab in $LAB_DIR: run 'scripts/lab.sh up' first (or set LAB_DIR)"
}

node_script() { # script node [args...]
  local script=$1 node=$2
  shift 2
  NODE_TIMEOUT=$LAB_TIMEOUT bash "$NODE_SCRIPTS/$script" --dir "$(node_dir "$node")" --name "$node" "$@"
}

# The nodes' lease guards (scripts/lab-guard.sh).
# shellcheck source=scripts/lab-guard.sh
source "$REPO_ROOT/scripts/lab-guard.sh"

# ----- commands -------------------------------------------------------------------------------

cmd_up() {
  if [[ ${LAB_SKIP_DEPS:-0} != 1 ]]; then
    bash "$REPO_ROOT/scripts/install-deps.sh"
  fi

  if [[ -d $LAB_DIR && ! -f $MARKER && -n $(ls -A -- "$LAB_DIR" 2>/dev/null) ]]; then
    die "$LAB_DIR exists and is not a lab folder: choose another LAB_DIR"
  fi
  mkdir -p -- "$LAB_DIR"
  chmod 0755 "$LAB_DIR"
  touch "$MARKER"
  if [[ ! -f $LAB_ENV ]]; then
    {
      printf '# Written by scripts/lab.sh up; later commands use these values.\n'
      printf 'LAB_PG1_PORT=%q\nLAB_PG2_PORT=%q\nLAB_HTTP_PORT=%q\n' "$LAB_PG1_PORT" "$LAB_PG2_PORT" "$LAB_HTTP_PORT"
      printf 'LAB_BUILD_DIR=%q\nPGFAILOVER_BIN=%q\n' "$LAB_BUILD_DIR" "$PGFAILOVER_BIN"
    } >"$LAB_ENV"
  fi

  if [[ ${LAB_SKIP_BUILD:-0} != 1 ]]; then
    say "building pgfailover in $LAB_BUILD_DIR (log: $LAB_DIR/build.log)"
    if ! {
      cmake -S "$REPO_ROOT" -B "$LAB_BUILD_DIR" -DCMAKE_BUILD_TYPE="${LAB_BUILD_TYPE:-RelWithDebInfo}" \
        -DBUILD_TESTING=OFF &&
        cmake --build "$LAB_BUILD_DIR" --target pgfailover -j "$(nproc)"
    } >"$LAB_DIR/build.log" 2>&1; then
      tail -n 40 "$LAB_DIR/build.log" >&2
      die "building pgfailover failed (whole log: $LAB_DIR/build.log)"
    fi
  fi
  [[ -x $PGFAILOVER_BIN ]] || die "$PGFAILOVER_BIN is missing: build it (cmake --build build) or set PGFAILOVER_BIN"

  [[ -f $PASSWORD_FILE ]] || write_secret "$PASSWORD_FILE" "$(new_password)"
  [[ -f $REPL_PASSWORD_FILE ]] || write_secret "$REPL_PASSWORD_FILE" "$(new_password)"
  write_secret "$PGPASS" "127.0.0.1:*:*:$SUPERUSER:$(<"$PASSWORD_FILE")"$'\n'

  local node port
  for node in "${NODES[@]}"; do
    port=$(node_port "$node")
    if [[ -z $(postmaster_pid "$node") ]] && port_in_use "$port"; then
      die "port $port for $node is taken by another program: free it or choose other ports (LAB_PG1_PORT, LAB_PG2_PORT; after 'down')"
    fi
  done
  if [[ -z $(daemon_pid) ]] && port_in_use "$LAB_HTTP_PORT"; then
    die "port $LAB_HTTP_PORT for pgfailover's HTTP API is taken: free it or set LAB_HTTP_PORT (after 'down')"
  fi

  # TLS: the node scripts make the lab's CA in $LAB_DIR/ca (ca.key stays there, 0600) and issue
  # each node a certificate for 127.0.0.1; pgfailover and the replicas verify it (verify-full).
  local -a common=(--listen 127.0.0.1 --allow-cidr 127.0.0.1/32 --repl-password-file "$REPL_PASSWORD_FILE"
    --ca-dir "$LAB_DIR/ca")
  if node_initialized pg1; then
    node_script start.sh pg1
  else
    node_script init-primary.sh pg1 "${common[@]}" --port "$LAB_PG1_PORT" \
      --superuser "$SUPERUSER" --superuser-password-file "$PASSWORD_FILE"
  fi
  if node_initialized pg2; then
    node_script start.sh pg2
  else
    node_script clone-replica.sh pg2 "${common[@]}" --port "$LAB_PG2_PORT" \
      --primary-host 127.0.0.1 --primary-port "$LAB_PG1_PORT"
  fi

  say "waiting up to ${LAB_TIMEOUT}s for a replica to stream"
  local deadline=$((SECONDS + LAB_TIMEOUT)) streaming=
  while ((SECONDS < deadline)); do
    for node in "${NODES[@]}"; do
      if [[ $(lab_psql "$(node_port "$node")" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || true) =~ ^[1-9] ]]; then
        streaming=$node
        break 2
      fi
    done
    sleep 0.5
  done
  [[ -n $streaming ]] || die "no replica streams after ${LAB_TIMEOUT}s; see $LAB_DIR/pg1/postgresql.log and $LAB_DIR/pg2/postgresql.log"
  say "replication streams from $streaming"
  if [[ ${LAB_LEASE_GUARD:-1} == 1 ]]; then
    for node in "${NODES[@]}"; do
      start_guard "$node"
    done
  fi

  # Both nodes live on this host, so pgfailover fences and rejoins them with the local executor
  # (as "postgres" when run as root), the same commands it would run over ssh.
  [[ -f $ADMIN_TOKEN_FILE ]] || write_secret "$ADMIN_TOKEN_FILE" "$(new_password)"
  local config run_as=''
  ((EUID == 0)) && run_as=postgres
  config=$(jq -n \
    --arg pw "$PASSWORD_FILE" --arg user "$SUPERUSER" --arg run_as "$run_as" \
    --argjson p1 "$LAB_PG1_PORT" --argjson p2 "$LAB_PG2_PORT" --argjson http "$LAB_HTTP_PORT" \
    --arg dir "$LAB_DIR" --arg bin "$PG_BIN_DIR" --arg repl "$REPL_USER" --arg ca "$LAB_DIR/ca/ca.crt" \
    --arg token "$ADMIN_TOKEN_FILE" --arg state "$LAB_DIR/pgfailover.state.json" '
    def node($name; $port): {
      name: $name, host: "127.0.0.1", port: $port, dbname: "postgres", user: $user,
      password_file: $pw, sslmode: "verify-full", sslrootcert: $ca,
      data_dir: ($dir + "/" + $name + "/data"), bin_dir: $bin,
      start_command: ("{bin_dir}/pg_ctl start -D {data_dir} -w -t 60 -l " + $dir + "/" + $name +
                      "/postgresql.log"),
      local: (if $run_as == "" then {} else {run_as: $run_as} end)
    };
    {
      cluster_name: "lab",
      nodes: [node("pg1"; $p1), node("pg2"; $p2)],
      probe: {interval_ms: 1000},
      failover: {confirmed_down_timeout_ms: 3000, unresponsive_timeout_ms: 10000,
                 rejoin_retry_interval_ms: 10000},
      replication: {user: $repl, passfile: ($dir + "/pg1/replication.pgpass"),
                    sslmode: "verify-full", sslrootcert: $ca},
      http: {listen_address: "127.0.0.1", port: $http},
      admin: {token_file: $token},
      state_file: $state
    }')
  (
    umask 077
    printf '%s\n' "$config" >"$CONFIG.tmp"
  )
  mv -f -- "$CONFIG.tmp" "$CONFIG"

  local pid check_output
  pid=$(daemon_pid)
  if [[ -n $pid ]]; then
    say "pgfailover already running (pid $pid)"
  else
    if ! check_output=$("$PGFAILOVER_BIN" check-config --config "$CONFIG" 2>&1); then
      printf '%s\n' "$check_output" >&2
      die "pgfailover check-config rejected $CONFIG"
    fi
    say "starting pgfailover (log: $LOG_FILE)"
    nohup "$PGFAILOVER_BIN" run --config "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
  fi

  say "waiting up to ${LAB_TIMEOUT}s for $URL/readyz"
  deadline=$((SECONDS + LAB_TIMEOUT))
  local code=
  while ((SECONDS < deadline)); do
    code=$(http_code /readyz)
    [[ $code == 200 ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$LOG_FILE" >&2 || true
      die "pgfailover (pid $pid) exited during start; log: $LOG_FILE"
    fi
    sleep 0.5
  done
  if [[ $code != 200 ]]; then
    printf -- '--- last lines of %s ---\n' "$LOG_FILE" >&2
    tail -n 30 "$LOG_FILE" >&2 || true
    die "pgfailover's /readyz did not answer 200 within ${LAB_TIMEOUT}s (last answer: ${code:-none}); it still runs (pid $pid): inspect, then 'scripts/lab.sh down'"
  fi
  say "ready: pgfailover $URL (pid $pid), pg1 on $LAB_PG1_PORT, pg2 on $LAB_PG2_PORT"
  say "try: scripts/lab.sh status; psql \"\$(scripts/lab.sh dsn)\"; scripts/lab.sh kill primary"
}

cmd_status() {
  require_lab
  if [[ ${1:-} == --json ]]; then
    curl -s --max-time 5 "$URL/status" || die "pgfailover does not answer at $URL"
    echo
  else
    [[ -z ${1:-} ]] || die "status takes only --json"
    "$PGFAILOVER_BIN" status --url "$URL"
  fi
}

cmd_history() {
  require_lab
  "$PGFAILOVER_BIN" history --url "$URL" "$@"
}

cmd_switchover() {
  require_lab
  local -a to=()
  [[ -n ${1:-} ]] && to=(--to "$1")
  "$PGFAILOVER_BIN" switchover --url "$URL" --token-file "$ADMIN_TOKEN_FILE" "${to[@]}"
}

cmd_dsn() {
  require_lab
  printf 'host=127.0.0.1,127.0.0.1 port=%s,%s dbname=postgres user=%s passfile=%s sslmode=verify-full sslrootcert=%s target_session_attrs=read-write connect_timeout=2\n' \
    "$LAB_PG1_PORT" "$LAB_PG2_PORT" "$SUPERUSER" "$PGPASS" "$LAB_DIR/ca/ca.crt"
}

cmd_kill() {
  require_lab
  local node pid
  node=$(resolve_node "${1:-}")
  pid=$(postmaster_pid "$node")
  [[ -n $pid ]] || die "$node is not running"
  kill -KILL "$pid"
  local deadline=$((SECONDS + 10))
  while [[ -n $(postmaster_pid "$node") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  say "killed $node's postmaster (pid $pid) with SIGKILL"
}

cmd_start() {
  require_lab
  local node
  node=$(resolve_node "${1:-}")
  node_initialized "$node" || die "$node has no data directory in $LAB_DIR"
  node_script start.sh "$node"
}

cmd_stop() {
  require_lab
  local node
  node=$(resolve_node "${1:-}")
  node_script stop.sh "$node" --mode fast
}

# A full re-clone from the current primary, as the seed did by hand: for a node that came back
# writable after a failover. pgfailover's own rejoin (pg_rewind) makes this unnecessary.
cmd_rejoin() {
  require_lab
  local node primary
  node=$(resolve_node "${1:-}")
  primary=$(resolve_node primary)
  [[ $node != "$primary" ]] || die "$node is the primary now: nothing to rejoin"
  say "re-cloning $node from the primary $primary (its data directory is replaced)"
  node_script stop.sh "$node" --mode fast
  node_script clone-replica.sh "$node" --force --listen 127.0.0.1 --allow-cidr 127.0.0.1/32 \
    --repl-password-file "$REPL_PASSWORD_FILE" --ca-dir "$LAB_DIR/ca" --port "$(node_port "$node")" \
    --primary-host 127.0.0.1 --primary-port "$(node_port "$primary")"
}

cmd_logs() {
  require_lab
  local what=${1:-pgfailover} file
  if [[ $what == pgfailover ]]; then
    file=$LOG_FILE
  else
    file=$LAB_DIR/$(resolve_node "$what")/postgresql.log
  fi
  [[ -f $file ]] || die "no log at $file"
  tail -n "${LAB_LOG_LINES:-50}" -- "$file"
}

cmd_down() {
  if [[ ! -e $LAB_DIR ]]; then
    say "no lab in $LAB_DIR: nothing to do"
    return
  fi
  [[ -f $MARKER ]] || die "$LAB_DIR is not a lab folder (no $(basename -- "$MARKER")): not touching it"
  local pid deadline failed=0
  pid=$(daemon_pid)
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -n $(daemon_pid) ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ -n $(daemon_pid) ]]; then
      say "pgfailover (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped pgfailover (pid $pid)"
  fi
  local node
  for node in "${NODES[@]}"; do
    stop_guard "$node"
    [[ -d $LAB_DIR/$node/data ]] || continue
    if [[ -n $(postmaster_pid "$node") || -f $LAB_DIR/$node/data/postmaster.pid ]]; then
      node_script stop.sh "$node" --mode fast --timeout 20 || failed=1
    fi
    if [[ -n $(postmaster_pid "$node") ]]; then
      say "$node still runs (pid $(postmaster_pid "$node"))"
      failed=1
    fi
  done
  ((failed == 0)) || die "could not stop everything; $LAB_DIR kept: run 'scripts/lab.sh down' again"
  rm -rf -- "$LAB_DIR"
  say "removed $LAB_DIR"
}

command=${1:-help}
shift || true
# The same lab with one network namespace per host (docs/lab-netns.md).
if [[ $command == --netns ]]; then
  exec bash "$REPO_ROOT/scripts/lab-netns.sh" "$@"
fi
# The compose lab: containers, HAProxy and Prometheus (docs/lab-compose.md).
if [[ $command == --compose ]]; then
  exec bash "$REPO_ROOT/scripts/lab-compose.sh" "$@"
fi
case $command in
  up) cmd_up "$@" ;;
  status) cmd_status "$@" ;;
  history) cmd_history "$@" ;;
  switchover) cmd_switchover "$@" ;;
  dsn) cmd_dsn ;;
  url)
    require_lab
    printf '%s\n' "$URL"
    ;;
  psql)
    require_lab
    exec psql "$(cmd_dsn)" "$@"
    ;;
  kill) cmd_kill "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  rejoin) cmd_rejoin "$@" ;;
  logs) cmd_logs "$@" ;;
  down) cmd_down ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    die "unknown command '$command'"
    ;;
esac
