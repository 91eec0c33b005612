#!/usr/bin/python3
"""Prints the chaos suite's results (tests/chaos/run.sh --results DIR, one or more folders) as the
Markdown table of docs/reliability.md: scenario x mode -> runs, passed, split-brain windows,
false failovers, lost acknowledged writes, fault -> first write on the new primary, longest
write gap, fault -> healthy again. Figures are min / median / max over the runs. For the
two-instance scenarios (13..16) a second table: the handover and etcd figures the runner measured.

Usage: tests/chaos/summarize.py RESULTS_DIR [RESULTS_DIR...]
"""
import glob
import json
import os
import statistics
import sys

NO_FAILOVER = {3, 4, 6, 7, 8, 11, 15, 16}
MEASURES = [
    ("handover_s", "fault → the other instance holds the leader key (s)"),
    ("acting_stopped_after_cut_s", "cut → the cut instance stops acting (s)"),
    ("other_acting_after_cut_s", "cut → the other instance acts (s)"),
    ("etcd_back_to_acting_s", "etcd started → an instance acts (s)"),
]


def spread(values, fmt="%.1f"):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt % values[0]
    return (fmt + " / " + fmt + " / " + fmt) % (min(values), statistics.median(values), max(values))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs = []
    for d in sys.argv[1:]:
        for path in sorted(glob.glob(os.path.join(d, "*", "s*-r*", "result.json"))):
            with open(path) as f:
                runs.append(json.load(f))
    groups = {}
    for r in runs:
        groups.setdefault((r["scenario"], r["mode"]), []).append(r)
    print("| # | scenario | mode | runs | passed | split-brain windows | promotions | false failovers "
          "| lost acked writes (per run) | fault → first write on new primary (s) | longest write gap (s) "
          "| fault → healthy (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (n, mode) in sorted(groups, key=lambda k: (k[0], k[1])):
        g = groups[(n, mode)]
        c = [r.get("checker") or {} for r in g]
        passed = sum(1 for r in g if r["verdict"] == "pass")
        sb = sum((x.get("split_brain_windows") or 0) for x in c)
        promos = ",".join(str(x.get("promotions")) for x in c)
        false_fo = sum(1 for x in c if n in NO_FAILOVER and (x.get("promotions") or 0) > 0) if n in NO_FAILOVER else "–"
        lost = ",".join(str(x.get("lost_acked")) for x in c)
        first = spread([x.get("fault_to_first_new_primary_write_s") for x in c]) if n not in NO_FAILOVER else "–"
        gap = spread([x.get("longest_write_gap_s") for x in c])
        healthy = spread([x.get("fault_to_healthy_s") for x in c])
        print("| %d | %s | %s | %d | %d | %d | %s | %s | %s | %s | %s | %s |" % (
            n, g[0]["title"], mode, len(g), passed, sb, promos, false_fo, lost, first, gap, healthy))
    measured = sorted(k for k in groups if any(r.get("measures") for r in groups[k]))
    if measured:
        print("\n| # | mode | runs | " + " | ".join(title for _, title in MEASURES) + " |")
        print("|---|---|---|" + "---|" * len(MEASURES))
        for (n, mode) in measured:
            g = groups[(n, mode)]
            cells = [spread([(r.get("measures") or {}).get(key) for r in g]) for key, _ in MEASURES]
            print("| %d | %s | %d | %s |" % (n, mode, len(g), " | ".join(cells)))
    failed = [r for r in runs if r["verdict"] != "pass"]
    if failed:
        print("\nFailed runs:\n")
        for r in failed:
            print("- %s scenario %d run %d: %s" % (r["mode"], r["scenario"], r["rep"], "; ".join(r["failures"])))


if __name__ == "__main__":
    main()
