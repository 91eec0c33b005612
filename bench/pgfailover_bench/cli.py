"""pgfailover benchmarks against Patroni and pg_auto_failover. Usage: bench/run [--quick] [--runs N] [PART...]

Parts: failover rejoin footprint http (and report, which only regenerates docs/benchmarks.md).
Raw results go to bench/results/<part>.json; docs/benchmarks.md is regenerated from every
results file present. Nothing here asserts on timings: a part fails only when something is
broken (a cluster does not come up, a tool is missing, no failover happens at all).
Processes are stopped by the PID this script started or read from a pid file, never by name.
"""
import argparse
import os
import shutil
import signal
import sys
import time

from . import env
from .parts.failover import CONFIG_IDS, part_failover
from .parts.footprint import part_footprint_http
from .parts.rejoin import part_rejoin
from .prepare import build, install_deps
from .procs import cleanup_started
from .report import report
from .systems import PgfailoverLab
from .util import loadavg, log

PARTS = ("failover", "rejoin", "footprint", "http")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run per configuration, smallest sizes, short windows")
    ap.add_argument("--runs", type=int, default=5, help="failover runs per configuration (full run)")
    ap.add_argument("--window", type=int, help="footprint window in seconds (default 120, --quick 20)")
    ap.add_argument("--http-duration", type=int, help="seconds per wrk run (default 10, --quick 5)")
    ap.add_argument("--skip-patroni", action="store_true", help="failover: pgfailover only")
    ap.add_argument("--only", help=f"failover: regex on configuration ids ({', '.join(CONFIG_IDS)}); other "
                    "configurations' earlier results are kept")
    ap.add_argument("--systems", help="footprint/http: regex on pgfailover, patroni, pg_auto_failover; "
                    "the other systems' earlier results are kept")
    ap.add_argument("--no-install", action="store_true", help="do not run apt-get")
    ap.add_argument("parts", nargs="*", default=[])
    args = ap.parse_args()
    parts = args.parts or list(PARTS)
    for p in parts:
        if p not in (*PARTS, "report"):
            ap.error(f"unknown part {p}")
    t0 = time.time()
    os.makedirs(env.WORK, exist_ok=True)
    os.chmod(env.WORK, 0o755)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    failed = []
    try:
        if set(parts) - {"report"}:
            if not args.no_install:
                install_deps()
            build()
            if not os.access(env.PGF_BIN, os.X_OK):
                raise RuntimeError(f"{env.PGF_BIN} missing")
        for p in parts:
            try:
                if p == "failover":
                    part_failover(args)
                elif p == "rejoin":
                    part_rejoin(args)
                elif p in ("footprint", "http"):
                    if p == "http" and "footprint" in parts:
                        continue
                    part_footprint_http(args, "footprint" in parts, "http" in parts)
            except Exception as e:  # noqa: BLE001
                log(f"part {p} FAILED: {e}")
                failed.append(p)
            finally:
                cleanup_started()
        report()
    finally:
        cleanup_started()
        ran = bool(set(parts) - {"report"})  # "report" alone touches no cluster and no work folder
        if ran:
            PgfailoverLab().down()
        if ran and os.path.isdir(env.WORK):
            # everything but the daemon logs of each run (bench/.work/logs, git-ignored)
            for name in os.listdir(env.WORK):
                path = os.path.join(env.WORK, name)
                if name == "logs":
                    continue
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
    log(f"done in {time.time() - t0:.0f} s (load {loadavg()}); failed parts: {failed or 'none'}")
    sys.exit(1 if failed else 0)
