# shellcheck shell=bash
# Aperture lab hook: six more real Debian products, so the live lab runs at least thirty
# distinct ones: three DNS servers that tell their version to a version.bind CHAOS
# TXT query over TCP (Unbound, NSD, dnsmasq) and three web servers (mini_httpd, Caddy,
# Varnish in front of that mini_httpd). Written like 22-products.sh, which it follows.
#
# Sourced by scripts/lab with $1 = up|down after 20-services.sh (which routes
# 198.19.1.0/24 into $LAB_TGT_NS). Uses 198.19.1.212-230 only. On `up` it installs
# missing packages with policy-rc.d answering 101 (nothing starts on the host, and
# any new host listener of these daemons is stopped), starts every daemon with
# `ip netns exec $LAB_TGT_NS` and records its PID, waits (at most
# $LAB_MORE_TIMEOUT = 30 s) until every port answers from $LAB_SCAN_NS, naming what
# is missing, and writes $LAB_DIR/more.jsonl atomically with the columns of
# products.jsonl (ip, port, proto, service, product, version, risk, config, actual).
# On `down` it kills exactly the PIDs it recorded (checking each command name) and
# deletes $LAB_DIR/more.
#
# No packet leaves the lab: the DNS servers answer only from what they hold (Unbound:
# every IN name is a static local zone, no trust anchor, so nothing is ever queried
# upstream; NSD: authoritative only, no zones; dnsmasq: --no-resolv --no-hosts and no
# upstream server), Varnish's backend is the lab's mini_httpd, and the target
# namespace has no default route anyway.
# APERTURE_LAB_MORE=0 skips this hook.

MO_DIR=$LAB_DIR/more
MO_PIDS=$MO_DIR/pids
MO_GT=$LAB_DIR/more.jsonl
MO_TIMEOUT=${LAB_MORE_TIMEOUT:-30}
# dnsmasq binds only to addresses of an interface.
MO_DNSMASQ_IP=198.19.1.214

mo_log() { echo "lab: more: $*" >&2; }
mo_die() { echo "lab: more: error: $*" >&2; exit 1; }

# package:command that shows it is installed
MO_NEED=(
    unbound:/usr/sbin/unbound nsd:/usr/sbin/nsd dnsmasq-base:/usr/sbin/dnsmasq
    mini-httpd:/usr/sbin/mini_httpd caddy:/usr/bin/caddy varnish:/usr/sbin/varnishd
)
MO_DAEMONS='unbound|nsd|dnsmasq|mini_httpd|caddy|varnishd|cache-main'

mo_install() {
    local -a pkgs=()
    local e
    for e in "${MO_NEED[@]}"; do [ -e "${e#*:}" ] || pkgs+=("${e%%:*}"); done
    [ ${#pkgs[@]} -gt 0 ] || return 0
    mo_log "installing ${pkgs[*]}"
    local prc=/usr/sbin/policy-rc.d backup="" before rc=0
    if [ -e "$prc" ]; then backup=$(mktemp /tmp/aplab-prc.XXXXXX); cp -a "$prc" "$backup"; fi
    # shellcheck disable=SC2064
    trap "if [ -n '$backup' ]; then mv -f '$backup' '$prc'; else rm -f '$prc'; fi" EXIT
    printf '#!/bin/sh\nexit 101\n' >"$prc.aplab.$$"
    chmod 755 "$prc.aplab.$$"
    mv -f "$prc.aplab.$$" "$prc"
    before=$(ss -Hlntup | awk '{print $1, $5, $7}' | sort)
    env DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get -y -q -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install --no-install-recommends "${pkgs[@]}" >"$LAB_DIR/more-apt.log" 2>&1 || rc=1
    if [ -n "$backup" ]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
    trap - EXIT
    [ $rc -eq 0 ] || mo_die "apt-get install ${pkgs[*]} failed (see $LAB_DIR/more-apt.log)"
    local line pid comm
    while IFS= read -r line; do
        pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line" | head -n 1)
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ -n "$pid" ] && [[ $comm =~ ^($MO_DAEMONS)$ ]]; then
            mo_log "install started $comm (pid $pid) on the host: stopping it"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done < <(comm -13 <(echo "$before") <(ss -Hlntup | awk '{print $1, $5, $7}' | sort))
}

mo_alive() { # pid comm
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

# name comm log cmd... -- the daemon runs in the foreground; its own PID is recorded
# (ip netns exec, setpriv and env exec, they do not fork).
mo_spawn() {
    local name=$1 comm=$2 log=$3 pid _
    shift 3
    ip netns exec "$LAB_TGT_NS" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$name $pid $comm" >>"$MO_PIDS"
    for _ in $(seq 1 100); do
        mo_alive "$pid" "$comm" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    mo_alive "$pid" "$comm" || { tail -n 20 "$log" >&2 || true; mo_die "$name did not start (see $log)"; }
}

# Ground truth rows: ip port service product version risk config [actual]
# ("-" = none; actual defaults to product).
mo_truth() { printf "%q " "$@" >>"$MO_DIR/truth.txt"; echo >>"$MO_DIR/truth.txt"; }

mo_upstream() { # package -> upstream version as the daemon prints it
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed -e 's/^[0-9]*://' -e 's/[-+~].*//'
}


# ----------------------------------------------------------------------------- DNS

mo_unbound() {
    local D=$MO_DIR/unbound IP=198.19.1.212
    mkdir -p "$D"
    # No trust anchor, no validator, "." a static local zone: every IN question is
    # answered from here (NXDOMAIN), none is ever sent upstream.
    cat >"$D/unbound.conf" <<CONF
server:
    interface: $IP
    port: 53
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$D"
    pidfile: "$D/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    module-config: "iterator"
    access-control: 198.19.0.0/16 allow
    local-zone: "." static
    hide-version: no
    hide-identity: yes
remote-control:
    control-enable: no
CONF
    mo_spawn unbound unbound "$D/unbound.out" /usr/sbin/unbound -d -c "$D/unbound.conf"
    mo_truth $IP 53 dns Unbound "$(mo_upstream unbound)" name-service "no recursion: every zone local"
}

mo_nsd() {
    local D=$MO_DIR/nsd IP=198.19.1.213
    mkdir -p "$D"
    cat >"$D/nsd.conf" <<CONF
server:
    ip-address: $IP
    port: 53
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$D"
    database: ""
    zonelistfile: "$D/zone.list"
    xfrdfile: "$D/xfrd.state"
    xfrdir: "$D"
    pidfile: "$D/nsd.pid"
    logfile: "$D/nsd.log"
    hide-version: no
    verbosity: 0
remote-control:
    control-enable: no
CONF
    # NSD renames itself: the PID it started with becomes the "nsd: xfrd" parent,
    # whose SIGTERM stops the whole server.
    mo_spawn nsd "nsd: xfrd" "$D/nsd.out" /usr/sbin/nsd -d -c "$D/nsd.conf"
    mo_truth $IP 53 dns NSD "$(mo_upstream nsd)" name-service "authoritative, no zones"
}

mo_dnsmasq() {
    local D=$MO_DIR/dnsmasq IP=$MO_DNSMASQ_IP
    mkdir -p "$D"
    ip -n "$LAB_TGT_NS" addr replace $IP/32 dev lo
    mo_spawn dnsmasq dnsmasq "$D/dnsmasq.out" /usr/sbin/dnsmasq --keep-in-foreground \
        --conf-file=/dev/null --no-resolv --no-hosts --no-poll --listen-address=$IP \
        --bind-interfaces --port=53 --user=nobody --group=nogroup \
        --pid-file="$D/dnsmasq.pid" --log-facility=-
    mo_truth $IP 53 dns dnsmasq "$(mo_upstream dnsmasq-base)" name-service "--no-resolv --no-hosts, no upstream"
}

# ----------------------------------------------------------------------------- web

mo_mini_httpd() {
    local D=$MO_DIR/mini_httpd IP=198.19.1.215
    mkdir -p "$D/www"
    echo "<html><head><title>Lab mini_httpd</title></head><body>lab</body></html>" >"$D/www/index.html"
    chmod -R a+rX "$D"
    # -D: stay in the foreground, so the recorded PID is the server's.
    mo_spawn mini_httpd mini_httpd "$D/mini_httpd.out" /usr/sbin/mini_httpd -D -h $IP -p 80 \
        -d "$D/www" -u nobody -l "$D/access.log" -i "$D/mini_httpd.pid"
    mo_truth $IP 80 http mini_httpd "$(mo_upstream mini-httpd)" web "static page"
}

mo_caddy() {
    local D=$MO_DIR/caddy IP=198.19.1.216
    mkdir -p "$D/www" "$D/home"
    echo "<html><head><title>Lab Caddy</title></head><body>lab</body></html>" >"$D/www/index.html"
    # No admin endpoint, no automatic HTTPS (so no ACME traffic), state under $D.
    cat >"$D/Caddyfile" <<CONF
{
    admin off
    auto_https off
}
http://$IP:80 {
    bind $IP
    root * $D/www
    file_server
}
CONF
    mo_spawn caddy caddy "$D/caddy.out" env HOME="$D/home" XDG_DATA_HOME="$D/home" \
        XDG_CONFIG_HOME="$D/home" /usr/bin/caddy run --config "$D/Caddyfile" --adapter caddyfile
    # Caddy's Server header names no version.
    mo_truth $IP 80 http Caddy - web "file_server, automatic HTTPS off"
}

mo_varnish() {
    local D=$MO_DIR/varnish IP=198.19.1.217
    mkdir -p "$D/work"
    chmod 755 "$D" "$D/work"
    # In front of the lab's mini_httpd (198.19.1.215): the backend stays in the lab.
    # Its Server header is dropped, as sites behind a cache often do: what names the
    # product here is Varnish's own Via header.
    cat >"$D/lab.vcl" <<CONF
vcl 4.1;
backend default { .host = "198.19.1.215"; .port = "80"; }
sub vcl_backend_response { unset beresp.http.Server; }
CONF
    mo_spawn varnish varnishd "$D/varnishd.out" /usr/sbin/varnishd -F -a $IP:80 \
        -f "$D/lab.vcl" -n "$D/work" -s malloc,16m -p thread_pool_min=5 \
        -p thread_pools=1 -P "$D/varnishd.pid"
    # Via: 1.1 <host> (Varnish/7.1): the minor version only.
    mo_truth $IP 80 http "Varnish Cache" "$(mo_upstream varnish | cut -d. -f1,2)" web "caching mini_httpd, its Server header dropped"
}

# --------------------------------------------------------------------- readiness

mo_wait() {
    local deadline=$((SECONDS + MO_TIMEOUT)) missing ip port _r
    while :; do
        missing=""
        while read -r ip port _r; do
            ip netns exec "$LAB_SCAN_NS" timeout 1 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null \
                || missing+=" $ip:$port"
        done <"$MO_DIR/truth.txt"
        [ -z "$missing" ] && return 0
        if [ $SECONDS -ge $deadline ]; then
            mo_log "not listening after ${MO_TIMEOUT}s:$missing"
            return 1
        fi
        sleep 0.5
    done
}

mo_write_truth() {
    python3 - "$MO_DIR/truth.txt" "$MO_GT.tmp" <<'PY'
import json, shlex, sys
rows = []
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    ip, port, service, product, version, risk, config, *actual = shlex.split(line)
    rows.append({"ip": ip, "port": int(port), "proto": "tcp", "service": service,
                 "product": None if product == "-" else product,
                 "actual": actual[0] if actual else product,
                 "version": None if version == "-" else version, "risk": risk, "config": config})
rows.sort(key=lambda r: (tuple(map(int, r["ip"].split("."))), r["port"]))
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
PY
    mv -f "$MO_GT.tmp" "$MO_GT"
}

mo_up() {
    local t0=$SECONDS
    if [ -z "${LAB_TGT_NS:-}" ] || [ -z "${LAB_SCAN_NS:-}" ]; then mo_die "LAB_TGT_NS/LAB_SCAN_NS not set"; fi
    # Not `| grep -q`: under pipefail its early exit fails the pipe.
    [[ $(ip -n "$LAB_TGT_NS" route show table local) == *"local 198.19.1.0/24 "* ]] \
        || mo_die "198.19.1.0/24 is not routed in $LAB_TGT_NS: 20-services.sh must run first"
    mo_install
    rm -rf "$MO_DIR"
    mkdir -p "$MO_DIR"
    : >"$MO_PIDS"
    : >"$MO_DIR/truth.txt"
    chmod 755 "$MO_DIR"
    mo_unbound
    mo_nsd
    mo_dnsmasq
    mo_mini_httpd
    mo_caddy
    mo_varnish
    mo_wait || mo_die "more products not ready (logs in $MO_DIR)"
    mo_write_truth
    mo_log "$(wc -l <"$MO_GT") product ports up ($((SECONDS - t0))s)"
}

mo_down() {
    local name pid comm _
    if [ -s "$MO_PIDS" ]; then
        while read -r name pid comm; do
            mo_alive "$pid" "$comm" || continue
            kill -TERM "$pid" 2>/dev/null || true
        done < <(tac "$MO_PIDS")
        while read -r name pid comm; do
            for _ in $(seq 1 100); do mo_alive "$pid" "$comm" || break; sleep 0.1; done
            if mo_alive "$pid" "$comm"; then
                mo_log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$MO_PIDS"
    fi
    ip -n "$LAB_TGT_NS" addr del $MO_DNSMASQ_IP/32 dev lo 2>/dev/null || true
    rm -f "$MO_GT" "$MO_GT.tmp" "$LAB_DIR/more-apt.log"
    if [ -n "${LAB_DIR:-}" ] && [ "$MO_DIR" = "$LAB_DIR/more" ] && [ -d "$MO_DIR" ]; then
        rm -rf -- "$MO_DIR"
    fi
    return 0
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_MORE:-1}" = 0 ] || [ "${APERTURE_LAB_SERVICES:-1}" = 0 ]; then
            mo_log "skipped"
        else
            mo_up
        fi
        ;;
    down) mo_down ;;
    *) mo_die "usage: 24-more.sh up|down" ;;
esac
