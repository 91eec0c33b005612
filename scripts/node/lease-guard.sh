#!/usr/bin/env bash
# The node's lease guard: runs on every PostgreSQL host, next to the server, for as long as the
# host runs. While its node is a primary, it checks twice a second whether anyone still vouches
# for it: pgfailover, whose heartbeat row carries a lease (probe.primary_lease_ms), and the
# replica, whose WAL receiver replies every wal_receiver_status_interval (1 s on these nodes).
# When the lease ran out AND one of the replicas pgfailover could promote (the peers it names in
# the row) has not replied for as long, pgfailover may be about to promote that replica; so the
# guard makes the node read-only first (self_fenced_at in the heartbeat row,
# default_transaction_read_only = on, client sessions ended). pgfailover's timeouts are longer
# than the lease, and it waits for the lease to run out before a promotion, so the fence comes
# first. If nothing was promoted, pgfailover lifts the fence when it sees the node again.
# Needs wal_receiver_status_interval well below the lease on the replicas (1 s on these nodes):
# an idle replica replies only that often.
#
# Only this node's own lease counts: the row must have been written for this node (its node
# column is --name) on the timeline the node writes on now (its timeline column; the first 8 hex
# digits of the current WAL file's name, as pgfailover computes it). A row written for another
# node, or on an older timeline (replicated from the old primary before this node was promoted),
# is not this node's lease: the guard logs that once and enforces nothing until pgfailover
# writes this node's heartbeat. A row on the current timeline that names another node means
# --name does not match pgfailover's nodes[].name: the guard warns once and enforces it anyway.
# A row without a timeline (0: an older pgfailover) is checked by its node name alone. And the
# node never vouches for itself: --name is skipped among the peers.
#
# It never fences a replica, a node already read-only, a node whose lease is 0 (pgfailover was
# stopped cleanly, or runs without a lease), a node whose heartbeat row is not its own lease (see
# above), a primary whose every peer still streams (only pgfailover is gone: nobody can
# promote), a primary whose row names no peer but itself, or a node that became writable less
# than a lease ago (just promoted or started: pgfailover's first heartbeat is still to come).
# Until the table exists (with its lease columns) the guard only looks for it in the catalog, so
# a guard started before pgfailover's first heartbeat leaves no error in the server log.
# docs/lifecycle.md, "Self-fencing".
set -euo pipefail
NODE_SCRIPT="lease-guard.sh"
# shellcheck source=scripts/node/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

node_usage() {
  cat <<'EOF2'
Usage: scripts/node/lease-guard.sh --dir DIR [--heartbeat-table SCHEMA.TABLE] [--dbname DB]
                                   [--check-interval SECONDS] [--once] [options]
  --heartbeat-table   pgfailover's probe.heartbeat_table (default pgfailover.heartbeat)
  --dbname            the database pgfailover connects to (nodes[].dbname; default postgres)
  --check-interval    seconds between checks (default 0.5)
  --once              check once and exit: 0 nothing to do, 3 fenced the node
Runs in the foreground until killed; logs one line per fence to stderr.
EOF2
}

GUARD_TABLE=${GUARD_TABLE:-pgfailover.heartbeat}
GUARD_DBNAME=${GUARD_DBNAME:-postgres}
GUARD_INTERVAL=${GUARD_INTERVAL:-0.5}
GUARD_ONCE=0
node_args=()
while (($# > 0)); do
  case $1 in
    --heartbeat-table)
      (($# >= 2)) || die "option $1 needs a value"
      GUARD_TABLE=$2
      shift 2
      ;;
    --check-interval)
      (($# >= 2)) || die "option $1 needs a value"
      GUARD_INTERVAL=$2
      shift 2
      ;;
    --dbname)
      (($# >= 2)) || die "option $1 needs a value"
      GUARD_DBNAME=$2
      shift 2
      ;;
    --once)
      GUARD_ONCE=1
      shift
      ;;
    *)
      node_args+=("$1")
      shift
      ;;
  esac
done
node_parse_args "${node_args[@]}"
node_resolve
[[ $GUARD_TABLE =~ ^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$ ]] ||
  die "--heartbeat-table must be schema.table in lower case letters, digits and _, got '$GUARD_TABLE'"
[[ $GUARD_INTERVAL =~ ^[0-9]*[1-9][0-9]*(\.[0-9]+)?$|^[0-9]+\.[0-9]*[1-9][0-9]*$ ]] ||
  die "--check-interval must be a positive number of seconds, got '$GUARD_INTERVAL'"

# Timestamps without a process (date): the guard logs from its signal trap too.
export TZ=UTC
log() {
  local now=$EPOCHREALTIME stamp frac
  printf -v stamp '%(%Y-%m-%dT%H:%M:%S)T' "${now%.*}"
  frac=${now#*.}
  printf '%s.%sZ %s[%s]: %s\n' "$stamp" "${frac:0:3}" "$NODE_SCRIPT" "$NODE_NAME" "$*" >&2
}

# psql over the unix socket as the server's OS user. statement_timeout: a hung server must not
# hang the guard; synchronous_commit = local: the mark must commit on a primary whose
# synchronous standby is gone (the very case it is for).
psql_command() {
  PSQL_CMD=("$PG_BIN/psql" -X -q -h "$NODE_RUN_DIR" -p "$NODE_PORT" -U "$NODE_RUN_AS"
    -d "$GUARD_DBNAME" "$@")
  if ((EUID == 0)); then PSQL_CMD=(runuser -u "$NODE_RUN_AS" -- "${PSQL_CMD[@]}"); fi
}
export PGCONNECT_TIMEOUT=2 PGOPTIONS="-c statement_timeout=2000 -c synchronous_commit=local"
# A write to a session whose psql has died must fail, not kill the guard.
trap '' PIPE

# One-off statements (the fence itself: rare), each under a 3 s deadline.
guard_psql() {
  local -a PSQL_CMD
  psql_command -v ON_ERROR_STOP=1 "$@"
  timeout 3 "${PSQL_CMD[@]}"
}

# The checks go through one psql session kept open (a coprocess), not one process each: twice
# a second, forking psql would cost the host more than everything else the guard does. Each
# query ends with a marker line; no marker within 3 s (a hung server) ends the session, and the
# next check opens a new one (so does a server restart, which ends psql by itself).
session_pid=''
session_open() {
  local -a cmd=("$PG_BIN/psql" -X -q -h "$NODE_RUN_DIR" -p "$NODE_PORT" -U "$NODE_RUN_AS"
    -d "$GUARD_DBNAME" -At -F '|' -v ON_ERROR_STOP=0)
  # setpriv execs psql itself (runuser would stay in between as its parent): the session's PID
  # is psql's, so ending the session ends psql.
  if ((EUID == 0)); then
    cmd=(setpriv --reuid="$NODE_RUN_AS" --regid="$(id -g "$NODE_RUN_AS")" --init-groups "${cmd[@]}")
  fi
  coproc SESSION { exec "${cmd[@]}" 2>/dev/null; }
  # shellcheck disable=SC2153  # SESSION_PID is set by coproc
  session_pid=$SESSION_PID
}
session_close() {
  local i
  if [[ -n $session_pid ]]; then
    kill -TERM "$session_pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      kill -0 "$session_pid" 2>/dev/null || break
      read -r -t 0.05 -u "$tick_fd" _ || true
    done
    kill -KILL "$session_pid" 2>/dev/null || true
    wait "$session_pid" 2>/dev/null || true
  fi
  session_pid=''
}
# Runs one psql script (statements and backslash commands); the first row it prints in
# SESSION_ROW ("" when it printed none). Fails when there is no answer.
session_query() {
  local line got=0
  SESSION_ROW=''
  if [[ -z $session_pid ]] || ! kill -0 "$session_pid" 2>/dev/null; then
    session_close
    session_open
  fi
  printf '%s\n\\echo __guard_end__\n' "$1" 1>&"${SESSION[1]}" 2>/dev/null || {
    session_close
    return 1
  }
  while IFS= read -r -t 3 -u "${SESSION[0]}" line; do
    if [[ $line == __guard_end__ ]]; then
      got=1
      break
    fi
    [[ -n $SESSION_ROW ]] || SESSION_ROW=$line
  done
  if ((!got)); then
    session_close
    return 1
  fi
}

# One row: whether the node takes writes (out of recovery, not read-only); the lease; the
# heartbeat's timestamp as text and its age in ms on the server's clock; the row's timeline (-1:
# no row) and the timeline the node writes on now (read once, out of recovery only:
# pg_current_wal_lsn() fails during recovery); whether the row was written for this node; for
# every peer pgfailover named in the row (the nodes it could promote), "name=reply_time=age_ms"
# of its newest streaming walsender ("-" for a peer that does not stream), comma-separated; and
# last, as free text, the node the row was written for. Only the peers count: pg_receivewal, a
# logical subscriber or a base backup vouch for nothing. $1: the row's timeline column, or 0 for
# a table without one.
check_sql() {
  printf '%s' "SELECT s.writable,
  coalesce(h.lease_ms, 0),
  coalesce(h.ts::text, '-'),
  coalesce((extract(epoch FROM clock_timestamp() - h.ts) * 1000)::bigint, 0),
  coalesce($1, -1),
  s.timeline,
  coalesce(h.node = '$NODE_NAME', false),
  coalesce((SELECT string_agg(p.name || '=' || coalesce(r.reply::text, '-') || '=' ||
                              coalesce((extract(epoch FROM clock_timestamp() - r.reply) * 1000)::bigint::text, '-'), ',')
            FROM unnest(string_to_array(nullif(h.peers, ''), ',')) AS p(name)
            CROSS JOIN LATERAL (SELECT max(reply_time) AS reply FROM pg_stat_replication
                                WHERE state = 'streaming' AND application_name = p.name) AS r), ''),
  coalesce(h.node, '')
FROM (SELECT NOT rec AND current_setting('default_transaction_read_only') = 'off' AS writable,
             CASE WHEN NOT rec
               THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
             END AS timeline
      FROM pg_is_in_recovery() AS rec OFFSET 0) AS s
LEFT JOIN $GUARD_TABLE AS h ON h.id = 1"
}
# The table is looked up in the catalog first, and read only once it exists with the columns the
# guard needs (pgfailover creates it at its first heartbeat, and a replica has it only once that
# is replayed): a query on a missing table would put an ERROR line, with the statement, into the
# server log twice a second. One round trip: psql decides with \if, and prints no row when there
# is no table.
CHECK_SCRIPT="\\set guard_ready f
\\set guard_timeline f
SELECT count(*) FILTER (WHERE attname IN ('ts', 'node', 'lease_ms', 'self_fenced_at', 'peers')) = 5 AS ready,
  count(*) FILTER (WHERE attname = 'timeline') = 1 AS timeline
FROM pg_attribute WHERE attrelid = to_regclass('$GUARD_TABLE') AND attnum > 0 AND NOT attisdropped
\\gset guard_
\\if :guard_ready
\\if :guard_timeline
$(check_sql h.timeline);
\\else
$(check_sql 0);
\\endif
\\endif"

# Ages are measured on this host's monotonic clock (/proc/uptime), from the moment this guard
# saw a value change: a new heartbeat timestamp, a new reply_time of a peer. No clock of another
# host is read, and a step of the wall clock changes nothing. A node that just became writable
# (promoted, started, unfenced) starts every age at zero: pgfailover's first heartbeat is a tick
# away. In --once mode there is no history, and the server's clock gives the ages.
now_ms() {
  local up
  read -r up _ </proc/uptime
  printf '%s\n' "$((${up%.*} * 1000 + 10#${up#*.} * 10))"
}
writable_since='' hb_last='' hb_seen=''
declare -A peer_last=() peer_seen=()
# What was logged already ("node/timeline" of a row): each such line once, not twice a second.
declare -A logged_foreign=() logged_misnamed=()

fence() { # lease_ms heartbeat_text peer why
  local lease=$1 hb=$2 peer=$3 why=$4 setting deadline marked
  # The mark first, in one statement with the check that nothing changed since (the same
  # heartbeat, no newer reply from that peer): pgfailover lifts only a fence it can tell from an
  # operator's, and only pgfailover's unfence clears the mark.
  if ! marked=$(guard_psql -At -c "UPDATE $GUARD_TABLE SET self_fenced_at = now()
      WHERE id = 1 AND lease_ms > 0 AND ts::text = '$hb'
        AND NOT EXISTS (SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'
          AND application_name = '$peer' AND reply_time::text <> '${peer_last[$peer]:-}')
      RETURNING 1"); then
    log "could not mark the fence in $GUARD_TABLE; not fencing ($why)"
    return 1
  fi
  if [[ $marked != 1 ]]; then
    log "a heartbeat or a reply of $peer arrived meanwhile; not fencing"
    return 1
  fi
  # From here on the node counts as not writable for this guard: once pgfailover lifts the
  # fence, its next heartbeat gets a whole lease.
  writable_since=
  guard_psql -c "ALTER SYSTEM SET default_transaction_read_only = on" \
    -c "SELECT pg_reload_conf()" >/dev/null || {
    log "ALTER SYSTEM or pg_reload_conf failed; the node is marked but not fenced ($why)"
    return 1
  }
  # Sessions forked after the postmaster reloaded start read-only; wait for that (a new
  # session shows it), then end every client session, which may still be writing.
  deadline=$((SECONDS + 2))
  while setting=$(guard_psql -At -c "SHOW default_transaction_read_only" 2>/dev/null) &&
    [[ $setting != on ]] && ((SECONDS < deadline)); do
    sleep 0.05
  done
  guard_psql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null ||
    log "terminating client sessions failed"
  log "fenced node $NODE_NAME (read-only, client sessions ended): $why"
  return 0
}

check_once() {
  local row writable lease hb hb_age row_tl cur_tl own peers row_node now entry name reply age
  local stale='' stale_age=0 key where
  local -a entries=()
  # Down, starting or hung: nothing to decide this time.
  session_query "$CHECK_SCRIPT" || return 0
  row=$SESSION_ROW
  # No table yet (or not with the lease columns): no lease to enforce.
  if [[ -z $row ]]; then
    writable_since=
    return 0
  fi
  IFS='|' read -r writable lease hb hb_age row_tl cur_tl own peers row_node <<<"$row"
  if [[ $writable != t ]]; then
    writable_since=
    return 0
  fi
  [[ $lease =~ ^[0-9]+$ && $hb_age =~ ^-?[0-9]+$ && $row_tl =~ ^-?[0-9]+$ &&
    $cur_tl =~ ^[0-9]+$ ]] || return 0
  IFS=',' read -r -a entries <<<"$peers"
  now=$(now_ms)
  if ((!GUARD_ONCE)); then
    if [[ -z $writable_since ]]; then
      writable_since=$now hb_last=$hb hb_seen=$now
      peer_last=() peer_seen=()
    fi
    if [[ $hb != "$hb_last" ]]; then hb_last=$hb hb_seen=$now; fi
    hb_age=$((now - hb_seen))
  fi
  # No row at all: no lease.
  ((row_tl >= 0)) || return 0
  # Only this node's own lease binds it: the row written for this node on the timeline it
  # writes on now. Anything else (the previous primary's row, replicated before this node was
  # promoted) says nothing about this node; pgfailover's first heartbeat replaces it.
  key="$row_node/$row_tl"
  if [[ $own == t ]]; then
    if ((row_tl != 0 && row_tl != cur_tl)); then
      if [[ -z ${logged_foreign[$key]:-} ]]; then
        logged_foreign[$key]=1
        log "the heartbeat row in $GUARD_TABLE was written for this node on timeline $row_tl, not on its current timeline $cur_tl (it predates the node's promotion): not this node's lease, nothing to enforce until pgfailover writes its heartbeat here"
      fi
      return 0
    fi
  elif ((row_tl == cur_tl)); then
    # Written on this node's timeline, hence on this node, by pgfailover: it knows the node by
    # another name. Enforce the lease all the same: the row is this node's.
    if [[ -z ${logged_misnamed[$key]:-} ]]; then
      logged_misnamed[$key]=1
      log "WARNING: the heartbeat row in $GUARD_TABLE was written on this node's timeline $cur_tl for node '$row_node', but this guard runs with --name $NODE_NAME: --name must be the node's nodes[].name in pgfailover's configuration; enforcing the lease anyway"
    fi
  else
    if [[ -z ${logged_foreign[$key]:-} ]]; then
      logged_foreign[$key]=1
      if ((row_tl == 0)); then where="by a pgfailover that writes no timeline"; else where="on timeline $row_tl"; fi
      log "the heartbeat row in $GUARD_TABLE was written for node '$row_node' $where (this node is $NODE_NAME on timeline $cur_tl): not this node's lease, nothing to enforce until pgfailover writes its heartbeat here"
    fi
    return 0
  fi
  ((lease > 0 && hb_age > lease)) || return 0
  for entry in "${entries[@]}"; do
    IFS='=' read -r name reply age <<<"$entry"
    [[ $name =~ ^[A-Za-z0-9_.-]{1,63}$ ]] || return 0
    # The node never vouches for itself, and is never the replica pgfailover could promote.
    [[ $name != "$NODE_NAME" ]] || continue
    if ((GUARD_ONCE)); then
      [[ $age =~ ^-?[0-9]+$ ]] || age=$((lease + 1)) # it does not stream at all
    else
      [[ -n ${peer_seen[$name]:-} ]] || peer_seen[$name]=$writable_since
      if [[ $reply != - && $reply != "${peer_last[$name]:-}" ]]; then
        peer_last[$name]=$reply peer_seen[$name]=$now
      fi
      age=$((now - peer_seen[$name]))
    fi
    if ((age > lease)); then
      stale=$name stale_age=$age
      break
    fi
  done
  # No stale peer; or none named but this node, or none at all (a row from an older
  # pgfailover): nobody pgfailover could promote can be told apart; do nothing.
  [[ -n $stale ]] || return 0
  fence "$lease" "$hb" "$stale" "no heartbeat from pgfailover for ${hb_age} ms and no reply from replica $stale for at least ${stale_age} ms: the ${lease} ms lease ran out" &&
    return 3
  return 0
}

# A pipe nobody writes to: reading it with a timeout sleeps without a process of its own.
exec {tick_fd}<> <(:)
if ((GUARD_ONCE)); then
  status=0
  check_once || status=$?
  session_close
  exit "$status"
fi
log "guarding node $NODE_NAME (port $NODE_PORT, $GUARD_DBNAME.$GUARD_TABLE, every ${GUARD_INTERVAL}s)"
# The trap only sets a flag: the loop ends the session and exits between checks.
stopping=0
trap 'stopping=1' TERM INT
while ((!stopping)); do
  check_once || true
  ((stopping)) || read -r -t "$GUARD_INTERVAL" -u "$tick_fd" _ || true
done
session_close
log "stopped"
exit 0
