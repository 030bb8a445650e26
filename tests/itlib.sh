# Helpers shared by the integration scripts (tests/it_*.sh). Source it after
# setting SOFFA (the soffa binary) and NET (the network directory).

PASS=0
FAIL=0
# An absence period of this term, relative to today: the broker takes dates
# at most [policy] event_max_days (183) back.
ABS_FROM=$(date -d '-60 days' +%F)
ABS_TO=$(date -d '-7 days' +%F)
ok() { PASS=$((PASS + 1)); echo "[PASS] $1"; }
bad() { FAIL=$((FAIL + 1)); echo "[FAIL] $1"; [ $# -gt 1 ] && printf '       %s\n' "${@:2}"; }
expect() {   # expect NAME EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $2" "got:      $3"; fi
}
# Prints the closing line and returns the outcome.
finish_report() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
# The pid soffa up (or a restart) recorded for NAME.
pid_of() { awk -v n="$1" '$1 == n {print $2}' "$NET/pids"; }
# Messages waiting in agent NAME's outbox; messages in its inbox.
outbox() { "$SOFFA" --net "$NET" --agent "$1" --json status --sample 0 2>/dev/null | grep -o '"outbox":[0-9]*' | cut -d: -f2; }
count() { "$SOFFA" --net "$NET" --agent "$1" --json inbox --limit 1000000 | grep -c '"seq"' || true; }
# pupil N: a made-up, valid personnummer born in 2008 (YYMMDD-NNNC). Its
# birth number ends in N % 10, so odd N is a man and even N a woman.
pupil() {
    local d sum=0 i v
    d=$(printf '0803%02d%03d' $(( $1 % 28 + 1 )) $(( $1 % 900 + 100 )))
    for i in 0 1 2 3 4 5 6 7 8; do
        v=$(( ${d:$i:1} * (i % 2 == 0 ? 2 : 1) ))
        sum=$(( sum + v / 10 + v % 10 ))
    done
    echo "${d:0:6}-${d:6:3}$(( (10 - sum % 10) % 10 ))"
}
# A story pinned to fixed dates (fixtures of autumn 2026): restarts the
# network's broker so that it takes dates up to ten years back ([policy]
# event_max_days; the default, 183 days, is tested in test_law) and waits
# until the school, KAA, social services and AF agents are back. Needs BUILD.
broker_takes_old_dates() {
    local bp a
    bp=$(pid_of broker)
    kill -TERM "$bp"
    for _ in $(seq 100); do kill -0 "$bp" 2>/dev/null || break; sleep 0.05; done
    printf '\n[policy]\nevent_max_days = 3660\n' >> "$NET/broker/broker.ini"
    setsid "$BUILD/soffa-broker" --config "$NET/broker/broker.ini" >>"$NET/broker/broker.log" 2>&1 </dev/null &
    sed -i "s/^broker .*/broker $!/" "$NET/pids"
    for a in school-1415 kaa-1419 af-1419 social-1419; do
        for _ in $(seq 100); do
            "$SOFFA" --net "$NET" --agent "$a" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break
            sleep 0.1
        done
    done
}
