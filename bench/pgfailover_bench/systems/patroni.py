"""Patroni 3 (Debian) with one etcd: a `patroni` agent per node, each run as postgres."""
import json
import os
import shutil
import signal
import subprocess

from .. import env
from ..procs import postmaster_pid, setpriv_postgres, stop_pid
from ..util import http_get, port_free, sh, wait_for
from .base import Cluster

DEFAULT_DCS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}


class PatroniCluster(Cluster):
    name = "patroni"
    title = "Patroni"
    failover_timeout = 120
    http_paths = ("/primary", "/patroni", "/metrics")

    @classmethod
    def at_defaults(cls):
        return cls(**DEFAULT_DCS)

    def __init__(self, ttl, loop_wait, retry_timeout):
        self.dir = os.path.join(env.WORK, "patroni")
        self.dcs = {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout}
        self.procs = {}
        self.etcd = None
        self.pgpass = os.path.join(self.dir, "client.pgpass")
        self.ports = env.PAT_PORTS
        self.http_url = f"http://127.0.0.1:{env.PAT_REST[0]}"  # the leader's REST API

    def up(self):
        self.down()
        for p in (*env.PAT_PORTS, *env.PAT_REST, *env.ETCD_PORTS):
            if not port_free(p):
                raise RuntimeError(f"port {p} is taken")
        os.makedirs(self.dir)
        shutil.chown(self.dir, "postgres", "postgres")
        etcd_dir = os.path.join(self.dir, "etcd")
        logf = open(os.path.join(self.dir, "etcd.log"), "w")
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", etcd_dir,
             "--listen-client-urls", f"http://127.0.0.1:{env.ETCD_PORTS[0]}",
             "--advertise-client-urls", f"http://127.0.0.1:{env.ETCD_PORTS[0]}",
             "--listen-peer-urls", f"http://127.0.0.1:{env.ETCD_PORTS[1]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{env.ETCD_PORTS[1]}",
             "--initial-cluster", f"bench=http://127.0.0.1:{env.ETCD_PORTS[1]}", "--enable-v2=true"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        env.STARTED.append(self.etcd)
        wait_for(lambda: http_get(f"http://127.0.0.1:{env.ETCD_PORTS[0]}/health")[0] == 200, 60, "etcd health")
        with open(self.pgpass, "w") as f:
            f.write("127.0.0.1:*:*:postgres:benchpw\n")
        os.chmod(self.pgpass, 0o600)
        for i, name in enumerate(("p1", "p2")):
            self.start_node(i, name)
            if i == 0:
                wait_for(lambda: self.role(0) in ("primary", "master"), 120, "patroni p1 primary")
        wait_for(lambda: self.role(1) == "replica" and self.streaming(), 180, "patroni p2 streaming")

    def start_node(self, i, name):
        ndir = os.path.join(self.dir, name)
        os.makedirs(ndir, exist_ok=True)
        shutil.chown(ndir, "postgres", "postgres")
        cfg = f"""scope: bench
name: {name}
restapi:
  listen: 127.0.0.1:{env.PAT_REST[i]}
  connect_address: 127.0.0.1:{env.PAT_REST[i]}
etcd3:
  hosts: 127.0.0.1:{env.ETCD_PORTS[0]}
bootstrap:
  dcs:
    ttl: {self.dcs['ttl']}
    loop_wait: {self.dcs['loop_wait']}
    retry_timeout: {self.dcs['retry_timeout']}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
  initdb:
  - encoding: UTF8
  - auth: scram-sha-256
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:{env.PAT_PORTS[i]}
  connect_address: 127.0.0.1:{env.PAT_PORTS[i]}
  data_dir: {ndir}/data
  bin_dir: {env.PGBIN}
  pgpass: {ndir}/pgpass
  authentication:
    superuser: {{username: postgres, password: benchpw}}
    replication: {{username: replicator, password: benchrep}}
  parameters:
    unix_socket_directories: '{ndir}'
"""
        path = os.path.join(ndir, "patroni.yml")
        with open(path, "w") as f:
            f.write(cfg)
        shutil.chown(path, "postgres", "postgres")
        logf = open(os.path.join(ndir, "patroni.log"), "a")
        p = subprocess.Popen([*setpriv_postgres(), "/usr/bin/patroni", path], stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ndir)
        env.STARTED.append(p)
        self.procs[name] = p

    def role(self, i):
        code, body = http_get(f"http://127.0.0.1:{env.PAT_REST[i]}/patroni")
        return json.loads(body).get("role") if code else None

    def streaming(self):
        r = self.psql(env.PAT_PORTS[0], "SELECT count(*) FROM pg_stat_replication WHERE state='streaming'", check=False)
        return r.strip() not in ("", "0")

    def dsn(self, port=None):
        if port:
            return f"host=127.0.0.1 port={port} dbname=postgres user=postgres passfile={self.pgpass} connect_timeout=2"
        return (f"host=127.0.0.1,127.0.0.1 port={env.PAT_PORTS[0]},{env.PAT_PORTS[1]} dbname=postgres user=postgres "
                f"passfile={self.pgpass} target_session_attrs=read-write connect_timeout=1")

    def down(self):
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                stop_pid(p.pid, grace=30)
            p.wait()
            if p in env.STARTED:
                env.STARTED.remove(p)
        self.procs.clear()
        for name in ("p1", "p2"):
            dd = os.path.join(self.dir, name, "data")
            pid = postmaster_pid(dd)
            if pid:
                sh([*setpriv_postgres(), f"{env.PGBIN}/pg_ctl", "stop", "-D", dd, "-m", "immediate"], check=False)
                if postmaster_pid(dd):
                    os.kill(pid, signal.SIGKILL)
        if self.etcd and self.etcd.poll() is None:
            stop_pid(self.etcd.pid)
            self.etcd.wait()
            env.STARTED.remove(self.etcd)
        self.etcd = None
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)

    def crash_primary(self):
        # an agent per node: the primary's patroni dies with its postmaster (a host crash)
        pm = postmaster_pid(os.path.join(self.dir, "p1", "data"))
        mgr = self.procs["p1"].pid
        if not pm:
            raise RuntimeError("no postmaster for patroni p1")

        def kill():
            os.kill(mgr, signal.SIGKILL)
            os.kill(pm, signal.SIGKILL)
        return kill

    def footprint_groups(self):
        return {"patroni (primary)": lambda: [self.procs["p1"].pid], "patroni (replica)": lambda: [self.procs["p2"].pid],
                "etcd": lambda: [self.etcd.pid]}

    def footprint_details(self):
        d = self.dcs
        return {"settings": f"ttl {d['ttl']}, loop_wait {d['loop_wait']}, retry_timeout {d['retry_timeout']}"
                + (" (defaults)" if d == DEFAULT_DCS else "")}
