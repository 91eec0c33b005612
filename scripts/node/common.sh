# shellcheck shell=bash
# shellcheck disable=SC2034  # variables set here are read by the scripts that source this file
# Shared by scripts/node/*.sh: option parsing, path layout, running PostgreSQL commands as the
# right OS user, and writing the node's configuration. Sourced, never run.
#
# One node's files, for a data directory D whose parent folder N belongs to this node alone:
#   N/data (= D)               PGDATA; its postgresql.conf ends with include '../pgfailover-node.conf'
#   N/pgfailover-node.conf     this node's own settings: port, addresses, socket dir, replication
#   N/pg_hba.conf              this node's client authentication (hba_file points here)
#   N/run/                     unix socket directory (mode 0700)
#   N/postgresql.log           server log (pg_ctl -l)
#   N/replication.pgpass       "*:*:*:<repl_user>:<password>", the passfile named in primary_conninfo
#   N/tls/                     (mode 0700) server.crt + server.key (this node's certificate, its
#                              addresses in subjectAltName) and ca.crt (the CA that signed every
#                              node's: ssl_ca_file, and sslrootcert of primary_conninfo)
# The CA's own key stays in NODE_CA_DIR (ca.key, mode 0600, owned by whoever runs the scripts),
# never in N or the data directory: the server's OS user cannot issue certificates.
# Node-specific settings live outside the data directory because pg_basebackup and pg_rewind
# copy postgresql.conf and pg_hba.conf from one node to the other: a setting kept there would
# carry one node's port to the other. The include path is relative, so it resolves to each
# node's own N.
#
# Every option is an environment variable, and a flag overrides it:
#   NODE_DIR                     --dir DIR                 the node's folder N (default: parent of the data dir)
#   NODE_DATA_DIR                --data-dir DIR            PGDATA (default: N/data)
#   NODE_NAME                    --name NAME               cluster_name and application_name (default: basename of N)
#   NODE_PORT                    --port PORT               (default 5432)
#   NODE_LISTEN                  --listen ADDRS            listen_addresses (default 127.0.0.1)
#   NODE_ALLOW_CIDR              --allow-cidr CIDR[,CIDR]  who may connect over TCP (default 127.0.0.1/32; flag repeatable)
#   NODE_SUPERUSER               --superuser NAME          pgfailover's superuser (default pgfailover)
#   NODE_SUPERUSER_PASSWORD_FILE --superuser-password-file FILE
#   NODE_REPL_USER               --repl-user NAME          replication role (default replicator)
#   NODE_REPL_PASSWORD_FILE      --repl-password-file FILE
#   NODE_RUN_AS                  --run-as USER             OS user of the server (default: postgres as root, else yourself)
#   NODE_RUN_DIR                 --run-dir DIR             socket directory (default N/run)
#   NODE_LOG_FILE                --log-file FILE           server log (default N/postgresql.log)
#   NODE_PASSFILE                --passfile FILE           replication passfile (default N/replication.pgpass)
#   NODE_PRIMARY_HOST            --primary-host HOST       clone-replica: where the primary is
#   NODE_PRIMARY_PORT            --primary-port PORT       clone-replica: its port (default 5432)
#   NODE_TLS                     --tls on|off              TLS on PostgreSQL, hostssl in pg_hba (default on)
#   NODE_CA_DIR                  --ca-dir DIR              the nodes' CA: ca.crt, ca.key; made when absent (default: N/../ca)
#   NODE_TLS_HOSTS               --tls-host NAME|IP        subjectAltName of the server certificate besides the
#                                                          listen addresses (flag repeatable; env: comma-separated)
#   NODE_SUPERUSER_CLIENTCERT=1  --superuser-clientcert    the superuser logs in over TCP only with a client certificate
#                                                          from the CA (CN = its name) besides its password; the
#                                                          server's OS user never over TCP (needs NODE_TLS=on)
#   NODE_SETTINGS                --set NAME=VALUE          extra postgresql.conf lines (env: one per line; flag repeatable)
#   NODE_NO_SYNC=1               --no-sync                 initdb/pg_basebackup --no-sync (tests only)
#   NODE_NO_START=1              --no-start                set up but leave the server stopped
#   NODE_FORCE=1                 --force                   clone-replica: wipe a data dir that is not a standby
#   NODE_TIMEOUT                 --timeout SECONDS         deadline for start, stop, streaming (default 60)
#   NODE_STOP_MODE               --mode smart|fast|immediate  stop.sh (default fast)
#   PG_BIN                       --pg-bin DIR              (default: scripts/pg-bin.sh, PostgreSQL 15's)
# Passwords are only ever read from files, never taken on a command line.

NODE_SCRIPT=${NODE_SCRIPT:-$(basename "$0")}
PG_BIN=${PG_BIN:-$(bash "$(dirname -- "${BASH_SOURCE[0]}")/../pg-bin.sh" 2>/dev/null || echo /usr/lib/postgresql/15/bin)}

node_say() { printf '%s: %s\n' "$NODE_SCRIPT" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$NODE_SCRIPT" "$*" >&2
  exit 1
}

node_options_help() {
  # Prints the option list from the comment block at the top of this file.
  sed -n '/^# Every option is/,/^# Passwords are/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

node_parse_args() {
  local flag value
  local -a cidrs=() settings=() tls_hosts=()
  while (($# > 0)); do
    flag=$1
    value=
    case $flag in
      --*=*)
        value=${flag#*=}
        flag=${flag%%=*}
        ;;
      --no-sync | --no-start | --force | --superuser-clientcert | -h | --help) ;;
      --*)
        (($# >= 2)) || die "option $flag needs a value"
        value=$2
        shift
        ;;
      *) die "unexpected argument '$flag' (see --help)" ;;
    esac
    shift
    case $flag in
      --dir) NODE_DIR=$value ;;
      --data-dir) NODE_DATA_DIR=$value ;;
      --name) NODE_NAME=$value ;;
      --port) NODE_PORT=$value ;;
      --listen) NODE_LISTEN=$value ;;
      --allow-cidr) cidrs+=("$value") ;;
      --superuser) NODE_SUPERUSER=$value ;;
      --superuser-password-file) NODE_SUPERUSER_PASSWORD_FILE=$value ;;
      --repl-user) NODE_REPL_USER=$value ;;
      --repl-password-file) NODE_REPL_PASSWORD_FILE=$value ;;
      --run-as) NODE_RUN_AS=$value ;;
      --run-dir) NODE_RUN_DIR=$value ;;
      --log-file) NODE_LOG_FILE=$value ;;
      --passfile) NODE_PASSFILE=$value ;;
      --primary-host) NODE_PRIMARY_HOST=$value ;;
      --primary-port) NODE_PRIMARY_PORT=$value ;;
      --set) settings+=("$value") ;;
      --tls) NODE_TLS=$value ;;
      --ca-dir) NODE_CA_DIR=$value ;;
      --tls-host) tls_hosts+=("$value") ;;
      --no-sync) NODE_NO_SYNC=1 ;;
      --no-start) NODE_NO_START=1 ;;
      --force) NODE_FORCE=1 ;;
      --superuser-clientcert) NODE_SUPERUSER_CLIENTCERT=1 ;;
      --timeout) NODE_TIMEOUT=$value ;;
      --mode) NODE_STOP_MODE=$value ;;
      --pg-bin) PG_BIN=$value ;;
      -h | --help)
        node_usage
        printf '\nOptions (environment variable / flag):\n'
        node_options_help
        exit 0
        ;;
      *) die "unknown option $flag (see --help)" ;;
    esac
  done
  if ((${#cidrs[@]} > 0)); then
    NODE_ALLOW_CIDR=$(
      IFS=,
      echo "${cidrs[*]}"
    )
  fi
  if ((${#tls_hosts[@]} > 0)); then
    NODE_TLS_HOSTS=$(
      IFS=,
      echo "${tls_hosts[*]}"
    )
  fi
  if ((${#settings[@]} > 0)); then
    NODE_SETTINGS=$(printf '%s\n' "${NODE_SETTINGS:-}" "${settings[@]}")
  fi
}

# Fills in defaults, makes paths absolute and checks what every script needs.
node_resolve() {
  if [[ -z ${NODE_DATA_DIR:-} && -z ${NODE_DIR:-} ]]; then
    die "no data directory given: set NODE_DIR or NODE_DATA_DIR (or pass --dir / --data-dir)"
  fi
  if [[ -n ${NODE_DATA_DIR:-} ]]; then
    NODE_DATA_DIR=$(realpath -m -- "$NODE_DATA_DIR")
    local parent
    parent=$(dirname -- "$NODE_DATA_DIR")
    if [[ -n ${NODE_DIR:-} && $(realpath -m -- "$NODE_DIR") != "$parent" ]]; then
      die "NODE_DIR ($NODE_DIR) must be the parent of NODE_DATA_DIR ($NODE_DATA_DIR): the node's own settings are found at ../pgfailover-node.conf from the data directory"
    fi
    NODE_DIR=$parent
  else
    NODE_DIR=$(realpath -m -- "$NODE_DIR")
    NODE_DATA_DIR=$NODE_DIR/data
  fi
  [[ $NODE_DIR != / ]] || die "the data directory needs a parent folder of its own, not /"
  NODE_CONF=$NODE_DIR/pgfailover-node.conf
  NODE_HBA=$NODE_DIR/pg_hba.conf
  # start.sh, stop.sh and re-runs find the port and name the node was set up with.
  if [[ -f $NODE_CONF ]]; then
    [[ -n ${NODE_PORT:-} ]] || NODE_PORT=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$NODE_CONF")
    [[ -n ${NODE_NAME:-} ]] || NODE_NAME=$(sed -n "s/^cluster_name = '\(.*\)'$/\1/p" "$NODE_CONF")
  fi
  NODE_NAME=${NODE_NAME:-$(basename -- "$NODE_DIR")}
  NODE_PORT=${NODE_PORT:-5432}
  NODE_LISTEN=${NODE_LISTEN:-127.0.0.1}
  NODE_ALLOW_CIDR=${NODE_ALLOW_CIDR:-127.0.0.1/32}
  NODE_SUPERUSER=${NODE_SUPERUSER:-pgfailover}
  NODE_REPL_USER=${NODE_REPL_USER:-replicator}
  NODE_RUN_DIR=$(realpath -m -- "${NODE_RUN_DIR:-$NODE_DIR/run}")
  NODE_LOG_FILE=$(realpath -m -- "${NODE_LOG_FILE:-$NODE_DIR/postgresql.log}")
  NODE_PASSFILE=$(realpath -m -- "${NODE_PASSFILE:-$NODE_DIR/replication.pgpass}")
  NODE_PRIMARY_PORT=${NODE_PRIMARY_PORT:-5432}
  NODE_TIMEOUT=${NODE_TIMEOUT:-60}
  NODE_STOP_MODE=${NODE_STOP_MODE:-fast}
  NODE_TLS=${NODE_TLS:-on}
  [[ $NODE_TLS == on || $NODE_TLS == off ]] || die "NODE_TLS must be on or off, got '$NODE_TLS'"
  NODE_CA_DIR=$(realpath -m -- "${NODE_CA_DIR:-$(dirname -- "$NODE_DIR")/ca}")
  NODE_TLS_DIR=$NODE_DIR/tls
  if [[ ${NODE_SUPERUSER_CLIENTCERT:-} == 1 && $NODE_TLS != on ]]; then
    die "NODE_SUPERUSER_CLIENTCERT=1 needs NODE_TLS=on: client certificates come with TLS"
  fi

  node_check_cidrs
  node_check_port "$NODE_PORT" NODE_PORT
  node_check_port "$NODE_PRIMARY_PORT" NODE_PRIMARY_PORT
  [[ $NODE_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "NODE_TIMEOUT must be a whole number of seconds, got '$NODE_TIMEOUT'"
  [[ $NODE_NAME =~ ^[A-Za-z0-9_.-]+$ ]] || die "NODE_NAME may hold letters, digits, '_', '.' and '-' only, got '$NODE_NAME'"
  # A unix socket path is limited to 107 bytes.
  local socket=$NODE_RUN_DIR/.s.PGSQL.$NODE_PORT
  ((${#socket} <= 107)) || die "socket path $socket is longer than 107 bytes: choose a shorter NODE_RUN_DIR"

  [[ -x $PG_BIN/postgres ]] || die "PostgreSQL not found in $PG_BIN (install postgresql-15, e.g. scripts/install-deps.sh, or set PG_BIN)"

  if ((EUID == 0)); then
    NODE_RUN_AS=${NODE_RUN_AS:-postgres}
    [[ $NODE_RUN_AS != root ]] || die "PostgreSQL refuses to run as root: set NODE_RUN_AS to another OS user"
    getent passwd "$NODE_RUN_AS" >/dev/null || die "OS user '$NODE_RUN_AS' (NODE_RUN_AS) does not exist"
    command -v runuser >/dev/null || die "runuser not found (package util-linux)"
  else
    local me
    me=$(id -un)
    NODE_RUN_AS=${NODE_RUN_AS:-$me}
    [[ $NODE_RUN_AS == "$me" ]] || die "running as '$me', so PostgreSQL cannot run as '$NODE_RUN_AS': run as root or as '$NODE_RUN_AS'"
  fi
  NODE_RUN_GROUP=$(id -gn "$NODE_RUN_AS")
  # PostgreSQL commands must not inherit a working directory their user cannot enter.
  cd /
}

node_check_port() {
  if [[ ! $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then
    die "$2 must be a TCP port 1..65535, got '$1'"
  fi
}

# Runs a command as the server's OS user.
as_node_user() {
  if ((EUID == 0)); then
    runuser -u "$NODE_RUN_AS" -- "$@"
  else
    "$@"
  fi
}

# Creates (or fixes) a directory owned by the server's OS user with the given mode.
node_mkdir() {
  local dir=$1 mode=$2
  if ((EUID == 0)); then
    install -d -m "$mode" -o "$NODE_RUN_AS" -g "$NODE_RUN_GROUP" -- "$dir" || die "cannot create $dir"
  else
    install -d -m "$mode" -- "$dir" || die "cannot create $dir"
  fi
  node_check_reachable "$dir"
}

# Fails with the first folder on the way to $1 that the server's OS user cannot enter.
node_check_reachable() {
  local target=$1 path=
  as_node_user test -x "$target" && return 0
  local IFS=/
  local part
  for part in $target; do
    [[ -n $part ]] || continue
    path=$path/$part
    as_node_user test -x "$path" ||
      die "OS user '$NODE_RUN_AS' cannot enter $path (on the way to $target): give it search permission (chmod o+x or a+x) or choose another folder"
  done
}

# Writes stdin to $1 atomically, owned by the server's OS user, with mode $2.
node_write_file() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp "$file.XXXXXX") || die "cannot write to $(dirname -- "$file")"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if ((EUID == 0)); then chown "$NODE_RUN_AS:$NODE_RUN_GROUP" "$tmp"; fi
  mv -f -- "$tmp" "$file"
}

# Prints the contents of a password file (without the trailing newline), or fails naming it.
node_read_password() {
  local file=$1 what=$2 password
  [[ -n $file ]] || die "no $what password file given"
  [[ -f $file ]] || die "$what password file $file does not exist"
  [[ -r $file ]] || die "$what password file $file is not readable"
  password=$(<"$file")
  password=${password%$'\r'}
  [[ -n $password ]] || die "$what password file $file is empty"
  [[ $password != *$'\n'* ]] || die "$what password file $file holds more than one line"
  printf '%s' "$password"
}

sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }
pgpass_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//:/\\:}"
}

node_is_initialized() { [[ -f $NODE_DATA_DIR/PG_VERSION ]]; }
node_is_standby() { [[ -f $NODE_DATA_DIR/standby.signal ]]; }

node_pg_ctl() { as_node_user "$PG_BIN/pg_ctl" -D "$NODE_DATA_DIR" "$@"; }

# 0 when a postmaster serves the data directory.
node_is_running() { [[ -n $(node_postmaster_pid) ]]; }

# The PID in postmaster.pid, whatever its state, or nothing.
node_pidfile_pid() {
  local pid=
  if [[ -f $NODE_DATA_DIR/postmaster.pid ]]; then
    read -r pid <"$NODE_DATA_DIR/postmaster.pid" || true
  fi
  [[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

# The state letter of a process (R, S, T, Z...) from /proc, or nothing when it is gone.
node_process_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

# The postmaster's PID from postmaster.pid when that process lives (a killed postmaster stays a
# zombie until its parent, usually PID 1, reaps it: that does not count), or nothing.
node_postmaster_pid() {
  local pid state cwd data
  pid=$(node_pidfile_pid)
  [[ -n $pid ]] || return 0
  state=$(node_process_state "$pid")
  [[ -n $state && $state != Z && $state != X ]] || return 0
  # A PID from a stale postmaster.pid may belong to another process by now: a postmaster works
  # in its data directory, anything else is not this node's server (and is never signalled).
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
  data=$(realpath -e -- "$NODE_DATA_DIR" 2>/dev/null) || data=
  [[ -n $cwd && $cwd == "$data" ]] || return 0
  printf '%s\n' "$pid"
}

# PIDs of processes still working in the data directory (backends of a killed postmaster).
node_leftover_pids() {
  local pattern
  # find -lname takes a glob: escape its special characters.
  pattern=$(printf '%s' "$NODE_DATA_DIR" | sed 's/[][*?\\]/\\&/g')
  find /proc/[0-9]*/cwd -maxdepth 0 -lname "$pattern" 2>/dev/null | sed 's|^/proc/\([0-9]*\)/cwd$|\1|'
  return 0
}

# psql as the server's OS user over the unix socket (trust); extra arguments follow.
node_psql() {
  as_node_user "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$NODE_RUN_DIR" -p "$NODE_PORT" \
    -U "$NODE_RUN_AS" -d postgres "$@"
}

node_tail_log() {
  if [[ -f $NODE_LOG_FILE ]]; then
    printf -- '--- last lines of %s ---\n' "$NODE_LOG_FILE" >&2
    tail -n 30 -- "$NODE_LOG_FILE" >&2 || true
  fi
}

# Writes N/pgfailover-node.conf, N/pg_hba.conf, N/run and the include line in postgresql.conf.
node_write_config() {
  if [[ -f $NODE_CONF ]] && ! grep -qxF "# data_directory: $NODE_DATA_DIR" "$NODE_CONF"; then
    die "$NODE_CONF belongs to another data directory: every node needs a folder of its own ($NODE_DIR)"
  fi
  node_mkdir "$NODE_RUN_DIR" 0700
  local listen=${NODE_LISTEN//\'/\'\'}
  {
    printf '# Written by scripts/node/%s for node %s; rewritten on every run.\n' "$NODE_SCRIPT" "$NODE_NAME"
    printf '# Settings of this node alone, outside the data directory so that pg_basebackup and\n'
    printf '# pg_rewind, which copy the data directory between nodes, cannot carry them over.\n'
    printf '# data_directory: %s\n' "$NODE_DATA_DIR"
    printf "cluster_name = '%s'\n" "$NODE_NAME"
    printf "listen_addresses = '%s'\n" "$listen"
    printf 'port = %s\n' "$NODE_PORT"
    printf "unix_socket_directories = '%s'\n" "$NODE_RUN_DIR"
    printf 'unix_socket_permissions = 0700\n'
    printf "hba_file = '%s'\n" "$NODE_HBA"
    printf "password_encryption = 'scram-sha-256'\n"
    printf '# Streaming replication, as in the seed, plus what pg_rewind and fast detection need.\n'
    printf 'wal_level = replica\n'
    printf 'max_wal_senders = 10\n'
    printf 'max_replication_slots = 10\n'
    printf 'wal_keep_size = 256MB\n'
    printf 'hot_standby = on\n'
    printf 'wal_log_hints = on\n'
    printf 'wal_sender_timeout = 5s\n'
    printf 'wal_receiver_timeout = 5s\n'
    printf 'wal_receiver_status_interval = 1s\n'
    printf 'wal_retrieve_retry_interval = 1s\n'
    printf '# A start after a crash (a rejoin that follows the new timeline, a restarted standby, the\n'
    printf '# start after pg_rewind) first flushes the whole data directory: one syncfs per file\n'
    printf '# system instead of an fsync per file, seconds less at a few GB (docs/lifecycle.md).\n'
    printf 'recovery_init_sync_method = syncfs\n'
    printf 'logging_collector = off\n'
    if [[ $NODE_TLS == on ]]; then
      printf '# TLS with a certificate from the nodes'"'"' CA (NODE_CA_DIR); clients verify it with\n'
      printf '# sslmode=verify-full and that CA as sslrootcert.\n'
      printf 'ssl = on\n'
      printf "ssl_cert_file = '%s'\n" "$NODE_TLS_DIR/server.crt"
      printf "ssl_key_file = '%s'\n" "$NODE_TLS_DIR/server.key"
      printf "ssl_ca_file = '%s'\n" "$NODE_TLS_DIR/ca.crt"
      printf "ssl_min_protocol_version = 'TLSv1.2'\n"
    fi
    printf "log_line_prefix = '%%m [%%p] %%q%%u@%%d '\n"
    if [[ -n ${NODE_SETTINGS:-} ]]; then
      printf '# From NODE_SETTINGS / --set:\n'
      local line
      while IFS= read -r line; do
        [[ -n $line ]] && printf '%s\n' "$line"
      done <<<"$NODE_SETTINGS"
    fi
  } | node_write_file "$NODE_CONF" 0600

  node_check_cidrs
  node_hba_lines | node_write_file "$NODE_HBA" 0600

  local pgconf=$NODE_DATA_DIR/postgresql.conf
  local include="include = '../pgfailover-node.conf'"
  [[ -f $pgconf ]] || die "$pgconf is missing: $NODE_DATA_DIR is not a PostgreSQL data directory"
  if ! grep -qxF "$include" "$pgconf"; then
    {
      printf '\n# This node'"'"'s own settings (port, addresses, replication), kept next to the data\n'
      printf '# directory by scripts/node/; see that file.\n'
      printf '%s\n' "$include"
    } | as_node_user tee -a "$pgconf" >/dev/null
  fi
}

# This node's pg_hba.conf, on stdout.
node_hba_lines() {
  local cidr
  local -a cidrs=()
  IFS=', ' read -r -a cidrs <<<"$NODE_ALLOW_CIDR"
  # With TLS on, a password only ever crosses the network encrypted: TCP connections without TLS
  # match no line and are refused.
  local tcp=host
  [[ $NODE_TLS == off ]] || tcp=hostssl
  printf '# Written by scripts/node/%s for node %s; rewritten on every run.\n' "$NODE_SCRIPT" "$NODE_NAME"
  printf '# TYPE  DATABASE     USER  ADDRESS  METHOD\n'
  printf '# The server'"'"'s OS user over the unix socket (whose folder only it can enter).\n'
  printf 'local   all          %s  trust\n' "$(node_hba_word "$NODE_RUN_AS")"
  for cidr in "${cidrs[@]}"; do
    printf '%-7s replication  %s  %s  scram-sha-256\n' "$tcp" "$(node_hba_word "$NODE_REPL_USER")" "$cidr"
    if [[ ${NODE_SUPERUSER_CLIENTCERT:-} == 1 ]]; then
      # A superuser password alone opens nothing from the network: the client must also hold
      # a certificate from the nodes' CA naming the role (CN).
      if [[ $NODE_RUN_AS != "$NODE_SUPERUSER" ]]; then
        printf '%-7s all          %s  %s  reject\n' host "$(node_hba_word "$NODE_RUN_AS")" "$cidr"
      fi
      printf '%-7s all          %s  %s  scram-sha-256 clientcert=verify-full\n' "$tcp" "$(node_hba_word "$NODE_SUPERUSER")" "$cidr"
    fi
    printf '%-7s all          all  %s  scram-sha-256\n' "$tcp" "$cidr"
  done
}

node_check_cidrs() {
  local cidr
  local -a cidrs=()
  IFS=', ' read -r -a cidrs <<<"$NODE_ALLOW_CIDR"
  for cidr in "${cidrs[@]}"; do
    [[ $cidr =~ ^[0-9A-Fa-f.:]+/[0-9]+$ ]] || die "NODE_ALLOW_CIDR: '$cidr' is not an address/prefix (e.g. 10.0.0.0/24)"
  done
  ((${#cidrs[@]} > 0)) || die "NODE_ALLOW_CIDR is empty: nobody could connect over TCP"
}

node_hba_word() {
  if [[ $1 =~ ^[A-Za-z0-9_]+$ ]]; then printf '%s' "$1"; else printf '"%s"' "${1//\"/\"\"}"; fi
}

# The subjectAltName of this node's certificate: its listen addresses (not the wildcards) and
# NODE_TLS_HOSTS, as "IP:a,DNS:b" (sorted, no duplicates); dies when it would be empty.
node_tls_san() {
  local entry
  local -a entries=() out=()
  IFS=', ' read -r -a entries <<<"$NODE_LISTEN,${NODE_TLS_HOSTS:-}"
  for entry in "${entries[@]}"; do
    case $entry in
      '' | '*' | 0.0.0.0 | '::') continue ;;
    esac
    if [[ $entry =~ ^[0-9.]+$ || $entry == *:* ]]; then
      out+=("IP:$entry")
    elif [[ $entry =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
      out+=("DNS:$entry")
    else
      die "NODE_TLS_HOSTS: '$entry' is neither an IP address nor a host name"
    fi
  done
  ((${#out[@]} > 0)) || die "the server certificate would name no address (NODE_LISTEN is '$NODE_LISTEN'): give the names and addresses clients use with NODE_TLS_HOSTS (--tls-host)"
  printf '%s\n' "${out[@]}" | sort -u | paste -sd, -
}

# The nodes' CA in NODE_CA_DIR, made once (ca.key 0600 stays there), and this node's key and
# certificate in N/tls, issued again when missing, when the address list changed, when another CA
# signed it, or within 30 days of its end. Runs as the invoking user (who owns the CA key); the
# files in N/tls belong to the server's OS user.
node_setup_tls() {
  [[ $NODE_TLS == on ]] || return 0
  command -v openssl >/dev/null || die "openssl not found (package openssl): needed for the nodes' TLS certificates (or set NODE_TLS=off)"
  local san lock_fd
  san=$(node_tls_san)
  install -d -m 0755 -- "$NODE_CA_DIR" || die "cannot create the CA folder $NODE_CA_DIR"
  exec {lock_fd}>"$NODE_CA_DIR/.lock"
  flock "$lock_fd"
  if [[ ! -f $NODE_CA_DIR/ca.crt || ! -f $NODE_CA_DIR/ca.key ]]; then
    [[ ! -f $NODE_CA_DIR/ca.crt && ! -f $NODE_CA_DIR/ca.key ]] ||
      die "$NODE_CA_DIR holds only one of ca.crt and ca.key: restore the other, or empty the folder to make a new CA"
    node_say "making the nodes' CA in $NODE_CA_DIR (ca.key stays there, mode 0600)"
    (
      umask 077
      openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$NODE_CA_DIR/ca.key.tmp" -out "$NODE_CA_DIR/ca.crt.tmp" -days 3650 \
        -subj "/CN=pgfailover nodes CA $(date -u +%Y%m%d%H%M%S)" \
        -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
        2>/dev/null
    ) || die "openssl could not make the CA in $NODE_CA_DIR"
    chmod 0644 "$NODE_CA_DIR/ca.crt.tmp"
    mv -f -- "$NODE_CA_DIR/ca.key.tmp" "$NODE_CA_DIR/ca.key"
    mv -f -- "$NODE_CA_DIR/ca.crt.tmp" "$NODE_CA_DIR/ca.crt"
  fi
  chmod 0600 "$NODE_CA_DIR/ca.key"
  node_mkdir "$NODE_TLS_DIR" 0700
  local crt=$NODE_TLS_DIR/server.crt key=$NODE_TLS_DIR/server.key
  local issue=0
  if [[ ! -f $crt || ! -f $key || $(cat "$NODE_TLS_DIR/san" 2>/dev/null) != "$san" ]]; then
    issue=1
  elif ! openssl verify -CAfile "$NODE_CA_DIR/ca.crt" "$crt" >/dev/null 2>&1 ||
    ! openssl x509 -in "$crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
    issue=1
  fi
  if ((issue)); then
    node_say "issuing node $NODE_NAME's server certificate for $san"
    local work
    work=$(mktemp -d) || die "cannot make a temporary folder"
    if ! (
      umask 077
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=$NODE_NAME" 2>/dev/null &&
        printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$san" >"$work/ext" &&
        openssl x509 -req -in "$work/server.csr" -CA "$NODE_CA_DIR/ca.crt" -CAkey "$NODE_CA_DIR/ca.key" \
          -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$work/ext" -out "$work/server.crt" 2>/dev/null
    ); then
      rm -rf -- "$work"
      die "openssl could not issue node $NODE_NAME's certificate"
    fi
    node_write_file "$key" 0600 <"$work/server.key"
    node_write_file "$crt" 0644 <"$work/server.crt"
    printf '%s' "$san" | node_write_file "$NODE_TLS_DIR/san" 0644
    rm -rf -- "$work"
  fi
  node_write_file "$NODE_TLS_DIR/ca.crt" 0644 <"$NODE_CA_DIR/ca.crt"
  exec {lock_fd}>&-
}

# Writes the replication passfile (owned by the server's user, 0600).
node_write_passfile() {
  local password
  password=$(node_read_password "${NODE_REPL_PASSWORD_FILE:-}" "replication (NODE_REPL_PASSWORD_FILE)")
  printf '*:*:*:%s:%s\n' "$(pgpass_escape "$NODE_REPL_USER")" "$(pgpass_escape "$password")" |
    node_write_file "$NODE_PASSFILE" 0600
}

# Starts the server unless it runs; waits for it with pg_ctl -w under NODE_TIMEOUT.
# pgfailover's rejoin works on the data directory under this name (src/lifecycle/rejoin.h);
# while it exists the directory is out of service and must not be started.
node_rejoin_dir() { printf '%s\n' "$NODE_DATA_DIR.pgfailover-rejoin"; }

node_refuse_during_rejoin() {
  local rejoin_dir
  rejoin_dir=$(node_rejoin_dir)
  if [[ -e $rejoin_dir && ! -e $NODE_DATA_DIR ]]; then
    die "pgfailover is rejoining node $NODE_NAME: its data directory is at $rejoin_dir until the rejoin ends, and pgfailover starts the server itself. If no rejoin runs any more (pgfailover was stopped mid-way), put it back with: mv '$rejoin_dir' '$NODE_DATA_DIR' (keep standby.signal in it)"
  fi
  return 0
}

node_start() {
  node_refuse_during_rejoin
  if node_is_running; then
    node_say "node $NODE_NAME already running (pid $(node_postmaster_pid)) on port $NODE_PORT"
    return 0
  fi
  # Backends of a killed postmaster keep the shared memory busy for a moment, and the killed
  # postmaster itself holds the lock file until it is reaped.
  local waited=0 leftovers old_pid
  old_pid=$(node_pidfile_pid)
  while true; do
    leftovers=$(node_leftover_pids)
    if [[ -n $old_pid && -d /proc/$old_pid ]]; then
      leftovers+=" $old_pid($(node_process_state "$old_pid"))"
    fi
    [[ -n ${leftovers// /} ]] || break
    if ((waited >= NODE_TIMEOUT * 10)); then
      die "processes of a previous server remain for $NODE_DATA_DIR (pids: $(echo "$leftovers" | tr '\n' ' ')): they must end (or be reaped, state Z) first"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if [[ ! -e $NODE_LOG_FILE ]]; then
    : | node_write_file "$NODE_LOG_FILE" 0640
  fi
  node_say "starting node $NODE_NAME on port $NODE_PORT (log: $NODE_LOG_FILE)"
  if ! node_pg_ctl -l "$NODE_LOG_FILE" -w -t "$NODE_TIMEOUT" start >/dev/null; then
    node_tail_log
    die "node $NODE_NAME did not start within ${NODE_TIMEOUT}s (data directory $NODE_DATA_DIR)"
  fi
}
