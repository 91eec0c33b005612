"""HTTP: each manager's API under wrk; for pgfailover also whether probing keeps its pace meanwhile
(ticks, tick and probe durations, probe failures, /primary polled every 100 ms)."""
import json
import re
import statistics
import threading
import time

from ..util import http_get, loadavg, log, sh


def wrk(url, dur, conns=16):
    r = sh(["wrk", "-t2", f"-c{conns}", f"-d{dur}s", "--latency", url], timeout=dur + 60, check=False)
    out = parse_wrk(r.stdout)
    out["duration_s"] = dur
    out["connections"] = conns
    return out


class TickWatcher:
    """Polls pgfailover's last tick timestamp every 100 ms in a thread: the longest gap between ticks."""

    def __init__(self, url):
        self.url, self.stamps, self.stop, self.not_ok = url, [], False, []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            code, body = http_get(self.url + "/primary", timeout=5)
            if code != 200:
                try:
                    reason = json.loads(body).get("reason") if body else f"no answer ({code})"
                except ValueError:
                    reason = body[:200]
                self.not_ok.append(reason)
            code, body = http_get(self.url + "/metrics", timeout=5)
            for line in body.splitlines():
                if line.startswith("pgfailover_last_tick_timestamp_seconds "):
                    v = float(line.split()[1])
                    if not self.stamps or v != self.stamps[-1]:
                        self.stamps.append(v)
            time.sleep(0.1)

    def finish(self):
        self.stop = True
        self.t.join()
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        reasons = {}
        for r in self.not_ok:
            key = re.sub(r"[\d.]+ ?(ms|s)\b", "N", str(r))[:160]
            reasons[key] = reasons.get(key, 0) + 1
        return {"primary_not_ok_samples": len(self.not_ok), "primary_not_ok_reasons": reasons,
                "ticks_seen": len(self.stamps), "max_tick_gap_s": round(max(gaps), 3) if gaps else None,
                "median_tick_gap_s": round(statistics.median(gaps), 3) if gaps else None}


def hist_delta(a, b):
    d = {"count": b["count"] - a["count"], "sum": b["sum"] - a["sum"]}
    d["mean_ms"] = round(1000 * d["sum"] / d["count"], 2) if d["count"] else None
    # smallest bucket holding every observation of the interval: an upper bound of the slowest one
    les = sorted((float(k) if k != "+Inf" else float("inf"), k) for k in b["buckets"])
    for v, k in les:
        if b["buckets"][k] - a["buckets"].get(k, 0) >= d["count"]:
            d["max_le_s"] = v
            break
    return d


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        return None
    v, u = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[u]


def parse_wrk(text):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["requests_per_s"] = float(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        r[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", text)
    r["socket_errors"] = m.group(0) if m else ""
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else None
    return r


def measure_http(cluster, dur):
    """wrk on each of the cluster's paths, one after the other."""
    res = {}
    for path in cluster.http_paths:
        r = watched_wrk(cluster, path, dur) if cluster.reports_ticks else wrk(cluster.http_url + path, dur)
        r["load"] = loadavg()
        res[path] = r
        log(f"  http {cluster.name} {path}: {r}")
    return res


def watched_wrk(lab, path, dur):
    """wrk on one of pgfailover's paths while its ticks, probes and /primary are watched."""
    t0 = time.time()
    ticks0 = lab.metric("pgfailover_ticks_total")
    th0, ph0 = lab.histogram("pgfailover_tick_duration_seconds"), lab.histogram("pgfailover_probe_duration_seconds")
    pf0 = lab.probe_failures()
    watcher = TickWatcher(lab.url)
    r = wrk(lab.url + path, dur)
    r.update(watcher.finish())
    el = time.time() - t0
    r["ticks_per_s_during"] = round((lab.metric("pgfailover_ticks_total") - ticks0) / el, 3)
    r["tick_duration"] = hist_delta(th0, lab.histogram("pgfailover_tick_duration_seconds"))
    r["probe_duration"] = hist_delta(ph0, lab.histogram("pgfailover_probe_duration_seconds"))
    pf1 = lab.probe_failures()
    r["probe_failures"] = {k: v - pf0.get(k, 0) for k, v in pf1.items() if v - pf0.get(k, 0)}
    return r
