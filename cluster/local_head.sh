#!/usr/bin/env bash
# A local Ray head node for hair_ray with token auth, its own temp dir and its own ports.
#
#   cluster/local_head.sh start [extra `ray start` flags, e.g. --num-cpus=8 --num-gpus=1]
#   source "$HAIR_RAY_HEAD_DIR/env"        # RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH
#   jobs/submit.sh jobs/tiny_cpu.yaml
#   cluster/local_head.sh status
#   cluster/local_head.sh stop
#
# State lives in $HAIR_RAY_HEAD_DIR (default /tmp/hrhead-<uid>: short, because Ray's unix socket
# paths must stay under ~107 characters). `stop` ends exactly the processes this script started:
# the head's process group, then any descendant that left it. It never runs `ray stop`, which
# would end every Ray cluster on the machine, and never kills by process name.
#
# The token: $RAY_AUTH_TOKEN_PATH if it names a file, else a new random token written to
# $HAIR_RAY_HEAD_DIR/auth_token (mode 600). The token itself is never printed.
set -euo pipefail

STATE=${HAIR_RAY_HEAD_DIR:-/tmp/hrhead-$(id -u)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# The cluster's Python is the one a job's `python` resolves to: use the project venv when no
# venv is active, so jobs find hair_ray's dependencies.
if [[ -z "${VIRTUAL_ENV:-}" && -x "$ROOT/.venv/bin/ray" ]]; then
    export VIRTUAL_ENV="$ROOT/.venv"
    export PATH="$VIRTUAL_ENV/bin:$PATH"
fi
command -v ray >/dev/null || { echo "error: no \`ray\` on PATH; activate the project venv" >&2; exit 2; }

free_ports() {  # N free TCP ports, one per line
    python - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

free_port_block() {  # the first of 64 consecutive free ports, below the ephemeral range
    python - <<'EOF'
import random, socket
for _ in range(200):
    base, socks = random.randrange(20000, 29900), []
    try:
        for port in range(base, base + 64):
            s = socket.socket(); socks.append(s); s.bind(("", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
EOF
}

descendants() {  # every descendant pid of $1, deepest last
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

alive() { [[ -f "$STATE/head.pid" ]] && kill -0 "$(cat "$STATE/head.pid")" 2>/dev/null; }

start() {
    if alive; then
        echo "a head is already running from $STATE (pid $(cat "$STATE/head.pid")); stop it first" >&2
        exit 1
    fi
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    local token_path=${RAY_AUTH_TOKEN_PATH:-}
    if [[ -z "$token_path" || ! -s "$token_path" ]]; then
        token_path="$STATE/auth_token"
        (umask 077 && python -c 'import secrets; print(secrets.token_hex(32), end="")' >"$token_path")
    fi
    local ports base
    mapfile -t ports < <(free_ports 9)
    base=$(free_port_block)
    local dashboard_port=${HAIR_RAY_DASHBOARD_PORT:-${ports[0]}}

    # Token mode and the token file reach every Ray process (and so every job's driver) from here.
    RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$token_path" RAY_USAGE_STATS_ENABLED=0 \
        setsid ray start --head --block \
        --temp-dir="$STATE/ray" \
        --port="${ports[1]}" --node-manager-port="${ports[2]}" --object-manager-port="${ports[3]}" \
        --runtime-env-agent-port="${ports[4]}" --metrics-export-port="${ports[5]}" \
        --ray-client-server-port="${ports[6]}" --dashboard-agent-listen-port="${ports[7]}" \
        --dashboard-agent-grpc-port="${ports[8]}" \
        --min-worker-port="$base" --max-worker-port="$((base + 63))" \
        --include-dashboard=true --dashboard-host="${HAIR_RAY_DASHBOARD_HOST:-127.0.0.1}" \
        --dashboard-port="$dashboard_port" --disable-usage-stats \
        "$@" >"$STATE/head.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$STATE/head.pid"
    cat >"$STATE/env" <<EOF
export RAY_ADDRESS=http://127.0.0.1:$dashboard_port
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$token_path
EOF

    # Ready when the dashboard answers an authenticated request (job submission goes there).
    if ! python - "$dashboard_port" "$token_path" "$pid" <<'EOF'
import os, sys, time, urllib.request
port, token_path, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
token = open(token_path).read().strip()
request = urllib.request.Request(f"http://127.0.0.1:{port}/api/version", headers={"Authorization": f"Bearer {token}"})
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(request, timeout=5):
            sys.exit(0)
    except OSError:
        time.sleep(2)
sys.exit(1)
EOF
    then
        echo "error: the head did not come up; last lines of $STATE/head.log:" >&2
        tail -n 30 "$STATE/head.log" >&2
        stop
        exit 1
    fi
    echo "head running (pid $pid, state $STATE)"
    echo "RAY_ADDRESS=http://127.0.0.1:$dashboard_port"
    echo "token file: $token_path"
    echo "use it:  source $STATE/env && jobs/submit.sh jobs/tiny_cpu.yaml"
}

stop() {
    if [[ ! -f "$STATE/head.pid" ]]; then
        echo "no head recorded in $STATE"
        return 0
    fi
    local pid tree
    pid=$(cat "$STATE/head.pid")
    tree=$(descendants "$pid" || true)
    # `ray start --block` leads its own session (setsid): SIGTERM to the group shuts the node down.
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    # Workers that moved to a process group of their own (engine subprocesses) end here.
    for child in $tree; do
        kill -KILL "$child" 2>/dev/null || true
    done
    rm -f "$STATE/head.pid"
    echo "stopped the head started from $STATE"
}

status() {
    if alive; then
        echo "running (pid $(cat "$STATE/head.pid"), state $STATE)"
        cat "$STATE/env"
    else
        echo "not running (state $STATE)"
        return 1
    fi
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start [ray start flags] | stop | status   (state: \$HAIR_RAY_HEAD_DIR=$STATE)" >&2; exit 2 ;;
esac
