#!/usr/bin/env bash
# Reliability: a broker whose store is full refuses publishes with a clear
# error naming the remedy, keeps delivering and replaying what it has, loses
# nothing it acknowledged, and takes publishes again once there is room. The
# agents keep the refused messages in their outbox.
#
#   tests/it_full.sh BUILD_DIR [map|disk]
#
#   map   the store reaches its map_size (160 KiB); room = a larger map_size
#         and a restart.
#   disk  the store lives on its own small filesystem (a 192 KiB tmpfs, in a
#         private mount namespace) that fills up; room = the filesystem grown
#         while the broker runs, with no restart.
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_full.sh BUILD_DIR [map|disk]}" && pwd)
MODE=${2:-map}
if [ "$MODE" = disk ] && [ -z "${SOFFA_IT_NS:-}" ]; then
    # A mount namespace of our own: the small filesystem disappears with the
    # test, whatever happens. Root may mount; others map themselves to root.
    if [ "$(id -u)" = 0 ]; then NS=(unshare -m --propagation private); else NS=(unshare -r -m --propagation private); fi
    SOFFA_IT_NS=1 exec "${NS[@]}" bash "$0" "$@"
    echo "[FAIL] cannot make a mount namespace for the small filesystem (unshare: $?)"
    echo "0 passed, 1 failed"
    exit 1
fi
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-fu-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; pkill -f "$NET/" 2>/dev/null; umount "$NET/disk" 2>/dev/null; rm -rf "$NET"' EXIT
s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
stop_broker() {
    local p
    p=$(pid_of broker)
    kill -TERM "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
}
start_broker() {
    local p
    setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
    p=$!
    disown "$p"
    sed -i "s/^broker .*/broker $p/" "$NET/pids"
}

"$SOFFA" up "$NET" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
stop_broker
if [ "$MODE" = disk ]; then
    mkdir "$NET/disk"
    if ! mount -t tmpfs -o size=192k,mode=0700 soffa-it-disk "$NET/disk"; then
        bad "a small filesystem for the store" "mount -t tmpfs failed"
        finish_report
    fi
    mv "$NET/broker/data" "$NET/disk/data"
    sed -i "s|^data_dir = data$|data_dir = $NET/disk/data|" "$NET/broker/broker.ini"
    FULL_LOG="the disk holding the store is full"; REMEDY="free space on it"
    echo "       (store on a $(df -k "$NET/disk" | awk 'NR == 2 {print $2}') KiB tmpfs; map_size stays 1 GiB)"
else
    sed -i 's/^\[audit\]$/[store]\nmap_size = 160KiB\n\n[audit]/' "$NET/broker/broker.ini"
    FULL_LOG="STORE_FULL"; REMEDY="raise \[store\] map_size"
fi
start_broker
sleep 1

N=400
{ echo "type,pupil,hemkommun,period_from,period_to,unexcused_band,school_unit"
  for i in $(seq 1 $N); do echo "absence,$(pupil "$i"),1419,${ABS_FROM},${ABS_TO},SIGNIFICANT,14150001"; done; } > "$NET/rows.csv"
expect "all $N rows are handed to the school agent" "$N signal(er) lagda i utkorgen, 0 ändring(ar) signaleras inte, 0 hanterade tidigare, 0 fel." "$(s school-1415 import "$NET/rows.csv" 2>&1 | tail -1)"
for _ in $(seq 100); do grep -q "$FULL_LOG" "$NET/broker/broker.log" && break; sleep 0.1; done
sleep 1
grep -q "$FULL_LOG" "$NET/broker/broker.log" && ok "the store filled up" || bad "the store filled up" "$(tail -3 "$NET/broker/broker.log")"
WAITING=$(outbox school-1415)
[ "$WAITING" -gt 0 ] && ok "the refused messages wait in the school's outbox ($WAITING)" || bad "outbox keeps refused messages" "$WAITING"
grep -q "$REMEDY" "$NET/school-1415/agent.log" && ok "the refusal names the remedy" || bad "remedy named" "$(grep -m1 'cannot take' "$NET/school-1415/agent.log")"
OUT=$(s school-1415 signal absence --pupil "$(pupil 999)" --hemkommun 1419 --period-from ${ABS_FROM} --period-to ${ABS_TO} \
    --unexcused-band SIGNIFICANT --school-unit 14150001 --wait 3000 2>&1)
case "$OUT" in queued*) ok "a person handing over a signal now hears it is queued, not lost";; *) bad "queued when full" "$OUT";; esac
STORED=$(count kaa-1419)
[ "$STORED" -gt 0 ] && [ "$STORED" -lt $((N + 1)) ] && ok "delivery goes on while full ($STORED delivered)" || bad "delivery while full" "$STORED"
R=$(s audit --json replay --mailbox kaa/1419 --limit 5 2>&1 | grep -c '"seq"')
# (An import hands its rows over in one burst, so how many got in before
# the store filled depends on how the broker batched them.)
expect "replay goes on while full" $((STORED < 5 ? STORED : 5)) "$R"
expect "the broker is still running" 0 "$(kill -0 "$(pid_of broker)" 2>/dev/null; echo $?)"
OUT=$(s school-1415 status 2>&1); rc=$?
case "$rc:$OUT" in 1:*"health: WARNING"*"the outbox does not drain"*) ok "soffa status warns (exit 1) that the outbox does not drain";; *) bad "status warns of a stuck outbox" "$rc $OUT";; esac

if [ "$MODE" = disk ]; then
    mount -o remount,size=64m "$NET/disk"
else
    sed -i 's/^map_size = 160KiB$/map_size = 64MiB/' "$NET/broker/broker.ini"
    stop_broker
    start_broker
fi
for _ in $(seq 300); do [ "$(outbox school-1415)" = 0 ] && [ "$(count kaa-1419)" -ge $((N + 1)) ] && break; sleep 0.1; done
sleep 1
expect "once there was room, the outbox drained" 0 "$(outbox school-1415)"
expect "... and Tjörn's KAA holds every signal" $((N + 1)) "$(count kaa-1419)"
expect "... each once" $((N + 1)) "$(s kaa-1419 --json inbox --limit 100000 | grep -o '"message_id":"[^"]*"' | sort -u | wc -l)"
DATA="$NET/broker/data"
[ "$MODE" = disk ] && DATA="$NET/disk/data"
stop_broker   # a copy at rest to verify, with its last checkpoint
V=$("$SOFFA" verify "$DATA" --key "$NET/broker/checkpoint.pub")
case "$V" in intact*) ok "the chain verifies";; *) bad "chain" "$V";; esac
finish_report
