"""The report's figures, drawn with gnuplot into docs/img (BENCH_IMG); without gnuplot, none."""
import os
import shutil
import statistics
import subprocess

from . import env
from .systems import ordered
from .util import log


def gnuplot(script, png):
    if not shutil.which("gnuplot"):
        return None
    os.makedirs(env.IMG, exist_ok=True)
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        log(f"gnuplot failed for {png}: {r.stderr[-500:]}")
        return None
    return "img/" + os.path.basename(png)


def short(name):
    return name.split(" (")[0]


def fp_totals(sysres, window):
    g = sysres[window]["groups"]
    return (sum(v["pss_kb_max"] for v in g.values()) / 1024, sum(v["rss_kb_max"] for v in g.values()) / 1024,
            sum(v["cpu_pct"] for v in g.values()))


def plot_failover(fo):
    os.makedirs(env.WORK, exist_ok=True)
    datf = os.path.join(env.WORK, "failover.dat")
    names = []
    with open(datf, "w") as f:
        for i, (name, runs) in enumerate(fo["configs"].items()):
            names.append(short(name).replace("pg_auto_failover", "pg\\\\_auto\\\\_failover").replace(" ", "\\n"))
            gaps = [r["max_gap_s"] for r in runs if r.get("max_gap_s") is not None]
            for r in runs:
                if r.get("max_gap_s") is not None:
                    f.write(f"{i} {r['max_gap_s']} {statistics.median(gaps)}\n")
    png = os.path.join(env.IMG, "bench-failover.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(names))
    return gnuplot(f"""set terminal pngcairo size 1150,480 font ',10'
set output '{png}'
set bmargin 5
set title 'Longest gap between acknowledged writes after kill -9 of the primary (each point one run; bar = median)'
set ylabel 'seconds'
set xtics ({xt})
set xrange [-0.5:{len(names) - 0.5}]
set yrange [0:*]
set grid ytics
set key outside right top vertical
plot '{datf}' using 1:2 with points pt 7 ps 1.1 lc rgb '#1f77b4' title 'one run', \\
     '{datf}' using 1:3:(0.3):(0) with vectors nohead lw 3 lc rgb '#d62728' title 'median', \\
     '{datf}' using ($1-0.15):3:(0.3):(0) with vectors nohead lw 3 lc rgb '#d62728' notitle
""", png)


def plot_rejoin(rj):
    rows = [r for r in rj["results"] if r.get("pg_basebackup_s") is not None]
    if not rows:
        return None
    datf = os.path.join(env.WORK, "rejoin.dat")
    with open(datf, "w") as f:
        for r in rows:
            d = (r.get("rejoin") or {}).get("duration_ms")

            def diverged(key):
                last = (r.get(key) or {}).get("rejoin") or {}
                ms = last.get("duration_ms") if last.get("succeeded") else None
                return f"{ms / 1000}" if ms is not None else "NaN"
            f.write(f"{r['db_bytes'] / 2**30:.3f} {d / 1000 if d is not None else 'NaN'} {r['pg_basebackup_s']} "
                    f"{diverged('diverged')} {diverged('diverged_rewind')}\n")
    png = os.path.join(env.IMG, "bench-rejoin.png")
    return gnuplot(f"""set terminal pngcairo size 800,450 font ',10'
set output '{png}'
set title 'Rejoin of the old primary after a failover'
set xlabel 'database size (GiB)'
set ylabel 'seconds'
set grid
set yrange [0:*]
set key top left
plot '{datf}' using 1:2 with linespoints pt 7 lw 2 title 'not diverged: pgfailover rejoin (follow)', \\
     '{datf}' using 1:4 with linespoints pt 9 lw 2 title 'diverged: pgfailover rejoin (rewind auto)', \\
     '{datf}' using 1:5 with linespoints pt 11 lw 2 title 'diverged: pg\\_rewind (rewind always)', \\
     '{datf}' using 1:3 with linespoints pt 5 lw 2 title 'pg\\_basebackup (full re-clone)'
""", png)


def plot_footprint(fp):
    datf = os.path.join(env.WORK, "footprint.dat")
    names = []
    with open(datf, "w") as f:
        for i, (name, res) in enumerate(ordered(fp["systems"])):
            pss, _, cpu = fp_totals(res, "idle")
            _, _, cpu_l = fp_totals(res, "pgbench")
            names.append(name.replace("_", "\\\\_"))
            f.write(f"{i} {pss:.2f} {cpu:.3f} {cpu_l:.3f}\n")
    png = os.path.join(env.IMG, "bench-footprint.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(names))
    return gnuplot(f"""set terminal pngcairo size 1000,420 font ',10'
set output '{png}'
set multiplot layout 1,2 title 'Failover manager processes (Patroni incl. etcd, pg\\_auto\\_failover incl. the monitor and its PostgreSQL)'
set style fill solid 0.7
set boxwidth 0.35
set xtics ({xt})
set xrange [-0.6:{len(names) - 0.4}]
set yrange [0:*]
set grid ytics
set title 'memory: sum of PSS (MB), idle'
plot '{datf}' using 1:2 with boxes notitle lc rgb '#1f77b4'
set title 'CPU (% of one core)'
set key top left
plot '{datf}' using ($1-0.18):3 with boxes title 'idle' lc rgb '#2ca02c', \\
     '{datf}' using ($1+0.18):4 with boxes title 'primary under pgbench' lc rgb '#ff7f0e'
unset multiplot
""", png)


def plot_http(ht):
    datf = os.path.join(env.WORK, "http.dat")
    labels = []
    with open(datf, "w") as f:
        i = 0
        for name, res in ordered(ht["systems"]):
            for path, r in res.items():
                esc = name.replace("_", "\\\\_")
                labels.append(f"{esc}\\n{path}")
                f.write(f"{i} {r['requests_per_s'] or 0}\n")
                i += 1
    png = os.path.join(env.IMG, "bench-http.png")
    xt = ", ".join(f'"{n}" {i}' for i, n in enumerate(labels))
    return gnuplot(f"""set terminal pngcairo size 900,460 font ',10'
set output '{png}'
set title 'HTTP API: requests/s under wrk -t2 -c16 (log scale)'
set bmargin 5
set style fill solid 0.7
set boxwidth 0.6
set logscale y
set xtics ({xt})
set xrange [-0.6:{len(labels) - 0.4}]
set grid ytics
plot '{datf}' using 1:2 with boxes notitle lc rgb '#1f77b4'
""", png)

