#!/usr/bin/env bash
# Backup and restore with real processes: `soffa backup` takes a hot copy
# of a running broker's store, the broker is lost, the backup is restored
# into a new directory and a broker started on it, and the agents carry on.
# Checks exactly what the README says a restore loses, that nothing is
# stored twice, and that the restored broker never gives out a number the
# lost one had given (issue 16, item 8).
#
#   tests/it_ops.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_ops.sh BUILD_DIR}" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-op-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; pkill -f "$NET/" 2>/dev/null; rm -rf "$NET"' EXIT

s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }
start_broker() {
    setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
    local p=$!
    disown "$p"
    sed -i "s/^broker .*/broker $p/" "$NET/pids"
}
stop_broker() {   # stop_broker SIGNAL
    local p
    p=$(pid_of broker)
    kill "-$1" "$p" 2>/dev/null
    while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
}
# signal N [HEMKOMMUN]: the school reports absence for pupil N; prints
# "SEQ MESSAGE-ID" when the broker acknowledged it, "queued MESSAGE-ID" else.
signal() {
    local out
    out=$(s school-1415 signal absence --pupil "$(pupil "$1")" --hemkommun "${2:-1419}" --period-from ${ABS_FROM} \
        --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 14150001 --wait 3000 2>&1)
    local id
    id=$(awk '/message id/ {print $3}' <<<"$out")
    case "$out" in
    accepted:*) echo "$(grep -o '(seq [0-9]*' <<<"$out" | grep -o '[0-9]*') $id" ;;
    queued:*) echo "queued $id" ;;
    *) echo "error $out" ;;
    esac
}
# ids_of FILE: the message ids in FILE (one "SEQ ID" a line), sorted.
ids_of() { awk '{print $2}' "$1" | sort; }
# The message ids an agent holds in its inbox; those an auditor's replay of
# a mailbox finds in the broker's store (one a line, sorted, repeats kept).
inbox_ids() { s "$1" --json inbox --limit 1000000 | grep -o '"message_id":"[^"]*"' | cut -d'"' -f4 | sort; }
store_ids() { s audit --json replay --mailbox "$1" | grep -o '"message_id":"[^"]*"' | cut -d'"' -f4 | sort; }
# The sequence each record of a mailbox got from the broker: "SEQ ID" lines.
store_seqs() {
    s audit --json replay --mailbox "$1" | sed -n 's/.*"seq":\([0-9]*\),.*"message_id":"\([^"]*\)".*/\1 \2/p'
}

"$SOFFA" up "$NET" >/dev/null || { echo "[FAIL] soffa up"; echo "0 passed, 1 failed"; exit 1; }
BROKER_INI="$NET/broker/broker.ini"
DATA="$NET/broker/data"

# ---- it_40: bad uses of soffa backup ----
out=$("$SOFFA" backup "$NET/b0" 2>&1); rc=$?
case "$rc:$out" in 2:*"--config"*) ok "it_40 backup without --config is a usage error";; *) bad "it_40 no --config" "$rc $out";; esac
printf '[broker]\nendpoint = tcp://127.0.0.1:1\n' > "$NET/nodata.ini"
out=$("$SOFFA" backup "$NET/b0" --config "$NET/nodata.ini" 2>&1); rc=$?
case "$rc:$out" in 1:*"no [broker] data_dir"*) ok "it_40 a configuration without data_dir is named";; *) bad "it_40 no data_dir" "$rc $out";; esac
mkdir "$NET/exists"
out=$("$SOFFA" backup "$NET/exists" --config "$BROKER_INI" 2>&1); rc=$?
case "$rc:$out" in 1:*"already exists; give a new directory"*) ok "it_40 an existing destination is refused";; *) bad "it_40 existing dest" "$rc $out";; esac
expect "it_40 ... and left as it was" "" "$(ls -A "$NET/exists")"
out=$("$SOFFA" backup "$NET/no/such/parent" --config "$BROKER_INI" 2>&1); rc=$?
case "$rc:$out" in 1:*"cannot write the backup"*) ok "it_40 a missing parent directory is reported";; *) bad "it_40 missing parent" "$rc $out";; esac

# ---- it_41: a hot backup while the broker runs and takes publishes ----
: > "$NET/before"
for i in $(seq 1 10); do signal "$i" >> "$NET/before"; done
expect "it_41 ten signals acknowledged before the backup" 10 "$(grep -c '^[0-9]' "$NET/before")"
# Publishes go on in the background while the copy is made (to Stenungsund's
# KAA, so that they stay apart from the Tjörn signals counted below).
( for i in $(seq 500 539); do signal "$i" 1415; done > "$NET/during" ) &
BG=$!
sleep 0.3
OUT=$(umask 000; "$SOFFA" --json backup "$NET/backup" --config "$BROKER_INI" 2>&1); rc=$?
wait "$BG"
expect "it_41 soffa backup succeeds while the broker runs" 0 "$rc"
HEAD=$(grep -o '"head_seq":[0-9]*' <<<"$OUT" | cut -d: -f2)
case "$OUT" in *'"verified":true'*) ok "it_41 the copy was verified before success was reported";; *) bad "it_41 verified" "$OUT";; esac
[ -n "$HEAD" ] && [ "$HEAD" -ge 10 ] && ok "it_41 the copy holds the store up to seq $HEAD" || bad "it_41 head_seq" "$OUT"
expect "it_41 the backup holds the store and its wrapped epoch key, nothing else" "data.mdb keys" \
    "$(ls -A "$NET/backup" | tr '\n' ' ' | sed 's/ $//')"
[ -f "$NET/broker/checkpoint.key" ] && [ ! -e "$DATA/checkpoint.key" ] && ok "it_41 (the signing key lives beside broker.ini, not in the data directory)" || bad "it_41 signing key location"
expect "it_41 owner-only under umask 000: directory 700, files 600" "700 600 600" \
    "$(stat -c %a "$NET/backup" "$NET/backup/data.mdb" "$NET/backup/keys" | tr '\n' ' ' | sed 's/ $//')"
# The master key never travels: not as a file, not as its hex, not as its bytes.
MK_HEX=$(tr -d '\n' < "$NET/broker/master.key")
# (od prints the files' bytes as hex: the raw key would show as its hex there)
if [ -e "$DATA/master.key" ] || grep -rqF "$MK_HEX" "$NET/backup" \
    || od -An -tx1 -v "$NET/backup/data.mdb" "$NET/backup/keys" | tr -d ' \n' | grep -q "$MK_HEX"; then
    bad "it_41 the master key went into the backup"
else
    ok "it_41 the master key is neither in the data directory nor in the backup"
fi
# Without the master key the backup verifies but does not open.
out=$("$BUILD/soffa" masterkey new "$NET/other.key" >/dev/null && "$SOFFA" verify "$NET/backup" --key "$NET/broker/checkpoint.pub" --master-key "$NET/other.key" 2>&1); rc=$?
case "$rc:$out" in 1:*"made with master key"*) ok "it_41 another master key does not open the backup, and says which key it needs";; *) bad "it_41 other master key" "$rc $out";; esac
out=$("$SOFFA" verify "$NET/backup" --key "$NET/broker/checkpoint.pub" 2>&1); rc=$?
case "$rc:$out" in 0:intact*) ok "it_41 soffa verify finds the backup intact against the broker's key";; *) bad "it_41 verify backup" "$out";; esac
expect "it_41 every background publish was acknowledged" 40 "$(grep -c '^[0-9]' "$NET/during")"

# ---- it_42: after the backup: more publishes, then the broker is lost ----
: > "$NET/after"
for i in $(seq 11 15); do signal "$i" >> "$NET/after"; done
expect "it_42 five more signals acknowledged after the backup" 5 "$(grep -c '^[0-9]' "$NET/after")"
for _ in $(seq 150); do [ "$(count kaa-1419)" -ge 15 ] && break; sleep 0.1; done
expect "it_42 Tjörn's KAA received all fifteen" 15 "$(count kaa-1419)"
stop_broker KILL
: > "$NET/queued"
for i in $(seq 16 20); do signal "$i" >> "$NET/queued"; done
expect "it_42 with the broker gone, five signals wait in the school's outbox" "5 5" \
    "$(grep -c '^queued' "$NET/queued") $(outbox school-1415)"

# ---- it_43: restore into a new directory and start a broker on it ----
cp -a "$NET/backup" "$NET/broker/restored"
sed -i 's/^data_dir = .*/data_dir = restored/' "$BROKER_INI"
# (The signing key stays where it is, beside broker.ini: it was never in the backup.)
start_broker
for _ in $(seq 200); do [ "$(outbox school-1415)" = 0 ] && break; sleep 0.1; done
expect "it_43 the school's outbox resends what the backup lacks and empties" 0 "$(outbox school-1415)"
sleep 1   # deliveries to Tjörn's KAA settle

STORE=$(store_ids kaa/1419)
WANT=$( (ids_of "$NET/before"; ids_of "$NET/queued") | sort)
expect "it_43 the restored store holds the signals from before the backup and the resent ones" "$WANT" "$STORE"
expect "it_43 ... each once" "$(uniq <<<"$STORE")" "$STORE"
LOST=$(for id in $(ids_of "$NET/after"); do grep -qx "$id" <<<"$STORE" && echo "$id"; done)
expect "it_43 LOST: the five acknowledged after the backup are not in the restored store" "" "$LOST"
# The background publishes: in the store exactly when acknowledged with a
# sequence the backup reached; the later ones are lost like the five above.
KEPT=$(awk -v h="$HEAD" '$1 <= h {print $2}' "$NET/during" | sort)
expect "it_43 background publishes: kept exactly those up to the backup's head" "$KEPT" "$(store_ids kaa/1415)"
out=$("$SOFFA" --net "$NET" --agent school-1415 show "$(awk 'NR==1 {print $2}' "$NET/after")" 2>&1)
case "$out" in *'"outcome": "accepted"'*) ok "it_43 the school's own record still says the lost signal was accepted";; *) bad "it_43 show lost" "$out";; esac

# issue 16 item 8: the restored broker numbers on past every sequence the
# lost one gave out (the acknowledged ones are in before/during/after), so
# no number a reader or a sender has seen names another record.
ISSUED=$(cat "$NET/before" "$NET/during" "$NET/after" | awk '$1 ~ /^[0-9]+$/ && $1 > m {m = $1} END {print m + 0}')
store_seqs kaa/1419 > "$NET/restored-seqs"
store_seqs kaa/1415 >> "$NET/restored-seqs"
REUSED=$(for id in $(ids_of "$NET/queued"); do awk -v id="$id" -v l="$ISSUED" '$2 == id && $1 <= l {print $1}' "$NET/restored-seqs"; done)
expect "it_43 issue_16_8 the resent signals got sequences past the $ISSUED the lost broker gave out" "" "$REUSED"
OLDSEQS=$(cat "$NET/after" "$NET/during" | awk '$1 ~ /^[0-9]+$/ && $1 > h {print $1}' h="$HEAD" | sort -u)
CLASH=$(awk '{print $1}' "$NET/restored-seqs" | sort -u | comm -12 - <(echo "$OLDSEQS"))
expect "it_43 issue_16_8 no sequence acknowledged after the backup names a record in the restored store" "" "$CLASH"
RESTORE=$(s audit --json replay --mailbox audit/restore)
case "$RESTORE" in *'"kind":"restore"'*"\"from_seq\":$HEAD,"*) ok "it_43 issue_16_8 a restore record names the backup's head ($HEAD)";;
    *) bad "it_43 restore record (backup head $HEAD)" "$RESTORE";; esac
grep -q "restored: its history ends at seq $HEAD; numbering goes on at" "$NET/broker/broker.log" && ok "it_43 the broker's log says it is a restore and where numbering goes on" || bad "it_43 restore log line"

# Tjörn's KAA kept what it had received before the loss, the five lost
# ones included, and gets every resent one: none is taken for a
# redelivery any more.
GOT=$( (ids_of "$NET/before"; ids_of "$NET/after"; ids_of "$NET/queued") | sort)
for _ in $(seq 50); do [ "$(inbox_ids kaa-1419)" = "$GOT" ] && break; sleep 0.1; done
expect "it_43 issue_16_8 Tjörn's KAA holds the old ones, the lost ones, and every resent one" "$GOT" "$(inbox_ids kaa-1419)"
expect "it_43 ... none of them twice" "$(inbox_ids kaa-1419 | uniq)" "$(inbox_ids kaa-1419)"

# New signals arrive at once.
: > "$NET/new"
for i in $(seq 21 25); do signal "$i" >> "$NET/new"; done
for _ in $(seq 50); do [ "$(count kaa-1419)" -ge "$(( $(grep -c . <<<"$GOT") + 5 ))" ] && break; sleep 0.1; done
NEWGOT=$(for id in $(ids_of "$NET/new"); do inbox_ids kaa-1419 | grep -x "$id"; done | sort)
expect "it_43 issue_16_8 the reader gets every new signal" "$(ids_of "$NET/new")" "$NEWGOT"

stop_broker TERM
out=$("$SOFFA" verify "$NET/broker/restored" --key "$NET/broker/checkpoint.pub" 2>&1); rc=$?
case "$rc:$out" in 0:intact*"restored from a backup 1 time(s)"*) ok "it_43 the restored store's chain verifies against the same key, the jump explained";; *) bad "it_43 verify restored" "$out";; esac
# The auditor's agent holds checkpoints the lost broker signed after the
# backup: they are named as lost in the restore, not as a rewritten history.
out=$("$SOFFA" verify "$NET/broker/restored" --key "$NET/broker/checkpoint.pub" --against "$NET/audit/data" 2>&1); rc=$?
case "$rc:$out" in 0:intact*"checkpoint(s) the auditor holds are in it"*) ok "it_43 verify --against the auditor's checkpoints passes across the restore";; *) bad "it_43 verify against" "$out";; esac
start_broker

# ---- it_44: a copy that does not verify is not a backup ----
cp -a "$NET/backup" "$NET/tampered"
# The identity number is sealed, so the record is found by its message id
# (in clear in the envelope: protobuf field 3, 16 bytes) and a byte of the
# sealed body after it is changed.
MID=$(awk 'NR==3 {print $2}' "$NET/before" | tr -d '-')
OFF=$(python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
i = data.find(b"\x1a\x10" + bytes.fromhex(sys.argv[2]))
print(i + 60 if i >= 0 else "")' "$NET/tampered/data.mdb" "$MID")
if [ -n "$OFF" ]; then
    printf '\x5a' | dd of="$NET/tampered/data.mdb" bs=1 seek="$OFF" conv=notrunc 2>/dev/null
    printf '[broker]\ndata_dir = tampered\n' > "$NET/tampered.ini"
    out=$("$SOFFA" backup "$NET/b-tampered" --config "$NET/tampered.ini" 2>&1); rc=$?
    case "$rc:$out" in 1:*"does not verify, at seq"*) ok "it_44 a store with an altered record gives no backup, and says where";; *) bad "it_44 tampered" "$rc $out";; esac
    [ -e "$NET/b-tampered" ] && bad "it_44 nothing is left at the destination" || ok "it_44 nothing is left at the destination"
else
    bad "it_44 found no record to alter in the copy"
fi

"$SOFFA" down "$NET" >/dev/null
finish_report
