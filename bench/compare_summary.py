#!/usr/bin/env python3
"""The tables of bench/compare.sh from its raw lines (compare.jsonl): the
medians (min-max) of soffa and its peers, the bars of issue 18 as ratios,
the same ratios taken within each round, and CPU time per message.

    python3 bench/compare_summary.py bench-results/compare.jsonl
"""
import json, statistics, sys
rows = {}
byrun = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["case"], []).append(r["result"])
    byrun.setdefault(r["run"], {})[r["case"]] = r["result"]
def paired(f):
    """The median over rounds of a ratio taken within each round (f: round -> ratio or None)."""
    v = [x for x in (f(c) for c in byrun.values()) if x is not None]
    return "{:.2f} ×".format(statistics.median(v)) + (" ({:.2f}–{:.2f})".format(min(v), max(v)) if len(v) > 1 else "") if v else "-"
def g(c, case, key, scale=1.0):
    return float(c[case][key]) * scale if case in c and key in c[case] else None
def div(a, b):
    return a / b if a is not None and b else None
def vals(case, key):
    return [float(x[key]) for x in rows.get(case, []) if key in x]
def med(case, key):
    v = vals(case, key)
    return statistics.median(v) if v else None
def fig(case, key, fmt="{:,.0f}", scale=1.0):
    v = [x * scale for x in vals(case, key)]
    if not v:
        return "-"
    s = fmt.format(statistics.median(v))
    return s + (" (" + fmt.format(min(v)) + "–" + fmt.format(max(v)) + ")" if len(v) > 1 else "")
def ratio(a, b):
    return a / b if a is not None and b else None
def verdict(ok):
    return "-" if ok is None else ("**yes**" if ok else "no")
ms = "{:.3f}"
cpu = lambda case: fig(case, "broker_cpu_us", "{:.1f}") + " µs (loop " + fig(case, "broker_main_cpu_us", "{:.1f}") + \
    ", writer " + fig(case, "broker_writer_cpu_us", "{:.1f}") + ", I/O " + fig(case, "broker_io_cpu_us", "{:.1f}") + ")"

pub = med("publish-16x16", "msgs_per_s"); redis = med("redis-xadd-16x16", "rps")
floor_ms = None
lm = med("lmdb-commit-1", "us_per_commit"); zr = med("zmq-rtt-tcp", "p50_us")
if lm is not None and zr is not None:
    floor_ms = (lm + zr) / 1000
ack = med("publish-1x1", "p50_ms")
e50 = med("latency-1000", "e2e_p50_ms"); e99 = med("latency-1000", "e2e_p99_ms")
r50 = med("redis-e2e-1000", "p50_us"); r99 = med("redis-e2e-1000", "p99_us")
r50 = r50 / 1000 if r50 is not None else None; r99 = r99 / 1000 if r99 is not None else None
rep = med("replay-1M", "msgs_per_s")
con = med("consume-16", "msgs_per_s"); nats = med("nats-consume-1000", "msgs_per_s")

print("| figure | soffa, median (min–max) | peer, same rounds | bar | ratio | met? |")
print("|---|---|---|---|---|---|")
q = ratio(pub, redis)
print(f"| durable publish 16 × 16, msgs/s | {fig('publish-16x16', 'msgs_per_s')} | Redis XADD `appendfsync always` 16 × 16: {fig('redis-xadd-16x16', 'rps')} | ≥ 1.5 × Redis and ≥ 250,000 | {q:.2f} × Redis | {verdict(None if q is None else q >= 1.5 and pub >= 250000)} |" if q else "| durable publish 16 × 16 | - | - | | | |")
q = ratio(ack, floor_ms)
print(f"| publish-to-ack p50, one in flight, ms | {fig('publish-1x1', 'p50_ms', ms)} | LMDB commit {fig('lmdb-commit-1', 'us_per_commit', ms, 0.001)} + ZeroMQ TCP round trip {fig('zmq-rtt-tcp', 'p50_us', ms, 0.001)} | ≤ 1.1 × the sum | {q:.2f} × |" + f" {verdict(q <= 1.1)} |" if q else "| publish-to-ack, one in flight | - | - | | | |")
q = ratio(e50, r50)
print(f"| publish-to-delivery at 1,000/s p50, ms | {fig('latency-1000', 'e2e_p50_ms', ms)} | Redis {fig('redis-e2e-1000', 'p50_us', ms, 0.001)} | ≤ Redis | {q:.2f} × |" + f" {verdict(q <= 1.0)} |" if q else "| publish-to-delivery p50 | - | - | | | |")
q = ratio(e99, r99)
print(f"| publish-to-delivery at 1,000/s p99, ms | {fig('latency-1000', 'e2e_p99_ms', ms)} | Redis {fig('redis-e2e-1000', 'p99_us', ms, 0.001)} | ≤ 0.8 × Redis | {q:.2f} × |" + f" {verdict(q <= 0.8)} |" if q else "| publish-to-delivery p99 | - | - | | | |")
print(f"| replay to one auditor, records/s | {fig('replay-1M', 'msgs_per_s')} | | ≥ 1,000,000 | {rep / 1e6:.2f} × the bar | {verdict(rep >= 1e6)} |" if rep else "| replay | - | | | | |")
q = ratio(con, nats)
print(f"| consume with acks, 16 mailboxes, msgs/s | {fig('consume-16', 'msgs_per_s')} | NATS pull Fetch(1000), ack each: {fig('nats-consume-1000', 'msgs_per_s')} | ≥ 2 × NATS | {q:.2f} × NATS |" + f" {verdict(q >= 2)} |" if q else "| consume with acks | - | - | | | |")
print()
print("The same ratios taken within each round (the peer ran just after soffa), median (min–max) over the rounds:")
print()
print("| figure | paired ratio |")
print("|---|---|")
print("| durable publish 16 × 16 / Redis 16 × 16 | " + paired(lambda c: div(g(c, "publish-16x16", "msgs_per_s"), g(c, "redis-xadd-16x16", "rps"))) + " |")
print("| publish-to-ack p50 / (LMDB commit + ZeroMQ round trip) | " + paired(lambda c: div(g(c, "publish-1x1", "p50_ms"),
      (g(c, "lmdb-commit-1", "us_per_commit") or 0) / 1000 + (g(c, "zmq-rtt-tcp", "p50_us") or 0) / 1000 if "lmdb-commit-1" in c and "zmq-rtt-tcp" in c else None)) + " |")
print("| publish-to-delivery p50 / Redis | " + paired(lambda c: div(g(c, "latency-1000", "e2e_p50_ms"), g(c, "redis-e2e-1000", "p50_us", 0.001))) + " |")
print("| publish-to-delivery p99 / Redis | " + paired(lambda c: div(g(c, "latency-1000", "e2e_p99_ms"), g(c, "redis-e2e-1000", "p99_us", 0.001))) + " |")
print("| consume 16 / NATS Fetch(1000) | " + paired(lambda c: div(g(c, "consume-16", "msgs_per_s"), g(c, "nats-consume-1000", "msgs_per_s"))) + " |")
print()
print("| CPU time per message | median (min–max) |")
print("|---|---|")
print(f"| soffa broker, publish 16 × 16 | {cpu('publish-16x16')}; the bench's own {fig('publish-16x16', 'client_cpu_us', '{:.1f}')} µs |")
print(f"| Redis server, XADD 16 × 16 | {fig('redis-xadd-16x16', 'server_cpu_us', '{:.1f}')} µs |")
print(f"| soffa broker, publish 1 × 1 | {cpu('publish-1x1')} |")
print(f"| soffa broker, latency 1,000/s | {cpu('latency-1000')} |")
print(f"| soffa broker, consume 16 | {cpu('consume-16')} |")
print(f"| NATS server, consume Fetch(1000) | {fig('nats-consume-1000', 'server_cpu_us', '{:.1f}')} µs |")
print(f"| soffa broker, replay | {cpu('replay-1M')} |")
