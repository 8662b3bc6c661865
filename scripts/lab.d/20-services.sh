# shellcheck shell=bash
# Aperture lab hook: real Debian services in the target namespace.
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported
# (see the header of scripts/lab). On `up` it:
#   - installs the Debian packages that are missing (with /usr/sbin/policy-rc.d
#     answering 101 for the duration, so nothing starts on the host; any
#     daemon that still appears listening in the host namespace is stopped);
#   - routes 198.19.1.0/24 from $LAB_SCAN_NS via $LAB_TGT_IP, and makes it
#     local in $LAB_TGT_NS (`ip route add local 198.19.1.0/24 dev lo`);
#   - generates a lab CA and the server certificates, configs, keys and data
#     under $LAB_DIR/services/ and starts every daemon with
#     `ip netns exec $LAB_TGT_NS ...` (never in the host namespace):
#       198.19.1.10  nginx     80, 8081 (http), 443 (https, CA-signed, SANs)
#       198.19.1.11  nginx     443 (expired certificate, signed by the lab CA)
#       198.19.1.12  nginx     443 (self-signed certificate)
#       198.19.1.13  nginx     443 (RSA-1024 key, @SECLEVEL=0)
#       198.19.1.14  nginx     443 (TLSv1 and TLSv1.1 only, @SECLEVEL=0)
#       198.19.1.20  OpenSSH   22, 2222
#       198.19.1.21  vsftpd    21
#       198.19.1.25  Postfix   25 (STARTTLS)
#       198.19.1.26  Dovecot   143 (IMAP), 110 (POP3), both STARTTLS
#       198.19.1.30  Redis     6379
#       198.19.1.31  PostgreSQL 5432 (TLS via SSLRequest)
#       198.19.1.32  MariaDB   3306
#       198.19.1.33  memcached 11211
#       198.19.1.34  Mosquitto 1883
#       198.19.1.53  Knot DNS  53/udp+tcp, zone lab.test
#   - waits (from $LAB_SCAN_NS, $LAB_SERVICES_TIMEOUT = 60 s at most) until
#     every port answers, reads what each one reveals, and writes the ground
#     truth:
#       $LAB_DIR/services.jsonl  one object per (ip, port, proto), sorted:
#         ip, port, proto (tcp|udp), service, product,
#         version  the version the port itself reveals (null if it reveals none),
#         banner   the exact text it was read from (greeting line, HTTP Server
#                  header, redis INFO line, MySQL handshake, CH TXT version.bind),
#         tls      TLS from the first byte; starttls: upgrade inside the protocol
#                  (SMTP STARTTLS, IMAP STARTTLS, POP3 STLS, PostgreSQL SSLRequest),
#         cert     (TLS and STARTTLS ports, else null) subject_cn, issuer_cn, sans,
#                  not_after (RFC 3339), expired, self_signed, weak_key,
#                  key_type, key_bits, sha256 (of the DER), computed with
#                  openssl from the generated file and checked against the
#                  certificate actually served;
#         extra:   tls_versions (accepted by the port, probed with a permissive
#                  client), http {status, server, title}, hostkeys (ssh);
#       $LAB_DIR/services.env    LAB_CA, LAB_SERVICES_NET, LAB_HOSTILE_NET, ...
# On `down` it stops exactly the daemons whose PIDs it recorded in
# $LAB_DIR/services/pids (checking each one's command name first), removes
# its routes and deletes $LAB_DIR/services and its files.
#
# APERTURE_LAB_SERVICES=0 skips this hook (a bare lab, e.g. for benchmarks).
# Nothing here sends a packet anywhere but inside the lab's namespaces.

SVC_NET=198.19.1.0/24
SVC_DIR=$LAB_DIR/services
SVC_PIDS=$SVC_DIR/pids
SVC_GT=$LAB_DIR/services.jsonl
SVC_ENV=$LAB_DIR/services.env
SVC_READY_TIMEOUT=${LAB_SERVICES_TIMEOUT:-60}
SVC_PY=${PYTHON:-python3}

SVC_IP_WWW=198.19.1.10
SVC_IP_EXPIRED=198.19.1.11
SVC_IP_SELF=198.19.1.12
SVC_IP_WEAK=198.19.1.13
SVC_IP_LEGACY=198.19.1.14
# ECDSA P-256: what a modern site serves, and what TLS throughput is measured against.
SVC_IP_ECDSA=198.19.1.15
SVC_IP_SSH=198.19.1.20
SVC_IP_FTP=198.19.1.21
SVC_IP_SMTP=198.19.1.25
SVC_IP_MAIL=198.19.1.26
SVC_IP_REDIS=198.19.1.30
SVC_IP_PG=198.19.1.31
SVC_IP_MYSQL=198.19.1.32
SVC_IP_MEMCACHED=198.19.1.33
SVC_IP_MQTT=198.19.1.34
SVC_IP_DNS=198.19.1.53

svc_log() { echo "lab: services: $*" >&2; }
svc_die() { echo "lab: services: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Packages

# Daemons Debian might start when their package is installed: any of these
# seen listening in the host namespace after an install of ours is stopped.
SVC_DAEMONS='nginx|sshd|vsftpd|master|smtpd|dovecot|redis-server|postgres|mariadbd|mysqld|memcached|mosquitto|knotd'

svc_pg_bin() {
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

svc_missing_packages() {
    local -a need=()
    command -v nginx >/dev/null 2>&1 || need+=(nginx)
    [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
    command -v vsftpd >/dev/null 2>&1 || need+=(vsftpd)
    [ -x /usr/lib/postfix/sbin/master ] || need+=(postfix)
    [ -x /usr/lib/dovecot/imap-login ] || need+=(dovecot-imapd)
    [ -x /usr/lib/dovecot/pop3-login ] || need+=(dovecot-pop3d)
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    svc_pg_bin >/dev/null || need+=(postgresql)
    { command -v mariadbd && command -v mariadb-install-db; } >/dev/null 2>&1 || need+=(mariadb-server)
    command -v memcached >/dev/null 2>&1 || need+=(memcached)
    command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
    command -v knotd >/dev/null 2>&1 || need+=(knot)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    [ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
    command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
    command -v ss >/dev/null 2>&1 || need+=(iproute2)
    printf '%s\n' "${need[@]}" | sort -u | grep . || true
}

# Host-namespace TCP/UDP listeners as "proto local-address users" lines.
svc_host_listeners() { ss -Hlntup 2>/dev/null | awk '{print $1, $5, $7}' | sort; }

# Put back whatever policy-rc.d there was before svc_install (or none).
svc_prc_restore() {
    [ -n "${SVC_PRC:-}" ] || return 0
    if [ -n "${SVC_PRC_BACKUP:-}" ]; then
        mv -f "$SVC_PRC_BACKUP" "$SVC_PRC"
    else
        rm -f "$SVC_PRC"
    fi
    rm -f "$SVC_PRC".aplab.*
    SVC_PRC=""
}

svc_install() {
    local -a pkgs
    mapfile -t pkgs < <(svc_missing_packages)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    svc_log "installing ${pkgs[*]}"

    local rc=0 before
    SVC_PRC=/usr/sbin/policy-rc.d
    SVC_PRC_BACKUP=""
    if [ -e "$SVC_PRC" ] || [ -L "$SVC_PRC" ]; then
        SVC_PRC_BACKUP=$(mktemp /tmp/aplab-policy-rc.d.XXXXXX)
        cp -a "$SVC_PRC" "$SVC_PRC_BACKUP"
    fi
    # Whatever happens from here on, the original policy-rc.d comes back.
    trap svc_prc_restore EXIT
    printf '#!/bin/sh\n# Aperture lab: no service may start while packages are installed.\nexit 101\n' \
        >"$SVC_PRC.aplab.$$"
    chmod 755 "$SVC_PRC.aplab.$$"
    mv -f "$SVC_PRC.aplab.$$" "$SVC_PRC"
    before=$(svc_host_listeners)

    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! timeout 900 "${apt[@]}" install "${pkgs[@]}" >"$LAB_DIR/services-apt.log" 2>&1; then
        timeout 300 "${apt[@]}" update >>"$LAB_DIR/services-apt.log" 2>&1 || true
        timeout 900 "${apt[@]}" install "${pkgs[@]}" >>"$LAB_DIR/services-apt.log" 2>&1 || rc=1
    fi

    svc_prc_restore
    trap - EXIT
    [ "$rc" -eq 0 ] || svc_die "apt-get install ${pkgs[*]} failed (see $LAB_DIR/services-apt.log)"
    rm -f "$LAB_DIR/services-apt.log"

    # Nothing we installed may listen in the host namespace.
    local line pid comm
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line" | head -n 1)
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [ -n "$pid" ] && [[ $comm =~ ^($SVC_DAEMONS)$ ]]; then
            svc_log "package install started $comm (pid $pid) on the host: stopping it ($line)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done < <(comm -13 <(echo "$before") <(svc_host_listeners))
    local missing
    missing=$(svc_missing_packages)
    [ -z "$missing" ] || svc_die "still missing after install: $missing"
}

# ---------------------------------------------------------------------------
# Process bookkeeping: $SVC_PIDS has "name pid comm" lines.

svc_record() { echo "$1 $2 $3" >>"$SVC_PIDS"; }

svc_alive() { # pid comm -- a live (not zombie) process with that command name
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    # A daemon whose launcher has gone is reaped by init, maybe not at once.
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Run "$@" inside the target namespace in the background, output to a log;
# the PID recorded is the daemon's own (ip netns exec and setpriv exec, they
# do not fork).
svc_spawn() { # name comm log cmd...
    local name=$1 comm=$2 log=$3 pid
    shift 3
    ip netns exec "$LAB_TGT_NS" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    svc_record "$name" "$pid" "$comm"
    sleep 0.05
    local _
    for _ in $(seq 1 200); do
        svc_alive "$pid" "$comm" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    svc_alive "$pid" "$comm" || { tail -n 20 "$log" >&2 || true; svc_die "$name did not start (pid $pid, see $log)"; }
}

# ---------------------------------------------------------------------------
# PKI: a lab CA and the server certificates.

svc_pki() {
    local P=$SVC_DIR/pki
    mkdir -p "$P/newcerts"
    : >"$P/index.txt"
    openssl rand -hex 8 >"$P/serial"
    cat >"$P/openssl.cnf" <<EOF
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca ]
default_ca = labca
[ labca ]
database = $P/index.txt
new_certs_dir = $P/newcerts
serial = $P/serial
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
email_in_dn = no
[ pol ]
organizationName = optional
commonName = supplied
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ self ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = DNS:self.lab.test
EOF
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" \
        -days 3650 -sha256 -subj "/O=Aperture Lab/CN=Aperture Lab CA" \
        -config "$P/openssl.cnf" -extensions v3_ca 2>/dev/null

    # name  CN  SANs  key  start  end
    svc_leaf www     www.lab.test     "DNS:www.lab.test,DNS:lab.test,DNS:api.lab.test,IP:$SVC_IP_WWW" rsa:2048
    svc_leaf expired expired.lab.test "DNS:expired.lab.test,IP:$SVC_IP_EXPIRED" rsa:2048 20200101000000Z 20210101000000Z
    svc_leaf weak    weak.lab.test    "DNS:weak.lab.test,IP:$SVC_IP_WEAK" rsa:1024
    svc_leaf legacy  legacy.lab.test  "DNS:legacy.lab.test,IP:$SVC_IP_LEGACY" rsa:2048
    svc_leaf ecdsa   ecdsa.lab.test   "DNS:ecdsa.lab.test,IP:$SVC_IP_ECDSA" ec:P-256
    svc_leaf mail    mail.lab.test    "DNS:mail.lab.test,IP:$SVC_IP_SMTP" rsa:2048
    svc_leaf imap    imap.lab.test    "DNS:imap.lab.test,DNS:pop3.lab.test,IP:$SVC_IP_MAIL" rsa:2048
    svc_leaf db      db.lab.test      "DNS:db.lab.test,IP:$SVC_IP_PG" ec:P-256

    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$P/self.key" -out "$P/self.crt" \
        -days 825 -sha256 -subj "/O=Aperture Lab/CN=self.lab.test" \
        -config "$P/openssl.cnf" -extensions self 2>/dev/null
    chmod 600 "$P"/*.key

    openssl x509 -in "$P/expired.crt" -noout -checkend 0 >/dev/null && svc_die "expired.crt is not expired"
    openssl verify -CAfile "$P/ca.crt" "$P/www.crt" >/dev/null || svc_die "www.crt does not verify"
    return 0
}

svc_leaf() { # name cn sans keyspec [startdate enddate]
    local P=$SVC_DIR/pki name=$1 cn=$2 sans=$3 key=$4 start=${5:-} end=${6:-}
    case $key in
        rsa:*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${key#rsa:}" -out "$P/$name.key" 2>/dev/null ;;
        ec:*) openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:${key#ec:}" -out "$P/$name.key" 2>/dev/null ;;
    esac
    openssl req -new -key "$P/$name.key" -subj "/O=Aperture Lab/CN=$cn" -out "$P/$name.csr" \
        -config "$P/openssl.cnf" 2>/dev/null
    cat >"$P/$name.ext" <<EOF
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $sans
EOF
    local -a dates=(-days 825)
    [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
    openssl ca -batch -notext -config "$P/openssl.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
        -in "$P/$name.csr" -out "$P/$name.crt" "${dates[@]}" \
        -extfile "$P/$name.ext" -extensions leaf >/dev/null 2>&1 \
        || svc_die "cannot sign the $name certificate"
    # Server chain: leaf then CA.
    cat "$P/$name.crt" "$P/ca.crt" >"$P/$name.chain.crt"
}

# ---------------------------------------------------------------------------
# The daemons

svc_nginx() {
    local D=$SVC_DIR/nginx P=$SVC_DIR/pki
    mkdir -p "$D/www" "$D/www-alt" "$D/tmp"
    chown www-data: "$D/tmp"
    cat >"$D/www/index.html" <<'EOF'
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Aperture Lab</title><link rel="icon" href="/favicon.ico"></head>
<body><h1>Aperture Lab</h1><p>A test service of the Aperture exposure-surface lab.</p></body>
</html>
EOF
    cat >"$D/www-alt/index.html" <<'EOF'
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Aperture Lab TLS test</title></head>
<body><h1>Aperture Lab TLS test</h1></body>
</html>
EOF
    # A 16x16, 32-bit ICO drawn here (an aperture ring), byte-for-byte stable.
    "$SVC_PY" - "$D/www/favicon.ico" <<'EOF'
import struct, sys
w = h = 16
rows = []
for y in range(h - 1, -1, -1):           # BMP rows bottom-up
    row = b""
    for x in range(w):
        d2 = (x - 7.5) ** 2 + (y - 7.5) ** 2
        if 12 <= d2 <= 56:
            row += bytes((0x20, 0x60, 0xE0, 0xFF))   # B G R A: orange ring
        else:
            row += bytes((0, 0, 0, 0))
    rows.append(row)
xor = b"".join(rows)
mask = b"\x00\x00\x00\x00" * h          # 1-bit AND mask, rows padded to 32 bits
bih = struct.pack("<IiiHHIIiiII", 40, w, h * 2, 1, 32, 0, len(xor) + len(mask), 0, 0, 0, 0)
img = bih + xor + mask
ico = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", w, h, 0, 0, 1, 32, len(img), 22) + img
open(sys.argv[1], "wb").write(ico)
EOF
    cp "$D/www/favicon.ico" "$D/www-alt/favicon.ico"

    local modern="ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers HIGH:!aNULL:!MD5; ssl_prefer_server_ciphers off;"
    cat >"$D/nginx.conf" <<EOF
# Aperture lab nginx: one master (root), one worker (www-data).
daemon off;
master_process on;
worker_processes auto;
user www-data;
pid $D/nginx.pid;
error_log $D/error.log warn;
events { worker_connections 512; }
http {
    types { text/html html; image/x-icon ico; text/plain txt; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $D/tmp/body;
    proxy_temp_path $D/tmp/proxy;
    fastcgi_temp_path $D/tmp/fastcgi;
    uwsgi_temp_path $D/tmp/uwsgi;
    scgi_temp_path $D/tmp/scgi;
    keepalive_timeout 15;
    client_header_timeout 15;
    ssl_session_cache off;

    server {
        listen $SVC_IP_WWW:80;
        listen $SVC_IP_WWW:8081;
        server_name www.lab.test lab.test api.lab.test;
        root $D/www;
        index index.html;
    }
    server {
        listen $SVC_IP_WWW:443 ssl;
        server_name www.lab.test lab.test api.lab.test;
        ssl_certificate $P/www.chain.crt;
        ssl_certificate_key $P/www.key;
        $modern
        root $D/www;
        index index.html;
    }
    server {
        listen $SVC_IP_EXPIRED:443 ssl;
        server_name expired.lab.test;
        ssl_certificate $P/expired.chain.crt;
        ssl_certificate_key $P/expired.key;
        $modern
        root $D/www-alt;
    }
    server {
        listen $SVC_IP_SELF:443 ssl;
        server_name self.lab.test;
        ssl_certificate $P/self.crt;
        ssl_certificate_key $P/self.key;
        $modern
        root $D/www-alt;
    }
    server {
        listen $SVC_IP_WEAK:443 ssl;
        server_name weak.lab.test;
        ssl_certificate $P/weak.chain.crt;
        ssl_certificate_key $P/weak.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers DEFAULT:@SECLEVEL=0;
        root $D/www-alt;
    }
    server {
        listen $SVC_IP_LEGACY:443 ssl;
        server_name legacy.lab.test;
        ssl_certificate $P/legacy.chain.crt;
        ssl_certificate_key $P/legacy.key;
        ssl_protocols TLSv1 TLSv1.1;
        ssl_ciphers DEFAULT:@SECLEVEL=0;
        root $D/www-alt;
    }
    server {
        listen $SVC_IP_ECDSA:443 ssl;
        server_name ecdsa.lab.test;
        ssl_certificate $P/ecdsa.chain.crt;
        ssl_certificate_key $P/ecdsa.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $D/www-alt;
    }
}
EOF
    ip netns exec "$LAB_TGT_NS" /usr/sbin/nginx -t -q -p "$D" -c "$D/nginx.conf" -e "$D/error.log" 2>"$D/nginx-t.log" \
        || { cat "$D/nginx-t.log" >&2; svc_die "nginx config test failed"; }
    svc_spawn nginx nginx "$D/nginx.log" /usr/sbin/nginx -p "$D" -c "$D/nginx.conf" -e "$D/error.log"
}

svc_sshd() {
    local D=$SVC_DIR/ssh t
    mkdir -p "$D"
    chmod 700 "$D"
    for t in ed25519 ecdsa rsa; do
        ssh-keygen -q -t "$t" -N '' -C "aplab-$t" -f "$D/ssh_host_${t}_key"
    done
    cat >"$D/sshd_config" <<EOF
# Aperture lab sshd (no one can log in: no passwords, no keys).
ListenAddress $SVC_IP_SSH:22
ListenAddress $SVC_IP_SSH:2222
HostKey $D/ssh_host_ed25519_key
HostKey $D/ssh_host_ecdsa_key
HostKey $D/ssh_host_rsa_key
PidFile $D/sshd.pid
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication no
AuthorizedKeysFile none
PrintMotd no
MaxStartups 64:30:256
LoginGraceTime 30
EOF
    # Privilege-separation directory (compiled in; Debian's init makes it too).
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    /usr/sbin/sshd -t -f "$D/sshd_config" || svc_die "sshd config test failed"
    svc_spawn sshd sshd "$D/sshd.log" /usr/sbin/sshd -D -e -f "$D/sshd_config"
}

svc_vsftpd() {
    local D=$SVC_DIR/ftp
    mkdir -p "$D/empty"
    chmod 755 "$D/empty"
    : >"$D/user_list"
    cat >"$D/vsftpd.conf" <<EOF
# Aperture lab vsftpd: nobody may log in (empty allow-list).
listen=YES
listen_ipv6=NO
listen_address=$SVC_IP_FTP
listen_port=21
background=NO
anonymous_enable=NO
local_enable=YES
userlist_enable=YES
userlist_deny=NO
userlist_file=$D/user_list
write_enable=NO
pam_service_name=vsftpd
secure_chroot_dir=$D/empty
nopriv_user=ftp
seccomp_sandbox=NO
xferlog_enable=NO
vsftpd_log_file=$D/vsftpd.log
connect_from_port_20=NO
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40100
max_clients=64
idle_session_timeout=120
data_connection_timeout=60
EOF
    svc_spawn vsftpd vsftpd "$D/vsftpd.out" /usr/sbin/vsftpd "$D/vsftpd.conf"
}

# SMTP is Postfix: Debian 12's OpenSMTPD (6.8.0p2) cannot do TLS with
# OpenSSL 3 (its privilege-separated RSA/ECDSA signing fails: "missing
# private key", the client gets an internal_error alert).
svc_postfix() {
    local D=$SVC_DIR/postfix P=$SVC_DIR/pki
    mkdir -p "$D/etc" "$D/queue" "$D/data"
    chown postfix: "$D/data"
    cp "$P/mail.chain.crt" "$D/etc/mail.crt"
    install -m 600 "$P/mail.key" "$D/etc/mail.key"
    cat >"$D/etc/main.cf" <<EOF
# Aperture lab Postfix: STARTTLS offered, every recipient refused, no mail
# ever leaves (all transports are "error").
compatibility_level = 3.6
queue_directory = $D/queue
data_directory = $D/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.lab.test
mydomain = lab.test
myorigin = \$mydomain
smtpd_banner = \$myhostname ESMTP \$mail_name (Debian/GNU)
mydestination =
relay_domains =
# The listener's address is in master.cf (it is not an interface address,
# so inet_interfaces could not name it).
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = reject
smtpd_recipient_restrictions = reject
smtpd_tls_cert_file = $D/etc/mail.crt
smtpd_tls_key_file = $D/etc/mail.key
smtpd_tls_security_level = may
smtpd_peername_lookup = no
smtpd_timeout = 60s
smtpd_client_connection_count_limit = 256
alias_maps =
alias_database =
local_recipient_maps =
default_transport = error:outbound mail disabled in the lab
relay_transport = error:outbound mail disabled in the lab
local_transport = error:local delivery disabled in the lab
smtp_dns_support_level = disabled
maillog_file = $D/maillog
maillog_file_prefixes = $D
syslog_name = aplab-postfix
EOF
    cat >"$D/etc/master.cf" <<EOF
# service        type  private unpriv chroot wakeup maxproc command
$SVC_IP_SMTP:smtp inet  n       -      n      -      -       smtpd
cleanup          unix  n       -      n      -      0       cleanup
qmgr             unix  n       -      n      300    1       qmgr
tlsmgr           unix  -       -      n      1000?  1       tlsmgr
rewrite          unix  -       -      n      -      -       trivial-rewrite
bounce           unix  -       -      n      -      0       bounce
defer            unix  -       -      n      -      0       bounce
trace            unix  -       -      n      -      0       bounce
verify           unix  -       -      n      -      1       verify
flush            unix  n       -      n      1000?  0       flush
proxymap         unix  -       -      n      -      -       proxymap
anvil            unix  -       -      n      -      1       anvil
scache           unix  -       -      n      -      1       scache
postlog          unix-dgram n  -      n      -      1       postlogd
error            unix  -       -      n      -      -       error
retry            unix  -       -      n      -      -       error
discard          unix  -       -      n      -      -       discard
EOF
    # Creates the queue directories with their owners and modes.
    ip netns exec "$LAB_TGT_NS" postfix -c "$D/etc" check >"$D/check.log" 2>&1 \
        || { cat "$D/check.log" "$D/maillog" >&2 2>/dev/null; svc_die "postfix check failed"; }
    # master -s stays in the foreground as its own session and process-group
    # leader; on SIGTERM it stops its children.
    svc_spawn postfix master "$D/master.log" /usr/lib/postfix/sbin/master -s -c "$D/etc"
}

svc_dovecot() {
    local D=$SVC_DIR/dovecot P=$SVC_DIR/pki
    mkdir -p "$D/run" "$D/state" "$D/home"
    cp "$P/imap.chain.crt" "$D/imap.crt"
    cp "$P/imap.key" "$D/imap.key"
    chmod 600 "$D/imap.key"
    : >"$D/users"
    cat >"$D/dovecot.conf" <<EOF
# Aperture lab Dovecot: IMAP 143 + POP3 110 with STARTTLS; no users.
instance_name = aplab-dovecot
base_dir = $D/run
state_dir = $D/state
protocols = imap pop3
listen = $SVC_IP_MAIL
log_path = $D/dovecot.log
ssl = yes
ssl_cert = <$D/imap.crt
ssl_key = <$D/imap.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = $D/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$D/home/%u
}
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0600
  }
}
EOF
    doveconf -c "$D/dovecot.conf" -n >/dev/null 2>"$D/doveconf.log" \
        || { cat "$D/doveconf.log" >&2; svc_die "dovecot config test failed"; }
    svc_spawn dovecot dovecot "$D/dovecot.out" /usr/sbin/dovecot -F -c "$D/dovecot.conf"
}

svc_redis() {
    local D=$SVC_DIR/redis
    mkdir -p "$D"
    chown redis: "$D"
    svc_spawn redis redis-server "$D/redis.out" setpriv --reuid=redis --regid="$(id -g redis)" \
        --init-groups -- /usr/bin/redis-server --bind "$SVC_IP_REDIS" --port 6379 \
        --protected-mode no --daemonize no --dir "$D" --save '' --appendonly no \
        --logfile "$D/redis.log" --maxclients 256 --maxmemory 32mb
}

svc_pg_init() { # runs in the background while the rest starts
    local D=$SVC_DIR/postgres PGBIN
    PGBIN=$(svc_pg_bin)
    mkdir -p "$D/sock"
    chown postgres: "$D" "$D/sock"
    echo aperture-lab >"$D/pwfile"
    chown postgres: "$D/pwfile"
    chmod 600 "$D/pwfile"
    ip netns exec "$LAB_TGT_NS" timeout 120 setpriv --reuid=postgres --regid="$(id -g postgres)" \
        --init-groups -- "$PGBIN/initdb" -D "$D/data" -U postgres --pwfile="$D/pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync \
        >"$D/initdb.log" 2>&1
}

svc_pg_start() {
    local D=$SVC_DIR/postgres P=$SVC_DIR/pki PGBIN pid
    PGBIN=$(svc_pg_bin)
    install -o postgres -g postgres -m 644 "$P/db.chain.crt" "$D/data/server.crt"
    install -o postgres -g postgres -m 600 "$P/db.key" "$D/data/server.key"
    cat >>"$D/data/postgresql.conf" <<EOF

# Aperture lab
listen_addresses = '$SVC_IP_PG'
port = 5432
unix_socket_directories = '$D/sock'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
max_connections = 40
shared_buffers = 16MB
fsync = off
logging_collector = off
EOF
    echo "hostssl all all 198.18.0.0/15 scram-sha-256" >>"$D/data/pg_hba.conf"
    ip netns exec "$LAB_TGT_NS" timeout 60 setpriv --reuid=postgres --regid="$(id -g postgres)" \
        --init-groups -- "$PGBIN/pg_ctl" -D "$D/data" -l "$D/postgres.log" -w -t 30 start \
        </dev/null >"$D/pg_ctl.log" 2>&1 || { tail -n 20 "$D/postgres.log" >&2 || true; svc_die "postgres did not start"; }
    pid=$(head -n 1 "$D/data/postmaster.pid" 2>/dev/null | tr -dc '0-9')
    svc_alive "$pid" postgres || svc_die "postgres pid ($pid) not found"
    svc_record postgres "$pid" postgres
}

svc_mariadb_init() { # runs in the background while the rest starts
    local D=$SVC_DIR/mariadb
    mkdir -p "$D/data"
    chown -R mysql: "$D"
    ip netns exec "$LAB_TGT_NS" timeout 120 mariadb-install-db --no-defaults --user=mysql \
        --datadir="$D/data" --auth-root-authentication-method=socket --skip-test-db \
        --skip-name-resolve >"$D/install-db.log" 2>&1
}

svc_mariadb_start() {
    local D=$SVC_DIR/mariadb
    svc_spawn mariadb mariadbd "$D/mariadbd.out" /usr/sbin/mariadbd --no-defaults --user=mysql \
        --datadir="$D/data" --bind-address="$SVC_IP_MYSQL" --port=3306 --socket="$D/mysqld.sock" \
        --pid-file="$D/mariadbd.pid" --log-error="$D/error.log" --skip-name-resolve \
        --innodb-buffer-pool-size=16M --max-connections=64 --skip-log-bin
    # A server that has no account for the client's host answers with an
    # error packet instead of its handshake: give it one (for any host), so a
    # scanner sees the real greeting. Root logs in over the socket (unix_socket).
    local _
    for _ in $(seq 1 300); do
        timeout 10 mariadb --no-defaults --socket="$D/mysqld.sock" -u root -e 'SELECT 1' \
            >/dev/null 2>&1 && break
        kill -0 "$(awk '$1 == "mariadb" {print $2}' "$SVC_PIDS")" 2>/dev/null \
            || { tail -n 20 "$D/error.log" >&2 || true; svc_die "mariadbd exited"; }
        sleep 0.1
    done
    timeout 10 mariadb --no-defaults --socket="$D/mysqld.sock" -u root -e \
        "CREATE USER IF NOT EXISTS 'aplab'@'%' IDENTIFIED BY 'aperture-lab'" \
        || svc_die "cannot create the MariaDB account"
}

svc_memcached() {
    svc_spawn memcached memcached "$SVC_DIR/memcached.log" /usr/bin/memcached \
        -l "$SVC_IP_MEMCACHED" -p 11211 -U 0 -u nobody -m 16 -c 256
}

svc_mosquitto() {
    local D=$SVC_DIR/mosquitto
    mkdir -p "$D"
    cat >"$D/mosquitto.conf" <<EOF
# Aperture lab Mosquitto: anonymous, no persistence.
listener 1883 $SVC_IP_MQTT
allow_anonymous true
persistence false
user mosquitto
log_dest stderr
max_connections 256
EOF
    svc_spawn mosquitto mosquitto "$D/mosquitto.log" /usr/sbin/mosquitto -c "$D/mosquitto.conf"
}

svc_knot() {
    local D=$SVC_DIR/knot
    mkdir -p "$D/run" "$D/db" "$D/zones"
    cat >"$D/zones/lab.test.zone" <<EOF
\$ORIGIN lab.test.
\$TTL 300
@        SOA   ns.lab.test. hostmaster.lab.test. 2024010101 3600 900 604800 300
@        NS    ns.lab.test.
@        A     $SVC_IP_WWW
@        MX    10 mail.lab.test.
@        TXT   "v=spf1 ip4:$SVC_IP_SMTP -all"
ns       A     $SVC_IP_DNS
www      A     $SVC_IP_WWW
api      A     $SVC_IP_WWW
expired  A     $SVC_IP_EXPIRED
self     A     $SVC_IP_SELF
weak     A     $SVC_IP_WEAK
legacy   A     $SVC_IP_LEGACY
ssh      A     $SVC_IP_SSH
ftp      A     $SVC_IP_FTP
mail     A     $SVC_IP_SMTP
imap     A     $SVC_IP_MAIL
pop3     CNAME imap.lab.test.
redis    A     $SVC_IP_REDIS
db       A     $SVC_IP_PG
mysql    A     $SVC_IP_MYSQL
cache    A     $SVC_IP_MEMCACHED
mqtt     A     $SVC_IP_MQTT
EOF
    cat >"$D/knot.conf" <<EOF
# Aperture lab Knot DNS: authoritative for the zones below, nothing else.
server:
    rundir: "$D/run"
    pidfile: "$D/run/knot.pid"
    user: knot:knot
    listen: $SVC_IP_DNS@53
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "$D/db"
control:
    listen: "$D/run/knot.sock"
template:
  - id: default
    storage: "$D/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: lab.test
EOF
    chown -R knot: "$D"
    knotc -c "$D/knot.conf" conf-check >/dev/null 2>"$D/conf-check.log" \
        || { cat "$D/conf-check.log" >&2; svc_die "knot config check failed"; }
    svc_spawn knot knotd "$D/knotd.log" /usr/sbin/knotd -c "$D/knot.conf"
}

# ---------------------------------------------------------------------------
# Ground truth: what each port reveals, read from the scanner's namespace.

# ip port proto service product tls starttls cert(for TLS/STARTTLS)
svc_spec() {
    local P=$SVC_DIR/pki
    cat <<EOF
$SVC_IP_WWW 80 tcp http nginx 0 0 -
$SVC_IP_WWW 443 tcp https nginx 1 0 $P/www.crt
$SVC_IP_WWW 8081 tcp http nginx 0 0 -
$SVC_IP_EXPIRED 443 tcp https nginx 1 0 $P/expired.crt
$SVC_IP_SELF 443 tcp https nginx 1 0 $P/self.crt
$SVC_IP_WEAK 443 tcp https nginx 1 0 $P/weak.crt
$SVC_IP_LEGACY 443 tcp https nginx 1 0 $P/legacy.crt
$SVC_IP_ECDSA 443 tcp https nginx 1 0 $P/ecdsa.crt
$SVC_IP_SSH 22 tcp ssh OpenSSH 0 0 -
$SVC_IP_SSH 2222 tcp ssh OpenSSH 0 0 -
$SVC_IP_FTP 21 tcp ftp vsftpd 0 0 -
$SVC_IP_SMTP 25 tcp smtp Postfix 0 1 $P/mail.crt
$SVC_IP_MAIL 110 tcp pop3 Dovecot 0 1 $P/imap.crt
$SVC_IP_MAIL 143 tcp imap Dovecot 0 1 $P/imap.crt
$SVC_IP_REDIS 6379 tcp redis Redis 0 0 -
$SVC_IP_PG 5432 tcp postgres PostgreSQL 0 1 $P/db.crt
$SVC_IP_MYSQL 3306 tcp mysql MariaDB 0 0 -
$SVC_IP_MEMCACHED 11211 tcp memcached memcached 0 0 -
$SVC_IP_MQTT 1883 tcp mqtt Mosquitto 0 0 -
$SVC_IP_DNS 53 tcp dns "Knot DNS" 0 0 -
$SVC_IP_DNS 53 udp dns "Knot DNS" 0 0 -
EOF
}

svc_probe() {
    svc_spec >"$SVC_DIR/spec.txt"
    ip netns exec "$LAB_SCAN_NS" timeout $((SVC_READY_TIMEOUT + 60)) "$SVC_PY" - \
        "$SVC_DIR/spec.txt" "$SVC_GT.tmp" "$SVC_READY_TIMEOUT" "$SVC_DIR/ssh" <<'PYEOF'
import datetime, hashlib, json, re, shlex, socket, ssl, struct, subprocess, sys, time, warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.0/1.1 on purpose

spec_file, out_file, timeout, ssh_dir = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
deadline = time.monotonic() + timeout
IO = 5.0


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def cert_info(path):
    der = openssl("x509", "-in", path, "-outform", "DER")
    text = openssl("x509", "-in", path, "-noout", "-text", "-nameopt", "RFC2253").decode()
    subj = openssl("x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253").decode()
    iss = openssl("x509", "-in", path, "-noout", "-issuer", "-nameopt", "RFC2253").decode()
    cn = lambda s: (re.search(r"CN=([^,\n]+)", s) or [None, None])[1]
    end = openssl("x509", "-in", path, "-noout", "-enddate").decode().strip().split("=", 1)[1]
    not_after = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=datetime.timezone.utc)
    sans = []
    m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.+)", text)
    if m:
        for part in m.group(1).split(","):
            part = part.strip()
            sans.append(part.split(":", 1)[1].strip())
    expired = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-checkend", "0"],
                             capture_output=True).returncode != 0
    hashes = [openssl("x509", "-in", path, "-noout", opt).strip() for opt in ("-subject_hash", "-issuer_hash")]
    self_signed = hashes[0] == hashes[1] and subprocess.run(
        ["openssl", "verify", "-no-CAfile", "-no-CApath", "-check_ss_sig", "-no_check_time", "-CAfile", path, path],
        capture_output=True).returncode == 0
    bits = int(re.search(r"Public-Key: \((\d+) bit\)", text).group(1))
    key_type = "RSA" if "rsaEncryption" in text else ("EC" if "id-ecPublicKey" in text else "other")
    weak = (key_type == "RSA" and bits < 2048) or (key_type == "EC" and bits < 224)
    return {
        "subject_cn": cn(subj), "issuer_cn": cn(iss), "sans": sans,
        "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "expired": expired,
        "self_signed": self_signed, "weak_key": weak, "key_type": key_type, "key_bits": bits,
        "sha256": hashlib.sha256(der).hexdigest(),
    }


def tls_ctx(version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = version or ssl.TLSVersion.TLSv1
    ctx.maximum_version = version or ssl.TLSVersion.TLSv1_3
    return ctx


def connect(ip, port):
    s = socket.create_connection((ip, port), timeout=IO)
    s.settimeout(IO)
    return s


def readline(s, buf=b""):
    while b"\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    line, _, rest = buf.partition(b"\n")
    return line.rstrip(b"\r").decode("latin-1"), rest


def read_reply(s, done):
    buf = b""
    while not done(buf):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf.decode("latin-1")


def starttls(s, service):
    """Upgrade s; return (greeting/banner line, tls socket)."""
    if service == "smtp":
        banner, _ = readline(s)
        s.sendall(b"EHLO scanner.lab.test\r\n")
        ehlo = read_reply(s, lambda b: re.search(rb"(^|\n)250 [^\n]*\n", b))
        assert "STARTTLS" in ehlo, ehlo
        s.sendall(b"STARTTLS\r\n")
        r = read_reply(s, lambda b: b.endswith(b"\n"))
        assert r.startswith("220"), r
    elif service == "imap":
        banner, _ = readline(s)
        assert "STARTTLS" in banner, banner
        s.sendall(b"a STARTTLS\r\n")
        r = read_reply(s, lambda b: b"a " in b and b.endswith(b"\n"))
        assert "a OK" in r, r
    elif service == "pop3":
        banner, _ = readline(s)
        s.sendall(b"CAPA\r\n")
        capa = read_reply(s, lambda b: b.endswith(b"\r\n.\r\n"))
        assert "STLS" in capa, capa
        s.sendall(b"STLS\r\n")
        r = read_reply(s, lambda b: b.endswith(b"\n"))
        assert r.startswith("+OK"), r
    elif service == "postgres":
        banner = None
        s.sendall(struct.pack("!II", 8, 80877103))
        r = s.recv(1)
        assert r == b"S", r
    return banner


def tls_handshake(ip, port, service, starttls_, version=None):
    s = connect(ip, port)
    banner = starttls(s, service) if starttls_ else None
    t = tls_ctx(version).wrap_socket(s, server_hostname=None)
    return banner, t


def tls_versions(ip, port, service, starttls_):
    ok = []
    for v, name in ((ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1"),
                    (ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        try:
            _, t = tls_handshake(ip, port, service, starttls_, v)
            t.close()
            ok.append(name)
        except (ssl.SSLError, OSError, AssertionError):
            pass
    return ok


def http_get(s, host):
    s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: aplab-probe\r\n\r\n".encode())
    resp = read_reply(s, lambda b: False)
    head, _, body = resp.partition("\r\n\r\n")
    server = re.search(r"(?im)^Server:\s*(.+?)\s*$", head)
    title = re.search(r"(?is)<title>(.*?)</title>", body)
    status = head.split("\r\n", 1)[0]
    return status, server and server.group(1), title and title.group(1)


def dns_query(name, qtype, qclass):
    q = struct.pack("!HHHHHH", 0x4150, 0x0000, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", qtype, qclass)


def dns_txt(resp):
    """First TXT string of the answer section (enough for version.bind)."""
    an = struct.unpack("!H", resp[6:8])[0]
    p = 12
    while resp[p]:
        p += 1 + resp[p]
    p += 5
    for _ in range(an):
        if resp[p] & 0xC0 == 0xC0:
            p += 2
        else:
            while resp[p]:
                p += 1 + resp[p]
            p += 1
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", resp[p:p + 10])
        p += 10
        if rtype == 16:
            return resp[p + 1:p + 1 + resp[p]].decode("latin-1")
        p += rdlen
    return None


def dns_ask(ip, proto, name, qtype, qclass):
    q = dns_query(name, qtype, qclass)
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        s.sendto(q, (ip, 53))
        resp, _ = s.recvfrom(4096)
    else:
        s = connect(ip, 53)
        s.sendall(struct.pack("!H", len(q)) + q)
        n = struct.unpack("!H", s.recv(2))[0]
        resp = b""
        while len(resp) < n:
            d = s.recv(n - len(resp))
            if not d:
                break
            resp += d
    s.close()
    rcode = resp[3] & 0x0F
    return rcode, resp


def ver(pattern, text):
    m = re.search(pattern, text or "")
    return m.group(1) if m else None


def probe(e):
    ip, port, proto, service = e["ip"], e["port"], e["proto"], e["service"]
    banner = version = None
    extra = {}
    if service == "dns":
        rcode, resp = dns_ask(ip, proto, "lab.test", 6, 1)
        assert rcode == 0 and struct.unpack("!H", resp[6:8])[0] >= 1, "no SOA for lab.test"
        rcode, resp = dns_ask(ip, proto, "version.bind", 16, 3)
        banner = dns_txt(resp) if rcode == 0 else None
        version = ver(r"(\d+\.\d+(?:\.\d+)?)", banner)
    elif e["tls"] or e["starttls"]:
        if e["tls"]:
            _, t = tls_handshake(ip, port, service, False)
        else:
            banner, t = tls_handshake(ip, port, service, True)
        served = hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
        assert served == e["cert"]["sha256"], f"served certificate {served} is not {e['cert']['sha256']}"
        if service == "https":
            status, server, title = http_get(t, ip)
            banner, version = server, ver(r"nginx/([\w.]+)", server)
            extra["http"] = {"status": status, "server": server, "title": title}
        t.close()
        extra["tls_versions"] = tls_versions(ip, port, service, e["starttls"])
        if service == "smtp":
            version = ver(r"(?:OpenSMTPD|Postfix)[ /](\d[\w.]*)", banner)
        elif service in ("imap", "pop3"):
            version = ver(r"Dovecot[ /]v?(\d[\w.]*)", banner)
    else:
        s = connect(ip, port)
        try:
            if service == "http":
                status, server, title = http_get(s, ip)
                banner, version = server, ver(r"nginx/([\w.]+)", server)
                extra["http"] = {"status": status, "server": server, "title": title}
            elif service == "ssh":
                banner, _ = readline(s)
                version = ver(r"^SSH-[\d.]+-OpenSSH_(\S+)", banner)
            elif service == "ftp":
                banner, _ = readline(s)
                version = ver(r"vsFTPd ([\d.]+)", banner)
            elif service == "redis":
                s.sendall(b"INFO server\r\n")
                info = read_reply(s, lambda b: b"redis_version:" in b and b.endswith(b"\r\n\r\n")
                                  or b.startswith(b"-"))
                banner = ver(r"(redis_version:\S+)", info)
                version = ver(r"redis_version:(\S+)", info)
            elif service == "mysql":
                hdr = s.recv(4)
                body = b""
                n = hdr[0] | hdr[1] << 8 | hdr[2] << 16
                while len(body) < n:
                    body += s.recv(n - len(body))
                assert body[0] == 10, "not a protocol-10 handshake"
                banner = body[1:body.index(b"\x00", 1)].decode("latin-1")
                version = ver(r"(\d+\.\d+\.\d+)-MariaDB", banner)
            elif service == "memcached":
                s.sendall(b"version\r\n")
                banner, _ = readline(s)
                version = ver(r"^VERSION (\S+)", banner)
            elif service == "mqtt":
                cid = b"aplab-probe"
                var = b"\x00\x04MQTT\x04\x02\x00\x3c"
                payload = struct.pack("!H", len(cid)) + cid
                s.sendall(bytes([0x10, len(var) + len(payload)]) + var + payload)
                r = s.recv(4)
                assert r[:2] == b"\x20\x02" and r[3:4] == b"\x00", f"CONNACK {r!r}"
                s.sendall(b"\xe0\x00")
        finally:
            s.close()
    if service == "ssh":
        keys = []
        for t in ("ed25519", "ecdsa", "rsa"):
            out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{ssh_dir}/ssh_host_{t}_key.pub"],
                                 capture_output=True, text=True, check=True).stdout.split()
            keys.append(f"{out[-1].strip('()')} {out[1]}")
        extra["hostkeys"] = keys
    return banner, version, extra


entries = []
for line in open(spec_file):
    if not line.strip():
        continue
    ip, port, proto, service, product, tls, st, cert = shlex.split(line)
    e = {"ip": ip, "port": int(port), "proto": proto, "service": service, "product": product,
         "tls": tls == "1", "starttls": st == "1"}
    e["cert"] = cert_info(cert) if cert != "-" else None
    entries.append(e)

out = []
for e in entries:
    last = None
    while True:
        try:
            banner, version, extra = probe(e)
            break
        except Exception as exc:  # not ready yet (or broken): retry until the deadline
            last = exc
            if time.monotonic() > deadline:
                print(f"lab: services: {e['product']} on {e['ip']}:{e['port']}/{e['proto']} not ready: {last!r}",
                      file=sys.stderr)
                sys.exit(1)
            time.sleep(0.2)
    rec = {"ip": e["ip"], "port": e["port"], "proto": e["proto"], "service": e["service"],
           "product": e["product"], "version": version, "banner": banner,
           "tls": e["tls"], "starttls": e["starttls"], "cert": e["cert"]}
    rec.update(extra)
    out.append(rec)

ipkey = lambda r: (tuple(int(x) for x in r["ip"].split(".")), r["port"], r["proto"])
with open(out_file, "w") as f:
    for r in sorted(out, key=ipkey):
        f.write(json.dumps(r) + "\n")
PYEOF
}

# ---------------------------------------------------------------------------
# up / down

svc_routes_up() {
    ip -n "$LAB_SCAN_NS" route replace "$SVC_NET" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
    ip -n "$LAB_TGT_NS" route replace local "$SVC_NET" dev lo
}

svc_routes_down() {
    local ns
    for ns in "$LAB_SCAN_NS" "$LAB_TGT_NS"; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
        ip -n "$ns" route del "$SVC_NET" 2>/dev/null || true
        ip -n "$ns" route del local "$SVC_NET" dev lo table local 2>/dev/null || true
    done
}

svc_stop_pid() { # name pid comm
    local name=$1 pid=$2 comm=$3 _
    svc_alive "$pid" "$comm" || return 0
    if [ "$name" = postgres ] && [ -d "$SVC_DIR/postgres/data" ]; then
        timeout 30 setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups -- \
            "$(svc_pg_bin)/pg_ctl" -D "$SVC_DIR/postgres/data" -m fast -w -t 20 stop >/dev/null 2>&1 || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 100); do
        svc_alive "$pid" "$comm" || return 0
        sleep 0.1
    done
    echo "lab: services: $name (pid $pid) ignored SIGTERM, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
    ! svc_alive "$pid" "$comm"
}

svc_down() {
    local name pid comm
    if [ -s "$SVC_PIDS" ]; then
        # Newest first.
        while read -r name pid comm; do
            [ -n "$name" ] || continue
            svc_stop_pid "$name" "$pid" "$comm" || echo "lab: services: $name (pid $pid) still alive" >&2
        done < <(tac "$SVC_PIDS")
    fi
    svc_routes_down
    rm -f "$SVC_GT" "$SVC_GT.tmp" "$SVC_ENV" "$LAB_DIR/services-apt.log"
    # Only our own directory, and only when it is where it must be.
    if [ -n "${LAB_DIR:-}" ] && [ "$SVC_DIR" = "$LAB_DIR/services" ] && [ -d "$SVC_DIR" ]; then
        rm -rf -- "$SVC_DIR"
    fi
    return 0
}

svc_up() {
    local t0=$SECONDS
    svc_install
    svc_down >/dev/null 2>&1 || true
    mkdir -p "$SVC_DIR"
    chmod 755 "$LAB_DIR" "$SVC_DIR"
    : >"$SVC_PIDS"
    svc_routes_up

    # The two slow initialisations run while everything else is prepared.
    svc_pg_init &
    SVC_PG_INIT_PID=$!
    svc_mariadb_init &
    SVC_MDB_INIT_PID=$!
    # If anything below fails, let these two finish (each is bounded by its
    # timeout) rather than leave them running behind the teardown.
    trap 'wait "$SVC_PG_INIT_PID" "$SVC_MDB_INIT_PID" 2>/dev/null || true' EXIT

    svc_pki
    svc_nginx
    svc_sshd
    svc_vsftpd
    svc_postfix
    svc_dovecot
    svc_redis
    svc_memcached
    svc_mosquitto
    svc_knot
    wait "$SVC_PG_INIT_PID" || { tail -n 20 "$SVC_DIR/postgres/initdb.log" >&2 || true; svc_die "initdb failed"; }
    svc_pg_start
    wait "$SVC_MDB_INIT_PID" || { tail -n 20 "$SVC_DIR/mariadb/install-db.log" >&2 || true; svc_die "mariadb-install-db failed"; }
    svc_mariadb_start
    trap - EXIT

    svc_probe || svc_die "services not ready after ${SVC_READY_TIMEOUT}s"
    mv -f "$SVC_GT.tmp" "$SVC_GT"
    cat >"$SVC_ENV.tmp" <<EOF
LAB_CA=$SVC_DIR/pki/ca.crt
LAB_SERVICES_NET=$SVC_NET
LAB_HOSTILE_NET=198.19.2.0/24
LAB_SERVICES=$SVC_GT
LAB_HOSTILE=$LAB_DIR/hostile.jsonl
LAB_DNS_SERVER=$SVC_IP_DNS
LAB_DNS_ZONES=lab.test
LAB_DNS_ZONE_DIR=$SVC_DIR/knot/zones
LAB_PG_USER=postgres
LAB_PG_PASSWORD=aperture-lab
LAB_MYSQL_USER=aplab
LAB_MYSQL_PASSWORD=aperture-lab
EOF
    mv -f "$SVC_ENV.tmp" "$SVC_ENV"
    svc_log "$(wc -l <"$SVC_GT") service ports up in $SVC_NET ($((SECONDS - t0))s)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_SERVICES:-1}" = 0 ]; then
            svc_log "skipped (APERTURE_LAB_SERVICES=0)"
        else
            svc_up
        fi
        ;;
    down) svc_down ;;
    *) svc_die "usage: 20-services.sh up|down" ;;
esac
