# shellcheck shell=bash
# Aperture lab hook: real Debian UDP services, for the UDP probes of `aperture scan`.
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported (see the
# header of scripts/lab). Everything of it lives under $LAB_DIR/udp/.
#
# On `up` it:
#   - installs what is missing of unbound nsd chrony snmpd memcached coturn kamailio
#     minissdpd samba (nmbd) avahi-daemon tftpd-hpa, with /usr/sbin/policy-rc.d answering 101
#     meanwhile so nothing starts on the host (and stops any of them then seen
#     listening on the host);
#   - routes 198.19.5.0/24 from $LAB_SCAN_NS via $LAB_TGT_IP, local in $LAB_TGT_NS;
#     turns ICMP rate limiting off in $LAB_TGT_NS (closed ports must all answer);
#   - starts in $LAB_TGT_NS, on its own addresses:
#       198.19.5.53   unbound  53 and 5300 (recursive, open to everyone)
#       198.19.5.54   nsd      53 (authoritative for udp.test only)
#       198.19.5.123  chronyd  123 (serves clients, local stratum 8, no clock control)
#       198.19.5.161  snmpd    161 and 1161 (v1/v2c community public)
#       198.19.5.211  memcached -U 11211 (UDP on, TCP off)
#       198.19.5.34   coturn   3478 (STUN/TURN, no TLS)
#       198.19.5.60   kamailio 5060 (answers OPTIONS)
#       198.19.5.137  nmbd     137 (netbios name APLABNB, workgroup APERTURE)
#       198.19.5.69   in.tftpd 69 (tftpd-hpa; answers from a new port)
#       $LAB_TGT_IP   minissdpd 1900 (one service submitted), avahi-daemon 5353
#     198.19.5.99 runs nothing: its ports answer ICMP port unreachable;
#   - waits ($LAB_UDP_TIMEOUT, 60 s) until every socket is bound;
#   - writes $LAB_DIR/udp-truth.jsonl, one object per open (ip, port):
#       ip, port, proto "udp", service, product|null, version|null
#     (product/version only where the protocol reveals them, read from the installed
#     programs), and $LAB_DIR/udp.env (LAB_UDP_NET, LAB_UDP_CLOSED, LAB_UDP_PORTS —
#     the `-p` of a scan that covers every service, unusual ports named).
# On `down` it stops exactly the daemons whose PIDs it recorded in $LAB_DIR/udp/pids
# and removes its routes and files.
#
# Skipped with APERTURE_LAB_UDP=0, and in a bare lab (APERTURE_LAB_SERVICES=0) unless
# APERTURE_LAB_UDP=1. Nothing here sends a packet anywhere but inside the lab.

UDP_NET=198.19.5.0/24
UDP_DIR=$LAB_DIR/udp
UDP_PIDS=$UDP_DIR/pids
UDP_TRUTH=$LAB_DIR/udp-truth.jsonl
UDP_ENV=$LAB_DIR/udp.env
UDP_TIMEOUT=${LAB_UDP_TIMEOUT:-60}
UDP_CLOSED=198.19.5.99
UDP_PORTS='U:53,69,123,137,161,1900,3478,5060,5353,11211,5300=dns,1161=snmp'

udp_log() { echo "lab: udp: $*" >&2; }
udp_die() { echo "lab: udp: error: $*" >&2; exit 1; }

udp_skip() {
    [ "${APERTURE_LAB_UDP:-}" = 0 ] && return 0
    [ "${APERTURE_LAB_SERVICES:-}" = 0 ] && [ "${APERTURE_LAB_UDP:-}" != 1 ] && return 0
    return 1
}

udp_prc_restore() {
    [ -n "${UDP_PRC:-}" ] || return 0
    if [ -n "${UDP_PRC_BACKUP:-}" ]; then
        mv -f "$UDP_PRC_BACKUP" "$UDP_PRC"
    else
        rm -f "$UDP_PRC"
    fi
    UDP_PRC=""
}

udp_install() {
    local -a pkgs=()
    [ -x /usr/sbin/unbound ] || pkgs+=(unbound)
    [ -x /usr/sbin/nsd ] || pkgs+=(nsd)
    [ -x /usr/sbin/chronyd ] || pkgs+=(chrony)
    [ -x /usr/sbin/snmpd ] || pkgs+=(snmpd)
    command -v memcached >/dev/null 2>&1 || pkgs+=(memcached)
    command -v turnserver >/dev/null 2>&1 || pkgs+=(coturn)
    [ -x /usr/sbin/kamailio ] || pkgs+=(kamailio)
    [ -x /usr/sbin/minissdpd ] || pkgs+=(minissdpd)
    [ -x /usr/sbin/nmbd ] || pkgs+=(samba)
    [ -x /usr/sbin/avahi-daemon ] || pkgs+=(avahi-daemon)
    [ -x /usr/sbin/in.tftpd ] || pkgs+=(tftpd-hpa)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    udp_log "installing ${pkgs[*]}"
    local rc=0 log=$LAB_DIR/udp-apt.log
    UDP_PRC=/usr/sbin/policy-rc.d
    UDP_PRC_BACKUP=""
    if [ -e "$UDP_PRC" ] || [ -L "$UDP_PRC" ]; then
        UDP_PRC_BACKUP=$(mktemp /tmp/apudp-policy-rc.d.XXXXXX)
        cp -a "$UDP_PRC" "$UDP_PRC_BACKUP"
    fi
    trap udp_prc_restore EXIT
    printf '#!/bin/sh\n# Aperture lab: no service may start while packages are installed.\nexit 101\n' \
        >"$UDP_PRC.apudp.$$"
    chmod 755 "$UDP_PRC.apudp.$$"
    mv -f "$UDP_PRC.apudp.$$" "$UDP_PRC"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! timeout 600 "${apt[@]}" install "${pkgs[@]}" >"$log" 2>&1; then
        timeout 300 "${apt[@]}" update >>"$log" 2>&1 || true
        timeout 600 "${apt[@]}" install "${pkgs[@]}" >>"$log" 2>&1 || rc=1
    fi
    udp_prc_restore
    trap - EXIT
    [ "$rc" -eq 0 ] || udp_die "apt-get install ${pkgs[*]} failed (see $log)"
    rm -f "$log"
    # Whatever still started on the host is stopped (by PID, only these programs).
    local pid
    for pid in $(pgrep -x 'unbound|nsd|chronyd|snmpd|turnserver|kamailio|minissdpd|nmbd|avahi-daemon|in.tftpd' || true); do
        if [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/1/ns/net)" ]; then
            udp_log "stopping $(cat "/proc/$pid/comm" 2>/dev/null) ($pid) started on the host by its package"
            kill "$pid" 2>/dev/null || true
        fi
    done
}

# Starts a daemon in the target namespace; records "pid comm".
udp_start() {
    local comm=$1 name=$2
    shift 2
    ip netns exec "$LAB_TGT_NS" setsid "$@" >"$UDP_DIR/$name.log" 2>&1 </dev/null &
    echo "$! $comm" >>"$UDP_PIDS"
}

udp_configs() {
    local d=$UDP_DIR
    cat >"$d/unbound.conf" <<EOF
server:
  interface: 198.19.5.53@53
  interface: 198.19.5.53@5300
  access-control: 0.0.0.0/0 allow
  do-ip6: no
  do-tcp: no
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  hide-version: no
  do-daemonize: no
  num-threads: 1
remote-control:
  control-enable: no
EOF
    cat >"$d/udp.test.zone" <<'EOF'
$ORIGIN udp.test.
$TTL 300
@ IN SOA ns.udp.test. hostmaster.udp.test. 1 3600 600 86400 300
@ IN NS ns.udp.test.
ns IN A 198.19.5.54
www IN A 198.19.5.54
EOF
    cat >"$d/nsd.conf" <<EOF
server:
  ip-address: 198.19.5.54
  port: 53
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$d"
  pidfile: "$d/nsd.pid"
  database: ""
  xfrdfile: "$d/xfrd.state"
  xfrdir: "$d"
  zonelistfile: "$d/zone.list"
  logfile: "$d/nsd-log"
  hide-version: no
  server-count: 1
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: udp.test
  zonefile: udp.test.zone
EOF
    cat >"$d/chrony.conf" <<EOF
bindaddress 198.19.5.123
port 123
allow all
local stratum 8
cmdport 0
pidfile $d/chronyd.pid
driftfile $d/chrony.drift
EOF
    cat >"$d/snmpd.conf" <<EOF
rocommunity public default
sysLocation aperture-lab
sysContact lab@aperture.invalid
EOF
    local sl=(/usr/lib/*/kamailio/modules/sl.so)
    [ -f "${sl[0]}" ] || udp_die "kamailio's sl module is missing"
    cat >"$d/kamailio.cfg" <<EOF
#!KAMAILIO
debug=0
log_stderror=yes
children=1
auto_aliases=no
listen=udp:198.19.5.60:5060
mpath="${sl[0]%/sl.so}/"
loadmodule "sl.so"
request_route {
    if (method == "OPTIONS") {
        sl_send_reply("200", "OK");
        exit;
    }
    sl_send_reply("404", "Not Here");
}
EOF
    mkdir -p "$d/samba/lock" "$d/samba/state" "$d/samba/cache" "$d/samba/private" "$d/samba/pid"
    cat >"$d/smb.conf" <<EOF
[global]
  netbios name = APLABNB
  workgroup = APERTURE
  interfaces = 198.19.5.137/24
  bind interfaces only = yes
  lock directory = $d/samba/lock
  state directory = $d/samba/state
  cache directory = $d/samba/cache
  private dir = $d/samba/private
  pid directory = $d/samba/pid
  log file = $d/samba/log.%m
  disable spoolss = yes
  load printers = no
EOF
    mkdir -p "$d/avahi"
    cat >"$d/avahi.conf" <<EOF
[server]
host-name=aplab-udp
use-ipv4=yes
use-ipv6=no
allow-interfaces=$LAB_TGT_IF
enable-dbus=no
[publish]
publish-workstation=yes
publish-hinfo=no
[reflector]
[rlimits]
EOF
}

udp_up() {
    # A failing command says which, rather than failing the hook in silence.
    trap 'udp_log "failed (line $LINENO): $BASH_COMMAND"' ERR
    udp_install
    rm -rf "$UDP_DIR"
    mkdir -p "$UDP_DIR"
    : >"$UDP_PIDS"
    ip -n "$LAB_SCAN_NS" route replace "$UDP_NET" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
    ip -n "$LAB_TGT_NS" route replace local "$UDP_NET" dev lo
    # nmbd binds only to interface addresses.
    ip -n "$LAB_TGT_NS" addr replace 198.19.5.137/24 dev lo
    ip netns exec "$LAB_TGT_NS" sysctl -qw net.ipv4.icmp_ratelimit=0
    udp_configs
    local d=$UDP_DIR
    udp_start unbound unbound /usr/sbin/unbound -d -c "$d/unbound.conf"
    udp_start nsd nsd /usr/sbin/nsd -d -c "$d/nsd.conf"
    udp_start chronyd chronyd /usr/sbin/chronyd -d -x -u root -f "$d/chrony.conf"
    udp_start snmpd snmpd env SNMP_PERSISTENT_DIR="$d" MIBS= /usr/sbin/snmpd -f -Lo -C \
        -c "$d/snmpd.conf" udp:198.19.5.161:161,udp:198.19.5.161:1161
    udp_start memcached memcached memcached -U 11211 -p 0 -l 198.19.5.211 -u nobody -m 16
    udp_start turnserver coturn turnserver -n --listening-ip=198.19.5.34 --listening-port=3478 \
        --relay-ip=198.19.5.34 --no-tls --no-dtls --no-cli --no-tcp --log-file=stdout \
        --simple-log --pidfile="$d/turnserver.pid" --realm=aperture.invalid \
        --userdb="$d/turndb"
    udp_start kamailio kamailio /usr/sbin/kamailio -f "$d/kamailio.cfg" -DD -E -P "$d/kamailio.pid" \
        -Y "$d"
    udp_start nmbd nmbd /usr/sbin/nmbd -F --debug-stdout --no-process-group -s "$d/smb.conf"
    udp_start minissdpd minissdpd /usr/sbin/minissdpd -d -i "$LAB_TGT_IP" \
        -s "$d/minissdpd.sock" -p "$d/minissdpd.pid"
    mkdir -p "$d/tftp"
    udp_start in.tftpd tftpd /usr/sbin/in.tftpd -L -a 198.19.5.69:69 -u nobody -s "$d/tftp"
    udp_start avahi-daemon avahi /usr/sbin/avahi-daemon --no-drop-root --no-chroot \
        --no-rlimits -f "$d/avahi.conf"

    local want=(198.19.5.53:53 198.19.5.53:5300 198.19.5.54:53 198.19.5.123:123
        198.19.5.161:161 198.19.5.161:1161 198.19.5.211:11211 198.19.5.34:3478
        198.19.5.60:5060 198.19.5.137:137 198.19.5.69:69 "[*]:1900|0.0.0.0:1900" "[*]:5353|0.0.0.0:5353")
    local deadline=$((SECONDS + UDP_TIMEOUT)) missing w bound
    while :; do
        bound=$(ip netns exec "$LAB_TGT_NS" ss -Hlnu | awk '{print $4}')
        missing=()
        for w in "${want[@]}"; do
            grep -qxE "$w" <<<"$bound" || missing+=("$w")
        done
        [ -S "$d/minissdpd.sock" ] || missing+=(minissdpd.sock)
        [ ${#missing[@]} -eq 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 5 "$d"/*.log "$d"/samba/log.* >&2 2>/dev/null || true
            udp_die "not listening after ${UDP_TIMEOUT}s: ${missing[*]}"
        fi
        sleep 0.5
    done
    # minissdpd answers M-SEARCH for the services submitted to it (request type 4:
    # ST, USN, server, location, each length-prefixed). A gateway announces its root
    # device and every device and service under it, so one `ssdp:all` gets one reply
    # per entry: eight here, the reflection amplifier the service's policy must flag
    # (replies above ten times the request).
    "${PYTHON:-python3}" - "$d/minissdpd.sock" "$LAB_TGT_IP" <<'EOF'
import socket, sys
def field(s):
    b = s.encode()
    assert len(b) < 128
    return bytes([len(b)]) + b
ip = sys.argv[2]
types = ["urn:schemas-upnp-org:device:InternetGatewayDevice:1", "upnp:rootdevice",
         "urn:schemas-upnp-org:device:WANDevice:1",
         "urn:schemas-upnp-org:device:WANConnectionDevice:1",
         "urn:schemas-upnp-org:service:Layer3Forwarding:1",
         "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
         "urn:schemas-upnp-org:service:WANIPConnection:1",
         "urn:schemas-upnp-org:service:WANIPConnection:2"]
import time
for st in types:
    req = b"\x04" + field(st) + field(f"uuid:aperture-lab-0001::{st}") \
        + field("Debian/12 UPnP/1.1 ApertureLab/1.0") + field(f"http://{ip}:5000/rootDesc.xml")
    for attempt in range(50):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            s.sendall(req)
            s.close()
            break
        except OSError as e:
            if attempt == 49:
                sys.exit(f"lab: udp: error: cannot submit a service to minissdpd: {e}")
            time.sleep(0.2)
EOF
    udp_truth
}

udp_truth() {
    local unbound_v nsd_v memcached_v coturn_v kamailio_v
    # Whole outputs first: a reader that stops early would SIGPIPE the writer (pipefail).
    local text
    text=$(/usr/sbin/unbound -V 2>&1 || true)
    unbound_v=$(awk '/^Version/ && !v {v = $2} END {print v}' <<<"$text")
    text=$(/usr/sbin/nsd -v 2>&1 || true)
    nsd_v=$(awk '/NSD version/ && !v {v = $3} END {print v}' <<<"$text")
    text=$(memcached -V 2>&1 || true)
    memcached_v=$(awk 'NR == 1 {print $2}' <<<"$text")
    text=$(dpkg-query -W -f '${Version}' coturn 2>/dev/null || true)
    coturn_v=${text%-*}
    text=$(/usr/sbin/kamailio -v 2>&1 || true)
    kamailio_v=$(awk 'NR == 1 {print $3}' <<<"$text")
    for text in "$unbound_v" "$nsd_v" "$memcached_v" "$coturn_v" "$kamailio_v"; do
        [ -n "$text" ] || udp_die "cannot read the installed versions (unbound '$unbound_v' nsd '$nsd_v' memcached '$memcached_v' coturn '$coturn_v' kamailio '$kamailio_v')"
    done
    "${PYTHON:-python3}" - "$UDP_TRUTH.tmp" "$LAB_TGT_IP" <<EOF
import json, sys
ip = sys.argv[2]
rows = [
    ("198.19.5.53", 53, "dns", "Unbound", "$unbound_v"),
    ("198.19.5.53", 5300, "dns", "Unbound", "$unbound_v"),
    ("198.19.5.54", 53, "dns", "NSD", "$nsd_v"),
    ("198.19.5.123", 123, "ntp", None, None),
    ("198.19.5.161", 161, "snmp", None, None),
    ("198.19.5.161", 1161, "snmp", None, None),
    ("198.19.5.211", 11211, "memcached", "memcached", "$memcached_v"),
    ("198.19.5.34", 3478, "stun", "Coturn", "$coturn_v"),
    ("198.19.5.60", 5060, "sip", "kamailio", "$kamailio_v"),
    ("198.19.5.137", 137, "netbios", None, None),
    ("198.19.5.69", 69, "tftp", None, None),
    (ip, 1900, "ssdp", "ApertureLab", "1.0"),
    (ip, 5353, "mdns", None, None),
]
with open(sys.argv[1], "w") as f:
    for a, port, service, product, version in rows:
        f.write(json.dumps({"ip": a, "port": port, "proto": "udp", "service": service,
                            "product": product, "version": version or None}) + "\n")
EOF
    mv -f "$UDP_TRUTH.tmp" "$UDP_TRUTH"
    {
        echo "LAB_UDP_NET=$UDP_NET"
        echo "LAB_UDP_CLOSED=$UDP_CLOSED"
        echo "LAB_UDP_PORTS=$UDP_PORTS"
    } >"$UDP_ENV.tmp"
    mv -f "$UDP_ENV.tmp" "$UDP_ENV"
    udp_log "$(wc -l <"$UDP_TRUTH") UDP services up"
}

udp_down() {
    local pid comm
    if [ -f "$UDP_PIDS" ]; then
        while read -r pid comm; do
            [ -n "$pid" ] || continue
            # Only our own: the recorded program, in the target namespace.
            case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
                "${comm:0:15}"*) kill "$pid" 2>/dev/null || true ;;
            esac
        done <"$UDP_PIDS"
        sleep 0.3
        while read -r pid comm; do
            [ -n "$pid" ] || continue
            case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
                "${comm:0:15}"*) kill -9 "$pid" 2>/dev/null || true ;;
            esac
        done <"$UDP_PIDS"
    fi
    ip -n "$LAB_SCAN_NS" route del "$UDP_NET" 2>/dev/null || true
    ip -n "$LAB_TGT_NS" route del local "$UDP_NET" dev lo 2>/dev/null || true
    ip -n "$LAB_TGT_NS" addr del 198.19.5.137/24 dev lo 2>/dev/null || true
    rm -f "$UDP_TRUTH" "$UDP_TRUTH.tmp" "$UDP_ENV" "$UDP_ENV.tmp"
    if [ -n "${LAB_DIR:-}" ] && [ "$UDP_DIR" = "$LAB_DIR/udp" ] && [ -d "$UDP_DIR" ]; then
        rm -rf "$UDP_DIR"
    fi
}

if ! udp_skip; then
    case "$1" in
        up) udp_up ;;
        down) udp_down ;;
    esac
fi
