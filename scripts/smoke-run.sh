#!/usr/bin/env bash
# Smoke test of `make run`: starts it on a free port with a temporary data directory, waits
# for /readyz (stores, queues, the local anvil, both demo markets registered on-chain), checks
# /api/v1/chain, then stops it with SIGTERM and checks that anvil stopped with it.
#   PROFILE=dev ./scripts/smoke-run.sh     # use the debug build (default: release, as make run)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROFILE="${PROFILE:-release}"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
OUT="$DATA/make-run.out"
BUILD_WAIT_S="${BUILD_WAIT_S:-1800}"

cd "$ROOT"
HOB_LISTEN="127.0.0.1:$PORT" setsid make run PROFILE="$PROFILE" DATA="$DATA/data" >"$OUT" 2>&1 &
GROUP=$!
stop() { kill -TERM -- "-$GROUP" 2>/dev/null || true; }
trap 'stop; rm -rf "$DATA"' EXIT

# The build may take a while; then the banner, then readiness.
for _ in $(seq "$BUILD_WAIT_S"); do
  grep -q "DEVELOPMENT faucet" "$OUT" && break
  kill -0 "$GROUP" 2>/dev/null || { cat "$OUT"; echo "smoke-run: make run exited early" >&2; exit 1; }
  sleep 1
done
grep -q "DEVELOPMENT faucet" "$OUT" || { cat "$OUT"; echo "smoke-run: no banner" >&2; exit 1; }
ANVIL_PID="$(sed -n 's/.*(anvil, pid \([0-9]*\),.*/\1/p' "$OUT" | head -1)"
for _ in $(seq 60); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$OUT"; echo "smoke-run: never ready" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$PORT/api/v1/chain" | grep -q '"mode":"anvil"' || { echo "smoke-run: no chain" >&2; exit 1; }
sed -n '/listening on/,$p' "$OUT"

stop
for _ in $(seq 20); do
  [ -n "$ANVIL_PID" ] && [ -e "/proc/$ANVIL_PID" ] && ! grep -q ') Z ' "/proc/$ANVIL_PID/stat" 2>/dev/null || break
  sleep 0.5
done
if [ -n "$ANVIL_PID" ] && [ -e "/proc/$ANVIL_PID" ] && ! grep -q ') Z ' "/proc/$ANVIL_PID/stat" 2>/dev/null; then
  echo "smoke-run: anvil (pid $ANVIL_PID) outlived hob" >&2
  exit 1
fi
echo "smoke-run: ok (ready on port $PORT, anvil pid $ANVIL_PID stopped with hob)"
