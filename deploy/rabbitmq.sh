#!/usr/bin/env bash
# Ensure a local RabbitMQ broker is installed and running (see PLATFORM-NOTES "RabbitMQ").
#   deploy/rabbitmq.sh                              install if missing, start if not running, wait
#   deploy/rabbitmq.sh vhost-create NAME USER PASS  fresh vhost + user with full permissions on it
#   deploy/rabbitmq.sh vhost-delete NAME USER       delete both
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

vhost_create() {
    local name=$1 user=$2 pass=$3 rc=0
    rabbitmqctl -q add_vhost "$name" 2>/dev/null || log "vhost $name exists"
    rabbitmqctl -q add_user "$user" "$pass" 2>/dev/null || rc=$?
    case $rc in
        0) ;;
        70) log "user $user exists, setting its password"
            rabbitmqctl -q change_password "$user" "$pass" ;;
        *) log "add_user $user failed (rc $rc)"; exit "$rc" ;;
    esac
    rabbitmqctl -q set_permissions -p "$name" "$user" ".*" ".*" ".*"
    log "vhost $name ready for user $user"
}

vhost_delete() {
    local name=$1 user=$2
    rabbitmqctl -q delete_vhost "$name" 2>/dev/null || log "no vhost $name"
    rabbitmqctl -q delete_user "$user" 2>/dev/null || log "no user $user"
    log "vhost $name and user $user gone"
}

case "${1:-ensure}" in
    ensure) ensure ;;
    vhost-create) [ $# -eq 4 ] || { echo "usage: $0 vhost-create NAME USER PASS" >&2; exit 2; }
                  vhost_create "$2" "$3" "$4" ;;
    vhost-delete) [ $# -eq 3 ] || { echo "usage: $0 vhost-delete NAME USER" >&2; exit 2; }
                  vhost_delete "$2" "$3" ;;
    *) echo "usage: $0 [ensure | vhost-create NAME USER PASS | vhost-delete NAME USER]" >&2; exit 2 ;;
esac
