#!/usr/bin/env bash
# Loopback load benchmark: the same axum app bare and with the layer, at 1, 1,000 and 30,000
# distinct signed-in sessions round robin (wrk + bench/many.lua cycling the sessions' cookies);
# bare receives the very same Cookie headers, so the ratio isolates the layer's own cost. Plus
# the layer on a public route without a session. wrk with 64 connections, server pinned to core
# 0 and wrk to core 1, interleaved rounds; ratios against bare measured in the same round.
#
# Peer comparison (mode `peer`, on by default; PEER=0 skips it): the same handler behind
# jwt-authorizer (bench/peer, a standalone package outside the crate's build), which validates
# `Authorization: Bearer` access tokens (RS256 against the JWKS URL, iss, aud, exp) of the same
# in-process test provider; N distinct tokens round robin, as the N sessions. jwt-authorizer's
# newest release (0.15) is on axum 0.7, so that server runs axum 0.7 (the others axum 0.8).
#
#   bash bench/load.sh     # DURATION=10s CONNECTIONS=64 ROUNDS=2 SESSIONS_LIST="1 1000 30000"
#   PEER=0 bash bench/load.sh                                  # without the peer
#   BEFORE_BIN=/path/to/older/load_server bash bench/load.sh   # also runs an older build's
#                                                              # layer ("before") in each round
#
# Prints requests/s, p50, p99, the server's CPU time per request (from /proc/PID/stat) and its
# resident memory growth from READY to the end of the run (VmRSS, MB; the sessions are minted
# before READY).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-3900}"
SESSIONS_LIST="${SESSIONS_LIST:-1 1000 30000}"
PEER="${PEER:-1}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --example load_server -q
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import sys,json;print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET_DIR/release/examples/load_server"
PEER_BIN="$TARGET_DIR/release/peer-load-server"
if [ "$PEER" = 1 ]; then
  # Shares the crate's target directory (the common dependencies build once).
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --manifest-path bench/peer/Cargo.toml \
    || { echo "bench/peer did not build: running without the peer" >&2; PEER=0; }
fi
[ "$PEER" = 1 ] || PEER=""
TICKS="$(getconf CLK_TCK)"
SERVER_PID=""
COOKIES_FILE="$(mktemp)"
TOKENS_FILE="$(mktemp)"
export COOKIES_FILE TOKENS_FILE
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -f "$COOKIES_FILE" "$TOKENS_FILE"; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

run_mode() { # mode sessions -> prints "rps p50 p99 cpu_us_per_req rss_growth_mb"
  local mode="$1" sessions="$2" out bin="$BIN" args
  [ "$mode" = before ] && { bin="$BEFORE_BIN"; mode=session; }
  args=("$mode" "$PORT")
  [ "$mode" = peer ] && { bin="$PEER_BIN"; args=("$PORT"); }
  out="$(mktemp)"
  SESSIONS="$sessions" taskset -c 0 "$bin" "${args[@]}" >"$out" 2>/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 6000); do grep -q READY "$out" && break; sleep 0.05; done
  grep -q READY "$out" || { echo "server did not start" >&2; exit 1; }
  local script=() header=Cookie values="$COOKIES_FILE"
  [ "$mode" != public ] && script=(-s bench/many.lua)
  # The peer takes bearer tokens (its own, written to TOKENS_FILE), the others the cookies.
  [ "$mode" = peer ] && { header=Authorization; values="$TOKENS_FILE"; }
  # Warm up (first sight of each token, connection setup), then measure.
  local r0 t0 t1 r1 report
  r0="$(rss_kb "$SERVER_PID")"
  HEADER="$header" VALUES_FILE="$values" \
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d3s "${script[@]}" "http://127.0.0.1:$PORT/" >/dev/null
  t0="$(cpu_ticks "$SERVER_PID")"
  report="$(HEADER="$header" VALUES_FILE="$values" taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${script[@]}" "http://127.0.0.1:$PORT/")"
  t1="$(cpu_ticks "$SERVER_PID")"
  r1="$(rss_kb "$SERVER_PID")"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  rm -f "$out"
  if echo "$report" | grep -qE "Non-2xx|Socket errors"; then echo "$report" >&2; echo "errors during $mode" >&2; exit 1; fi
  local reqs rps p50 p99
  reqs="$(echo "$report" | awk '/requests in/ {print $1}')"
  rps="$(echo "$report" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$report" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$report" | awk '$1=="99%" {print $2}')"
  python3 -c "print($rps, '$p50', '$p99', f'{($t1-$t0)/$TICKS*1e6/$reqs:.2f}', f'{($r1-$r0)/1024:.1f}')"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, server on core 0, wrk on core 1"
printf '%-6s %-9s %-8s %12s %10s %10s %11s %9s %10s %10s\n' round sessions mode req/s p50 p99 cpu_us/req rss_MB ratio_rps ratio_cpu
for round in $(seq 1 "$ROUNDS"); do
  for n in $SESSIONS_LIST; do
    declare -A rps cpu p50 p99 rss
    # The session server writes the cookies; bare then receives the same ones.
    for mode in session ${BEFORE_BIN:+before} ${PEER:+peer} bare; do
      read -r r a b c m <<<"$(run_mode "$mode" "$n")"
      rps[$mode]=$r; p50[$mode]=$a; p99[$mode]=$b; cpu[$mode]=$c; rss[$mode]=$m
    done
    for mode in bare session ${BEFORE_BIN:+before} ${PEER:+peer}; do
      ratio="$(python3 -c "print(f'{${rps[$mode]}/${rps[bare]}:.3f}')")"
      cratio="$(python3 -c "print(f'{${cpu[bare]}/${cpu[$mode]}:.3f}')")"
      printf '%-6s %-9s %-8s %12s %10s %10s %11s %9s %10s %10s\n' "$round" "$n" "$mode" "${rps[$mode]}" "${p50[$mode]}" "${p99[$mode]}" "${cpu[$mode]}" "${rss[$mode]}" "$ratio" "$cratio"
    done
    unset rps cpu p50 p99 rss
  done
done
