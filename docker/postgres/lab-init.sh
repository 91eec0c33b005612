#!/usr/bin/env bash
# The compose lab's one-shot `init` service (docker-compose.yml): generates, once, everything
# secret the lab needs into the `lab` volume, mounted at LAB_DIR (/lab), then writes LAB_DIR/ready.
# Later runs find `ready` and change nothing, so passwords and keys survive restarts; they go
# with `docker-compose down -v`. Nothing secret is ever in the repository or an image.
#
#   /lab/nodes/        (root, 0700)  read by the node containers' entrypoints (as root)
#     superuser.password replication.password authorized_keys pg1/ssh_host_ed25519_key ...
#     ca/ca.crt ca/ca.key  the lab's CA (key 0600): each node's first start issues its own
#                          server certificate with it (scripts/node/, --ca-dir); it also signs
#                          pgfailover's HTTPS certificate below
#   /lab/ca/ca.crt     (0644, in a 0755 folder)  that CA's certificate alone, for whoever checks
#                      pgfailover's HTTPS: HAProxy, Prometheus, the nodes' guard, the CLI, tests
#   /lab/pgfailover/   (uid PGFAILOVER_UID, 0700)  read by the pgfailover container
#     pgfailover.json pgfailover.password id_ed25519 known_hosts admin.token ca.crt
#     tls/server.crt tls/server.key (0600)  the API's HTTPS certificate of both instances, for
#                      DNS:pgfailover-1, pgfailover-2 (the services' names in the compose network),
#                      pgfailover, IP:PREFIX.10 and .13, localhost, 127.0.0.1
#   /lab/grafana/      (uid GRAFANA_UID, 0700)  admin.password
#   /lab/client/       (root, 0700)  pgpass for `docker-compose exec` clients and tests
#
# pgfailover.json is both instances' (pgfailover-1, pgfailover-2): etcd.name defaults to the host
# name, which is the service's; the etcd members are PREFIX.41 to .43.
# Environment: LAB_NET_PREFIX (10.232.77: pgfailover-1 .10, pgfailover-2 .13, pg1 .11, pg2 .12), PGFAILOVER_UID
# (10001), GRAFANA_UID (472), LAB_CLUSTER_NAME (compose-lab).
set -euo pipefail

LAB_DIR=${LAB_DIR:-/lab}
PREFIX=${LAB_NET_PREFIX:-10.232.77}
PGF_UID=${PGFAILOVER_UID:-10001}
GRAFANA_UID=${GRAFANA_UID:-472}
PG_MAJOR=$(cat /etc/pgfailover-node/pg_major)
NODE_HOME=/var/lib/pgfailover-node # the same path on every node (see entrypoint.sh)

say() { printf 'lab-init: %s\n' "$*" >&2; }
[[ $PREFIX =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || {
  say "error: LAB_NET_PREFIX must be the first three octets, e.g. 10.232.77"
  exit 1
}

if [[ -f $LAB_DIR/ready ]]; then
  say "secrets already in $LAB_DIR (from $(cat "$LAB_DIR/ready")): nothing to do"
  exit 0
fi

password() {
  local p
  p=$(head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
  [[ ${#p} -eq 32 ]] || exit 1
  printf '%s' "$p"
}

umask 077
install -d -m 0700 "$LAB_DIR/nodes" "$LAB_DIR/pgfailover" "$LAB_DIR/grafana" "$LAB_DIR/client"
superuser_password=$(password)
printf '%s' "$superuser_password" >"$LAB_DIR/nodes/superuser.password"
printf '%s' "$superuser_password" >"$LAB_DIR/pgfailover/pgfailover.password"
password >"$LAB_DIR/nodes/replication.password"
password >"$LAB_DIR/pgfailover/admin.token"
password >"$LAB_DIR/grafana/admin.password"
{
  printf '*:*:*:pgfailover:%s\n' "$superuser_password"
} >"$LAB_DIR/client/pgpass"

# The nodes' CA: PostgreSQL runs with TLS, and pgfailover (verify-full) and the replicas check
# each node's certificate against it. Only ca.crt leaves /lab/nodes.
install -d -m 0700 "$LAB_DIR/nodes/ca"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$LAB_DIR/nodes/ca/ca.key" -out "$LAB_DIR/nodes/ca/ca.crt" -days 3650 \
  -subj "/CN=pgfailover compose-lab nodes CA" \
  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
chmod 0600 "$LAB_DIR/nodes/ca/ca.key"
chmod 0644 "$LAB_DIR/nodes/ca/ca.crt"
install -m 0644 "$LAB_DIR/nodes/ca/ca.crt" "$LAB_DIR/pgfailover/ca.crt"
install -m 0644 "$LAB_DIR/nodes/ca/ca.crt" "$LAB_DIR/client/ca.crt"
install -d -m 0755 "$LAB_DIR/ca"
install -m 0644 "$LAB_DIR/nodes/ca/ca.crt" "$LAB_DIR/ca/ca.crt"

# pgfailover's API runs over HTTPS only (http.tls): the admin token never crosses the lab's
# network in clear. One name per way it is reached: HAProxy's checks (check-sni) and Prometheus
# by the service name, anyone on the network by address, `docker exec` and the published port
# by loopback. The key never leaves /lab/pgfailover (0700, pgfailover's uid) and is 0600 there.
install -d -m 0700 "$LAB_DIR/pgfailover/tls"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$LAB_DIR/pgfailover/tls/server.key" -out "$LAB_DIR/pgfailover/tls/server.csr" \
  -subj "/CN=pgfailover" 2>/dev/null
openssl x509 -req -in "$LAB_DIR/pgfailover/tls/server.csr" -days 825 \
  -CA "$LAB_DIR/nodes/ca/ca.crt" -CAkey "$LAB_DIR/nodes/ca/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -out "$LAB_DIR/pgfailover/tls/server.crt" \
  -extfile <(printf '%s\n' "subjectAltName=DNS:pgfailover,DNS:pgfailover-1,DNS:pgfailover-2,IP:$PREFIX.10,IP:$PREFIX.13,DNS:localhost,IP:127.0.0.1" \
    'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth') 2>/dev/null
rm -f "$LAB_DIR/pgfailover/tls/server.csr"
chmod 0600 "$LAB_DIR/pgfailover/tls/server.key"
chmod 0644 "$LAB_DIR/pgfailover/tls/server.crt"
openssl verify -CAfile "$LAB_DIR/ca/ca.crt" "$LAB_DIR/pgfailover/tls/server.crt" >/dev/null

# pgfailover's ssh key, and one host key per node so that known_hosts is known in advance
# (no trust on first use, no ssh-keyscan at run time).
ssh-keygen -q -t ed25519 -N '' -C pgfailover@compose-lab -f "$LAB_DIR/pgfailover/id_ed25519"
printf 'from="%s.10,%s.13",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty %s\n' \
  "$PREFIX" "$PREFIX" "$(cat "$LAB_DIR/pgfailover/id_ed25519.pub")" >"$LAB_DIR/nodes/authorized_keys"
: >"$LAB_DIR/pgfailover/known_hosts"
declare -A ip=([pg1]=$PREFIX.11 [pg2]=$PREFIX.12)
for node in pg1 pg2; do
  install -d -m 0700 "$LAB_DIR/nodes/$node"
  ssh-keygen -q -t ed25519 -N '' -C "$node@compose-lab" -f "$LAB_DIR/nodes/$node/ssh_host_ed25519_key"
  printf '%s %s\n' "${ip[$node]}" "$(cut -d' ' -f1,2 "$LAB_DIR/nodes/$node/ssh_host_ed25519_key.pub")" \
    >>"$LAB_DIR/pgfailover/known_hosts"
done

jq -n --arg p1 "${ip[pg1]}" --arg p2 "${ip[pg2]}" --arg bin "/usr/lib/postgresql/$PG_MAJOR/bin" \
  --arg home "$NODE_HOME" --arg name "${LAB_CLUSTER_NAME:-compose-lab}" --arg prefix "$PREFIX" '
  def node($name; $ip): {
    name: $name, host: $ip, port: 5432, dbname: "postgres", user: "pgfailover",
    password_file: "/lab/pgfailover/pgfailover.password",
    sslmode: "verify-full", sslrootcert: "/lab/pgfailover/ca.crt",
    data_dir: ($home + "/data"), bin_dir: $bin,
    start_command: ("{bin_dir}/pg_ctl start -D {data_dir} -w -t 60 -l " + $home + "/postgresql.log"),
    ssh: {host: $ip, port: 22, user: "postgres", private_key_file: "/lab/pgfailover/id_ed25519",
          known_hosts_file: "/lab/pgfailover/known_hosts", connect_timeout_ms: 3000}
  };
  {
    cluster_name: $name,
    nodes: [node("pg1"; $p1), node("pg2"; $p2)],
    probe: {interval_ms: 1000, icmp: true},
    failover: {confirmed_down_timeout_ms: 3000, unresponsive_timeout_ms: 10000},
    replication: {user: "replicator", passfile: ($home + "/replication.pgpass"),
                  sslmode: "verify-full", sslrootcert: ($home + "/tls/ca.crt")},
    admin: {token_file: "/lab/pgfailover/admin.token"},
    http: {listen_address: "0.0.0.0", port: 8008,
           tls: {certificate: "/lab/pgfailover/tls/server.crt", key: "/lab/pgfailover/tls/server.key"}},
    state_file: "/var/lib/pgfailover/state.json",
    etcd: {endpoints: [range(41; 44) | "http://\($prefix).\(.):2379"]}
  }' >"$LAB_DIR/pgfailover/pgfailover.json"

chown -R "$PGF_UID:$PGF_UID" "$LAB_DIR/pgfailover"
chown -R "$GRAFANA_UID:$GRAFANA_UID" "$LAB_DIR/grafana"
chmod 0755 "$LAB_DIR"
date -u +%FT%TZ >"$LAB_DIR/ready"
chmod 0644 "$LAB_DIR/ready"
say "secrets, keys, pgfailover.json and its HTTPS certificate written to $LAB_DIR (pgfailover https://${PREFIX}.10:8008 and https://${PREFIX}.13:8008, pg1 ${ip[pg1]}, pg2 ${ip[pg2]}, PostgreSQL $PG_MAJOR)"
