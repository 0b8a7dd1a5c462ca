#!/usr/bin/env bash
# Run the whole platform locally, without Docker (Debian, as root or with sudo):
#   deploy/run.sh
# Installs what is missing (uv, RabbitMQ, Java/Maven for DevMongo), starts RabbitMQ and DevMongo
# (or reuses running ones), creates the broker users and topology, starts every service that has
# a `__main__.py` (in ENV=development unless ENV is set), waits until each answers /readyz,
# prints the URLs and a login. Ctrl-C (or SIGTERM) stops what this run started.
# Data and logs live in .data/ (gitignored) and are reused by the next run; the broker users'
# development passwords are generated into .data/broker/<user>.password (mode 0600).
#
# Environment (all optional): PORTAL_PORT=8000 INTAKE_PORT=8001 CASES_PORT=8002
# REMINDERS_PORT=8003 AGGREGATION_PORT=8004, MONGO_PORT=27017 (DevMongo), RABBIT_VHOST=/ (vhost
# of this run), BROKER_USER_PREFIX=lhpn- (users <prefix><service>), INBOUND_SYSTEMS (other
# systems' broker users, made here too), SERVICES="intake cases" (a subset), LOAD_DEFAULT_2025=0
# (skip Phú Yên's successor area in Đắk Lắk from 1 July 2025), READY_TIMEOUT=120
# (seconds per phase), and any service setting (LOG_LEVEL, ADMIN_PASSWORD, CASE_KEYS…: see
# .env.example), passed through to the services. Each service gets its own RABBIT_URL.
set -euo pipefail

cd "$(dirname "$0")/.."
DATA=$PWD/.data
LOGS=$DATA/logs
MONGO_PORT=${MONGO_PORT:-27017}
READY_TIMEOUT=${READY_TIMEOUT:-120}
declare -A DEFAULT_PORT=([portal]=8000 [intake]=8001 [cases]=8002 [reminders]=8003 [aggregation]=8004)
export MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:$MONGO_PORT/}
export ENV=${ENV:-development}  # development must be asked for: unset counts as production
export BROKER_USER_PREFIX=${BROKER_USER_PREFIX:-lhpn-}
export RABBIT_VHOST=${RABBIT_VHOST:-/}
BROKER_PASSWORDS=$DATA/broker
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
RABBIT_PIDF=/var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid

say() { echo "run.sh: $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }
apt_install() {
    say "installing $* from apt"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ready() { python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$1/readyz', timeout=2)" 2>/dev/null; }
readyz() {  # what /readyz answers, even a 503
    python3 -c "import urllib.request as u
try: print(u.urlopen('http://127.0.0.1:$1/readyz', timeout=2).read().decode())
except u.HTTPError as e: print(e.code, e.read().decode())
except OSError as e: print(e)"
}

# --- stop what this run started (services, then DevMongo and RabbitMQ if they were ours) ----
declare -A PID=() PORT=()
STARTED_MONGO=0 STARTED_RABBIT=0
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    set +e  # keep going whatever fails; ignore a closed terminal or pipe (Ctrl-C on `| tee`)
    trap '' INT TERM HUP PIPE
    local name pid
    if [ ${#PID[@]} -gt 0 ]; then say "stopping ${!PID[*]}"; fi
    # each service runs in its own process group (setsid): uv and python get the SIGTERM
    for pid in "${PID[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for _ in $(seq 300); do  # 30 s for in-flight work and broker shutdown
        for name in "${!PID[@]}"; do kill -0 -- "-${PID[$name]}" 2>/dev/null || unset "PID[$name]"; done
        [ ${#PID[@]} -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${PID[@]}"; do say "pid $pid ignored SIGTERM, killing"; kill -KILL -- "-$pid" 2>/dev/null; done
    if [ "$STARTED_MONGO" = 1 ]; then deploy/devmongo.sh stop "$DATA/mongo"; fi
    if [ "$STARTED_RABBIT" = 1 ]; then
        say "stopping the RabbitMQ this run started"
        $SUDO rabbitmqctl -q stop "$RABBIT_PIDF"
        $SUDO epmd -kill >/dev/null 2>&1
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
rabbit_url() {  # the service's own URL (its password never reaches the terminal); none for
    local user=$BROKER_USER_PREFIX$1 path=  # the portal, which talks to the services over HTTP
    [ -f "$BROKER_PASSWORDS/$user.password" ] || return 0
    [ "$RABBIT_VHOST" = / ] || path=$RABBIT_VHOST
    echo "amqp://$user:$(cat "$BROKER_PASSWORDS/$user.password")@127.0.0.1:5672/$path"
}

# --- services --------------------------------------------------------------------------------
all=()
for dir in services/*/; do
    name=$(basename "$dir")
    if [ -f "$dir$name/__main__.py" ]; then all+=("$name"); else say "skipping $name: no $dir$name/__main__.py yet"; fi
done
read -r -a all <<<"${SERVICES:-${all[*]}}"
[ ${#all[@]} -gt 0 ] || die "no service to run"

start() {  # start the named services in the background, then wait until each answers /readyz
    local name var
    for name in "$@"; do
        var=${name^^}_PORT
        [ -n "${!var:-${DEFAULT_PORT[$name]:-}}" ] || die "no port for $name: set $var"
        export "$var=${!var:-${DEFAULT_PORT[$name]}}"
        PORT[$name]=${!var}
        port_busy "${PORT[$name]}" && die "port ${PORT[$name]} ($name) is in use: stop what uses it or set $var"
        # own session: a Ctrl-C reaches the services only through cleanup, which waits for them
        RABBIT_URL=$(rabbit_url "$name") \
            setsid "${UV[@]}" run --frozen --no-sync python -m "$name" </dev/null >"$LOGS/$name.log" 2>&1 &
        PID[$name]=$!
    done
    local deadline=$(($(date +%s) + READY_TIMEOUT)) waiting=("$@")
    while [ ${#waiting[@]} -gt 0 ]; do
        local left=()
        for name in "${waiting[@]}"; do
            kill -0 "${PID[$name]}" 2>/dev/null || { tail -n 20 "$LOGS/$name.log" >&2; die "$name exited at start; its log: $LOGS/$name.log"; }
            ready "${PORT[$name]}" || left+=("$name")
        done
        waiting=("${left[@]}")
        [ ${#waiting[@]} -eq 0 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            for name in "${waiting[@]}"; do
                echo "--- $LOGS/$name.log" >&2; tail -n 20 "$LOGS/$name.log" >&2
                echo "--- $name /readyz: $(readyz "${PORT[$name]}")" >&2
            done
            die "not ready after ${READY_TIMEOUT}s: ${waiting[*]}; see above"
        fi
        sleep 0.3
    done
}
# Consumers first, so that their queues exist before intake announces the default data; the
# portal last, told where each service answers.
consumers=()
for name in "${all[@]}"; do [[ "$name" == intake || "$name" == portal ]] || consumers+=("$name"); done
if [ ${#consumers[@]} -gt 0 ]; then start "${consumers[@]}"; fi
if [[ " ${all[*]} " == *" intake "* ]]; then
    start intake
    # the default data, second half: Phú Yên (loaded by intake from its 2021 CSV) ends on
    # 30/06/2025 and continues in the new Đắk Lắk (the packages' tree, through intake's API,
    # so every service gets the units). A second run finds it done and changes nothing.
    if [ "${LOAD_DEFAULT_2025:-1}" = 1 ]; then
        say "default data: Phú Yên's successor area in Đắk Lắk from 1 July 2025"
        LHPN_INTAKE_URL=http://127.0.0.1:${PORT[intake]} "${UV[@]}" run --frozen --no-sync \
            lhpn units load --national 2025 --province 66 </dev/null >>"$LOGS/lhpn-units.log" 2>&1 \
            || { tail -n 20 "$LOGS/lhpn-units.log" >&2; die "loading the 2025 default data failed; its log: $LOGS/lhpn-units.log"; }
    fi
fi
if [[ " ${all[*]} " == *" portal "* ]]; then
    for name in intake cases reminders aggregation; do
        var=${name^^}_PORT url=${name^^}_URL
        export "$url=${!url:-http://127.0.0.1:${!var:-${DEFAULT_PORT[$name]}}}"
    done
    start portal
fi

echo
say "ready in $(($(date +%s) - T0)) s"
if [ -n "${PORT[portal]:-}" ]; then  # first: the address people open
    printf '  %-12s %s/   (sign in there)   log: %s\n' portal "http://127.0.0.1:${PORT[portal]}" "$LOGS/portal.log"
fi
for name in "${all[@]}"; do
    [ "$name" = portal ] && continue
    url=http://127.0.0.1:${PORT[$name]}
    printf '  %-12s %s/docs   %s/asyncapi.json   log: %s\n' "$name" "$url" "$url" "$LOGS/$name.log"
done
echo "  MongoDB      $MONGO_URL (DevMongo, data in $DATA/mongo)"
echo "  RabbitMQ     amqp://127.0.0.1:5672/ vhost $RABBIT_VHOST, users ${BROKER_USER_PREFIX}<service> (passwords: $BROKER_PASSWORDS/)"
if [ -n "${PORT[intake]:-}" ]; then
    user=${ADMIN_USERNAME:-admin} password=${ADMIN_PASSWORD:+<your ADMIN_PASSWORD>}
    echo "  login        $user / ${password:-admin (development default)}"
    echo "  token        curl -X POST http://127.0.0.1:${PORT[intake]}/api/v1/auth/token -d 'username=$user&password=${password:-admin}'"
fi
echo "Ctrl-C stops the services$([ "$STARTED_MONGO$STARTED_RABBIT" = 00 ] || echo ", and the DevMongo/RabbitMQ this run started")."

wait -n "${PID[@]}" || true  # returns on Ctrl-C/SIGTERM (the traps exit) or when a service stops
for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null || say "$name stopped; its log: $LOGS/$name.log"; done
exit 1
