# shellcheck shell=bash
# Aperture lab hook: hostile hosts on 198.19.2.0/24 in the target namespace.
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported.
# On `up`: routes 198.19.2.0/24 from $LAB_SCAN_NS via $LAB_TGT_IP and makes
# it local in $LAB_TGT_NS, starts scripts/lab-hostile.py there (one process,
# PID in $LAB_DIR/hostile.pid), waits for its ground truth
# $LAB_DIR/hostile.jsonl ({"ip","port","proto","behaviour"} per listener) and
# checks from $LAB_SCAN_NS that every listener accepts a connection.
# Behaviours (see lab-hostile.py): .1 silent (21 22 80 443), .2 drip (22 80),
# .3 endless (25 80), .4 tls-stall (443), .5 bad-cert (443), .6 bad-lengths (443).
# On `down`: stops that process (only if its command line is lab-hostile.py),
# removes the routes and the files.
#
# APERTURE_LAB_SERVICES=0 skips this hook too.

HOSTILE_NET=198.19.2.0/24
HOSTILE_PY=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lab-hostile.py
HOSTILE_GT=$LAB_DIR/hostile.jsonl
HOSTILE_PID=$LAB_DIR/hostile.pid
HOSTILE_LOG=$LAB_DIR/hostile.log
HOSTILE_TIMEOUT=${LAB_HOSTILE_TIMEOUT:-20}

hostile_log() { echo "lab: hostile: $*" >&2; }
hostile_die() { echo "lab: hostile: error: $*" >&2; exit 1; }

hostile_is_ours() { # pid
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$1/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'lab-hostile\.py'
}

hostile_down() {
    local pid _
    pid=$(tr -dc '0-9' <"$HOSTILE_PID" 2>/dev/null || true)
    if hostile_is_ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            hostile_is_ours "$pid" || break
            sleep 0.1
        done
        if hostile_is_ours "$pid"; then
            hostile_log "pid $pid ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    local ns
    for ns in "$LAB_SCAN_NS" "$LAB_TGT_NS"; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
        ip -n "$ns" route del "$HOSTILE_NET" 2>/dev/null || true
        ip -n "$ns" route del local "$HOSTILE_NET" dev lo table local 2>/dev/null || true
    done
    rm -f "$HOSTILE_GT" "$HOSTILE_GT".tmp.* "$HOSTILE_PID" "$HOSTILE_PID".tmp.* "$HOSTILE_LOG"
    return 0
}

hostile_up() {
    [ -r "$HOSTILE_PY" ] || hostile_die "missing $HOSTILE_PY"
    hostile_down >/dev/null 2>&1 || true
    ip -n "$LAB_SCAN_NS" route replace "$HOSTILE_NET" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
    ip -n "$LAB_TGT_NS" route replace local "$HOSTILE_NET" dev lo

    ip netns exec "$LAB_TGT_NS" "${PYTHON:-python3}" "$HOSTILE_PY" --net "$HOSTILE_NET" \
        --out "$HOSTILE_GT" --pidfile "$HOSTILE_PID" </dev/null >"$HOSTILE_LOG" 2>&1 &
    local pid=$!
    echo "$pid" >"$HOSTILE_PID"

    local deadline=$((SECONDS + HOSTILE_TIMEOUT))
    while [ ! -s "$HOSTILE_GT" ]; do
        # (kill -0 on our own fresh child: right after the fork its command
        # line is not yet python's.)
        kill -0 "$pid" 2>/dev/null || { cat "$HOSTILE_LOG" >&2; hostile_die "lab-hostile.py exited before it was ready"; }
        [ "$SECONDS" -lt "$deadline" ] || hostile_die "lab-hostile.py not ready after ${HOSTILE_TIMEOUT}s"
        sleep 0.1
    done
    [ "$(tr -dc '0-9' <"$HOSTILE_PID")" = "$pid" ] || hostile_die "pid file does not name pid $pid"
    hostile_is_ours "$pid" || hostile_die "pid $pid is not lab-hostile.py"

    # Every listener accepts, seen from the scanner's side.
    ip netns exec "$LAB_SCAN_NS" timeout 30 "${PYTHON:-python3}" - "$HOSTILE_GT" <<'PYEOF' \
        || hostile_die "hostile listeners not reachable from $LAB_SCAN_NS"
import json, socket, sys, time
deadline = time.monotonic() + 20
for line in open(sys.argv[1]):
    e = json.loads(line)
    while True:
        try:
            socket.create_connection((e["ip"], e["port"]), timeout=2).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                sys.exit(f"lab: hostile: {e['ip']}:{e['port']} ({e['behaviour']}): {exc}")
            time.sleep(0.1)
PYEOF
    hostile_log "$(wc -l <"$HOSTILE_GT") hostile listeners in $HOSTILE_NET (pid $pid)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_SERVICES:-1}" = 0 ]; then
            hostile_log "skipped (APERTURE_LAB_SERVICES=0)"
        else
            hostile_up
        fi
        ;;
    down) hostile_down ;;
    *) hostile_die "usage: 30-hostile.sh up|down" ;;
esac
