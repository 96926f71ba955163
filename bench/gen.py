#!/usr/bin/env python3
"""gen.py: deterministic (seeded) inputs for the benchmarks of bench/.

  gen.py tasks --data DIR --count N [--pools P] [--seed S] > index.resp
      N task folders DIR/tasks/<id>/task.json, written directly, and on
      stdout the Redis commands (RESP, for redis-cli --pipe) that build
      the task index exactly as lib/index.c keeps it: np:tasks (ZSET id ->
      creation ms), np:tindex (HASH id -> "status\\tpool\\tscan_type\\t
      targets"), np:states (HASH "pool\\tstatus" -> count). Targets are
      spread over 10.0.0.0/8 (single hosts, /24s and pairs), so that a /16
      filter matches about 1 task in 256. Pools are p000.. when P > 1,
      else "nessus". The newest task id goes to DIR/newest.
  gen.py pool-state --pools P --scanners S [--seed S] > state.resp
      What np-metrics reads per pool and scanner: queues, dead letters,
      claims, counters, workers, slots, breakers, scanner queues.
  gen.py config --pools P --scanners S --data DIR --secret FILE
               [--url-dir DIR] [--slots K] [--setting k=v]... > np.yaml
      A config of P pools of S scanners each (pool p000.. or "nessus" when
      P = 1). With --url-dir, scanner i's URL is read from DIR/f<i>.url
      (plain http, insecure: true); otherwise made-up https addresses.
  gen.py requests --count N [--seed S] > requests.ndjson
      Scan requests for np-enqueue --batch, one JSON object a line.
"""
import argparse
import json
import os
import random
import sys

BASE_MS = 1735689600000      # 2025-01-01T00:00:00Z
STEP_MS = 20000              # one task every 20 s: 100k tasks span 23 days
STATES = (("completed", 85), ("failed", 5), ("queued", 5), ("running", 3),
          ("cancelled", 2))
TYPES = ("untrusted", "authenticated", "authenticated_privileged")


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def rfc3339(ms):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + \
        ".%03dZ" % (ms % 1000)


def task_id(ms, rng):
    import time
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ms // 1000)) + \
        "-%016x" % rng.getrandbits(64)


def pick_state(rng):
    x = rng.randrange(100)
    for st, w in STATES:
        if x < w:
            return st
        x -= w
    return STATES[0][0]


def ip(rng):
    return "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256),
                            rng.randrange(1, 255))


def targets(rng):
    x = rng.random()
    if x < 0.7:
        return ip(rng)
    if x < 0.9:
        return "10.%d.%d.0/24" % (rng.randrange(256), rng.randrange(256))
    return "%s,%s" % (ip(rng), ip(rng))


def pool_names(n):
    return ["nessus"] if n == 1 else ["p%03d" % i for i in range(n)]


def record(tid, ms, st, pool, stype, tg, rng, k):
    ts = rfc3339(ms)
    end = rfc3339(ms + 600000) if st not in ("queued", "running") else None
    t = {
        "task_id": tid, "trace_id": "%032x" % rng.getrandbits(128),
        "name": "bench scan %d" % k, "description": "", "targets": tg,
        "scan_type": stype, "scanner_pool": pool,
        "scanner_instance": None if st == "queued" else "s%d" % (k % 10),
        "scanner_url": None, "targeted_instance": False,
        "schema_profile": "brief", "status": st,
        "nessus_scan_id": None if st == "queued" else 1000 + k,
        "attempts": 0 if st == "queued" else 1, "progress": 100 if end else 0,
        "created_at": ts, "updated_at": end or ts,
        "started_at": None if st == "queued" else rfc3339(ms + 1000),
        "completed_at": end, "last_accessed_at": end or ts, "error": None,
        "validation_stats": None, "validation_warnings": [],
        "authentication_status": None, "idempotency_key": None,
        "request_hash": "%064x" % rng.getrandbits(256),
        "history": [] if st == "queued" else
        [{"at": rfc3339(ms + 1000), "event": "started",
          "detail": "attempt 1 on s%d" % (k % 10)}],
    }
    return json.dumps(t, indent=2).encode()


def cmd_tasks(a):
    rng = random.Random("tasks:%s" % a.seed)
    pools = pool_names(a.pools)
    tdir = os.path.join(a.data, "tasks")
    os.makedirs(tdir, mode=0o700, exist_ok=True)
    out = sys.stdout.buffer
    counts, batch, newest = {}, [], None
    for k in range(a.count):
        ms = BASE_MS + k * STEP_MS + rng.randrange(STEP_MS)
        tid = task_id(ms, rng)
        st, pool = pick_state(rng), pools[k % len(pools)]
        stype, tg = TYPES[rng.randrange(3)], targets(rng)
        d = os.path.join(tdir, tid)
        os.mkdir(d, 0o700)
        fd = os.open(os.path.join(d, "task.json"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, record(tid, ms, st, pool, stype, tg, rng, k))
        os.close(fd)
        batch.append(resp("ZADD", "np:tasks", ms, tid))
        batch.append(resp("HSET", "np:tindex", tid,
                          "%s\t%s\t%s\t%s" % (st, pool, stype, tg)))
        counts["%s\t%s" % (pool, st)] = counts.get("%s\t%s" % (pool, st),
                                                   0) + 1
        newest = tid
        if len(batch) >= 2000:
            out.write(b"".join(batch))
            batch = []
    for k, v in sorted(counts.items()):
        batch.append(resp("HSET", "np:states", k, v))
    out.write(b"".join(batch))
    with open(os.path.join(a.data, "newest"), "w") as f:
        f.write(newest + "\n")


def cmd_pool_state(a):
    rng = random.Random("pool-state:%s" % a.seed)
    out, far = [], BASE_MS * 2        # slot deadlines far in the future
    for p in pool_names(a.pools):
        k = "np:{%s}:" % p
        for i in range(rng.randrange(0, 20)):
            out.append(resp("LPUSH", k + "queue",
                            "20250101T000000Z-%016x" % rng.getrandbits(64)))
        for i in range(rng.randrange(0, 3)):
            out.append(resp("ZADD", k + "dlq", BASE_MS, "dead%d" % i))
        fields = []
        for t in TYPES:
            for r in ("completed", "failed", "timeout", "cancelled"):
                fields += ["scans:%s:%s" % (t, r), rng.randrange(1000)]
        for le in (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400):
            fields += ["duration_le:%g" % le, rng.randrange(100)]
        fields += ["duration_count", 900, "duration_sum", 812345.5,
                   "dlq_retries", rng.randrange(10)]
        out.append(resp("HSET", k + "counters", *fields))
        out.append(resp("HSET", k + "workers", "host-a:1234", BASE_MS,
                        "host-b:5678", BASE_MS))
        for s in range(a.scanners):
            inst = "%s-s%02d" % (p, s)
            for j in range(rng.randrange(0, 3)):
                tid = "20250101T000000Z-%016x" % rng.getrandbits(64)
                out.append(resp("ZADD", k + "slots:" + inst, far, tid))
                out.append(resp("ZADD", k + "claims", far, tid))
            if rng.random() < 0.1:
                out.append(resp("HSET", k + "breaker:" + inst, "failures", 2,
                                "last_fail", BASE_MS, "last_ok", BASE_MS - 1))
            if rng.random() < 0.05:
                out.append(resp("LPUSH", k + "iq:" + inst,
                                "20250101T000000Z-%016x" %
                                rng.getrandbits(64)))
    out.append(resp("HSET", "np:counters", "ttl_deletions", 42))
    sys.stdout.buffer.write(b"".join(out))


def cmd_config(a):
    lines = ["data_dir: %s" % a.data]
    pools = pool_names(a.pools)
    lines.append("default_pool: %s" % pools[0])
    if a.setting:
        lines.append("settings:")
        lines += ["  %s: %s" % tuple(s.split("=", 1)) for s in a.setting]
    lines.append("pools:")
    n = 0
    for p in pools:
        lines.append("  %s:" % p)
        for s in range(a.scanners):
            inst = "%s-s%02d" % (p, s) if a.pools > 1 else "f%d" % n
            lines.append("    - instance_id: %s" % inst)
            if a.url_dir:
                with open(os.path.join(a.url_dir, "f%d.url" % n)) as f:
                    lines.append("      url: %s" % f.read().strip())
                lines.append("      insecure: true")
            else:
                lines.append("      url: https://10.%d.%d.%d:8834" %
                             (n >> 16 & 255, n >> 8 & 255, n & 255 or 1))
            lines.append("      access_key: accesskey")
            lines.append("      secret_key_file: %s" % a.secret)
            lines.append("      max_concurrent_scans: %d" % a.slots)
            n += 1
    sys.stdout.write("\n".join(lines) + "\n")


def cmd_requests(a):
    rng = random.Random("requests:%s" % a.seed)
    w = sys.stdout.write
    for k in range(a.count):
        w(json.dumps({"name": "bench request %d" % k,
                      "targets": ip(rng) if a.single else targets(rng)},
                     separators=(",", ":")) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tasks")
    t.add_argument("--data", required=True)
    t.add_argument("--count", type=int, required=True)
    t.add_argument("--pools", type=int, default=1)
    t.add_argument("--seed", default="1")
    s = sub.add_parser("pool-state")
    s.add_argument("--pools", type=int, required=True)
    s.add_argument("--scanners", type=int, required=True)
    s.add_argument("--seed", default="1")
    c = sub.add_parser("config")
    c.add_argument("--pools", type=int, required=True)
    c.add_argument("--scanners", type=int, required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--url-dir")
    c.add_argument("--slots", type=int, default=4)
    c.add_argument("--setting", action="append")
    r = sub.add_parser("requests")
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--seed", default="1")
    r.add_argument("--single", action="store_true",
                   help="one host per request (for scans on the fake)")
    a = ap.parse_args()
    {"tasks": cmd_tasks, "pool-state": cmd_pool_state, "config": cmd_config,
     "requests": cmd_requests}[a.cmd](a)


if __name__ == "__main__":
    main()
