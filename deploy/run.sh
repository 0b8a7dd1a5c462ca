#!/usr/bin/env bash
# Run the whole platform locally, without Docker (Debian, as root or with sudo):
#   deploy/run.sh
# Installs what is missing (uv, RabbitMQ, Java/Maven for DevMongo), starts RabbitMQ and DevMongo
# (or reuses running ones), creates the broker users and topology, then hands over to the
# supervisor (`python -m lhpn_cli.supervisor`, tools/cli/lhpn_cli/supervisor.py), which starts
# every service that has a `__main__.py` (in ENV=development unless ENV is set) — consumers,
# intake, the 2025 default data, the portal —, prints the URLs and a login, and restarts a service
# that dies (its pause doubling from 1 s to 30 s, each restart logged) instead of stopping the
# platform. Ctrl-C (or SIGTERM) stops the services within their shutdown grace, then what this
# run started; no step of the stop can hang.
# Data and logs live in .data/ (gitignored) and are reused by the next run; the broker users'
# development passwords are generated into .data/broker/<user>.password (mode 0600).
#
# Environment (all optional): PORTAL_PORT=8000 INTAKE_PORT=8001 CASES_PORT=8002
# REMINDERS_PORT=8003 AGGREGATION_PORT=8004, REPLICAS_<SERVICE>=1 (e.g. REPLICAS_REMINDERS=2:
# replica k answers on the port + 100 × (k − 1)), AGGREGATION_PARTITIONS=1 (N > 1: N aggregation
# processes by default, replica k writing partition (k − 1) mod N; docs/aggregation.md),
# MONGO_PORT=27017 (DevMongo), RABBIT_VHOST=/
# (vhost of this run), BROKER_USER_PREFIX=lhpn- (users <prefix><service>), INBOUND_SYSTEMS (other
# systems' broker users, made here too), SERVICES="intake cases" (a subset), LOAD_DEFAULT_2025=0
# (skip Phú Yên's successor area in Đắk Lắk from 1 July 2025), READY_TIMEOUT=120 (seconds per
# phase), SHUTDOWN_GRACE_SECONDS=20 (each service's; the supervisor waits 5 s more before
# SIGKILL), and any service setting (LOG_LEVEL, ADMIN_PASSWORD, CASE_KEYS…: see .env.example),
# passed through to the services. Each service gets its own RABBIT_URL.
set -euo pipefail

cd "$(dirname "$0")/.."
DATA=$PWD/.data
LOGS=$DATA/logs
MONGO_PORT=${MONGO_PORT:-27017}
export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:$MONGO_PORT/}
export ENV=${ENV:-development}  # development must be asked for: unset counts as production
export BROKER_USER_PREFIX=${BROKER_USER_PREFIX:-lhpn-}
export RABBIT_VHOST=${RABBIT_VHOST:-/}
BROKER_PASSWORDS=$DATA/broker
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo

say() { echo "run.sh: $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }
apt_install() {
    say "installing $* from apt"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- stop what this run started (the supervisor stops the services; then DevMongo and RabbitMQ
# if this run started them). Every step is bounded: nothing here can hang.
SUPERVISOR=
STARTED_MONGO=0 STARTED_RABBIT=0
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    set +e  # keep going whatever fails; ignore a closed terminal or pipe (Ctrl-C on `| tee`)
    trap '' INT TERM HUP PIPE
    if [ -n "$SUPERVISOR" ] && kill -0 "$SUPERVISOR" 2>/dev/null; then
        kill -TERM "$SUPERVISOR" 2>/dev/null
        # it waits for each service's grace (SHUTDOWN_GRACE_SECONDS + 5 s), then kills
        local grace=${SHUTDOWN_GRACE_SECONDS:-20}
        for _ in $(seq $(( (${grace%.*} + 15) * 10 ))); do
            kill -0 "$SUPERVISOR" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$SUPERVISOR" 2>/dev/null && { say "the supervisor did not stop: killing it"; kill -KILL "$SUPERVISOR"; }
    fi
    if [ "$STARTED_MONGO" = 1 ]; then deploy/devmongo.sh stop "$DATA/mongo"; fi
    if [ "$STARTED_RABBIT" = 1 ]; then
        say "stopping the RabbitMQ this run started"
        $SUDO deploy/rabbitmq.sh stop
        $SUDO timeout 10 epmd -kill >/dev/null 2>&1
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- tools -----------------------------------------------------------------------------------
T0=$(date +%s)
need=()
command -v python3 >/dev/null || need+=(python3 python3-pip)
{ command -v java && command -v mvn; } >/dev/null || need+=(default-jdk-headless maven)  # DevMongo
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
if command -v uv >/dev/null; then UV=(uv)
else
    python3 -m uv --version >/dev/null 2>&1 || {
        python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
        say "installing uv with pip"
        # Debian's python3 is "externally managed" (PEP 668); uv is one self-contained binary
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --root-user-action=ignore uv
    }
    UV=(python3 -m uv)  # works whether or not pip's script directory is on PATH
fi

# --- infrastructure --------------------------------------------------------------------------
if command -v rabbitmq-server >/dev/null && $SUDO rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
    say "reusing the running RabbitMQ"
else
    STARTED_RABBIT=1
fi
$SUDO deploy/rabbitmq.sh

mkdir -p "$LOGS"
mongo_pid=$(cat "$DATA/mongo/devmongo.pid" 2>/dev/null || true)
if [ -n "$mongo_pid" ] && tr '\0' ' ' <"/proc/$mongo_pid/cmdline" 2>/dev/null | grep -q DevMongo.java; then
    say "reusing the running DevMongo (pid $mongo_pid)"
else
    STARTED_MONGO=1
fi
deploy/devmongo.sh start "$MONGO_PORT" "$DATA/mongo"

"${UV[@]}" sync --frozen --quiet

# Each service's own broker user, the inbound systems' users, and the whole topology (so an
# event published before its consumer first started waits in that consumer's queue).
say "broker users ${BROKER_USER_PREFIX}<service> on vhost $RABBIT_VHOST (passwords in $BROKER_PASSWORDS/)"
"${UV[@]}" run --frozen --no-sync python -m lhpn_shared.broker_accounts definitions \
    --passwords-dir "$BROKER_PASSWORDS" | $SUDO deploy/rabbitmq.sh import-definitions >/dev/null

# --- services: the supervisor starts them, restarts one that dies, stops them on a signal ---
# (in the background, so that a SIGTERM to this script reaches the trap at once; the trap
# forwards it to the supervisor and waits for it)
# (the environment's own python, not through `uv run`: the signal must reach the supervisor)
PY=$("${UV[@]}" run --frozen --no-sync python -c 'import sys; print(sys.executable)')
LHPN_REPO=$PWD LHPN_DATA=$DATA "$PY" -m lhpn_cli.supervisor </dev/null &
SUPERVISOR=$!
status=0
wait "$SUPERVISOR" || status=$?
SUPERVISOR=
exit "$status"
