#!/usr/bin/env bash
# Entry point of the PostgreSQL node image (docker/postgres/Dockerfile), run by tini as root.
#
#   entrypoint.sh node       (default) sshd + PostgreSQL for node NODE_NAME, then stay up
#   entrypoint.sh lab-init   the compose lab's one-shot: secrets, keys, pgfailover's config
#   entrypoint.sh health     HEALTHCHECK: the server answers on its socket
#
# First start (empty data directory): NODE_ROLE=primary runs scripts/node/init-primary.sh;
# NODE_ROLE=replica waits for the primary and runs scripts/node/clone-replica.sh. Yet NODE_ROLE
# only counts when nothing else says better: if pgfailover already names another node as the
# primary, this node clones from that one whatever NODE_ROLE says.
# Every later start (a data directory exists): the node does not decide its own role. The guard
# (node-guard.sh) asks pgfailover's /status, then the peers, who the primary is, and starts this
# node as a standby of it when that is another node. PostgreSQL then runs as "postgres" under
# pg_ctl; this script stays as the container's main process so that pgfailover can stop, rewind
# and start the server over ssh without the container going away.
#
# Environment:
#   NODE_NAME         this node's name in pgfailover's configuration (pg1)
#   NODE_ROLE         primary | replica: the role at the very first start only
#   PRIMARY_HOST      replica's first start: the primary's address (PRIMARY_PORT, 5432)
#   PEERS             "pg1=10.0.0.11:5432 pg2=10.0.0.12:5432": the nodes, for the guard
#   PGFAILOVER_URL    https://10.0.0.10:8008 (or http://)
#   PGFAILOVER_CA_FILE  the CA that signed pgfailover's HTTPS certificate (/lab/ca/ca.crt)
#   ALLOW_CIDR        who may connect over TCP (pg_hba.conf), e.g. 10.232.77.0/24
#   SECRETS_DIR       folder with superuser.password, replication.password, authorized_keys and
#                     NODE_NAME/ssh_host_ed25519_key (the lab's init writes them; default /lab/nodes)
#   NODE_SUPERUSER    pgfailover's superuser (pgfailover); NODE_REPL_USER (replicator)
#   GUARD_WAIT        seconds the guard waits for pgfailover (10); READY_WAIT for SECRETS_DIR (300)
#   REPLICATION_SLOT  1 (default): a replica streams from the slot pgfailover keeps for it
#                     (pgfailover_<node>): created on the primary before the clone, named in
#                     primary_slot_name; 0 for pgfailover's replication.slots = false
#   LEASE_GUARD       1 (default): run `pgfailover lease-guard` beside the server, which makes
#                     a primary read-only once it hears from neither pgfailover nor its replica;
#                     GUARD_DBNAME (postgres) and GUARD_TABLE (pgfailover.heartbeat) must match
#                     pgfailover's nodes[].dbname and probe.heartbeat_table
set -euo pipefail

say() { printf 'entrypoint[%s]: %s\n' "${NODE_NAME:-?}" "$*" >&2; }
die() {
  printf 'entrypoint[%s]: error: %s\n' "${NODE_NAME:-?}" "$*" >&2
  exit 1
}

PG_MAJOR=$(cat /etc/pgfailover-node/pg_major)
export PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
export PATH=$PG_BIN:$PATH
NODE_SCRIPTS=/opt/pgfailover/node
NODE_HOME=/var/lib/pgfailover-node # the node folder of scripts/node/: data/ inside
SECRETS_DIR=${SECRETS_DIR:-/lab/nodes}
SSHD_DIR=/etc/ssh/pgfailover
export NODE_SUPERUSER=${NODE_SUPERUSER:-pgfailover}
export NODE_REPL_USER=${NODE_REPL_USER:-replicator}
export NODE_TIMEOUT=${NODE_TIMEOUT:-120}

case ${1:-node} in
  lab-init) exec /usr/local/bin/lab-init.sh ;;
  health)
    NODE_NAME=${NODE_NAME:-node}
    exec runuser -u postgres -- "$PG_BIN/pg_isready" -q -h "$NODE_HOME/run" -p 5432 -t 3
    ;;
  node) ;;
  *) exec "$@" ;;
esac

[[ ${NODE_NAME:-} =~ ^[A-Za-z0-9_.-]+$ ]] || die "NODE_NAME must be set (letters, digits, _ . -)"
NODE_ROLE=${NODE_ROLE:-replica}
[[ $NODE_ROLE == primary || $NODE_ROLE == replica ]] || die "NODE_ROLE must be primary or replica"
ALLOW_CIDR=${ALLOW_CIDR:?set ALLOW_CIDR to the network the nodes and pgfailover are on}

# ----- secrets ----------------------------------------------------------------------------------
deadline=$((SECONDS + ${READY_WAIT:-300}))
until [[ -f $SECRETS_DIR/../ready || -f $SECRETS_DIR/ready ]]; do
  ((SECONDS < deadline)) || die "no secrets in $SECRETS_DIR after ${READY_WAIT:-300}s (did the init service run?)"
  sleep 1
done
for f in superuser.password replication.password authorized_keys "$NODE_NAME/ssh_host_ed25519_key"; do
  [[ -f $SECRETS_DIR/$f ]] || die "$SECRETS_DIR/$f is missing"
done
# Local copies: owned by who reads them, whatever the volume's owners are.
install -d -m 0700 /run/pgfailover-node
install -m 0600 "$SECRETS_DIR/superuser.password" /run/pgfailover-node/superuser.password
install -m 0600 "$SECRETS_DIR/replication.password" /run/pgfailover-node/replication.password
export NODE_SUPERUSER_PASSWORD_FILE=/run/pgfailover-node/superuser.password
export NODE_REPL_PASSWORD_FILE=/run/pgfailover-node/replication.password
# The nodes' CA (lab-init's): the node scripts issue this node's certificate with it. A writable
# copy, since they lock the folder while issuing.
[[ -f $SECRETS_DIR/ca/ca.crt && -f $SECRETS_DIR/ca/ca.key ]] ||
  die "$SECRETS_DIR/ca holds no ca.crt and ca.key (a lab volume from before TLS: docker compose down -v)"
NODE_CA=/run/pgfailover-node/ca
install -d -m 0700 "$NODE_CA"
install -m 0600 "$SECRETS_DIR/ca/ca.key" "$NODE_CA/ca.key"
install -m 0644 "$SECRETS_DIR/ca/ca.crt" "$NODE_CA/ca.crt"

# ----- sshd: pgfailover's key, as postgres, nothing else ----------------------------------------
install -d -m 0755 "$SSHD_DIR" /run/sshd
install -m 0600 "$SECRETS_DIR/$NODE_NAME/ssh_host_ed25519_key" "$SSHD_DIR/ssh_host_ed25519_key"
install -m 0644 "$SECRETS_DIR/authorized_keys" "$SSHD_DIR/authorized_keys"
cat >"$SSHD_DIR/sshd_config" <<EOF
# Written by docker/postgres/entrypoint.sh: pgfailover's key only, as postgres only.
Port 22
HostKey $SSHD_DIR/ssh_host_ed25519_key
PidFile /run/pgfailover-node/sshd.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys
AllowUsers postgres
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
UseDNS no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
LogLevel INFO
EOF
/usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config"
# sshd starts only once this script has started PostgreSQL (below): while sshd is down,
# pgfailover cannot run a rejoin (pg_rewind, re-clone) on the data directory at the same time
# as the guard and pg_ctl here, which would race for standby.signal and the directory itself.

# ----- PostgreSQL -------------------------------------------------------------------------------
install -d -m 0750 -o postgres -g postgres "$NODE_HOME"
chown postgres:postgres "$NODE_HOME"
common=(--dir "$NODE_HOME" --name "$NODE_NAME" --port 5432 --listen '*' --allow-cidr "$ALLOW_CIDR"
  --ca-dir "$NODE_CA" --tls-host "$NODE_NAME")
# The certificate names the address the other nodes and pgfailover use (PEERS), and the name.
for entry in ${PEERS:-}; do
  if [[ ${entry%%=*} == "$NODE_NAME" ]]; then
    own=${entry#*=}
    common+=(--tls-host "${own%:*}")
  fi
done

# Which node does pgfailover call the primary? ("" when it does not answer or names none.)
pgfailover_primary() {
  [[ -n ${PGFAILOVER_URL:-} ]] || return 0
  local ca=()
  [[ -n ${PGFAILOVER_CA_FILE:-} ]] && ca=(--cacert "$PGFAILOVER_CA_FILE")
  curl -sf --max-time 2 "${ca[@]}" "$PGFAILOVER_URL/status" 2>/dev/null | jq -r '.primary // empty' 2>/dev/null || true
}
# The physical slot pgfailover keeps for this node on the primary: replicationSlotName() in
# src/runtime/node_operations.cc, "pgfailover_" + the node's name in lower case with every
# character other than [a-z0-9_] as "_", at most 63 characters.
slot=${NODE_NAME,,}
slot=pgfailover_${slot//[^a-z0-9_]/_}
SLOT_NAME=${slot:0:63}

# Creates this node's slot on the primary (reserving WAL at once) unless it exists, as the
# replication role: the clone then streams from its slot from the very start, instead of around
# it until pgfailover notices ("streams without its slot") and sets primary_slot_name itself.
# Prints what it did; fails when the primary refuses.
create_slot_on() { # host port
  local passfile=/run/pgfailover-node/replication.pgpass password status=0
  password=$(cat "$NODE_REPL_PASSWORD_FILE")
  password=${password//\\/\\\\}
  (
    umask 077
    printf '*:*:*:%s:%s\n' "$NODE_REPL_USER" "${password//:/\\:}" >"$passfile"
  )
  # SLOT_NAME holds [a-z0-9_] only: safe inside the literal.
  PGPASSFILE=$passfile psql -X -A -t -q -v ON_ERROR_STOP=1 \
    -d "host=$1 port=$2 dbname=postgres user=$NODE_REPL_USER sslmode=verify-full sslrootcert=$NODE_CA/ca.crt connect_timeout=5" -c "
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$SLOT_NAME')
                THEN 'slot $SLOT_NAME exists on the primary'
                ELSE (SELECT 'created slot ' || slot_name || ' on the primary at ' || lsn
                        FROM pg_create_physical_replication_slot('$SLOT_NAME', true)) END" || status=$?
  rm -f -- "$passfile"
  return "$status"
}

peer_addr() { # name -> host:port from PEERS
  local entry
  for entry in ${PEERS:-}; do
    [[ ${entry%%=*} == "$1" ]] && printf '%s\n' "${entry#*=}"
  done
  return 0
}

# A rejoin that a container restart cut short leaves the data directory where pgfailover was
# working on it (src/lifecycle/rejoin.h). Its processes died with the container, so nothing
# works there any more: put it back as a standby, for the guard below and pgfailover's next
# rejoin. Never clone over it.
if [[ ! -e $NODE_HOME/data && -d $NODE_HOME/data.pgfailover-rejoin ]]; then
  say "a rejoin was cut short: putting $NODE_HOME/data back as a standby"
  mv "$NODE_HOME/data.pgfailover-rejoin" "$NODE_HOME/data"
  runuser -u postgres -- touch "$NODE_HOME/data/standby.signal"
fi
rm -rf "$NODE_HOME/data.pgfailover-clone"

if [[ ! -f $NODE_HOME/data/PG_VERSION ]]; then
  primary=$(pgfailover_primary)
  if [[ -n $primary && $primary != "$NODE_NAME" ]]; then
    addr=$(peer_addr "$primary")
    [[ -n $addr ]] || die "pgfailover names '$primary' as the primary, but PEERS has no address for it"
    say "first start, and pgfailover says '$primary' is the primary: cloning from it (NODE_ROLE=$NODE_ROLE ignored)"
    PRIMARY_HOST=${addr%:*} PRIMARY_PORT=${addr##*:} NODE_ROLE=replica
  fi
  if [[ $NODE_ROLE == primary ]]; then
    say "first start: initdb, primary"
    bash "$NODE_SCRIPTS/init-primary.sh" "${common[@]}"
  else
    : "${PRIMARY_HOST:?a replica needs PRIMARY_HOST at its first start}"
    PRIMARY_PORT=${PRIMARY_PORT:-5432}
    say "first start: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
    deadline=$((SECONDS + ${PRIMARY_WAIT:-300}))
    until runuser -u postgres -- "$PG_BIN/pg_isready" -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -t 2; do
      ((SECONDS < deadline)) || die "the primary at $PRIMARY_HOST:$PRIMARY_PORT did not answer within ${PRIMARY_WAIT:-300}s"
      sleep 1
    done
    clone=("${common[@]}" --primary-host "$PRIMARY_HOST" --primary-port "$PRIMARY_PORT")
    if [[ ${REPLICATION_SLOT:-1} == 1 ]]; then
      if done_slot=$(create_slot_on "$PRIMARY_HOST" "$PRIMARY_PORT"); then
        say "$done_slot"
        # In pgfailover-node.conf (next to the data directory, kept by later starts); a rejoin
        # or the guard below may set it again in postgresql.auto.conf, with the same name.
        clone+=(--set "primary_slot_name = '$SLOT_NAME'")
      else
        say "could not create the slot $SLOT_NAME on the primary: cloning without it (pgfailover sets it later)"
      fi
    fi
    bash "$NODE_SCRIPTS/clone-replica.sh" "${clone[@]}"
  fi
else
  guard=(--dir "$NODE_HOME" --name "$NODE_NAME" --repl-user "$NODE_REPL_USER" --wait "${GUARD_WAIT:-10}")
  [[ ${REPLICATION_SLOT:-1} == 1 ]] && guard+=(--slot "$SLOT_NAME")
  [[ -n ${PGFAILOVER_URL:-} ]] && guard+=(--pgfailover-url "$PGFAILOVER_URL")
  [[ -n ${PGFAILOVER_URL:-} && -n ${PGFAILOVER_CA_FILE:-} ]] && guard+=(--pgfailover-ca "$PGFAILOVER_CA_FILE")
  for entry in ${PEERS:-}; do guard+=(--peer "$entry"); done
  decision=$(/usr/local/bin/node-guard.sh "${guard[@]}")
  say "guard at start: $decision"
  # The node's own settings (pgfailover-node.conf, pg_hba.conf, passfile) are next to the data
  # directory in the volume, from the first start: start it as the data directory now is.
  bash "$NODE_SCRIPTS/start.sh" --dir "$NODE_HOME" --name "$NODE_NAME"
fi

/usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E /run/pgfailover-node/sshd.log
say "sshd started (pid $(cat /run/pgfailover-node/sshd.pid))"

# The server log on the container's output.
tail -n 0 -F "$NODE_HOME/postgresql.log" &
tail_pid=$!

# The lease guard, for the container's whole life (the server comes and goes under it).
guard_pid=
if [[ ${LEASE_GUARD:-1} == 1 ]]; then
  # As root it becomes postgres itself and connects over the server's unix socket.
  /usr/bin/pgfailover lease-guard --dir "$NODE_HOME" --name "$NODE_NAME" \
    --dbname "${GUARD_DBNAME:-postgres}" --heartbeat-table "${GUARD_TABLE:-pgfailover.heartbeat}" &
  guard_pid=$!
  say "lease guard started (pid $guard_pid)"
fi

stopping=0
shutdown() {
  stopping=1
  say "stopping: PostgreSQL (fast), sshd"
  bash "$NODE_SCRIPTS/stop.sh" --dir "$NODE_HOME" --mode fast --timeout 25 || true
  local pid
  pid=$(cat /run/pgfailover-node/sshd.pid 2>/dev/null || true)
  if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
  if [[ -n $guard_pid ]]; then kill -TERM "$guard_pid" 2>/dev/null || true; fi
  kill -TERM "$tail_pid" 2>/dev/null || true
  exit 0
}
trap shutdown TERM INT

say "running; PostgreSQL $PG_MAJOR in $NODE_HOME/data, sshd on :22"
# Stay up while pgfailover stops and starts the server (fence, rejoin): the container is the
# host, not the server.
while ((!stopping)); do
  sleep 5 &
  wait $! || true
done
