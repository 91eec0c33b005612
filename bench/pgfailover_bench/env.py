"""Where the bench runs: folders, ports, the pgfailover binary, and what a run has started.

BENCH_WORK / BENCH_RESULTS / BENCH_DOC / BENCH_IMG / BENCH_PORT_BASE let a trial run beside a real
one. PGF_BIN changes once a run starts (prepare.freeze_binary), so read it as env.PGF_BIN.
"""
import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
WORK = os.environ.get("BENCH_WORK", os.path.join(BENCH, ".work"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(BENCH, "results"))
DOC = os.environ.get("BENCH_DOC", os.path.join(REPO, "docs", "benchmarks.md"))
IMG = os.environ.get("BENCH_IMG", os.path.join(REPO, "docs", "img"))
PGBIN = "/usr/lib/postgresql/15/bin"
BUILD_DIR = os.path.join(REPO, "build-bench")
PGF_BIN = os.environ.get("PGFAILOVER_BIN", os.path.join(BUILD_DIR, "pgfailover"))
PACKAGES = ["wrk", "gnuplot-nox", "patroni", "etcd-server", "python3-etcd", "python3-psycopg2",
            "postgresql-15-auto-failover", "pg-auto-failover-cli", "jq", "postgresql-15", "postgresql-client-15"]

# Ports (loopback only), away from the lab's defaults (6432/6433/8008).
PB = int(os.environ.get("BENCH_PORT_BASE", "26000"))
PGF_PORTS = (PB + 432, PB + 433)
PGF_HTTP = PB + 8
PAT_PORTS = (PB + 532, PB + 533)
PAT_REST = (PB + 108, PB + 109)
ETCD_PORTS = (PB + 379, PB + 380)
PAF_MONITOR_PORT = PB + 632
PAF_PORTS = (PB + 633, PB + 634)

STARTED = []  # Popen objects we started; stopped by PID at exit
PROVENANCE = {}  # what the pgfailover binary was built from
