#!/usr/bin/env bash
# The soffa demo: a Tjörn pupil at a Stenungsund school, end to end.
#
#   agents/demo.sh BUILD_DIR
#
# Brings up a local network (broker + one agent of each role) in a temporary
# directory, plays the story step by step with the real command line, checks
# at every step that each party received what it should, in order, and takes
# the network down again. Exit status 0 when every check held. The test suite
# runs this same script.
set -euo pipefail

BUILD=${1:?usage: agents/demo.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-demo-XXXXXX)
# SOFFA_DEMO_KEEP=1 leaves the network (and its web inboxes) running.
KEEP=${SOFFA_DEMO_KEEP:-0}
finish() {
    local rc=$?
    if [ "$KEEP" = 1 ] && [ $rc -eq 0 ]; then
        return
    fi
    "$SOFFA" down "$NET" >/dev/null 2>&1 || true
    if [ $rc -ne 0 ]; then
        # Leave the evidence in the output for whoever reads the failure.
        for log in "$NET"/broker/broker.log "$NET"/*/agent.log; do
            [ -f "$log" ] && { echo "---- tail of $log"; tail -n 25 "$log"; }
        done
    fi
    rm -rf "$NET"
}
trap finish EXIT

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say() { printf '  %s\n' "$*"; }
# run AGENT ARGS...: shows the command as a person would type it, then runs it.
run() {
    local agent=$1
    shift
    printf '  \033[2m$ soffa --agent %s %s\033[0m\n' "$agent" "$*"
    "$SOFFA" --net "$NET" --agent "$agent" "$@" 2>&1 | sed 's/^/    /'
    return "${PIPESTATUS[0]}"
}
# types AGENT: the message types in AGENT's inbox, in order, one line.
types() {
    "$SOFFA" --net "$NET" --agent "$1" --json inbox | grep -o '"type":"[a-z0-9_]*"' | cut -d'"' -f4 | tr '\n' ' ' | sed 's/ $//'
}
# history: the message types in the pupil's history as the auditor replays it, in order, one line.
history() {
    "$SOFFA" --net "$NET" --agent audit history --pupil "$PUPIL" | grep -o 'seq [0-9]* .*  [a-z_]* ' \
        | awk '{print $5}' | tr '\n' ' ' | sed 's/ $//'
}
check() {   # check WHAT EXPECTED ACTUAL
    if [ "$2" != "$3" ]; then
        printf '\n  CHECK FAILED: %s\n    expected: %s\n    got:      %s\n' "$1" "$2" "$3" >&2
        exit 1
    fi
    printf '  \033[32mok\033[0m  %s\n' "$1"
}

# A made-up pupil born 14 March eighteen years ago (18 in the story, whatever
# the year the demo runs); not a real person's number: birth number 271 and
# the check digit of the Luhn sum. Registered in Tjörn (1419), studying in
# Stenungsund (1415).
luhn() {   # luhn DIGITS: the check digit
    local d=$1 sum=0 i n
    for ((i = 0; i < ${#d}; i++)); do
        n=$(( ${d:i:1} * (2 - i % 2) ))
        sum=$(( sum + n / 10 + n % 10 ))
    done
    echo $(( (10 - sum % 10) % 10 ))
}
# (Before 14 March the year before, so that the pupil is 18 on every date.)
BORN_Y=$(( $(date +%Y) - 18 ))
[ "$(date +%m%d)" \< 0314 ] && BORN_Y=$(( BORN_Y - 1 ))
BORN_YY=$(printf '%02d' $(( BORN_Y % 100 )))
PUPIL=${BORN_YY}0314-271$(luhn "${BORN_YY}0314271")
TODAY=$(date +%F)
# The autumn term so far: absence from twelve weeks ago to two weeks ago.
ABSENT_FROM=$(date -d '-12 weeks' +%F)
ABSENT_TO=$(date -d '-2 weeks' +%F)
LEFT_ON=$(date -d '-1 week' +%F)

bold "1. A network of agencies comes up"
"$SOFFA" up "$NET" | sed 's/^/  /'

bold "2. The school in Stenungsund reports significant absence"
say "The pupil lives in Tjörn, so the law (SL 15:15) says Tjörn's KAA must hear of it."
say "Tjörn's KAA caseworker watches the inbox live:"
"$SOFFA" --net "$NET" --agent kaa-1419 watch > "$NET/watch.out" &
WATCH=$!
sleep 0.5
run school-1415 signal absence --pupil $PUPIL --hemkommun 1419 --period-from "$ABSENT_FROM" \
    --period-to "$ABSENT_TO" --unexcused-band SIGNIFICANT --investigation-started yes --school-unit 14150001
for _ in $(seq 50); do grep -q absence_reported "$NET/watch.out" && break; sleep 0.1; done
kill $WATCH 2>/dev/null || true
wait $WATCH 2>/dev/null || true
say "What appeared on the caseworker's screen in Tjörn:"
sed 's/^/    /' "$NET/watch.out"
check "Tjörn's KAA received the signal" "absence_reported" "$(types kaa-1419)"
check "Stenungsund's KAA received nothing" "" "$(types kaa-1415)"

bold "3. The pupil leaves the programme, and the school tells Tjörn"
say "A pupil who leaves a school whose principal is not the home municipality is"
say "reported to the home municipality as soon as possible (SL 15:15). Having left"
say "the Social Science programme without an examen, the young person (18) is in"
say "Tjörn's activity responsibility (SL 29:9): under 20, neither in nor through"
say "a national programme."
run school-1415 signal enrolment --pupil $PUPIL --hemkommun 1419 --event LEFT --effective-date "$LEFT_ON" \
    --school-unit 14150001 --school-form GY --programme-code SA --leave-reason DISCONTINUED
sleep 0.3
check "Tjörn's KAA received both signals, in order" "absence_reported enrolment_changed" "$(types kaa-1419)"

bold "4. Tjörn's KAA acknowledges both signals; the school sees the receipts"
run kaa-1419 ack --re 1 --result RECEIVED
run kaa-1419 ack --re 2 --result REGISTERED
sleep 0.3
check "the school received both acknowledgements" "signal_acknowledged signal_acknowledged" "$(types school-1415)"

bold "5. The KAA opens a case and reaches the young person by phone"
CASE=$(cat /proc/sys/kernel/random/uuid)
run kaa-1419 case open --re 2 --case-id "$CASE" --registration-reason DROPOUT_NATIONAL
run kaa-1419 case contact --re 2 --case-id "$CASE" --attempt-no 1 --channel PHONE --outcome REACHED
run kaa-1419 case occupation --re 2 --case-id "$CASE" --as-of "$TODAY" --occupation NONE

bold "6. The young person consents to a referral to Arbetsförmedlingen"
say "At 18 only the young person can consent (OSL 12:2); the consent names the recipient,"
say "the purposes and the data it covers, the summary text included."
run kaa-1419 consent record --re 2 --youth-age-at-grant 18 --maturity-assessed yes \
    --scope.recipients ARBETSFORMEDLINGEN --scope.purposes REFERRAL,STATUS_FEEDBACK \
    --scope.data-categories IDENTITY,OCCUPATION,SUMMARY_TEXT --valid-from "$TODAY" \
    --valid-to "$(date -d '+6 months' +%F)" --recorded-by handlaggare-7 | tee "$NET/consent.out"
CONSENT=$(awk '/consent_id/ {print $2}' "$NET/consent.out")
say "(consent id $CONSENT)"

bold "7. The KAA refers the young person to Arbetsförmedlingen"
say "A first draft of the summary names a diagnosis. Health data may not go to"
say "Arbetsförmedlingen (GDPR art. 9): the command line warns, and the broker refuses it,"
say "naming the category and never the text."
if run kaa-1419 refer af --re 2 --consent "$CONSENT" --purpose AF_YOUTH_PROGRAMME \
    --summary "Har en ADHD-diagnos, vill ha praktik."; then
    check "the summary naming a diagnosis is refused" "refused" "accepted"
fi
check "nothing reached Arbetsförmedlingen" "" "$(types af-1419)"
say "The caseworker writes what Arbetsförmedlingen needs, and nothing more:"
run kaa-1419 refer af --re 2 --consent "$CONSENT" --purpose AF_YOUTH_PROGRAMME \
    --summary "Vill komma ut i praktik inom handel."
sleep 0.3
check "Arbetsförmedlingen received the referral" "referral_sent" "$(types af-1419)"

bold "8. Arbetsförmedlingen answers: received, then accepted"
run af-1419 referral status --re last --status RECEIVED
run af-1419 referral status --re last --status ACCEPTED
sleep 0.3
check "the KAA received both answers, in order" \
    "absence_reported enrolment_changed referral_status_changed referral_status_changed" "$(types kaa-1419)"

bold "9. A referral to social services without consent is refused"
say "The consent covers Arbetsförmedlingen only; social services secrecy (OSL 26:1) needs more."
if run kaa-1419 refer social --re 2 --consent "$CONSENT"; then
    check "the referral to social services is refused" "refused" "accepted"
fi
check "nothing reached social services" "" "$(types social-1419)"

bold "10. An Arbetsförmedlingen programme runs; the case stays open"
say "A programme at Arbetsförmedlingen is an occupation, not an education equivalent"
say "to a national programme: the young person stays in the KAA's care, and the KAA"
say "records the occupation and keeps in touch."
MEASURE=$(cat /proc/sys/kernel/random/uuid)
run kaa-1419 case measure-start --re 2 --case-id "$CASE" --measure-id "$MEASURE" --measure-type AF_PROGRAMME --start "$TODAY"
run kaa-1419 case occupation --re 2 --case-id "$CASE" --as-of "$TODAY" --occupation AF_PROGRAMME
run af-1419 referral status --re last --status COMPLETED
run kaa-1419 case measure-end --re 2 --case-id "$CASE" --measure-id "$MEASURE" --measure-type AF_PROGRAMME \
    --end "$TODAY" --outcome COMPLETED
sleep 0.3
check "the case is still open after the programme (the history has no closing)" \
    "absence_reported enrolment_changed signal_acknowledged signal_acknowledged kaa_case_opened contact_attempted occupation_recorded consent_recorded referral_sent referral_status_changed referral_status_changed measure_started occupation_recorded referral_status_changed measure_ended" \
    "$(history)"

bold "11. The young person starts a national programme; the school tells Tjörn"
say "With the practice behind them, the young person applies again and starts on the"
say "Economics programme at the same school. A pupil who starts at a school run by"
say "another principal is reported to the home municipality (SL 15:15)."
run school-1415 signal enrolment --pupil $PUPIL --hemkommun 1419 --event STARTED --effective-date "$TODAY" \
    --school-unit 14150001 --school-form GY --programme-code EK
sleep 0.3
check "Tjörn's KAA received the start" \
    "absence_reported enrolment_changed referral_status_changed referral_status_changed referral_status_changed enrolment_changed" \
    "$(types kaa-1419)"
run kaa-1419 ack --re last --result RECEIVED
say "On a national programme the young person is no longer in the KAA's target group:"
say "the KAA records the studies and closes the case for that reason."
run kaa-1419 case occupation --re last --case-id "$CASE" --as-of "$TODAY" --occupation STUDIES_GY
run kaa-1419 case close --re last --case-id "$CASE" --reason STARTED_NATIONAL_PROGRAMME
sleep 0.3
check "the school received three acknowledgements" "signal_acknowledged signal_acknowledged signal_acknowledged" \
    "$(types school-1415)"

bold "12. The auditor replays the pupil's whole history and verifies the chain"
run audit history --pupil $PUPIL | tee "$NET/history.out"
HIST=$(grep -o 'seq [0-9]* .*  [a-z_]* ' "$NET/history.out" | awk '{print $5}' | tr '\n' ' ' | sed 's/ $//')
check "the history shows every step, in order" \
    "absence_reported enrolment_changed signal_acknowledged signal_acknowledged kaa_case_opened contact_attempted occupation_recorded consent_recorded referral_sent referral_status_changed referral_status_changed measure_started occupation_recorded referral_status_changed measure_ended enrolment_changed signal_acknowledged occupation_recorded kaa_case_closed" \
    "$HIST"
"$SOFFA" --net "$NET" --agent audit --json history --pupil $PUPIL > "$NET/history.json"
check "the occupations recorded: none, the AF programme, upper-secondary studies" "NONE AF_PROGRAMME STUDIES_GY" \
    "$(grep -o '"occupation":"[A-Z_]*"' "$NET/history.json" | cut -d'"' -f4 | tr '\n' ' ' | sed 's/ $//')"
check "the case closed because a national programme started" "STARTED_NATIONAL_PROGRAMME" \
    "$(grep -o '"kaa_case_closed":{[^}]*}' "$NET/history.json" | grep -o '"reason":"[A-Z_0-9]*"' | cut -d'"' -f4)"
say "Each data controller keeps its own access log: every read of the pupil's history is"
say "in Tjörn's, the school's and Arbetsförmedlingen's, each with the records that were theirs."
run audit access-log --pupil $PUPIL | tee "$NET/access.out"
check "each of the auditor's three reads of the history is in Tjörn's access log" "3" \
    "$(grep -c 'access  *audit read [0-9]* record(s) of 1419' "$NET/access.out" || true)"
check "... and in Arbetsförmedlingen's" "3" \
    "$(grep -c 'access  *audit read [0-9]* record(s) of af' "$NET/access.out" || true)"
check "Stenungsund's auditor sees none of them: no record of Stenungsund was read" "0 record(s)" \
    "$("$SOFFA" --net "$NET" --agent audit-1415 access-log | tail -n 1 | grep -o '^[0-9]* record(s)')"
say "The broker signs a checkpoint of the chain every 10 records, with a key kept outside"
say "its data directory; the auditor's agent keeps every checkpoint it receives. verify"
say "checks the chain against the broker's public key and the auditor's checkpoints,"
say "offline, on the data directory (or a copy)."
printf '  \033[2m$ soffa verify %s --key %s --against %s\033[0m\n' "$NET/broker/data" "$NET/broker/checkpoint.pub" "$NET/audit/data"
"$SOFFA" verify "$NET/broker/data" --key "$NET/broker/checkpoint.pub" --against "$NET/audit/data" | tee "$NET/verify.out" | sed 's/^/    /'
grep -q '^intact' "$NET/verify.out" || check "the chain verifies" "intact" "$(cat "$NET/verify.out")"
run kaa-1419 status

# ---- Part two: a year-9 handover, a start and a leaving, a local actor, the half-year figures ----

# A second made-up pupil, a young woman (the birth number's third digit is
# even) from Tjörn, in year 9 last spring: under 16 when the compulsory
# school handed her over, 16 now. Her 16th birthday is three months ago (in
# January to June: last 31 December, so that she left compulsory school
# before today, as the KAA's duty requires: 1 July of the year she turns 16).
if [ "$(date +%-m)" -ge 7 ]; then
    TURNED_16=$(date -d '-3 months' +%F)
else
    TURNED_16=$(( $(date +%Y) - 1 ))-12-31
fi
BORN2=$(date -d "$TURNED_16 -16 years" +%y%m%d)
PUPIL2=${BORN2}-282$(luhn "${BORN2}282")
AGE2=$(( $(date +%Y) - $(date -d "$TURNED_16" +%Y) + 16 ))
[ "$(date +%m%d)" \< "$(date -d "$TURNED_16" +%m%d)" ] && AGE2=$((AGE2 - 1))
# The story's dates, relative to today: the handover seven months ago (in
# spring when the demo runs in late autumn), the last day of year 9, the
# start of the autumn term and the leaving.
HANDOVER_ON=$(date -d '-7 months' +%F)
ANSWERED_ON=$(date -d "$HANDOVER_ON +2 days" +%F)
YEAR9_ENDS=$(date -d '-24 weeks' +%F)
STARTED_ON=$(date -d '-14 weeks' +%F)
LEFT_ON2=$(date -d '-5 weeks' +%F)
# The half-year the KAA's work falls in (business dates are Stockholm's).
HALF=$(TZ=Europe/Stockholm date +%Y)H$(( $(TZ=Europe/Stockholm date +%-m) <= 6 ? 1 : 2 ))
# history2: like history, for the second pupil.
history2() {
    "$SOFFA" --net "$NET" --agent audit history --pupil "$PUPIL2" | grep -o 'seq [0-9]* .*  [a-z0-9_]* ' \
        | awk '{print $5}' | tr '\n' ' ' | sed 's/ $//'
}
# last_types AGENT N: the last N message types in AGENT's inbox, one line.
last_types() {
    types "$1" | awk -v n="$2" '{s = ""; for (i = NF - n + 1; i <= NF; i++) if (i > 0) s = s (s == "" ? "" : " ") $i; print s}'
}
# settle EXPECTED CMD...: waits (at most 5 s) until CMD prints EXPECTED; the check follows.
settle() {
    local _i
    for _i in $(seq 50); do [ "$("${@:2}")" = "$1" ] && return 0; sleep 0.1; done
    return 0
}

bold "13. Part two: a story that begins in year 9"
say "The second part follows a young woman from Tjörn (pupil $PUPIL2, 16 now) from the"
say "spring of year 9 to the autumn after it. Its dates reach back seven months, further"
say "than the broker takes by default ([policy] event_max_days = 183: half a year holds"
say "the longest school term, and an older date is refused). The demo raises it to 400"
say "days in broker.ini and restarts the broker; the agents reconnect by themselves."
BPID=$(awk '$1 == "broker" {print $2}' "$NET/pids")
kill -TERM "$BPID"
for _ in $(seq 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.05; done
printf '\n[policy]\n; the demo: its second story reaches back to a spring term\nevent_max_days = 400\n' >> "$NET/broker/broker.ini"
setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
sed -i "s/^broker .*/broker $!/" "$NET/pids"
sleep 1
for agent in grundskola-1419 school-1415 kaa-1419 komvux-1419 audit; do
    for _ in $(seq 100); do
        "$SOFFA" --net "$NET" --agent "$agent" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break
        sleep 0.1
    done
done

bold "14. Spring, year 9: the compulsory school hands the pupil over to Tjörn's KAA"
say "Stenungsund's KAA found that in autumn it is \"alldeles för sent\" for year-9 pupils at"
say "risk; the compulsory schools should tell the KAA in spring. The handover rests on"
say "consent, not on the law; at 15 ($HANDOVER_ON) a guardian consents for the pupil (OSL 12:2)."
say "Sent without a consent, it is refused:"
if run grundskola-1419 signal year9 --pupil "$PUPIL2" --hemkommun 1419 --occurred "$HANDOVER_ON" \
    --school-unit 14190001 --school-form GR --risk NOT_COMPLETING --leaves-on "$YEAR9_ENDS"; then
    check "the handover without consent is refused" "refused" "accepted"
fi
check "nothing reached Tjörn's KAA" \
    "absence_reported enrolment_changed referral_status_changed referral_status_changed referral_status_changed enrolment_changed" \
    "$(types kaa-1419)"
say "The school records the consent the guardian signed with the pupil. It names the KAA,"
say "and covers the support the school has tried (MEASURES). soffa judges who may consent"
say "on today's age: the pupil is $AGE2 now, so her own signature is needed beside the guardian's."
run grundskola-1419 consent record --pupil "$PUPIL2" --hemkommun 1419 --occurred "$HANDOVER_ON" \
    --granted-by GUARDIAN,YOUTH --youth-age-at-grant 15 --scope.recipients KAA \
    --scope.purposes REFERRAL,STATUS_FEEDBACK --scope.data-categories IDENTITY,OCCUPATION,MEASURES \
    --valid-from "$HANDOVER_ON" --valid-to "$(date -d "$HANDOVER_ON +1 year -1 day" +%F)" \
    --recorded-by mentor-3 | tee "$NET/consent2.out"
CONSENT2=$(awk '/consent_id/ {print $2}' "$NET/consent2.out")
say "The handover: at risk of not completing upper secondary; the mentor and the pupil"
say "health team have tried (codes only, never what was said); the mentor is the contact."
run grundskola-1419 signal year9 --pupil "$PUPIL2" --hemkommun 1419 --consent "$CONSENT2" --occurred "$HANDOVER_ON" \
    --school-unit 14190001 --school-form GR --risk NOT_COMPLETING --support-tried MENTOR,PUPIL_HEALTH_TEAM \
    --contact-role MENTOR --leaves-on "$YEAR9_ENDS"
settle "year9_handover" last_types kaa-1419 1
check "Tjörn's KAA received the handover" "year9_handover" "$(last_types kaa-1419 1)"
say "The KAA answers, and the school hears back:"
run kaa-1419 answer --re last --status ACCEPTED --occurred "$ANSWERED_ON"
settle "early_warning_answered" types grundskola-1419
check "the compulsory school received the KAA's answer" "early_warning_answered" "$(types grundskola-1419)"
check "the upper-secondary school heard nothing of it" \
    "signal_acknowledged signal_acknowledged signal_acknowledged" "$(types school-1415)"

bold "15. Autumn: she starts upper secondary in Stenungsund, and leaves in October"
say "She starts on the Building and Construction programme on $STARTED_ON, and leaves it on"
say "$LEFT_ON2. The school's principal is not Tjörn, so the school reports both to Tjörn"
say "(SL 15:15). Having left, under 20 and without an examen, she is in Tjörn's activity"
say "responsibility (SL 29:9)."
run school-1415 signal enrolment --pupil "$PUPIL2" --hemkommun 1419 --occurred "$STARTED_ON" --event STARTED \
    --effective-date "$STARTED_ON" --school-unit 14150001 --school-form GY --programme-code BA
run school-1415 signal enrolment --pupil "$PUPIL2" --hemkommun 1419 --occurred "$LEFT_ON2" --event LEFT \
    --effective-date "$LEFT_ON2" --school-unit 14150001 --school-form GY --programme-code BA --leave-reason DISCONTINUED
settle "year9_handover enrolment_changed enrolment_changed" last_types kaa-1419 3
check "Tjörn's KAA received the handover, the start and the leaving, in order" \
    "year9_handover enrolment_changed enrolment_changed" "$(last_types kaa-1419 3)"
LEFT_SEQ=$("$SOFFA" --net "$NET" --agent kaa-1419 --json inbox | grep -o '"seq":[0-9]*' | tail -n 1 | cut -d: -f2)
run kaa-1419 ack --re "$LEFT_SEQ" --result REGISTERED
settle "signal_acknowledged signal_acknowledged signal_acknowledged signal_acknowledged" types school-1415
check "the school received the acknowledgement" \
    "signal_acknowledged signal_acknowledged signal_acknowledged signal_acknowledged" "$(types school-1415)"

bold "16. Tjörn's KAA opens a case, reaches her, and maps her situation"
say "The caseworker already knows her from the spring's handover. A mapping"
say "(kartläggning) is recorded as its own event: the municipalities report how many"
say "of the youths in the KAA have been mapped."
CASE2=$(cat /proc/sys/kernel/random/uuid)
run kaa-1419 case open --re "$LEFT_SEQ" --case-id "$CASE2" --registration-reason DROPOUT_NATIONAL
run kaa-1419 case contact --re "$LEFT_SEQ" --case-id "$CASE2" --attempt-no 1 --channel SMS --outcome REACHED
run kaa-1419 case occupation --re "$LEFT_SEQ" --case-id "$CASE2" --as-of "$TODAY" --occupation NONE
run kaa-1419 case map --re "$LEFT_SEQ" --case-id "$CASE2" --mapped-on "$TODAY"

bold "17. The KAA refers her to Komvux, a local actor"
say "In the demo's Tjörn the introduction programme's individual alternative is read at"
say "Komvux. Komvux is a provider (role = provider, provider_kind = komvux in broker.ini),"
say "with its own agent and inbox. At $AGE2 she may consent herself when the caseworker"
say "has assessed her maturity; the consent names the kind of provider."
run kaa-1419 consent record --re "$LEFT_SEQ" --youth-age-at-grant "$AGE2" --maturity-assessed yes \
    --scope.recipients PROVIDER --scope.provider-kinds KOMVUX --scope.purposes REFERRAL,STATUS_FEEDBACK \
    --scope.data-categories IDENTITY,OCCUPATION --valid-from "$TODAY" --valid-to "$(date -d '+6 months' +%F)" \
    --recorded-by handlaggare-7 | tee "$NET/consent3.out"
CONSENT3=$(awk '/consent_id/ {print $2}' "$NET/consent3.out")
say "A referral to the labour-market unit is refused: Tjörn has configured none in soffa"
say "(and the consent names Komvux only). The broker says what to add:"
if run kaa-1419 refer provider --re "$LEFT_SEQ" --consent "$CONSENT3" --provider-kind LABOUR_MARKET_UNIT \
    --purpose PROVIDER_WORK; then
    check "the referral to the labour-market unit is refused" "refused" "accepted"
fi
run kaa-1419 refer provider --re "$LEFT_SEQ" --consent "$CONSENT3" --provider-kind KOMVUX --purpose PROVIDER_STUDIES \
    | tee "$NET/referral2.out"
REFERRAL2=$(awk '/referral_id/ {print $2}' "$NET/referral2.out")
settle "referral_sent" types komvux-1419
check "Komvux received the referral, and only that" "referral_sent" "$(types komvux-1419)"
check "Arbetsförmedlingen received nothing more" "referral_sent" "$(types af-1419)"

bold "18. Komvux answers: received, accepted; the studies start"
run komvux-1419 referral status --re last --status RECEIVED
run komvux-1419 referral status --re last --status ACCEPTED
settle "referral_status_changed referral_status_changed" last_types kaa-1419 2
check "the KAA received both answers, in order" "referral_status_changed referral_status_changed" \
    "$(last_types kaa-1419 2)"
say "The measure is linked to the referral; the broker checks that the referral is this"
say "KAA's, about her, and went to Komvux."
MEASURE2=$(cat /proc/sys/kernel/random/uuid)
run kaa-1419 case measure-start --re "$LEFT_SEQ" --case-id "$CASE2" --measure-id "$MEASURE2" --measure-type STUDIES_IM \
    --start "$TODAY" --referral-id "$REFERRAL2" --provider.kind PROVIDER --provider.provider-kind KOMVUX
say "On an introduction programme she is back in studies and, since 2018, outside the"
say "KAA's target group: the KAA records the studies and closes the case for that reason."
run kaa-1419 case occupation --re "$LEFT_SEQ" --case-id "$CASE2" --as-of "$TODAY" --occupation STUDIES_GY
run kaa-1419 case close --re "$LEFT_SEQ" --case-id "$CASE2" --reason STARTED_INTRODUCTION_PROGRAMME
check "her whole history, from the spring's consent to the closing, in order" \
    "consent_recorded year9_handover early_warning_answered enrolment_changed enrolment_changed signal_acknowledged kaa_case_opened contact_attempted occupation_recorded case_mapped consent_recorded referral_sent referral_status_changed referral_status_changed measure_started occupation_recorded kaa_case_closed" \
    "$(history2)"
"$SOFFA" --net "$NET" --agent audit --json history --pupil "$PUPIL2" > "$NET/history2.json"
check "the measure names the referral and Komvux" "KOMVUX $REFERRAL2" \
    "$(grep -o '"measure_started":{"case_id":[^]]*' "$NET/history2.json" | grep -o '"provider_kind":"[A-Z_]*"\|"referral_id":"[^"]*"' \
        | cut -d'"' -f4 | tr '\n' ' ' | sed 's/ $//')"

bold "19. The half-year figures Tjörn reports"
say "The auditor computes the figures for the half-year $HALF from the history: youths"
say "in the KAA during the period (not only cases opened in it), contacted, mapped, what"
say "they were doing and where they went, by sex and age. Two youths are few: counts of"
say "1 to 4 are shown as <5, so that no one can be recognised."
printf '  \033[2m$ soffa --agent audit stats --municipality 1419 --half-year %s\033[0m\n' "$HALF"
"$SOFFA" --net "$NET" --agent audit stats --municipality 1419 --half-year "$HALF" | tee "$NET/stats.out" \
    | grep "^  $HALF " | grep -v '  0       0       0       0$' | sed 's/^/    /'
say "(rows that are 0 throughout left out here)"
"$SOFFA" --net "$NET" --agent audit --json stats --municipality 1419 --half-year "$HALF" > "$NET/stats.json"
FIG=$(grep -o "\"period\":\"$HALF\",[^]]*" "$NET/stats.json")
figure() {   # figure KEY: the half-year's {total, women, men} of KEY, one line
    echo "$FIG" | grep -o "\"$1\":{\"total\":[^,]*,\"women\":[^,]*,\"men\":[^,]*" | head -n 1 | sed 's/.*"total"://; s/"women"://; s/"men"://'
}
check "youths in the KAA during the half-year: one woman, one man, suppressed" "null,null,null" "$(figure in_kaa_during)"
check "none still in the KAA at its end" "0,0,0" "$(figure in_kaa_at_end)"
check "none declined" "0,0,0" "$(figure declined)"
say "The list behind the figures, for Tjörn's own reporting: one row per youth, not"
say "suppressed, so only an auditor of Tjörn's journal may make it (and it is logged)."
rm -f "$NET/export.csv"
run audit stats --municipality 1419 --half-year "$HALF" --export "$NET/export.csv"
sed 's/^/    /; s/\r$//' "$NET/export.csv"
check "the export has a header and two youths" "3" "$(wc -l < "$NET/export.csv" | tr -d ' ')"
ID1=20${BORN_YY}0314271$(luhn "${BORN_YY}0314271")
AGE1=$(( $(date +%Y) - 2000 - 10#$BORN_YY ))
[ "$(date +%m%d)" \< 0314 ] && AGE1=$((AGE1 - 1))
BAND1=18-19
[ "$AGE1" -lt 18 ] && BAND1=16-17
check "the first pupil's row, column by column" \
    "\"$ID1\",\"$BAND1\",\"man\",\"DROPOUT_NATIONAL\",\"ja\",\"nej\",\"nej\",\"nej\",\"STUDIES_GY;AF_PROGRAMME;NONE\",\"AF_PROGRAMME\",\"STARTED_NATIONAL_PROGRAMME\",\"åter i studier\"" \
    "$(sed -n 2p "$NET/export.csv" | tr -d '\r')"
check "hers: 16-17, a woman, contacted and mapped, no plan, from nothing to upper-secondary studies, the introduction programme, back in studies" \
    "\"20${PUPIL2/-/}\",\"16-17\",\"kvinna\",\"DROPOUT_NATIONAL\",\"ja\",\"ja\",\"nej\",\"nej\",\"STUDIES_GY;NONE\",\"STUDIES_IM\",\"STARTED_INTRODUCTION_PROGRAMME\",\"åter i studier\"" \
    "$(sed -n 3p "$NET/export.csv" | tr -d '\r')"

bold "20. The web inboxes"
say "Every site that people work at has a web inbox in Swedish (soffa-web), started by"
say "soffa up; log in as demo with the password in $NET/web-passwords:"
awk '!/^#/ {printf "    %-15s %s\n", $1, $2}' "$NET/web-passwords"
if [ "$KEEP" = 1 ]; then
    say "The network stays up (SOFFA_DEMO_KEEP=1). Stop it with: $SOFFA down $NET"
    say "Every check held."
    exit 0
fi
say "(SOFFA_DEMO_KEEP=1 ./soffa.sh demo leaves them running to try.)"

bold "21. The network goes down"
"$SOFFA" down "$NET" | sed 's/^/  /'
say "Every check held."
