#!/usr/bin/env bash
# End-to-end suite: the quickstart and multi_app examples against an independent OpenID provider
# (oidc-provider 9, e2e/provider.mjs) in Debian's Chromium driven by playwright-core.
#
#   bash e2e/run.sh            # from anywhere; exits non-zero if any scenario fails
#   E2E_ONLY=1,refresh bash e2e/run.sh   # a subset, by number or name
#
# Installs what is missing (apt chromium, npm ci), builds the two examples, starts the
# provider and the apps on loopback ports, runs the scenarios (e2e/scenarios.mjs) and stops
# every process it started, by PID. Logs and screenshots go to e2e/artifacts/.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
ARTIFACTS="$E2E_DIR/artifacts"
STARTED_AT=$SECONDS

# Addresses and clients (override through the environment if a port is taken).
export PROVIDER_URL="${PROVIDER_URL:-http://127.0.0.1:4400}"
export QUICKSTART_URL="${QUICKSTART_URL:-http://127.0.0.1:3100}"
# A second quickstart whose sessions live 25 s (scenario "lifetime").
export LIFETIME_URL="${LIFETIME_URL:-http://127.0.0.1:3101}"
# Apps that push their authorization requests (RFC 9126, scenario "par") and authenticate with
# a private key (private_key_jwt, scenario "private-key-jwt").
export PAR_URL="${PAR_URL:-http://127.0.0.1:3102}"
export PKJWT_URL="${PKJWT_URL:-http://127.0.0.1:3103}"
export PAR_CLIENT_ID="${PAR_CLIENT_ID:-quickstart-par}"
export PKJWT_CLIENT_ID="${PKJWT_CLIENT_ID:-quickstart-pkjwt}"
export APP_A_URL="${APP_A_URL:-http://127.0.0.1:3201}"
export APP_B_URL="${APP_B_URL:-http://127.0.0.1:3202}"
export QUICKSTART_CLIENT_ID="${QUICKSTART_CLIENT_ID:-quickstart}"
export LIFETIME_CLIENT_ID="${LIFETIME_CLIENT_ID:-quickstart-lifetime}"
export LIFETIME_SESSION_MAX_AGE="${LIFETIME_SESSION_MAX_AGE:-25}"
export APP_A_CLIENT_ID="${APP_A_CLIENT_ID:-app-a}"
export APP_B_CLIENT_ID="${APP_B_CLIENT_ID:-app-b}"
export ACCESS_TOKEN_TTL="${ACCESS_TOKEN_TTL:-15}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export E2E_ARTIFACTS="$ARTIFACTS"
export E2E_SUMMARY_FILE="$ARTIFACTS/summary.txt"
QUICKSTART_CLIENT_SECRET="e2e-quickstart-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
LIFETIME_CLIENT_SECRET="e2e-lifetime-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PAR_CLIENT_SECRET="e2e-par-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PKJWT_KEY_FILE="$ARTIFACTS/pkjwt-key.pem"
APP_A_CLIENT_SECRET="e2e-app-a-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
APP_B_CLIENT_SECRET="e2e-app-b-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export E2E_CLIENTS="[
  {\"client_id\":\"$QUICKSTART_CLIENT_ID\",\"client_secret\":\"$QUICKSTART_CLIENT_SECRET\",\"app_url\":\"$QUICKSTART_URL\"},
  {\"client_id\":\"$LIFETIME_CLIENT_ID\",\"client_secret\":\"$LIFETIME_CLIENT_SECRET\",\"app_url\":\"$LIFETIME_URL\"},
  {\"client_id\":\"$PAR_CLIENT_ID\",\"client_secret\":\"$PAR_CLIENT_SECRET\",\"app_url\":\"$PAR_URL\",\"require_par\":true},
  {\"client_id\":\"$PKJWT_CLIENT_ID\",\"key_file\":\"$PKJWT_KEY_FILE\",\"app_url\":\"$PKJWT_URL\"},
  {\"client_id\":\"$APP_A_CLIENT_ID\",\"client_secret\":\"$APP_A_CLIENT_SECRET\",\"app_url\":\"$APP_A_URL\"},
  {\"client_id\":\"$APP_B_CLIENT_ID\",\"client_secret\":\"$APP_B_CLIENT_SECRET\",\"app_url\":\"$APP_B_URL\"}
]"

log() { printf '[e2e %3ds] %s\n' "$((SECONDS - STARTED_AT))" "$*"; }

# --- processes we start, stopped by PID on exit -----------------------------------------------
PIDS=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "PID $pid did not stop on TERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  log "finished in $((SECONDS - STARTED_AT)) s with status $status (screenshots and logs in $ARTIFACTS)"
  # The scenario runner's tally is the last line of the output.
  if [ -s "$E2E_SUMMARY_FILE" ]; then
    cat "$E2E_SUMMARY_FILE"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in the background with its output in artifacts/<name>.log.
start() {
  local name=$1
  shift
  "$@" >"$ARTIFACTS/$name.log" 2>&1 &
  PIDS+=("$!")
  LAST_PID=$!
  log "started $name (PID $LAST_PID)"
}

port_of() { local hp=${1#*://}; hp=${hp%%/*}; echo "${hp##*:}"; }
host_of() { local hp=${1#*://}; hp=${hp%%/*}; echo "${hp%:*}"; }
port_open() { (exec 3<>"/dev/tcp/$(host_of "$1")/$(port_of "$1")") 2>/dev/null; }

# Waits until $2 accepts TCP connections, failing early if process $3 ($1) died.
wait_ready() {
  local name=$1 url=$2 pid=$3
  for _ in $(seq 1 300); do
    if port_open "$url"; then
      log "$name ready at $url"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before listening; its log:"
      tail -n 40 "$ARTIFACTS/$name.log" | sed 's/^/    /'
      return 1
    fi
    sleep 0.1
  done
  log "$name not ready at $url after 30 s; its log:"
  tail -n 40 "$ARTIFACTS/$name.log" | sed 's/^/    /'
  return 1
}

mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/*.log "$ARTIFACTS"/*.error.txt "$E2E_SUMMARY_FILE"

for url in "$PROVIDER_URL" "$QUICKSTART_URL" "$LIFETIME_URL" "$PAR_URL" "$PKJWT_URL" "$APP_A_URL" "$APP_B_URL"; do
  if port_open "$url"; then
    log "port of $url is already in use; stop what listens there or set another address"
    exit 1
  fi
done

# --- install what is missing ------------------------------------------------------------------
if [ ! -x "$CHROMIUM_PATH" ]; then
  log "installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || { log "node is required (apt-get install nodejs npm)"; exit 1; }

lock_sum="$(sha256sum "$E2E_DIR/package-lock.json" | cut -d' ' -f1)"
stamp="$E2E_DIR/node_modules/.e2e-lock-sha256"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  log "npm ci"
  (cd "$E2E_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$stamp"
fi

# --- build the examples -----------------------------------------------------------------------
log "cargo build --example quickstart --example multi_app ${E2E_CARGO_FLAGS:-}"
# shellcheck disable=SC2086 # E2E_CARGO_FLAGS is a list of flags
(cd "$ROOT" && cargo build --quiet --example quickstart --example multi_app ${E2E_CARGO_FLAGS:-})
TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')}"
PROFILE_DIR=debug
case " ${E2E_CARGO_FLAGS:-} " in *" --release "*) PROFILE_DIR=release ;; esac
EXAMPLES="$TARGET_DIR/$PROFILE_DIR/examples"
log "built in $((SECONDS - STARTED_AT)) s"

# --- start the provider and the apps ----------------------------------------------------------
# The private key of the private_key_jwt client (P-256, PKCS#8 PEM); the provider registers its
# public half.
node -e "const { generateKeyPairSync } = require('node:crypto');
process.stdout.write(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));" >"$PKJWT_KEY_FILE"
chmod 600 "$PKJWT_KEY_FILE"

start provider node "$E2E_DIR/provider.mjs"
PROVIDER_PID=$LAST_PID
wait_ready provider "$PROVIDER_URL" "$PROVIDER_PID"

export RUST_LOG="${RUST_LOG:-info,tower_oidc_auth=debug}"
# The quickstart's webhook route (scenario "webhook" signs Scalekit's user.logout with it).
E2E_WEBHOOK_SECRET="whsec_$(head -c 24 /dev/urandom | base64 | tr -d '\n')"
export E2E_WEBHOOK_SECRET
# The scenarios of the first apps read the authorization parameters in the browser's address:
# they do not push them (AUTH_PAR=off), though the provider offers PAR; scenario "par" does.
start quickstart env -u AUTH_COOKIE_KEY -u SCALEKIT_ENVIRONMENT_URL \
  SCALEKIT_WEBHOOK_SECRET="$E2E_WEBHOOK_SECRET" AUTH_PAR=off \
  OIDC_ISSUER="$PROVIDER_URL" \
  OIDC_CLIENT_ID="$QUICKSTART_CLIENT_ID" \
  OIDC_CLIENT_SECRET="$QUICKSTART_CLIENT_SECRET" \
  APP_URL="$QUICKSTART_URL" \
  "$EXAMPLES/quickstart"
export QUICKSTART_PID=$LAST_PID

# The same example, sessions limited to LIFETIME_SESSION_MAX_AGE seconds from login.
start quickstart_lifetime env -u AUTH_COOKIE_KEY -u SCALEKIT_ENVIRONMENT_URL \
  -u SCALEKIT_WEBHOOK_SECRET -u AUTH_SESSION_IDLE_TIMEOUT \
  AUTH_SESSION_MAX_AGE="${LIFETIME_SESSION_MAX_AGE}s" AUTH_PAR=off \
  OIDC_ISSUER="$PROVIDER_URL" \
  OIDC_CLIENT_ID="$LIFETIME_CLIENT_ID" \
  OIDC_CLIENT_SECRET="$LIFETIME_CLIENT_SECRET" \
  APP_URL="$LIFETIME_URL" \
  "$EXAMPLES/quickstart"
LIFETIME_PID=$LAST_PID

# Pushed authorization requests, required (the provider requires them of this client too).
start quickstart_par env -u AUTH_COOKIE_KEY -u SCALEKIT_ENVIRONMENT_URL -u SCALEKIT_WEBHOOK_SECRET \
  AUTH_PAR=required \
  OIDC_ISSUER="$PROVIDER_URL" \
  OIDC_CLIENT_ID="$PAR_CLIENT_ID" \
  OIDC_CLIENT_SECRET="$PAR_CLIENT_SECRET" \
  APP_URL="$PAR_URL" \
  "$EXAMPLES/quickstart"
PAR_PID=$LAST_PID

# private_key_jwt: a key file and no client secret (pushed requests on Par::Auto, authenticated
# with the key as well).
start quickstart_pkjwt env -u AUTH_COOKIE_KEY -u SCALEKIT_ENVIRONMENT_URL -u SCALEKIT_WEBHOOK_SECRET \
  -u OIDC_CLIENT_SECRET -u AUTH_PAR \
  AUTH_CLIENT_KEY_FILE="$PKJWT_KEY_FILE" \
  OIDC_ISSUER="$PROVIDER_URL" \
  OIDC_CLIENT_ID="$PKJWT_CLIENT_ID" \
  APP_URL="$PKJWT_URL" \
  "$EXAMPLES/quickstart"
PKJWT_PID=$LAST_PID

start multi_app env -u AUTH_COOKIE_KEY -u SCALEKIT_ENVIRONMENT_URL \
  OIDC_ISSUER="$PROVIDER_URL" \
  APP_A_URL="$APP_A_URL" \
  APP_A_CLIENT_ID="$APP_A_CLIENT_ID" \
  APP_A_CLIENT_SECRET="$APP_A_CLIENT_SECRET" \
  APP_B_URL="$APP_B_URL" \
  APP_B_CLIENT_ID="$APP_B_CLIENT_ID" \
  APP_B_CLIENT_SECRET="$APP_B_CLIENT_SECRET" \
  AUTH_PAR=off \
  "$EXAMPLES/multi_app"
MULTI_PID=$LAST_PID

wait_ready quickstart "$QUICKSTART_URL" "$QUICKSTART_PID"
wait_ready quickstart_lifetime "$LIFETIME_URL" "$LIFETIME_PID"
wait_ready quickstart_par "$PAR_URL" "$PAR_PID"
wait_ready quickstart_pkjwt "$PKJWT_URL" "$PKJWT_PID"
wait_ready multi_app "$APP_A_URL" "$MULTI_PID"
wait_ready multi_app "$APP_B_URL" "$MULTI_PID"

# --- scenarios --------------------------------------------------------------------------------
log "running scenarios"
set +e
node "$E2E_DIR/scenarios.mjs" &
RUNNER_PID=$!
PIDS+=("$RUNNER_PID")
wait "$RUNNER_PID"
status=$?
set -e

for name in provider quickstart quickstart_lifetime quickstart_par quickstart_pkjwt multi_app; do
  pid_var=PROVIDER_PID
  [ "$name" = quickstart ] && pid_var=QUICKSTART_PID
  [ "$name" = quickstart_lifetime ] && pid_var=LIFETIME_PID
  [ "$name" = quickstart_par ] && pid_var=PAR_PID
  [ "$name" = quickstart_pkjwt ] && pid_var=PKJWT_PID
  [ "$name" = multi_app ] && pid_var=MULTI_PID
  if ! kill -0 "${!pid_var}" 2>/dev/null; then
    log "$name exited during the run; see $ARTIFACTS/$name.log"
    status=1
  fi
done
exit "$status"
