#!/usr/bin/env bash
# Installs every Debian 12 package pgfailover needs to build, test and run its labs. Idempotent:
# when every package is already installed it changes nothing and runs no apt-get at all, so
# re-runs are fast and need no root.
#
# The postgresql packages create and may start a "main" cluster on port 5432. This script
# leaves such a cluster alone (it may be the user's); the labs and tests never use 5432 and
# address their own servers by port and socket directory only.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libpq-dev libcpp-httplib-dev nlohmann-json3-dev libssh-dev prometheus-cpp-dev libssl-dev libsystemd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  etcd-server etcd-client
  postgresql-15 postgresql-client-15
  openssh-server openssh-client iproute2 nftables iputils-ping procps curl jq python3-psycopg2
  clang-format shellcheck unzip openssl
  # The Debian package (scripts/package.sh) and its install test in a debootstrapped root.
  debhelper dpkg-dev lintian debootstrap ccache
)

say() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done

# PostgreSQL 15 where the archive has it (Debian 12); elsewhere (Ubuntu 24.04 ships 16 and no 15)
# the distribution's own major, which scripts/pg-bin.sh then finds.
substitute_postgresql() {
  local candidate default
  [[ " ${missing[*]} " == *" postgresql-15 "* ]] || return 0
  candidate=$(apt-cache policy postgresql-15 2>/dev/null | awk '/Candidate:/ {print $2}')
  [[ -z $candidate || $candidate == "(none)" ]] || return 0
  default=$(apt-cache depends postgresql 2>/dev/null | awk '/Depends: postgresql-[0-9]+$/ {print $2; exit}')
  [[ -n $default ]] || return 0
  say "postgresql-15 is not in this distribution's archive: installing ${default} instead (scripts/pg-bin.sh picks it)"
  local -a kept=()
  for package in "${missing[@]}"; do
    case $package in
      postgresql-15) kept+=("$default") ;;
      postgresql-client-15) kept+=("${default/postgresql-/postgresql-client-}") ;;
      *) kept+=("$package") ;;
    esac
  done
  missing=("${kept[@]}")
}

# Already installed under another major (see above): nothing to install for it.
if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && PG_BIN='' bash "$(dirname -- "${BASH_SOURCE[0]}")/pg-bin.sh" >/dev/null 2>&1; then
  kept=()
  for package in "${missing[@]}"; do
    [[ $package == postgresql-15 || $package == postgresql-client-15 ]] || kept+=("$package")
  done
  missing=("${kept[@]}")
fi

if ((${#missing[@]} == 0)); then
  say "all ${#packages[@]} packages already installed"
else
  say "missing: ${missing[*]}"
  if ((EUID != 0)); then
    say "error: installing packages needs root: run 'sudo $0'"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
  # Refresh the package lists once when they are missing or older than a day.
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 -print -quit 2>/dev/null) ]]; then
    say "apt-get update"
    apt_get update -qq
  fi
  substitute_postgresql
  if ! apt_get install -y -qq --no-install-recommends "${missing[@]}" </dev/null; then
    # Stale lists are the usual cause (404 on a superseded version): refresh and try once more.
    say "install failed; refreshing the package lists and trying again"
    apt_get update -qq
    apt_get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  fi
  for package in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [[ $status == installed ]] || {
      say "error: $package is still not installed"
      exit 1
    }
  done
  say "installed: ${missing[*]}"
  # Debian's etcd-server enables and starts a system etcd on 127.0.0.1:2379. The tests start
  # their own members on other ports and need none; one installed just now is stopped again
  # (an etcd that was already there is left alone).
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && [[ -d /run/systemd/system ]]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
    say "stopped and disabled the system etcd that etcd-server started (the tests run their own)"
  fi
fi

pg_bin=$(PG_BIN='' bash "$(dirname -- "${BASH_SOURCE[0]}")/pg-bin.sh") || {
  say "error: no PostgreSQL server binaries under /usr/lib/postgresql although the packages are installed"
  exit 1
}
[[ $pg_bin == /usr/lib/postgresql/15/bin ]] || say "note: using PostgreSQL from $pg_bin (not 15)"
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | awk '$4 == "online"' | grep -q .; then
  say "note: a system PostgreSQL cluster is running ($(pg_lsclusters -h | awk '$4 == "online" {printf "%s/%s on port %s ", $1, $2, $3}')); it is left alone: tests and labs use other ports"
fi
