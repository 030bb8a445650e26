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
    "$SOFFA" --net "$NET" --agent "$1" --json inbox | grep -o '"type":"[a-z_]*"' | cut -d'"' -f4 | tr '\n' ' ' | sed 's/ $//'
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
BORN_YY=$(printf '%02d' $(( ($(date +%Y) - 18) % 100 )))
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

bold "13. The web inboxes"
say "Every site that people work at has a web inbox in Swedish (soffa-web), started by"
say "soffa up; log in as demo with the password in $NET/web-passwords:"
awk '!/^#/ {printf "    %-12s %s\n", $1, $2}' "$NET/web-passwords"
if [ "$KEEP" = 1 ]; then
    say "The network stays up (SOFFA_DEMO_KEEP=1). Stop it with: $SOFFA down $NET"
    say "Every check held."
    exit 0
fi
say "(SOFFA_DEMO_KEEP=1 ./soffa.sh demo leaves them running to try.)"

bold "14. The network goes down"
"$SOFFA" down "$NET" | sed 's/^/  /'
say "Every check held."
