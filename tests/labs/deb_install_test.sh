#!/usr/bin/env bash
# The Debian package as users install it: dist/pgfailover_<version>_<arch>.deb goes with apt into
# a clean Debian 12 root (the compose lab's debootstrapped base plus PostgreSQL 15 and the
# package's library dependencies, cached as one tarball per dependency set in
# /var/tmp/pgfailover-compose), and everything runs from the installed files only:
#   - the postinst made the pgfailover user, /var/lib/pgfailover and /etc/pgfailover with the
#     documented owners and modes; the units, man page, node scripts and examples are in place;
#   - the installed node scripts make a primary and a streaming replica (real PostgreSQL 15);
#   - the daemon runs as the unit runs it (its ExecStart, User=, $NOTIFY_SOCKET a real unix
#     datagram socket): READY=1, a healthy /status, WATCHDOG=1;
#   - ExecReload (SIGHUP) applies a changed timeout and log level, names http.port as needing a
#     restart, and says RELOADING=1 then READY=1;
#   - the lease guard runs as its template unit runs it (when this build has the subcommand);
#   - SIGTERM: STOPPING=1, exit 0, the primary's lease released in PostgreSQL;
#   - reinstalling keeps the edited /etc/pgfailover/pgfailover.json; purge removes the state
#     directory and the binary.
# Also `cmake --install` from BUILD_DIR (when given) twice, the second keeping an edited config.
#
# Everything runs in a private mount and network namespace (loopback only) held by one process,
# so the root's mounts and ports never reach the host and vanish with it. Needs root.
# Usage: tests/labs/deb_install_test.sh [DEB]   (default: the newest dist/pgfailover_*.deb)
# Environment: BUILD_DIR (a configured build to test `cmake --install` with).
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
CE_TAG="deb-install-test"
export CE_TAG
# shellcheck source=scripts/lib/compose-env.sh
source "$REPO_ROOT/scripts/lib/compose-env.sh"

say() { printf 'deb-install-test: %s\n' "$*" >&2; }
fail() {
  say "FAIL: $*"
  local log
  for log in "${daemon_log:-}" "${notify_log:-}"; do
    if [[ -n $log && -s $log ]]; then
      say "--- last lines of $log"
      tail -n 25 -- "$log" >&2
    fi
  done
  exit 1
}
((EUID == 0)) || fail "needs root (chroot, namespaces)"
for tool in unshare nsenter chroot python3 curl dpkg-deb; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done

deb=${1:-$(find "$REPO_ROOT/dist" -maxdepth 1 -name 'pgfailover_*.deb' -printf '%T@ %p\n' 2>/dev/null |
  sort -rn | head -n 1 | cut -d' ' -f2-)}
[[ -n $deb && -f $deb ]] || fail "no package: run scripts/package.sh first (or pass the .deb)"
deb=$(cd -- "$(dirname -- "$deb")" && pwd)/$(basename -- "$deb")
say "package: $deb"

work=$(mktemp -d /var/tmp/pgfailover-deb-test.XXXXXX)
root=$work/root
holder=""
cleanup() {
  local status=$? pid
  # Processes started in the root (PostgreSQL, the daemon, the guard), found by their root.
  for pid in $(find /proc/[0-9]*/root -maxdepth 0 -lname "$root" 2>/dev/null | cut -d/ -f3); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -n ${listener:-} ]]; then kill "$listener" 2>/dev/null || true; fi
  # The namespace's mounts (proc, dev) go with its last process.
  if [[ -n $holder ]]; then
    kill -KILL "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
  fi
  if findmnt -rn -o TARGET | grep -qF -- "$work"; then
    say "something is still mounted under $work: left in place"
  else
    rm -rf --one-file-system -- "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS
# The root: base + PostgreSQL 15 + the package's dependencies, cached per dependency list so a
# changed Depends gets a fresh root and an unchanged one installs offline.
depends=$(dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep . | sort | tr '\n' ' ')
key=$(printf '%s' "$depends postgresql-15 postgresql-client-15 procps" | sha256sum | cut -c1-12)
root_tar=$CE_WORK/deb-test-root-$key.tar
if [[ ! -s $root_tar ]]; then
  ce_base_tar
  prep=$work/prep
  mkdir -p "$prep"
  tar -C "$prep" -xf "$CE_BASE_TAR"
  cp /etc/resolv.conf "$prep/etc/resolv.conf"
  # No service starts inside the root while packages install, and no "main" cluster is made.
  printf '#!/bin/sh\nexit 101\n' >"$prep/usr/sbin/policy-rc.d"
  chmod 0755 "$prep/usr/sbin/policy-rc.d"
  mkdir -p "$prep/etc/postgresql-common/createcluster.d"
  echo "create_main_cluster = false" >"$prep/etc/postgresql-common/createcluster.d/no-main.conf"
  say "preparing the root: apt-get install postgresql-15 $depends (cached as $root_tar)"
  # shellcheck disable=SC2086,SC2016  # one word per package; $1.. expand in the inner bash
  unshare --mount --propagation private -- bash -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    shift
    root=$1
    shift
    export DEBIAN_FRONTEND=noninteractive
    chroot "$root" apt-get update -qq
    chroot "$root" apt-get install -y -qq --no-install-recommends "$@" </dev/null
    chroot "$root" apt-get clean' _ "$prep" "$prep" postgresql-15 postgresql-client-15 procps \
    $depends >"$work/prepare.log" 2>&1 || {
    tail -n 30 "$work/prepare.log" >&2
    fail "preparing the root failed"
  }
  rm -f -- "$CE_WORK"/deb-test-root-*.tar
  tar -C "$prep" --numeric-owner -cf "$root_tar.tmp" .
  mv -f -- "$root_tar.tmp" "$root_tar"
  rm -rf --one-file-system -- "$prep"
fi
mkdir -p "$root"
tar -C "$root" -xf "$root_tar"
say "root ready in $((SECONDS - started)) s"

# The namespace holder: a private mount namespace and a network namespace with loopback only.
unshare --mount --net --propagation private -- sleep 3600 &
holder=$!
sleep 0.2
ns() { nsenter --target "$holder" --mount --net -- "$@"; }
in_root() { ns chroot "$root" "$@"; }
ns ip link set lo up
ns mount -t proc proc "$root/proc"
ns mount --rbind /dev "$root/dev"

# 1. Install.
cp -- "$deb" "$root/tmp/"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  "/tmp/$(basename -- "$deb")" </dev/null >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  fail "apt-get install of the package failed"
}
say "installed with apt"
expect_stat() { # PATH OWNER:GROUP MODE
  local got
  # Names as the root's own /etc/passwd knows them (the host may give the same IDs other names).
  got=$(in_root stat -c '%U:%G %a' "$1") || fail "$1 is missing"
  [[ $got == "$2 $3" ]] || fail "$1 is $got, expected $2 $3"
}
in_root id pgfailover >/dev/null || fail "no pgfailover user"
expect_stat /var/lib/pgfailover pgfailover:pgfailover 750
expect_stat /etc/pgfailover root:pgfailover 750
expect_stat /etc/pgfailover/pgfailover.json root:pgfailover 640
for f in /usr/bin/pgfailover /lib/systemd/system/pgfailover.service \
  /lib/systemd/system/pgfailover-lease-guard@.service /usr/share/man/man1/pgfailover.1.gz \
  /usr/lib/pgfailover/node/init-primary.sh /usr/lib/pgfailover/node/clone-replica.sh \
  /usr/share/doc/pgfailover/examples/pgfailover.json /usr/share/doc/pgfailover/install.md; do
  [[ -e $root$f ]] || fail "$f is not installed"
done
version=$(dpkg-deb --field "$deb" Version)
[[ $(in_root pgfailover --version) == "pgfailover $version" ]] || fail "pgfailover --version is not $version"
subcommands=(run check-config status switchover failover history)
if in_root pgfailover --help 2>&1 | grep -q "lease-guard"; then subcommands+=(lease-guard); fi
for sub in "${subcommands[@]}"; do
  in_root pgfailover "$sub" --help >/dev/null 2>&1 || fail "pgfailover $sub --help failed"
done
say "files, owners and modes as documented; every subcommand's --help answers"

# 2. Two nodes with the installed node scripts.
printf 'superuser-password-1\n' >"$root/root/su-password"
printf 'replication-password-1\n' >"$root/root/repl-password"
# Sockets in Debian's /var/run/postgresql, where the guard's unit looks by default (SOCKET_DIR).
in_root /usr/lib/pgfailover/node/init-primary.sh --dir /srv/pg/pg1 --name pg1 --port 5433 \
  --run-dir /var/run/postgresql \
  --superuser-password-file /root/su-password --repl-password-file /root/repl-password \
  --no-sync >"$work/nodes.log" 2>&1 || {
  cat "$work/nodes.log" >&2
  fail "init-primary.sh failed"
}
in_root /usr/lib/pgfailover/node/clone-replica.sh --dir /srv/pg/pg2 --name pg2 --port 5434 \
  --run-dir /var/run/postgresql \
  --primary-host 127.0.0.1 --primary-port 5433 --repl-password-file /root/repl-password \
  --no-sync >>"$work/nodes.log" 2>&1 || {
  cat "$work/nodes.log" >&2
  fail "clone-replica.sh failed"
}
say "primary pg1 (5433) and replica pg2 (5434) from /usr/lib/pgfailover/node"

# 3. The daemon, as pgfailover.service runs it.
install -m 0640 -g "$(stat -c %g "$root/etc/pgfailover")" "$root/root/su-password" "$root/etc/pgfailover/pg-password"
# The nodes' CA the node scripts made: pgfailover verifies both servers with it (verify-full).
install -m 0644 "$root/srv/pg/ca/ca.crt" "$root/etc/pgfailover/ca.crt"
printf 'installed-admin-token-0123456789\n' >"$root/etc/pgfailover/admin-token"
chgrp "$(stat -c %g "$root/etc/pgfailover")" "$root/etc/pgfailover/admin-token"
chmod 0640 "$root/etc/pgfailover/admin-token"
write_config() { # UNRESPONSIVE_MS LOG_LEVEL HTTP_PORT
  cat >"$root/etc/pgfailover/pgfailover.json" <<EOF
{
  "cluster_name": "installed",
  "nodes": [
    {"name": "pg1", "host": "127.0.0.1", "port": 5433, "user": "pgfailover",
     "password_file": "/etc/pgfailover/pg-password",
     "sslmode": "verify-full", "sslrootcert": "/etc/pgfailover/ca.crt"},
    {"name": "pg2", "host": "127.0.0.1", "port": 5434, "user": "pgfailover",
     "password_file": "/etc/pgfailover/pg-password",
     "sslmode": "verify-full", "sslrootcert": "/etc/pgfailover/ca.crt"}
  ],
  "failover": {"confirmed_down_timeout_ms": 3000, "unresponsive_timeout_ms": $1},
  "http": {"listen_address": "127.0.0.1", "port": $3},
  "admin": {"token_file": "/etc/pgfailover/admin-token"},
  "log": {"level": "$2"},
  "state_file": "/var/lib/pgfailover/state.json"
}
EOF
}
write_config 10000 info 8008
unit=$root/lib/systemd/system/pgfailover.service
unit_key() { sed -n "s/^$1=//p" "$2"; }
exec_start=$(unit_key ExecStart "$unit")
exec_reload=$(unit_key ExecReload "$unit")
user=$(unit_key User "$unit")
[[ $(unit_key Type "$unit") == notify ]] || fail "pgfailover.service is not Type=notify"

# systemd's end of sd_notify: a unix datagram socket in the root; every datagram to a file.
notify_log=$work/notify.log
: >"$notify_log"
python3 - "$root/run/pgfailover-notify.sock" "$notify_log" <<'EOF' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path + ".tmp")
os.chmod(path + ".tmp", 0o777)
os.rename(path + ".tmp", path)  # appears only once anyone may send to it
with open(out, "a") as f:
    while True:
        f.write(s.recv(4096).decode(errors="replace").replace("\n", " ") + "\n")
        f.flush()
EOF
listener=$!
wait_for() { # SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) limit=$1 what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within $limit s"
    sleep 0.2
  done
}
notified() { grep -c -- "$1" "$notify_log" 2>/dev/null || true; }
has_notify() { (($(notified "$1") >= $2)); }
socket_ready() { [[ -S $root/run/pgfailover-notify.sock ]]; }
wait_for 10 "the notify socket" socket_ready
daemon_log=$root/var/log/pgfailover-test.log
# nsenter, chroot, env and setpriv each exec the next: $! is the daemon's PID ($MAINPID).
# systemd gives the service its user's home (libpq looks for a client certificate there).
home=$(awk -F: -v u="$user" '$1 == u {print $6}' "$root/etc/passwd")
# shellcheck disable=SC2086  # ExecStart is split into words as systemd does (no quoting in it)
nsenter --target "$holder" --mount --net -- chroot "$root" env NOTIFY_SOCKET=/run/pgfailover-notify.sock \
  HOME="$home" setpriv --reuid="$user" --regid="$user" --init-groups $exec_start >"$daemon_log" 2>&1 &
daemon=$!
say "daemon started as $user: $exec_start"
wait_for 30 "READY=1 from the daemon" has_notify READY=1 1
status_json() { ns curl -sf --max-time 2 http://127.0.0.1:8008/status || true; }
healthy() { [[ $(status_json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("state",""))' 2>/dev/null) == healthy ]]; }
wait_for 30 "a healthy cluster in /status" healthy
wait_for 10 "WATCHDOG=1" has_notify WATCHDOG=1 2
say "READY=1, WATCHDOG=1, /status healthy ($(notified WATCHDOG=1) watchdog pings so far)"

# 4. Reload as ExecReload does it.
write_config 20000 debug 8010
in_root sh -c "${exec_reload//\$MAINPID/$daemon}" || fail "ExecReload failed: $exec_reload"
reloaded() { grep -q "reloaded: applied failover.unresponsive_timeout_ms, log.level" "$daemon_log"; }
wait_for 10 "the reload applied the timeout and the log level" reloaded
grep -q "http.port changed in /etc/pgfailover/pgfailover.json but needs a restart" "$daemon_log" ||
  fail "the reload did not name http.port as needing a restart"
wait_for 5 "RELOADING=1" has_notify RELOADING=1 1
wait_for 5 "READY=1 after the reload" has_notify READY=1 2
healthy || fail "not healthy on the old port after the reload"
say "reload: timeout and log level applied, http.port refused by name, RELOADING=1 then READY=1"

# 5. The lease guard, as its template unit runs it (instance pg1).
if in_root pgfailover --help 2>&1 | grep -q "lease-guard"; then
  guard_unit=$root/lib/systemd/system/pgfailover-lease-guard@.service
  mkdir -p "$root/etc/pgfailover/lease-guard"
  printf 'NODE=pg1\nPORT=5433\nGUARD_OPTIONS=\n' >"$root/etc/pgfailover/lease-guard/pg1.conf"
  guard_start=$(unit_key ExecStart "$guard_unit")
  guard_user=$(unit_key User "$guard_unit")
  guard_defaults=$(unit_key Environment "$guard_unit")
  # As systemd does: the unit's Environment= first, then the instance file read as root
  # (/etc/pgfailover is root:pgfailover 0750), its variables in the environment of ExecStart,
  # run as User=.
  # shellcheck disable=SC2016  # expanded by the shells in the root
  nsenter --target "$holder" --mount --net -- chroot "$root" bash -c \
    'set -a; export $4; . "$1"; set +a; exec setpriv --reuid="$2" --regid="$2" --init-groups bash -c "exec $3"' \
    _ /etc/pgfailover/lease-guard/pg1.conf "$guard_user" "$guard_start" "$guard_defaults" \
    >"$work/guard.log" 2>&1 &
  guard=$!
  sleep 3
  kill -0 "$guard" 2>/dev/null || {
    cat "$work/guard.log" >&2
    fail "the lease guard exited: $guard_start"
  }
  grep -q "guarding node pg1" "$work/guard.log" || {
    cat "$work/guard.log" >&2
    fail "the lease guard did not say it guards pg1"
  }
  if grep -q "check_failed" "$work/guard.log"; then
    cat "$work/guard.log" >&2
    fail "the lease guard could not check its node"
  fi
  kill -TERM "$guard"
  guard_status=0
  wait "$guard" || guard_status=$?
  [[ $guard_status == 0 || $guard_status == 143 ]] || {
    cat "$work/guard.log" >&2
    fail "the lease guard exited $guard_status on SIGTERM"
  }
  say "lease guard ran as $guard_user from its unit's ExecStart and stopped on SIGTERM"
else
  say "NOTE: this build has no 'pgfailover lease-guard' subcommand: the guard unit is not run"
fi

# 6. Stop.
kill -TERM "$daemon"
daemon_status=0
wait "$daemon" || daemon_status=$?
[[ $daemon_status == 0 ]] || fail "the daemon exited $daemon_status on SIGTERM"
has_notify STOPPING=1 1 || fail "no STOPPING=1"
grep -q lease_released "$daemon_log" || fail "the daemon did not release the lease"
lease=$(in_root runuser -u postgres -- psql -h /var/run/postgresql -p 5433 -d postgres -Atc \
  "SELECT lease_ms FROM pgfailover.heartbeat WHERE id = 1")
[[ $lease == 0 ]] || fail "the heartbeat row still holds a lease ($lease ms)"
[[ -s $root/var/lib/pgfailover/state.json ]] || fail "no state file in /var/lib/pgfailover"
say "SIGTERM: STOPPING=1, exit 0, lease released (lease_ms = 0), state file written"

# 7. Reinstall keeps the edited configuration; purge removes what the package made.
before=$(sha256sum <"$root/etc/pgfailover/pgfailover.json")
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
  "/tmp/$(basename -- "$deb")" </dev/null >>"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  fail "reinstalling failed"
}
[[ $(sha256sum <"$root/etc/pgfailover/pgfailover.json") == "$before" ]] ||
  fail "reinstalling changed /etc/pgfailover/pgfailover.json"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q pgfailover </dev/null \
  >>"$work/install.log" 2>&1 || fail "apt-get purge failed"
[[ ! -e $root/usr/bin/pgfailover ]] || fail "purge left /usr/bin/pgfailover"
[[ ! -e $root/var/lib/pgfailover ]] || fail "purge left /var/lib/pgfailover"
[[ ! -e $root/etc/pgfailover/pgfailover.json ]] || fail "purge left the configuration"
say "reinstall kept the edited configuration; purge removed the binary, configuration and state"

# 8. cmake --install: twice, the second keeping an edited configuration.
if [[ -n ${BUILD_DIR:-} ]]; then
  prefix=$work/cmake-install
  cmake --install "$BUILD_DIR" --prefix "$prefix" >"$work/cmake-install.log" 2>&1 ||
    fail "cmake --install failed"
  for f in bin/pgfailover lib/systemd/system/pgfailover.service \
    lib/systemd/system/pgfailover-lease-guard@.service share/man/man1/pgfailover.1 \
    lib/pgfailover/node/init-primary.sh etc/pgfailover/pgfailover.json; do
    [[ -e $prefix/$f ]] || fail "cmake --install did not install $f"
  done
  echo '{"edited": true}' >"$prefix/etc/pgfailover/pgfailover.json"
  cmake --install "$BUILD_DIR" --prefix "$prefix" >>"$work/cmake-install.log" 2>&1
  grep -q edited "$prefix/etc/pgfailover/pgfailover.json" ||
    fail "cmake --install replaced an existing configuration"
  say "cmake --install: every file in place; an existing configuration kept"
fi
say "PASS in $((SECONDS - started)) s"
