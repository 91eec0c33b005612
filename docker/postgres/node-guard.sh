#!/usr/bin/env bash
# Guard at start (docs/lifecycle.md, DESIGN "Closing the window on a returning old primary"):
# run before a node's PostgreSQL starts on an existing data directory. The node does not decide
# its own role: it asks pgfailover's /status who the primary is and, when that is another node,
# starts as a standby of it (standby.signal + primary_conninfo), so a returning old primary can
# never take a write. pgfailover then rejoins it (pg_rewind) if its history diverged.
#
# Who the primary is, in order:
#   1. pgfailover's /status names a primary            -> that node
#   2. otherwise (pgfailover unreachable, or it names none) a peer answers
#      pg_is_in_recovery() = false                       -> that peer
#   3. otherwise                                         -> nobody else claims it: the data
#      directory stays as it is. A standby stays a standby (standby.signal is never removed
#      here); a node that was the primary last time starts as the primary.
# It never promotes anything and never removes standby.signal.
#
# Usage: node-guard.sh --dir N --name NAME [--pgfailover-url URL [--pgfailover-ca FILE]]
#          [--peer NAME=HOST:PORT]... [--repl-user USER] [--passfile FILE] [--wait SECONDS]
#          [--slot SLOT]
# --pgfailover-ca: the CA that signed pgfailover's HTTPS certificate (an https:// URL is always
# verified: against this file, else the system's CAs; an answer that fails it counts as none).
# N is the node folder of scripts/node/ (data directory N/data). Peers are asked as the
# replication role, with the passfile the node already has for streaming. --slot: the physical
# slot the node streams from (primary_slot_name, beside primary_conninfo, as pgfailover's rejoin
# writes them; pgfailover keeps a slot of that name for every replica on the primary). Exit 0 with the
# decision on stdout (primary | standby-of NAME | as-is), non-zero on a usage error.
set -euo pipefail

say() { printf 'node-guard: %s\n' "$*" >&2; }
die() {
  printf 'node-guard: error: %s\n' "$*" >&2
  exit 2
}

dir='' name='' url='' url_ca='' repl_user=replicator passfile='' wait_seconds=10 slot=
declare -A peers=()
declare -a peer_order=()
while (($# > 0)); do
  case $1 in
    --dir) dir=${2:?} ;;
    --name) name=${2:?} ;;
    --pgfailover-url) url=${2:?} ;;
    --pgfailover-ca)
      [[ -r ${2:?} ]] || die "--pgfailover-ca: cannot read '$2'"
      url_ca=$2
      ;;
    --repl-user) repl_user=${2:?} ;;
    --passfile) passfile=${2:?} ;;
    --wait) wait_seconds=${2:?} ;;
    --slot)
      [[ ${2:?} =~ ^[a-z0-9_]{1,63}$ ]] || die "--slot takes a replication slot name ([a-z0-9_], at most 63), got '$2'"
      slot=$2
      ;;
    --peer)
      [[ ${2:?} =~ ^([A-Za-z0-9_.-]+)=([^:]+):([0-9]+)$ ]] || die "--peer takes NAME=HOST:PORT, got '$2'"
      peers[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}:${BASH_REMATCH[3]}"
      peer_order+=("${BASH_REMATCH[1]}")
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1'" ;;
  esac
  shift 2
done
[[ -n $dir && -n $name ]] || die "--dir and --name are required"
[[ $wait_seconds =~ ^[0-9]+$ ]] || die "--wait takes whole seconds"
data=$dir/data
passfile=${passfile:-$dir/replication.pgpass}
if [[ ! -e $data && -e $data.pgfailover-rejoin ]]; then
  die "pgfailover is rejoining $name: its data directory is at $data.pgfailover-rejoin until the rejoin ends"
fi
[[ -f $data/PG_VERSION ]] || {
  say "$data holds no data directory yet: nothing to guard"
  echo as-is
  exit 0
}

owner=$(stat -c %U "$data")
as_owner() {
  if ((EUID == 0)) && [[ $owner != root ]]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

# A running server is left alone: its role is pgfailover's business now.
if [[ -f $data/postmaster.pid ]]; then
  read -r pid <"$data/postmaster.pid" || true
  if [[ ${pid:-} =~ ^[0-9]+$ ]] && [[ -d /proc/$pid ]] &&
    [[ $(readlink "/proc/$pid/cwd" 2>/dev/null || true) == "$(realpath "$data")" ]]; then
    say "$name already runs (pid $pid): nothing to guard"
    echo as-is
    exit 0
  fi
fi

primary='' primary_addr='' source=''

# 1. pgfailover's /status, retried for up to --wait seconds.
if [[ -n $url ]] && command -v curl >/dev/null; then
  curl_ca=()
  [[ -n $url_ca ]] && curl_ca=(--cacert "$url_ca")
  deadline=$((SECONDS + wait_seconds))
  while :; do
    if status=$(curl -sf --max-time 2 "${curl_ca[@]}" "$url/status" 2>/dev/null); then
      primary=$(jq -r '.primary // empty' <<<"$status" 2>/dev/null || true)
      if [[ -n $primary && $primary != "$name" ]]; then
        primary_addr=$(jq -r --arg p "$primary" \
          '.nodes[] | select(.name == $p) | "\(.host):\(.port)"' <<<"$status" 2>/dev/null | head -n1)
      fi
      source="pgfailover ($url)"
      if [[ -n $primary ]]; then
        say "pgfailover says the primary is '$primary'"
      else
        say "pgfailover answers but names no primary (state $(jq -r .state <<<"$status" 2>/dev/null))"
      fi
      break
    fi
    ((SECONDS < deadline)) || {
      say "pgfailover does not answer at $url (waited ${wait_seconds}s)"
      break
    }
    sleep 1
  done
fi

# The nodes' TLS (scripts/node/ writes N/tls/ca.crt): the replication password only goes to a
# peer whose certificate that CA signed for its address, as in pgfailover's rejoin.
tls=
if [[ -f $dir/tls/ca.crt ]]; then tls=" sslmode=verify-full sslrootcert=$dir/tls/ca.crt"; fi

# 2. Otherwise the peers themselves.
if [[ -z $primary ]]; then
  for peer in "${peer_order[@]}"; do
    [[ $peer != "$name" ]] || continue
    addr=${peers[$peer]}
    recovery=$(as_owner psql -X -A -t -q -d "host=${addr%:*} port=${addr##*:} dbname=postgres user=$repl_user passfile=$passfile$tls connect_timeout=3" \
      -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
    if [[ $recovery == f ]]; then
      primary=$peer
      source="peer $peer (pg_is_in_recovery() = false)"
      say "peer $peer at $addr is a primary"
      break
    fi
  done
fi
# The address given with --peer wins: it is how this node reaches the other for replication.
if [[ -n $primary && $primary != "$name" && -n ${peers[$primary]:-} ]]; then
  primary_addr=${peers[$primary]}
fi

log_decision() { printf '%s %s: %s (%s)\n' "$(date -u +%FT%TZ)" "$name" "$1" "${source:-no source}" >>"$dir/guard.log" 2>/dev/null || true; }

if [[ -z $primary ]]; then
  if [[ -f $data/standby.signal ]]; then
    say "nobody names a primary: $name stays a standby (standby.signal kept)"
  else
    say "nobody names a primary and no peer is one: $name starts as its data directory is (the primary last time)"
  fi
  log_decision as-is
  echo as-is
  exit 0
fi
if [[ $primary == "$name" ]]; then
  say "$name is the primary: starting as its data directory is"
  log_decision primary
  echo primary
  exit 0
fi
[[ -n $primary_addr ]] || die "the primary '$primary' has no known address (give --peer $primary=HOST:PORT)"

# Follow the primary: standby.signal and primary_conninfo, as pgfailover's rejoin writes them.
host=${primary_addr%:*} port=${primary_addr##*:}
conninfo="host=$host port=$port user=$repl_user passfile=$passfile application_name=$name$tls"
auto=$data/postgresql.auto.conf
as_owner touch "$data/standby.signal" "$auto"
current=$(sed -n "s/^primary_conninfo[[:space:]]*=[[:space:]]*'\(.*\)'$/\1/p" "$auto" | tail -n1)
current_slot=$(sed -n "s/^primary_slot_name[[:space:]]*=[[:space:]]*'\(.*\)'$/\1/p" "$auto" | tail -n1)
if [[ $current != "$conninfo" || $current_slot != "$slot" ]]; then
  as_owner sed -i -e '/^primary_conninfo[[:space:]]*=/d' -e '/^primary_slot_name[[:space:]]*=/d' "$auto"
  {
    printf "primary_conninfo = '%s'\n" "${conninfo//\'/\'\'}"
    if [[ -n $slot ]]; then printf "primary_slot_name = '%s'\n" "$slot"; fi
  } | as_owner tee -a "$auto" >/dev/null
fi
say "$name is not the primary ($primary is, at $primary_addr): starting as its standby (standby.signal written${slot:+, slot $slot})"
log_decision "standby-of $primary"
echo "standby-of $primary"
