#!/usr/bin/env bash
# Prints the folder of the PostgreSQL server binaries the scripts and tests use: $PG_BIN when
# set; else PostgreSQL 15's (/usr/lib/postgresql/15/bin, the version pgfailover is developed and
# tested against); else, on a distribution whose archive has no PostgreSQL 15 (Ubuntu 24.04 ships
# 16), the newest installed major from 13 on. Exits 1 with a message when there is none.
set -euo pipefail
if [[ -n ${PG_BIN:-} ]]; then
  printf '%s\n' "$PG_BIN"
  exit 0
fi
if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
  echo /usr/lib/postgresql/15/bin
  exit 0
fi
newest=''
for dir in /usr/lib/postgresql/*/bin; do
  major=${dir#/usr/lib/postgresql/}
  major=${major%/bin}
  if ! [[ $major =~ ^[0-9]+$ && -x $dir/postgres ]] || ((major < 13)); then continue; fi
  if [[ -z $newest ]] || ((major > ${newest#*:})); then newest="$dir:$major"; fi
done
if [[ -z $newest ]]; then
  echo "pg-bin: no PostgreSQL server under /usr/lib/postgresql (install postgresql-15: scripts/install-deps.sh), or set PG_BIN" >&2
  exit 1
fi
printf '%s\n' "${newest%:*}"
