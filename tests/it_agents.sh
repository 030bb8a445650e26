#!/usr/bin/env bash
# Integration tests for soffa-agent and the soffa command line, with real
# broker and agent processes over real sockets and real LMDB files.
#
#   tests/it_agents.sh BUILD_DIR
#
# Prints one line per check and a closing "N passed, N failed" line.
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_agents.sh BUILD_DIR}" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-it-XXXXXX)
# An enrolment that ended this term (ABS_FROM and ABS_TO, an absence period,
# are in itlib.sh): relative to today, as the broker takes dates at most
# [policy] event_max_days (183) back.
LEFT_ON=$(date -d '-30 days' +%F)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; pkill -f "$NET/" 2>/dev/null; rm -rf "$NET"' EXIT

s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
stop_proc() {   # stop_proc NAME SIGNAL
    local p
    p=$(pid_of "$1")
    kill "-$2" "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
}
start_agent() {   # start_agent NAME: restart an agent and record its pid
    setsid "$BUILD/soffa-agent" --config "$NET/$1/agent.ini" >>"$NET/$1/agent.log" 2>&1 </dev/null &
    local p=$!
    sed -i "s/^$1 .*/$1 $p/" "$NET/pids"
    for _ in $(seq 100); do s "$1" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && return; sleep 0.1; done
}
start_broker() {
    setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
    local p=$!
    sed -i "s/^broker .*/broker $p/" "$NET/pids"
}
wait_count() {   # wait_count AGENT N: until AGENT's inbox holds N (max 15 s)
    for _ in $(seq 150); do [ "$(count "$1")" -ge "$2" ] && return; sleep 0.1; done
}
absence() {   # absence N [--wait MS]
    s school-1415 signal absence --pupil "$(pupil "$1")" --hemkommun 1419 --period-from ${ABS_FROM} \
        --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 14150001 "${@:2}"
}

"$SOFFA" up "$NET" >/dev/null || { echo "[FAIL] soffa up"; echo "0 passed, 1 failed"; exit 1; }

# ---- it_20: refusals reach the person who typed the command ----
out=$(s school-1415 refer af --pupil "$(pupil 1)" --hemkommun 1419 --consent new 2>&1); rc=$?
expect "it_20 a refused command exits 1" 1 $rc
case "$out" in *"may not send referral_sent"*"[POLICY]"*) ok "it_20 the broker's reason is shown";; *) bad "it_20 the broker's reason is shown" "$out";; esac
out=$(s school-1415 signal absence --pupil 080314-2711 --hemkommun 1419 2>&1); rc=$?
expect "it_20 a bad identity number is refused before anything is stored" 1 $rc
case "$out" in *"check digit"*) ok "it_20 ... and says why";; *) bad "it_20 ... and says why" "$out";; esac
out=$(s school-1415 signal absence --pupil "$(pupil 1)" --hemkommun 1419 --unexcused-band HUGE 2>&1); rc=$?
case "$out" in *"SIGNIFICANT EXTENSIVE TOTAL"*) ok "it_20 a bad code lists the allowed ones";; *) bad "it_20 a bad code lists the allowed ones" "$out";; esac
expect "it_20 nothing was left in the outbox" 0 "$(s school-1415 --json status | grep -o '"outbox":[0-9]*' | cut -d: -f2)"

# ---- it_21: the broker is down for longer than the agents' reconnect ----
# ---- backoff ceiling; nothing handed over is lost, and order is kept ----
CEIL=$(sed -n 's/^reconnect_max_ms *= *//p' "$NET/school-1415/agent.ini")
stop_proc broker TERM
T0=$(date +%s%N)
for i in $(seq 1 20); do absence "$((100 + i))" --wait 200 >/dev/null 2>&1; done
expect "it_21 the school agent kept all 20 in its outbox" 20 "$(s school-1415 --json status | grep -o '"outbox":[0-9]*' | cut -d: -f2)"
# Keep the broker away for three backoff ceilings in all.
while [ $(( ($(date +%s%N) - T0) / 1000000 )) -lt $(( 3 * CEIL )) ]; do sleep 0.2; done
OUTAGE_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
expect "it_21 during the outage the agent reports it is not connected" false "$(s school-1415 --json status | grep -o '"connected":[a-z]*' | head -1 | cut -d: -f2)"
out=$(s school-1415 status 2>&1); rc=$?
case "$rc:$out" in 2:*"health: CRITICAL: not connected to the broker"*) ok "it_31 soffa status exits 2 (critical) while the broker is unreachable";; *) bad "it_31 status while the broker is away" "$rc $out";; esac
start_broker
wait_count kaa-1419 20
sleep 1
echo "       (outage ${OUTAGE_MS} ms; reconnect ceiling ${CEIL} ms)"
expect "it_21 every signal reached Tjörn's KAA after the broker returned, once each" 20 "$(count kaa-1419)"
expect "it_21 no message id twice" 20 "$(s kaa-1419 --json inbox --limit 1000 | grep -o '"message_id":"[^"]*"' | sort -u | wc -l)"
WANT=$(for i in $(seq 1 20); do p=$(pupil "$((100 + i))"); echo "20${p:0:6}${p:7:4}"; done | tr '\n' ' ')
GOT=$(s kaa-1419 --json inbox --limit 1000 | grep -o '"subject":{"id_type":"PNR","id":"[0-9]*"' | grep -o '[0-9]\{12\}' | tr '\n' ' ')
expect "it_21 they arrived in the order the school handed them over" "$WANT" "$GOT"
expect "it_21 the outbox is empty again" 0 "$(s school-1415 --json status | grep -o '"outbox":[0-9]*' | cut -d: -f2)"

# ---- it_22: CSV import with good and bad rows ----
{
    echo "type,pupil,hemkommun,period_from,period_to,unexcused_band,school_unit,event,effective_date,school_form"
    for i in $(seq 1 30); do
        echo "absence,$(pupil "$((200 + i))"),1419,${ABS_FROM},${ABS_TO},SIGNIFICANT,14150001,,,"
    done
    echo "absence,080314-2711,1419,${ABS_FROM},${ABS_TO},SIGNIFICANT,14150001,,,"
    echo "absence,$(pupil 300),1499x,${ABS_FROM},${ABS_TO},SIGNIFICANT,14150001,,,"
    echo "# a comment line"
    echo "absence,$(pupil 301),1419,2026-09-31,${ABS_TO},SIGNIFICANT,14150001,,,"
    echo "enrolment,$(pupil 302),1419,,,,14150001,LEFT,${LEFT_ON},GY"
    echo "transfer,$(pupil 303),1419,,,,14150001,,,"
    echo "absence,$(pupil 304),1419,${ABS_FROM}"
} > "$NET/export.csv"
out=$(s school-1415 import "$NET/export.csv" 2>&1); rc=$?
expect "it_22 import exits 1 when a row is bad" 1 $rc
for want in ":32: " ":33: " ":35: " ":37: " ":38: "; do
    case "$out" in *"export.csv$want"*) ok "it_22 bad row reported with its line number ($want)";; *) bad "it_22 bad row reported ($want)" "$out";; esac
done
case "$out" in *"ingenting har lämnats över: 5 fel"*) ok "it_22 a file with bad rows hands over nothing";; *) bad "it_22 nothing handed over" "$out";; esac
expect "it_22 ... the outbox got nothing" 0 "$(outbox school-1415)"
out=$(s school-1415 import --skip-bad "$NET/export.csv" 2>&1); rc=$?
expect "it_22 --skip-bad still exits 1 (the bad rows are listed)" 1 $rc
case "$out" in *"31 signal(er) lagda i utkorgen"*"5 fel"*) ok "it_22 --skip-bad queues the good rows, counts the bad";; *) bad "it_22 counts" "$out";; esac
wait_count kaa-1419 51
expect "it_22 the 31 good rows were delivered" 51 "$(count kaa-1419)"

# ---- it_31: soffa status speaks the Nagios convention: 0 ok, 1 warning, 2 critical ----
out=$(s kaa-1419 status 2>&1); rc=$?
case "$rc:$out" in 0:*"health: ok") ok "it_31 a healthy agent: exit 0, health ok";; *) bad "it_31 healthy" "$rc $out";; esac
J=$(s audit --json status); rc=$?
CP=$(grep -o '"mailbox":"audit/checkpoint"[^}]*' <<<"$J")
case "$rc:$CP" in 0:*'"no_reader":false'*) ok "it_31 the broker's own audit/checkpoint is never a mailbox without a reader";; *) bad "it_31 audit/checkpoint" "$rc $CP"; esac
case "$(s audit status)" in *"NO READER"*) bad "it_31 no NO READER for the broker's own mailboxes" "$(s audit status)";; *) ok "it_31 no NO READER for the broker's own mailboxes";; esac
stop_proc kaa-1415 TERM
out=$(s kaa-1415 status 2>&1); rc=$?
case "$rc:$out" in 2:*"no agent listens"*) ok "it_31 an agent that does not answer: exit 2";; *) bad "it_31 agent down" "$rc $out";; esac
s school-1415 signal absence --pupil "$(pupil 350)" --hemkommun 1415 --period-from ${ABS_FROM} --period-to ${ABS_TO} \
    --unexcused-band SIGNIFICANT --school-unit 14150001 >/dev/null
for _ in $(seq 100); do s audit --json status | grep -q '"mailbox":"kaa/1415"[^}]*"no_reader":true' && break; sleep 0.1; done
out=$(s audit status 2>&1); rc=$?
case "$rc:$out" in 1:*"health: WARNING"*"kaa/1415: 1 message(s) wait and no agent reads it"*) ok "it_31 a mailbox with a waiting message and no reader: exit 1, named";; *) bad "it_31 no reader" "$rc $out";; esac
J=$(s audit --json status); rc=$?
case "$rc:$J" in 1:*'"health":{"state":"warning","exit":1,"problems":["kaa/1415: 1 message(s) wait and no agent reads it"]}'*) ok "it_31 ... and --json says the same";; *) bad "it_31 json health" "$rc $J";; esac
start_agent kaa-1415
wait_count kaa-1415 1
s kaa-1415 ack --re last --result REGISTERED >/dev/null   # so that it is not overdue in it_28
for _ in $(seq 50); do s audit status >/dev/null 2>&1 && break; sleep 0.1; done
expect "it_31 the reader back: exit 0 again" 0 "$(s audit status >/dev/null 2>&1; echo $?)"

# ---- it_23: an agent killed with SIGKILL while receiving has everything exactly once ----
# (A thousand rows: an import is one batch, so it must be large for the kill
# to land while the deliveries stream.)
BURST=1000
for i in $(seq 1 $BURST); do echo "absence,$(pupil "$((2000 + i))"),1419,${ABS_FROM},${ABS_TO},SIGNIFICANT,14150001"; done |
    sed '1i type,pupil,hemkommun,period_from,period_to,unexcused_band,school_unit' > "$NET/burst.csv"
s school-1415 import "$NET/burst.csv" >/dev/null 2>&1 &
IMPORT=$!
wait_count kaa-1419 80
AT_KILL=$(count kaa-1419)
stop_proc kaa-1419 KILL
wait $IMPORT
start_agent kaa-1419
if [ "$AT_KILL" -lt $((51 + BURST)) ]; then ok "it_23 the agent was killed mid-stream ($AT_KILL of $((51 + BURST)) stored)"; else bad "it_23 kill mid-stream" "all had arrived before the kill"; fi
wait_count kaa-1419 $((51 + BURST))
sleep 1
expect "it_23 after SIGKILL and restart the inbox holds every message" $((51 + BURST)) "$(count kaa-1419)"
expect "it_23 ... each exactly once" $((51 + BURST)) "$(s kaa-1419 --json inbox --limit 100000 | grep -o '"seq":[0-9]*' | sort -u | wc -l)"

# ---- it_24: hooks feed a script; a failing hook parks its message and blocks nothing ----
stop_proc af-1419 TERM
cat > "$NET/hook.sh" <<'HOOK'
#!/bin/sh
# Fails for the second message until the file "fixed" exists.
dir=$(dirname "$0")
if [ "$SOFFA_SEQ" = "$(cat "$dir/fail-seq" 2>/dev/null)" ] && [ ! -e "$dir/fixed" ]; then exit 3; fi
cat > "$dir/hooked-$SOFFA_SEQ.json"
HOOK
chmod +x "$NET/hook.sh"
printf 'hook = %s/hook.sh\nhook_retries = 3\nhook_backoff_ms = 50\n' "$NET" >> "$NET/af-1419/agent.ini"
start_agent af-1419
CONSENT=$(s kaa-1419 consent record --re last --youth-age-at-grant 18 --maturity-assessed yes \
    --scope.recipients ARBETSFORMEDLINGEN --scope.purposes REFERRAL --scope.data-categories IDENTITY \
    --valid-from "$(date +%F)" --valid-to "$(date -d '+1 month' +%F)" --recorded-by h1 | awk '/consent_id/ {print $2}')
s kaa-1419 refer af --re last --consent "$CONSENT" >/dev/null
FAILSEQ=$(s kaa-1419 refer af --re last --consent "$CONSENT" | awk '/accepted/ {gsub(/[()]/, ""); print $NF}')
echo "$FAILSEQ" > "$NET/fail-seq"
s kaa-1419 refer af --re last --consent "$CONSENT" >/dev/null
for _ in $(seq 100); do [ "$(ls "$NET"/hooked-*.json 2>/dev/null | wc -l)" -ge 2 ] && \
    s af-1419 --json inbox --failed | grep -q '"seq"' && break; sleep 0.1; done
expect "it_24 the hook got the messages around the failing one" 2 "$(ls "$NET"/hooked-*.json 2>/dev/null | wc -l)"
grep -q '"type":"referral_sent"' "$NET"/hooked-*.json && ok "it_24 the hook receives the message as JSON" || bad "it_24 hook input is JSON"
expect "it_24 the failing message is parked" "$FAILSEQ" "$(s af-1419 --json inbox --failed | grep -o '"seq":[0-9]*' | cut -d: -f2)"
out=$(s af-1419 status); rc=$?
case "$rc:$out" in 1:*"1 failed"*"health: WARNING: 1 message(s) parked after their hook failed"*) ok "it_24 status shows the parked message, and warns (exit 1)";; *) bad "it_24 status shows the parked message" "$rc $out";; esac
touch "$NET/fixed"
s af-1419 retry "$FAILSEQ" >/dev/null
for _ in $(seq 50); do [ -e "$NET/hooked-$FAILSEQ.json" ] && break; sleep 0.1; done
[ -e "$NET/hooked-$FAILSEQ.json" ] && ok "it_24 'soffa retry' hands it to the hook again" || bad "it_24 retry"
expect "it_24 nothing is parked any more" "" "$(s af-1419 --json inbox --failed | grep -o '"seq":[0-9]*')"

# ---- it_27: withdrawing a consent from the command line stops new referrals on it ----
out=$(s kaa-1419 consent withdraw --re last --consent "$CONSENT" 2>&1); rc=$?
case "$rc:$out" in 0:*"accepted: consent withdraw -> kaa-journal/1419"*) ok "it_27 consent withdrawn with --consent alone";; *) bad "it_27 consent withdraw" "$out";; esac
out=$(s kaa-1419 refer af --re last --consent "$CONSENT" 2>&1); rc=$?
case "$rc:$out" in 1:*"withdrawn"*"[CONSENT]"*) ok "it_27 a referral on a withdrawn consent is refused";; *) bad "it_27 refused after withdrawal" "$out";; esac

# ---- it_28: business receipts: answers missing past their deadline are flagged ----
sed -i 's/^checkpoint_ms = .*/&\nsignal_ack_due = 2s\nreferral_receipt_due = 2s/' "$NET/broker/broker.ini"
printf 'signal_ack_due = 2s\nreferral_receipt_due = 2s\n' >> "$NET/school-1415/agent.ini"
printf 'signal_ack_due = 2s\nreferral_receipt_due = 2s\n' >> "$NET/kaa-1419/agent.ini"
stop_proc kaa-1419 TERM
stop_proc school-1415 TERM
stop_proc broker TERM
start_broker
start_agent school-1415
start_agent kaa-1419
A=$(absence 900 | awk '/message id/ {print $3}')
B=$(s school-1415 signal absence --pupil "$(pupil 901)" --hemkommun 1415 --period-from ${ABS_FROM} --period-to ${ABS_TO} \
    --unexcused-band SIGNIFICANT --school-unit 14150001 | awk '/message id/ {print $3}')
wait_count kaa-1419 $((52 + BURST))
s kaa-1419 ack --re "$A" --result REGISTERED >/dev/null
sleep 3
INB=$(s school-1415 inbox)
case "$INB" in *"OVERDUE  absence_reported $B"*"no acknowledgement yet"*) ok "it_28 the school's inbox shows its unacknowledged signal as overdue";; *) bad "it_28 school inbox overdue" "$INB";; esac
case "$INB" in *"$A"*) bad "it_28 an acknowledged signal is not overdue" "$INB";; *) ok "it_28 an acknowledged signal is not overdue";; esac
out=$(s school-1415 status 2>&1); rc=$?
case "$out" in *"OVERDUE: "[0-9]*" signal(s) not acknowledged"*) ok "it_28 the school's status counts overdue signals";; *) bad "it_28 school status" "$out";; esac
case "$rc:$out" in 1:*"health: WARNING: "[0-9]*" signal(s) and 0 referral(s) sent by this agent are overdue"*) ok "it_31 overdue receipts: soffa status exits 1 (warning)";; *) bad "it_31 overdue warning" "$rc $out";; esac
K=$(s kaa-1419 --json status | grep -o '"overdue":{[^}]*}')
expect "it_28 the KAA's referrals nobody has received are overdue" '"overdue":{"signals":0,"referrals":3}' "$K"
# af-1419 still holds a session from before the broker's restart: its
# command must go through all the same, not just be queued.
R=$(s af-1419 referral status --re last --status RECEIVED 2>&1)
case "$R" in "accepted: referral status -> kaa/1419"*) ok "it_28 an agent whose session the restarted broker forgot gets its command through";; *) bad "it_28 stale session" "$R";; esac
sleep 0.5
expect "it_28 ... and a receipt clears one" '"overdue":{"signals":0,"referrals":2}' "$(s kaa-1419 --json status | grep -o '"overdue":{[^}]*}')"
OV=$(s audit --json status | grep -o '"mailbox":"kaa/1415"[^}]*')
case "$OV" in *'"overdue":1'*) ok "it_28 the broker's status counts overdue signals per mailbox";; *) bad "it_28 broker overdue per mailbox" "$OV";; esac
case "$(s audit --json status | grep -o '"mailbox":"af/1419"[^}]*')" in *'"overdue":2'*) ok "it_28 ... and overdue referrals";; *) bad "it_28 broker overdue referrals" "$(s audit --json status)";; esac

# ---- it_29: answering a message of another kind never copies fields the answer lacks ----
out=$(s af-1419 concern feedback --re last --feedback INVESTIGATION_OPENED 2>&1); rc=$?
case "$rc:$out" in 1:*"concern_report_feedback.report_id: required"*) ok "it_29 feedback pointed at a referral says what is missing, not an unknown field";; *) bad "it_29 feedback on a referral" "$out";; esac

# ---- it_26: the example configuration checks, and a bad one says what to fix ----
mkdir -p "$NET/cfg"
cp "$(dirname "$0")/../config/agent.ini" "$NET/cfg/agent.ini"
( cd "$NET/cfg" && "$SOFFA" keygen kaa-1419 >/dev/null && "$SOFFA" keygen broker >/dev/null )
out=$("$BUILD/soffa-agent" --config "$NET/cfg/agent.ini" --check 2>&1); rc=$?
expect "it_26 config/agent.ini is valid" 0 $rc
printf '[agent]\nname = x\nbroker = tcp://127.0.0.1:1\nbroker_key = broker.pub\nkey = kaa-1419.key\ndata_dir = d\nwindow = 0\n' > "$NET/cfg/bad.ini"
out=$("$BUILD/soffa-agent" --config "$NET/cfg/bad.ini" --check 2>&1); rc=$?
case "$rc:$out" in 1:*"window must be in 1..1024"*) ok "it_26 an out-of-range value names the key and the range";; *) bad "it_26 bad config" "$out";; esac
chmod 644 "$NET/cfg/kaa-1419.key"
out=$("$BUILD/soffa-agent" --config "$NET/cfg/agent.ini" --check 2>&1); rc=$?
case "$rc:$out" in 1:*"chmod 600"*) ok "it_26 a key file others can read is refused";; *) bad "it_26 readable key refused" "$out";; esac

# ---- it_25: the control socket and keys are owner-only ----
expect "it_25 control socket mode" 600 "$(stat -c %a "$NET/kaa-1419/data/control.sock")"
expect "it_25 key file mode" 600 "$(stat -c %a "$NET/kaa-1419/kaa-1419.key")"
expect "it_25 agent store mode" 700 "$(stat -c %a "$NET/kaa-1419/data")"
expect "it_25 agent store file mode" 600 "$(stat -c %a "$NET/kaa-1419/data/data.mdb")"
expect "it_25 the web's control socket, directory, accounts and the access-log key" "600 700 600 600" \
    "$(stat -c %a "$NET/kaa-1419/web/agent.sock" "$NET/kaa-1419/web" "$NET/kaa-1419/web/users" "$NET/kaa-1419/data/access.key" | tr '\n' ' ' | sed 's/ $//')"
expect "it_25 the demo passwords are owner-only" 600 "$(stat -c %a "$NET/web-passwords")"
expect "it_25 broker key and store" "600 700 600" "$(stat -c %a "$NET/broker/broker.key" "$NET/broker/data" "$NET/broker/data/data.mdb" | tr '\n' ' ' | sed 's/ $//')"

# ---- it_30: another local user can neither use an agent nor read its files ----
# Even with the network directory opened up, only the owner's modes stand
# between another user and the agent; then even the data directory.
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo -n)
if command -v setpriv >/dev/null && "${SUDO[@]}" true 2>/dev/null; then
    as_other() { "${SUDO[@]}" setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    chmod 755 "$NET" "$NET/kaa-1419"
    out=$(as_other "$SOFFA" --net "$NET" --agent kaa-1419 status 2>&1); rc=$?
    # (status exits 2: to a monitoring check an agent it cannot reach is critical)
    case "$rc:$out" in 2:*"permission denied"*) ok "it_30 another user's soffa is turned away with a clear reason";; *) bad "it_30 other user, status" "$rc $out";; esac
    as_other cat "$NET/kaa-1419/kaa-1419.key" >/dev/null 2>&1; expect "it_30 ... cannot read the agent's key" 1 $?
    as_other ls "$NET/kaa-1419/data" >/dev/null 2>&1; expect "it_30 ... cannot list the agent's store" 2 $?
    chmod 711 "$NET/kaa-1419/data"   # an operator's slip: the socket itself still holds
    out=$(as_other "$SOFFA" --net "$NET" --agent kaa-1419 inbox 2>&1); rc=$?
    case "$rc:$out" in 1:*"permission denied"*) ok "it_30 ... nor use the control socket itself";; *) bad "it_30 other user, socket" "$rc $out";; esac
    as_other cat "$NET/kaa-1419/data/data.mdb" >/dev/null 2>&1; expect "it_30 ... nor read the store file" 1 $?
    chmod 700 "$NET/kaa-1419/data"; chmod 700 "$NET" "$NET/kaa-1419"
    case "$(s kaa-1419 status 2>&1)" in "agent kaa-1419 (kaa): connected"*) ok "it_30 the owner still gets through";; *) bad "it_30 the owner still gets through" "$(s kaa-1419 status 2>&1)";; esac
else
    bad "it_30 needs root or password-less sudo (to act as another user with setpriv)" "run the suite as root, or as a user with sudo"
fi

# ---- Issue 11 ----

# it_31 (item 14): a hook inherits nothing of the agent's store and gets its
# input on a pipe; no file with the message is left in the data directory,
# and one an earlier version left behind is removed at start.
# it_32 (item 15): the control socket is owner-only even under umask 000.
stop_proc kaa-1415 TERM
cat > "$NET/fdhook.sh" <<'HOOK'
#!/bin/sh
dir=$(dirname "$0")
for fd in /proc/$$/fd/*; do echo "${fd##*/} $(readlink "$fd")"; done > "$dir/fds-$SOFFA_SEQ.txt"
ls -a "$dir/kaa-1415/data" > "$dir/datadir-during-$SOFFA_SEQ.txt"
cat > "$dir/fdhook-$SOFFA_SEQ.json"
HOOK
chmod +x "$NET/fdhook.sh"
printf 'hook = %s/fdhook.sh\n' "$NET" >> "$NET/kaa-1415/agent.ini"
echo '{"stale":"a message from an earlier version"}' > "$NET/kaa-1415/data/hook-input.json"
( umask 000; start_agent kaa-1415 )
expect "it_32 under umask 000 the control socket is still owner-only" 600 "$(stat -c %a "$NET/kaa-1415/data/control.sock")"
if [ -e "$NET/kaa-1415/data/hook-input.json" ]; then bad "it_31 a stale hook-input.json is removed at start"; else ok "it_31 a stale hook-input.json is removed at start"; fi
SEQ31=$(s school-1415 signal absence --pupil "$(pupil 931)" --hemkommun 1415 --period-from ${ABS_FROM} \
    --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 14150001 | awk '/accepted/ {gsub(/[()]/, ""); print $NF}')
for _ in $(seq 100); do [ -s "$NET/fdhook-$SEQ31.json" ] 2>/dev/null && break; sleep 0.1; done
if ls "$NET"/fdhook-*.json >/dev/null 2>&1; then ok "it_31 the hook ran"; else bad "it_31 the hook ran" "$(tail -5 "$NET/kaa-1415/agent.log")"; fi
FDS=$(cat "$NET"/fds-*.txt 2>/dev/null)
case "$FDS" in *data.mdb*|*lock.mdb*) bad "it_31 the hook holds no descriptor of the agent's store" "$FDS";; *) ok "it_31 the hook holds no descriptor of the agent's store";; esac
case "$FDS" in *socket:*|*anon_inode:*) bad "it_31 ... nor a socket or ZeroMQ's event descriptors" "$FDS";; *) ok "it_31 ... nor a socket or ZeroMQ's event descriptors";; esac
case "$(grep '^0 ' <<<"$FDS")" in "0 pipe:"*) ok "it_31 the hook's stdin is a pipe";; *) bad "it_31 the hook's stdin is a pipe" "$FDS";; esac
if grep -q '"type":"absence_reported"' "$NET"/fdhook-*.json 2>/dev/null; then ok "it_31 the hook reads the record from its stdin"; else bad "it_31 the hook reads the record" "$(cat "$NET"/fdhook-*.json 2>/dev/null)"; fi
LEFT=$(cat "$NET"/datadir-during-*.txt 2>/dev/null; ls -a "$NET/kaa-1415/data")
case "$LEFT" in *hook-input*) bad "it_31 no file with the message in the data directory, during or after the hook" "$LEFT";; *) ok "it_31 no file with the message in the data directory, during or after the hook";; esac
if grep -rl "$(pupil 931 | tr -d -)" "$NET/kaa-1415/data" 2>/dev/null | grep -v '\.mdb$' | grep -q .; then
    bad "it_31 the identity number is in no file of the data directory but the store"
else
    ok "it_31 the identity number is in no file of the data directory but the store"
fi

# it_33 (item 5): reserve numbers on the command line and in the history.
R17="20090101tf10"   # typed in lowercase; 17 when the absence began
out=$(s school-1415 signal absence --pupil "$R17" --hemkommun 1419 --period-from ${ABS_FROM} --period-to ${ABS_TO} \
    --unexcused-band SIGNIFICANT --school-unit 14150001 2>&1); rc=$?
case "$rc:$out" in 0:*"accepted"*) ok "it_33 --pupil takes a reserve number";; *) bad "it_33 --pupil takes a reserve number" "$out";; esac
out=$(s school-1415 signal absence --reserve-id 19900101TF10 --hemkommun 1419 --period-from ${ABS_FROM} \
    --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 14150001 2>&1); rc=$?
case "$rc:$out" in 1:*"[AGE]"*) ok "it_33 the age rule runs on a reserve number's birth date";; *) bad "it_33 age rule on a reserve number" "$out";; esac
out=$(s school-1415 signal absence --reserve-id "$(pupil 1 | tr -d -)" --hemkommun 1419 2>&1); rc=$?
case "$rc:$out" in 1:*"two letters"*) ok "it_33 a personnummer is refused as a reserve number";; *) bad "it_33 a personnummer as a reserve number" "$out";; esac
out=$(s school-1415 signal absence --pupil 2009010127A0 --hemkommun 1419 2>&1); rc=$?
case "$rc:$out" in 1:*"at least two"*) ok "it_33 a malformed reserve number says what the form is";; *) bad "it_33 malformed reserve number" "$out";; esac
out=$(s audit history --pupil "$R17" 2>&1); rc=$?
case "$rc:$out" in 0:*"absence_reported"*"1 record(s)"*) ok "it_33 history --pupil finds a reserve number's record";; *) bad "it_33 history of a reserve number" "$out";; esac

# it_34 (item 7): free text in a code field is refused before it is stored.
out=$(s school-1415 signal absence --pupil "$(pupil 934)" --hemkommun 1419 --period-from ${ABS_FROM} \
    --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 14150001 --actor "Eleven har ADHD" 2>&1); rc=$?
case "$rc:$out" in 1:*"actor_ref"*"user reference"*) ok "it_34 prose in actor_ref is refused, naming the field and its form";; *) bad "it_34 prose in actor_ref" "$out";; esac
expect "it_34 nothing was left in the outbox" 0 "$(outbox school-1415)"

# it_35 (item 8): a school's claims are held to its configuration.
out=$(s school-1415 signal absence --pupil "$(pupil 935)" --hemkommun 1419 --period-from ${ABS_FROM} \
    --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 14199999 2>&1); rc=$?
case "$rc:$out" in 1:*"14199999 is not one of school-1415's configured school units"*"[NOT_AUTHORISED]"*) ok "it_35 another school unit is refused with the reason";; *) bad "it_35 another school unit" "$out";; esac

# it_36 (issue 13, rules 8-10) from the command line: the case lifecycle and
# its refusals, "not our youth, rerouted", and a samordningsnummer replaced by
# a personnummer whose history shows what came before.
P=$(pupil 936)
CASE=$(cat /proc/sys/kernel/random/uuid)
out=$(s kaa-1419 case contact --pupil "$P" --hemkommun 1419 --case-id "$CASE" --attempt-no 1 --channel PHONE \
    --outcome REACHED 2>&1); rc=$?
case "$rc:$out" in 1:*"open the case first"*"[NOT_FOUND]"*) ok "it_36 an event on a case never opened is refused";; *) bad "it_36 event before open" "$out";; esac
s kaa-1419 case open --pupil "$P" --hemkommun 1419 --case-id "$CASE" >/dev/null
s kaa-1419 case close --pupil "$P" --hemkommun 1419 --case-id "$CASE" --reason STARTED_NATIONAL_PROGRAMME >/dev/null
out=$(s kaa-1419 case occupation --pupil "$P" --hemkommun 1419 --case-id "$CASE" --as-of "$(date +%F)" \
    --occupation NONE 2>&1); rc=$?
case "$rc:$out" in 1:*"was closed on"*"[NOT_OPEN]"*) ok "it_36 an event on a closed case is refused, saying when it closed";; *) bad "it_36 event on a closed case" "$out";; esac
SIG=$(absence 936 | awk '/message id/ {print $3}')
out=$(s kaa-1419 case reopen --pupil "$P" --hemkommun 1419 --case-id "$CASE" --signal-id "$SIG" 2>&1); rc=$?
case "$rc:$out" in 0:*"accepted: case reopen -> kaa-journal/1419"*) ok "it_36 soffa case reopen on a new signal";; *) bad "it_36 case reopen" "$out";; esac
out=$(s kaa-1419 case occupation --pupil "$P" --hemkommun 1419 --case-id "$CASE" --as-of "$(date +%F)" --occupation NONE 2>&1); rc=$?
case "$rc:$out" in 0:*"accepted"*) ok "it_36 the reopened case takes events";; *) bad "it_36 reopened case" "$out";; esac
BEFORE=$(count kaa-1415)
out=$(s kaa-1419 ack --pupil "$P" --hemkommun 1419 --signal-id "$SIG" --result NOT_HEMKOMMUN_REROUTED --new-hemkommun 1415 2>&1); rc=$?
case "$rc:$out" in 0:*"accepted: ack -> school/school-1415"*) ok "it_36 not our youth: acknowledged to the school";; *) bad "it_36 reroute ack" "$out";; esac
wait_count kaa-1415 $(( BEFORE + 1 ))
case "$(s kaa-1415 inbox | tail -n 1)" in *"absence_reported"*"from school-1415"*"to kaa/1415"*) ok "it_36 ... and the signal goes on to the right municipality's KAA";; *) bad "it_36 rerouted signal" "$(s kaa-1415 inbox)";; esac
samnr() {   # samnr N: a samordningsnummer (day + 60) like pupil N
    local d sum=0 i v
    d=$(printf '0803%02d%03d' $(( $1 % 28 + 61 )) $(( $1 % 900 + 100 )))
    for i in 0 1 2 3 4 5 6 7 8; do
        v=$(( ${d:$i:1} * (i % 2 == 0 ? 2 : 1) ))
        sum=$(( sum + v / 10 + v % 10 ))
    done
    echo "${d:0:6}-${d:6:3}$(( (10 - sum % 10) % 10 ))"
}
OLD=$(samnr 937)
NEW=$(pupil 937)
s school-1415 signal absence --pupil "$OLD" --hemkommun 1419 --period-from 2026-09-01 --period-to 2026-11-13 \
    --unexcused-band SIGNIFICANT --school-unit 14150001 >/dev/null
OLD12=$("$SOFFA" check-id "$OLD" | awk '{print $1}')
NEW12=$("$SOFFA" check-id "$NEW" | awk '{print $1}')
out=$(s kaa-1419 identity change --pupil "$NEW" --hemkommun 1419 --old-id.id-type SAMNR --old-id.id "$OLD12" \
    --old-id.hemkommun 1419 --new-id.id-type PNR --new-id.id "$NEW12" --new-id.hemkommun 1419 2>&1); rc=$?
case "$rc:$out" in 0:*"accepted: identity change -> kaa-journal/1419"*) ok "it_36 the KAA records the new number";; *) bad "it_36 identity change" "$out";; esac
out=$(s audit history --pupil "$NEW" 2>&1)
case "$out" in *"absence_reported"*"pupil ${OLD12}"*"subject_identity_changed"*) ok "it_36 soffa history of the new number shows what came under the old one";; *) bad "it_36 history of the new number" "$out";; esac

# it_37 (issue 19): the two-way early warning from the command line, through the real agents.
# A compulsory school hands a year-9 pupil (15, so on a guardian's consent) to the KAA; the
# KAA's coded answer reaches the school's inbox and clears the overdue flag (dues are 2 s
# since it_28); an admitted pupil who never started is told, and is no early warning.
young() {   # young N: a made-up personnummer of a pupil born 1 January fifteen years ago
    local d sum=0 i v
    d=$(printf '%02d0101%03d' $(( ($(date +%Y) - 15) % 100 )) $(( $1 % 900 + 100 )))
    for i in 0 1 2 3 4 5 6 7 8; do
        v=$(( ${d:$i:1} * (i % 2 == 0 ? 2 : 1) ))
        sum=$(( sum + v / 10 + v % 10 ))
    done
    echo "${d:0:6}-${d:6:3}$(( (10 - sum % 10) % 10 ))"
}
Y=$(young 938)
consent9() {   # consent9 GRANTED_BY: a school's consent for Y covering the KAA and status feedback
    s school-1415 consent record --pupil "$Y" --hemkommun 1419 --granted-by "$1" --youth-age-at-grant 15 \
        --maturity-assessed yes --scope.recipients KAA --scope.purposes REFERRAL,STATUS_FEEDBACK \
        --scope.data-categories IDENTITY,OCCUPATION,MEASURES --valid-from "$(date +%F)" \
        --valid-to "$(date -d '+1 month' +%F)" --recorded-by h1 2>&1
}
out=$(consent9 YOUTH); rc=$?
case "$rc:$out" in 1:*"under 16 a guardian"*"[CONSENT]"*) ok "it_37 a 15-year-old's own consent alone is refused";; *) bad "it_37 youth-only consent" "$out";; esac
C9=$(consent9 YOUTH,GUARDIAN | awk '/consent_id/ {print $2}')
year9() { s school-1415 signal year9 --pupil "$Y" --hemkommun 1419 --consent "$C9" --school-unit 14150001 \
    --risk NOT_STARTING --support-tried MENTOR,PUPIL_HEALTH_TEAM --contact-role STUDY_COUNSELLOR \
    --leaves-on "$(date -d '+60 days' +%F)" "$@" 2>&1; }
out=$(year9 --school-form GY); rc=$?
case "$rc:$out" in 1:*"GR or ANP_GR"*) ok "it_37 a handover from an upper-secondary school form is refused before it is stored";; *) bad "it_37 handover GY" "$out";; esac
N0=$(count kaa-1419)
out=$(year9); rc=$?
case "$rc:$out" in 0:"accepted: signal year9 -> kaa/1419"*) ok "it_37 the year-9 handover reaches the KAA of the home municipality";; *) bad "it_37 handover" "$out";; esac
H9=$(echo "$out" | awk '/message id/ {print $3}')
out=$(s school-1415 signal not-started --pupil "$(pupil 939)" --hemkommun 1419 --school-unit 14150001 \
    --term-start "$(date -d '-14 days' +%F)" 2>&1); rc=$?
case "$rc:$out" in 0:"accepted: signal not-started -> kaa/1419"*) ok "it_37 an admitted pupil who never started reaches the KAA";; *) bad "it_37 not started" "$out";; esac
wait_count kaa-1419 $((N0 + 2))
sleep 2.5
INB=$(s school-1415 inbox)
case "$INB" in *"OVERDUE  year9_handover $H9"*"no answer from the KAA yet"*) ok "it_37 an unanswered handover is flagged overdue in the school's inbox";; *) bad "it_37 handover overdue" "$INB";; esac
out=$(s kaa-1419 answer --re last --status ACCEPTED --consent "$C9" 2>&1); rc=$?
case "$rc:$out" in 1:*"not an early warning"*"[POLICY]"*) ok "it_37 the admission notice is acknowledged, not answered as a warning";; *) bad "it_37 answer to admission" "$out";; esac
out=$(s kaa-1419 answer --re "$H9" --status CONTACT_PERSON_ASSIGNED --contact-ref handl-17 2>&1); rc=$?
case "$rc:$out" in 0:"accepted: answer -> school/school-1415"*) ok "it_37 the KAA's answer goes back to the school that sent the warning";; *) bad "it_37 answer" "$out";; esac
for _ in $(seq 100); do s school-1415 --json inbox | grep -q '"early_warning_answered"' && break; sleep 0.1; done
J=$(s school-1415 --json inbox)
case "$J" in *'"early_warning_answered":{'*'"status":"CONTACT_PERSON_ASSIGNED"'*) ok "it_37 the school sees the coded answer in its inbox";; *) bad "it_37 answer in the school's inbox" "$J";; esac
case "$(s school-1415 inbox)" in *"OVERDUE  year9_handover $H9"*) bad "it_37 the answer clears the overdue flag" "$(s school-1415 inbox)";; *) ok "it_37 the answer clears the overdue flag";; esac
s school-1415 consent withdraw --pupil "$Y" --hemkommun 1419 --consent "$C9" >/dev/null 2>&1
out=$(s kaa-1419 answer --re "$H9" --status YOUTH_CONTACTED 2>&1); rc=$?
case "$rc:$out" in 1:*"withdrawn"*"[CONSENT]"*) ok "it_37 after withdrawal no status feedback goes to the school";; *) bad "it_37 feedback after withdrawal" "$out";; esac

"$SOFFA" down "$NET" >/dev/null
finish_report
