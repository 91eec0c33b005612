"""Processes by PID (never by name): stopping what the bench started, finding a postmaster,
memory and CPU from /proc."""
import os
import re
import signal
import time

from . import env


def setpriv_postgres():
    return ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups"]


def proc_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, grace=10):
    """SIGTERM a PID we started, SIGKILL after grace seconds."""
    if not proc_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline and proc_alive(pid):
        time.sleep(0.1)
    if proc_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cleanup_started():
    for p in reversed(env.STARTED):
        if p.poll() is None:
            stop_pid(p.pid)
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
    env.STARTED.clear()


def postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pid = int(f.readline())
    except (OSError, ValueError):
        return None
    try:
        if os.readlink(f"/proc/{pid}/cwd") != os.path.realpath(data_dir):
            return None
    except OSError:
        return None
    return pid if proc_alive(pid) else None


def children_of(pid):
    """Direct children of pid (scan of /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            out.append(c)
            todo.append(c)
    return out


def proc_cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_mem(pid):
    """VmRSS, RssAnon, RssFile (kB) from status and Pss (kB) from smaps_rollup; utime+stime+cutime+cstime (s)."""
    m = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                m[k] = int(v.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    m["Pss"] = int(line.split()[1])
    except OSError:
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    m["cpu_s"] = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    return m


def group_sample(pids):
    tot = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "Pss": 0, "cpu_s": 0.0, "procs": 0}
    for pid in pids:
        try:
            m = proc_mem(pid)
        except (OSError, IndexError, ValueError):
            continue
        for k in ("VmRSS", "RssAnon", "RssFile", "Pss", "cpu_s"):
            tot[k] += m.get(k, 0)
        tot["procs"] += 1
    return tot


def smaps_breakdown(pid):
    """Resident kB by kind of mapping: what pgfailover's RSS consists of."""
    kinds = {}
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = parts[5] if len(parts) > 5 else "[anon]"
                if name.startswith("/"):
                    name = os.path.basename(name).split(".so")[0] + (".so" if ".so" in name else "")
                cur = name
            elif parts and parts[0] == "Rss:" and cur:
                kinds[cur] = kinds.get(cur, 0) + int(parts[1])
    return dict(sorted(((k, v) for k, v in kinds.items() if v), key=lambda kv: -kv[1]))

