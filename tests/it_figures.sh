#!/usr/bin/env bash
# Integration tests for the key figures the municipalities report (issue 19
# item 5): youths in the KAA during a half-year and a month (not only the
# cases opened in it), the shares contacted, mapped and with a plan,
# declines, occupations, where they went at closure, age bands, signals and
# dropouts per school unit, split by sex with small counts suppressed; and
# the half-year export, one row per youth, with its refusals. A scripted
# history whose every figure is worked out by hand below; real broker and
# agents.
#
#   tests/it_figures.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_figures.sh BUILD_DIR}" && pwd)
SOFFA="$BUILD/soffa"
NET=$(mktemp -d /tmp/soffa-fig-XXXXXX)
. "$(dirname "${BASH_SOURCE[0]}")/itlib.sh"
trap '"$SOFFA" down "$NET" >/dev/null 2>&1; rm -rf "$NET"' EXIT
s() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@" >/dev/null 2>>"$NET/errors" || echo "command failed: $a $*" >>"$NET/errors"; }
q() { local a=$1; shift; "$SOFFA" --net "$NET" --agent "$a" "$@"; }

# born YYMMDD NNN: a made-up personnummer born 20YY (the check digit by Luhn);
# the last digit of NNN odd is a man, even a woman.
born() {
    local d="$1$2" sum=0 i v
    for i in 0 1 2 3 4 5 6 7 8; do
        v=$(( ${d:$i:1} * (i % 2 == 0 ? 2 : 1) ))
        sum=$(( sum + v / 10 + v % 10 ))
    done
    echo "${d:0:6}-${d:6:3}$(( (10 - sum % 10) % 10 ))"
}
canon() { echo "20$(echo "$1" | tr -d -)"; }   # 12 digits, as the export writes it

# The youths. pupil N (tests/itlib.sh) is born in March 2008: 18 all of
# the second half of 2026. Odd N a man, even N a woman.
for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do eval "P$n=\$(pupil $n)"; done
Y1=$(born 100210 101)     # a man, 16 in the second half of 2026
Y2=$(born 100420 202)     # a woman, 16
R1=20080314TF10           # a reserve number: sex unknown, born 2008-03-14
cid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
open_case() {   # open_case WHO N DATE [REASON]
    s kaa-1419 case open --pupil "$1" --hemkommun 1419 --case-id "$(cid "$2")" --occurred "$3" \
        --registration-reason "${4:-DROPOUT_NATIONAL}"
}
ev() {          # ev WHO N what ... (a case event on case N)
    local who=$1 n=$2 what=$3; shift 3
    s kaa-1419 case "$what" --pupil "$who" --hemkommun 1419 --case-id "$(cid "$n")" "$@"
}
reached() { ev "$1" "$2" contact --attempt-no 1 --channel PHONE --outcome REACHED --occurred "$3"; }
mapped() { ev "$1" "$2" map --mapped-on "$3" --occurred "$3"; }
plan() { ev "$1" "$2" plan --plan-id new --goal WORK --review-date 2027-01-15 --occurred "$3"; }
closed() { ev "$1" "$2" close --reason "$3" --occurred "$4"; }
left() {        # left WHO DATE: the school's dropout signal, unit 14150001
    s school-1415 signal enrolment --pupil "$1" --hemkommun 1419 --event LEFT --effective-date "$2" \
        --school-unit 14150001 --school-form GY --occurred "$2"
}

"$SOFFA" up "$NET" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
broker_takes_old_dates

# ---- The history of 2026 ------------------------------------------------------------
# Signals from the school's unit 14150001: LEFT for P3..P7 in early July;
# absence for P8 in August and P2 in September (the signal that reopens P2's case).
for n in 3 4 5 6 7; do eval "left \"\$P$n\" 2026-07-0$(( n - 2 ))"; done
absence() {     # absence WHO DATE: prints the message id
    q school-1415 signal absence --pupil "$1" --hemkommun 1419 --period-from 2026-08-01 --period-to 2026-08-20 \
        --unexcused-band SIGNIFICANT --school-unit 14150001 --occurred "$2" 2>>"$NET/errors" | awk '/message id/ {print $3}'
}
absence "$P8" 2026-08-25 >/dev/null
# P1: opened in May, across the half-year boundary; reached, mapped, a plan
# and no occupation in H1; at work from 1 August, closed (OTHER) 20 August.
open_case "$P1" 1 2026-05-10
ev "$P1" 1 occupation --as-of 2026-05-10 --occupation NONE --occurred 2026-05-10
reached "$P1" 1 2026-05-12
mapped "$P1" 1 2026-06-01
plan "$P1" 1 2026-06-15
ev "$P1" 1 occupation --as-of 2026-08-01 --occupation WORK --occurred 2026-08-01
closed "$P1" 1 OTHER 2026-08-20
# P2: a case in spring closed for a national programme; a new signal in
# September reopens it: reached and mapped, open at the end of the year.
open_case "$P2" 2 2026-03-01
ev "$P2" 2 contact --attempt-no 1 --channel LETTER --outcome NO_ANSWER --occurred 2026-03-03
closed "$P2" 2 STARTED_NATIONAL_PROGRAMME 2026-04-15
SIG=$(absence "$P2" 2026-09-01)
ev "$P2" 2 reopen --signal-id "$SIG" --occurred 2026-09-02
reached "$P2" 2 2026-09-05
mapped "$P2" 2 2026-09-10
# P3: reached, mapped, a plan, a work placement from 5 August still running
# when the case closed (COMPLETED) on 1 October.
open_case "$P3" 3 2026-07-05
reached "$P3" 3 2026-07-07
mapped "$P3" 3 2026-07-20
plan "$P3" 3 2026-08-01
ev "$P3" 3 measure-start --measure-type PRAKTIK --start 2026-08-05 --occurred 2026-08-05
closed "$P3" 3 COMPLETED 2026-10-01
# P4: declined contact; open.
open_case "$P4" 4 2026-07-06
ev "$P4" 4 contact --attempt-no 1 --channel PHONE --outcome DECLINED_CONTACT --occurred 2026-07-08
# P5: reached, emigrated in September.
open_case "$P5" 5 2026-07-10
reached "$P5" 5 2026-07-12
closed "$P5" 5 EMIGRATED 2026-09-15
# P6: reached, mapped, a plan, closed for the equivalent of a programme.
open_case "$P6" 6 2026-08-01
reached "$P6" 6 2026-08-03
mapped "$P6" 6 2026-08-10
plan "$P6" 6 2026-08-12
closed "$P6" 6 STARTED_EQUIVALENT 2026-09-20
# P7: reached, mapped, at Komvux; open.
open_case "$P7" 7 2026-08-02
reached "$P7" 7 2026-08-04
mapped "$P7" 7 2026-08-11
ev "$P7" 7 occupation --as-of 2026-08-15 --occupation STUDIES_KOMVUX --occurred 2026-08-15
# P8: not reached; open.
open_case "$P8" 8 2026-09-01
ev "$P8" 8 contact --attempt-no 1 --channel SMS --outcome NO_ANSWER --occurred 2026-09-02
# P9: reached; declined a study and careers guidance measure; open.
open_case "$P9" 9 2026-09-03
reached "$P9" 9 2026-09-05
ev "$P9" 9 measure-start --measure-type SYV --start 2026-09-10 --declined-by-youth true --occurred 2026-09-10
# P10: a week in June, closed for an introduction programme (H1 only).
open_case "$P10" 10 2026-06-20
closed "$P10" 10 STARTED_INTRODUCTION_PROGRAMME 2026-06-28
# P11..P14: opened and reached in July, all back in studies on 31 July.
for n in 11 12 13 14; do
    eval "p=\$P$n"
    open_case "$p" "$n" 2026-07-15
    reached "$p" "$n" 2026-07-16
    closed "$p" "$n" STARTED_NATIONAL_PROGRAMME 2026-07-31
done
# Y1 (never started upper secondary): reached and mapped in October. Y2, R1: open.
open_case "$Y1" 21 2026-10-01 NEVER_STARTED
reached "$Y1" 21 2026-10-03
mapped "$Y1" 21 2026-10-05
open_case "$Y2" 22 2026-10-02
s kaa-1419 case open --reserve-id "$R1" --hemkommun 1419 --case-id "$(cid 23)" --occurred 2026-10-10
expect "the scripted history was accepted in full" "" "$(cat "$NET/errors" 2>/dev/null)"

# ---- The second half of 2026, worked out by hand ---------------------------------
J=$(q audit stats --municipality 1419 --half-year 2026H2 --json)
# per PERIOD .a.b: that figure of that period, as compact JSON.
per() {
    echo "$J" | python3 -c 'import json, sys
p = [x for x in json.load(sys.stdin)["periods"] if x["period"] == sys.argv[1]][0]
for k in sys.argv[2].split(".")[1:]:
    p = p[k]
print(json.dumps(p, separators=(",", ":"), ensure_ascii=False))' "$1" "$2"
}
# In the KAA during H2: every case open on some day of it: P1 (opened in May),
# P2 (reopened), P3..P9, P11..P14, Y1, Y2, R1; not P10 (closed in June).
# 16: men P1 P3 P5 P7 P9 P11 P13 Y1 = 8, women P2 P4 P6 P8 P12 P14 Y2 = 7, R1 unknown.
expect "H2: youths in the KAA during the half-year, not only those opened in it" \
    '{"total":16,"women":7,"men":8,"unknown":null}' "$(per 2026H2 .in_kaa_during)"
# Open on 31 December: P2 P4 P7 P8 P9 Y1 Y2 R1 = 8 (men 3, women 4, unknown 1).
expect "H2: youths in the KAA at its end" '{"total":8,"women":null,"men":null,"unknown":null}' "$(per 2026H2 .in_kaa_at_end)"
# Reached by 31 December: P1 (in May) P2 P3 P5 P6 P7 P9 P11..P14 Y1 = 12 of 16;
# men P1 P3 P5 P7 P9 P11 P13 Y1 = 8, women P2 P6 P12 P14 = 4.
expect "H2: contacted, a share of the whole list" '{"total":12,"women":null,"men":8,"unknown":0,"share":0.75}' \
    "$(per 2026H2 .contacted)"
# Mapped: P1 (June) P2 P3 P6 P7 Y1 = 6 of 16: men 4, women 2.
expect "H2: mapped (case map)" '{"total":6,"women":null,"men":null,"unknown":0,"share":0.375}' "$(per 2026H2 .mapped)"
# A plan: P1 P3 P6 = 3: suppressed, and so is its share (it would tell the count).
expect "H2: with a plan, suppressed with its share" '{"total":null,"women":null,"men":null,"unknown":0,"share":null}' \
    "$(per 2026H2 .with_plan)"
# The window's figures beside them: a suppressed count's share is suppressed too.
expect "H2: no share of a suppressed count among the window's figures" "" \
    "$(python3 -c 'import json, sys
j = json.loads(sys.argv[1])
for k in ("contacted", "with_plan", "in_measure"):
    if j[k]["total"] is None and j[k]["share"] is not None: print(k, j[k])' "$J")"
# Declines in H2: P4 (contact) and P9 (a measure) = 2.
expect "H2: declines" '{"total":null,"women":null,"men":null,"unknown":0}' "$(per 2026H2 .declined)"
# Occupation on 31 December: P1 WORK, P7 STUDIES_KOMVUX, 14 none recorded
# (men P3 P5 P9 P11 P13 Y1 = 6, women P2 P4 P6 P8 P12 P14 Y2 = 7, R1).
expect "H2: occupation, work" '{"total":null,"women":0,"men":null,"unknown":0}' "$(per 2026H2 .occupation.WORK)"
expect "H2: occupation, Komvux" '{"total":null,"women":0,"men":null,"unknown":0}' "$(per 2026H2 .occupation.STUDIES_KOMVUX)"
expect "H2: occupation, none recorded" '{"total":14,"women":7,"men":6,"unknown":null}' "$(per 2026H2 .occupation.NOT_RECORDED)"
expect "H2: no one in a folk high school" '{"total":0,"women":0,"men":0,"unknown":0}' "$(per 2026H2 .occupation.FOLKHOGSKOLA)"
# Measures running in H2: P3's work placement; P9's declined measure does not count.
expect "H2: measures, work placement" '{"total":null,"women":0,"men":null,"unknown":0}' "$(per 2026H2 .measures.PRAKTIK)"
expect "H2: a declined measure is no measure" '{"total":0,"women":0,"men":0,"unknown":0}' "$(per 2026H2 .measures.SYV)"
# Closures in H2: back in studies P6 P11 P12 P13 P14 = 5 (3 women, 2 men);
# work P1 (OTHER, at work then); a measure P3 (COMPLETED, PRAKTIK running);
# moved P5 (EMIGRATED); none turned 20 or other.
expect "H2: where they went at closure" \
    '{"back_in_studies":{"total":5,"women":null,"men":null,"unknown":0},"work":{"total":null,"women":0,"men":null,"unknown":0},"measure":{"total":null,"women":0,"men":null,"unknown":0},"moved":{"total":null,"women":0,"men":null,"unknown":0},"turned_20":{"total":0,"women":0,"men":0,"unknown":0},"other":{"total":0,"women":0,"men":0,"unknown":0},"measure_by_type":{"PRAKTIK":{"total":null,"women":0,"men":null,"unknown":0}}}' \
    "$(per 2026H2 .closures)"
# Age on the first day in the KAA in H2: Y1 Y2 16; the other 14 (R1 born
# 2008-03-14 too) 18: men 7, women 6, R1.
expect "H2: age bands" \
    '{"16-17":{"total":null,"women":null,"men":null,"unknown":0},"18-19":{"total":14,"women":6,"men":7,"unknown":null},"other":{"total":0,"women":0,"men":0,"unknown":0}}' \
    "$(per 2026H2 .age)"
# Signals per school unit: 14150001 five LEFT (P3 P5 P7 men, P4 P6 women)
# and two absence reports (P8 and P2, women): 7 signals, 5 dropouts.
expect "H2: signals and dropouts per school unit" \
    '[{"school_unit":"14150001","signals":{"total":7,"women":null,"men":null,"unknown":0},"left":{"total":5,"women":null,"men":null,"unknown":0}}]' \
    "$(per 2026H2 .schools)"
expect "H2 has the half-year and its six months" "2026H2 2026-07 2026-08 2026-09 2026-10 2026-11 2026-12" \
    "$(echo "$J" | python3 -c 'import json, sys; print(" ".join(p["period"] for p in json.load(sys.stdin)["periods"]))')"
# July: P1 P3 P4 P5 P11..P14 = 8 (men P1 P3 P5 P11 P13 = 5, women 3); open on
# 31 July: P1 P3 P4 P5; four back in studies (suppressed).
expect "July: in the KAA during the month" '{"total":8,"women":null,"men":5,"unknown":0}' "$(per 2026-07 .in_kaa_during)"
expect "July: at its end" '{"total":null,"women":null,"men":null,"unknown":0}' "$(per 2026-07 .in_kaa_at_end)"
# September: P2 (reopened on the 2nd) P3 P4 P5 P6 P7 P8 P9 = 8; reached by
# the 30th: P2 P3 P5 P6 P7 P9 = 6 of 8.
expect "September: in the KAA, the reopened case counted" '{"total":8,"women":null,"men":null,"unknown":0}' \
    "$(per 2026-09 .in_kaa_during)"
expect "September: contacted" '{"total":6,"women":null,"men":null,"unknown":0,"share":0.75}' "$(per 2026-09 .contacted)"

# Youths in the KAA on a given day: a period ending there. On 10 September:
# P2 (reopened on the 2nd) P3 P4 P5 (closed the 15th) P6 (the 20th) P7 P8 P9.
J=$(q audit stats --municipality 1419 --from 2026-07-01 --to 2026-09-10 --json)
expect "the last month is clipped to --to" "2026-09-01..2026-09-10" "$(per 2026-09 .from | tr -d '"')..$(per 2026-09 .to | tr -d '"')"
expect "youths in the KAA on 10 September" '{"total":8,"women":null,"men":null,"unknown":0}' "$(per 2026-09 .in_kaa_at_end)"

# ---- The first half: the case across the boundary counts in both ------------------
J=$(q audit stats --municipality 1419 --half-year 2026H1 --json)
# P1 (May, open on 30 June), P2 (March-April), P10 (June): 3.
expect "H1: in the KAA (3: suppressed)" '{"total":null,"women":null,"men":null,"unknown":0}' "$(per 2026H1 .in_kaa_during)"
expect "H1: back in studies P2 and P10" '{"total":null,"women":null,"men":0,"unknown":0}' "$(per 2026H1 .closures.back_in_studies)"
expect "H1: nobody in the KAA in January" '{"total":0,"women":0,"men":0,"unknown":0}' "$(per 2026-01 .in_kaa_during)"

# ---- The forms for people and spreadsheets carry them too ---------------------------
T=$(q audit stats --municipality 1419 --half-year 2026H2)
grep -q '2026H2   unga i KAA under perioden  *16       7       8      <5' <<<"$T" \
    && ok "the table has the Swedish labels and an okänt column" || bad "table" "$T"
grep -q '2026H2   kartlagda  *6      <5      <5       0   andel 0.375' <<<"$T" \
    && ok "the table gives the share mapped" || bad "table share" "$(echo "$T" | grep kartlagda)"
C=$(q audit stats --municipality 1419 --half-year 2026H2 --csv)
grep -qx 'period 2026H2,in_kaa_during,16,7,8' <<<"$C" && ok "CSV keeps its five columns, new rows added" || bad "CSV" "$C"
grep -qx 'period 2026H2,school.14150001.left,5,<5,<5' <<<"$C" && ok "CSV: dropouts per school unit" || bad "CSV school" "$C"
grep -qx 'signals,absence_reported,<5,<5,0' <<<"$C" && ok "CSV: the existing rows unchanged" || bad "CSV existing" "$(echo "$C" | head -5)"
q audit stats --municipality 1419 --half-year 2026H2 --html "$NET/r.html" >/dev/null
xmllint --noout "$NET/r.html" 2>"$NET/xml.err" && ok "the HTML report with the period table is well-formed" \
    || bad "HTML" "$(cat "$NET/xml.err")"
grep -q '<tr><td>2026H2</td><td>unga i KAA under perioden</td><td class="n">16</td><td class="n">7</td><td class="n">8</td><td class="n">&lt;5</td></tr>' \
    "$NET/r.html" && ok "HTML period row" || bad "HTML period row"

# ---- The export of H2, column by column ---------------------------------------------
out=$(q audit stats --municipality 1419 --half-year 2026H2 --export "$NET/h2.csv" 2>&1); rc=$?
case "$rc:$out" in 0:*"wrote $NET/h2.csv: 16 youth(s)"*) ok "the export of H2: 16 rows";; *) bad "export" "$out";; esac
expect "the export is its owner's only" "600" "$(stat -c %a "$NET/h2.csv")"
E=$(tr -d '\r' <"$NET/h2.csv")
expect "the header" '"identitetsnummer","åldersgrupp","kön","registreringsorsak","kontaktad","kartlagd","plan","avböjt","sysselsättning","insatser","avslutsorsak","efter_avslut"' \
    "$(echo "$E" | head -n 1)"
expect "rows end in CRLF" 17 "$(grep -c $'\r$' "$NET/h2.csv")"
row() { echo "$E" | grep "^\"$1\","; }
# P1: across the boundary: contacted, mapped and a plan in H1 count; NONE on
# 1 July, WORK from August; closed OTHER, at work.
expect "P1: a case from H1, closed at work" \
    "\"$(canon "$P1")\",\"18-19\",\"man\",\"DROPOUT_NATIONAL\",\"ja\",\"ja\",\"ja\",\"nej\",\"WORK;NONE\",\"\",\"OTHER\",\"arbete\"" \
    "$(row "$(canon "$P1")")"
expect "P2: the reopened case, open at the end" \
    "\"$(canon "$P2")\",\"18-19\",\"kvinna\",\"DROPOUT_NATIONAL\",\"ja\",\"ja\",\"nej\",\"nej\",\"\",\"\",\"\",\"\"" \
    "$(row "$(canon "$P2")")"
expect "P3: closed with a work placement running" \
    "\"$(canon "$P3")\",\"18-19\",\"man\",\"DROPOUT_NATIONAL\",\"ja\",\"ja\",\"ja\",\"nej\",\"\",\"PRAKTIK\",\"COMPLETED\",\"insats PRAKTIK\"" \
    "$(row "$(canon "$P3")")"
expect "P4: declined contact" \
    "\"$(canon "$P4")\",\"18-19\",\"kvinna\",\"DROPOUT_NATIONAL\",\"nej\",\"nej\",\"nej\",\"ja\",\"\",\"\",\"\",\"\"" \
    "$(row "$(canon "$P4")")"
expect "P5: moved abroad" \
    "\"$(canon "$P5")\",\"18-19\",\"man\",\"DROPOUT_NATIONAL\",\"ja\",\"nej\",\"nej\",\"nej\",\"\",\"\",\"EMIGRATED\",\"flyttat\"" \
    "$(row "$(canon "$P5")")"
expect "P7: at Komvux" \
    "\"$(canon "$P7")\",\"18-19\",\"man\",\"DROPOUT_NATIONAL\",\"ja\",\"ja\",\"nej\",\"nej\",\"STUDIES_KOMVUX\",\"\",\"\",\"\"" \
    "$(row "$(canon "$P7")")"
expect "P9: declined a measure, which is no measure" \
    "\"$(canon "$P9")\",\"18-19\",\"man\",\"DROPOUT_NATIONAL\",\"ja\",\"nej\",\"nej\",\"ja\",\"\",\"\",\"\",\"\"" \
    "$(row "$(canon "$P9")")"
expect "P12: back in studies" \
    "\"$(canon "$P12")\",\"18-19\",\"kvinna\",\"DROPOUT_NATIONAL\",\"ja\",\"nej\",\"nej\",\"nej\",\"\",\"\",\"STARTED_NATIONAL_PROGRAMME\",\"åter i studier\"" \
    "$(row "$(canon "$P12")")"
expect "Y1: 16, never started" \
    "\"$(canon "$Y1")\",\"16-17\",\"man\",\"NEVER_STARTED\",\"ja\",\"ja\",\"nej\",\"nej\",\"\",\"\",\"\",\"\"" \
    "$(row "$(canon "$Y1")")"
expect "R1: a reserve number, sex unknown" \
    "\"$R1\",\"18-19\",\"okänt\",\"DROPOUT_NATIONAL\",\"nej\",\"nej\",\"nej\",\"nej\",\"\",\"\",\"\",\"\"" \
    "$(row "$R1")"
expect "P10 (June only) is not in the export of H2" "" "$(row "$(canon "$P10")")"
q audit stats --municipality 1419 --half-year 2026H1 --export "$NET/h1.csv" >/dev/null
expect "the export of H1: P1, P2, P10" "$(printf '%s\n' "$(canon "$P1")" "$(canon "$P10")" "$(canon "$P2")" | sort | paste -sd' ')" \
    "$(tail -n +2 "$NET/h1.csv" | cut -d, -f1 | tr -d '"' | sort | paste -sd' ')"
# P2 was 17 when the spring case opened (born 3 March 2008).
expect "H1: P2's spring case, back in studies" \
    "\"$(canon "$P2")\",\"16-17\",\"kvinna\",\"DROPOUT_NATIONAL\",\"nej\",\"nej\",\"nej\",\"nej\",\"\",\"\",\"STARTED_NATIONAL_PROGRAMME\",\"åter i studier\"" \
    "$(tr -d '\r' <"$NET/h1.csv" | grep "^\"$(canon "$P2")\",")"

# ---- Refusals -----------------------------------------------------------------------
out=$(q audit-1415 stats --municipality 1419 --half-year 2026H2 --export "$NET/x.csv" 2>&1); rc=$?
case "$rc:$out" in 1:*"outside audit-1415's scope"*"[NOT_AUTHORISED]"*) ok "an auditor of another municipality gets no export";;
    *) bad "export outside the scope" "$rc $out";; esac
[ ! -e "$NET/x.csv" ] && ok "... and no file" || bad "a refused export left a file"
out=$(q kaa-1419 stats --municipality 1419 --half-year 2026H2 --export "$NET/y.csv" 2>&1); rc=$?
case "$rc:$out" in 1:*"[NOT_AUTHORISED]"*) ok "a KAA agent is no auditor: refused";; *) bad "export by a KAA agent" "$rc $out";; esac
out=$(q audit stats --municipality 1419 --half-year 2026H2 --export "$NET/h2.csv" 2>&1); rc=$?
case "$rc:$out" in 1:*"never overwrites"*) ok "the export never overwrites a file";; *) bad "overwrite" "$rc $out";; esac
out=$(q audit stats --municipality 1419 --from 2026-07-01 --to 2026-12-31 --export "$NET/z.csv" 2>&1); rc=$?
case "$rc:$out" in 2:*"per half-year"*) ok "an export needs --half-year";; *) bad "export without half-year" "$rc $out";; esac
out=$(q audit stats --municipality 1419 --half-year 2026H2 --from 2026-01-01 --export "$NET/z.csv" 2>&1); rc=$?
case "$rc:$out" in 2:*"not both"*) ok "--half-year with --from is refused, not a silently changed period";; *) bad "half-year and from" "$rc $out";; esac
[ ! -e "$NET/z.csv" ] && ok "... and no file" || bad "a refused export left a file"
out=$(q audit stats --municipality 1419 --half-year 2026H3 2>&1); rc=$?
case "$rc:$out" in 2:*"2026H1"*) ok "a malformed half-year is refused with an example";; *) bad "half-year" "$rc $out";; esac
LOG=$(q audit access-log --json)
# Two exports were made (H2, H1): each read is in Tjörn's log with its filter;
# the refused ones, and the one that would have overwritten a file (the file
# is made before anything is read), read nothing.
expect "the exports are in Tjörn's access log, with their filter; nothing read for a refused one" 2 \
    "$(grep '"mailbox":"audit/access/1419"' <<<"$LOG" | grep '"state":"completed"' | grep -c '"request":"export","filter":"mailbox kaa-journal/1419; "')"

# ---- A mapping is a case event like the others ------------------------------------------
out=$(q kaa-1419 case map --pupil "$P8" --hemkommun 1419 --case-id "$(cid 99)" --mapped-on 2026-11-01 2>&1); rc=$?
case "$rc:$out" in 1:*"open the case first"*"[NOT_FOUND]"*) ok "a mapping on no case is refused";; *) bad "map no case" "$rc $out";; esac
out=$(q kaa-1419 case map --pupil "$P5" --hemkommun 1419 --case-id "$(cid 5)" --mapped-on 2026-11-01 2>&1); rc=$?
case "$rc:$out" in 1:*"[NOT_OPEN]"*) ok "a mapping on a closed case is refused";; *) bad "map closed" "$rc $out";; esac
out=$(q school-1415 send case_mapped --pupil "$P8" --hemkommun 1419 --case-id "$(cid 8)" --mapped-on 2026-11-01 2>&1); rc=$?
case "$rc:$out" in 1:*"[NOT_AUTHORISED]"*|1:*"[POLICY]"*) ok "a school may not send a mapping";; *) bad "school map" "$rc $out";; esac

finish_report
