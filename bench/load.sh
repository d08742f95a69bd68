#!/usr/bin/env bash
# Loopback load benchmark: the same axum app bare, with the layer and a signed-in session, and
# with the layer on a public route; wrk with 64 connections for 10 s each, server pinned to core
# 0 and wrk to core 1; two interleaved rounds; ratios against bare measured in the same round.
#
#   bash bench/load.sh            # DURATION=10s CONNECTIONS=64 ROUNDS=2 by default
#
# Prints requests/s, p50, p99 and the server's CPU time per request (from /proc/PID/stat).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-3900}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --example load_server -q
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import sys,json;print(json.load(sys.stdin)["target_directory"])')/release/examples/load_server"
TICKS="$(getconf CLK_TCK)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_mode() { # mode -> prints "rps p50 p99 cpu_us_per_req"
  local mode="$1" out cookie="" line
  out="$(mktemp)"
  taskset -c 0 "$BIN" "$mode" "$PORT" >"$out" 2>/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 200); do grep -q READY "$out" && break; sleep 0.05; done
  grep -q READY "$out" || { echo "server did not start" >&2; exit 1; }
  line="$(grep '^COOKIE ' "$out" || true)"
  cookie="${line#COOKIE }"
  local args=(-t1 -c"$CONNECTIONS" -d"$DURATION" --latency)
  [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
  # Warm up (first sight of the token, connection setup), then measure.
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d1s ${cookie:+-H "Cookie: $cookie"} "http://127.0.0.1:$PORT/" >/dev/null
  local t0 t1 report
  t0="$(cpu_ticks "$SERVER_PID")"
  report="$(taskset -c 1 wrk "${args[@]}" "http://127.0.0.1:$PORT/")"
  t1="$(cpu_ticks "$SERVER_PID")"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  rm -f "$out"
  if echo "$report" | grep -qE "Non-2xx|Socket errors"; then echo "$report" >&2; echo "errors during $mode" >&2; exit 1; fi
  local reqs rps p50 p99
  reqs="$(echo "$report" | awk '/requests in/ {print $1}')"
  rps="$(echo "$report" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$report" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$report" | awk '$1=="99%" {print $2}')"
  local cpu_us
  cpu_us="$(python3 -c "print(f'{($t1-$t0)/$TICKS*1e6/$reqs:.2f}')")"
  echo "$rps $p50 $p99 $cpu_us"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, server on core 0, wrk on core 1"
printf '%-6s %-8s %12s %10s %10s %12s %12s %12s\n' round mode req/s p50 p99 cpu_us/req ratio_rps ratio_cpu
for round in $(seq 1 "$ROUNDS"); do
  declare -A rps cpu p50 p99
  for mode in bare session public; do
    read -r r a b c <<<"$(run_mode "$mode")"
    rps[$mode]=$r; p50[$mode]=$a; p99[$mode]=$b; cpu[$mode]=$c
  done
  for mode in bare session public; do
    ratio="$(python3 -c "print(f'{${rps[$mode]}/${rps[bare]}:.3f}')")"
    cratio="$(python3 -c "print(f'{${cpu[bare]}/${cpu[$mode]}:.3f}')")"
    printf '%-6s %-8s %12s %10s %10s %12s %12s %12s\n' "$round" "$mode" "${rps[$mode]}" "${p50[$mode]}" "${p99[$mode]}" "${cpu[$mode]}" "$ratio" "$cratio"
  done
  unset rps cpu p50 p99
done
