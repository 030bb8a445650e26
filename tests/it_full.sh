#!/usr/bin/env bash
# Reliability: a broker whose store is full refuses publishes with a clear
# error naming the remedy, keeps delivering and replaying what it has, loses
# nothing it acknowledged, and takes publishes again after map_size is raised
# and it restarts. The agents keep the refused messages in their outbox.
#
#   tests/it_full.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_full.sh BUILD_DIR}" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-fu-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; pkill -f "$NET/" 2>/dev/null; rm -rf "$NET"' EXIT
s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
restart_broker() {
    local p
    p=$(pid_of broker)
    kill -TERM "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
    p=$!
    disown "$p"
    sed -i "s/^broker .*/broker $p/" "$NET/pids"
}

"$SOFFA" up "$NET" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
sed -i 's/^\[audit\]$/[store]\nmap_size = 160KiB\n\n[audit]/' "$NET/broker/broker.ini"
restart_broker
sleep 1

N=400
{ echo "type,pupil,hemkommun,period_from,period_to,unexcused_band,school_unit"
  for i in $(seq 1 $N); do echo "absence,$(pupil "$i"),1419,2026-09-01,2026-11-13,SIGNIFICANT,14150001"; done; } > "$NET/rows.csv"
expect "all $N rows are handed to the school agent" "$N row(s) queued in the outbox, 0 bad row(s)" "$(s school-1415 import "$NET/rows.csv" 2>&1)"
for _ in $(seq 100); do grep -q "MDB_MAP_FULL" "$NET/broker/broker.log" && break; sleep 0.1; done
sleep 1
grep -q "MDB_MAP_FULL" "$NET/broker/broker.log" && ok "the store filled up" || bad "the store filled up"
WAITING=$(outbox school-1415)
[ "$WAITING" -gt 0 ] && ok "the refused messages wait in the school's outbox ($WAITING)" || bad "outbox keeps refused messages" "$WAITING"
grep -q "raise \[store\] map_size" "$NET/school-1415/agent.log" && ok "the refusal names the remedy" || bad "remedy named" "$(grep -m1 'cannot take' "$NET/school-1415/agent.log")"
OUT=$(s school-1415 signal absence --pupil "$(pupil 999)" --hemkommun 1419 --period-from 2026-09-01 --period-to 2026-11-13 \
    --unexcused-band SIGNIFICANT --school-unit 14150001 --wait 3000 2>&1)
case "$OUT" in queued*) ok "a person handing over a signal now hears it is queued, not lost";; *) bad "queued when full" "$OUT";; esac
STORED=$(count kaa-1419)
[ "$STORED" -gt 0 ] && [ "$STORED" -lt $((N + 1)) ] && ok "delivery goes on while full ($STORED delivered)" || bad "delivery while full" "$STORED"
R=$(s audit --json replay --mailbox kaa/1419 --limit 5 2>&1 | grep -c '"seq"')
expect "replay goes on while full" 5 "$R"

sed -i 's/^map_size = 160KiB$/map_size = 64MiB/' "$NET/broker/broker.ini"
restart_broker
for _ in $(seq 300); do [ "$(outbox school-1415)" = 0 ] && [ "$(count kaa-1419)" -ge $((N + 1)) ] && break; sleep 0.1; done
sleep 1
expect "after map_size was raised, the outbox drained" 0 "$(outbox school-1415)"
expect "... and Tjörn's KAA holds every signal" $((N + 1)) "$(count kaa-1419)"
expect "... each once" $((N + 1)) "$(s kaa-1419 --json inbox --limit 100000 | grep -o '"message_id":"[^"]*"' | sort -u | wc -l)"
V=$("$SOFFA" verify "$NET/broker/data" --key "$NET/broker/data/checkpoint.pub")
case "$V" in intact*) ok "the chain verifies";; *) bad "chain" "$V";; esac
finish_report
