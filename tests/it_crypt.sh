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

"$SOFFA" down "$NET" >/dev/null
finish_report
