#!/usr/bin/env bash
# Ensure a local RabbitMQ broker is installed and running (see PLATFORM-NOTES "RabbitMQ").
#   deploy/rabbitmq.sh                              install if missing, start if not running, wait
#   deploy/rabbitmq.sh import-definitions <FILE     users, permissions, vhost, exchanges, queues
#                                                   (python -m lhpn_shared.broker_accounts)
#   deploy/rabbitmq.sh vhost-delete NAME [USER...]  delete a vhost and the users given
#   deploy/rabbitmq.sh stop                         stop the node, every step bounded in time
# rabbitmqctl honours RABBITMQ_NODENAME, so the same commands serve a private test node.
set -euo pipefail

PIDF=/var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid
log() { echo "rabbitmq.sh: $*"; }

ensure() {
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        log "installing rabbitmq-server from apt"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
    fi
    # The package install may already have started the node: check before starting.
    if rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
        log "reusing running broker"
    else
        log "starting rabbitmq-server -detached"
        rabbitmq-server -detached
    fi
    rabbitmqctl -q wait --timeout 60 "$PIDF"  # await_startup right after -detached fails (rc 69)
    rabbitmqctl -q await_startup --timeout 60
    rabbitmq-diagnostics -q check_port_connectivity >/dev/null
    log "ready on 127.0.0.1:5672"
}

import_definitions() {
    # from stdin: no password on a command line, only salted hashes in the document
    rabbitmqctl -q import_definitions
    log "definitions imported"
}

vhost_delete() {
    local name=$1 user
    shift
    rabbitmqctl -q delete_vhost "$name" 2>/dev/null || log "no vhost $name"
    for user in "$@"; do rabbitmqctl -q delete_user "$user" 2>/dev/null || log "no user $user"; done
    log "vhost $name and $# user(s) gone"
}

stop() {
    # `rabbitmqctl stop <pidfile>` waits for the process the file names, and waits forever when
    # the file is missing or stale: every step here is bounded, and a node still running at the
    # end is killed by the pid it wrote.
    local pid=
    [ -f "$PIDF" ] && pid=$(tr -dc 0-9 <"$PIDF" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        timeout -k 5 60 rabbitmqctl -q stop "$PIDF" || log "rabbitmqctl stop did not finish in 60 s"
    else
        timeout -k 5 30 rabbitmqctl -q stop 2>/dev/null || log "no running node answered the stop"
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "node pid $pid still running: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped"
}

case "${1:-ensure}" in
    ensure) ensure ;;
    stop) stop ;;
    import-definitions) import_definitions ;;
    vhost-delete) [ $# -ge 2 ] || { echo "usage: $0 vhost-delete NAME [USER...]" >&2; exit 2; }
                  shift; vhost_delete "$@" ;;
    *) echo "usage: $0 [ensure | stop | import-definitions <FILE | vhost-delete NAME [USER...]]" >&2; exit 2 ;;
esac
