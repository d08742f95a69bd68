#!/usr/bin/env bash
# Loopback load benchmark: the same axum app bare and with the layer, at 1, 1,000 and 30,000
# distinct signed-in sessions round robin (wrk + bench/many.lua cycling the sessions' cookies);
# bare receives the very same Cookie headers, so the ratio isolates the layer's own cost. wrk
# with 64 connections on core 1, every server pinned to core 0.
#
# Paired and interleaved: for each session count all servers are started once (sessions minted
# before READY), then ITERATIONS times each server gets a DURATION run, in an order that
# rotates. A ratio is taken between runs of the same iteration, seconds apart, and the median
# over iterations is reported with its range: this machine's speed drifts by up to 2x over
# minutes (shared host), which sequential long runs mistook for the layer's cost.
#
# Modes: `bare` (the handler alone), `session` (the layer; the handler takes the `Claims`
# extractor, which refuses requests without a session, and answers the same bytes as bare),
# `require` (as `session`, plus `route_layer(auth.require())`: the cost of axum's extra route
# layer; REQUIRE=0 skips it), `before` (BEFORE_BIN's `session` mode) and `peer`.
#
# Peer comparison (mode `peer`, on by default; PEER=0 skips it): the same handler behind
# jwt-authorizer (bench/peer, a standalone package outside the crate's build), which validates
# `Authorization: Bearer` access tokens (RS256 against the JWKS URL, iss, aud, exp) of the same
# in-process test provider; N distinct tokens round robin, as the N sessions. jwt-authorizer's
# newest release (0.15) is on axum 0.7, so that server runs axum 0.7 (the others axum 0.8).
#
# Server-side sessions (STORED=1, REDIS_URL set): modes `stored` (the layer with its sessions
# in Redis, the cookie an id) and `bare`, fed the stored sessions' cookies; the Redis `GET`s
# the stored server made during the timed runs are counted (INFO commandstats) and printed per
# session: 0 means each session was loaded once, in the warm-up, and never again.
#
#   bash bench/load.sh     # DURATION=2s ITERATIONS=8 CONNECTIONS=64 SESSIONS_LIST="1 1000 30000"
#   STORED=1 REDIS_URL=redis://127.0.0.1:6379 SESSIONS_LIST=1000 bash bench/load.sh
#   PEER=0 bash bench/load.sh                                  # without the peer
#   BEFORE_BIN=/path/to/older/load_server bash bench/load.sh   # also an older build's layer
#
# Prints, per session count and mode: median requests/s, the median and range of its ratio to
# bare, median server CPU time per request (from /proc/PID/stat) and its ratio, and the
# server's resident memory growth from READY to the end (VmRSS, MB).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-2s}"
ITERATIONS="${ITERATIONS:-8}"
CONNECTIONS="${CONNECTIONS:-64}"
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
REQUIRE="${REQUIRE:-1}"
[ "$REQUIRE" = 1 ] && WITH_REQUIRE=require || WITH_REQUIRE=
MODES="session $WITH_REQUIRE ${BEFORE_BIN:+before} bare"
[ "$PEER" = 1 ] && MODES="session $WITH_REQUIRE ${BEFORE_BIN:+before} peer bare"
STORED="${STORED:-0}"
if [ "$STORED" = 1 ]; then
  [ -n "${REDIS_URL:-}" ] || { echo "STORED=1 needs REDIS_URL" >&2; exit 1; }
  MODES="stored bare"
fi
redis_gets() { # the Redis server's count of GET calls so far (redis-cli comes with redis-server)
  redis-cli -u "$REDIS_URL" info commandstats | tr -d '\r' \
    | awk -F'[=,]' '/^cmdstat_get:/ {print $2; found=1} END {if (!found) print 0}'
}
TICKS="$(getconf CLK_TCK)"
WORK="$(mktemp -d)"
declare -A PID PORT_OF VALUES HEADER RSS0
cleanup() { for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start_servers() { # sessions
  local n="$1" i=0 mode
  for mode in $MODES; do
    local port=$((PORT + i)); i=$((i + 1))
    PORT_OF[$mode]=$port
    HEADER[$mode]=Cookie
    case "$mode" in
      session)
        COOKIES_FILE="$WORK/cookies" SESSIONS="$n" taskset -c 0 "$BIN" session "$port" \
          >"$WORK/$mode.out" 2>/dev/null &
        VALUES[$mode]="$WORK/cookies" ;;
      require)
        # Its own sessions (another layer, other keys).
        COOKIES_FILE="$WORK/cookies-require" SESSIONS="$n" taskset -c 0 "$BIN" require "$port" \
          >"$WORK/$mode.out" 2>/dev/null &
        VALUES[$mode]="$WORK/cookies-require" ;;
      before)
        # An older build seals with keys of its own: it gets its own sessions.
        COOKIES_FILE="$WORK/cookies-before" SESSIONS="$n" taskset -c 0 "$BEFORE_BIN" session \
          "$port" >"$WORK/$mode.out" 2>/dev/null &
        VALUES[$mode]="$WORK/cookies-before" ;;
      peer)
        TOKENS_FILE="$WORK/tokens" SESSIONS="$n" taskset -c 0 "$PEER_BIN" "$port" \
          >"$WORK/$mode.out" 2>/dev/null &
        VALUES[$mode]="$WORK/tokens"; HEADER[$mode]=Authorization ;;
      stored)
        COOKIES_FILE="$WORK/cookies-stored" SESSIONS="$n" taskset -c 0 "$BIN" stored "$port" \
          >"$WORK/$mode.out" 2>/dev/null &
        VALUES[$mode]="$WORK/cookies-stored" ;;
      bare)
        # The very same Cookie headers as the session (or stored) server's.
        taskset -c 0 "$BIN" bare "$port" >"$WORK/$mode.out" 2>/dev/null &
        if [ "$STORED" = 1 ]; then VALUES[$mode]="$WORK/cookies-stored"; else VALUES[$mode]="$WORK/cookies"; fi ;;
    esac
    PID[$mode]=$!
  done
  for mode in $MODES; do
    for _ in $(seq 1 12000); do grep -q READY "$WORK/$mode.out" && break; sleep 0.05; done
    grep -q READY "$WORK/$mode.out" || { echo "$mode server did not start" >&2; exit 1; }
    RSS0[$mode]="$(rss_kb "${PID[$mode]}")"
  done
}

stop_servers() {
  for mode in $MODES; do kill "${PID[$mode]}" 2>/dev/null || true; wait "${PID[$mode]}" 2>/dev/null || true; done
  PID=()
}

load() { # mode duration -> prints "rps cpu_us_per_req p50 p99"
  local mode="$1" duration="$2" pid t0 t1 report
  pid="${PID[$mode]}"
  t0="$(cpu_ticks "$pid")"
  report="$(HEADER="${HEADER[$mode]}" VALUES_FILE="${VALUES[$mode]}" taskset -c 1 \
    wrk -t1 -c"$CONNECTIONS" -d"$duration" --latency -s bench/many.lua \
    "http://127.0.0.1:${PORT_OF[$mode]}/")"
  t1="$(cpu_ticks "$pid")"
  if echo "$report" | grep -qE "Non-2xx|Socket errors"; then echo "$report" >&2; echo "errors during $mode" >&2; exit 1; fi
  local reqs rps p50 p99
  reqs="$(echo "$report" | awk '/requests in/ {print $1}')"
  rps="$(echo "$report" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$report" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$report" | awk '$1=="99%" {print $2}')"
  python3 -c "print($rps, f'{($t1-$t0)/$TICKS*1e6/$reqs:.2f}', '$p50', '$p99')"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t1 -c$CONNECTIONS, $ITERATIONS interleaved runs of $DURATION per mode; servers on core 0, wrk on core 1"
printf '%-9s %-8s %10s %16s %20s %11s %10s %8s %9s\n' sessions mode req/s ratio_rps ratio_range cpu_us/req ratio_cpu p99 rss_MB
for n in $SESSIONS_LIST; do
  start_servers "$n"
  # Warm-up: every session or token seen once, connections set up.
  for mode in $MODES; do load "$mode" 3s >/dev/null; done
  samples="$WORK/samples"; : >"$samples"
  [ "$STORED" = 1 ] && gets0="$(redis_gets)"
  set -- $MODES
  for it in $(seq 1 "$ITERATIONS"); do
    for mode in "$@"; do echo "$it $mode $(load "$mode" "$DURATION")" >>"$samples"; done
    set -- "${@:2}" "$1"   # rotate the order
  done
  if [ "$STORED" = 1 ]; then
    gets="$(( $(redis_gets) - gets0 ))"
    echo "stored: $gets Redis GETs during the timed runs for $n sessions ($(python3 -c "print(round($gets/$n, 3))") a session)"
  fi
  for mode in $MODES; do
    echo "rss $mode $(( ($(rss_kb "${PID[$mode]}") - ${RSS0[$mode]}) ))" >>"$samples"
  done
  stop_servers
  python3 - "$samples" "$n" $MODES <<'PY'
import sys, statistics as st
path, n, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
def ms(t):
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if t.endswith(unit):
            return float(t[: -len(unit)]) * scale
    return float(t)
runs, rss = {}, {}
for line in open(path):
    f = line.split()
    if f[0] == "rss":
        rss[f[1]] = int(f[2]) / 1024
        continue
    runs.setdefault(int(f[0]), {})[f[1]] = (float(f[2]), float(f[3]), ms(f[5]))
modes = ["bare"] + [m for m in modes if m != "bare"]
for m in modes:
    rps = [r[m][0] for r in runs.values()]
    cpu = [r[m][1] for r in runs.values()]
    ratio = [r[m][0] / r["bare"][0] for r in runs.values()]
    cratio = [r["bare"][1] / r[m][1] for r in runs.values()]
    p99 = st.median(r[m][2] for r in runs.values())
    print(f"{n:<9} {m:<8} {st.median(rps):10.0f} {st.median(ratio):16.3f} "
          f"{min(ratio):9.3f}-{max(ratio):.3f}    {st.median(cpu):11.2f} {st.median(cratio):10.3f} "
          f"{p99:6.2f}ms {rss[m]:9.1f}")
PY
done
