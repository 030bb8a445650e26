#!/usr/bin/env bash
# The web inbox in a real browser: Debian's Chromium (headless), driven by
# playwright-core and checked by axe-core, against a real broker, agents and
# soffa-web processes (soffa up).
#
#   tests/web/run.sh BUILD_DIR
#
# Installs the npm packages from the committed package-lock.json with
# `npm ci` into tests/web/node_modules (never a browser download). Writes
# screenshots to BUILD_DIR/web-artifacts/. Prints one line per check and a
# closing "N passed, N failed" line.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "${1:?usage: tests/web/run.sh BUILD_DIR}" && pwd)
for need in /usr/bin/chromium node npm; do
    command -v "$need" >/dev/null || { echo "[FAIL] $need is missing (./soffa.sh deps installs it)"; echo "0 passed, 1 failed"; exit 1; }
done
if [ ! -f "$HERE/node_modules/.package-lock.json" ] || ! cmp -s <(sed -n '/"packages"/,$p' "$HERE/package-lock.json" | grep -c integrity) \
        <(grep -c integrity "$HERE/node_modules/.package-lock.json"); then
    (cd "$HERE" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
fi
mkdir -p "$BUILD/web-artifacts"
exec node "$HERE/browser.mjs" "$BUILD" "$BUILD/web-artifacts"
