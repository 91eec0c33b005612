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
  libpq-dev libcpp-httplib-dev nlohmann-json3-dev libssh-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql-15 postgresql-client-15
  openssh-server iproute2 procps curl jq python3-psycopg2 clang-format
)

say() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done

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
fi

[[ -x /usr/lib/postgresql/15/bin/postgres ]] || {
  say "error: /usr/lib/postgresql/15/bin/postgres missing although postgresql-15 is installed"
  exit 1
}
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | awk '$4 == "online"' | grep -q .; then
  say "note: a system PostgreSQL cluster is running ($(pg_lsclusters -h | awk '$4 == "online" {printf "%s/%s on port %s ", $1, $2, $3}')); it is left alone: tests and labs use other ports"
fi
