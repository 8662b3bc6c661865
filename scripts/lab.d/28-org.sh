# shellcheck shell=bash
# Aperture lab hook: a small organisation for the discovery loop to find from one seed.
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported (see the
# header of scripts/lab). Everything of it lives under $LAB_DIR/org/.
#
# The organisation (the tenant's scope in tests/discovery_lab.rs is 198.19.6.0/25 and
# the domain acme.test; 198.19.6.128/25 and 198.19.7.0/24 are lab addresses outside it):
#   zone acme.test (BIND on 198.19.7.53, AXFR refused: names come from the wordlist,
#   certificates and PTR only)
#     www.acme.test         A 198.19.6.10   nginx 80, 443 cert SANs www.acme.test,
#                                           qx7-portal.acme.test, shop.acme-shop.test
#     qx7-portal.acme.test  A 198.19.6.11   (not in the wordlist: only the cert names it)
#                                           nginx 443 cert SANs qx7-portal.acme.test,
#                                           zv9-vault.acme.test, partner.acme-partner.test
#     zv9-vault.acme.test   A 198.19.6.12   nginx 443 cert SAN zv9-vault.acme.test
#     kb4-legacy.acme.test  A 198.19.6.13   (only PTR 12.6.19.198.in-addr.arpa names it)
#                                           nginx 80
#     mail.acme.test        A 198.19.6.140  outside scope; nginx 443 (must not be probed
#                                           until an analyst approves it)
#     ns1.acme.test         A 198.19.7.53   outside scope (the DNS server)
#     shop.acme.test        CNAME d3f8k2x9.cloudfront.net (a CDN, answered nowhere here)
#   zone acme-shop.test: shop.acme-shop.test A 198.19.6.141 (outside scope), nginx 443
#   zone 6.19.198.in-addr.arpa: 10 PTR www.acme.test, 12 PTR kb4-legacy.acme.test
#   198.19.6.20: nginx 80, named nowhere: a loop that sweeps the scope would find it.
# nft table `inet aplab_org` in $LAB_TGT_NS (prerouting, priority raw), zero at `up`:
#   counters org_in (to 198.19.6.0/25), org_out (to 198.19.6.128/25 but .140),
#   org_140 (to 198.19.6.140), org_dns_other (to 198.19.7.53, not port 53),
#   org_unnamed (to 198.19.6.20).
#     ip netns exec $LAB_TGT_NS nft -j list counter inet aplab_org org_out
# Writes $LAB_DIR/org.env (LAB_ORG_DNS, LAB_ORG_ZONE). On `down` it stops exactly the
# named and nginx whose PIDs it recorded, deletes its nft table, routes and files.
# Skipped with APERTURE_LAB_ORG=0 or APERTURE_LAB_DNS=0, when named/nginx/kdig are
# missing, and in a bare lab (APERTURE_LAB_SERVICES=0) unless
# APERTURE_LAB_ORG=1. Nothing here sends a packet anywhere but inside the lab.

ORG_NETS="198.19.6.0/24 198.19.7.0/24"
ORG_DNS=198.19.7.53
ORG_DIR=$LAB_DIR/org
ORG_ENV=$LAB_DIR/org.env
ORG_TIMEOUT=${LAB_DNS_TIMEOUT:-60}

org_log() { echo "lab: org: $*" >&2; }
org_die() { echo "lab: org: error: $*" >&2; exit 1; }

org_is() { # pid comm-pattern conf -- our daemon, alive
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$1/cmdline" ] || return 1
    local cmd state
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)
    [[ $cmd == *$2*" -c $3"* ]] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

org_stop() { # pidfile pattern conf
    local pid="" _
    [ -s "$1" ] && pid=$(tr -dc '0-9' 2>/dev/null <"$1" || true)
    org_is "$pid" "$2" "$3" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        org_is "$pid" "$2" "$3" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

org_down() {
    local ns net
    org_stop "$ORG_DIR/named.pid" named "$ORG_DIR/named.conf"
    org_stop "$ORG_DIR/nginx.pid.own" nginx "$ORG_DIR/nginx.conf"
    for ns in "$LAB_SCAN_NS" "$LAB_TGT_NS"; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
        for net in $ORG_NETS; do
            ip -n "$ns" route del "$net" 2>/dev/null || true
            ip -n "$ns" route del local "$net" dev lo table local 2>/dev/null || true
        done
    done
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$LAB_TGT_NS"; then
        ip -n "$LAB_TGT_NS" addr del "$ORG_DNS/32" dev lo 2>/dev/null || true
        ip netns exec "$LAB_TGT_NS" nft delete table inet aplab_org 2>/dev/null || true
    fi
    rm -f "$ORG_ENV" "$ORG_ENV.tmp"
    if [ -n "${LAB_DIR:-}" ] && [ "$ORG_DIR" = "$LAB_DIR/org" ] && [ -d "$ORG_DIR" ]; then
        rm -rf -- "$ORG_DIR"
    fi
    return 0
}

org_cert() { # name sans
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$ORG_DIR/$1.key" -out "$ORG_DIR/$1.crt" \
        -days 825 -sha256 -subj "/O=Acme Lab/CN=${2%%,*}" \
        -addext "subjectAltName=DNS:${2//,/,DNS:}" 2>/dev/null \
        || org_die "cannot make the $1 certificate"
}

org_zones() {
    local Z=$ORG_DIR/zones soa="@ 300 IN SOA ns1.acme.test. hostmaster.acme.test. 1 300 60 600 60"
    cat >"$Z/acme.test.zone" <<EOF
\$ORIGIN acme.test.
\$TTL 300
$soa
@ IN NS ns1.acme.test.
@ IN MX 10 mail.acme.test.
ns1 IN A $ORG_DNS
www IN A 198.19.6.10
qx7-portal IN A 198.19.6.11
zv9-vault IN A 198.19.6.12
kb4-legacy IN A 198.19.6.13
mail IN A 198.19.6.140
shop IN CNAME d3f8k2x9.cloudfront.net.
EOF
    cat >"$Z/acme-shop.test.zone" <<EOF
\$ORIGIN acme-shop.test.
\$TTL 300
$soa
@ IN NS ns1.acme.test.
shop IN A 198.19.6.141
EOF
    cat >"$Z/6.19.198.in-addr.arpa.zone" <<EOF
\$ORIGIN 6.19.198.in-addr.arpa.
\$TTL 300
$soa
@ IN NS ns1.acme.test.
10 IN PTR www.acme.test.
12 IN PTR kb4-legacy.acme.test.
EOF
}

org_up() {
    local t0=$SECONDS net z pid _
    # The daemons come with 26-bind.sh and 20-services.sh; without them, no organisation
    # (its test then skips, or fails under APERTURE_LAB_REQUIRED=1, saying so).
    if ! [ -x /usr/sbin/named ] || ! [ -x /usr/sbin/nginx ] || ! command -v kdig >/dev/null 2>&1; then
        org_log "skipped: named, nginx or kdig missing (26-bind.sh and 20-services.sh install them)"
        return 0
    fi
    org_down >/dev/null 2>&1 || true
    mkdir -p "$ORG_DIR/zones" "$ORG_DIR/run" "$ORG_DIR/tmp"
    chmod 755 "$LAB_DIR" "$ORG_DIR"
    for net in $ORG_NETS; do
        ip -n "$LAB_SCAN_NS" route replace "$net" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
        ip -n "$LAB_TGT_NS" route replace local "$net" dev lo
    done
    ip -n "$LAB_TGT_NS" addr replace "$ORG_DNS/32" dev lo

    ip netns exec "$LAB_TGT_NS" nft -f - <<'EOF' || org_die "nft table"
table inet aplab_org {
    counter org_in { }
    counter org_out { }
    counter org_140 { }
    counter org_dns_other { }
    counter org_unnamed { }
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        ip daddr 198.19.6.0/25 counter name org_in
        ip daddr 198.19.6.140 counter name org_140
        ip daddr 198.19.6.128/25 ip daddr != 198.19.6.140 counter name org_out
        ip daddr 198.19.6.20 counter name org_unnamed
        ip daddr 198.19.7.53 udp dport != 53 counter name org_dns_other
        ip daddr 198.19.7.53 tcp dport != 53 counter name org_dns_other
        ip daddr 198.19.7.53 meta l4proto != { tcp, udp } counter name org_dns_other
    }
}
EOF

    org_zones
    cat >"$ORG_DIR/named.conf" <<EOF
// Aperture lab (28-org.sh): authoritative for the organisation's zones only.
options {
    directory "$ORG_DIR/run";
    pid-file "$ORG_DIR/run/named.pid";
    session-keyfile "$ORG_DIR/run/session.key";
    managed-keys-directory "$ORG_DIR/run";
    listen-on port 53 { $ORG_DNS; };
    listen-on-v6 { none; };
    recursion no;
    allow-transfer { none; };
    notify no;
    dnssec-validation no;
    rate-limit { responses-per-second 0; };
};
controls { };
EOF
    for z in acme.test acme-shop.test 6.19.198.in-addr.arpa; do
        echo "zone \"$z\" { type primary; file \"$ORG_DIR/zones/$z.zone\"; };" >>"$ORG_DIR/named.conf"
        named-checkzone -q "$z" "$ORG_DIR/zones/$z.zone" || org_die "zone $z does not check"
    done
    chown -R bind: "$ORG_DIR/run" "$ORG_DIR/zones" 2>/dev/null || true
    ip netns exec "$LAB_TGT_NS" /usr/sbin/named -g -u bind -n 1 -c "$ORG_DIR/named.conf" \
        </dev/null >"$ORG_DIR/named.log" 2>&1 &
    pid=$!
    echo "$pid" >"$ORG_DIR/named.pid"

    org_cert www "www.acme.test,qx7-portal.acme.test,shop.acme-shop.test"
    org_cert portal "qx7-portal.acme.test,zv9-vault.acme.test,partner.acme-partner.test"
    org_cert vault "zv9-vault.acme.test"
    org_cert mail "mail.acme.test"
    org_cert shop "shop.acme-shop.test"
    chmod 644 "$ORG_DIR"/*.key
    local tls="ssl_protocols TLSv1.2 TLSv1.3;"
    cat >"$ORG_DIR/nginx.conf" <<EOF
# Aperture lab (28-org.sh): the organisation's web servers.
daemon off;
master_process on;
worker_processes 1;
user www-data;
pid $ORG_DIR/nginx.pid;
error_log $ORG_DIR/error.log warn;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path $ORG_DIR/tmp/body;
    proxy_temp_path $ORG_DIR/tmp/proxy;
    fastcgi_temp_path $ORG_DIR/tmp/fastcgi;
    uwsgi_temp_path $ORG_DIR/tmp/uwsgi;
    scgi_temp_path $ORG_DIR/tmp/scgi;
    server { listen 198.19.6.10:80; return 200 "acme www\n"; }
    server { listen 198.19.6.10:443 ssl; $tls ssl_certificate $ORG_DIR/www.crt; ssl_certificate_key $ORG_DIR/www.key; return 200 "acme www\n"; }
    server { listen 198.19.6.11:443 ssl; $tls ssl_certificate $ORG_DIR/portal.crt; ssl_certificate_key $ORG_DIR/portal.key; return 200 "acme portal\n"; }
    server { listen 198.19.6.12:443 ssl; $tls ssl_certificate $ORG_DIR/vault.crt; ssl_certificate_key $ORG_DIR/vault.key; return 200 "acme vault\n"; }
    server { listen 198.19.6.13:80; return 200 "acme legacy\n"; }
    server { listen 198.19.6.20:80; return 200 "unnamed\n"; }
    server { listen 198.19.6.140:443 ssl; $tls ssl_certificate $ORG_DIR/mail.crt; ssl_certificate_key $ORG_DIR/mail.key; return 200 "acme mail\n"; }
    server { listen 198.19.6.141:443 ssl; $tls ssl_certificate $ORG_DIR/shop.crt; ssl_certificate_key $ORG_DIR/shop.key; return 200 "acme shop\n"; }
}
EOF
    ip netns exec "$LAB_TGT_NS" /usr/sbin/nginx -t -q -p "$ORG_DIR" -c "$ORG_DIR/nginx.conf" -e "$ORG_DIR/error.log" \
        2>"$ORG_DIR/nginx-t.log" || { cat "$ORG_DIR/nginx-t.log" >&2; org_die "nginx config test failed"; }
    ip netns exec "$LAB_TGT_NS" /usr/sbin/nginx -p "$ORG_DIR" -c "$ORG_DIR/nginx.conf" -e "$ORG_DIR/error.log" \
        </dev/null >"$ORG_DIR/nginx.log" 2>&1 &
    echo "$!" >"$ORG_DIR/nginx.pid.own"

    local deadline=$((SECONDS + ORG_TIMEOUT)) missing
    while :; do
        missing=""
        org_is "$pid" named "$ORG_DIR/named.conf" || { tail -n 20 "$ORG_DIR/named.log" >&2 || true; org_die "named exited"; }
        for z in acme.test acme-shop.test 6.19.198.in-addr.arpa; do
            ip netns exec "$LAB_SCAN_NS" timeout 5 kdig @"$ORG_DNS" +time=1 +retry=0 "$z" SOA 2>&1 \
                | grep -q 'status: NOERROR' || missing+=" SOA:$z"
        done
        for a in 198.19.6.10:443 198.19.6.11:443 198.19.6.12:443 198.19.6.13:80 198.19.6.140:443; do
            ip netns exec "$LAB_TGT_NS" timeout 2 bash -c "exec 3<>/dev/tcp/${a%:*}/${a#*:}" 2>/dev/null \
                || missing+=" $a"
        done
        [ -z "$missing" ] && break
        [ "$SECONDS" -ge "$deadline" ] && org_die "not ready after ${ORG_TIMEOUT}s:$missing"
        sleep 0.3
    done
    # The readiness checks ran inside the target namespace: counters start from zero.
    ip netns exec "$LAB_TGT_NS" nft reset counters table inet aplab_org >/dev/null
    printf 'LAB_ORG_DNS=%s\nLAB_ORG_ZONE=acme.test\n' "$ORG_DNS" >"$ORG_ENV.tmp"
    mv -f "$ORG_ENV.tmp" "$ORG_ENV"
    org_log "acme.test on $ORG_DNS (named pid $pid), web servers on 198.19.6.0/24 ($((SECONDS - t0))s)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_ORG:-}" = 0 ] || { [ "${APERTURE_LAB_DNS:-}" = 0 ] && [ "${APERTURE_LAB_ORG:-}" != 1 ]; }; then
            org_log "skipped (APERTURE_LAB_ORG=0 or APERTURE_LAB_DNS=0)"
        elif [ "${APERTURE_LAB_SERVICES:-1}" = 0 ] && [ "${APERTURE_LAB_ORG:-}" != 1 ]; then
            org_log "skipped (APERTURE_LAB_SERVICES=0; APERTURE_LAB_ORG=1 runs it anyway)"
        else
            org_up
        fi
        ;;
    down) org_down ;;
    *) org_die "usage: 28-org.sh up|down" ;;
esac
