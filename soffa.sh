#!/usr/bin/env bash
# soffa.sh: set-up, build, tests and demo in one place.
#
#   ./soffa.sh demo    install missing Debian packages, build, and play the demo:
#                      a network of agencies handles one young person end to end
#   ./soffa.sh test    install missing Debian packages, build, and run the whole
#                      test suite twice (a normal build and an ASan+UBSan build),
#                      then run each libFuzzer target for FUZZ_SECONDS (default 30)
#   ./soffa.sh build   install missing packages and build (build/)
#   ./soffa.sh deps    only install missing packages
#
# Packages are installed with apt-get only when one is missing. Run as root,
# or as a user with sudo.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)
PACKAGES=(gcc make cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
          liblmdb-dev lmdb-utils libcriterion-dev libsodium-dev libinih-dev libjansson-dev libxml2-utils
          libcsv-dev libcurl4-openssl-dev python3 python3-jsonschema faketime
          clang libclang-rt-14-dev libmicrohttpd-dev
          libsystemd-dev systemd scdoc man-db bash-completion git
          dpkg-dev debhelper fakeroot lintian
          chromium curl openssl iproute2    # the web inbox's tests: a real browser, TLS, a second host
          prometheus)                       # the metrics test: promtool and a real Prometheus server

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # Node.js and npm drive the browser test (tests/web). Debian's packages,
    # unless the machine has Node.js already (another packaging of it
    # conflicts with Debian's npm).
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing missing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# build DIR [cmake options...]
build() {
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$dir" -DSOFFA_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$JOBS"
}

# Builds the libFuzzer targets with clang and runs each for FUZZ_SECONDS
# against the seed corpus in tests/fuzz/corpus, JOBS targets at a time (each
# is one process on one core); any crash fails.
fuzz() {
    local secs=${FUZZ_SECONDS:-30} dir="$ROOT/build-fuzz" failed=0 passed=0
    local targets=(frame msg policy id terms csv ss12000 form session)
    say "fuzzing: build (build-fuzz/) and ${secs}s per target, $JOBS at a time"
    CC=clang build "$dir" -DSOFFA_FUZZ=ON >/dev/null
    local i t
    for ((i = 0; i < ${#targets[@]}; i += JOBS)); do
        local batch=("${targets[@]:i:JOBS}") works=()
        for t in "${batch[@]}"; do
            local work
            work=$(mktemp -d /tmp/soffa-fuzz-XXXXXX)
            works+=("$work")
            (cd "$work" && "$dir/fuzz_$t" "$work" "$ROOT/tests/fuzz/corpus/$t" -max_total_time="$secs" \
                -rss_limit_mb=2048 -print_final_stats=1 >"$work/log" 2>&1; echo $? >"$work/rc") &
        done
        wait
        local k
        for k in "${!batch[@]}"; do
            t=${batch[$k]}
            local work=${works[$k]}
            if [ "$(cat "$work/rc" 2>/dev/null)" = 0 ]; then
                printf '  fuzz_%-7s %s executions, no crash\n' "$t" "$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$')"
                passed=$((passed + 1))
            else
                echo "  fuzz_$t FOUND A CRASH:"
                grep -E 'ERROR|SUMMARY|runtime error|Test unit written|Base64' "$work/log" | sed 's/^/    /'
                failed=$((failed + 1))
            fi
            rm -rf "$work"
        done
    done
    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

run_tests() {
    local dir=$1
    (cd "$dir" && ctest --output-on-failure --timeout 600 -j"$JOBS")
}

case "${1:-help}" in
demo)
    deps
    say "building (build/)"
    build "$ROOT/build" >/dev/null
    say "the demo"
    bash "$ROOT/agents/demo.sh" "$ROOT/build"
    ;;
deps)
    deps
    ;;
build)
    deps
    build "$ROOT/build"
    ;;
test)
    deps
    say "normal build (build/)"
    build "$ROOT/build"
    say "test suite, normal build"
    run_tests "$ROOT/build"
    say "sanitizer build: AddressSanitizer + UndefinedBehaviorSanitizer (build-san/)"
    build "$ROOT/build-san" -DSOFFA_SANITIZE=ON
    say "test suite, sanitizer build"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_tests "$ROOT/build-san"
    say "all tests passed in both builds"
    fuzz
    ;;
fuzz)
    deps
    fuzz
    ;;
help | -h | --help)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    ;;
*)
    echo "soffa.sh: unknown command '$1' (try ./soffa.sh help)" >&2
    exit 2
    ;;
esac
