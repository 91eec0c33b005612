"""docs/benchmarks.md (BENCH_DOC) from the raw results in bench/results/*.json and bench/NOTES.md."""
import json
import os
import sys

from . import env
from .plots import fp_totals, plot_failover, plot_footprint, plot_http, plot_rejoin, short
from .systems import ordered
from .util import load_result, log, machine, stats


def fmt(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def fmt_mb(b):
    return "–" if b is None else f"{b / 2**20:.0f} MB"


def diverged_cells(d, with_wal=False):
    """The cells of one diverged round of a rejoin row: method, rejoin (s), from the kill (s),
    and (with_wal) what the new primary's pg_wal held."""
    n = 4 if with_wal else 3
    if not d:
        return " | ".join(["–"] * n)
    if d.get("error"):
        return f"not measured ({d['error']})" + " | –" * (n - 1)
    last = d.get("rejoin") or {}
    method = last.get("method") or "–"
    if not last.get("succeeded"):
        method += f" (**failed**: {last.get('error')})"
    dur = last.get("duration_ms")
    cells = [method, fmt(dur / 1000 if dur is not None else None), fmt(d.get("rejoined_after_s"))]
    if with_wal:
        cells.insert(0, fmt_mb(d.get("source_pg_wal_bytes")))
    return " | ".join(cells)


def diverged_seconds(r, key):
    last = (r.get(key) or {}).get("rejoin") or {}
    return last["duration_ms"] / 1000 if last.get("succeeded") and last.get("duration_ms") is not None else None


def judge_rejoin(ok):
    """Nearly independent of size: the largest at most 1.5 times the smallest, never slower than a re-clone."""
    d = [r["rejoin"]["duration_ms"] / 1000 for r in ok]
    slower = [r["size"] for r in ok if r["rejoin"]["duration_ms"] / 1000 > r["pg_basebackup_s"]]
    if d[-1] <= 1.5 * d[0] and not slower:
        return "yes"
    why = []
    if d[-1] > 1.5 * d[0]:
        why.append(f"grows {d[-1] / d[0]:.1f}×")
    if slower:
        why.append("slower than the re-clone at " + ", ".join(slower))
    return "**partly**: seconds, but " + "; ".join(why) + " (see notes)"


def goals_table(fo, rj, fp, ht):
    L = ["| goal | measured | met? |", "|---|---|---|"]
    if fo:
        for name, runs in fo["configs"].items():
            if name.startswith("pgfailover defaults"):
                s = stats([r.get("max_gap_s") for r in runs])
                if s["median"] is not None:
                    L.append(f"| write downtime at pgfailover's defaults: median ≤ 5 s | median {s['median']:.2f} s "
                             f"(min {s['min']:.2f}, max {s['max']:.2f}, {s['runs']} runs) | {'yes' if s['median'] <= 5 else '**no**'} |")
        meds = {short(n): stats([r.get("max_gap_s") for r in runs])["median"] for n, runs in fo["configs"].items()}
        pd = meds.get("pgfailover defaults")
        others = {k: v for k, v in meds.items() if not k.startswith("pgfailover") and v is not None}
        if pd and others:
            best = min(others, key=others.get)
            L.append(f"| … shorter than the incumbents even at their fastest | pgfailover defaults {pd:.2f} s; fastest other: "
                     f"{best} {others[best]:.2f} s | {'yes' if pd < others[best] else '**no**'} |")
    if rj:
        ok = [r for r in rj["results"] if (r.get("rejoin") or {}).get("succeeded")]
        if ok:
            lo, hi = ok[0], ok[-1]
            dl, dh = lo["rejoin"]["duration_ms"] / 1000, hi["rejoin"]["duration_ms"] / 1000
            L.append(f"| rejoin with a few MB changed: seconds, nearly independent of size | {dl:.1f} s ({lo['rejoin']['method']}) at "
                     f"{lo['size']}, {dh:.1f} s ({hi['rejoin']['method']}) at {hi['size']}; pg_basebackup {lo['pg_basebackup_s']} → "
                     f"{hi['pg_basebackup_s']} s | {judge_rejoin(ok)} |")
            dv = [(r["size"], diverged_seconds(r, "diverged"), ((r.get("diverged") or {}).get("rejoin") or {}).get("method"))
                  for r in ok]
            dv = [x for x in dv if x[1] is not None]
            if dv:
                top = max(x[1] for x in dv)
                big = [x for x in dv if x[0] == "10 GB"]
                met = bool(big) and big[0][1] <= 10
                L.append("| a diverged old primary back (issue 12): ≤ 10 s at 10 GB, nearly flat in size | "
                         + ", ".join(f"{sz}: {sec:.1f} s ({m})" for sz, sec, m in dv)
                         + f" | {'yes' if met else ('**no**' if big else 'not measured at 10 GB')}"
                         + (f" (at most {top:.1f} s)" if met else "") + " |")
    if fp and "pgfailover" in fp.get("systems", {}):
        p = fp["systems"]["pgfailover"]
        g = p["idle"]["groups"]["pgfailover"]
        rss = max(g["rss_kb_max"], p["pgbench"]["groups"]["pgfailover"]["rss_kb_max"]) / 1024
        L.append(f"| resident memory < 10 MB | RSS {rss:.1f} MB (of which anonymous {g['rss_anon_kb_max'] / 1024:.1f} MB, "
                 f"file-backed {g['rss_file_kb_max'] / 1024:.1f} MB); PSS {g['pss_kb_max'] / 1024:.1f} MB | "
                 f"{'yes' if rss < 10 else '**no** (RSS); see notes'} |")
        cpu = max(g["cpu_pct"], p["pgbench"]["groups"]["pgfailover"]["cpu_pct"])
        L.append(f"| CPU well under 1 % of a core at a 1 s interval | {g['cpu_pct']} % idle, "
                 f"{p['pgbench']['groups']['pgfailover']['cpu_pct']} % under pgbench | {'yes' if cpu < 0.5 else '**no**'} |")
    if ht and "pgfailover" in ht.get("systems", {}):
        for path in ("/primary", "/metrics"):
            r = ht["systems"]["pgfailover"].get(path)
            if r:
                ok = (r["requests_per_s"] or 0) >= 1000 and (r["p99_ms"] or 1e9) < 10
                L.append(f"| `{path}`: thousands of req/s, p99 in ms (≤ 10 ms) | {fmt(r['requests_per_s'], 0)} req/s, p99 {fmt(r['p99_ms'])} ms | "
                         f"{'yes' if ok else '**no**' if (r['requests_per_s'] or 0) < 1000 else 'req/s yes, p99 **no**'} |")
        gaps = [r.get("max_tick_gap_s") for r in ht["systems"]["pgfailover"].values() if r.get("max_tick_gap_s")]
        if gaps:
            L.append(f"| probing unaffected while the API is hammered | longest gap between ticks {max(gaps):.2f} s (interval 1 s) | "
                     f"{'yes' if max(gaps) <= 1.2 else '**no**'} |")
    return L



def section(title, part, present, body):
    """A part's section: its heading, then its body, or how to run the part when it was not run."""
    if not present:
        return [title, "", f"Not run yet (`bench/run {part}`).", ""]
    return [title, ""] + body()


def figure(png, alt):
    """The lines of a plot drawn (png relative to docs/), none when gnuplot is missing."""
    return ["", f"![{alt}]({png})"] if png else []


def failover_section(fo):
    """Section 1: write downtime per configuration, the settings, lost writes."""
    L = [f"Results from {fo['machine']['date']}{' (--quick: 1 run per configuration)' if fo.get('quick') else ''}.", "",
         "A writer (`bench/writer.py`, psycopg2) INSERTs a numbered row every 20–50 ms through "
         "`host=127.0.0.1,127.0.0.1 port=P1,P2 target_session_attrs=read-write connect_timeout=1`, reconnecting "
         "after every error. At a random moment 2–6 s after its first 20 acknowledged writes, the primary is "
         "killed with SIGKILL. **pgfailover:** one pgfailover process manages both nodes (as on a third host), so "
         "only the primary's postmaster is killed. **Patroni:** the primary's `patroni` process and its postmaster "
         "together (a host crash). **pg_auto_failover:** the primary node's `pg_autoctl` processes (supervisor, "
         "`node active`, `start/stop postgres`) and its postmaster together; the monitor keeps running. Every run "
         "starts from a fresh cluster. Downtime = the longest gap between two acknowledged writes.", "",
         "| configuration | runs | gap median (s) | gap min | gap max | kill → first write on new primary, median (s) | acked writes lost (total) | load (1 min) per run |",
         "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, runs in fo["configs"].items():
        g = stats([r.get("max_gap_s") for r in runs])
        k = stats([r.get("kill_to_first_write_s") for r in runs])
        lost = sum(r.get("lost_acked_writes") or 0 for r in runs)
        loads = ", ".join(r.get("load", "?").split()[0] for r in runs)
        errs = [r["error"] for r in runs if "error" in r]
        L.append(f"| {name} | {g['runs']}{f' (+{len(errs)} failed)' if errs else ''} | {fmt(g['median'])} | {fmt(g['min'])} | "
                 f"{fmt(g['max'])} | {fmt(k['median'])} | {lost} | {loads} |")
    L += figure(plot_failover(fo), "failover downtime")
    L += ["", "Settings beyond the defaults:", "",
          f"- pgfailover fast: `{json.dumps(fo.get('pgfailover_fast_overrides'))}`.",
          "- Patroni fast: `ttl 10, loop_wait 2, retry_timeout 4` (its rule `ttl >= loop_wait + 2 * retry_timeout` holds).",
          f"- pg_auto_failover tight (the monitor's health checks): `{json.dumps(fo.get('paf_tight_settings'))}`.",
          f"- pg_auto_failover fastest: tight plus `primary_demote_timeout` 2 s: `{json.dumps(fo.get('paf_fastest_settings'))}`.",
          ""]
    errs = [(n, r["error"]) for n, runs in fo["configs"].items() for r in runs if "error" in r]
    for n, e in errs:
        L.append(f"- failed run of {n}: {e}")
    L += ["Lost writes are acknowledged INSERT ids absent from the final primary. pgfailover and Patroni replicate "
          "asynchronously here (both default); pg_auto_failover runs its default, synchronous replication with two "
          "nodes (`number_sync_standbys` 0, so a primary without its secondary goes on alone in `wait_primary`).", ""]
    return L


def rejoin_section(rj):
    """Section 2: rejoin (follow, pg_rewind) against pg_basebackup, per size."""
    L = [f"Results from {rj['machine']['date']}{' (--quick)' if rj.get('quick') else ''}. One run per size. "
         "Data: `pgbench -i -I dtGvp -s N` on pgfailover's lab cluster (both nodes on this host, rejoined by "
         "pgfailover itself through its `local` executor), replica caught up, CHECKPOINT (steady state: the data "
         "was there long before the crash), a few rows updated, then kill -9 of pg1's postmaster and pgfailover "
         "fails over to pg2. Automatic rejoin is held back (`failover.rejoin` false) until ~4 MB of "
         "pgbench_accounts (rows 1–30000) have been updated on the new primary; then pgfailover is restarted "
         "with rejoin on and does the real thing (docs/lifecycle.md): stop, pre-flight, find where the node's WAL "
         "ends and where the new timeline forked; a node that holds nothing the new primary lacks (its replica "
         "had every record) is started as a standby that follows the new timeline (`follow`), one that diverged "
         "is rewound (CHECKPOINT the source, `pg_rewind`, follow, start). **rejoin** is pgfailover's own "
         "`duration_ms` of that operation (/status `rejoin.last`); **until streaming** is measured from "
         "pgfailover's restart, so it also holds its start-up and `rejoin_grace_ms` (5 s). **pg_basebackup** is "
         "the re-clone the old runbook does, timed directly (`-X stream -c fast` of the whole new primary into an "
         "empty directory; starting that copy is not included). Both nodes keep the lab's `wal_keep_size = "
         "256MB`; *source pg_wal* is what the new primary's pg_wal held when the rejoin started.", "",
         "A second round on the same data measures the path where the old primary did diverge: the new "
         "primary's replica stops receiving (an empty `primary_conninfo`), 100 rows are updated on the primary "
         "alone, its postmaster is killed, pgfailover promotes the replica and rejoins the old primary by itself "
         "(rejoin on, `rejoin_grace_ms` 5 s) with `failover.rewind: always`, so these columns are pg_rewind "
         "itself at every size; the new primary is the node that loaded the data, and *pg_wal* is what its "
         "pg_wal held then: PostgreSQL 15's pg_rewind copies all of it. A third round goes back the other way "
         "at the default, `failover.rewind: auto`: pg_rewind, or a fresh pg_basebackup when that moves fewer "
         "bytes than the new primary's pg_wal (a copy of the loader's, made by the rewind before). "
         "**rejoin** is that rejoin's `duration_ms`, **from the kill** the time until it finished.", "",
         "| data | database size | load time (s) | WAL written after failover | source pg_wal | pgfailover rejoin: method | rejoin (s) | until streaming (s) | pg_basebackup (s) | diverged, rewind always: pg_wal | method | rejoin (s) | from the kill (s) | diverged, rewind auto: pg_wal | method | rejoin (s) | from the kill (s) | load (1/5/15) |",
         "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---|"]
    for r in rj["results"]:
        if r.get("skipped"):
            L.append(f"| {r['size']} | skipped: {r['skipped']} |" + " |" * 17)
            continue
        last = r.get("rejoin") or {}
        method = last.get("method") or "–"
        if not last.get("succeeded"):
            method += f" (**failed**: {last.get('error')})"
        dur = last.get("duration_ms")
        L.append(f"| {r['size']} (pgbench -s {r['pgbench_scale']}) | {r['db_bytes'] / 1e6:.0f} MB | {r.get('load_s', '–')} | "
                 f"{r['changed_wal_bytes'] / 1e6:.1f} MB | {fmt_mb(r.get('source_pg_wal_bytes'))} | {method} | "
                 f"{fmt(dur / 1000 if dur is not None else None)} | {fmt(r.get('streaming_after_s'))} | "
                 f"{fmt(r['pg_basebackup_s'])} | {diverged_cells(r.get('diverged_rewind'), True)} | "
                 f"{diverged_cells(r.get('diverged'), True)} | {r['load']} |")
    L += figure(plot_rejoin(rj), "rejoin time vs size")
    L.append("")
    return L


def footprint_section(fp):
    """Section 3: memory and CPU per process group, the cost to PostgreSQL, pgfailover's WAL and RSS."""
    L = [f"Results from {fp['machine']['date']}{' (--quick)' if fp.get('quick') else ''}; one window of "
         f"{fp['window_s']} s per row, after a {fp.get('warmup_s', 3)} s warm-up once the cluster is up. Idle = nothing but the failover manager talks to PostgreSQL; pgbench = "
         f"`{fp['pgbench']}`. Each system at its defaults (pgfailover: probe every 1 s, heartbeat on; Patroni: "
         "loop_wait 10; pg_auto_failover: health check every 5 s). RSS = VmRSS, PSS = proportional set size "
         "(shared pages divided among the processes sharing them: the fair figure for a sum over processes), "
         "maximum over 1 s samples; CPU = utime+stime (+ reaped children) over the window. CPU s/hour = CPU % × 36.", "",
         "| system | process(es) | RSS (MB) | PSS (MB) | anon RSS (MB) | CPU idle (%) | CPU idle (s/hour) | CPU under pgbench (%) |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, res in ordered(fp["systems"]):
        for g, v in res["idle"]["groups"].items():
            vl = res["pgbench"]["groups"].get(g, {})
            L.append(f"| {name} | {g} ({v['procs']} proc.) | {v['rss_kb_max'] / 1024:.1f} | {v['pss_kb_max'] / 1024:.1f} | "
                     f"{v['rss_anon_kb_max'] / 1024:.1f} | {v['cpu_pct']:.3f} | {v['cpu_pct'] * 36:.1f} | {vl.get('cpu_pct', 0):.3f} |")
        pss, rss, cpu = fp_totals(res, "idle")
        _, _, cpu_l = fp_totals(res, "pgbench")
        if len(res["idle"]["groups"]) > 1:
            L.append(f"| **{name}** | **total** | {rss:.1f} | **{pss:.1f}** | | **{cpu:.3f}** | {cpu * 36:.1f} | **{cpu_l:.3f}** |")
    L += ["", "What each manager costs its PostgreSQL nodes (idle window; client connections other than the "
          "measurement's own, transactions/s over all databases, all WAL written on the primary during the "
          "idle window — of a cluster a few minutes old, so it includes autovacuum/autoanalyze of the fresh "
          "catalog and first-touch full-page images; pgfailover's own share, from pg_waldump, is given below):", "",
          "| system | client connections primary/replica | xact/s primary/replica | all WAL on idle primary (bytes/s) | load (1/5/15) idle; pgbench |",
          "|---|---|---|---:|---|"]
    for name, res in ordered(fp["systems"]):
        i = res["idle"]
        c = "/".join(str(v) for v in i["client_connections"].values())
        x = "/".join(str(v) for v in i["xact_per_s"].values())
        L.append(f"| {name} | {c} | {x} | {fmt(i['wal_bytes_per_s'], 0)} | {i['load']}; {res['pgbench']['load']} |")
    p = fp["systems"].get("pgfailover")
    if p:
        ticks = p["idle"].get("extra", {}).get("ticks")
        wd = p["idle"].get("wal_detail")
        if wd:
            L += ["", f"**pgfailover's heartbeat WAL: {wd['heartbeat_bytes_per_s']:.0f} bytes/s** ({wd['heartbeat_bytes']} bytes in "
                  f"{wd['heartbeat_xacts']} heartbeat transactions over the idle window; pg_waldump of pg1 between the "
                  "window's LSNs, counting every record on `pgfailover.heartbeat`, full-page images included, and "
                  f"those transactions' commit records; all WAL in the window: {wd['all_bytes']} bytes)."]
        L += ["", f"pgfailover ticked {fmt(ticks, 3)}/s idle (one heartbeat row updated per tick); "
              "Patroni and pg_auto_failover write no heartbeat. Its threads: "
              f"{p.get('threads')}; binary `{os.path.relpath(p['binary'], env.REPO)}` ({p['binary_size_bytes'] / 1e6:.1f} MB).", "",
              "Where pgfailover's resident memory is (kB, from /proc/PID/smaps, largest first):", "", "| mapping | RSS (kB) |", "|---|---:|"]
        for k, v in list(p["smaps_rss_kb"].items())[:14]:
            L.append(f"| `{k}` | {v} |")
    L += figure(plot_footprint(fp), "footprint")
    L.append("")
    return L


def http_section(ht):
    """Section 4: the APIs under wrk, and pgfailover's probing meanwhile."""
    L = [f"Results from {ht['machine']['date']}{' (--quick)' if ht.get('quick') else ''}: `wrk -t2 -c16 -d10s --latency` "
         "on the same 2 CPUs as the server, PostgreSQL and the other work. pgfailover probes every 1 s all along; "
         "while wrk runs a thread polls `pgfailover_last_tick_timestamp_seconds` every 100 ms (longest gap between "
         "ticks), and the tick and probe duration histograms are compared before and after. Patroni (defaults) is "
         "hammered on its leader's REST API.", "",
         "| system | path | req/s | p50 (ms) | p90 (ms) | p99 (ms) | non-2xx | wrk socket errors | ticks/s | longest tick gap (s) | tick mean (ms) | probe mean (ms) | load (1/5/15) |",
         "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for name, res in ordered(ht["systems"]):
        for path, r in res.items():
            se = r["socket_errors"].replace("Socket errors: ", "") or "none"
            L.append(f"| {name} | `{path}` | {fmt(r['requests_per_s'], 0)} | {fmt(r['p50_ms'])} | {fmt(r['p90_ms'])} | "
                     f"{fmt(r['p99_ms'])} | {r['non_2xx']} | {se} | {fmt(r.get('ticks_per_s_during'), 3)} | "
                     f"{fmt(r.get('max_tick_gap_s'), 3)} | {fmt((r.get('tick_duration') or {}).get('mean_ms'))} | "
                     f"{fmt((r.get('probe_duration') or {}).get('mean_ms'))} | {r['load']} |")
    for path, r in (ht["systems"].get("pgfailover") or {}).items():
        if r.get("probe_failures") or r.get("primary_not_ok_samples") or r.get("non_2xx"):
            reasons = "; ".join(f"{k} ({v}×)" for k, v in (r.get("primary_not_ok_reasons") or {}).items())
            L += ["", f"- pgfailover `{path}` run: probe failures during it: "
                  f"`{json.dumps(r.get('probe_failures'))}`; /primary polled every 100 ms answered non-200 "
                  f"{r.get('primary_not_ok_samples', '?')} times" + (f": {reasons}" if reasons else "") + "."]
    mem = ht.get("pgfailover_memory_after_kb")
    if mem:
        L += ["", f"pgfailover's memory after these runs: RSS {mem['VmRSS'] / 1024:.1f} MB (anonymous "
              f"{mem['RssAnon'] / 1024:.1f} MB, file-backed {mem['RssFile'] / 1024:.1f} MB), PSS "
              f"{mem.get('Pss', 0) / 1024:.1f} MB, {mem.get('Threads')} threads."]
    L += figure(plot_http(ht), "http")
    L.append("")
    return L


def report():
    """Render every results file present into BENCH_DOC."""
    fo, rj, fp, ht, hostile = (load_result(p) for p in ("failover", "rejoin", "footprint", "http", "http_hostile"))
    text = render(fo, rj, fp, ht, hostile)
    os.makedirs(os.path.dirname(env.DOC), exist_ok=True)
    with open(env.DOC, "w") as f:
        f.write(text)
    log(f"wrote {env.DOC}")


def render(fo, rj, fp, ht, hostile=None):
    """The whole document from the parts' results (None: that part was not run); the plots are
    drawn on the way."""
    m = machine()
    L = ["# Benchmarks", "",
         "Generated by `bench/run` from the raw results in `bench/results/*.json` (the notes at the end come from "
         "`bench/NOTES.md`); do not edit by hand.", "",
         "## Reproduce", "",
         "```sh",
         "bench/run --window 90         # everything, as root: installs packages, builds build-bench/ (Release), runs every part",
         "bench/run --quick             # smoke test: 1 run per configuration, 100 MB only, 20 s windows",
         "bench/run failover http       # only some parts (failover rejoin footprint http report)",
         "bench/run --only 'paf' failover                       # rerun some failover configurations, keep the others",
         "bench/run --window 90 --systems pgfailover footprint http   # rerun one system's footprint/API, keep the others",
         "```", "",
         "The tables below come from `bench/run --window 90` run part by part on a loaded machine: failover "
         "(7 configurations × 5 runs) 36 min, rejoin (100 MB, 1 GB, 4 GB, 10 GB) 7 min, footprint and HTTP 14 min (then "
         "`--systems pgfailover footprint http` again, 5 min, after adding the heartbeat-WAL and probe-failure "
         "instrumentation): about an hour in all, plus package installation and the build. Without `--window` the "
         "footprint windows are 120 s (+3 min).", "",
         f"Everything listens on 127.0.0.1 only, on ports {env.PB}+8, +108/109 (Patroni REST), +379/380 (etcd), +432/433 (pgfailover's "
         "nodes), +532/533 (Patroni's), +632..634 (pg_auto_failover monitor and nodes) with base `BENCH_PORT_BASE` "
         "(26000), and lives under `bench/.work/`, which is removed again. Processes are stopped by PID, never by name. "
         "PostgreSQL, Patroni, pg_autoctl and pg_rewind run as `postgres`.", "",
         "## Machine and load", "",
         f"Report generated {m['date']}: {m['nproc']} CPUs ({m['cpu']}), {m['mem_mb']} MB RAM, kernel {m['kernel']}, "
         f"load average at generation {m['load']}. PostgreSQL 15 (Debian 12), Patroni 3.0.2 with etcd 3.4, "
         "pg_auto_failover 2.0, wrk 4.1. **The machine is shared:** other sessions build and test on the same 2 CPUs, "
         "so every run records the load average (1/5/15 min) next to its figures. A load above 2 means processes "
         "were waiting for a CPU; absolute times are then pessimistic, and all systems ran under comparable load.", ""]
    L += ["## Goals", ""] + goals_table(fo, rj, fp, ht) + [""]

    L += section("## 1. Failover: write downtime on a primary crash", "failover", fo, lambda: failover_section(fo))
    L += section("## 2. Rejoin of the old primary: follow, pg_rewind, and a full pg_basebackup", "rejoin", rj,
                 lambda: rejoin_section(rj))
    L += section("## 3. Footprint", "footprint", fp and fp.get("systems"), lambda: footprint_section(fp))
    L += section("## 4. HTTP API", "http", ht and ht.get("systems"), lambda: http_section(ht))

    if hostile:
        sys.path.insert(0, env.BENCH)
        import http_hostile  # bench/http_hostile.py renders its own section
        L += http_hostile.render(hostile)

    notes_path = os.path.join(env.BENCH, "NOTES.md")
    L += ["## Reading and notes", ""]
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            L += [f.read().strip(), ""]
    return "\n".join(L) + "\n"

