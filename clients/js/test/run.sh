#!/bin/sh
# Runs the JavaScript client's tests (Node's test runner) against the real servers. Builds
# nothing: it needs target/debug/ricochet-signaling and target/debug/ricochet-relay
#   cargo build -p ricochet-signaling -p ricochet-relay
# (or RICOCHET_BIN_DIR pointing at another directory holding them). The Rust <-> JavaScript
# test also needs target/debug/ricochet-bot with --messages and is skipped without it; the
# Chromium test needs playwright-core (npm ci here) and /usr/bin/chromium, and is skipped
# without them.
set -eu
cd "$(dirname "$0")/.."
bin="${RICOCHET_BIN_DIR:-../../target/debug}"
for b in ricochet-signaling ricochet-relay; do
  if [ ! -x "$bin/$b" ]; then
    echo "clients/js/test/run.sh: $bin/$b is missing: cargo build -p ricochet-signaling -p ricochet-relay" >&2
    exit 1
  fi
done
# Node 20 has WebSocket only behind a flag (Node 22 and later have it built in).
flag=""
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  flag="--experimental-websocket"
fi
exec node $flag --disable-warning=ExperimentalWarning --test "$@" test/*.test.mjs
