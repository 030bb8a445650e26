#!/usr/bin/env bash
# Integration tests for audit: key figures against a scripted history whose
# every figure is worked out by hand below, the HTML report, scopes,
# --as-of, and the access log. Real broker and agents.
#
#   tests/it_audit.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_audit.sh BUILD_DIR}" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-au-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; rm -rf "$NET"' EXIT
s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@" >/dev/null 2>>"$NET/errors" || echo "command failed: $a $*" >>"$NET/errors"; }
q() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }

# pupil I (tests/itlib.sh): odd I is a man and even I a woman (legal sex is
# the birth number's parity).
# The business date of pupil I's first signal: I=1..15 in September,
# 16..30 in October, 31..40 in November. day I N: that date plus N days.
sigdate() {
    if [ "$1" -le 15 ]; then printf '2026-09-%02d' $(( $1 + 1 ))
    elif [ "$1" -le 30 ]; then printf '2026-10-%02d' $(( $1 - 14 ))
    else printf '2026-11-%02d' $(( $1 - 29 )); fi
}
day() { date -d "$(sigdate "$1") + $2 days" +%F; }
absence() {   # absence I DATE [HEM]
    s school-1415 signal absence --pupil "$(pupil "$1")" --hemkommun "${3:-1419}" --period-from 2026-09-01 \
        --period-to 2026-11-13 --unexcused-band SIGNIFICANT --school-unit 14150001 --occurred "$2"
}

"$SOFFA" up "$NET" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
# The story is set in the autumn term of 2026, with the dates fixed for the
# figures worked out below.
broker_takes_old_dates

# ---- The history: about 260 events -----------------------------------------------
for i in $(seq 1 40); do absence "$i" "$(sigdate "$i")"; done             # 40 absence signals
for i in $(seq 1 10); do                                                    # 10 enrolment signals, Sept
    s school-1415 signal enrolment --pupil "$(pupil "$i")" --hemkommun 1419 --event LEFT \
        --effective-date "$(sigdate "$i")" --school-unit 14150001 --school-form GY --occurred "$(sigdate "$i")"
done
for i in $(seq 1 30); do absence "$i" 2026-11-20; done                     # 30 second reports, Nov
absence 41 2026-10-01 1415                                                  # another municipality: not counted
absence 42 2026-08-15                                                       # before the period: not counted
for i in $(seq 1 30); do
    p=$(pupil "$i")
    case_id=$(printf '00000000-0000-4000-8000-%012d' "$i")
    s kaa-1419 case open --pupil "$p" --hemkommun 1419 --case-id "$case_id" --occurred "$(day "$i" 1)"
    s kaa-1419 case occupation --pupil "$p" --hemkommun 1419 --case-id "$case_id" --as-of "$(day "$i" 1)" \
        --occupation NONE --occurred "$(day "$i" 1)"
    if [ "$i" -le 20 ]; then
        s kaa-1419 case contact --pupil "$p" --hemkommun 1419 --case-id "$case_id" --attempt-no 1 --channel LETTER \
            --outcome NO_ANSWER --occurred "$(day "$i" 2)"
        s kaa-1419 case contact --pupil "$p" --hemkommun 1419 --case-id "$case_id" --attempt-no 2 --channel PHONE \
            --outcome REACHED --occurred "$(day "$i" $(( i % 5 + 3 )))"
    else
        s kaa-1419 case contact --pupil "$p" --hemkommun 1419 --case-id "$case_id" --attempt-no 1 --channel SMS \
            --outcome NO_ANSWER --occurred "$(day "$i" 2)"
    fi
    if [ "$i" -le 12 ]; then
        s kaa-1419 case plan --pupil "$p" --hemkommun 1419 --case-id "$case_id" --plan-id new --goal WORK \
            --review-date 2027-01-15 --occurred "$(day "$i" 6)"
    fi
    if [ "$i" -le 8 ]; then
        s kaa-1419 case measure-start --pupil "$p" --hemkommun 1419 --case-id "$case_id" --measure-type PRAKTIK \
            --start "$(day "$i" 7)" --occurred "$(day "$i" 7)"
    fi
    if [ "$i" -le 10 ]; then
        cons=$(q kaa-1419 consent record --pupil "$p" --hemkommun 1419 --youth-age-at-grant 18 \
            --scope.recipients ARBETSFORMEDLINGEN,SOCIAL_SERVICES --scope.purposes REFERRAL,STATUS_FEEDBACK \
            --scope.data-categories IDENTITY --valid-from "$(date +%F)" --valid-to "$(date -d '+6 months' +%F)" \
            --recorded-by h1 --occurred "$(day "$i" 7)" | awk '/consent_id/ {print $2}')
        ref=$(printf '00000000-0000-4000-9000-%012d' "$i")
        if [ "$i" -le 8 ]; then
            s kaa-1419 refer af --pupil "$p" --hemkommun 1419 --consent "$cons" --referral-id "$ref" --occurred "$(day "$i" 8)"
            s af-1419 referral status --pupil "$p" --hemkommun 1419 --consent "$cons" --referral-id "$ref" \
                --status RECEIVED --occurred "$(day "$i" 9)"
            if [ "$i" -le 6 ]; then st=ACCEPTED; n=11; else st=DECLINED_BY_AGENCY; n=10; fi
            s af-1419 referral status --pupil "$p" --hemkommun 1419 --consent "$cons" --referral-id "$ref" \
                --status $st --occurred "$(day "$i" $n)"
        else
            s kaa-1419 refer social --pupil "$p" --hemkommun 1419 --consent "$cons" --referral-id "$ref" --occurred "$(day "$i" 8)"
        fi
    fi
    if [ "$i" -le 6 ]; then
        s kaa-1419 case close --pupil "$p" --hemkommun 1419 --case-id "$case_id" --reason STARTED_EQUIVALENT --occurred "$(day "$i" 20)"
    elif [ "$i" -le 11 ]; then
        s kaa-1419 case close --pupil "$p" --hemkommun 1419 --case-id "$case_id" --reason TURNED_20 --occurred "$(day "$i" 20)"
    fi
done
expect "the scripted history was accepted in full" "" "$(cat "$NET/errors" 2>/dev/null)"

# ---- The figures, worked out by hand ----------------------------------------------
J=$(q audit stats --municipality 1419 --from 2026-09-01 --to 2026-11-30 --json)
f() { echo "$J" | grep -o "\"$1\":{[^{}]*}" | head -n 1; }
# absence: 40 first reports + 30 second = 70; odd pupils are men: 35/35.
expect "absence signals" '"absence_reported":{"total":70,"women":35,"men":35}' "$(f absence_reported)"
# enrolment: pupils 1..10: 5 women, 5 men.
expect "enrolment signals" '"enrolment_changed":{"total":10,"women":5,"men":5}' "$(f enrolment_changed)"
# pupils 1..40 (41 lives in 1415, 42's signal is before the period).
expect "youths signalled" '"signalled":{"total":40,"women":20,"men":20}' "$(f signalled)"
expect "youths registered" '"registered":{"total":30,"women":15,"men":15}' "$(f registered)"
# reached: pupils 1..20 of 30 registered = 0.667; days to reach = I % 5 + 3, i.e.
# 3,4,5,6,7 four times each: the median of twenty is 5.
expect "youths contacted, share and median days" \
    '"contacted":{"total":20,"women":10,"men":10,"share":0.667,"median_days_to_first_contact":5.0}' "$(f contacted)"
expect "with a plan (12 of 30)" '"with_plan":{"total":12,"women":6,"men":6,"share":0.4}' "$(f with_plan)"
expect "in a measure (8 of 30)" '"in_measure":{"total":8,"women":null,"men":null,"share":0.267}' "$(f in_measure)"
# AF: 8 sent (4/4 are under 5: suppressed); latest ACCEPTED for 1..6, DECLINED for 7..8;
# every first answer came a day after the referral.
grep -q '"af":{"sent":{"total":8,"women":null,"men":null},"outcomes":{"ACCEPTED":{"total":6,"women":null,"men":null},"DECLINED_BY_AGENCY":{"total":null,"women":null,"men":null}},"median_days_to_first_answer":1.0}' <<<"$J" \
    && ok "referrals to AF, outcomes, median days to the first answer" || bad "referrals to AF" "$(echo "$J" | grep -o '"af":{.*}},"median_days_to_first_answer":[0-9.a-z]*')"
grep -q '"social":{"sent":{"total":null,"women":null,"men":null},"outcomes":{"NO_ANSWER":{"total":null,"women":null,"men":null}},"median_days_to_first_answer":null}' <<<"$J" \
    && ok "referrals to social services (2: suppressed)" || bad "social" "$J"
expect "closures STARTED_EQUIVALENT (1..6)" '"STARTED_EQUIVALENT":{"total":6,"women":null,"men":null}' "$(f STARTED_EQUIVALENT)"
expect "closures TURNED_20 (7..11)" '"TURNED_20":{"total":5,"women":null,"men":null}' "$(f TURNED_20)"
expect "closures STARTED_INTRODUCTION_PROGRAMME are counted too (none here)" \
    '"STARTED_INTRODUCTION_PROGRAMME":{"total":0,"women":0,"men":0}' "$(f STARTED_INTRODUCTION_PROGRAMME)"
# months: Sept: signals from absences 1..15 (8 men) and enrolments 1..10 (5 men):
# 25 = 12 women + 13 men; 15 registered and reached (7/8); referrals 1..10 (5/5);
# closures 1..9 (5 men, 4 women: suppressed). Oct: pupils 16..30 (8 even = women,
# 7 men); 5 reached (16..20); closures 10, 11 (2: suppressed). Nov: 10 + 30 signals.
grep -q '"month":"2026-09","signals":{"total":25,"women":12,"men":13},"registered":{"total":15,"women":7,"men":8},"contacted":{"total":15,"women":7,"men":8},"referrals":{"total":10,"women":5,"men":5},"closures":{"total":9,"women":null,"men":5}' <<<"$J" \
    && ok "September" || bad "September" "$(echo "$J" | grep -o '"month":"2026-09"[^]]*')"
grep -q '"month":"2026-10","signals":{"total":15,"women":8,"men":7},"registered":{"total":15,"women":8,"men":7},"contacted":{"total":5,"women":null,"men":null},"referrals":{"total":0,"women":0,"men":0},"closures":{"total":null,"women":null,"men":null}' <<<"$J" \
    && ok "October" || bad "October" "$(echo "$J" | grep -o '"month":"2026-10"[^]]*')"
grep -q '"month":"2026-11","signals":{"total":40,"women":20,"men":20},"registered":{"total":0,"women":0,"men":0}' <<<"$J" \
    && ok "November" || bad "November" "$(echo "$J" | grep -o '"month":"2026-11"[^]]*')"

# ---- CSV and HTML carry the same numbers ---------------------------------------------
C=$(q audit stats --municipality 1419 --from 2026-09-01 --to 2026-11-30 --csv)
grep -qx 'signals,absence_reported,70,35,35' <<<"$C" && ok "CSV row" || bad "CSV row" "$C"
grep -qx 'youths,in_measure,8,<5,<5' <<<"$C" && ok "CSV suppression" || bad "CSV suppression" "$C"
q audit stats --municipality 1419 --from 2026-09-01 --to 2026-11-30 --html "$NET/report.html" >/dev/null
xmllint --noout "$NET/report.html" 2>"$NET/xml.err" && ok "the HTML report is well-formed" || bad "HTML well-formed" "$(cat "$NET/xml.err")"
grep -q '<td>signals</td><td>absence_reported</td><td class="n">70</td><td class="n">35</td><td class="n">35</td>' "$NET/report.html" \
    && ok "HTML numbers match the JSON" || bad "HTML numbers"
expect "HTML has the four monthly charts" 4 "$(grep -c '<svg ' "$NET/report.html")"
grep -q '<td>youths</td><td>in_measure</td><td class="n">8</td><td class="n">&lt;5</td>' "$NET/report.html" \
    && ok "HTML suppression" || bad "HTML suppression"

# ---- Scopes, --as-of, the access log -------------------------------------------------
P1=$(pupil 1)
N=$(q audit history --pupil "$P1" --json | grep -c '"seq"')
# pupil 1: 2 absences and an enrolment; case opened, occupation, 2 contacts,
# plan, measure, consent, referral to AF, 2 answers, closing: 14.
expect "the pupil's history across agencies" 14 "$N"
expect "an auditor for 1415 sees nothing of a Tjörn pupil" 0 "$(q audit-1415 history --pupil "$P1" --json | grep -c '"seq"')"
expect "... nor of Tjörn's figures" '"registered":{"total":0,"women":0,"men":0}' \
    "$(q audit-1415 stats --municipality 1419 --from 2026-09-01 --to 2026-11-30 --json | grep -o '"registered":{[^{}]*}' | head -n 1)"
expect "--as-of yesterday: nothing had been received" 0 \
    "$(q audit history --pupil "$P1" --as-of "$(date -d yesterday +%F)" --json | grep -c '"seq"')"
expect "--as-of today: everything" 14 "$(q audit history --pupil "$P1" --as-of "$(date +%F)" --json | grep -c '"seq"')"
LOG=$(q audit access-log --json)
# audit read: stats as JSON, CSV, HTML; history; history as of yesterday and today.
# Each read is in the access log of every data controller whose records it
# concerns (issue 13, rule 11): all six in Tjörn's.
expect "every read by the auditor is in Tjörn's access log, with its kind" "3 history, 3 stats" \
    "$(echo "$LOG" | grep '"mailbox":"audit/access/1419"' | grep -o '"access":{"agent":"audit","role":"audit","request":"[a-z]*"' | cut -d'"' -f14 | sort | uniq -c | awk '{print $1 " " $2}' | paste -sd, | sed 's/,/, /g')"
expect "... the history reads in Arbetsförmedlingen's too (the pupil's referral and its answers)" "3" \
    "$(echo "$LOG" | grep '"mailbox":"audit/access/af"' | grep -c '"request":"history"')"
expect "Stenungsund's auditor reads Stenungsund's log: its own read only" "1" \
    "$(q audit-1415 access-log --json | grep -c '"request":"history"')"
echo "$LOG" | grep '"mailbox":"audit/access/1419"' | grep -q '"request":"history","filter":"one subject (keyed); ","records":13' \
    && echo "$LOG" | grep '"mailbox":"audit/access/af"' | grep -q '"request":"history","filter":"one subject (keyed); ","records":1' \
    && ok "a history read is logged with its filter and count: Tjörn's 13 records, Arbetsförmedlingen's 1" \
    || bad "history read logged" "$LOG"
echo "$LOG" | grep -q '"request":"history","filter":"time -..[0-9T:.Z-]*; one subject (keyed); "' \
    && ok "an --as-of read is logged with its time filter" || bad "as-of read logged" "$LOG"
echo "$LOG" | grep -q '"request":"stats"' && ok "stats reads are logged" || bad "stats logged"
expect "Tjörn's access log of the pupil lists the reads of the pupil's records" 3 \
    "$(q audit access-log --pupil "$P1" --json | grep '"mailbox":"audit/access/1419"' | grep -c '"request":"history"')"
expect "... and Stenungsund's the read of its auditor, which found none" 1 \
    "$(q audit access-log --pupil "$P1" --json | grep '"mailbox":"audit/access/1415"' | grep -c '"request":"history"')"
case "$LOG" in *"${P1//-/}"*|*"$(echo "$P1" | tr -d -)"*) bad "no identity number in the access log";; *) ok "no identity number in the access log";; esac

finish_report
