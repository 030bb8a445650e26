#!/usr/bin/env bash
# Encryption at rest and gallring in the agents (issue 17), with real
# processes: an agent store of the format before encryption upgraded, copies
# disposed of on schedule and on erasure, gone even for whoever holds the
# data directory and the agent's master key, and a disposal cut short by
# SIGKILL. tests/it_crypt.sh does the broker's side.
#
#   tests/it_cryptagent.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_cryptagent.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOFFA="$BUILD/soffa"
SCAN="$BUILD/tk_boxscan"
NET=$(mktemp -d /tmp/soffa-ca-XXXXXX)
. "$SRC/tests/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; rm -rf "$NET"' EXIT

s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
digits() { tr -d -- '-+' <<<"$1"; }
# in_clear DIR NEEDLE: where NEEDLE is found in DIR: in any file's bytes
# (grep), or in any key or value of its LMDB store (mdb_dump of every table).
in_clear() {
    local dir=$1 needle=$2
    grep -rlaF -- "$needle" "$dir" 2>/dev/null
    if [ -f "$dir/data.mdb" ]; then
        mdb_dump -a -p "$dir" 2>/dev/null | grep -qaF -- "$needle" && echo "$dir (an LMDB key or value)"
    fi
    return 0
}
stop_agent() {   # stop_agent NAME: SIGTERM, and wait until it is gone
    local p
    p=$(pid_of "$1")
    kill -TERM "$p" 2>/dev/null
    while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
}
start_agent() {   # start_agent NAME: in the background, recorded in pids; waits for its session
    setsid "$BUILD/soffa-agent" --config "$NET/$1/agent.ini" >>"$NET/$1/agent.log" 2>&1 </dev/null &
    local p=$!
    disown "$p"
    sed -i "s/^$1 .*/$1 $p/" "$NET/pids"
    for _ in $(seq 100); do s "$1" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && return 0; sleep 0.1; done
}
# hits OUTPUT: the sum of the counts tk_boxscan find printed.
hits() { awk '{n += $2} END {print n + 0}' <<<"$1"; }

"$SOFFA" up "$NET" >/dev/null || { echo "[FAIL] soffa up"; echo "0 passed, 1 failed"; exit 1; }
# The auditor is the data-protection officer (it_67); the agents greet the
# restarted broker at their next request.
BROKER_INI="$NET/broker/broker.ini"
bp=$(pid_of broker)
kill -TERM "$bp"; while kill -0 "$bp" 2>/dev/null; do sleep 0.05; done
printf '[retention]\nerasure_by = audit\n' >> "$BROKER_INI"
setsid "$BUILD/soffa-broker" --config "$BROKER_INI" >>"$NET/broker/broker.log" 2>&1 </dev/null &
bp=$!; disown "$bp"; sed -i "s/^broker .*/broker $bp/" "$NET/pids"

# ---- it_66: an agent store of format 1 (values in clear) upgraded ----
# tests/fixtures/store/agent-v1-small.mdb: school-1415's store before
# encryption (README there): the made-up pupil 080325-1529 and child
# 120513-1129 with the phrase "Markörfras-A1 hemligt om barnet".
FPUPIL=200803251529 FCHILD=201205131129 FMARK="Markörfras-A1"
FCONCERN=01a21efe-c51c-7803-ab93-4a31a76f72e7
SDATA="$NET/school-1415/data"
stop_agent school-1415
mv "$SDATA" "$SDATA.own"
mkdir -m 700 "$SDATA"
cp "$SRC/tests/fixtures/store/agent-v1-small.mdb" "$SDATA/data.mdb"
chmod 600 "$SDATA/data.mdb"
[ -n "$(in_clear "$SDATA" "$FPUPIL")" ] && [ -n "$(in_clear "$SDATA" "$FMARK")" ] \
    || bad "it_66 the fixture holds the pupil and the phrase in clear (the test's own check)"
SUM=$(sha256sum "$SDATA/data.mdb" | awk '{print $1}')
out=$(timeout 10 "$BUILD/soffa-agent" --config "$NET/school-1415/agent.ini" 2>&1); rc=$?
case "$rc:$out" in 1:*"of format 1 (before encryption)"*"--upgrade-store --backup"*) ok "it_66 the agent refuses a store of format 1 and names the command";;
    *) bad "it_66 refusal" "$rc $out";; esac
out=$("$BUILD/soffa-agent" --config "$NET/school-1415/agent.ini" --upgrade-store 2>&1); rc=$?
case "$rc:$out" in 1:*"give --backup DIR"*) ok "it_66 no upgrade without a backup directory";; *) bad "it_66 no backup" "$rc $out";; esac
expect "it_66 ... and neither wrote anything" "$SUM" "$(sha256sum "$SDATA/data.mdb" | awk '{print $1}')"
out=$("$BUILD/soffa-agent" --config "$NET/school-1415/agent.ini" --upgrade-store --backup "$NET/school-old" 2>&1); rc=$?
case "$rc:$out" in 0:*"(format 1 to 2)"*"delete it"*) ok "it_66 upgraded after a copy";; *) bad "it_66 upgrade" "$rc $out";; esac
[ -f "$NET/school-old/data.mdb" ] && [ -n "$(in_clear "$NET/school-old" "$FMARK")" ] \
    && ok "it_66 the old store, in clear, is in the backup directory" || bad "it_66 backup" "$(ls -la "$NET/school-old")"
expect "it_66 neither number nor phrase is left in the agent's data directory (files, every LMDB value)" "" \
    "$(for n in "$FPUPIL" "$FCHILD" "$FMARK"; do in_clear "$SDATA" "$n"; done)"
out=$("$BUILD/soffa-agent" --config "$NET/school-1415/agent.ini" --upgrade-store --backup "$NET/school-again" 2>&1); rc=$?
case "$rc:$out" in 0:*"nothing to do"*) ok "it_66 a second upgrade does nothing";; *) bad "it_66 again" "$rc $out";; esac
[ -e "$NET/school-again" ] && bad "it_66 ... and copies nothing" || ok "it_66 ... and copies nothing"
start_agent school-1415
out=$(s school-1415 --json inbox 2>&1)
case "$out" in *signal_acknowledged*"$FPUPIL"*) ok "it_66 the agent reads its inbox again: the acknowledgement about the pupil";; *) bad "it_66 inbox" "$out";; esac
# What this site sent is read as a caseworker reads it: the school's Skickat
# in the web inbox, through the agent's web control socket.
WSOCK=$(grep -o 'web control socket [^ ]*' "$NET/school-1415/agent.log" | tail -1 | awk '{print $4}')
out=$("$SOFFA" --socket "$WSOCK" --json show "$FCONCERN" 2>&1)
case "$out" in *"$FMARK"*) ok "it_66 ... and its kept copy of the concern report, phrase and all";; *) bad "it_66 show" "$out";; esac
case "$out" in *"$FCHILD"*) ok "it_66 ... with the child's number";; *) bad "it_66 show number" "$out";; esac
# The school goes back to its own store: the fixture's school has seen
# sequence numbers of another broker, and would skip this one's up to them.
stop_agent school-1415
rm -rf "$SDATA"
mv "$SDATA.own" "$SDATA"

# ---- it_67: an erasure reaches the agents, and what went is gone even with their master keys ----
start_agent school-1415
for a in school-1415 social-1419 audit; do
    for _ in $(seq 100); do s "$a" status >/dev/null 2>&1; s "$a" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break; sleep 0.1; done
done
# child N: a made-up personnummer of a child born 2012, valid check digit.
child() {
    local d sum=0 i v
    d=$(printf '1205%02d%03d' $(( $1 % 28 + 1 )) $(( $1 % 900 + 100 )))
    for i in 0 1 2 3 4 5 6 7 8; do
        v=$(( ${d:$i:1} * (i % 2 == 0 ? 2 : 1) ))
        sum=$(( sum + v / 10 + v % 10 ))
    done
    echo "${d:0:6}-${d:6:3}$(( (10 - sum % 10) % 10 ))"
}
# concern NAME CHILD PHRASE: a concern report from the school to social
# services; prints "MESSAGE-ID SEQ-AT-SOCIAL" once social services hold it.
concern() {
    local out id seq=""
    out=$(s school-1415 concern report --child "$1" --hemkommun 1419 --concern-codes NEGLECT --description "$2" 2>&1)
    id=$(awk '/message id/ {print $3}' <<<"$out")
    for _ in $(seq 50); do
        seq=$(s social-1419 --json inbox | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r.get("message", {}).get("message_id") == sys.argv[1]: print(r["seq"])' "$id")
        [ -n "$seq" ] && break
        sleep 0.1
    done
    echo "$id $seq"
}
# gone_for_good WHO CHILD PHRASE ID SEQ: the school's kept copy (M ID) and
# social services' delivery (I SEQ) cannot be found in clear, nor their keys
# with the agents' master keys; copies of the two directories taken before
# (DIR.before) must give the keys up, or the scan proves nothing.
gone_for_good() {
    local who=$1 c=$2 phrase=$3 id=$4 seq=$5 found="" n
    for a in school-1415 social-1419; do
        for n in "$(digits "$c")" "$phrase"; do found="$found$(in_clear "$NET/$a/data" "$n")"; done
    done
    expect "$who: neither the number nor the phrase in clear in the school's or social services' data directory" "" "$found"
    n=$(hits "$("$SCAN" "$NET/school-1415/data.before" "$NET/school-1415/master.key" find "M$id")")
    [ "$n" -ge 1 ] && ok "$who: (before, the school's master key finds the kept copy's key: $n)" || bad "$who: the scan finds nothing even before"
    expect "$who: with the school's master key no byte of its data directory opens as the kept copy's key" 0 \
        "$(hits "$("$SCAN" "$NET/school-1415/data" "$NET/school-1415/master.key" find "M$id")")"
    n=$(hits "$("$SCAN" "$NET/social-1419/data.before" "$NET/social-1419/master.key" find "I$seq")")
    [ "$n" -ge 1 ] && ok "$who: (before, social services' master key finds the delivery's key: $n)" || bad "$who: the scan finds nothing at social services even before"
    expect "$who: with social services' master key no byte of their data directory opens as the delivery's key" 0 \
        "$(hits "$("$SCAN" "$NET/social-1419/data" "$NET/social-1419/master.key" find "I$seq")")"
    for a in school-1415 social-1419; do
        out=$("$SCAN" "$NET/$a/data" "$NET/$a/master.key" check)
        case "$out" in *"epochs 1 dangling 0 unopenable 0") ok "$who: $a's store: one epoch key, every entry with its key ($out)";;
            *) bad "$who: $a's store" "$out";; esac
    done
}
snapshot() { local a; for a in school-1415 social-1419; do rm -rf "$NET/$a/data.before"; cp -a "$NET/$a/data" "$NET/$a/data.before"; done; }
C1=$(child 21)
MARK1="Agentmarkor-67 oro hemma"
read -r CID1 CSEQ1 <<<"$(concern "$C1" "$MARK1")"
[ -n "$CSEQ1" ] && ok "it_67 social services hold the concern report (seq $CSEQ1)" || bad "it_67 no delivery" "$CID1"
out=$(s social-1419 --json show "$CID1" 2>&1)
case "$out" in *"$MARK1"*) ok "it_67 (before: social services read the phrase)";; *) bad "it_67 show before" "$out";; esac
snapshot
out=$(s audit erase --pupil "$C1" --reason WRONG_IDENTITY 2>&1)
case "$out" in "erased: "[1-9]*) ok "it_67 the data-protection officer erases the child";; *) bad "it_67 erase" "$out";; esac
for _ in $(seq 50); do s social-1419 --json inbox | grep -q "$CID1" || break; sleep 0.1; done
out=$(s social-1419 show "$CID1" 2>&1)
case "$out" in *"no such message"*) ok "it_67 social services' copy is gone";; *) bad "it_67 social copy" "$out";; esac
for _ in $(seq 50); do "$SOFFA" --socket "$WSOCK" --json show "$CID1" 2>&1 | grep -q "no such message" && break; sleep 0.1; done
out=$("$SOFFA" --socket "$WSOCK" --json show "$CID1" 2>&1)
case "$out" in *"no such message"*) ok "it_67 the school's kept copy is gone";; *) bad "it_67 school copy" "$out";; esac
gone_for_good it_67 "$C1" "$MARK1" "$CID1" "$CSEQ1"

# ---- it_68: the agents' own gallring, on schedule in seconds ----
for a in school-1415 social-1419; do
    stop_agent "$a"
    printf '[retention]\nconcern_reports = 3s from message\nrun_every = 1s\n' >> "$NET/$a/agent.ini"
    start_agent "$a"
done
WSOCK=$(grep -o 'web control socket [^ ]*' "$NET/school-1415/agent.log" | tail -1 | awk '{print $4}')
C2=$(child 22)
MARK2="Agentmarkor-68 gallras snart"
read -r CID2 CSEQ2 <<<"$(concern "$C2" "$MARK2")"
snapshot
[ -n "$CSEQ2" ] && ok "it_68 social services hold a concern report kept 3 s (seq $CSEQ2)" || bad "it_68 no delivery" "$CID2"
for _ in $(seq 100); do s social-1419 --json inbox | grep -q "$CID2" || break; sleep 0.1; done
out=$(s social-1419 show "$CID2" 2>&1)
case "$out" in *"no such message"*) ok "it_68 after 3 s social services' copy is gone";; *) bad "it_68 social copy" "$out";; esac
for _ in $(seq 50); do "$SOFFA" --socket "$WSOCK" --json show "$CID2" 2>&1 | grep -q "no such message" && break; sleep 0.1; done
out=$("$SOFFA" --socket "$WSOCK" --json show "$CID2" 2>&1)
case "$out" in *"no such message"*) ok "it_68 ... and the school's kept copy";; *) bad "it_68 school copy" "$out";; esac
grep -q "gallring: 1 delivery(ies)" "$NET/social-1419/agent.log" && ok "it_68 social services' agent logs its run" \
    || bad "it_68 log" "$(grep gallring "$NET/social-1419/agent.log")"
gone_for_good it_68 "$C2" "$MARK2" "$CID2" "$CSEQ2"
grep -q "$(digits "$C2")" "$NET"/*/agent.log && bad "it_68 an identity number in an agent's log" || ok "it_68 no identity number in any agent's log"

# ---- it_69: a disposal at the agent cut short by SIGKILL ----
# The KAA keeps school signals 2 s and disposes at start (and daily): it
# takes N signals, is stopped, and once they have run out its directory is
# kept aside; each round starts the agent on a fresh copy of it and kills
# it a little later each time.
N=${SOFFA_TEST_KILL_N:-150}
KDATA="$NET/kaa-1419/data"
stop_agent kaa-1419
printf '[retention]\nschool_signals = 2s from message\nrun_every = 1d\n' >> "$NET/kaa-1419/agent.ini"
start_agent kaa-1419
t0=$(date +%s%N)
for k in 0 1 2; do   # three at a time
    for i in $(seq "$k" 3 $((N - 1))); do
        s school-1415 signal absence --pupil "$(pupil $((200 + i)))" --hemkommun 1419 --period-from "$ABS_FROM" \
            --period-to "$ABS_TO" --unexcused-band SIGNIFICANT --school-unit 14150001 >/dev/null 2>&1 || echo "signal $i" >> "$NET/refused"
    done &
done
wait
[ -e "$NET/refused" ] && bad "it_69 signals not accepted" "$(cat "$NET/refused")"
echo "       ($N signals in $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
for _ in $(seq 100); do [ "$(count kaa-1419)" -ge "$N" ] && break; sleep 0.1; done
stop_agent kaa-1419
sleep 2.1
cp -a "$KDATA" "$NET/kaa-saved"
BEFORE=$("$SCAN" "$KDATA" "$NET/kaa-1419/master.key" check)
n_before=$(awk '{print $2}' <<<"$BEFORE")
[ "$n_before" -ge "$N" ] && ok "it_69 the KAA holds the $N signals, run out ($BEFORE)" || bad "it_69 before" "$BEFORE"
# Once without a kill: what the state after the disposal is.
start_agent kaa-1419
AFTER=$("$SCAN" "$KDATA" "$NET/kaa-1419/master.key" check)
n_after=$(awk '{print $2}' <<<"$AFTER")
expect "it_69 a disposal left alone takes all $N" "$N" "$((n_before - n_after))"
stop_agent kaa-1419
# Each kill comes as the store has opened (the agent logs that, then disposes
# at once) and up to 10 ms later; two epoch keys in the keys file after it
# mean it fell inside the disposal (the next key is written first, the old
# one erased after the commit).
befores=0 afters=0 inside=0
for d in 0 0 0.001 0.002 0.003 0.004 0.006 0.01; do
    rm -rf "$KDATA"; cp -a "$NET/kaa-saved" "$KDATA"
    : > "$NET/kill.log"
    setsid "$BUILD/soffa-agent" --config "$NET/kaa-1419/agent.ini" >>"$NET/kill.log" 2>&1 </dev/null &
    p=$!
    for _ in $(seq 2000); do grep -q "sealed under" "$NET/kill.log" && break; kill -0 "$p" 2>/dev/null || break; done
    sleep "$d"
    kill -KILL "$p"; wait "$p" 2>/dev/null
    out=$("$SCAN" "$KDATA" "$NET/kaa-1419/master.key" check)
    case "$out" in
        "inbox $n_before "*"dangling 0 unopenable 0") befores=$((befores + 1));;
        "inbox $n_after "*"dangling 0 unopenable 0") afters=$((afters + 1));;
        *) bad "it_69 killed ${d} s after the store opened: neither before nor after" "$out";;
    esac
    case "$out" in *"epochs 2 "*) inside=$((inside + 1));; esac
    # The next start finishes the job.
    setsid "$BUILD/soffa-agent" --config "$NET/kaa-1419/agent.ini" >>"$NET/kaa-1419/agent.log" 2>&1 </dev/null &
    p=$!
    for _ in $(seq 50); do
        out=$("$SCAN" "$KDATA" "$NET/kaa-1419/master.key" check)
        case "$out" in "inbox $n_after "*"epochs 1 dangling 0 unopenable 0") break;; esac
        sleep 0.1
    done
    case "$out" in "inbox $n_after "*"epochs 1 dangling 0 unopenable 0") ;; *) bad "it_69 killed ${d} s after the store opened, the next start did not finish" "$out";; esac
    kill -TERM "$p"; wait "$p" 2>/dev/null
done
[ $((befores + afters)) -eq 8 ] && ok "it_69 killed 8 times: the state before the disposal $befores time(s), after it $afters, never half (inside the disposal, two epoch keys on disk: $inside); each next start finished it" \
    || bad "it_69 kills" "before $befores after $afters"

finish_report
