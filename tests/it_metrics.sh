#!/usr/bin/env bash
# The broker's metrics with real processes and Debian's prometheus package:
# a local network (soffa up) whose broker serves [metrics] listen; the
# exposition checked by `promtool check metrics` and read for values the
# test caused (publishes, a refusal, a reader gone, sessions by role); bad
# requests to the endpoint; and a real Prometheus server that scrapes the
# broker every second and answers queries about it through its HTTP API.
#
#   tests/it_metrics.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_metrics.sh BUILD_DIR}" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-mx-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
PROM_PID=
cleanup() {
    [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
    # The network's processes, all at once (soffa down stops them one by
    # one, about 2 s each): SIGTERM to each pid soffa up recorded, then
    # SIGKILL to any still there after 10 s.
    if [ -f "$NET/pids" ]; then
        local pids
        pids=$(awk '{print $2}' "$NET/pids")
        kill -TERM $pids 2>/dev/null
        local p left
        for _ in $(seq 100); do
            left=
            for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
            [ -z "$left" ] && break
            sleep 0.1
        done
        [ -n "$left" ] && kill -KILL $left 2>/dev/null
    fi
    rm -rf "$NET"
}
trap cleanup EXIT

for t in promtool prometheus curl python3; do
    command -v "$t" >/dev/null || { echo "[FAIL] $t is not installed (./soffa.sh deps installs it)"; echo "0 passed, 1 failed"; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
absence() {   # absence N [SCHOOL-UNIT]: prints the command's output
    s school-1415 signal absence --pupil "$(pupil "$1")" --hemkommun 1419 --period-from 2026-09-01 \
        --period-to 2026-11-13 --unexcused-band SIGNIFICANT --school-unit "${2:-14150001}" --wait 3000 2>&1
}
stop_proc() {   # stop_proc NAME: SIGTERM, and wait until it is gone
    local p
    p=$(pid_of "$1")
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
}
start_broker() {   # not a child of this shell: soffa down waits for it to be reaped
    (setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
     echo $! > "$NET/broker.pid")
    sed -i "s/^broker .*/broker $(cat "$NET/broker.pid")/" "$NET/pids"
}
# metric NAME{LABELS} from the last scrape ($NET/scrape): its value, or "absent".
metric() { awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print "absent"}' "$NET/scrape"; }
scrape() { curl -sS --max-time 5 "http://127.0.0.1:$PORT/metrics" > "$NET/scrape"; }

"$SOFFA" up "$NET" >/dev/null || { echo "[FAIL] soffa up"; echo "0 passed, 1 failed"; exit 1; }
INI="$NET/broker/broker.ini"
PORT=$(free_port)

# ---- it_60: the setting ----
expect "it_60 metrics are off by default" "metrics.listen = (off)" \
    "$("$BUILD/soffa-broker" --config "$INI" --check | grep '^metrics.listen')"
for bad in "0.0.0.0:$PORT" "192.0.2.7:$PORT" "[2001:db8::1]:$PORT"; do
    cp "$INI" "$NET/broker/bad.ini"
    printf '\n[metrics]\nlisten = %s\n' "$bad" >> "$NET/broker/bad.ini"
    out=$("$BUILD/soffa-broker" --config "$NET/broker/bad.ini" --check 2>&1); rc=$?
    case "$rc:$out" in 1:*"[metrics] listen = $bad is not a loopback address"*) ok "it_60 $bad is refused: not loopback";;
        *) bad "it_60 $bad" "$rc $out";; esac
done
for bad in "localhost" "127.0.0.1:99999" "127.0.0.1:" "metrics.example:9464"; do
    cp "$INI" "$NET/broker/bad.ini"
    printf '\n[metrics]\nlisten = %s\n' "$bad" >> "$NET/broker/bad.ini"
    out=$("$BUILD/soffa-broker" --config "$NET/broker/bad.ini" --check 2>&1); rc=$?
    case "$rc:$out" in 1:*"give HOST:PORT or [IPV6]:PORT"*) ok "it_60 '$bad' is refused: not HOST:PORT";;
        *) bad "it_60 '$bad'" "$rc $out";; esac
done

# The broker restarted with the endpoint on.
printf '\n[metrics]\nlisten = 127.0.0.1:%s\n' "$PORT" >> "$INI"
stop_proc broker
start_broker
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics" && break; sleep 0.1; done
# The school's agent has a session with the new broker once the broker
# answers its status request.
for _ in $(seq 100); do s school-1415 --json status --sample 0 2>/dev/null | grep -q '"head_seq"' && break; sleep 0.1; done

# A real Prometheus server, scraping every second from now on (it_63).
PPORT=$(free_port)
mkdir -p "$NET/prom"
cat > "$NET/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: soffa-broker
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
out=$(promtool check config "$NET/prom/prometheus.yml" 2>&1) || bad "it_63 promtool check config" "$out"
prometheus --config.file="$NET/prom/prometheus.yml" --storage.tsdb.path="$NET/prom/data" \
    --web.listen-address="127.0.0.1:$PPORT" >"$NET/prom/log" 2>&1 </dev/null &
PROM_PID=$!
PROM_T0=$(date +%s%N)
query() {   # query PROMQL: the value of the first result, or ""
    curl -s --max-time 2 "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(r[0]["value"][1] if r else "")
except Exception:
    print("")'
}
# ---- it_61: the exposition, checked and read ----
for i in 1 2 3; do out=$(absence "$i"); case "$out" in accepted*) ;; *) bad "it_61 signal $i not accepted" "$out";; esac; done
case "$(absence 4 14199999)" in *NOT_AUTHORISED*) ;; *) bad "it_61 the refusal did not happen";; esac
for _ in $(seq 50); do [ "$(count kaa-1419)" -ge 3 ] && break; sleep 0.1; done
sessions() { scrape; awk '/^soffa_broker_sessions\{/ {n += $2} END {print n + 0}' "$NET/scrape"; }
for _ in $(seq 50); do [ "$(sessions)" = 9 ] && break; sleep 0.1; done   # every agent back after the restart
hdr=$(curl -sS -D - -o "$NET/scrape" "http://127.0.0.1:$PORT/metrics")
case "$hdr" in *"Content-Type: text/plain; version=0.0.4"*) ok "it_61 served as Prometheus text format 0.0.4";; *) bad "it_61 content type" "$hdr";; esac
out=$(promtool check metrics < "$NET/scrape" 2>&1); rc=$?
expect "it_61 promtool check metrics finds nothing to fault" "0:" "$rc:$out"
expect "it_61 three absence reports stored" 3 "$(metric 'soffa_broker_publishes_total{type="absence_reported"}')"
expect "it_61 one refused for its school unit, by type and code" 1 \
    "$(metric 'soffa_broker_refusals_total{type="absence_reported",code="NOT_AUTHORISED"}')"
expect "it_61 kaa/1419 holds three" 3 "$(metric 'soffa_mailbox_depth{mailbox="kaa/1419"}')"
expect "it_61 ... and waits for their three acknowledgements" 3 "$(metric 'soffa_broker_awaiting{kind="signal_ack"}')"
expect "it_61 its reader is connected" 1 "$(metric 'soffa_mailbox_readers{mailbox="kaa/1419"}')"
expect "it_61 sessions by role: 2 school, 2 kaa, 2 audit, 1 provider" "2 2 2 1" \
    "$(metric 'soffa_broker_sessions{role="school"}') $(metric 'soffa_broker_sessions{role="kaa"}') $(metric 'soffa_broker_sessions{role="audit"}') $(metric 'soffa_broker_sessions{role="provider"}')"
C=$(metric soffa_broker_commit_duration_seconds_count)
[ "$C" != absent ] && [ "$C" -ge 3 ] && ok "it_61 commit latency histogram: $C commits" || bad "it_61 commit count" "$C"
expect "it_61 the batch size histogram counts the same commits" "$C" "$(metric soffa_broker_commit_batch_records_count)"
expect "it_61 ... and the fsync histogram too" "$C" "$(metric soffa_broker_fsync_duration_seconds_count)"
expect "it_61 every commit is in the +Inf bucket" "$C" "$(metric 'soffa_broker_commit_duration_seconds_bucket{le="+Inf"}')"
RSS=$(metric process_resident_memory_bytes)
[ "$RSS" -gt 1000000 ] && ok "it_61 resident memory $((RSS / 1024)) KiB" || bad "it_61 rss" "$RSS"
USED=$(metric soffa_store_used_bytes)
[ "$USED" -gt 0 ] && [ "$(metric soffa_store_map_size_bytes)" = 1073741824 ] && ok "it_61 store: $USED bytes of the 1 GiB map" || bad "it_61 store size" "$USED"
expect "it_61 the head sequence" "$(metric soffa_store_head_seq)" "$(s audit --json status --sample 0 | grep -o '"head_seq":[0-9]*' | cut -d: -f2)"

# The reader goes; two more signals wait for it.
stop_proc kaa-1419
sleep 0.3
for i in 5 6; do absence "$i" >/dev/null; done
sleep 1.1
scrape
expect "it_61 with its reader gone, kaa/1419 lags by two" 2 "$(metric 'soffa_mailbox_lag{mailbox="kaa/1419"}')"
expect "it_61 ... has no reader" "0 1" "$(metric 'soffa_mailbox_readers{mailbox="kaa/1419"}') $(metric 'soffa_mailbox_no_reader{mailbox="kaa/1419"}')"
AGE=$(metric 'soffa_mailbox_oldest_unacked_age_seconds{mailbox="kaa/1419"}')
awk -v a="$AGE" 'BEGIN {exit !(a >= 1 && a < 30)}' && ok "it_61 ... and its oldest unacknowledged record is ${AGE} s old" || bad "it_61 age" "$AGE"
expect "it_61 the broker's own mailboxes never lack a reader" 0 "$(metric 'soffa_mailbox_no_reader{mailbox="audit/checkpoint"}')"
expect "it_61 sessions by role: one kaa session now" 1 "$(metric 'soffa_broker_sessions{role="kaa"}')"

# ---- it_62: the endpoint under bad requests ----
expect "it_62 POST is refused" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "http://127.0.0.1:$PORT/metrics")"
expect "it_62 another path is not found" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics/../etc/passwd")"
expect "it_62 HEAD answers without a body" "200 0" "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$PORT/metrics")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$PORT/metrics")
case "$code" in 431|413|400|000) ok "it_62 a 40 KB header is not taken ($code)";; *) bad "it_62 big header" "$code";; esac
# Twenty idle connections, over the limit of eight: while they are open a
# scrape may be turned away (the endpoint is local: only this host's users
# can do this); once they are gone, scrapes are answered again at once.
IDLE=
for _ in $(seq 20); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT"; sleep 2) & IDLE="$IDLE $!"; done
sleep 0.2
code=$(curl -s -o /dev/null --max-time 8 -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")
wait $IDLE
for _ in $(seq 20); do
    code2=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")
    [ "$code2" = 200 ] && break
    sleep 0.1
done
expect "it_62 after twenty idle connections over the limit have gone, scrapes are answered" 200 "$code2"
echo "       (a scrape while they were open: $code)"
case "$(absence 7)" in accepted*) ok "it_62 the broker went on taking publishes";; *) bad "it_62 publish after abuse";; esac

# ---- it_63: a real Prometheus server scrapes the broker ----
# (started before it_61, so that its start overlaps the checks above)
T0=${PROM_T0}
for _ in $(seq 200); do [ "$(query 'up{job="soffa-broker"}')" = 1 ] && break; sleep 0.1; done   # (it_62's idle connections may have failed a scrape)
echo "       (Prometheus answered $(( ($(date +%s%N) - T0) / 1000000 )) ms after it was started)"
expect "it_63 Prometheus scrapes the broker: up is 1" 1 "$(query 'up{job="soffa-broker"}')"
for _ in $(seq 50); do [ "$(query 'soffa_broker_publishes_total{type="absence_reported"}')" = 6 ] && break; sleep 0.1; done
expect "it_63 it knows how many absence reports were stored" 6 "$(query 'soffa_broker_publishes_total{type="absence_reported"}')"
expect "it_63 ... the refusals by code" 1 "$(query 'sum by (code) (soffa_broker_refusals_total{code="NOT_AUTHORISED"})')"
expect "it_63 ... which mailbox has no reader" "kaa/1419" \
    "$(curl -s "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode 'query=soffa_mailbox_no_reader == 1' | grep -o '"mailbox":"[^"]*"' | cut -d'"' -f4)"
# A publish now shows in Prometheus within a few scrapes.
absence 8 >/dev/null
for _ in $(seq 50); do [ "$(query 'soffa_broker_publishes_total{type="absence_reported"}')" = 7 ] && break; sleep 0.1; done
expect "it_63 a new publish reaches Prometheus within seconds" 7 "$(query 'soffa_broker_publishes_total{type="absence_reported"}')"
P99=$(query 'histogram_quantile(0.99, sum by (le) (soffa_broker_commit_duration_seconds_bucket))')
[ -n "$P99" ] && [ "$P99" != NaN ] && ok "it_63 it computes the p99 commit latency from the histogram: ${P99} s" || bad "it_63 p99" "$P99"
kill "$PROM_PID"; wait "$PROM_PID" 2>/dev/null; PROM_PID=

grep -q 'metrics on http://127.0.0.1' "$NET/broker/broker.log" && ok "it_63 the broker's log names the endpoint" || bad "it_63 log line"
# A clean stop with the endpoint on, and (in the sanitizer build) no report.
stop_proc broker
grep -q 'stopped$' "$NET/broker/broker.log" && ok "it_63 the broker stops cleanly with the endpoint on" || bad "it_63 clean stop" "$(tail -3 "$NET/broker/broker.log")"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$NET/broker/broker.log"; then
    bad "it_63 a sanitizer report in the broker's log" "$(grep -m3 -E 'Sanitizer|runtime error' "$NET/broker/broker.log")"
fi
finish_report
