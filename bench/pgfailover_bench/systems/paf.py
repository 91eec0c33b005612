"""pg_auto_failover 2.0 (Debian): a monitor and two nodes, each `pg_autoctl ... --run` as postgres."""
import json
import os
import shutil
import signal
import subprocess

from .. import env
from ..procs import descendants, postmaster_pid, proc_cmd, setpriv_postgres, stop_pid
from ..util import port_free, sh, wait_for
from .base import Cluster

# the monitor's health checks tightened ...
PAF_TIGHT = {"pgautofailover.health_check_period": 1000, "pgautofailover.health_check_timeout": 1000,
             "pgautofailover.health_check_max_retries": 1, "pgautofailover.health_check_retry_delay": 500,
             "pgautofailover.node_considered_unhealthy_timeout": 2000}
# ... and the monitor's wait for the old primary to demote itself (30 s by default) cut too
PAF_FASTEST = dict(PAF_TIGHT, **{"pgautofailover.primary_demote_timeout": 2000})


class PafCluster(Cluster):
    """monitor_settings: pgautofailover.* settings written into the monitor's postgresql.auto.conf."""

    name = "pg_auto_failover"
    title = "pg_auto_failover"
    failover_timeout = 180

    def __init__(self, monitor_settings=None):
        self.dir = os.path.join(env.WORK, "paf")
        self.monitor_settings = monitor_settings or {}
        self.procs = {}
        self.monitor_uri = f"postgres://autoctl_node@127.0.0.1:{env.PAF_MONITOR_PORT}/pg_auto_failover?sslmode=disable"
        self.ports = env.PAF_PORTS

    def autoctl_env(self):
        return dict(os.environ, XDG_CONFIG_HOME=os.path.join(self.dir, "xdg", "config"),
                    XDG_DATA_HOME=os.path.join(self.dir, "xdg", "data"),
                    XDG_RUNTIME_DIR=os.path.join(self.dir, "xdg", "run"),
                    PG_CONFIG=f"{env.PGBIN}/pg_config", PATH=f"{env.PGBIN}:{os.environ.get('PATH', '')}",
                    HOME=self.dir)

    def spawn(self, name, args):
        logf = open(os.path.join(self.dir, f"{name}.log"), "a")
        p = subprocess.Popen([*setpriv_postgres(), "/usr/bin/pg_autoctl", *args], stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir, env=self.autoctl_env())
        env.STARTED.append(p)
        self.procs[name] = p
        return p

    def up(self):
        self.down()
        for p in (env.PAF_MONITOR_PORT, *env.PAF_PORTS):
            if not port_free(p):
                raise RuntimeError(f"port {p} is taken")
        os.makedirs(self.dir)
        shutil.chown(self.dir, "postgres", "postgres")
        mon = os.path.join(self.dir, "monitor")
        sh([*setpriv_postgres(), "/usr/bin/pg_autoctl", "create", "monitor", "--pgdata", mon,
            "--pgport", str(env.PAF_MONITOR_PORT), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
            "--auth", "trust", "--no-ssl"], env=self.autoctl_env(), cwd=self.dir, timeout=300)
        if self.monitor_settings:
            with open(os.path.join(mon, "postgresql.auto.conf"), "a") as f:
                for k, v in self.monitor_settings.items():
                    f.write(f"{k} = '{v}'\n")
        self.spawn("monitor", ["run", "--pgdata", mon])
        wait_for(lambda: self.monitor_sql("SELECT 1") == "1", 120, "pg_auto_failover monitor")
        for i, name in enumerate(("n1", "n2")):
            self.spawn(name, ["create", "postgres", "--pgdata", os.path.join(self.dir, name), "--pgport",
                              str(env.PAF_PORTS[i]), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
                              "--name", name, "--auth", "trust", "--no-ssl", "--monitor", self.monitor_uri,
                              "--run"])
            want = "single" if i == 0 else "secondary"  # the first node is "single" until a second joins
            wait_for(lambda: self.state(name) == (want, want), 300, f"pg_auto_failover {name} {want}")
        # the primary goes primary -> wait_primary -> primary once n2 is a secondary
        wait_for(lambda: self.state("n1") == ("primary", "primary"), 120, "pg_auto_failover n1 primary")
        got = self.monitor_sql("SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings "
                               "WHERE name LIKE 'pgautofailover.%'")
        self.effective_settings = dict(kv.split("=", 1) for kv in got.split())

    def monitor_sql(self, sql):
        return sh(["psql", "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", str(env.PAF_MONITOR_PORT),
                   "-U", "autoctl_node", "-d", "pg_auto_failover", "-c", sql], check=False).stdout.strip()

    def state(self, name):
        r = self.monitor_sql(f"SELECT reportedstate || ',' || goalstate FROM pgautofailover.node WHERE nodename = '{name}'")
        return tuple(r.split(",")) if r else None

    def data_dir(self, name):
        return os.path.join(self.dir, name)

    def dsn(self, port=None):
        if port:
            return f"host=127.0.0.1 port={port} dbname=postgres user=postgres connect_timeout=2"
        return (f"host=127.0.0.1,127.0.0.1 port={env.PAF_PORTS[0]},{env.PAF_PORTS[1]} dbname=postgres user=postgres "
                f"target_session_attrs=read-write connect_timeout=1")

    def manager_pids(self, name):
        """pg_autoctl processes of one node/monitor: the supervisor and its pg_autoctl children."""
        p = self.procs.get(name)
        if not p or p.poll() is not None:
            return []
        return [p.pid] + [c for c in descendants(p.pid) if proc_cmd(c).startswith("pg_autoctl")]

    def down(self):
        for name, p in list(self.procs.items())[::-1]:
            if p.poll() is None:
                stop_pid(p.pid, grace=30)
            try:
                p.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            if p in env.STARTED:
                env.STARTED.remove(p)
        self.procs.clear()
        for name in ("n1", "n2", "monitor"):
            dd = os.path.join(self.dir, name)
            pid = postmaster_pid(dd)
            if pid:
                sh([*setpriv_postgres(), f"{env.PGBIN}/pg_ctl", "stop", "-D", dd, "-m", "immediate"], check=False)
                if postmaster_pid(dd):
                    os.kill(pid, signal.SIGKILL)
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)

    def crash_primary(self):
        # an agent per node: the primary node's pg_autoctl processes die with its postmaster;
        # the monitor keeps running
        pm = postmaster_pid(self.data_dir("n1"))
        mgr = self.manager_pids("n1")
        if not pm or not mgr:
            raise RuntimeError("no postmaster or pg_autoctl for pg_auto_failover n1")

        def kill():
            for pid in [*mgr, pm]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return kill

    def failover_details(self):
        return {"monitor_settings": self.effective_settings}

    def footprint_groups(self):
        mon_dd = self.data_dir("monitor")
        return {"pg_autoctl (primary)": lambda: self.manager_pids("n1"),
                "pg_autoctl (secondary)": lambda: self.manager_pids("n2"),
                "pg_autoctl (monitor)": lambda: self.manager_pids("monitor"),
                "monitor's PostgreSQL": lambda: [postmaster_pid(mon_dd)] + descendants(postmaster_pid(mon_dd))}

    def footprint_details(self):
        return {"settings": json.dumps(self.monitor_settings) if self.monitor_settings else "defaults"}
