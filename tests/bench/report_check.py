#!/usr/bin/python3
"""The bench package imports whole, its systems and failover configurations are complete, and
`bench/run report` renders docs/benchmarks.md's sections from the recorded results in
bench/results/ (into a temporary file: the real document is left alone). No cluster is started.
Usage: tests/bench/report_check.py (exit 1 with the problems listed)."""
import hashlib
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")
problems = []


def need(ok, what):
    if not ok:
        problems.append(what)


def load(part):
    try:
        with open(os.path.join(BENCH, "results", f"{part}.json")) as f:
            return json.load(f)
    except OSError:
        return None


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


sys.path.insert(0, BENCH)
import pgfailover_bench  # noqa: E402

modules = [m.name for m in pkgutil.walk_packages(pgfailover_bench.__path__, "pgfailover_bench.")]
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001
        problems.append(f"{name} does not import: {e!r}")
need(len(modules) >= 10, f"only {len(modules)} modules in pgfailover_bench")

from pgfailover_bench.parts.failover import CONFIGS  # noqa: E402
from pgfailover_bench.report import render  # noqa: E402
from pgfailover_bench.systems import SYSTEMS, Cluster  # noqa: E402

for cls in SYSTEMS:
    need(issubclass(cls, Cluster), f"{cls.__name__} is not a Cluster")
    need(cls.name and cls.title, f"{cls.__name__} has no name or title")
    for method in ("up", "down", "dsn", "crash_primary", "footprint_groups"):
        need(getattr(cls, method) is not getattr(Cluster, method), f"{cls.__name__} does not implement {method}")
    need(isinstance(cls.at_defaults(), cls), f"{cls.__name__}.at_defaults() does not build one")
ids = [cid for cid, _, _ in CONFIGS]
need(len(set(ids)) == len(ids), f"failover configuration ids repeat: {ids}")
for cid, name, make in CONFIGS:
    need(isinstance(make(), tuple(SYSTEMS)), f"failover configuration {cid} builds no system under test")

# Nothing recorded: every part says how to run it.
empty = render(None, None, None, None)
for part in ("failover", "rejoin", "footprint", "http"):
    need(f"Not run yet (`bench/run {part}`)." in empty, f"an empty report does not point at `bench/run {part}`")

# The recorded results, through bench/run as documented, into a temporary document.
doc = os.path.join(REPO, "docs", "benchmarks.md")
before = digest(doc) if os.path.exists(doc) else None
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "benchmarks.md")
    env = dict(os.environ, BENCH_DOC=out, BENCH_IMG=os.path.join(tmp, "img"), BENCH_WORK=os.path.join(tmp, "work"),
               BENCH_RESULTS=os.path.join(BENCH, "results"))
    r = subprocess.run([os.path.join(BENCH, "run"), "report"], env=env, capture_output=True, text=True, timeout=120)
    need(r.returncode == 0, f"bench/run report exited {r.returncode}: {r.stdout[-800:]}{r.stderr[-800:]}")
    text = open(out).read() if os.path.exists(out) else ""
need((digest(doc) if os.path.exists(doc) else None) == before, "bench/run report with BENCH_DOC set changed docs/benchmarks.md")
lines = text.splitlines()
for heading in ("# Benchmarks", "## Goals", "## 1. Failover: write downtime on a primary crash",
                "## 2. Rejoin of the old primary: follow, pg_rewind, and a full pg_basebackup", "## 3. Footprint",
                "## 4. HTTP API", "## Reading and notes"):
    need(heading in lines, f"the report has no heading {heading!r}")
goals = lines[lines.index("## Goals"):lines.index("## 1. Failover: write downtime on a primary crash")] \
    if "## Goals" in lines and "## 1. Failover: write downtime on a primary crash" in lines else []
need(len([ln for ln in goals if ln.startswith("| ")]) > 2, "the goals table judges nothing")

fo, rj, fp, ht = (load(p) for p in ("failover", "rejoin", "footprint", "http"))
if fo:
    for name in fo["configs"]:
        need(any(ln.startswith(f"| {name} | ") for ln in lines), f"no failover row for {name}")
if rj:
    for res in rj["results"]:
        need(any(ln.startswith(f"| {res['size']} ") for ln in lines), f"no rejoin row for {res['size']}")
if fp:
    for name in fp["systems"]:
        need(any(ln.startswith(f"| {name} | ") and "proc.)" in ln for ln in lines), f"no footprint row for {name}")
if ht:
    for name, paths in ht["systems"].items():
        for path in paths:
            need(any(ln.startswith(f"| {name} | `{path}` | ") for ln in lines), f"no HTTP row for {name} {path}")
with open(os.path.join(BENCH, "NOTES.md")) as f:
    need(f.read().strip().splitlines()[0] in lines, "bench/NOTES.md is not at the end of the report")

for p in problems:
    print(p)
print(f"{len(modules)} modules, {len(SYSTEMS)} systems, {len(CONFIGS)} failover configurations, "
      f"{len(lines)} report lines, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
