#!/usr/bin/env bash
# Runs a test on the suite's clock: the clock of Friday 27 November 2026,
# 10:00 in Stockholm, moving on at its normal pace from the moment the test
# starts.
#
#   tests/clock.sh COMMAND [ARGS...]
#
# The tests' fixtures and scripted histories carry dates of the 2026/27
# school year (an absence from 1 September 2026, consents to October 2027,
# pupils born 2008-2009), and the broker judges ages and how far back a date
# may lie on the day a message arrives. On the real clock the suite would
# begin to fail in March 2027. Every process of the test (broker, agents,
# web server, browser) inherits the same offset through libfaketime (Debian
# package faketime), so they agree with each other to the microsecond;
# monotonic clocks are left alone. SOFFA_TEST_CLOCK=real runs on the real
# clock instead.
set -u
if [ "${SOFFA_TEST_CLOCK:-}" = real ] || [ -n "${SOFFA_TEST_CLOCK_SET:-}" ]; then exec "$@"; fi
command -v faketime >/dev/null || {
    echo "tests/clock.sh: libfaketime is missing; install the Debian package faketime (./soffa.sh test does)" >&2
    exit 1
}
PIN=$(date -u -d "2026-11-27 09:00:00" +%s)
NOW=$(env -u LD_PRELOAD -u FAKETIME date -u +%s)
if [ "$NOW" -ge "$PIN" ]; then OFF="-$((NOW - PIN))"; else OFF="+$((PIN - NOW))"; fi
# faketime(1) keeps the clock's shared state alive while the test runs, so
# daemons started by a process that has since exited read the same offset.
export SOFFA_TEST_CLOCK_SET=1 FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
exec faketime -m -f "$OFF" "$@"
