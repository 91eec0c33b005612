# shellcheck shell=bash
# What the loopback lab (scripts/lab.sh) and the network-namespace lab (scripts/lab-netns.sh)
# share: two PostgreSQL 15 nodes set up by scripts/node/, pgfailover watching them, lease guards
# beside the nodes, and the commands on them. Only the lab's transport differs: in the loopback
# lab every "host" (pg1, pg2, pgf: pgfailover's, client) is this machine, in the namespace lab
# each is a network namespace and a command runs on it through `ip netns exec`. Everything the
# lab starts is stopped by PID; nothing is killed by name.
#
# A front end sets, before sourcing: REPO_ROOT; LAB_TAG (the messages' prefix); LAB_SCRIPT (its
# own path for messages, e.g. scripts/lab.sh); LAB_KIND (what a lab folder is called: "lab",
# "namespace lab"); LAB_TRANSPORT (local or netns; netns also needs LAB_PREFIX, set with the
# settings below). Then lab_settings with the default lab folder and marker name, its own
# settings, and before running a command: URL, SUPERUSER, REPL_USER, LAB_CA_DIR, PASSWORD_FILE,
# REPL_PASSWORD_FILE, ADMIN_TOKEN_FILE, PGPASS, CONFIG, PID_FILE, LOG_FILE, LAB_ENV_VARS (the
# settings `up` keeps in lab.env), LAB_NODE_ENV (environment words for the node scripts),
# LAB_SWITCHOVER_ARGS (more words for `pgfailover switchover`), REPL_PASSFILE (may be empty:
# each node's own), and these functions:
#   node_host NODE, node_port NODE   where clients reach a node's PostgreSQL
#   node_setup_args NODE             sets NODE_ARGS: the node scripts' options for NODE
#   write_config                     pgfailover's configuration into CONFIG
#   lab_hook_before_nodes            what `up` does between the build and the nodes
#   lab_hook_ready                   the last words of `up`
# and LAB_MAX_INSTANCES: how many pgfailover instances `up --instances N` may start (1: the
# front end has no etcd; more: it defines what scripts/lib/lab-etcd.sh asks for). LAB_INSTANCES
# (in LAB_ENV_VARS) is how many this lab has.
# and may redefine the lab_hook_* defaults below. lab_command runs a command the front end does
# not handle itself.

NODE_SCRIPTS=$REPO_ROOT/scripts/node
NODES=(pg1 pg2)

say() { printf '%s: %s\n' "$LAB_TAG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$LAB_TAG" "$*" >&2
  exit 1
}

# ----- settings -------------------------------------------------------------------------------

# LAB_DIR, LAB_ENV, MARKER and LAB_TIMEOUT; loads lab.env when the lab exists (a lab keeps the
# settings it was made with) and returns 1 when it does not (the front end then takes its
# defaults and the binary's).
lab_settings() { # default-dir marker-name
  LAB_DIR=$(realpath -m -- "${LAB_DIR:-$1}")
  LAB_ENV=$LAB_DIR/lab.env
  MARKER=$LAB_DIR/$2
  LAB_TIMEOUT=${LAB_TIMEOUT:-90}
  [[ $LAB_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "LAB_TIMEOUT must be a whole number of seconds"
  [[ -f $LAB_ENV ]] || return 1
  # shellcheck source=/dev/null
  source "$LAB_ENV"
}

# The binary: a given PGFAILOVER_BIN is used as it is (nothing is built), else the build dir's.
lab_binary_settings() {
  LAB_BUILD_DIR=$(realpath -m -- "${LAB_BUILD_DIR:-$REPO_ROOT/build}")
  if [[ -n ${PGFAILOVER_BIN:-} ]]; then
    PGFAILOVER_BIN=$(realpath -m -- "$PGFAILOVER_BIN")
    LAB_SKIP_BUILD=1
  else
    LAB_SKIP_BUILD=${LAB_SKIP_BUILD:-0}
    PGFAILOVER_BIN=$LAB_BUILD_DIR/pgfailover
  fi
}

# LAB_INSTANCES (default 1) checked against the front end's maximum, kept in LAB_MAX_INSTANCES.
lab_check_instances() { # max
  LAB_INSTANCES=${LAB_INSTANCES:-1}
  LAB_MAX_INSTANCES=$1
  if [[ ! $LAB_INSTANCES =~ ^[1-9]$ ]] || ((LAB_INSTANCES > LAB_MAX_INSTANCES)); then
    die "LAB_INSTANCES must be a number from 1 to $LAB_MAX_INSTANCES, got '$LAB_INSTANCES'"
  fi
}

lab_check_lease_guard() {
  LAB_LEASE_GUARD=${LAB_LEASE_GUARD:-1}
  [[ $LAB_LEASE_GUARD =~ ^[01]$ ]] || die "LAB_LEASE_GUARD must be 0 or 1, got '$LAB_LEASE_GUARD'"
}

node_dir() { printf '%s\n' "$LAB_DIR/$1"; }
node_initialized() { [[ -f $LAB_DIR/$1/data/PG_VERSION ]]; }

# ----- transport ------------------------------------------------------------------------------

ns_name() { printf '%s%s\n' "$LAB_PREFIX" "$1"; }
ns_exists() { [[ -e /run/netns/$1 ]]; }

# Sets HOST_EXEC to the words that run a command on HOST: none in the loopback lab, `ip netns
# exec NS` in the namespace lab (which execs the command: a PID taken after it is the command's).
host_exec_words() { # host
  HOST_EXEC=()
  [[ $LAB_TRANSPORT == netns ]] || return 0
  local ns
  ns=$(ns_name "$1")
  ns_exists "$ns" || die "namespace $ns does not exist: run '$LAB_SCRIPT up' first"
  HOST_EXEC=(ip netns exec "$ns")
}

on_host() { # host cmd...
  host_exec_words "$1"
  shift
  "${HOST_EXEC[@]}" "$@"
}

# " in NS" for messages about a host of the namespace lab.
host_where() {
  [[ $LAB_TRANSPORT == netns ]] || return 0
  printf ' in %s' "$(ns_name "$1")"
}

# ----- helpers --------------------------------------------------------------------------------

require_lab() {
  [[ -f $MARKER ]] || die "no lab in $LAB_DIR: run '$LAB_SCRIPT up' first (or set LAB_DIR)"
}

# curl from the client host to pgfailover's API.
lab_curl() { # path [curl args...]
  local path=$1
  shift
  on_host client curl -s --max-time 3 "$@" "$(api_url)$path"
}
http_code() { lab_curl "$1" -o /dev/null -w '%{http_code}' 2>/dev/null || true; }

# psql from the client host to one node as the lab's superuser.
lab_psql() { # node psql-args...
  local node=$1
  shift
  on_host client env PGPASSFILE="$PGPASS" psql -X -A -t -q \
    -d "host=$(node_host "$node") port=$(node_port "$node") dbname=postgres user=$SUPERUSER sslmode=verify-full sslrootcert=$LAB_CA_DIR/ca.crt connect_timeout=3" "$@"
}

# A process's state letter from /proc/PID/stat (after the command name, which may hold spaces).
proc_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

# A postmaster's PID from postmaster.pid when it lives and works in that data directory (a
# reused PID works elsewhere).
postmaster_pid() {
  local file=$LAB_DIR/$1/data/postmaster.pid pid='' state
  [[ -f $file ]] && read -r pid <"$file"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  state=$(proc_state "$pid")
  [[ -n $state && $state != Z && $state != X ]] || return 0
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null || true) == "$LAB_DIR/$1/data" ]] || return 0
  printf '%s\n' "$pid"
}

# pgfailover's PID from its pid file when that process runs the lab's binary (after a rebuild
# the running one shows as "(deleted)"); a reused PID runs another program.
daemon_pid() { # [instance]
  local pid='' exe file
  file=$(inst_pid_file "${1:-1}")
  [[ -f $file ]] && read -r pid <"$file"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == "$PGFAILOVER_BIN" || $exe == "$PGFAILOVER_BIN (deleted)" ]] || return 0
  [[ $(proc_state "$pid") != Z ]] || return 0
  printf '%s\n' "$pid"
}
daemon_running() { [[ -n $(daemon_pid "${1:-1}") ]]; }

# NODE arguments (resolve_node), through pgfailover's API and psql from the client host.
lab_status_json() { lab_curl /status -f; }
lab_node_recovery() { lab_psql "$1" -c 'SELECT pg_is_in_recovery()'; }
# shellcheck source=scripts/lib/lab-roles.sh
source "$REPO_ROOT/scripts/lib/lab-roles.sh"

new_password() {
  local password
  password=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
  [[ ${#password} -eq 24 ]] || die "cannot generate a password"
  printf '%s' "$password"
}

write_file() { # file mode (content on stdin)
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  chmod "$2" "$tmp"
  mv -f -- "$tmp" "$1"
}

wait_for() { # seconds description command...
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
    sleep 0.3
  done
}

# A node script (scripts/node/) for one node, run on the node's host.
node_script() { # script node [args...]
  local script=$1 node=$2
  shift 2
  on_host "$node" env NODE_TIMEOUT="$LAB_TIMEOUT" "${LAB_NODE_ENV[@]}" \
    bash "$NODE_SCRIPTS/$script" --dir "$(node_dir "$node")" --name "$node" "$@"
}

# The nodes' lease guards (scripts/lib/lab-guard.sh), each on its node's host.
# shellcheck source=scripts/lib/lab-guard.sh
source "$REPO_ROOT/scripts/lib/lab-guard.sh"
# Several pgfailover instances and their etcd cluster (LAB_INSTANCES > 1).
# shellcheck source=scripts/lib/lab-etcd.sh
source "$REPO_ROOT/scripts/lib/lab-etcd.sh"
# Where a single instance runs; a front end with several instances redefines it.
inst_host() { printf 'pgf\n'; }
start_node_guard() {
  [[ $LAB_LEASE_GUARD == 1 ]] || return 0
  host_exec_words "$1"
  start_guard "$1" "${HOST_EXEC[@]}"
}

# ----- setup steps ----------------------------------------------------------------------------

# Builds pgfailover. A build dir that exists keeps its own settings (tests on or off, build
# type unless LAB_BUILD_TYPE is set): the lab only configures a build dir it creates, with the
# tests off.
build_pgfailover() {
  say "building pgfailover in $LAB_BUILD_DIR (log: $LAB_DIR/build.log)"
  local -a configure=(-S "$REPO_ROOT" -B "$LAB_BUILD_DIR")
  if [[ ! -f $LAB_BUILD_DIR/CMakeCache.txt ]]; then
    configure+=(-DCMAKE_BUILD_TYPE="${LAB_BUILD_TYPE:-RelWithDebInfo}" -DBUILD_TESTING=OFF)
  elif [[ -n ${LAB_BUILD_TYPE:-} ]]; then
    configure+=(-DCMAKE_BUILD_TYPE="$LAB_BUILD_TYPE")
  fi
  if ! {
    cmake "${configure[@]}" && cmake --build "$LAB_BUILD_DIR" --target pgfailover -j "$(nproc)"
  } >"$LAB_DIR/build.log" 2>&1; then
    tail -n 40 "$LAB_DIR/build.log" >&2
    die "building pgfailover failed (whole log: $LAB_DIR/build.log)"
  fi
}

# The lab's passwords and admin token (random, 0600, kept across `up`s) and the clients'
# pgpass file. pgpass host fields match literally, not by pattern: every node's host.
make_secrets() {
  [[ -s $PASSWORD_FILE ]] || new_password | write_file "$PASSWORD_FILE" 0600
  [[ -s $REPL_PASSWORD_FILE ]] || new_password | write_file "$REPL_PASSWORD_FILE" 0600
  [[ -s $ADMIN_TOKEN_FILE ]] || new_password | write_file "$ADMIN_TOKEN_FILE" 0600
  local node
  for node in "${NODES[@]}"; do
    printf '%s:*:*:%s:%s\n' "$(node_host "$node")" "$SUPERUSER" "$(<"$PASSWORD_FILE")"
  done | sort -u | write_file "$PGPASS" 0600
}

# pg1 as the primary and pg2 as its replica, or each started as its data directory is.
start_nodes() {
  node_setup_args pg1
  if node_initialized pg1; then
    node_script start.sh pg1
  else
    node_script init-primary.sh pg1 "${NODE_ARGS[@]}" \
      --superuser "$SUPERUSER" --superuser-password-file "$PASSWORD_FILE"
  fi
  node_setup_args pg2
  if node_initialized pg2; then
    node_script start.sh pg2
  else
    node_script clone-replica.sh pg2 "${NODE_ARGS[@]}" \
      --primary-host "$(node_host pg1)" --primary-port "$(node_port pg1)"
  fi
}

wait_streaming() {
  say "waiting up to ${LAB_TIMEOUT}s for a replica to stream"
  local deadline=$((SECONDS + LAB_TIMEOUT)) node
  while ((SECONDS < deadline)); do
    for node in "${NODES[@]}"; do
      if [[ $(lab_psql "$node" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || true) =~ ^[1-9] ]]; then
        say "replication streams from $node"
        return 0
      fi
    done
    sleep 0.5
  done
  die "no replica streams after ${LAB_TIMEOUT}s; see $LAB_DIR/pg1/postgresql.log and $LAB_DIR/pg2/postgresql.log"
}

# pgfailover instance I (default 1) on its host, after check-config; $! is its own PID (`ip
# netns exec` execs it).
start_pgfailover() { # [instance]
  local i=${1:-1} pid check_output config log host who=pgfailover
  config=$(inst_config "$i")
  log=$(inst_log_file "$i")
  host=$(inst_host "$i")
  multi_instance && who="pgfailover $(inst_name "$i")"
  pid=$(daemon_pid "$i")
  if [[ -n $pid ]]; then
    say "$who already running (pid $pid)"
    return 0
  fi
  if ! check_output=$(on_host "$host" "$PGFAILOVER_BIN" check-config --config "$config" 2>&1); then
    printf '%s\n' "$check_output" >&2
    die "pgfailover check-config rejected $config"
  fi
  say "starting $who$(host_where "$host") (log: $log)"
  host_exec_words "$host"
  nohup "${HOST_EXEC[@]}" "$PGFAILOVER_BIN" run --config "$config" >>"$log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$(inst_pid_file "$i")"
  wait_for 10 "$who to start" daemon_running "$i"
}

wait_ready() { # [instance]
  local i=${1:-1} deadline=$((SECONDS + LAB_TIMEOUT)) code='' pid from='' url log
  url=$(inst_url "$i")
  log=$(inst_log_file "$i")
  [[ $LAB_TRANSPORT != netns ]] || from=" (from $(ns_name client))"
  say "waiting up to ${LAB_TIMEOUT}s for $url/readyz$from"
  pid=$(daemon_pid "$i")
  while ((SECONDS < deadline)); do
    code=$(on_host client curl -s --max-time 3 -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null || true)
    [[ $code == 200 ]] && return 0
    if ! daemon_running "$i"; then
      tail -n 30 "$log" >&2 || true
      die "pgfailover (pid $pid) exited during start; log: $log"
    fi
    sleep 0.5
  done
  printf -- '--- last lines of %s ---\n' "$log" >&2
  tail -n 30 "$log" >&2 || true
  die "pgfailover's /readyz did not answer 200 within ${LAB_TIMEOUT}s (last answer: ${code:-none}); everything still runs (pgfailover pid $pid): inspect, then '$LAB_SCRIPT down'"
}

# ----- hooks a front end may redefine ---------------------------------------------------------

lab_hook_packages() { :; }        # more packages than install-deps.sh's (not with LAB_SKIP_DEPS=1)
lab_hook_preflight() { :; }       # checks before the lab folder is made
lab_hook_status() { :; }          # more lines after pgfailover's status
lab_hook_log_file() { return 1; } # NAME -> a log file of the front end's own
lab_hook_stop_host() { :; }       # NODE: what else runs on the node's host (cmd_down)
lab_hook_down() { :; }            # after pgfailover and the nodes are stopped; 1: not everything
lab_hook_removed() { say "removed $LAB_DIR"; } # 1 when there was a lab folder
lab_hook_no_folder() { # cmd_down without a lab folder; 1: nothing more to do
  say "no lab in $LAB_DIR: nothing to do"
  return 1
}

# ----- commands -------------------------------------------------------------------------------

cmd_up() {
  lab_up_args "$@"
  if [[ ${LAB_SKIP_DEPS:-0} != 1 ]]; then
    bash "$REPO_ROOT/scripts/install-deps.sh"
    lab_hook_packages
  fi
  lab_hook_preflight

  if [[ -d $LAB_DIR && ! -f $MARKER && -n $(ls -A -- "$LAB_DIR" 2>/dev/null) ]]; then
    die "$LAB_DIR exists and is not a $LAB_KIND folder: choose another LAB_DIR"
  fi
  mkdir -p -- "$LAB_DIR"
  chmod 0755 "$LAB_DIR"
  touch "$MARKER"
  if [[ ! -f $LAB_ENV ]]; then
    local var
    {
      printf '# Written by %s up; later commands use these values.\n' "$LAB_SCRIPT"
      for var in "${LAB_ENV_VARS[@]}"; do printf '%s=%q\n' "$var" "${!var}"; done
    } >"$LAB_ENV"
  fi

  if [[ ${LAB_SKIP_BUILD:-0} != 1 ]]; then
    build_pgfailover
  fi
  [[ -x $PGFAILOVER_BIN ]] || die "$PGFAILOVER_BIN is missing: build it (cmake --build build) or set PGFAILOVER_BIN"

  lab_hook_before_nodes
  if multi_instance; then etcd_up; fi
  start_nodes
  wait_streaming
  local node i
  for node in "${NODES[@]}"; do
    start_node_guard "$node"
  done
  write_config
  write_instance_configs
  # One after the other: the first one ready is the first to campaign, so instance 1 acts.
  for i in $(instances); do
    start_pgfailover "$i"
    wait_ready "$i"
  done
  lab_hook_ready
}

# `up [--instances N]`: N pgfailover instances (1 to LAB_MAX_INSTANCES), coordinated through a
# three-member etcd cluster the lab starts when N > 1. A lab keeps the number it was made with.
lab_up_args() {
  local n=''
  while (($# > 0)); do
    case $1 in
      --instances)
        (($# >= 2)) || die "--instances takes a number"
        n=$2
        shift 2
        ;;
      --instances=*)
        n=${1#--instances=}
        shift
        ;;
      *) die "up takes only --instances N" ;;
    esac
  done
  [[ -n $n ]] || return 0
  if [[ ! $n =~ ^[1-9]$ ]] || ((n > LAB_MAX_INSTANCES)); then
    die "--instances must be a number from 1 to $LAB_MAX_INSTANCES, got '$n'"
  fi
  if [[ -f $LAB_ENV ]] && ((n != ${LAB_INSTANCES:-1})); then
    die "the lab in $LAB_DIR has ${LAB_INSTANCES:-1} instance(s): '$LAB_SCRIPT down' first to change it"
  fi
  LAB_INSTANCES=$n
}

cmd_status() {
  require_lab
  if [[ ${1:-} == --json ]]; then
    lab_curl /status -f --max-time 5 || die "pgfailover does not answer at $(api_url)"
    echo
    return
  fi
  [[ -z ${1:-} ]] || die "status takes only --json"
  local url
  url=$(api_url)
  on_host pgf "$PGFAILOVER_BIN" status --url "$url" || {
    local rc=$?
    say "pgfailover does not answer at $url"
    etcd_status_lines
    lab_hook_status
    return "$rc"
  }
  etcd_status_lines
  lab_hook_status
}

cmd_history() {
  require_lab
  on_host pgf "$PGFAILOVER_BIN" history --url "$(api_url)" "$@"
}

# A planned switchover through the admin API (pgfailover's own CLI on its host; the token comes
# from a file, never the command line).
cmd_switchover() {
  require_lab
  local -a to=()
  if [[ -n ${1:-} ]]; then to=(--to "$(resolve_node "$1")"); fi
  on_host pgf "$PGFAILOVER_BIN" switchover --url "$(api_url)" --token-file "$ADMIN_TOKEN_FILE" "${to[@]}" \
    "${LAB_SWITCHOVER_ARGS[@]}"
}

cmd_dsn() {
  require_lab
  printf 'host=%s,%s port=%s,%s dbname=postgres user=%s passfile=%s sslmode=verify-full sslrootcert=%s target_session_attrs=read-write connect_timeout=2\n' \
    "$(node_host pg1)" "$(node_host pg2)" "$(node_port pg1)" "$(node_port pg2)" "$SUPERUSER" "$PGPASS" "$LAB_CA_DIR/ca.crt"
}

cmd_kill() {
  require_lab
  case ${1:-} in
    pgfailover | pgf)
      stop_acting_instance KILL
      return
      ;;
    etcd)
      multi_instance || die "this lab has one pgfailover instance and no etcd (up --instances 2)"
      etcd_kill_all
      return
      ;;
  esac
  local node pid
  node=$(resolve_node "${1:-}")
  pid=$(postmaster_pid "$node")
  [[ -n $pid ]] || die "$node is not running"
  kill -KILL "$pid"
  local deadline=$((SECONDS + 10))
  while [[ -n $(postmaster_pid "$node") ]] && ((SECONDS < deadline)); do sleep 0.1; done
  say "killed $node's postmaster (pid $pid) with SIGKILL"
}

# Starts a node's PostgreSQL as its data directory is; with --guard, asks pgfailover first and
# starts it as a standby of the primary when it is not the primary (docker/postgres/node-guard.sh).
cmd_start() {
  require_lab
  case ${1:-} in
    pgfailover | pgf)
      start_instances
      return
      ;;
    etcd)
      multi_instance || die "this lab has one pgfailover instance and no etcd (up --instances 2)"
      etcd_up
      return
      ;;
  esac
  local node guard=0
  node=$(resolve_node "${1:-}")
  [[ ${2:-} == --guard ]] && guard=1
  [[ -z ${2:-} || $guard == 1 ]] || die "start takes NODE [--guard]"
  node_initialized "$node" || die "$node has no data directory in $LAB_DIR"
  if ((guard)); then
    local -a passfile=()
    [[ -z ${REPL_PASSFILE:-} ]] || passfile=(--passfile "$REPL_PASSFILE")
    on_host "$node" bash "$REPO_ROOT/docker/postgres/node-guard.sh" --dir "$(node_dir "$node")" \
      --name "$node" --pgfailover-url "$(api_url)" --repl-user "$REPL_USER" "${passfile[@]}" \
      --peer "pg1=$(node_host pg1):$(node_port pg1)" --peer "pg2=$(node_host pg2):$(node_port pg2)"
  fi
  node_script start.sh "$node"
}

# A clean stop of a node's PostgreSQL (`stop` in the loopback lab, `shutdown` in the namespace
# lab, where `stop` is SIGSTOP).
cmd_shutdown() {
  require_lab
  local node
  node=$(resolve_node "${1:-}")
  node_script stop.sh "$node" --mode fast
}

cmd_logs() {
  require_lab
  local what=${1:-pgfailover} file i
  case $what in
    pgfailover | pgf)
      i=$(acting_instance)
      file=$(inst_log_file "${i:-1}")
      ;;
    pgf[1-9])
      ((${what#pgf} <= ${LAB_INSTANCES:-1})) || die "no instance $what in this lab"
      file=$(inst_log_file "${what#pgf}")
      ;;
    etcd[1-3]) file=$(etcd_dir "${what#etcd}").log ;;
    guard-pg1 | guard-pg2) file=$LAB_DIR/${what#guard-}/lease-guard.log ;;
    *) file=$(lab_hook_log_file "$what") || file=$LAB_DIR/$(resolve_node "$what")/postgresql.log ;;
  esac
  [[ -f $file ]] || die "no log at $file"
  tail -n "${LAB_LOG_LINES:-50}" -- "$file"
}

# Stops everything by PID and removes the lab folder. Works after a failed or partial `up`.
cmd_down() {
  if [[ -e $LAB_DIR && ! -f $MARKER ]]; then
    die "$LAB_DIR is not a $LAB_KIND folder (no $(basename -- "$MARKER")): not touching it"
  fi
  local existed=1 pid deadline failed=0 node
  if [[ ! -e $LAB_DIR ]]; then
    existed=0
    lab_hook_no_folder || return 0
  fi
  local i
  for i in $(instances); do
    pid=$(daemon_pid "$i")
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -n $(daemon_pid "$i") ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ -n $(daemon_pid "$i") ]]; then
      say "pgfailover (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped pgfailover$(multi_instance && printf ' %s' "$(inst_name "$i")") (pid $pid)"
  done
  if multi_instance; then etcd_stop_all; fi
  for node in "${NODES[@]}"; do
    stop_guard "$node"
    if [[ -d $LAB_DIR/$node/data && (-n $(postmaster_pid "$node") || -f $LAB_DIR/$node/data/postmaster.pid) ]]; then
      # From here, not on the node's host (a namespace may be half gone). stop.sh sends SIGCONT
      # first (a SIGSTOPped server cannot shut down) and SIGKILLs by PID what pg_ctl cannot stop.
      env NODE_TIMEOUT=20 "${LAB_NODE_ENV[@]}" bash "$NODE_SCRIPTS/stop.sh" --dir "$(node_dir "$node")" \
        --name "$node" --mode fast || failed=1
    fi
    lab_hook_stop_host "$node"
  done
  lab_hook_down || failed=1
  for node in "${NODES[@]}"; do
    if [[ -n $(postmaster_pid "$node") ]]; then
      say "$node still runs (pid $(postmaster_pid "$node"))"
      failed=1
    fi
  done
  ((failed == 0)) || die "could not stop and remove everything; $LAB_DIR kept: run '$LAB_SCRIPT down' again"
  ((existed == 0)) || rm -rf -- "$LAB_DIR"
  lab_hook_removed "$existed"
}

# The commands both labs have; a front end runs its own first.
lab_command() { # command args...
  local command=$1
  shift
  case $command in
    up) cmd_up "$@" ;;
    status) cmd_status "$@" ;;
    history) cmd_history "$@" ;;
    switchover) cmd_switchover "$@" ;;
    dsn) cmd_dsn ;;
    url)
      require_lab
      api_url
      ;;
    psql)
      require_lab
      host_exec_words client
      exec "${HOST_EXEC[@]}" env PGPASSFILE="$PGPASS" psql "$(cmd_dsn)" "$@"
      ;;
    kill) cmd_kill "$@" ;;
    start) cmd_start "$@" ;;
    logs) cmd_logs "$@" ;;
    down) cmd_down ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      die "unknown command '$command'"
      ;;
  esac
}
