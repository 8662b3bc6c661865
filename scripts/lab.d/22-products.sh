# shellcheck shell=bash
# Aperture lab hook: more real Debian products, and second configurations of the
# ones 20-services.sh runs (refusing, authentication required, unusual ports), so
# identification is tested on what daemons say when they turn us away too.
#
# Sourced by scripts/lab with $1 = up|down after 20-services.sh (which routes
# 198.19.1.0/24 into $LAB_TGT_NS). Uses 198.19.1.100-179 only. On `up` it installs
# missing packages with policy-rc.d answering 101 (nothing starts on the host),
# starts every daemon with `ip netns exec $LAB_TGT_NS` and records its PID,
# waits (at most $LAB_PRODUCTS_TIMEOUT = 90 s, Java and Erlang daemons start in
# parallel) until every port answers from $LAB_SCAN_NS, naming what is missing,
# and writes $LAB_DIR/products.jsonl atomically: one object per (ip, port) with
#   ip, port, proto, service, product (null where what the port says names none:
#   claiming one would be a guess), version (what the port itself reveals, null if
#   nothing), risk (the class an exposure review gives it), config (how it runs),
#   actual (the product really running, for scoring other tools' claims).
# On `down` it kills exactly the PIDs it recorded (checking each command name)
# and deletes $LAB_DIR/products.
#
# Not here: Exim (conflicts with Postfix, see pr_exim); ProFTPD and Pure-FTPd
# (conflict with vsftpd: one ftp-server package at a time); Docker (see pr_docker).
# Not here: slapd on an unusual port. Our text hellos (Redis, memcached) make it wait
# for the rest of a BER length, so two of them count as silence and the LDAP hello is
# never reached there (on 389 it comes first).
# Not here because Debian bookworm does not ship them: MongoDB, Elasticsearch /
# OpenSearch, CouchDB, Grafana. APERTURE_LAB_PRODUCTS=0 skips this hook.

PR_DIR=$LAB_DIR/products
PR_PIDS=$PR_DIR/pids
PR_GT=$LAB_DIR/products.jsonl
PR_TIMEOUT=${LAB_PRODUCTS_TIMEOUT:-90}

pr_log() { echo "lab: products: $*" >&2; }
pr_die() { echo "lab: products: error: $*" >&2; exit 1; }

# package:command-or-file that shows it is installed
PR_NEED=(
    apache2:/usr/sbin/apache2 lighttpd:/usr/sbin/lighttpd
    dropbear-bin:/usr/sbin/dropbear samba:/usr/sbin/smbd slapd:/usr/sbin/slapd
    ldap-utils:/usr/bin/ldapsearch squid:/usr/sbin/squid haproxy:/usr/sbin/haproxy
    tomcat10:/usr/share/tomcat10/bin/catalina.sh jetty9:/usr/share/jetty9/start.jar
    prometheus:/usr/bin/prometheus etcd-server:/usr/bin/etcd nats-server:/usr/sbin/nats-server
    tinyproxy:/usr/bin/tinyproxy
    apache2-utils:/usr/bin/htpasswd
)
PR_DAEMONS='apache2|lighttpd|exim4|dropbear|smbd|nmbd|slapd|squid|haproxy|java|prometheus|etcd|nats-server|tinyproxy'

pr_install() {
    local -a pkgs=()
    local e
    for e in "${PR_NEED[@]}"; do [ -e "${e#*:}" ] || pkgs+=("${e%%:*}"); done
    [ ${#pkgs[@]} -gt 0 ] || return 0
    pr_log "installing ${pkgs[*]}"
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
        install --no-install-recommends "${pkgs[@]}" >"$LAB_DIR/products-apt.log" 2>&1 || rc=1
    if [ -n "$backup" ]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
    trap - EXIT
    [ $rc -eq 0 ] || pr_die "apt-get install ${pkgs[*]} failed (see $LAB_DIR/products-apt.log)"
    local line pid comm
    while IFS= read -r line; do
        pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line" | head -n 1)
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ -n "$pid" ] && [[ $comm =~ ^($PR_DAEMONS)$ ]]; then
            pr_log "install started $comm (pid $pid) on the host: stopping it"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done < <(comm -13 <(echo "$before") <(ss -Hlntup | awk '{print $1, $5, $7}' | sort))
}

pr_alive() { # pid comm
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

# name comm log cmd... -- the daemon runs in the foreground; its own PID is recorded
# (ip netns exec, setpriv and env exec, they do not fork).
pr_spawn() {
    local name=$1 comm=$2 log=$3 pid _
    shift 3
    ip netns exec "$LAB_TGT_NS" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    echo "$name $pid $comm" >>"$PR_PIDS"
    for _ in $(seq 1 100); do
        pr_alive "$pid" "$comm" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    pr_alive "$pid" "$comm" || { tail -n 20 "$log" >&2 || true; pr_die "$name did not start (see $log)"; }
}

# Ground truth rows: ip port service product version risk config [actual]
# ("-" = none; actual defaults to product).
pr_truth() { printf "%q " "$@" >>"$PR_DIR/truth.txt"; echo >>"$PR_DIR/truth.txt"; }

pr_upstream() { # package -> upstream version as the daemon prints it
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed -e 's/^[0-9]*://' -e 's/[-+~].*//'
}

# --------------------------------------------------------------------------- web

pr_apache() {
    local D=$PR_DIR/apache IP=198.19.1.100
    mkdir -p "$D/www" "$D/priv" "$D/run" "$D/lock"
    echo "<html><head><title>Lab Apache</title></head><body>lab</body></html>" >"$D/www/index.html"
    htpasswd -bc "$D/htpasswd" lab "$(head -c 12 /dev/urandom | base64)" >/dev/null 2>&1
    cat >"$D/httpd.conf" <<EOF
ServerRoot /etc/apache2
PidFile $D/run/apache2.pid
Mutex file:$D/lock default
DefaultRuntimeDir $D/run
User www-data
Group www-data
ErrorLog $D/error.log
LogLevel warn
Include /etc/apache2/mods-enabled/*.load
Include /etc/apache2/mods-enabled/*.conf
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
ServerTokens OS
ServerSignature On
ServerName apache.lab.test
Listen $IP:80
Listen $IP:8080
<VirtualHost $IP:80>
    DocumentRoot $D/www
    <Directory $D/www>
        Require all granted
    </Directory>
</VirtualHost>
<VirtualHost $IP:8080>
    DocumentRoot $D/priv
    <Directory $D/priv>
        AuthType Basic
        AuthName "Lab restricted"
        AuthUserFile $D/htpasswd
        Require valid-user
    </Directory>
</VirtualHost>
EOF
    pr_spawn apache apache2 "$D/apache.out" env APACHE_RUN_DIR="$D/run" APACHE_LOCK_DIR="$D/lock" \
        APACHE_LOG_DIR="$D" /usr/sbin/apache2 -f "$D/httpd.conf" -DFOREGROUND
    local v
    v=$(pr_upstream apache2)
    pr_truth $IP 80 http "Apache HTTP Server" "$v" web "default page, ServerTokens OS"
    pr_truth $IP 8080 http "Apache HTTP Server" "$v" web "401 Basic authentication required"
}

pr_lighttpd() {
    local D=$PR_DIR/lighttpd IP=198.19.1.101
    mkdir -p "$D/www" "$D/deny"
    echo "<html><head><title>Lab lighttpd</title></head><body>lab</body></html>" >"$D/www/index.html"
    cat >"$D/lighttpd.conf" <<EOF
server.document-root = "$D/www"
server.bind = "$IP"
server.port = 80
server.username = "www-data"
server.groupname = "www-data"
server.errorlog = "$D/error.log"
server.modules = ( "mod_access" )
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html" )
\$SERVER["socket"] == "$IP:8081" {
    url.access-deny = ( "" )
}
EOF
    chown -R www-data: "$D"
    pr_spawn lighttpd lighttpd "$D/lighttpd.out" /usr/sbin/lighttpd -D -f "$D/lighttpd.conf"
    local v
    v=$(pr_upstream lighttpd)
    pr_truth $IP 80 http lighttpd "$v" web "default config"
    pr_truth $IP 8081 http lighttpd "$v" web "403 for everything (url.access-deny)"
}

pr_nginx2() {
    local D=$PR_DIR/nginx IP=198.19.1.102
    mkdir -p "$D/www" "$D/tmp"
    printf 'lab:%s\n' "$(openssl passwd -apr1 "$(head -c 12 /dev/urandom | base64)")" >"$D/htpasswd"
    cat >"$D/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $D/nginx.pid;
error_log $D/error.log warn;
user www-data;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
    uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
    server { listen $IP:80; location / { deny all; } }
    server { listen $IP:8080; location / { auth_basic "Lab admin"; auth_basic_user_file $D/htpasswd; } }
    server { listen $IP:8082; location / { return 502; } }
}
EOF
    pr_spawn nginx2 nginx "$D/nginx.out" /usr/sbin/nginx -c "$D/nginx.conf" -e "$D/error.log"
    local v
    v=$(pr_upstream nginx)
    pr_truth $IP 80 http nginx "$v" web "403 for everything (deny all)"
    pr_truth $IP 8080 http nginx "$v" web "401 Basic authentication required"
    pr_truth $IP 8082 http nginx "$v" web "502 error page"
}

pr_squid() {
    local D=$PR_DIR/squid IP=198.19.1.103
    mkdir -p "$D"
    chown proxy: "$D"
    cat >"$D/squid.conf" <<EOF
http_port $IP:3128
http_access deny all
pid_filename $D/squid.pid
cache_log $D/cache.log
access_log none
cache deny all
cache_mem 8 MB
cache_effective_user proxy
coredump_dir $D
shutdown_lifetime 1 seconds
pinger_enable off
EOF
    pr_spawn squid squid "$D/squid.out" /usr/sbin/squid -N -f "$D/squid.conf"
    pr_truth $IP 3128 http Squid "$(pr_upstream squid)" web "default: denies every request"
}

pr_haproxy() {
    local D=$PR_DIR/haproxy IP=198.19.1.104
    mkdir -p "$D"
    cat >"$D/haproxy.cfg" <<EOF
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend web
    bind $IP:80
    default_backend none
backend none
frontend stats
    bind $IP:8404
    stats enable
    stats uri /
EOF
    pr_spawn haproxy haproxy "$D/haproxy.out" /usr/sbin/haproxy -Ws -f "$D/haproxy.cfg"
    pr_truth $IP 80 http HAProxy - web "no backend: 503 error page"
    pr_truth $IP 8404 http HAProxy "$(pr_upstream haproxy)" web "statistics page"
}

pr_tinyproxy() {
    local D=$PR_DIR/tinyproxy IP=198.19.1.105
    mkdir -p "$D"
    chown nobody: "$D"
    cat >"$D/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port 8888
Listen $IP
Timeout 10
MaxClients 32
LogLevel Warning
PidFile "$D/tinyproxy.pid"
Allow 127.0.0.1
EOF
    pr_spawn tinyproxy tinyproxy "$D/tinyproxy.out" /usr/bin/tinyproxy -d -c "$D/tinyproxy.conf"
    pr_truth $IP 8888 http tinyproxy "$(pr_upstream tinyproxy)" web "default: only localhost allowed"
}

# ------------------------------------------------------------------ Java, Erlang

pr_tomcat() {
    local D=$PR_DIR/tomcat IP=198.19.1.110
    mkdir -p "$D/logs" "$D/temp" "$D/work" "$D/webapps"
    cp -r /etc/tomcat10 "$D/conf"
    sed -i -e "s|<Connector port=\"8080\"|<Connector port=\"8080\" address=\"$IP\"|" \
        -e 's|<Server port="8005"|<Server port="-1"|' "$D/conf/server.xml"
    chown -R tomcat: "$D" 2>/dev/null || true
    pr_spawn tomcat java "$D/catalina.out" env CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE="$D" \
        CATALINA_TMPDIR="$D/temp" JAVA_OPTS="-Xmx96m -Xss512k -XX:+UseSerialGC -Djava.security.egd=file:/dev/urandom" \
        /usr/share/tomcat10/bin/catalina.sh run
    pr_truth $IP 8080 http "Apache Tomcat" "$(pr_upstream tomcat10)" web "no webapps: 404 error page"
}

pr_jetty() {
    local D=$PR_DIR/jetty IP=198.19.1.111
    mkdir -p "$D/webapps" "$D/logs"
    pr_spawn jetty java "$D/jetty.out" java -Xmx64m -XX:+UseSerialGC -jar /usr/share/jetty9/start.jar \
        jetty.home=/usr/share/jetty9 jetty.base="$D" --module=http \
        jetty.http.host=$IP jetty.http.port=8080
    pr_truth $IP 8080 http "Eclipse Jetty" "$(pr_upstream jetty9)" web "no contexts: 404 error page"
}

# ---------------------------------------------------------------- other daemons

pr_dropbear() {
    local D=$PR_DIR/dropbear IP=198.19.1.120
    mkdir -p "$D"
    dropbearkey -t ed25519 -f "$D/host_ed25519" >/dev/null 2>&1
    pr_spawn dropbear dropbear "$D/dropbear.out" /usr/sbin/dropbear -F -E -s -r "$D/host_ed25519" \
        -p $IP:22 -p $IP:2022 -P "$D/dropbear.pid"
    local v
    v=$(pr_upstream dropbear-bin)
    pr_truth $IP 22 ssh "Dropbear SSH" "$v" remote-administration "password logins off"
    pr_truth $IP 2022 ssh "Dropbear SSH" "$v" remote-administration "unusual port"
}

pr_sshd2() {
    local D=$PR_DIR/sshd IP=198.19.1.121
    mkdir -p "$D"
    ssh-keygen -q -t ed25519 -N '' -f "$D/host_ed25519"
    cat >"$D/sshd_config" <<EOF
ListenAddress $IP:443
ListenAddress $IP:8022
HostKey $D/host_ed25519
PidFile $D/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
EOF
    mkdir -p /run/sshd
    pr_spawn sshd2 sshd "$D/sshd.out" /usr/sbin/sshd -D -e -f "$D/sshd_config"
    local v
    # What the identification string says (sshd -V omits the p1).
    v=$(pr_upstream openssh-server)
    pr_truth $IP 443 ssh OpenSSH "$v" remote-administration "on the HTTPS port"
    pr_truth $IP 8022 ssh OpenSSH "$v" remote-administration "keys only, unusual port"
}

# Not started: exim4-daemon-light conflicts with postfix (both are Debian's
# mail-transport-agent, and 20-services.sh runs Postfix): installing one removes the
# other. Kept for a lab without Postfix.
pr_exim() {
    local D=$PR_DIR/exim IP=198.19.1.122
    mkdir -p "$D/spool"
    chown -R Debian-exim: "$D"
    cat >"$D/exim.conf" <<EOF
primary_hostname = mail2.lab.test
daemon_smtp_ports = 25 : 2525
local_interfaces = $IP
spool_directory = $D/spool
log_file_path = $D/%slog
pid_file_path = $D/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
keep_environment =
acl_smtp_rcpt = acl_check_rcpt
host_lookup =
rfc1413_hosts =
begin acl
acl_check_rcpt:
  deny message = relay not permitted
begin routers
begin transports
EOF
    pr_spawn exim exim4 "$D/exim.out" /usr/sbin/exim4 -C "$D/exim.conf" -bdf -oX "25:2525"
    local v
    v=$(pr_upstream exim4-daemon-light)
    pr_truth $IP 25 smtp Exim "$v" mail "relaying denied"
    pr_truth $IP 2525 smtp Exim "$v" mail "unusual port"
}

pr_vsftpd2() {
    local D=$PR_DIR/vsftpd IP=198.19.1.123
    mkdir -p "$D/empty"
    cat >"$D/vsftpd.conf" <<EOF
listen=YES
listen_address=$IP
listen_port=2121
anonymous_enable=NO
local_enable=YES
secure_chroot_dir=$D/empty
background=NO
EOF
    pr_spawn vsftpd2 vsftpd "$D/vsftpd.out" /usr/sbin/vsftpd "$D/vsftpd.conf"
    pr_truth $IP 2121 ftp vsftpd "$(pr_upstream vsftpd)" file-transfer "anonymous disabled, unusual port"
}

pr_redis2() {
    local D=$PR_DIR/redis IP=198.19.1.124
    mkdir -p "$D"
    chown redis: "$D"
    pr_spawn redis2 redis-server "$D/redis.out" setpriv --reuid=redis --regid="$(id -g redis)" \
        --init-groups -- /usr/bin/redis-server --bind $IP --port 6379 --requirepass "$(head -c 12 /dev/urandom | base64)" \
        --daemonize no --dir "$D" --save '' --appendonly no --maxmemory 16mb
    pr_spawn redis3 redis-server "$D/redis3.out" setpriv --reuid=redis --regid="$(id -g redis)" \
        --init-groups -- /usr/bin/redis-server --bind $IP --port 16380 \
        --daemonize no --dir "$D" --save '' --appendonly no --maxmemory 16mb
    pr_truth $IP 6379 redis Redis - cache "requirepass: -NOAUTH"
    pr_truth $IP 16380 redis Redis - cache "protected mode (default), unusual port"
}

pr_mosquitto2() {
    local D=$PR_DIR/mosquitto IP=198.19.1.125
    mkdir -p "$D"
    : >"$D/passwd"
    mosquitto_passwd -b "$D/passwd" lab "$(head -c 12 /dev/urandom | base64)" 2>/dev/null
    chown mosquitto: "$D/passwd" && chmod 600 "$D/passwd"
    cat >"$D/mosquitto.conf" <<EOF
listener 1883 $IP
listener 18830 $IP
allow_anonymous false
password_file $D/passwd
persistence false
user mosquitto
log_dest stderr
EOF
    pr_spawn mosquitto2 mosquitto "$D/mosquitto.log" /usr/sbin/mosquitto -c "$D/mosquitto.conf"
    # CONNACK "not authorised" is the same from every broker: no product to claim.
    pr_truth $IP 1883 mqtt - - message-broker "password required: CONNACK not authorised" "Eclipse Mosquitto"
    pr_truth $IP 18830 mqtt - - message-broker "password required, unusual port" "Eclipse Mosquitto"
}

pr_memcached2() {
    local IP=198.19.1.126
    pr_spawn memcached2 memcached "$PR_DIR/memcached.log" /usr/bin/memcached -l $IP -p 21211 -U 0 -u nobody -m 8 -c 64
    pr_truth $IP 21211 memcached memcached "$(pr_upstream memcached)" cache "unusual port"
}

pr_samba() {
    local D=$PR_DIR/samba IP=198.19.1.127
    mkdir -p "$D/private" "$D/lock" "$D/state" "$D/cache" "$D/pid" "$D/share"
    # smbd binds only to addresses of an interface (198.19.1.0/24 is a local route).
    ip -n "$LAB_TGT_NS" addr replace $IP/32 dev lo
    cat >"$D/smb.conf" <<EOF
[global]
   workgroup = LAB
   server string = Lab Samba
   interfaces = $IP
   bind interfaces only = yes
   smb ports = 445
   disable netbios = yes
   private dir = $D/private
   lock directory = $D/lock
   state directory = $D/state
   cache directory = $D/cache
   pid directory = $D/pid
   log file = $D/log.%m
   map to guest = never
   server role = standalone server
[share]
   path = $D/share
   read only = yes
EOF
    # Its own process group (no --no-process-group): smbd signals its whole group when
    # it stops, which would otherwise include the shell that ran `lab up` and `down`.
    pr_spawn samba smbd "$D/smbd.out" /usr/sbin/smbd --foreground -s "$D/smb.conf"
    # SMB2 negotiation names no product: "Samba" would be a guess.
    pr_truth $IP 445 smb - - file-transfer "standalone, guest off" Samba
}

pr_slapd() {
    local D=$PR_DIR/slapd IP=198.19.1.128
    mkdir -p "$D/db"
    cat >"$D/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
pidfile $D/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "dc=lab,dc=test"
rootdn "cn=admin,dc=lab,dc=test"
directory $D/db
maxsize 16777216
EOF
    pr_spawn slapd slapd "$D/slapd.out" /usr/sbin/slapd -d 0 -f "$D/slapd.conf" -h "ldap://$IP:389/"
    pr_truth $IP 389 ldap OpenLDAP - directory "default: anonymous rootDSE"
}

pr_nats() {
    local IP=198.19.1.129
    pr_spawn nats nats-server "$PR_DIR/nats.out" /usr/sbin/nats-server -a $IP -p 4222 --user lab --pass "$(head -c 12 /dev/urandom | base64 | tr -dc a-zA-Z0-9)"
    pr_truth $IP 4222 nats "NATS Server" "$(pr_upstream nats-server)" message-broker "user and password required"
}

pr_prometheus() {
    local D=$PR_DIR/prometheus IP=198.19.1.130
    mkdir -p "$D/data"
    printf 'global:\n  scrape_interval: 1h\n' >"$D/prometheus.yml"
    chown -R prometheus: "$D" 2>/dev/null || true
    pr_spawn prometheus prometheus "$D/prometheus.out" /usr/bin/prometheus --config.file="$D/prometheus.yml" \
        --storage.tsdb.path="$D/data" --web.listen-address=$IP:9090 --storage.tsdb.retention.time=1h
    pr_truth $IP 9090 http Prometheus - monitoring "default, no authentication"
}

pr_etcd() {
    local D=$PR_DIR/etcd IP=198.19.1.131
    mkdir -p "$D"
    pr_spawn etcd etcd "$D/etcd.out" /usr/bin/etcd --name lab --data-dir "$D/data" \
        --listen-client-urls http://$IP:2379 --advertise-client-urls http://$IP:2379 \
        --listen-peer-urls http://$IP:2380 --initial-advertise-peer-urls http://$IP:2380 \
        --initial-cluster lab=http://$IP:2380 --quota-backend-bytes 33554432
    # GET / draws Go's plain "404 page not found": an HTTP server, no product.
    pr_truth $IP 2379 http - - web "client port, no TLS" etcd
}

# Not started: Debian's dockerd 20.10 inside the target namespace stops with "failed
# to start daemon: Devices cgroup isn't mounted" (this machine has cgroup v2 only and
# no running Docker engine; docker build/run need a Docker engine, and none runs on
# this kind). Kept so the attempt can be repeated: APERTURE_LAB_DOCKER=1.
pr_docker() {
    local D=$PR_DIR/docker IP=198.19.1.132
    mkdir -p "$D/data" "$D/exec"
    if ip netns exec "$LAB_TGT_NS" true && [ -x /usr/sbin/dockerd ]; then
        ip netns exec "$LAB_TGT_NS" /usr/sbin/dockerd -H tcp://$IP:2375 --data-root "$D/data" \
            --exec-root "$D/exec" --pidfile "$D/dockerd.pid" --iptables=false --ip6tables=false \
            --bridge=none --ip-masq=false --userland-proxy=false </dev/null >"$D/dockerd.out" 2>&1 &
        echo "docker $! dockerd" >>"$PR_PIDS"
        pr_truth $IP 2375 http "Docker Engine" "$(pr_upstream docker.io)" container-orchestration "API on TCP without TLS"
    fi
}

# ----------------------------------------------------------- refusing databases

pr_pg_bin() { printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

pr_pg_init() { # in the background while the rest starts
    local D=$PR_DIR/postgres
    mkdir -p "$D/sock"
    chown -R postgres: "$D"
    ip netns exec "$LAB_TGT_NS" timeout 120 setpriv --reuid=postgres --regid="$(id -g postgres)" \
        --init-groups -- "$(pr_pg_bin)/initdb" -D "$D/data" -U postgres --auth-local=peer \
        --auth-host=reject -E UTF8 --locale=C.UTF-8 --no-sync >"$D/initdb.log" 2>&1
}

pr_pg_start() {
    local D=$PR_DIR/postgres IP=198.19.1.140
    cat >>"$D/data/postgresql.conf" <<EOF
listen_addresses = '$IP'
port = 15432
unix_socket_directories = '$D/sock'
max_connections = 10
shared_buffers = 8MB
fsync = off
EOF
    # Only local connections: every remote client gets "no pg_hba.conf entry".
    printf 'local all all peer\n' >"$D/data/pg_hba.conf"
    pr_spawn postgres2 postgres "$D/postgres.log" setpriv --reuid=postgres --regid="$(id -g postgres)" \
        --init-groups -- "$(pr_pg_bin)/postgres" -D "$D/data"
    pr_truth $IP 15432 postgres PostgreSQL - database "no pg_hba.conf entry for us, unusual port"
}

pr_mariadb_init() { # in the background while the rest starts
    local D=$PR_DIR/mariadb
    mkdir -p "$D/data"
    chown -R mysql: "$D"
    ip netns exec "$LAB_TGT_NS" timeout 120 mariadb-install-db --no-defaults --user=mysql \
        --datadir="$D/data" --auth-root-authentication-method=socket --skip-test-db \
        --skip-name-resolve >"$D/install-db.log" 2>&1
}

pr_mariadb_start() {
    local D=$PR_DIR/mariadb IP=198.19.1.141
    # As installed: root over the socket only, so a remote host gets error 1130.
    pr_spawn mariadb2 mariadbd "$D/mariadbd.out" /usr/sbin/mariadbd --no-defaults --user=mysql \
        --datadir="$D/data" --bind-address=$IP --port=3306 --socket="$D/mysqld.sock" \
        --pid-file="$D/mariadbd.pid" --log-error="$D/error.log" --skip-name-resolve \
        --innodb-buffer-pool-size=8M --max-connections=16 --skip-log-bin
    pr_truth $IP 3306 mysql MariaDB - database "no account for our host: error 1130"
}

# --------------------------------------------------------------------- readiness

pr_wait() {
    local deadline=$((SECONDS + PR_TIMEOUT)) missing ip port _r
    while :; do
        missing=""
        while read -r ip port _r; do
            ip netns exec "$LAB_SCAN_NS" timeout 1 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null \
                || missing+=" $ip:$port"
        done <"$PR_DIR/truth.txt"
        [ -z "$missing" ] && return 0
        if [ $SECONDS -ge $deadline ]; then
            pr_log "not listening after ${PR_TIMEOUT}s:$missing"
            return 1
        fi
        sleep 0.5
    done
}

pr_write_truth() {
    python3 - "$PR_DIR/truth.txt" "$PR_GT.tmp" <<'PY'
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
    mv -f "$PR_GT.tmp" "$PR_GT"
}

pr_up() {
    local t0=$SECONDS
    if [ -z "${LAB_TGT_NS:-}" ] || [ -z "${LAB_SCAN_NS:-}" ]; then pr_die "LAB_TGT_NS/LAB_SCAN_NS not set"; fi
    # Not `| grep -q`: under pipefail its early exit fails the pipe.
    [[ $(ip -n "$LAB_TGT_NS" route show table local) == *"local 198.19.1.0/24 "* ]] \
        || pr_die "198.19.1.0/24 is not routed in $LAB_TGT_NS: 20-services.sh must run first"
    pr_install
    rm -rf "$PR_DIR"
    mkdir -p "$PR_DIR"
    : >"$PR_PIDS"
    : >"$PR_DIR/truth.txt"
    chmod 755 "$PR_DIR"
    # The slow ones first, so they start while the rest do.
    pr_pg_init &
    local pg_init=$!
    pr_mariadb_init &
    local mdb_init=$!
    pr_tomcat
    pr_jetty
    [ "${APERTURE_LAB_DOCKER:-0}" = 1 ] && pr_docker
    pr_apache
    pr_lighttpd
    pr_nginx2
    pr_squid
    pr_haproxy
    pr_tinyproxy
    pr_dropbear
    pr_sshd2
    pr_vsftpd2
    pr_redis2
    pr_mosquitto2
    pr_memcached2
    pr_samba
    pr_slapd
    pr_nats
    pr_prometheus
    pr_etcd
    wait "$pg_init" || { tail -n 20 "$PR_DIR/postgres/initdb.log" >&2 || true; pr_die "initdb failed"; }
    pr_pg_start
    wait "$mdb_init" || { tail -n 20 "$PR_DIR/mariadb/install-db.log" >&2 || true; pr_die "mariadb-install-db failed"; }
    pr_mariadb_start
    pr_wait || pr_die "products not ready (logs in $PR_DIR)"
    pr_write_truth
    pr_log "$(wc -l <"$PR_GT") product ports up ($((SECONDS - t0))s)"
}

pr_down() {
    local name pid comm _
    if [ -s "$PR_PIDS" ]; then
        while read -r name pid comm; do
            pr_alive "$pid" "$comm" || continue
            kill -TERM "$pid" 2>/dev/null || true
        done < <(tac "$PR_PIDS")
        while read -r name pid comm; do
            for _ in $(seq 1 100); do pr_alive "$pid" "$comm" || break; sleep 0.1; done
            if pr_alive "$pid" "$comm"; then
                pr_log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$PR_PIDS"
    fi
    ip -n "$LAB_TGT_NS" addr del 198.19.1.127/32 dev lo 2>/dev/null || true
    rm -f "$PR_GT" "$PR_GT.tmp" "$LAB_DIR/products-apt.log"
    if [ -n "${LAB_DIR:-}" ] && [ "$PR_DIR" = "$LAB_DIR/products" ] && [ -d "$PR_DIR" ]; then
        rm -rf -- "$PR_DIR"
    fi
    return 0
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_PRODUCTS:-1}" = 0 ] || [ "${APERTURE_LAB_SERVICES:-1}" = 0 ]; then
            pr_log "skipped"
        else
            pr_up
        fi
        ;;
    down) pr_down ;;
    *) pr_die "usage: 22-products.sh up|down" ;;
esac
