#!/bin/sh
# SPDX-License-Identifier: MIT
# Start, restart or stop json-server (the stateful REST server of
# tests/replay/stateful_e2e.py) on 127.0.0.1:PORT with STATE_DIR/db.json.
# "restart" stops the server STATE_DIR/pid names, copies the pristine
# db.json beside this script over STATE_DIR/db.json and starts a fresh
# server, then waits until it answers: the state reset that
# `dyetap replay --before` runs before every replay.
# Usage: server.sh restart|stop JSON_SERVER_BIN STATE_DIR PORT
set -eu
cmd=$1 bin=$2 dir=$3 port=$4
here=$(cd "$(dirname "$0")" && pwd)
stop() {
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    rm -f "$dir/pid"
    kill -9 "$pid" 2>/dev/null || return 0
    i=0
    # Gone, or a zombie nobody reaped yet (it holds no port any more).
    while kill -0 "$pid" 2>/dev/null &&
        [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
        i=$((i + 1))
        [ $i -lt 200 ] || break
        sleep 0.05
    done
}
case "$cmd" in
stop)
    stop
    ;;
restart)
    stop
    mkdir -p "$dir"
    cp "$here/db.json" "$dir/db.json"
    node "$bin" --host 127.0.0.1 --port "$port" --quiet --no-gzip "$dir/db.json" \
        </dev/null >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    i=0
    until curl -sf -o /dev/null "http://127.0.0.1:$port/counters/1"; do
        i=$((i + 1))
        if [ $i -ge 300 ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            echo "server.sh: json-server did not start on port $port:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    ;;
*)
    echo "usage: server.sh restart|stop JSON_SERVER_BIN STATE_DIR PORT" >&2
    exit 2
    ;;
esac
