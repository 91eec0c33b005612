"""pgfailover: scripts/lab.sh's two nodes (LAB_* env) and one daemon managing both."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

from .. import env
from ..procs import postmaster_pid, proc_mem, setpriv_postgres, smaps_breakdown, stop_pid
from ..util import http_get, log, port_free, sh, wait_for
from .base import Cluster


class PgfailoverLab(Cluster):
    name = "pgfailover"
    title = "pgfailover"
    failover_timeout = 90
    http_paths = ("/primary", "/status", "/metrics")
    reports_ticks = True

    def __init__(self, overrides=None, name="pgf"):
        """overrides: pgfailover.json sections merged over the lab's configuration at up()."""
        self.overrides = overrides
        self.dir = os.path.join(env.WORK, name)
        self.env = dict(os.environ, LAB_DIR=self.dir, LAB_PG_PORTS=f"{env.PGF_PORTS[0]},{env.PGF_PORTS[1]}",
                        LAB_HTTP_PORT=str(env.PGF_HTTP), LAB_SKIP_DEPS="1", LAB_SKIP_BUILD="1",
                        PGFAILOVER_BIN=env.PGF_BIN, LAB_TIMEOUT="120")
        self.url = self.http_url = f"http://127.0.0.1:{env.PGF_HTTP}"
        self.pgpass = os.path.join(self.dir, "pgpass")
        self.ports = env.PGF_PORTS

    def lab(self, *args, check=True):
        return sh(["bash", os.path.join(env.REPO, "scripts", "lab.sh"), *args], env=self.env, check=check,
                  timeout=600)

    def up(self, config_overrides=None):
        overrides = config_overrides if config_overrides is not None else self.overrides
        self.down()
        for p in (*env.PGF_PORTS, env.PGF_HTTP):
            if not port_free(p):
                raise RuntimeError(f"port {p} is taken")
        self.lab("up")
        if overrides:
            self.restart_daemon(overrides)
        wait_for(lambda: self.status().get("state") == "healthy", 60, "pgfailover state healthy")

    def daemon_pid(self):
        with open(os.path.join(self.dir, "pgfailover.pid")) as f:
            return int(f.read().strip())

    def restart_daemon(self, overrides):
        cfg_path = os.path.join(self.dir, "pgfailover.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        for section, values in overrides.items():
            cfg.setdefault(section, {}).update(values)
        stop_pid(self.daemon_pid())
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        sh([env.PGF_BIN, "check-config", "--config", cfg_path])
        logf = open(os.path.join(self.dir, "pgfailover.log"), "a")
        p = subprocess.Popen([env.PGF_BIN, "run", "--config", cfg_path], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "pgfailover.pid"), "w") as f:
            f.write(f"{p.pid}\n")
        wait_for(lambda: http_get(self.url + "/readyz")[0] == 200, 60, "pgfailover /readyz")

    def status(self):
        code, body = http_get(self.url + "/status")
        return json.loads(body) if code else {}

    def node_status(self, name):
        for n in self.status().get("nodes", []):
            if n.get("name") == name:
                return n
        return {}

    def down(self):
        if os.path.exists(self.dir):
            keep = os.path.join(env.WORK, "logs")
            os.makedirs(keep, exist_ok=True)
            src = os.path.join(self.dir, "pgfailover.log")
            if os.path.exists(src):
                shutil.copy(src, os.path.join(keep, f"pgfailover-{time.strftime('%H%M%S')}.log"))
            self.lab("down", check=False)

    def data_dir(self, node):
        return os.path.join(self.dir, node, "data")

    def port(self, node):
        return env.PGF_PORTS[0] if node == "pg1" else env.PGF_PORTS[1]

    def dsn(self, port=None):
        if port:
            return f"host=127.0.0.1 port={port} dbname=postgres user=pgfailover passfile={self.pgpass} connect_timeout=2"
        return (f"host=127.0.0.1,127.0.0.1 port={env.PGF_PORTS[0]},{env.PGF_PORTS[1]} dbname=postgres user=pgfailover "
                f"passfile={self.pgpass} target_session_attrs=read-write connect_timeout=1")

    # its metrics -------------------------------------------------------------------------

    def metric(self, name):
        _, body = http_get(self.url + "/metrics")
        total = 0.0
        found = False
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None

    def probe_failures(self):
        """pgfailover_probe_failures_total by node and reason."""
        _, body = http_get(self.url + "/metrics")
        out = {}
        for line in body.splitlines():
            if line.startswith("pgfailover_probe_failures_total{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                out[f"{labels.get('node')}/{labels.get('reason')}"] = float(line.rsplit(" ", 1)[1])
        return out

    def histogram(self, name):
        """Count, sum and cumulative buckets of one histogram, over all its label sets."""
        _, body = http_get(self.url + "/metrics")
        count = total = 0.0
        buckets = {}
        for line in body.splitlines():
            if line.startswith(name + "_count"):
                count += float(line.rsplit(" ", 1)[1])
            elif line.startswith(name + "_sum"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith(name + "_bucket"):
                le = re.search(r'le="([^"]+)"', line).group(1)
                buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
        return {"count": count, "sum": total, "buckets": buckets}

    def heartbeat_wal(self, lsn0, lsn1):
        """WAL of pgfailover's heartbeat between two LSNs on pg1, from pg_waldump: every record on the
        heartbeat table (full-page images included) plus the commit records of those transactions."""
        fn = self.psql(env.PGF_PORTS[0], "SELECT pg_relation_filenode('pgfailover.heartbeat')")
        r = sh([*setpriv_postgres(), f"{env.PGBIN}/pg_waldump", "-p", os.path.join(self.data_dir("pg1"), "pg_wal"),
                "-s", lsn0, "-e", lsn1], check=False)
        recs = []
        for line in r.stdout.splitlines():
            m = re.search(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+)", line)
            if m:
                recs.append((int(m.group(1)), int(m.group(2)), line))
        xids = {tx for tot, tx, line in recs if f"/{fn} " in line or line.rstrip().endswith(f"/{fn}") or f"/{fn} blk" in line}
        xids.discard(0)
        hb = sum(tot for tot, tx, line in recs if tx in xids or f"/{fn} " in line or f"/{fn} blk" in line)
        return {"heartbeat_bytes": hb, "all_bytes": sum(t for t, _, _ in recs), "heartbeat_xacts": len(xids),
                "records": len(recs)}

    # what the parts need -------------------------------------------------------------------

    def crash_primary(self):
        # one daemon manages both nodes (as on a third host): only pg1's postmaster dies
        pid = postmaster_pid(self.data_dir("pg1"))
        if not pid:
            raise RuntimeError("no postmaster for pg1")

        def kill():
            os.kill(pid, signal.SIGKILL)
        return kill

    def failover_details(self):
        return {"last_failover_duration_metric_s": self.metric("pgfailover_last_failover_duration_seconds")}

    def footprint_groups(self):
        pid = self.daemon_pid()
        return {"pgfailover": lambda: [pid]}

    def footprint_counters(self):
        return lambda: {"ticks": self.metric("pgfailover_ticks_total")}

    def footprint_wal_detail(self):
        return self.heartbeat_wal

    def footprint_details(self):
        pid = self.daemon_pid()
        res = {"smaps_rss_kb": smaps_breakdown(pid)}
        with open(f"/proc/{pid}/status") as f:
            res["threads"] = int(next(ln for ln in f if ln.startswith("Threads:")).split()[1])
        res["binary"] = env.PGF_BIN
        res["binary_size_bytes"] = os.path.getsize(env.PGF_BIN)
        res["probe_interval_ms"] = 1000
        return res

    def http_details(self):
        # does hammering the API grow pgfailover's memory (per-thread malloc arenas, stacks)?
        mem = {k: v for k, v in proc_mem(self.daemon_pid()).items() if k != "cpu_s"}
        log(f"  pgfailover memory after wrk: {mem}")
        return {"pgfailover_memory_after_kb": mem}
