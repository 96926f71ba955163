#!/usr/bin/env python3
"""report.py RAW_DIR OUT_JSON: the table of a bench/run.

Reads what bench/run left in RAW_DIR (measure output NAME.tsv, facts
NAME.meta, NAME.skip, round-trip counts, the fakes' scan intervals),
computes each result against the baseline measured in the same run
(median over the runs), prints one table and writes OUT_JSON.

measure's lines: cmd_index wall_ms first_byte_ms maxrss_kib status bytes;
cmd_index 0 is np, 1 its baseline.
"""
import json
import os
import statistics
import sys


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, q):
    """Nearest-rank percentile q (0..100) of xs."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(-(-q * len(xs) // 100)) - 1))
    return xs[k]


def load_meta(raw, name):
    m = {}
    try:
        with open(os.path.join(raw, name + ".meta")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                m[k] = v
    except OSError:
        pass
    return m


def load_runs(raw, name):
    runs = {0: [], 1: []}
    with open(os.path.join(raw, name + ".tsv")) as f:
        for line in f:
            p = line.split("\t")
            if len(p) != 6:
                continue
            runs.setdefault(int(p[0]), []).append(dict(
                wall=float(p[1]), first=float(p[2]), rss=int(p[3]),
                status=int(p[4]), bytes=int(p[5])))
    return runs


def failures(runs):
    bad = [r["status"] for rs in runs.values() for r in rs if r["status"]]
    return "exit status %s in %d run(s)" % (sorted(set(bad)), len(bad)) \
        if bad else None


def row(key, title, value, unit, base, base_unit, ratio, goal, met, **kw):
    r = dict(key=key, benchmark=title, value=value, unit=unit, baseline=base,
             baseline_unit=base_unit, ratio=ratio, goal=goal, met=met)
    r.update(kw)
    return r


def walls(rs):
    return [r["wall"] for r in rs]


def samples(runs, what):
    """Every run's value, np and baseline, for results.json."""
    return dict(np=[r[what] for r in runs[0]],
                baseline=[r[what] for r in runs[1]])


def b_enqueue(raw, m):
    runs = load_runs(raw, "enqueue")
    v, b = median(walls(runs[0])), median(walls(runs[1]))
    return [row("enqueue", "np-enqueue, one task per process (median wall)",
                v, "ms", b, "ms", v / b, "<= 1.5x baseline", v / b <= 1.5,
                runs=len(runs[0]), error=failures(runs),
                samples=samples(runs, "wall"),
                detail="p90 %.2f ms vs %.2f ms" % (pct(walls(runs[0]), 90),
                                                   pct(walls(runs[1]), 90)))]


def b_batch(raw, m):
    runs = load_runs(raw, "batch")
    n = int(m["requests"])
    v = median([n / (w / 1000) for w in walls(runs[0])])
    b = median([n / (w / 1000) for w in walls(runs[1])])
    per = [n / (w / 1000) for w in walls(runs[0])]
    bper = [n / (w / 1000) for w in walls(runs[1])]
    return [row("batch", "np-enqueue --batch, %d requests" % n, v, "tasks/s",
                b, "tasks/s", v / b, ">= 0.70x baseline", v / b >= 0.70,
                runs=len(runs[0]), error=failures(runs),
                samples=samples(runs, "wall"),
                detail="runs %.0f..%.0f tasks/s vs %.0f..%.0f" % (
                    min(per), max(per), min(bper), max(bper)))]


def b_validate(raw, m):
    runs = load_runs(raw, "validate")
    mib = int(m["bytes"]) / 2 ** 20
    v = median([mib / (w / 1000) for w in walls(runs[0])])
    b = median([mib / (w / 1000) for w in walls(runs[1])])
    rss = max(r["rss"] for r in runs[0]) / 1024
    brss = max(r["rss"] for r in runs[1]) / 1024
    err = failures(runs)
    if m.get("valid") != "True":
        err = "the generated export did not validate"
    return [row("validate", "np-validate, %d MiB .nessus (throughput)" %
                round(mib), v, "MiB/s", b, "MiB/s", v / b,
                ">= 0.50x baseline", v / b >= 0.5, runs=len(runs[0]),
                error=err, baseline_is="xmllint --stream --noout",
                samples=samples(runs, "wall")),
            row("validate_rss", "np-validate, peak RSS", rss, "MiB", brss,
                "MiB", None, "<= 16 MiB", rss <= 16, runs=len(runs[0]),
                error=err, baseline_is="xmllint --stream --noout",
                samples=samples(runs, "rss"))]


def b_results(raw, m):
    runs = load_runs(raw, "results")
    mib = int(m["bytes"]) / 2 ** 20
    v = median([mib / (w / 1000) for w in walls(runs[0])])
    b = median([mib / (w / 1000) for w in walls(runs[1])])
    first = [r["first"] for r in runs[0]]
    out = median([r["bytes"] for r in runs[0]]) / 2 ** 20
    return [row("results", "np-results --page 0, %d MiB .nessus (throughput)"
                % round(mib), v, "MiB/s", b, "MiB/s", v / b,
                ">= 0.40x baseline", v / b >= 0.4, runs=len(runs[0]),
                error=failures(runs), baseline_is="xmllint --stream --noout",
                samples=samples(runs, "wall"),
                detail="%s NDJSON lines, %.0f MiB out" % (m.get("lines"), out)),
            row("results_first", "np-results --page 0, first line out",
                median(first), "ms", None, None, None, "<= 50 ms",
                median(first) <= 50, runs=len(runs[0]), error=failures(runs),
                samples=dict(np=first), detail="max %.1f ms" % max(first))]


def b_status(raw, m):
    runs = load_runs(raw, "status")
    v, b = median(walls(runs[0])), median(walls(runs[1]))
    err = failures(runs)
    if m.get("listed") in (None, "0"):
        err = "listed no task"
    return [row("status", "np-status --list --target 10.1.0.0/16 --limit 100,"
                " %s tasks" % m["tasks"], v, "ms", b, "ms", v / b,
                "<= 10x baseline", v / b <= 10, runs=len(runs[0]), error=err,
                baseline_is="np-status TASK_ID",
                samples=samples(runs, "wall"),
                detail="%s tasks listed, %s in the index" % (
                    m.get("listed"), m.get("index_entries")))]


def rtts(raw, name):
    try:
        with open(os.path.join(raw, name)) as f:
            return [int(line.split()[0]) for line in f if line.strip()]
    except OSError:
        return []


def b_metrics(raw, m):
    runs = load_runs(raw, "metrics")
    v, b = median(walls(runs[0])), median(walls(runs[1]))
    rt, brt = rtts(raw, "metrics.rtt"), rtts(raw, "metrics.rtt-base")
    title = "np-metrics, %s scanners, %s pools, %s tasks" % (
        m["scanners"], m["pools"], m["tasks"])
    return [row("metrics", title, v, "ms", b, "ms", v / b, "<= 10x baseline",
                v / b <= 10, runs=len(runs[0]), error=failures(runs),
                baseline_is="hiredis connect + PING",
                samples=samples(runs, "wall"),
                detail="%s lines of metrics" % m.get("lines")),
            row("metrics_rtt", "np-metrics, Redis round trips", max(rt),
                "round trips", max(brt), "round trips", None, "<= 3",
                max(rt) <= 3, runs=len(rt), error=None,
                detail="counted by bench/tools/rtt.so, runs: %s" % rt)]


def b_dispatch(raw, m):
    k, slots = int(m["scanners"]), int(m["slots"])
    scans, secs = int(m["scans"]), float(m["seconds"])
    makespan = float(m["t1"]) - float(m["t0"])
    ideal = scans * secs / (k * slots)
    gaps, n, maxc, starts, ends = [], 0, 0, [], []
    for i in range(k):
        with open(os.path.join(raw, "dispatch", "f%d.json" % i)) as f:
            d = json.load(f)
        iv = [x for x in d["running_intervals"] if x["end"] is not None]
        n += len(iv)
        maxc = max(maxc, d["max_concurrent_running"])
        st = sorted(x["start"] for x in iv)
        en = sorted(x["end"] for x in iv)
        starts += st
        ends += en
        # FIFO pairing: the j-th slot freed on a scanner is the one the
        # (j + slots)-th scan of that scanner starts in.
        gaps += [st[j + slots] - en[j] for j in range(len(st) - slots)]
    gaps = [g * 1000 for g in gaps]
    err = None
    if int(m["completed"]) != scans or n != scans:
        err = "%s of %d tasks completed, %d scans ran" % (m["completed"],
                                                          scans, n)
    if maxc > slots:
        err = "a scanner ran %d scans at once (max %d)" % (maxc, slots)
    cores = int(m["cores"])
    cpu_np, cpu_fk = int(m["cpu_np_ms"]), int(m["cpu_fakes_redis_ms"])
    busy = int(m["cpu_machine_ms"]) / (cores * makespan * 1000)
    scale = "%d scanners x %d slots, %d scans of %g s" % (k, slots, scans,
                                                         secs)
    cpu = ("machine CPU busy %.0f%% (all users); np %.1f ms CPU/scan, "
           "fakes+redis %.1f ms CPU/scan; CPU floor %.1f s on %d cores" %
           (100 * busy, cpu_np / scans, cpu_fk / scans,
            (cpu_np + cpu_fk) / 1000 / cores, cores))
    return [row("dispatch", "dispatch makespan, %s, 2 workers" % scale,
                makespan, "s", ideal, "s (ideal)", makespan / ideal,
                "<= 1.3x ideal", makespan / ideal <= 1.3, runs=1, error=err,
                baseline_is="scans x duration / slots", detail=cpu,
                first_launch_s=min(starts) - float(m["t0"]) if starts else None,
                last_end_s=max(ends) - float(m["t0"]) if ends else None),
            row("dispatch_idle", "dispatch, slot idle between scans (p99)",
                pct(gaps, 99), "ms", None, None, None, "<= 100 ms",
                pct(gaps, 99) <= 100, runs=1, error=err,
                detail="p50 %.0f ms, p90 %.0f ms, max %.0f ms over %d gaps" %
                (pct(gaps, 50), pct(gaps, 90), max(gaps) if gaps else 0,
                 len(gaps)))]


BENCHES = [("enqueue", b_enqueue), ("batch", b_batch), ("status", b_status),
           ("metrics", b_metrics), ("validate", b_validate),
           ("results", b_results), ("dispatch", b_dispatch)]


def fmt(x, unit):
    if x is None:
        return "-"
    if isinstance(x, float) and x != x:
        return "n/a"
    if unit in ("round trips",):
        return "%d" % x
    if abs(x) >= 100:
        s = "%.0f" % x
    elif abs(x) >= 10:
        s = "%.1f" % x
    else:
        s = "%.2f" % x
    return "%s %s" % (s, unit) if unit else s


def main():
    raw, out = sys.argv[1], sys.argv[2]
    rows = []
    for name, fn in BENCHES:
        skipf = os.path.join(raw, name + ".skip")
        if os.path.exists(skipf):
            with open(skipf) as f:
                rows.append(dict(key=name, benchmark=name, skipped=f.read()
                                 .strip(), met=None))
            continue
        if not (os.path.exists(os.path.join(raw, name + ".tsv")) or
                os.path.exists(os.path.join(raw, name + ".meta"))):
            continue
        try:
            rows += fn(raw, load_meta(raw, name))
        except (OSError, KeyError, ValueError, ZeroDivisionError) as e:
            rows.append(dict(key=name, benchmark=name, met=None,
                             skipped="no result: %s" % e))
    run = load_meta(raw, "run")
    hdr = ("benchmark", "measured", "baseline", "ratio", "goal", "met")
    lines = []
    for r in rows:
        if r.get("skipped"):
            lines.append((r["benchmark"], "skipped: " + r["skipped"], "", "",
                          "", ""))
            continue
        met = "ERROR: " + r["error"] if r.get("error") else \
            ("yes" if r["met"] else "NO")
        lines.append((r["benchmark"], fmt(r["value"], r["unit"]),
                      fmt(r["baseline"], r["baseline_unit"]),
                      "-" if r["ratio"] is None else "%.2fx" % r["ratio"],
                      r["goal"], met))
    w = [max(len(hdr[i]), *(len(x[i]) for x in lines)) if lines else
         len(hdr[i]) for i in range(len(hdr))]
    print()
    print("np bench, %s mode: %s cores (%s), %s, load %s -> %s" % (
        run.get("mode"), run.get("cores"), run.get("cpu"), run.get("fs"),
        run.get("load_start"), run.get("load_end")))
    for x in [hdr, tuple("-" * n for n in w)] + lines:
        print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(x)) +
              " |")
    for r in rows:
        if r.get("detail"):
            print("  %s: %s" % (r["key"], r["detail"]))
    with open(out, "w") as f:
        json.dump(dict(run=run, results=rows), f, indent=2)
        f.write("\n")
    print("(written to %s)" % out)


if __name__ == "__main__":
    main()
