"""Small helpers every part uses: logging, commands, HTTP, waiting, the results files."""
import json
import os
import statistics
import subprocess
import time
import urllib.error
import urllib.request

from . import env


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, check=True, env=None, capture=True, timeout=None, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), env=env, timeout=timeout,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{(r.stdout or '')[-3000:]}")
    return r


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "mem_mb": mem, "kernel": os.uname().release, "cpu": model,
            "load": loadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def port_free(port):
    r = sh(["ss", "-Hltn", f"sport = :{port}"], check=False)
    return not r.stdout.strip()


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return {"runs": 0, "median": None, "min": None, "max": None}
    return {"runs": len(v), "median": statistics.median(v), "min": min(v), "max": max(v)}


def save(part, data):
    os.makedirs(env.RESULTS, exist_ok=True)
    data["machine"] = machine()
    data["pgfailover_build"] = env.PROVENANCE
    with open(os.path.join(env.RESULTS, f"{part}.json"), "w") as f:
        json.dump(data, f, indent=1)


def load_result(part):
    try:
        with open(os.path.join(env.RESULTS, f"{part}.json")) as f:
            return json.load(f)
    except OSError:
        return None


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception:  # noqa: BLE001
        return None, ""


def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # noqa: BLE001
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

