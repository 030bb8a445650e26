#!/usr/bin/env bash
# soffa-bench and the peers it is judged against (../shared/peerbench), side
# by side: RUNS rounds, each figure of soffa next to its peer's, so that
# both see the same load on a shared machine. Prints the
# medians (min-max) and the bars of issue 18 as ratios, met or not; the raw
# lines go to OUT/compare.jsonl.
#
#   bench/compare.sh [BUILD_DIR]        (default: build)
#
# Knobs: RUNS=3  OUT=bench-results  PEERBENCH=../shared/peerbench
#        E2E_SECS=10 (both latency runs)  SOFFA_ONLY=1 / PEERS_ONLY=1
# bench/compare_summary.py OUT/compare.jsonl prints the tables again.
# Needs (Debian 12): redis-server redis-tools libhiredis-dev nats-server
# libnats-dev liblmdb-dev libzmq3-dev. The peer programs are built into
# OUT/peerbin (nothing is written into PEERBENCH); the servers listen on
# 127.0.0.1 ports of their own (REDIS_PORT=26479, NATS_PORT=24322), keep
# their data under OUT/tmp and are stopped by their PID.
#
# CPU time per message: soffa-bench reports the broker's by thread; for the
# peers the server's own (utime + stime from /proc) over the run is divided
# by the messages of the run.
#
# Order within a round: each soffa figure and then at once the peer figure
# it is judged against (publish 16 x 16 and Redis 16 x 16; one in flight and
# the LMDB commit with the ZeroMQ round trip; end to end and Redis end to
# end; consume and NATS), then replay.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
PEERBENCH=$(cd "${PEERBENCH:-$ROOT/../shared/peerbench}" && pwd)
RUNS=${RUNS:-3}
OUT=$(mkdir -p "${OUT:-bench-results}" && cd "${OUT:-bench-results}" && pwd)
E2E_SECS=${E2E_SECS:-10}
REDIS_PORT=${REDIS_PORT:-26479}
NATS_PORT=${NATS_PORT:-24322}
RAW=$OUT/compare.jsonl
TMP=$OUT/tmp
PB=$OUT/peerbin
mkdir -p "$TMP" "$PB"
: > "$RAW"
TICK=$(getconf CLK_TCK)

if [ "${SOFFA_ONLY:-0}" != 1 ]; then
    make -s -C "$PEERBENCH" BIN="$PB" "$PB/lmdb_bench" "$PB/zmq_bench" "$PB/redis_bench" "$PB/nats_bench" ||
        { echo "the peer programs did not build (see the Needs line of $0)" >&2; exit 1; }
fi

SERVERS=()
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
stop_all() { local p; for p in "${SERVERS[@]}"; do stop_pid "$p"; done; SERVERS=(); }
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    local i
    for i in $(seq 1 100); do port_busy "$1" && return 0; sleep 0.1; done
    echo "nothing listens on port $1" >&2
    return 1
}
per_msg() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) * 1e6 / t / n}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# emit CASE ROUND JSON: one raw line
emit() { echo "{\"case\":\"$1\",\"run\":$2,\"at\":\"$(date -u +%FT%TZ)\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"result\":$3}" >> "$RAW"; }
# kv LINE: "prefix a=1 b=2" -> {"a":1,"b":2} (numbers only)
kv() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= 'NF==2 && $2 ~ /^-?[0-9.]+$/ {printf "%s\"%s\":%s", (n++ ? "," : "{"), $1, $2} END {print (n ? "}" : "{}")}'; }

soffa() {   # soffa CASE ROUND ARGS...
    local name=$1 r=$2 line
    shift 2
    line=$("$BUILD/soffa-bench" "$@" --json 2>>"$OUT/soffa.err") || { echo "  soffa-bench $* failed (see $OUT/soffa.err)" >&2; return; }
    emit "$name" "$r" "$line"
    echo "  round $r: soffa $name done" >&2
}

PAYLOAD=$(python3 -c "print(''.join(chr(97+i%26) for i in range(300)))")

start_redis() {
    port_busy "$REDIS_PORT" && { echo "port $REDIS_PORT is taken" >&2; exit 1; }
    rm -rf "$TMP/redis" && mkdir -p "$TMP/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" --appendonly yes --appendfsync always \
        --save '' --auto-aof-rewrite-percentage 0 --logfile "$TMP/redis/redis.log" >/dev/null 2>&1 &
    REDIS_PID=$!
    SERVERS+=("$REDIS_PID")
    wait_port "$REDIS_PORT"
}
start_nats() {
    port_busy "$NATS_PORT" && { echo "port $NATS_PORT is taken" >&2; exit 1; }
    rm -rf "$TMP/nats" && mkdir -p "$TMP/nats"
    nats-server -js -sd "$TMP/nats" -a 127.0.0.1 -p "$NATS_PORT" -l "$TMP/nats/nats.log" >/dev/null 2>&1 &
    NATS_PID=$!
    SERVERS+=("$NATS_PID")
    wait_port "$NATS_PORT"
}

# Each figure of soffa is followed at once by the peer figure it is judged
# against, so that both see the same moment of a shared machine.
lmdb_zmq() {   # the floor of one publish in flight: a durable LMDB commit of one record, a ZeroMQ TCP round trip
    local r=$1 line
    rm -rf "$TMP/lmdb" && mkdir -p "$TMP/lmdb"
    line=$(timeout 60 "$PB/lmdb_bench" write "$TMP/lmdb" 1 3 | grep -m1 '^lmdb_write')
    emit lmdb-commit-1 "$r" "$(kv "$line")"
    rm -rf "$TMP/lmdb"
    line=$(timeout 60 "$PB/zmq_bench" lat tcp://127.0.0.1:25656 20000 | grep -m1 '^zmq_rtt')
    emit zmq-rtt-tcp "$r" "$(kv "$line")"
    echo "  round $r: LMDB commit and ZeroMQ round trip done" >&2
}
redis_16x16() {   # Redis, appendfsync always: 16 clients x pipeline 16
    local r=$1 line t0 t1 n=400000
    redis-cli -p "$REDIS_PORT" DEL s >/dev/null
    t0=$(cpu_ticks "$REDIS_PID")
    line=$(timeout 150 redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n $n -c 16 -P 16 --csv XADD s '*' f "$PAYLOAD" 2>&1 | tail -1 |
           awk -F'","' '{gsub(/"/,"",$0); k=split($0,a,","); printf "redis_xadd rps=%s p50_ms=%s p99_ms=%s\n", a[k-6], a[k-3], a[k-1]}')
    t1=$(cpu_ticks "$REDIS_PID")
    emit redis-xadd-16x16 "$r" "$(kv "$line server_cpu_us=$(per_msg "$t0" "$t1" "$n")")"
    redis-cli -p "$REDIS_PORT" DEL s >/dev/null
    echo "  round $r: Redis 16 x 16 done" >&2
}
redis_e2e() {   # Redis end to end at 1,000/s (peerbench C)
    local r=$1 line
    line=$(timeout 120 "$PB/redis_bench" e2e 127.0.0.1 "$REDIS_PORT" e2e 1000 "$E2E_SECS" | grep -m1 '^redis_e2e')
    emit redis-e2e-1000 "$r" "$(kv "$line")"
    echo "  round $r: Redis end to end done" >&2
}
nats_fill() {   # a JetStream stream of 300,000 messages for the consumer
    timeout 150 "$PB/nats_bench" pub "nats://127.0.0.1:$NATS_PORT" PB 300000 async 256 >/dev/null
}
nats_consume() {   # NATS durable pull consumer, Fetch(1000), acknowledging each message
    local r=$1 line t0 t1 n=200000
    t0=$(cpu_ticks "$NATS_PID")
    line=$(timeout 150 "$PB/nats_bench" consume "nats://127.0.0.1:$NATS_PORT" PB $n 1000 ack buffered | grep -m1 '^nats_consume')
    t1=$(cpu_ticks "$NATS_PID")
    emit nats-consume-1000 "$r" "$(kv "$line server_cpu_us=$(per_msg "$t0" "$t1" "$n")")"
    echo "  round $r: NATS consume done" >&2
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git -C "$ROOT" describe --always --dirty 2>/dev/null)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "redis: $(redis-server --version 2>/dev/null | cut -d' ' -f3)  nats-server: $(nats-server --version 2>/dev/null)"
} | tee "$OUT/compare-env.txt"

S=1 P=1
[ "${PEERS_ONLY:-0}" = 1 ] && S=0
[ "${SOFFA_ONLY:-0}" = 1 ] && P=0
for r in $(seq "$RUNS"); do
    if [ $P = 1 ]; then start_redis; start_nats; nats_fill; fi
    [ $S = 1 ] && soffa publish-16x16 "$r" publish -P 16 -W 16 -n 200000
    [ $P = 1 ] && redis_16x16 "$r"
    [ $S = 1 ] && soffa publish-1x1 "$r" publish -P 1 -W 1 -n 5000
    [ $P = 1 ] && lmdb_zmq "$r"
    [ $S = 1 ] && soffa latency-1000 "$r" latency -r 1000 -t "$E2E_SECS"
    [ $P = 1 ] && redis_e2e "$r"
    [ $S = 1 ] && soffa consume-16 "$r" consume -C 16 -n 300000
    [ $P = 1 ] && nats_consume "$r"
    [ $S = 1 ] && soffa replay-1M "$r" replay -n 1000000
    stop_all
done
stop_all
rm -rf "$TMP"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/compare-env.txt"

python3 "$ROOT/bench/compare_summary.py" "$RAW"
