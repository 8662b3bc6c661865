# shellcheck shell=bash
# Aperture lab hook: services that answer without authentication, each beside a twin
# that asks for it, for the unauthenticated-access checks.
#
# Sourced by scripts/lab with $1 = up|down after 20-services.sh (which routes
# 198.19.1.0/24 into $LAB_TGT_NS); uses only 198.19.1.180-250. On `up` it:
#   - installs the Debian packages that are missing (policy-rc.d answering 101 for
#     the duration, so nothing starts on the host);
#   - starts every daemon with `ip netns exec $LAB_TGT_NS ...`, recording its PID:
#       198.19.1.180  nginx      80    autoindex on (3 entries)        open
#       198.19.1.181  nginx      80    autoindex off (403)             closed
#       198.19.1.182  Redis      6379  no password, 3 keys in db0      open
#       198.19.1.183  Redis      6379  requirepass (-NOAUTH)           closed
#       198.19.1.184  memcached  11211 text protocol, 3 items          open
#       198.19.1.186  vsftpd     21    anonymous_enable=YES            open (login check)
#       198.19.1.187  vsftpd     21    anonymous refused               closed (login check)
#       198.19.1.190  etcd       2379  no auth, 4 keys                 open
#       198.19.1.191  etcd       2379  auth enabled (root user)        closed
#       198.19.1.200  Prometheus 9090  no auth (none exists upstream)  open
#       198.19.1.210  slapd      389   anonymous bind, read ACL        open (login check)
#       198.19.1.211  slapd      389   disallow bind_anon              closed (login check)
#   - waits ($LAB_OPEN_TIMEOUT = 60 s at most, naming what is missing) until each port
#     answers from $LAB_SCAN_NS, then writes the ground truth atomically:
#       $LAB_DIR/open.jsonl  one object per port: ip, port, proto, service, check,
#                            open (data readable without credentials), login (the
#                            check logs in: runs only with the tenant's opt-in),
#                            evidence (what an open check must report, a substring).
# On `down` it stops exactly the PIDs it recorded (checking each one's command name)
# and deletes $LAB_DIR/open and open.jsonl.
#
# Not here: MongoDB, Elasticsearch/OpenSearch, CouchDB, Grafana and Kubernetes are
# not in Debian 12 (unit tests cover those checks). Samba: 29-smb.sh.
# Docker (docker.io 20.10.24) cannot run here: dockerd in the target namespace with
# --iptables=false --bridge=none --storage-driver=vfs exits with "failed to start daemon:
# Devices cgroup isn't mounted" (this host's cgroup v1 hierarchy, as seen from inside its
# container), so the Docker check is covered by unit tests only.
# APERTURE_LAB_SERVICES=0 skips this hook along with 20-services.sh.

OPEN_DIR=$LAB_DIR/open
OPEN_PIDS=$OPEN_DIR/pids
OPEN_GT=$LAB_DIR/open.jsonl
OPEN_TIMEOUT=${LAB_OPEN_TIMEOUT:-60}

open_log() { echo "lab: open: $*" >&2; }
open_die() { echo "lab: open: error: $*" >&2; exit 1; }

open_missing_packages() {
    local -a need=()
    command -v nginx >/dev/null 2>&1 || need+=(nginx)
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
    command -v memcached >/dev/null 2>&1 || need+=(memcached)
    command -v vsftpd >/dev/null 2>&1 || need+=(vsftpd)
    command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
    command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
    command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
    [ -x /usr/sbin/slapd ] || need+=(slapd)
    command -v slapadd >/dev/null 2>&1 || need+=(slapd)
    printf '%s\n' "${need[@]}" | grep . || true
}

open_install() {
    local -a pkgs
    mapfile -t pkgs < <(open_missing_packages)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    open_log "installing ${pkgs[*]}"
    local prc=/usr/sbin/policy-rc.d backup="" rc=0
    if [ -e "$prc" ]; then
        backup=$(mktemp /tmp/aplab-open-policy-rc.d.XXXXXX)
        cp -a "$prc" "$backup"
    fi
    # shellcheck disable=SC2064
    trap "if [ -n '$backup' ]; then mv -f '$backup' '$prc'; else rm -f '$prc'; fi" EXIT
    printf '#!/bin/sh\n# Aperture lab: no service may start while packages are installed.\nexit 101\n' >"$prc"
    chmod 755 "$prc"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" \
        >"$LAB_DIR/open-apt.log" 2>&1 || rc=$?
    if [ -n "$backup" ]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
    trap - EXIT
    [ "$rc" = 0 ] || open_die "apt-get install ${pkgs[*]} failed (see $LAB_DIR/open-apt.log)"
    # A daemon the install started on the host anyway is stopped.
    local pid
    for pid in $(pgrep -x 'etcd|prometheus|slapd' || true); do
        if [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/1/ns/net)" ]; then
            open_log "package install started pid $pid on the host: stopping it"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

open_record() { echo "$1 $2 $3" >>"$OPEN_PIDS"; }

open_alive() { # pid comm
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

open_spawn() { # name comm log cmd...
    local name=$1 comm=$2 log=$3 pid _
    shift 3
    ip netns exec "$LAB_TGT_NS" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    open_record "$name" "$pid" "$comm"
    for _ in $(seq 1 100); do
        open_alive "$pid" "$comm" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    open_alive "$pid" "$comm" || { tail -n 20 "$log" >&2 || true; open_die "$name did not start (pid $pid, see $log)"; }
}

open_nginx() {
    local D=$OPEN_DIR/nginx
    mkdir -p "$D/listing/backup" "$D/empty" "$D/tmp"
    chown www-data: "$D/tmp"
    printf 'lab notes\n' >"$D/listing/notes.txt"
    printf -- '-- lab dump\n' >"$D/listing/db.sql"
    chmod -R a+rX "$D/listing" "$D/empty"
    cat >"$D/nginx.conf" <<EOF
# Aperture lab: one nginx, a directory listing and its twin without one.
daemon off;
master_process on;
worker_processes 1;
user www-data;
pid $D/nginx.pid;
error_log $D/error.log warn;
events { worker_connections 128; }
http {
    types { text/html html; text/plain txt; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $D/tmp/body;
    proxy_temp_path $D/tmp/proxy;
    fastcgi_temp_path $D/tmp/fastcgi;
    uwsgi_temp_path $D/tmp/uwsgi;
    scgi_temp_path $D/tmp/scgi;
    server { listen 198.19.1.180:80; root $D/listing; autoindex on; }
    server { listen 198.19.1.181:80; root $D/empty; autoindex off; }
}
EOF
    open_spawn nginx nginx "$D/nginx.out" /usr/sbin/nginx -c "$D/nginx.conf"
}

open_redis() { # name ip [requirepass]
    local D=$OPEN_DIR/$1
    mkdir -p "$D"
    chown redis: "$D"
    local -a auth=()
    [ -z "${3:-}" ] || auth=(--requirepass "$3")
    open_spawn "$1" redis-server "$D/redis.out" setpriv --reuid=redis --regid="$(id -g redis)" \
        --init-groups -- /usr/bin/redis-server --bind "$2" --port 6379 --protected-mode no \
        --daemonize no --dir "$D" --save '' --appendonly no --logfile "$D/redis.log" \
        --maxclients 64 --maxmemory 16mb "${auth[@]}"
}

open_vsftpd() { # name ip anonymous(YES|NO)
    local D=$OPEN_DIR/$1
    mkdir -p "$D/empty" "$D/anon/pub"
    printf 'lab readme\n' >"$D/anon/readme.txt"
    chmod 755 "$D/empty" "$D/anon" "$D/anon/pub"
    chmod 644 "$D/anon/readme.txt"
    : >"$D/user_list"
    local access
    if [ "$3" = YES ]; then
        access="anonymous_enable=YES
anon_root=$D/anon
no_anon_password=NO
local_enable=NO"
    else
        access="anonymous_enable=NO
local_enable=YES
userlist_enable=YES
userlist_deny=NO
userlist_file=$D/user_list"
    fi
    cat >"$D/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=$2
listen_port=21
background=NO
$access
write_enable=NO
anon_upload_enable=NO
anon_mkdir_write_enable=NO
pam_service_name=vsftpd
secure_chroot_dir=$D/empty
nopriv_user=ftp
seccomp_sandbox=NO
xferlog_enable=NO
vsftpd_log_file=$D/vsftpd.log
connect_from_port_20=NO
pasv_enable=NO
max_clients=32
idle_session_timeout=60
EOF
    open_spawn "$1" vsftpd "$D/vsftpd.out" /usr/sbin/vsftpd "$D/vsftpd.conf"
}

open_etcd() { # name ip peer-port
    local D=$OPEN_DIR/$1
    mkdir -p "$D/data"
    chown -R etcd: "$D"
    chmod 700 "$D/data"
    open_spawn "$1" etcd "$D/etcd.out" setpriv --reuid=etcd --regid="$(id -g etcd)" \
        --init-groups -- /usr/bin/etcd --name "$1" --data-dir "$D/data" \
        --listen-client-urls "http://$2:2379" --advertise-client-urls "http://$2:2379" \
        --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
        --initial-cluster "$1=http://127.0.0.1:$3" --initial-cluster-state new \
        --listen-metrics-urls "http://127.0.0.1:$(($3 + 1))"
}

open_prometheus() {
    local D=$OPEN_DIR/prometheus
    mkdir -p "$D/data"
    cat >"$D/prometheus.yml" <<'EOF'
global: { scrape_interval: 15s }
scrape_configs:
  - job_name: prometheus
    static_configs: [ { targets: ['198.19.1.200:9090'] } ]
EOF
    chown -R prometheus: "$D"
    open_spawn prometheus prometheus "$D/prometheus.out" setpriv --reuid=prometheus \
        --regid="$(id -g prometheus)" --init-groups -- /usr/bin/prometheus \
        --config.file="$D/prometheus.yml" --storage.tsdb.path="$D/data" \
        --web.listen-address=198.19.1.200:9090
}

open_slapd() { # name ip anonymous(YES|NO)
    local D=$OPEN_DIR/$1 global="" access
    mkdir -p "$D/data"
    if [ "$3" = YES ]; then
        access="access to * by * read"
    else
        # Global: refuses anonymous binds (the rootDSE stays readable unbound).
        global="disallow bind_anon"
        access="access to * by users read by anonymous auth"
    fi
    cat >"$D/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $D/slapd.pid
$global
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "dc=lab,dc=test"
rootdn "cn=admin,dc=lab,dc=test"
rootpw aperture-lab
directory $D/data
$access
EOF
    cat >"$D/base.ldif" <<'EOF'
dn: dc=lab,dc=test
objectClass: dcObject
objectClass: organization
dc: lab
o: Aperture Lab

dn: ou=people,dc=lab,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=lab,dc=test
objectClass: organizationalUnit
ou: groups

dn: cn=reader,dc=lab,dc=test
objectClass: organizationalRole
cn: reader
EOF
    slapadd -q -f "$D/slapd.conf" -l "$D/base.ldif" >"$D/slapadd.log" 2>&1 \
        || { cat "$D/slapadd.log" >&2; open_die "slapadd for $1 failed"; }
    chown -R openldap: "$D"
    open_spawn "$1" slapd "$D/slapd.out" /usr/sbin/slapd -d 0 -h "ldap://$2:389/" \
        -f "$D/slapd.conf" -u openldap -g openldap
}

# Waits until every port answers from the scan namespace; names what is missing.
open_ready() {
    ip netns exec "$LAB_SCAN_NS" timeout $((OPEN_TIMEOUT + 10)) python3 - "$OPEN_TIMEOUT" "$@" <<'PYEOF'
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
missing = list(sys.argv[2:])
while missing and time.monotonic() < deadline:
    for hp in list(missing):
        ip, port = hp.rsplit(":", 1)
        try:
            socket.create_connection((ip, int(port)), timeout=1).close()
            missing.remove(hp)
        except OSError:
            pass
    if missing:
        time.sleep(0.2)
if missing:
    sys.exit("not answering: " + " ".join(missing))
PYEOF
}

# Data each open service holds, written through its own protocol from the target side.
open_seed() {
    local ns=(ip netns exec "$LAB_TGT_NS")
    local k
    for k in alpha beta gamma; do
        "${ns[@]}" redis-cli -h 198.19.1.182 set "lab:$k" 1 >/dev/null
        "${ns[@]}" redis-cli -h 198.19.1.183 -a aperture-lab --no-auth-warning set "lab:$k" 1 >/dev/null
    done
    "${ns[@]}" python3 - <<'PYEOF'
import socket
s = socket.create_connection(("198.19.1.184", 11211), timeout=5)
for k in ("alpha", "beta", "gamma"):
    s.sendall(b"set lab:%s 0 0 1\r\nx\r\n" % k.encode())
    assert s.recv(64).startswith(b"STORED"), k
s.close()
PYEOF
    export ETCDCTL_API=3
    local e
    for k in a b c d; do
        for e in 198.19.1.190 198.19.1.191; do
            "${ns[@]}" etcdctl --endpoints "http://$e:2379" put "/lab/$k" v >/dev/null
        done
    done
    local auth=(etcdctl --endpoints http://198.19.1.191:2379)
    "${ns[@]}" "${auth[@]}" user add root:aperture-lab >/dev/null
    "${ns[@]}" "${auth[@]}" role add root >/dev/null 2>&1 || true
    "${ns[@]}" "${auth[@]}" user grant-role root root >/dev/null 2>&1 || true
    "${ns[@]}" "${auth[@]}" auth enable >/dev/null
}

open_truth() {
    cat >"$OPEN_GT.tmp" <<'EOF'
{"ip":"198.19.1.180","port":80,"proto":"tcp","service":"http","check":"directory-listing","open":true,"login":false,"evidence":"directory listing at / (3 entries)"}
{"ip":"198.19.1.181","port":80,"proto":"tcp","service":"http","check":"directory-listing","open":false,"login":false,"evidence":null}
{"ip":"198.19.1.182","port":6379,"proto":"tcp","service":"redis","check":"redis","open":true,"login":false,"evidence":"3 keys in db0"}
{"ip":"198.19.1.183","port":6379,"proto":"tcp","service":"redis","check":"redis","open":false,"login":false,"evidence":null}
{"ip":"198.19.1.184","port":11211,"proto":"tcp","service":"memcached","check":"memcached","open":true,"login":false,"evidence":"3 items stored"}
{"ip":"198.19.1.186","port":21,"proto":"tcp","service":"ftp","check":"ftp-anonymous","open":true,"login":true,"evidence":"STAT . lists 2 entries"}
{"ip":"198.19.1.187","port":21,"proto":"tcp","service":"ftp","check":"ftp-anonymous","open":false,"login":true,"evidence":null}
{"ip":"198.19.1.190","port":2379,"proto":"tcp","service":"http","check":"etcd","open":true,"login":false,"evidence":"counts 4 keys"}
{"ip":"198.19.1.191","port":2379,"proto":"tcp","service":"http","check":"etcd","open":false,"login":false,"evidence":null}
{"ip":"198.19.1.200","port":9090,"proto":"tcp","service":"http","check":"prometheus","open":true,"login":false,"evidence":"active targets"}
{"ip":"198.19.1.210","port":389,"proto":"tcp","service":"ldap","check":"ldap-anonymous","open":true,"login":true,"evidence":"under dc=lab,dc=test returns 3 entries"}
{"ip":"198.19.1.211","port":389,"proto":"tcp","service":"ldap","check":"ldap-anonymous","open":false,"login":true,"evidence":null}
EOF
    mv -f "$OPEN_GT.tmp" "$OPEN_GT"
}

open_down() {
    local name pid comm _
    if [ -s "$OPEN_PIDS" ]; then
        while read -r name pid comm; do
            [ -n "$name" ] || continue
            open_alive "$pid" "$comm" || continue
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                open_alive "$pid" "$comm" || break
                sleep 0.1
            done
            if open_alive "$pid" "$comm"; then
                open_log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done < <(tac "$OPEN_PIDS")
    fi
    rm -f "$OPEN_GT" "$OPEN_GT.tmp" "$LAB_DIR/open-apt.log"
    if [ -n "${LAB_DIR:-}" ] && [ "$OPEN_DIR" = "$LAB_DIR/open" ] && [ -d "$OPEN_DIR" ]; then
        rm -rf -- "$OPEN_DIR"
    fi
    return 0
}

open_up() {
    local t0=$SECONDS
    open_install
    open_down >/dev/null 2>&1 || true
    mkdir -p "$OPEN_DIR"
    chmod 755 "$OPEN_DIR"
    : >"$OPEN_PIDS"
    open_nginx
    open_redis redis-open 198.19.1.182
    open_redis redis-auth 198.19.1.183 aperture-lab
    open_spawn memcached memcached "$OPEN_DIR/memcached.log" /usr/bin/memcached \
        -l 198.19.1.184 -p 11211 -U 0 -u nobody -m 16 -c 64
    open_vsftpd ftp-anon 198.19.1.186 YES
    open_vsftpd ftp-noanon 198.19.1.187 NO
    open_etcd etcd-open 198.19.1.190 2380
    open_etcd etcd-auth 198.19.1.191 2390
    open_prometheus
    open_slapd ldap-anon 198.19.1.210 YES
    open_slapd ldap-noanon 198.19.1.211 NO
    open_ready 198.19.1.180:80 198.19.1.181:80 198.19.1.182:6379 198.19.1.183:6379 \
        198.19.1.184:11211 198.19.1.186:21 198.19.1.187:21 198.19.1.190:2379 \
        198.19.1.191:2379 198.19.1.200:9090 198.19.1.210:389 198.19.1.211:389 || open_die "services not ready after ${OPEN_TIMEOUT}s"
    open_seed || open_die "seeding the open services failed"
    open_truth
    open_log "$(wc -l <"$OPEN_GT") ports up in 198.19.1.180-250 ($((SECONDS - t0))s)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_SERVICES:-1}" = 0 ]; then
            open_log "skipped (APERTURE_LAB_SERVICES=0)"
        else
            open_up
        fi
        ;;
    down) open_down ;;
    *) open_die "usage: 23-open.sh up|down" ;;
esac
