#!/usr/bin/env bash
# Encryption at rest and gallring (issue 17), with real processes: what the
# broker's and the agents' data directories hold, refusals at start, store
# upgrades from every earlier format.
#
#   tests/it_crypt.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_crypt.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-cr-XXXXXX)
. "$SRC/tests/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; rm -rf "$NET"' EXIT

s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
BROKER_INI="$NET/broker/broker.ini"
DATA="$NET/broker/data"
start_broker() {
    setsid "$BUILD/soffa-broker" --config "$BROKER_INI" >>"$NET/broker/broker.log" 2>&1 </dev/null &
    local p=$!
    disown "$p"
    sed -i "s/^broker .*/broker $p/" "$NET/pids"
    for _ in $(seq 100); do [ -S "$NET/broker/broker.sock" ] && "$SOFFA" --net "$NET" --agent audit --json status --sample 0 2>/dev/null | grep -q '"connected":true' && return 0; sleep 0.1; done
}
stop_broker() {
    local p
    p=$(pid_of broker)
    kill -TERM "$p" 2>/dev/null
    while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
}
# child N: a made-up personnummer of a child born 2012 (under 18 in the
# story: a concern report is for children), valid check digit.
child() {
    local d sum=0 i v
    d=$(printf '1205%02d%03d' $(( $1 % 28 + 1 )) $(( $1 % 900 + 100 )))
    for i in 0 1 2 3 4 5 6 7 8; do
        v=$(( ${d:$i:1} * (i % 2 == 0 ? 2 : 1) ))
        sum=$(( sum + v / 10 + v % 10 ))
    done
    echo "${d:0:6}-${d:6:3}$(( (10 - sum % 10) % 10 ))"
}
digits() { tr -d -- '-+' <<<"$1"; }
# in_clear DIR NEEDLE: prints where NEEDLE is found in DIR: in any file's
# bytes (grep), or in any key or value of its LMDB store (mdb_dump of every
# table, printable bytes as they are).
in_clear() {
    local dir=$1 needle=$2
    grep -rlaF -- "$needle" "$dir" 2>/dev/null
    if [ -f "$dir/data.mdb" ]; then
        mdb_dump -a -p "$dir" 2>/dev/null | grep -qaF -- "$needle" && echo "$dir (an LMDB key or value)"
    fi
    return 0
}

"$SOFFA" up "$NET" >/dev/null || { echo "[FAIL] soffa up"; echo "0 passed, 1 failed"; exit 1; }

# ---- it_60: a planted identity number and marker phrase ----
PUPIL=$(pupil 41)
CHILD=$(child 7)
MARK="Hemligmarkor-17 oro hemma"
out=$(s school-1415 signal absence --pupil "$PUPIL" --hemkommun 1419 --period-from 2026-09-01 --period-to 2026-11-13 \
    --unexcused-band SIGNIFICANT --school-unit 14150001 2>&1)
case "$out" in accepted:*) ok "it_60 a signal about the planted pupil is accepted";; *) bad "it_60 signal" "$out";; esac
out=$(s school-1415 concern report --child "$CHILD" --hemkommun 1419 --concern-codes NEGLECT --description "$MARK" 2>&1)
case "$out" in accepted:*) ok "it_60 a concern report with the marker phrase is accepted";; *) bad "it_60 concern" "$out";; esac
for _ in $(seq 50); do [ "$(count social-1419)" -ge 1 ] && break; sleep 0.1; done
s kaa-1419 ack --re last --result REGISTERED >/dev/null 2>&1
# A checkpoint and a read, so that every kind of record is there.
s audit history --pupil "$CHILD" >/dev/null 2>&1
found=""
for n in "$(digits "$PUPIL")" "$(digits "$CHILD")" "$MARK"; do found="$found$(in_clear "$DATA" "$n")"; done
expect "it_60 neither number nor phrase is in the broker's data directory (files, every LMDB value)" "" "$found"
# The agents that sent and received them: the school (its outbox and kept
# copies), Tjörn's KAA and social services (their inboxes).
found=""
for a in school-1415 kaa-1419 social-1419 audit; do
    for n in "$(digits "$PUPIL")" "$(digits "$CHILD")" "$MARK"; do found="$found$(in_clear "$NET/$a/data" "$n")"; done
done
expect "it_60 ... nor in the data directory of any agent that sent or received them" "" "$found"
[ "$(count social-1419)" -ge 1 ] && [ -n "$(in_clear "$NET/social-1419/data" "social/1419")" ] \
    && ok "it_60 (social services hold the delivery: the search finds its mailbox name)" || bad "it_60 social services got nothing"
[ -n "$(in_clear "$DATA" "social/1419")" ] && ok "it_60 (the search reads the store: it finds a mailbox name, which is in clear)" \
    || bad "it_60 the search found nothing at all"
out=$(s social-1419 --json show last 2>&1)
case "$out" in *"$MARK"*"$(digits "$CHILD" | cut -c1-2)"*|*"$(digits "$CHILD")"*"$MARK"*) ok "it_60 social services see the report and the phrase (soffa show)";; *) bad "it_60 show" "$out";; esac
out=$(s audit --json history --pupil "$CHILD" 2>&1)
case "$out" in *"$MARK"*) ok "it_60 the auditor sees the phrase in the history";; *) bad "it_60 history" "$out";; esac
out=$(s audit history --pupil "$PUPIL" 2>&1)
case "$out" in *absence_reported*signal_acknowledged*) ok "it_60 the pupil's history: the signal and its acknowledgement";; *) bad "it_60 pupil history" "$out";; esac

# ---- it_61: a wrong or missing master key: refused at start, nothing written ----
stop_broker   # (it signs a last checkpoint)
out=$("$SOFFA" verify "$DATA" --key "$NET/broker/checkpoint.pub" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_60 soffa verify needs no key but the checkpoint key";; *) bad "it_60 verify" "$out";; esac
out=$("$SOFFA" verify "$DATA" --key "$NET/broker/checkpoint.pub" --master-key "$NET/broker/master.key" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_60 ... and with the master key every sealed body opens";; *) bad "it_60 verify with key" "$out";; esac
SUM=$(sha256sum "$DATA/data.mdb" "$DATA/keys" | awk '{print $1}')
refused() {   # refused NAME EXPECTED-PART
    local out rc
    out=$(timeout 10 "$BUILD/soffa-broker" --config "$BROKER_INI" 2>&1); rc=$?
    case "$rc:$out" in 1:*"$2"*) ok "it_61 $1";; *) bad "it_61 $1" "$rc $out";; esac
}
"$SOFFA" masterkey new "$NET/other.key" >/dev/null
sed -i 's|^master_key = .*|master_key = ../other.key|' "$BROKER_INI"
refused "another master key is refused, naming both keys' ids" "made with master key"
sed -i 's|^master_key = .*|master_key = ../missing.key|' "$BROKER_INI"
refused "a missing master key is refused with the way to make one" "soffa masterkey new"
cp "$NET/broker/master.key" "$DATA/master.key"
sed -i 's|^master_key = .*|master_key = data/master.key|' "$BROKER_INI"
refused "a master key inside the data directory is refused" "inside the data directory"
rm "$DATA/master.key"
chmod 644 "$NET/other.key"
sed -i 's|^master_key = .*|master_key = ../other.key|' "$BROKER_INI"
refused "a master key others can read is refused" "chmod 600"
expect "it_61 nothing in the store was written by any of them" "$SUM" "$(sha256sum "$DATA/data.mdb" "$DATA/keys" | awk '{print $1}')"
sed -i 's|^master_key = .*|master_key = master.key|' "$BROKER_INI"
start_broker
out=$(s audit history --pupil "$CHILD" 2>&1)
case "$out" in *concern_report_filed*) ok "it_61 with its own key the broker starts and serves the history";; *) bad "it_61 restart" "$out";; esac

# ---- it_61: ... and an agent's ----
agent_pid=$(pid_of kaa-1419)
kill -TERM "$agent_pid"; while kill -0 "$agent_pid" 2>/dev/null; do sleep 0.05; done
ASUM=$(sha256sum "$NET/kaa-1419/data/data.mdb" "$NET/kaa-1419/data/keys" | awk '{print $1}')
AINI="$NET/kaa-1419/agent.ini"
arefused() {
    local out rc
    out=$(timeout 10 "$BUILD/soffa-agent" --config "$AINI" 2>&1); rc=$?
    case "$rc:$out" in 1:*"$2"*) ok "it_61 agent: $1";; *) bad "it_61 agent: $1" "$rc $out";; esac
}
chmod 600 "$NET/other.key"
echo "master_key = ../other.key" >> "$AINI"
arefused "another master key is refused, naming both keys' ids" "made with master key"
sed -i 's|^master_key = .*|master_key = missing.key|' "$AINI"
arefused "a missing master key is refused with the way to make one" "soffa masterkey new"
cp "$NET/kaa-1419/master.key" "$NET/kaa-1419/data/master.key"
sed -i 's|^master_key = .*|master_key = data/master.key|' "$AINI"
arefused "a master key inside the data directory is refused" "inside the data directory"
rm "$NET/kaa-1419/data/master.key"
expect "it_61 agent: nothing in its store was written" "$ASUM" "$(sha256sum "$NET/kaa-1419/data/data.mdb" "$NET/kaa-1419/data/keys" | awk '{print $1}')"
sed -i '/^master_key = /d' "$AINI"
setsid "$BUILD/soffa-agent" --config "$AINI" >>"$NET/kaa-1419/agent.log" 2>&1 </dev/null &
p=$!; disown "$p"; sed -i "s/^kaa-1419 .*/kaa-1419 $p/" "$NET/pids"
for _ in $(seq 100); do s kaa-1419 --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break; sleep 0.1; done
out=$(s kaa-1419 --json inbox 2>&1)
case "$out" in *absence_reported*) ok "it_61 agent: with its own key it starts and shows its inbox";; *) bad "it_61 agent restart" "$out";; esac

# ---- it_62: stores of every earlier format, upgraded ----
upgrade_fixture() {   # upgrade_fixture VERSION NUMBER PHRASE
    local v=$1 num=$2 phrase=$3 dir="$NET/up$1" out rc
    mkdir -m 700 "$dir" "$dir/data"
    cp "$SRC/tests/fixtures/store/v$v-small.mdb" "$dir/data/data.mdb"
    cp "$SRC/tests/fixtures/store/v$v-small.subject.key" "$dir/data/subject.key"
    chmod 600 "$dir/data/data.mdb" "$dir/data/subject.key"
    cp "$NET/broker/master.key" "$dir/master.key"
    cp "$NET/broker/broker.key" "$dir/broker.key"
    printf '[broker]\nendpoint = tcp://127.0.0.1:1\nsecret_key = broker.key\ndata_dir = data\n[keys]\nmaster_key = master.key\n' > "$dir/broker.ini"
    [ -n "$(in_clear "$dir/data" "$num")" ] || bad "it_62 the v$v fixture holds its pupil in clear (the test's own check)"
    out=$(timeout 10 "$BUILD/soffa-broker" --config "$dir/broker.ini" 2>&1); rc=$?
    case "$rc:$out" in 1:*"format version $v"*"--upgrade-store --backup"*) ok "it_62 v$v: the broker refuses the old store and names the command";; *) bad "it_62 v$v refusal" "$rc $out";; esac
    out=$("$BUILD/soffa-broker" --config "$dir/broker.ini" --upgrade-store 2>&1); rc=$?
    case "$rc:$out" in 1:*"give --backup DIR"*) ok "it_62 v$v: no upgrade without a backup directory";; *) bad "it_62 v$v no backup" "$rc $out";; esac
    out=$("$BUILD/soffa-broker" --config "$dir/broker.ini" --upgrade-store --backup "$dir/old" 2>&1); rc=$?
    case "$rc:$out" in 0:*"upgraded from format $v to 4"*"verify"*) ok "it_62 v$v: upgraded after a copy, and verified";; *) bad "it_62 v$v upgrade" "$rc $out";; esac
    [ -f "$dir/old/data.mdb" ] && [ "$(stat -c %a "$dir/old")" = 700 ] && ok "it_62 v$v: the old store is in the backup directory, owner-only" || bad "it_62 v$v backup dir"
    expect "it_62 v$v: nothing of the pupil or the phrase left in the data directory" "" \
        "$(in_clear "$dir/data" "$num")$( [ -n "$phrase" ] && in_clear "$dir/data" "$phrase")"
    expect "it_62 v$v: the subject-index secret no longer lies beside the store" "" "$(ls "$dir/data" | grep subject.key)"
    out=$("$SOFFA" verify "$dir/data" --key "$SRC/tests/fixtures/store/v$v-small.checkpoint.pub" 2>&1); rc=$?
    case "$rc:$out" in 0:intact*"place and links only"*) ok "it_62 v$v: the old checkpoints still vouch for the chain (links only without the key)";; *) bad "it_62 v$v verify" "$rc $out";; esac
    out=$("$SOFFA" verify "$dir/data" --key "$SRC/tests/fixtures/store/v$v-small.checkpoint.pub" --master-key "$dir/master.key" 2>&1); rc=$?
    case "$rc:$out" in 0:intact*) ok "it_62 v$v: with the master key every old record opens and hashes as it was";; *) bad "it_62 v$v verify key" "$rc $out";; esac
    out=$("$BUILD/soffa-broker" --config "$dir/broker.ini" --upgrade-store --backup "$dir/again" 2>&1); rc=$?
    case "$rc:$out" in 0:*"nothing to do"*) ok "it_62 v$v: a second upgrade does nothing";; *) bad "it_62 v$v again" "$rc $out";; esac
}
upgrade_fixture 2 0803041037 ""
upgrade_fixture 3 1105023848 "Markörfras-V3"
# A store a running broker has open is not touched.
out=$("$BUILD/soffa-broker" --config "$BROKER_INI" --upgrade-store --backup "$NET/b-live" 2>&1); rc=$?
case "$rc:$out" in 1:*"is open in process $(pid_of broker)"*"stop it first"*) ok "it_62 a store the running broker has open is refused, naming the process";; *) bad "it_62 live" "$rc $out";; esac
[ -e "$NET/b-live" ] && bad "it_62 ... and no copy was made" || ok "it_62 ... and no copy was made"
stop_broker
out=$("$BUILD/soffa-broker" --config "$BROKER_INI" --upgrade-store --backup "$NET/b-live" 2>&1); rc=$?
case "$rc:$out" in 0:*"already in format 4"*) ok "it_62 a current store is left alone";; *) bad "it_62 current" "$rc $out";; esac

# ---- it_64: erasure on request ----
start_broker_with() {   # start_broker_with LINES: appended to broker.ini, then the broker (re)started
    stop_broker
    printf '%s\n' "$1" >> "$BROKER_INI"
    start_broker
    # Each agent notices the new broker at its next request (its session is
    # unknown there) and greets again: ask each once, then wait for it.
    local a
    for a in school-1415 kaa-1419 social-1419 audit audit-1415; do
        s "$a" status >/dev/null 2>&1
        for _ in $(seq 50); do s "$a" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break; sleep 0.1; done
    done
}
start_broker_with $'[retention]\nerasure_by = audit'
CID=$(s social-1419 --json inbox | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    m = r.get("message", {})
    if r.get("type") == "concern_report_filed" and m.get("subject", {}).get("id", "").endswith(sys.argv[1]):
        print(m["message_id"])' "$(digits "$CHILD")" | head -1)
[ -n "$CID" ] && ok "it_64 social services hold the concern report ($CID)" || bad "it_64 no concern report at social-1419" "$(s social-1419 --json inbox)"
out=$(s kaa-1419 erase --pupil "$CHILD" --reason WRONG_IDENTITY 2>&1); rc=$?
case "$rc:$out" in 1:*"erasure_by"*) ok "it_64 a KAA cannot erase";; *) bad "it_64 kaa erase" "$rc $out";; esac
out=$(s audit-1415 erase --pupil "$CHILD" --reason WRONG_IDENTITY 2>&1); rc=$?
case "$rc:$out" in 1:*"erasure_by"*) ok "it_64 nor an auditor not named in erasure_by";; *) bad "it_64 other auditor" "$rc $out";; esac
out=$(s audit erase --pupil "$CHILD" --reason BECAUSE 2>&1); rc=$?
case "$rc:$out" in 2:*"--reason is"*) ok "it_64 an unknown reason code is a usage error";; *) bad "it_64 bad reason" "$rc $out";; esac
out=$(s audit erase --pupil "$CHILD" --reason WRONG_IDENTITY 2>&1); rc=$?
case "$rc:$out" in 0:"erased: "[1-9]*) ok "it_64 the data-protection officer erases the child's records: $out";; *) bad "it_64 erase" "$rc $out";; esac
out=$(s audit erase --pupil "$CHILD" --reason WRONG_IDENTITY 2>&1); rc=$?
case "$rc:$out" in 1:*"no records of that identity"*) ok "it_64 there is nothing to erase twice, and no undo";; *) bad "it_64 twice" "$rc $out";; esac
out=$(s audit history --pupil "$CHILD" 2>&1)
case "$out" in *"erased"*"WRONG_IDENTITY"*) ok "it_64 history says records existed and were erased, when and why";; *) bad "it_64 history" "$out";; esac
case "$out" in *"$MARK"*|*concern_report_filed*) bad "it_64 history shows the erased content" "$out";; *) ok "it_64 ... and nothing of their content";; esac
for _ in $(seq 50); do s social-1419 --json inbox | grep -q "$CID" || break; sleep 0.1; done
s social-1419 --json inbox | grep -q "$CID" && bad "it_64 social services still hold the report" || ok "it_64 the disposal record reached social services, and their copy is gone"
out=$(s school-1415 show "$CID" 2>&1)
case "$out" in *"no such message"*) ok "it_64 the school's kept copy of what it sent is gone too";; *) bad "it_64 school copy" "$out";; esac
out=$(s audit --json replay --mailbox social/1419 2>&1)
case "$out" in *'"disposed":true'*) ok "it_64 replayed, the record is what is left of it: its envelope, its content gone (even for the broker)";; *) bad "it_64 replay" "$out";; esac
stop_broker
out=$("$SOFFA" verify "$DATA" --key "$NET/broker/checkpoint.pub" --master-key "$NET/broker/master.key" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_64 the chain and the key tables verify after the erasure";; *) bad "it_64 verify" "$rc $out";; esac
start_broker

# ---- it_65: the master key rotated (README, "Backups") ----
"$SOFFA" masterkey new "$NET/broker/rotated.key" >/dev/null
# A backup made under the old key, before the rotation.
"$SOFFA" backup "$NET/b-before-rotation" --config "$BROKER_INI" >/dev/null 2>&1 || bad "it_65 backup before the rotation"
out=$("$BUILD/soffa-broker" --config "$BROKER_INI" --rotate-master-key "$NET/broker/rotated.key" 2>&1); rc=$?
case "$rc:$out" in 1:*"open in process"*) ok "it_65 no rotation while the broker runs";; *) bad "it_65 running" "$rc $out";; esac
stop_broker
SUM=$(sha256sum "$DATA/data.mdb" "$DATA/keys" | awk '{print $1}')
out=$("$BUILD/soffa-broker" --config "$BROKER_INI" --rotate-master-key "$NET/broker/master.key" 2>&1); rc=$?
case "$rc:$out" in 1:*"in force already"*) ok "it_65 the key in force is not a new one";; *) bad "it_65 same key" "$rc $out";; esac
out=$("$BUILD/soffa-broker" --config "$BROKER_INI" --rotate-master-key "$NET/broker/missing.key" 2>&1); rc=$?
case "$rc:$out" in 1:*"the new master key"*) ok "it_65 a missing new key is refused";; *) bad "it_65 missing" "$rc $out";; esac
expect "it_65 ... and neither refusal wrote anything" "$SUM" "$(sha256sum "$DATA/data.mdb" "$DATA/keys" | awk '{print $1}')"
out=$("$BUILD/soffa-broker" --config "$BROKER_INI" --rotate-master-key "$NET/broker/rotated.key" 2>&1); rc=$?
case "$rc:$out" in 0:*"now wrapped by master key"*) ok "it_65 rotated";; *) bad "it_65 rotate" "$rc $out";; esac
out=$("$SOFFA" verify "$DATA" --key "$NET/broker/checkpoint.pub" --master-key "$NET/broker/master.key" 2>&1); rc=$?
case "$rc:$out" in 0:*) bad "it_65 the old master key still opens the store" "$out";; *"made with master key"*) ok "it_65 the old master key opens nothing any more";; *) bad "it_65 old key" "$rc $out";; esac
out=$(timeout 10 "$BUILD/soffa-broker" --config "$BROKER_INI" 2>&1); rc=$?
case "$rc:$out" in 1:*"made with master key"*) ok "it_65 a broker given the old key is refused";; *) bad "it_65 broker with the old key" "$rc $out";; esac
out=$("$SOFFA" verify "$DATA" --key "$NET/broker/checkpoint.pub" --master-key "$NET/broker/rotated.key" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_65 with the new key every sealed body opens";; *) bad "it_65 verify new" "$rc $out";; esac
out=$("$SOFFA" verify "$NET/b-before-rotation" --key "$NET/broker/checkpoint.pub" --master-key "$NET/broker/rotated.key" 2>&1); rc=$?
case "$rc:$out" in 1:*"made with master key"*) ok "it_65 a backup made before the rotation does not open with the new key";; *) bad "it_65 backup, new key" "$rc $out";; esac
out=$("$SOFFA" verify "$NET/b-before-rotation" --key "$NET/broker/checkpoint.pub" --master-key "$NET/broker/master.key" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_65 ... only with the old one: destroying it makes that backup unreadable";; *) bad "it_65 backup, old key" "$rc $out";; esac
sed -i 's|^master_key = .*|master_key = rotated.key|' "$BROKER_INI"
grep -q '^master_key = rotated.key' "$BROKER_INI" || echo "master_key = rotated.key" >> "$BROKER_INI"
start_broker
out=$(s audit history --pupil "$PUPIL" 2>&1)
case "$out" in *absence_reported*) ok "it_65 with the new key the broker starts and serves the history";; *) bad "it_65 restart" "$out";; esac

"$SOFFA" down "$NET" >/dev/null

# ---- it_63: gallring on schedule, in seconds ----
NET2=$(mktemp -d /tmp/soffa-cr2-XXXXXX)
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; "$SOFFA" down "$NET2" >/dev/null 2>&1; rm -rf "$NET" "$NET2"' EXIT
"$SOFFA" up "$NET2" >/dev/null || bad "it_63 soffa up"
"$SOFFA" down "$NET2" >/dev/null
RET=$'[retention]\nschool_signals = 4s from message\nconcern_reports = 4s from message\nrun_every = 1s'
printf '%s\n' "$RET" >> "$NET2/broker/broker.ini"
: > "$NET2/pids"
setsid "$BUILD/soffa-broker" --config "$NET2/broker/broker.ini" >>"$NET2/broker/broker.log" 2>&1 </dev/null &
echo "broker $!" >> "$NET2/pids"
for a in school-1415 kaa-1419 social-1419 audit; do
    printf '%s\n' "$RET" >> "$NET2/$a/agent.ini"
    setsid "$BUILD/soffa-agent" --config "$NET2/$a/agent.ini" >>"$NET2/$a/agent.log" 2>&1 </dev/null &
    echo "$a $!" >> "$NET2/pids"
done
s2() { local a=$1; shift; "$SOFFA" --net "$NET2" --agent "$a" "$@"; }
for a in school-1415 kaa-1419 social-1419 audit; do
    for _ in $(seq 100); do s2 "$a" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break; sleep 0.1; done
done
P3=$(pupil 43)
out=$(s2 school-1415 signal absence --pupil "$P3" --hemkommun 1419 --period-from 2026-09-01 --period-to 2026-11-13 \
    --unexcused-band SIGNIFICANT --school-unit 14150001 2>&1)
SID=$(awk '/message id/ {print $3}' <<<"$out")
case "$out" in accepted:*) ok "it_63 a signal, kept 4 s";; *) bad "it_63 signal" "$out";; esac
for _ in $(seq 30); do [ "$(s2 kaa-1419 --json inbox | grep -c "$SID")" -ge 1 ] && break; sleep 0.1; done
out=$(s2 audit history --pupil "$P3" 2>&1)
case "$out" in *absence_reported*) ok "it_63 before: the history shows the signal";; *) bad "it_63 before" "$out";; esac
# The half-year (Europe/Stockholm) the signal counts in: its key figures now.
if [ "$(TZ=Europe/Stockholm date +%-m)" -le 6 ]; then HY=("$(TZ=Europe/Stockholm date +%Y)-01-01" "$(TZ=Europe/Stockholm date +%Y)-06-30")
else HY=("$(TZ=Europe/Stockholm date +%Y)-07-01" "$(TZ=Europe/Stockholm date +%Y)-12-31"); fi
figures() { s2 audit stats --municipality 1419 --from "${HY[0]}" --to "${HY[1]}" --json 2>&1 | python3 -c '
import json, sys
j = json.load(sys.stdin); j.pop("kept_before_gallring", None); j.pop("generated_at", None); print(json.dumps(j, sort_keys=True))'; }
FIG_BEFORE=$(figures)
case "$FIG_BEFORE" in *'"absence_reported": {"men": null, "total": null, "women": 0}'*) ok "it_63 before: the half-year's figures count the signal (one: suppressed)";;
    *) bad "it_63 figures before" "$FIG_BEFORE";; esac
for _ in $(seq 150); do s2 audit history --pupil "$P3" 2>/dev/null | grep -q "disposed of" && break; sleep 0.1; done
out=$(s2 audit history --pupil "$P3" 2>&1)
case "$out" in *"disposed of"*"1 record(s) of kaa/1419 (school_signals) under the rule 4s from message"*) ok "it_63 after 4 s: the history says it was disposed of, when and under which rule";; *) bad "it_63 after" "$out";; esac
case "$out" in *absence_reported*) bad "it_63 the signal is still shown" "$out";; *) ok "it_63 ... and shows nothing of it";; esac
expect "it_63 the half-year's key figures are unchanged after gallring" "$FIG_BEFORE" "$(figures)"
case "$(figures)" in *'"period": "'"${HY[0]:0:4}"'H'*'"school_unit": "14150001"'*) ok "it_63 ... the figures per half-year and month (issue 19) among them";;
    *) bad "it_63 period figures kept" "$(figures)";; esac
s2 audit stats --municipality 1419 --from "${HY[0]}" --to "${HY[1]}" --json | grep -q '"kept_before_gallring":true' \
    && ok "it_63 ... read from the aggregate kept before the records went" || bad "it_63 aggregate" "$(s2 audit stats --municipality 1419 --from "${HY[0]}" --to "${HY[1]}" --json)"
for _ in $(seq 50); do s2 kaa-1419 --json inbox | grep -q "$SID" || break; sleep 0.1; done
s2 kaa-1419 --json inbox | grep -q "$SID" && bad "it_63 the KAA still holds the signal" || ok "it_63 the KAA's copy is gone"
out=$(s2 school-1415 show "$SID" 2>&1)
case "$out" in *"no such message"*) ok "it_63 the school's copy of what it sent is gone";; *) bad "it_63 school copy" "$out";; esac
grep -q "gallring: 1 record(s) disposed of, 1 young person(s) with nothing left" "$NET2/broker/broker.log" \
    && ok "it_63 the broker logs the run, without identities" || bad "it_63 log" "$(grep gallring "$NET2/broker/broker.log")"
grep -q "$(digits "$P3")" "$NET2"/broker/broker.log "$NET2"/*/agent.log && bad "it_63 an identity number in a log" || ok "it_63 no identity number in any log"
kill -TERM "$(awk '$1 == "broker" {print $2}' "$NET2/pids")"; sleep 1
out=$("$SOFFA" verify "$NET2/broker/data" --key "$NET2/broker/checkpoint.pub" --master-key "$NET2/broker/master.key" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_63 the store verifies after gallring, with the key tables";; *) bad "it_63 verify" "$rc $out";; esac
mkdir -m 700 "$NET2/copy" && cp "$NET2/broker/data/data.mdb" "$NET2/copy/" && cp "$NET2/broker/data/keys" "$NET2/copy/"
out=$("$SOFFA" verify "$NET2/copy" --key "$NET2/broker/checkpoint.pub" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_63 ... and so does a copy of it, without any key";; *) bad "it_63 verify copy" "$rc $out";; esac
"$SOFFA" down "$NET2" >/dev/null 2>&1
finish_report
