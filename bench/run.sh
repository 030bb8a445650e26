#!/usr/bin/env bash
# Runs every soffa-bench scenario RUNS times and prints the medians (min-max)
# as a Markdown table; the raw --json lines go to OUT/soffa.jsonl.
#
#   bench/run.sh [BUILD_DIR]        (default: build)
#
# Knobs: RUNS=3  OUT=bench-results  HISTORY=1 also runs the 10-million-record
# cases (about 3 minutes more and 8 GB of disk).
set -uo pipefail
BUILD=$(cd "${1:-build}" && pwd)
RUNS=${RUNS:-3}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
RAW="$OUT/soffa.jsonl"
: > "$RAW"

run() {   # run NAME ARGS...: RUNS times, one JSON line each, tagged with NAME
    local name=$1 i line
    shift
    for i in $(seq "$RUNS"); do
        line=$("$BUILD/soffa-bench" "$@" --json 2>>"$OUT/soffa.err") || { echo "soffa-bench $* failed; see $OUT/soffa.err" >&2; continue; }
        echo "{\"case\":\"$name\",\"run\":$i,\"result\":$line}" >> "$RAW"
        echo "  $name run $i done" >&2
    done
}

run publish-16x16    publish -P 16 -W 16 -n 200000
run publish-1x1      publish -P 1 -W 1 -n 5000
run latency-1000     latency -r 1000 -t 10
run consume-16       consume -C 16 -n 300000
run consume-1        consume -C 1 -n 300000
run consume-8        consume -C 8 -n 200000
run consume-8-stall1 consume -C 8 -n 200000 --stalled 1
run replay-1M        replay -n 1000000
run connections-2500 connections -K 2500
if [ "${HISTORY:-0}" = 1 ]; then
    RUNS=1 run publish-16x16-10M publish -P 16 -W 16 -n 200000 --prefill 10000000
    RUNS=1 run connections-2500-10M connections -K 2500 --prefill 10000000
fi

python3 - "$RAW" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["case"], []).append(r["result"])
def fig(case, key, fmt="{:,.0f}"):
    vals = [r[key] for r in rows.get(case, []) if key in r]
    if not vals:
        return "-"
    m = statistics.median(vals)
    s = fmt.format(m)
    if len(vals) > 1:
        s += " (" + fmt.format(min(vals)) + "–" + fmt.format(max(vals)) + ")"
    return s
ms = "{:.3f}"
mb = lambda case, key: fig(case, key, "{:,.0f}")
table = [
    ("publish 16×16, msgs/s", fig("publish-16x16", "msgs_per_s")),
    ("publish 16×16, publish-to-ack p50 ms", fig("publish-16x16", "p50_ms", ms)),
    ("publish 16×16 on 10M stored, msgs/s", fig("publish-16x16-10M", "msgs_per_s")),
    ("publish 1×1, publish-to-ack p50 ms", fig("publish-1x1", "p50_ms", ms)),
    ("publish 1×1, publish-to-ack p99 ms", fig("publish-1x1", "p99_ms", ms)),
    ("latency 1000/s, publish-to-delivery p50 ms", fig("latency-1000", "e2e_p50_ms", ms)),
    ("latency 1000/s, publish-to-delivery p99 ms", fig("latency-1000", "e2e_p99_ms", ms)),
    ("latency 1000/s, p99.9 ms", fig("latency-1000", "e2e_p999_ms", ms)),
    ("latency 1000/s, max ms", fig("latency-1000", "e2e_max_ms", ms)),
    ("consume, 16 mailboxes, msgs/s", fig("consume-16", "msgs_per_s")),
    ("consume, 1 mailbox, msgs/s", fig("consume-1", "msgs_per_s")),
    ("consume, 8 readers, msgs/s", fig("consume-8", "msgs_per_s")),
    ("consume, 8 readers + 1 stalled, msgs/s", fig("consume-8-stall1", "msgs_per_s")),
    ("  broker private memory before → after (stalled), kB", fig("consume-8-stall1", "anon_before_kb") + " → " + fig("consume-8-stall1", "anon_after_kb")),
    ("replay 1M, msgs/s", fig("replay-1M", "msgs_per_s")),
    ("2,500 agents connected after, s", fig("connections-2500", "seconds_to_connect", "{:.2f}")),
    ("  broker resident with them, kB", mb("connections-2500", "rss_connected_kb")),
    ("  ... with 10M stored, kB", mb("connections-2500-10M", "rss_connected_kb")),
    ("broker peak resident, publish 16×16, kB", mb("publish-16x16", "broker_peak_rss_kb")),
    ("broker peak resident, replay 1M, kB", mb("replay-1M", "broker_peak_rss_kb")),
]
print("| soffa-bench figure | median (min–max) |\n|---|---|")
for k, v in table:
    print(f"| {k} | {v} |")
EOF
