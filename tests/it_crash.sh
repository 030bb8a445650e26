#!/usr/bin/env bash
# Reliability: the broker killed with SIGKILL again and again during a storm
# of publishes from several agents; agents killed while sending and while
# receiving. Afterwards every message handed over is stored and delivered
# exactly once, and the chain verifies.
#
#   tests/it_crash.sh BUILD_DIR [KILLS]
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_crash.sh BUILD_DIR [KILLS]}" && pwd)
KILLS=${2:-20}
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-cr-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; pkill -f "$NET/" 2>/dev/null; rm -rf "$NET"' EXIT
s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
start() {   # start NAME: (re)start the broker or an agent and record its pid
    local bin cfg log
    if [ "$1" = broker ]; then bin=soffa-broker cfg="$NET/broker/broker.ini" log="$NET/broker/broker.log"
    else bin=soffa-agent cfg="$NET/$1/agent.ini" log="$NET/$1/agent.log"; fi
    setsid "$BUILD/$bin" --config "$cfg" >>"$log" 2>&1 </dev/null &
    local p=$!
    disown "$p"
    sed -i "s/^$1 .*/$1 $p/" "$NET/pids"
}
kill9() { local p; p=$(pid_of "$1"); kill -KILL "$p" 2>/dev/null; while kill -0 "$p" 2>/dev/null; do sleep 0.02; done; }
ids() { s "$1" --json inbox --limit 1000000 | grep -o '"message_id":"[^"]*"' | sort -u | wc -l; }
csv() {   # csv FILE FIRST N: N absence rows, alternating Tjörn and Stenungsund
    { echo "type,pupil,hemkommun,period_from,period_to,unexcused_band,school_unit"
      for i in $(seq "$2" $(( $2 + $3 - 1 ))); do
          echo "absence,$(pupil "$i"),$([ $((i % 2)) -eq 0 ] && echo 1419 || echo 1415),${ABS_FROM},${ABS_TO},SIGNIFICANT,14150001"
      done; } > "$1"
}

"$SOFFA" up "$NET" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }

# ---- The storm: the school hands over batches while the broker dies ----
BATCHES=12
ROWS=40
for b in $(seq 1 $BATCHES); do csv "$NET/batch$b.csv" $(( b * 1000 )) $ROWS; done
(
    for b in $(seq 1 $BATCHES); do s school-1415 import "$NET/batch$b.csv" >>"$NET/import.log" 2>&1; done
) &
STORM=$!
# The KAA teams also write to their journals during the storm.
(
    for i in $(seq 1 60); do
        s kaa-1419 case open --pupil "$(pupil $((2000 + i * 2)))" --hemkommun 1419 --case-id new --wait 0 >/dev/null 2>&1
        sleep 0.05
    done
) &
JOURNAL=$!
for k in $(seq 1 "$KILLS"); do
    sleep "0.$(( RANDOM % 4 + 1 ))"
    kill9 broker
    start broker
done
wait $STORM
wait $JOURNAL
expect "every row of the storm was handed over" "$BATCHES" "$(grep -c "^$ROWS signal(er) lagda i utkorgen, .* 0 fel" "$NET/import.log")"

# ---- Agents killed while sending and while receiving ----
csv "$NET/late.csv" 50000 60
s school-1415 import "$NET/late.csv" >/dev/null 2>&1 &
LATE=$!
sleep 0.1
kill9 kaa-1419; start kaa-1419
kill9 broker; start broker
wait $LATE
kill9 school-1415; start school-1415      # with messages still in its outbox
sleep 0.5
kill9 kaa-1415; start kaa-1415

# ---- Drain, then count ----
TOTAL=$(( BATCHES * ROWS + 60 ))
for _ in $(seq 300); do
    [ "$(outbox school-1415)" = 0 ] && [ "$(count kaa-1419)" -ge $(( TOTAL / 2 )) ] && [ "$(count kaa-1415)" -ge $(( TOTAL / 2 )) ] && break
    sleep 0.1
done
sleep 1
expect "the school's outbox drained" 0 "$(outbox school-1415)"
expect "Tjörn's KAA holds every signal for Tjörn" $(( TOTAL / 2 )) "$(count kaa-1419)"
expect "... each message once" $(( TOTAL / 2 )) "$(ids kaa-1419)"
expect "Stenungsund's KAA holds every signal for Stenungsund" $(( TOTAL / 2 )) "$(count kaa-1415)"
expect "... each message once" $(( TOTAL / 2 )) "$(ids kaa-1415)"
# The broker stored each message exactly once, whatever was retried.
R=$(s audit --json replay --mailbox kaa/1419)
expect "the broker stored each Tjörn signal once" $(( TOTAL / 2 )) "$(echo "$R" | grep -c '"type":"absence_reported"')"
expect "... under distinct message ids" $(( TOTAL / 2 )) "$(echo "$R" | grep -o '"message_id":"[^"]*"' | sort -u | wc -l)"
J=$(s audit --json replay --mailbox kaa-journal/1419 | grep -o '"message_id":"[^"]*"' | sort | uniq -d | wc -l)
expect "no journal entry stored twice" 0 "$J"
V=$("$SOFFA" verify "$NET/broker/data" --key "$NET/broker/checkpoint.pub")
case "$V" in intact*) ok "the chain verifies after $KILLS kills: $V";; *) bad "chain verifies" "$V";; esac
finish_report
