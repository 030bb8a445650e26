#!/usr/bin/env bash
# Installation and packaging, as an operator meets them:
#  - `cmake --install` into a staging root (DESTDIR): every file in place,
#    --version, man pages that render;
#  - a broker and two agents started from the installed programs with the
#    installed example configuration (paths adjusted), exchanging a message;
#  - the systemd units: `systemd-analyze verify` and `security`;
#  - bash completion offers every command;
#  - the Debian package built from a copy of the tree (dpkg-buildpackage),
#    checked with lintian, and installed, removed and purged in a dpkg root
#    of its own (maintainer scripts included), never on this machine.
#
#   tests/it_package.sh BUILD_DIR SOURCE_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: tests/it_package.sh BUILD_DIR SOURCE_DIR}" && pwd)
SRC=$(cd "${2:?usage: tests/it_package.sh BUILD_DIR SOURCE_DIR}" && pwd)
T=$(mktemp -d /tmp/soffa-pkg-XXXXXX)
. "$SRC/tests/itlib.sh"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
VERSION=$(cache CMAKE_PROJECT_VERSION)
PREFIX=$(cache CMAKE_INSTALL_PREFIX)

# ---- it_50: an install into a staging root ----
ROOT="$T/root"
if DESTDIR="$ROOT" cmake --install "$BUILD" >"$T/install.log" 2>&1; then ok "it_50 cmake --install into a staging root"; else bad "it_50 cmake --install" "$(tail -5 "$T/install.log")"; fi
# Where each file went, from the install manifest.
at() { grep -m1 -- "$1\$" "$BUILD/install_manifest.txt"; }
F0=$FAIL
for f in /bin/soffa /bin/soffa-broker /bin/soffa-agent /bin/soffa-web /bin/soffa-bench /man8/soffa-web.8 /man1/soffa.1 /man1/soffa-bench.1 \
    /man8/soffa-broker.8 /man8/soffa-agent.8 /man5/soffa-broker.ini.5 /man5/soffa-agent.ini.5 /soffa/broker.ini \
    /soffa/agent.ini.example /system/soffa-broker.service /system/soffa-agent@.service /sysusers.d/soffa.conf \
    /tmpfiles.d/soffa.conf /share/soffa/kommuner.csv /completions/soffa /doc/soffa/README.md; do
    p=$(at "$f")
    [ -n "$p" ] && [ -f "$ROOT$p" ] || bad "it_50 installed: *$f" "not in $BUILD/install_manifest.txt or not in $ROOT"
done
[ "$FAIL" = "$F0" ] && ok "it_50 programs, man pages, configuration, units, sysusers and tmpfiles snippets, kommuner.csv, completion installed"
BIN="$ROOT$(dirname "$(at /bin/soffa)")"
ETC="$ROOT$(dirname "$(at /soffa/broker.ini)")"
F0=$FAIL
for prog in soffa soffa-broker soffa-agent soffa-web soffa-bench; do
    out=$("$BIN/$prog" --version 2>&1); rc=$?
    case "$rc:$out" in "0:$prog $VERSION"*) ;; *) bad "it_50 $prog --version" "$rc $out";; esac
    out=$("$BIN/$prog" --help 2>&1); rc=$?
    case "$rc:$out" in 0:*usage:*) ;; *) bad "it_50 $prog --help" "$rc $out";; esac
done
[ "$FAIL" = "$F0" ] && ok "it_50 every program answers --version ($("$BIN/soffa" --version)) and --help"
F0=$FAIL
for page in $(grep '/man[158]/' "$BUILD/install_manifest.txt"); do
    warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$ROOT$page" 2>&1 >/dev/null)
    [ -z "$warn" ] || bad "it_50 $(basename "$page") renders without warnings" "$warn"
    LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$ROOT$page" 2>/dev/null | grep -q '^NAME' || bad "it_50 $(basename "$page") has a NAME section"
done
[ "$FAIL" = "$F0" ] && ok "it_50 the six man pages render without warnings"

# ---- it_51: a broker and two agents from the installed programs and example configuration ----
RUN="$T/run"
mkdir -m 700 "$RUN"
(cd "$RUN" && for k in broker kaa-1419 school-1415; do "$BIN/soffa" keygen "$k" >/dev/null || exit 1; done) \
    || bad "it_51 soffa keygen"
"$BIN/soffa" masterkey new "$RUN/master.key" >/dev/null || bad "it_51 soffa masterkey new"
PORT=$((20000 + RANDOM % 20000))
# The example as installed, with this test's endpoint, data directory and keys.
sed -e "s|^endpoint = .*|endpoint = tcp://127.0.0.1:$PORT|" -e "s|^data_dir = .*|data_dir = $RUN/broker-data|" \
    -e '/^\[agent school-1415\]/,/^$/ s|^public_key = .*|public_key = school-1415.pub|' \
    -e '/^\[agent kaa-1419\]/,/^$/ s|^public_key = .*|public_key = kaa-1419.pub|' \
    "$ETC/broker.ini" > "$RUN/broker.ini"
for a in kaa-1419 school-1415; do
    sed -e "s|^name = .*|name = $a|" -e "s|^broker = .*|broker = tcp://127.0.0.1:$PORT|" \
        -e "s|^key = .*|key = $a.key|" -e "s|^data_dir = .*|data_dir = $RUN/$a|" -e 's|^heartbeat_ms = .*|heartbeat_ms = 500|' \
        "$ETC/agent.ini.example" > "$RUN/agent-$a.ini"
done
expect "it_51 the adjusted example broker.ini checks" 0 "$("$BIN/soffa-broker" --config "$RUN/broker.ini" --check >/dev/null 2>&1; echo $?)"
expect "it_51 the adjusted agent.ini.example checks" 0 "$("$BIN/soffa-agent" --config "$RUN/agent-kaa-1419.ini" --check >/dev/null 2>&1; echo $?)"
setsid "$BIN/soffa-broker" --config "$RUN/broker.ini" >"$RUN/broker.log" 2>&1 </dev/null &
PIDS+=($!)
BPID=$!
for a in kaa-1419 school-1415; do
    setsid "$BIN/soffa-agent" --config "$RUN/agent-$a.ini" >"$RUN/$a.log" 2>&1 </dev/null &
    PIDS+=($!)
done
S="$BIN/soffa"
for a in kaa-1419 school-1415; do
    for _ in $(seq 100); do "$S" --socket "$RUN/$a/control.sock" --json status --sample 0 2>/dev/null | grep -q '"connected":true' && break; sleep 0.1; done
done
out=$("$S" --socket "$RUN/school-1415/control.sock" signal absence --pupil "$(pupil 7)" --hemkommun 1419 \
    --period-from ${ABS_FROM} --period-to ${ABS_TO} --unexcused-band SIGNIFICANT --school-unit 12345678 2>&1)
case "$out" in "accepted: signal absence -> kaa/1419"*) ok "it_51 the installed school agent's signal is accepted";; *) bad "it_51 signal" "$out" "$(tail -3 "$RUN/broker.log")";; esac
for _ in $(seq 50); do "$S" --socket "$RUN/kaa-1419/control.sock" --json inbox | grep -q '"type":"absence_reported"' && break; sleep 0.1; done
"$S" --socket "$RUN/kaa-1419/control.sock" --json inbox | grep -q '"type":"absence_reported"' \
    && ok "it_51 ... and reaches the installed KAA agent" || bad "it_51 delivery" "$("$S" --socket "$RUN/kaa-1419/control.sock" inbox 2>&1)"
out=$("$S" --socket "$RUN/kaa-1419/control.sock" status 2>&1); rc=$?
case "$rc:$out" in 0:*"health: ok") ok "it_51 soffa status: health ok, exit 0";; *) bad "it_51 status" "$rc $out";; esac
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
rcs=""
for p in "${PIDS[@]}"; do wait "$p"; rcs="$rcs$?"; done
PIDS=()
expect "it_51 broker and agents stop cleanly on SIGTERM" 000 "$rcs"

# ---- it_52: the systemd units ----
# The units name the installed paths (and `man` must find their pages), so
# they are checked in a private mount namespace with the staging root's
# prefix mounted where it will be installed.
UNITDIR="$ROOT$(dirname "$(at /system/soffa-broker.service)")"
grep -q "^ExecStart=$PREFIX/bin/soffa-agent --config .*/soffa/agent-%i.ini$" "$UNITDIR/soffa-agent@.service" \
    && ok "it_52 soffa-agent@NAME runs the site's agent-NAME.ini" || bad "it_52 agent instance config" "$(grep ExecStart "$UNITDIR/soffa-agent@.service")"
F0=$FAIL
for u in soffa-broker.service soffa-agent@.service; do
    for d in Type=notify WatchdogSec= "ExecReload=/bin/kill -HUP \$MAINPID" ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
        NoNewPrivileges=yes UMask=0077 StateDirectory=soffa ConfigurationDirectory=soffa "CapabilityBoundingSet=$" \
        "SystemCallFilter=@system-service" User=soffa; do
        grep -q "^$d" "$UNITDIR/$u" || bad "it_52 $u has $d"
    done
done
[ "$FAIL" = "$F0" ] && ok "it_52 both units: Type=notify, WatchdogSec, ExecReload (SIGHUP), the requested hardening, User=soffa"
if [ "$PREFIX" != /usr ] && [ -d "$PREFIX" ] && [ "$(id -u)" = 0 ]; then
    cp "$UNITDIR/soffa-agent@.service" "$T/soffa-agent@kaa-1419.service"
    unshare -m --propagation private bash -c "mount --bind '$ROOT$PREFIX' '$PREFIX' || exit 99
        for u in '$PREFIX/lib/systemd/system/soffa-broker.service' '$PREFIX/lib/systemd/system/soffa-agent@.service' \
                 '$T/soffa-agent@kaa-1419.service'; do
            echo \"== \$(basename \$u)\"
            systemd-analyze verify \"\$u\" 2>&1 && echo 'verify: ok'
            systemd-analyze security --offline=true \"\$u\" 2>&1 | grep 'Overall exposure'
        done" > "$T/units.out" 2>&1
    for u in soffa-broker.service soffa-agent@.service soffa-agent@kaa-1419.service; do
        sed -n "/^== $u\$/,/^==/p" "$T/units.out" | grep -q '^verify: ok$' \
            && ok "it_52 systemd-analyze verify $u" || bad "it_52 systemd-analyze verify $u" "$(cat "$T/units.out")"
    done
    for u in soffa-broker.service soffa-agent@kaa-1419.service; do
        score=$(sed -n "s/.*Overall exposure level for $u: \([0-9.]*\).*/\1/p" "$T/units.out")
        if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
            ok "it_52 systemd-analyze security $u: $score"
        else
            bad "it_52 systemd-analyze security $u: at most 2.0" "$(cat "$T/units.out")"
        fi
    done
else
    bad "it_52 systemd-analyze needs root and a build whose prefix is not /usr (a private mount namespace puts the staged prefix in place)" \
        "prefix $PREFIX, uid $(id -u)"
fi

# ---- it_53: bash completion ----
COMP=$(bash -c '
    . /usr/share/bash-completion/bash_completion
    . "$1"
    comp() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _soffa; echo "${COMPREPLY[*]}"; }
    echo "commands: $(comp soffa "")"
    echo "ba: $(comp soffa ba)"
    echo "status: $(comp soffa status --)"
    echo "signal: $(comp soffa --socket /x signal "")"
' _ "$ROOT$(at /completions/soffa)" 2>&1)
missing=""
for c in $("$BIN/soffa" --help | awk '/^  [a-z]/ {print $1}' | sort -u); do
    grep -q "^commands: .*\b$c\b" <<<"$COMP" || missing="$missing $c"
done
expect "it_53 completion offers every command soffa --help lists" "" "$missing"
case "$COMP" in *"ba: backup"*"status: --sample --json --help"*"signal: enrolment absence at-risk"*) ok "it_53 ... and completes commands, options and kinds";; *) bad "it_53 completion" "$COMP";; esac

# ---- it_54: the Debian package ----
PKG="$T/deb/soffa-$VERSION"
mkdir -p "$PKG"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SRC" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -C "$PKG" -xf -
    REV=$(git -C "$SRC" rev-parse --short=7 HEAD)
else
    tar -C "$SRC" --exclude='./build*' --exclude='./obj-*' -cf - . | tar -C "$PKG" -xf -
    REV=""
fi
expect "it_54 debian/changelog carries the project's version" "$VERSION" "$(cd "$PKG" && dpkg-parsechangelog -S Version)"
if (cd "$PKG" && SOFFA_GIT_REVISION="$REV" dpkg-buildpackage -b -us -uc) >"$T/dpkg-buildpackage.log" 2>&1; then
    ok "it_54 dpkg-buildpackage builds the package"
else
    bad "it_54 dpkg-buildpackage" "$(tail -20 "$T/dpkg-buildpackage.log")"
fi
DEB=$(ls "$T"/deb/soffa_"$VERSION"_*.deb 2>/dev/null | head -1)
if [ -z "$DEB" ]; then
    bad "it_54 no .deb was built"
    finish_report
    exit
fi
expect "it_54 conffiles: the example configuration" "/etc/soffa/agent.ini.example /etc/soffa/broker.ini" \
    "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles | sort | tr '\n' ' ' | sed 's/ $//')"
FILES=$(dpkg-deb -c "$DEB" | awk '{print $6}')
F0=$FAIL
for f in ./usr/bin/soffa ./usr/bin/soffa-broker ./usr/bin/soffa-agent ./usr/bin/soffa-web ./usr/bin/soffa-bench ./usr/share/man/man8/soffa-web.8.gz \
    ./lib/systemd/system/soffa-broker.service ./lib/systemd/system/soffa-agent@.service ./usr/lib/sysusers.d/soffa.conf \
    ./usr/lib/tmpfiles.d/soffa.conf ./usr/share/man/man8/soffa-broker.8.gz ./usr/share/man/man5/soffa-agent.ini.5.gz \
    ./usr/share/bash-completion/completions/soffa ./usr/share/soffa/kommuner.csv ./usr/share/doc/soffa/copyright; do
    grep -qx -- "$f" <<<"$FILES" || bad "it_54 the package holds $f"
done
[ "$FAIL" = "$F0" ] && ok "it_54 the package holds the programs, units, snippets, man pages, completion and table"
POSTINST=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./postinst)
case "$POSTINST" in *"systemd-sysusers"*"soffa.conf"*"systemd-tmpfiles"*"--create soffa.conf"*) ok "it_54 postinst makes the user before the state directory that needs it";; *) bad "it_54 postinst order" "$POSTINST";; esac
LINT=$(lintian --fail-on error,warning "$DEB" 2>&1); rc=$?
echo "$LINT" | sed 's/^/       lintian: /'
expect "it_54 lintian: no error and no warning" 0 "$rc"

# Installed, removed and purged in a dpkg root of its own: the maintainer
# scripts run for real (systemd-sysusers and systemd-tmpfiles with --root).
if [ "$(id -u)" = 0 ]; then
    R="$T/dpkgroot"
    mkdir -p "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/info" "$R/etc"
    touch "$R/var/lib/dpkg/status"
    d() { dpkg --root="$R" --force-script-chrootless --force-depends "$@" >>"$T/dpkg.log" 2>&1; }
    d -i "$DEB" && ok "it_54 the package installs (its maintainer scripts ran)" || bad "it_54 dpkg -i" "$(tail -5 "$T/dpkg.log")"
    PW=$(grep '^soffa:' "$R/etc/passwd")
    case "$PW" in soffa:x:*:*:*:/var/lib/soffa:/usr/sbin/nologin) ok "it_54 the system user soffa exists, home /var/lib/soffa, no login";; *) bad "it_54 user soffa" "$PW";; esac
    expect "it_54 /var/lib/soffa is the soffa user's, 0700" "$(cut -d: -f3 <<<"$PW") 700" "$(stat -c '%u %a' "$R/var/lib/soffa" 2>&1)"
    out=$("$R/usr/bin/soffa" --version 2>&1)
    case "$out" in "soffa $VERSION (git $REV"*|"soffa $VERSION") ok "it_54 the packaged soffa runs: $out";; *) bad "it_54 packaged --version" "$out";; esac
    echo "; changed by the operator" >> "$R/etc/soffa/broker.ini"
    touch "$R/var/lib/soffa/history-stays"
    d -r soffa && ok "it_54 the package is removed" || bad "it_54 dpkg -r" "$(tail -5 "$T/dpkg.log")"
    [ ! -e "$R/usr/bin/soffa-broker" ] && grep -q "changed by the operator" "$R/etc/soffa/broker.ini" \
        && ok "it_54 ... the programs go, the operator's configuration stays" || bad "it_54 remove" "$(ls -R "$R/etc/soffa" "$R/usr/bin" 2>&1)"
    d -P soffa && ok "it_54 the package is purged" || bad "it_54 dpkg -P" "$(tail -5 "$T/dpkg.log")"
    [ ! -e "$R/etc/soffa/broker.ini" ] && [ -e "$R/var/lib/soffa/history-stays" ] \
        && ok "it_54 ... purge removes the configuration, never the stored history" || bad "it_54 purge" "$(ls -R "$R/etc" "$R/var/lib/soffa" 2>&1)"
else
    bad "it_54 installing into a dpkg root needs root" "run the suite as root, or as a user with sudo"
fi

finish_report
