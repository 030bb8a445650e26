#!/usr/bin/env bash
# The cost of encryption at rest (issue 17): soffa-bench publish, replay and
# consume with the normal build and with a build configured
# -DSOFFA_BENCH_PLAINTEXT=ON (no encryption, the same store layout), in
# alternating rounds so that both see the same machine; prints the medians
# (min-max) as a Markdown table and the load average of each round. Raw
# --json lines go to OUT/plaintext.jsonl.
#
#   bench/plaintext.sh [BUILD_DIR [PLAIN_BUILD_DIR]]   (default: build build-plain)
#
#   cmake -S . -B build-plain -DSOFFA_BENCH_PLAINTEXT=ON -DSOFFA_TESTS=OFF
#   cmake --build build-plain -j2 --target soffa_bench soffa_broker
#
# Knobs: RUNS=3  OUT=bench-results; RUNS=0 prints the tables of OUT's lines again.
set -uo pipefail
SEALED=$(cd "${1:-build}" && pwd)
PLAIN=$(cd "${2:-build-plain}" && pwd)
RUNS=${RUNS:-3}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
RAW="$OUT/plaintext.jsonl"
[ "$RUNS" -gt 0 ] && : > "$RAW"
"$PLAIN/soffa-broker" --version | grep -q "WITHOUT encryption" \
    || { echo "$PLAIN is not a build with -DSOFFA_BENCH_PLAINTEXT=ON" >&2; exit 2; }
"$SEALED/soffa-broker" --version | grep -q "WITHOUT encryption" \
    && { echo "$SEALED is a build without encryption" >&2; exit 2; }

for i in $(seq "$RUNS"); do
    for b in sealed plain; do
        dir=$SEALED
        [ "$b" = plain ] && dir=$PLAIN
        for c in "publish -P 16 -W 16 -n 200000" "replay -n 1000000" "consume -C 16 -n 300000"; do
            load=$(cut -d' ' -f1 /proc/loadavg)
            # shellcheck disable=SC2086
            line=$("$dir/soffa-bench" $c --broker-bin "$dir/soffa-broker" --json 2>>"$OUT/plaintext.err") \
                || { echo "soffa-bench $c ($b) failed; see $OUT/plaintext.err" >&2; continue; }
            echo "{\"build\":\"$b\",\"case\":\"${c%% *}\",\"run\":$i,\"load\":$load,\"result\":$line}" >> "$RAW"
            echo "  round $i $b ${c%% *} done (load $load)" >&2
        done
    done
done

python3 - "$RAW" <<'EOF'
import json, statistics, sys
rows = {}
loads = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["build"], r["case"]), []).append(r["result"])
    loads.append(r["load"])
def fig(build, case, key):
    vals = [r[key] for r in rows.get((build, case), []) if key in r]
    if not vals:
        return None, "-"
    m = statistics.median(vals)
    return m, "{:,.0f} ({:,.0f}–{:,.0f})".format(m, min(vals), max(vals))
print("| figure | with encryption | without | cost |\n|---|---|---|---|")
for case, label in (("publish", "publish 16 × 16, msgs/s"), ("replay", "replay 1M, records/s"), ("consume", "consume 16 mailboxes, msgs/s")):
    s, st = fig("sealed", case, "msgs_per_s")
    p, pt = fig("plain", case, "msgs_per_s")
    cost = "-"
    if s and p:
        cost = "{:.2f} µs a message ({:.0%} of the throughput)".format(1e6 / s - 1e6 / p, 1 - s / p)
    print(f"| {label} | {st} | {pt} | {cost} |")
print("\nbroker CPU time per message (main loop, writer, ZeroMQ I/O), medians:\n")
print("| scenario | with encryption | without |\n|---|---|---|")
for case in ("publish", "replay", "consume"):
    cells = []
    for b in ("sealed", "plain"):
        parts = [fig(b, case, k)[0] for k in ("broker_cpu_us", "broker_main_cpu_us", "broker_writer_cpu_us", "broker_io_cpu_us")]
        cells.append("-" if parts[0] is None else "{:.1f} µs ({:.1f}, {:.1f}, {:.1f})".format(*parts))
    print(f"| {case} | {cells[0]} | {cells[1]} |")
if loads:
    print(f"\nload average (1 min) at the start of each run: {min(loads)}–{max(loads)}")
EOF
