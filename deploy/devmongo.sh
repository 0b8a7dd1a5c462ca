#!/usr/bin/env bash
# Development MongoDB (mongo-java-server, see deploy/devmongo/DevMongo.java).
#   deploy/devmongo.sh build                 fetch the jars into deploy/devmongo/lib (only if missing/stale)
#   deploy/devmongo.sh start PORT DATADIR    start in the background (or reuse), wait until it answers ping
#   deploy/devmongo.sh stop DATADIR          SIGTERM (commit + close), SIGKILL after 30 s
# DATADIR gets mongo.mv, devmongo.pid and devmongo.log. JVM options: DEVMONGO_JAVA_OPTS (default -Xmx512m).
set -euo pipefail

MOD=$(cd "$(dirname "$0")/devmongo" && pwd)
LIB=$MOD/lib
log() { echo "devmongo.sh: $*"; }

build() {
    if [ -f "$LIB/.complete" ] && [ "$LIB/.complete" -nt "$MOD/pom.xml" ]; then return 0; fi
    log "fetching jars into $LIB"
    rm -rf "$LIB"
    local out
    out=$(cd "$MOD" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib 2>&1) \
        || { echo "$out" >&2; return 1; }
    touch "$LIB/.complete"
}

# MongoDB `ping` over a raw OP_MSG; exit 0 when the server at 127.0.0.1:$1 answers ok: 1.0.
ping() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, struct, sys
def doc(b): return struct.pack('<i', len(b) + 5) + b + b'\0'
body = b'\0\0\0\0\0' + doc(b'\x10ping\0' + struct.pack('<i', 1) + b'\x02$db\0' + struct.pack('<i', 6) + b'admin\0')
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)
s.sendall(struct.pack('<iiii', 16 + len(body), 1, 0, 2013) + body)
r = b''
while len(r) < 4 or len(r) < struct.unpack('<i', r[:4])[0]:
    chunk = s.recv(65536)
    if not chunk: break
    r += chunk
sys.exit(0 if b'\x01ok\0' + struct.pack('<d', 1.0) in r else 1)
PY
}

# pid from DATADIR/devmongo.pid if that process is alive and is a DevMongo
running_pid() {
    local pid
    pid=$(cat "$1/devmongo.pid" 2>/dev/null) || return 1
    cmdline "$pid" | grep -q DevMongo.java && echo "$pid"
}
cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

start() {
    local port=$1 data pid t0 skip
    mkdir -p "$2" && data=$(cd "$2" && pwd)
    if pid=$(running_pid "$data"); then
        if ! cmdline "$pid" | grep -q -- "--port $port "; then
            log "pid $pid already serves $data on another port; run: $0 stop $data" >&2
            return 1
        fi
        for _ in $(seq 150); do  # it may still be starting
            if ping "$port"; then log "reusing pid $pid on 127.0.0.1:$port"; return 0; fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        log "pid $pid serves $data but does not answer on port $port; run: $0 stop $data" >&2
        return 1
    fi
    if ping "$port"; then log "port $port already answers for another server" >&2; return 1; fi
    build
    t0=$(date +%s%N)
    touch "$data/devmongo.log"
    skip=$(( $(wc -c <"$data/devmongo.log") + 1 ))  # look for the "listening" line past this offset
    # setsid: own session, so the caller's Ctrl-C / process group kill does not reach it
    setsid java ${DEVMONGO_JAVA_OPTS:--Xmx512m} -cp "$LIB/*" "$MOD/DevMongo.java" --port "$port" --data "$data" \
        </dev/null >>"$data/devmongo.log" 2>&1 &
    pid=$!
    echo "$pid" >"$data/devmongo.pid"
    for _ in $(seq 600); do  # 60 s
        if tail -c "+$skip" "$data/devmongo.log" | grep -q "DevMongo listening on 127.0.0.1:$port" && ping "$port"; then
            log "pid $pid ready on 127.0.0.1:$port in $(( ($(date +%s%N) - t0) / 1000000 )) ms (log: $data/devmongo.log)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "failed to start; last lines of $data/devmongo.log:" >&2
    tail -n 20 "$data/devmongo.log" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$data/devmongo.pid"
    return 1
}

stop() {
    local data=$1 pid
    if ! pid=$(running_pid "$data"); then log "not running ($data)"; rm -f "$data/devmongo.pid"; return 0; fi
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM for 30 s, killing"; kill -9 "$pid"; fi
    rm -f "$data/devmongo.pid"
    log "stopped pid $pid"
}

case "${1:-}" in
    build) build ;;
    start) [ $# -eq 3 ] || { echo "usage: $0 start PORT DATADIR" >&2; exit 2; }; start "$2" "$3" ;;
    stop)  [ $# -eq 2 ] || { echo "usage: $0 stop DATADIR" >&2; exit 2; }; stop "$2" ;;
    *) echo "usage: $0 build | start PORT DATADIR | stop DATADIR" >&2; exit 2 ;;
esac
