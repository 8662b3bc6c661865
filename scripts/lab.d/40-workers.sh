# shellcheck shell=bash
# Aperture lab hook: worker hosts, each its own network namespace with its own
# source address into the lab, so tests can tell which worker sent what.
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported
# (see the header of scripts/lab). $APERTURE_LAB_WORKERS workers (default 3,
# 0 = none, at most 8). With P = $LAB_SCAN_NS without its "-scan" suffix
# (aplab-scan -> aplab, apself-scan -> apself) and S = P cut to 11 characters,
# worker N (1..W) is:
#   namespace  P-wN (aplab-w1), loopback up, no default route
#   control    veth ScNw (in P-wN, 198.19.253.(4N-2)/30)
#              <-> ScNs (in $LAB_SCAN_NS, 198.19.253.(4N-3)/30): the coordinator
#              and nats-server run in $LAB_SCAN_NS; workers reach them there
#   probe      veth SpNw (in P-wN, 198.19.252.(4N-2)/30)
#              <-> SpNt (in $LAB_TGT_NS, 198.19.252.(4N-3)/30); in P-wN every
#              network $LAB_TGT_NS makes local on lo when this hook runs
#              (198.18.0.0/16, and 198.19.1.0/24, .2.0/24, .3.0/24 when the
#              services/hostile/DNS hooks ran) is routed via 198.19.252.(4N-3)
#              with src 198.19.252.(4N-2): that is the source of the worker's
#              probes. The target namespace answers through the connected /30.
# (aplab: aplabc1w/aplabc1s, aplabp1w/aplabp1t.) The workers reach nothing
# else: nothing forwards between namespaces, and no namespace has a default route.
#
# nftables in $LAB_TGT_NS, table `inet aplab_workers` (replaced on up, deleted
# on down), base chain at prerouting priority raw (before the listeners):
#   counter probes_wN    TCP SYNs (syn set, ack clear) from worker N's probe
#                        address to 198.18.0.0/15
#   counter probes_other such SYNs from any other source
#   set blocked          (type ipv4_addr) every packet whose source is in it is
#                        dropped -- after the counters, so a blocked worker's
#                        probes still count as sent.
#   ip netns exec aplab-tgt nft -j list counter inet aplab_workers probes_w1
#   ip netns exec aplab-tgt nft add element inet aplab_workers blocked '{ 198.19.252.2 }'
#   ip netns exec aplab-tgt nft delete element inet aplab_workers blocked '{ 198.19.252.2 }'
# The counters start at zero when `up` returns (the hook's own checks are reset).
#
# lab.env gains LAB_WORKERS=W and, per worker N: LAB_WORKER_NS_N,
# LAB_WORKER_SRC_N (probe source), LAB_WORKER_BUS_N (scan-side control address,
# where the worker connects to nats-server), LAB_WORKER_CTL_N (worker-side
# control address), LAB_WORKER_IF_N (the worker's probe interface).
#
# `up` checks, per worker: no default route, `ip route get 198.18.0.1` says
# src 198.19.252.(4N-2), a TCP connect to a ground-truth open port succeeds
# and is counted in probes_wN, 198.19.1.10:80 answers when the services hook
# ran, and TCP from the control address to 4222 on the bus address is answered
# (accepted or refused, never silently dropped).
# `down` deletes the table, every P-w1..P-w8 namespace and the lab-side veth
# ends (also those of a bigger W of an earlier `up`). It kills no process: one
# still in a worker namespace is named in a warning.
# Nothing here sends a packet anywhere but inside the lab's namespaces.

WORKERS_MAX=8
WORKERS_N=${APERTURE_LAB_WORKERS:-3}
WORKERS_PREFIX=${LAB_SCAN_NS%-scan}
WORKERS_SHORT=${WORKERS_PREFIX:0:11}
WORKERS_TABLE=aplab_workers
WORKERS_PROBE_NET=198.18.0.0/15
WORKERS_BUS_PORT=4222
WORKERS_ENV=$LAB_DIR/lab.env
WORKERS_PY=${PYTHON:-python3}

workers_log() { echo "lab: workers: $*" >&2; }
workers_die() { echo "lab: workers: error: $*" >&2; exit 1; }

workers_ns()       { echo "$WORKERS_PREFIX-w$1"; }
workers_ctl_w()    { echo "${WORKERS_SHORT}c$1w"; }   # in the worker namespace
workers_ctl_s()    { echo "${WORKERS_SHORT}c$1s"; }   # in $LAB_SCAN_NS
workers_probe_w()  { echo "${WORKERS_SHORT}p$1w"; }   # in the worker namespace
workers_probe_t()  { echo "${WORKERS_SHORT}p$1t"; }   # in $LAB_TGT_NS
workers_ctl_ip()   { echo "198.19.253.$((4 * $1 - 2))"; }
workers_bus_ip()   { echo "198.19.253.$((4 * $1 - 3))"; }
workers_src_ip()   { echo "198.19.252.$((4 * $1 - 2))"; }
workers_gw_ip()    { echo "198.19.252.$((4 * $1 - 3))"; }

workers_ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# lab.env without this hook's keys (stdin -> stdout).
workers_strip_env() { grep -v -E '^LAB_WORKERS?(_[A-Z]+_[0-9]+)?=' || true; }

workers_down() {
    local n ns others
    if workers_ns_exists "$LAB_TGT_NS"; then
        ip netns exec "$LAB_TGT_NS" nft delete table inet "$WORKERS_TABLE" 2>/dev/null || true
    fi
    for n in $(seq 1 "$WORKERS_MAX"); do
        ns=$(workers_ns "$n")
        if workers_ns_exists "$ns"; then
            others=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
            [ -n "${others// /}" ] && workers_log "warning: processes still in $ns (not ours to kill): $others"
            ip netns del "$ns" 2>/dev/null || workers_log "warning: cannot delete namespace $ns"
        fi
        # A namespace some process still holds outlives its name: cut its links
        # from the lab's side too, so a new `up` can make them again.
        if workers_ns_exists "$LAB_SCAN_NS"; then
            ip -n "$LAB_SCAN_NS" link del "$(workers_ctl_s "$n")" 2>/dev/null || true
        fi
        if workers_ns_exists "$LAB_TGT_NS"; then
            ip -n "$LAB_TGT_NS" link del "$(workers_probe_t "$n")" 2>/dev/null || true
        fi
    done
    if [ -f "$WORKERS_ENV" ]; then
        workers_strip_env <"$WORKERS_ENV" >"$WORKERS_ENV.workers.tmp"
        mv -f "$WORKERS_ENV.workers.tmp" "$WORKERS_ENV"
    fi
    rm -f "$WORKERS_ENV.workers.tmp"
    return 0
}

# Networks inside 198.18.0.0/15 that $LAB_TGT_NS makes local on lo
# (prefixes, not addresses).
workers_lab_nets() {
    ip -n "$LAB_TGT_NS" route show table local dev lo \
        | awk '$1 == "local" && $2 ~ /^198\.1[89]\.[0-9.]+\/[0-9]+$/ {print $2}' | sort -V -u
}

workers_counter() { # name -> packets
    ip netns exec "$LAB_TGT_NS" nft list counter inet "$WORKERS_TABLE" "$1" \
        | sed -n 's/.*packets \([0-9]*\).*/\1/p' | head -n 1
}

workers_nft_rules() { # W
    local n
    echo "table inet $WORKERS_TABLE"
    echo "delete table inet $WORKERS_TABLE"
    echo "table inet $WORKERS_TABLE {"
    for n in $(seq 1 "$1"); do echo "    counter probes_w$n { }"; done
    echo "    counter probes_other { }"
    echo "    set blocked { type ipv4_addr; }"
    echo "    chain syn {"
    for n in $(seq 1 "$1"); do
        echo "        ip saddr $(workers_src_ip "$n") counter name \"probes_w$n\" return"
    done
    echo "        counter name \"probes_other\""
    echo "    }"
    echo "    chain prerouting {"
    echo "        type filter hook prerouting priority raw; policy accept;"
    echo "        ip daddr $WORKERS_PROBE_NET tcp flags & (syn | ack) == syn jump syn"
    echo "        ip saddr @blocked drop"
    echo "    }"
    echo "}"
}

workers_up() {
    if ! [[ $WORKERS_N =~ ^[0-9]+$ ]] || [ "$((10#$WORKERS_N))" -gt "$WORKERS_MAX" ]; then
        workers_die "APERTURE_LAB_WORKERS must be 0..$WORKERS_MAX, not '$WORKERS_N'"
    fi
    WORKERS_N=$((10#$WORKERS_N))
    [ -n "$WORKERS_PREFIX" ] || workers_die "empty namespace prefix (LAB_SCAN_NS=$LAB_SCAN_NS)"
    workers_down >/dev/null 2>&1 || true
    [ -f "$WORKERS_ENV" ] || workers_die "no $WORKERS_ENV"
    if [ "$WORKERS_N" -eq 0 ]; then
        echo "LAB_WORKERS=0" >>"$WORKERS_ENV"
        workers_log "none (APERTURE_LAB_WORKERS=0)"
        return 0
    fi
    need_cmd nft nftables

    local -a nets
    mapfile -t nets < <(workers_lab_nets)
    [ ${#nets[@]} -gt 0 ] || workers_die "$LAB_TGT_NS makes no network local"

    local n ns net src gw
    for n in $(seq 1 "$WORKERS_N"); do
        ns=$(workers_ns "$n")
        src=$(workers_src_ip "$n")
        gw=$(workers_gw_ip "$n")
        if [ "$ns" = "$LAB_SCAN_NS" ] || [ "$ns" = "$LAB_TGT_NS" ]; then
            workers_die "worker namespace $ns is a lab namespace"
        fi
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # Both veth ends made directly inside their namespaces.
        ip link add name "$(workers_ctl_w "$n")" netns "$ns" type veth \
            peer name "$(workers_ctl_s "$n")" netns "$LAB_SCAN_NS"
        ip link add name "$(workers_probe_w "$n")" netns "$ns" type veth \
            peer name "$(workers_probe_t "$n")" netns "$LAB_TGT_NS"
        ip -n "$ns" addr add "$(workers_ctl_ip "$n")/30" dev "$(workers_ctl_w "$n")"
        ip -n "$LAB_SCAN_NS" addr add "$(workers_bus_ip "$n")/30" dev "$(workers_ctl_s "$n")"
        ip -n "$ns" addr add "$src/30" dev "$(workers_probe_w "$n")"
        ip -n "$LAB_TGT_NS" addr add "$gw/30" dev "$(workers_probe_t "$n")"
        ip -n "$ns" link set "$(workers_ctl_w "$n")" up
        ip -n "$LAB_SCAN_NS" link set "$(workers_ctl_s "$n")" up
        ip -n "$ns" link set "$(workers_probe_w "$n")" up
        ip -n "$LAB_TGT_NS" link set "$(workers_probe_t "$n")" up
        # As on the scanner's side: MTU-sized frames for pcap-based tools.
        ip netns exec "$ns" ethtool -K "$(workers_probe_w "$n")" tso off gso off gro off >/dev/null
        for net in "${nets[@]}"; do
            ip -n "$ns" route add "$net" via "$gw" dev "$(workers_probe_w "$n")" src "$src"
        done
        if ip -n "$ns" route show default | grep -q .; then
            workers_die "namespace $ns has a default route"
        fi
        ip -n "$ns" route get 198.18.0.1 | grep -q " src $src " \
            || workers_die "$ns: route to 198.18.0.1 does not use src $src: $(ip -n "$ns" route get 198.18.0.1)"
    done

    workers_nft_rules "$WORKERS_N" | ip netns exec "$LAB_TGT_NS" nft -f - \
        || workers_die "cannot load nft table inet $WORKERS_TABLE in $LAB_TGT_NS"

    # Every worker: a ground-truth port, the services' web server when that
    # hook ran, and its bus address (answered, refused or accepted).
    local gt first_ip first_port
    gt=$LAB_DIR/ground-truth.jsonl
    read -r first_ip first_port < <("$WORKERS_PY" -c '
import json, sys
e = json.loads(open(sys.argv[1]).readline())
print(e["ip"], e["port"])' "$gt") || workers_die "cannot read $gt"
    local -a checks
    for n in $(seq 1 "$WORKERS_N"); do
        ns=$(workers_ns "$n")
        checks=("open:$first_ip:$first_port" "answer:$(workers_bus_ip "$n"):$WORKERS_BUS_PORT")
        printf '%s\n' "${nets[@]}" | grep -qx '198.19.1.0/24' && checks+=("open:198.19.1.10:80")
        ip netns exec "$ns" timeout 30 "$WORKERS_PY" - "${checks[@]}" <<'PYEOF' \
            || workers_die "$ns cannot reach the lab"
import socket, sys, time
for check in sys.argv[1:]:
    kind, ip, port = check.split(":")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((ip, int(port)), timeout=2).close()
            break
        except ConnectionRefusedError as exc:
            if kind == "answer":
                break
            err = exc
        except OSError as exc:
            err = exc
        if time.monotonic() > deadline:
            sys.exit(f"lab: workers: {ip}:{port} ({kind}): {err}")
        time.sleep(0.1)
PYEOF
        local count
        count=$(workers_counter "probes_w$n")
        [ "${count:-0}" -ge 1 ] || workers_die "counter probes_w$n did not count $ns's SYN (packets ${count:-?})"
    done
    local c
    for c in $(seq 1 "$WORKERS_N") other; do
        [ "$c" = other ] || c=w$c
        ip netns exec "$LAB_TGT_NS" nft reset counter inet "$WORKERS_TABLE" "probes_$c" >/dev/null
    done

    {
        workers_strip_env <"$WORKERS_ENV"
        echo "LAB_WORKERS=$WORKERS_N"
        for n in $(seq 1 "$WORKERS_N"); do
            echo "LAB_WORKER_NS_$n=$(workers_ns "$n")"
            echo "LAB_WORKER_SRC_$n=$(workers_src_ip "$n")"
            echo "LAB_WORKER_BUS_$n=$(workers_bus_ip "$n")"
            echo "LAB_WORKER_CTL_$n=$(workers_ctl_ip "$n")"
            echo "LAB_WORKER_IF_$n=$(workers_probe_w "$n")"
        done
    } >"$WORKERS_ENV.workers.tmp"
    mv -f "$WORKERS_ENV.workers.tmp" "$WORKERS_ENV"
    workers_log "W=$WORKERS_N: $(workers_ns 1)..$(workers_ns "$WORKERS_N"), probe sources 198.19.252.(4N-2), bus 198.19.253.(4N-3), routed: ${nets[*]}"
}

case ${1:-} in
    up) workers_up ;;
    down) workers_down ;;
    *) workers_die "usage: 40-workers.sh up|down" ;;
esac
