# shellcheck shell=bash
# Aperture lab hook: BIND 9 (Debian's bind9, `named`), a second authoritative DNS
# implementation beside 25-dns.sh's knotd, with zones of its own: DNS enumeration is
# tested against both, since the two answer the same questions differently (BIND,
# authoritative only, refuses names outside its zones, adds authority and additional
# sections, answers a delegation with a referral).
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported (see the
# header of scripts/lab). Everything of it lives under $LAB_DIR/bind/.
#
# On `up` it:
#   - installs bind9 (with /usr/sbin/policy-rc.d answering 101 meanwhile, so nothing
#     starts on the host) only if named is missing;
#   - routes 198.19.4.0/24 from $LAB_SCAN_NS via $LAB_TGT_IP and makes it local in
#     $LAB_TGT_NS, with $BIND_IP on its lo (named listens only on interface addresses);
#   - generates with scripts/lab-dns-zones.py (flavour bind, seed as 25-dns.sh) the
#     zones bind.test (AXFR allowed from the scanner and the worker probe sources),
#     bind-locked.test (AXFR refused) and 4.19.198.in-addr.arpa: the same shapes as
#     corp.test/locked.test (chain, loop, dangling CNAME, *.wild, IDN, SRV, PTR-only
#     names) plus ext.bind.test CNAME www.corp.test (the other server's zone), the
#     delegation child.bind.test NS ns.child.bind.test (glue 198.19.4.54, nothing
#     serves it), *.dev.bind.test below a non-wildcard apex, and in bind-locked.test
#     *.dev.bind-locked.test with portal CNAME app.dev.bind-locked.test;
#   - starts named -g (recursion no, minimal-responses no) in $LAB_TGT_NS on
#     198.19.4.53, PID in $LAB_DIR/bind.pid;
#   - waits ($LAB_DNS_TIMEOUT, 60 s) until, from $LAB_SCAN_NS, kdig gets every zone's
#     SOA, an AXFR of bind.test with the expected record count and a refused AXFR of
#     bind-locked.test (else fails, naming what is missing);
#   - writes, atomically, $LAB_DIR/dns-bind-truth.json (the schema of dns-truth.json,
#     see 25-dns.sh and scripts/lab-dns-zones.py) and $LAB_DIR/dns-bind.env.
# On `down` it stops exactly the named whose PID is in $LAB_DIR/bind.pid (only if its
# command line is named with this hook's config), removes its routes and files.
#
# Skipped with APERTURE_LAB_DNS=0 or APERTURE_LAB_DNS_BIND=0, and in a bare lab
# (APERTURE_LAB_SERVICES=0) unless APERTURE_LAB_DNS=1. Nothing here sends a packet
# anywhere but inside the lab's namespaces.

BIND_NET=198.19.4.0/24
BIND_IP=198.19.4.53
BIND_DIR=$LAB_DIR/bind
BIND_PIDF=$LAB_DIR/bind.pid
BIND_TRUTH=$LAB_DIR/dns-bind-truth.json
BIND_ENV=$LAB_DIR/dns-bind.env
BIND_TIMEOUT=${LAB_DNS_TIMEOUT:-60}
BIND_SEED=${APERTURE_LAB_DNS_SEED:-${LAB_SEED:-42}}
BIND_ZONES="bind.test bind-locked.test 4.19.198.in-addr.arpa"
BIND_PY=${PYTHON:-python3}
BIND_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIND_WORDLIST=$BIND_ROOT/mapper/data/subdomains.txt
BIND_WORDLIST_LINES=2000

bind_log() { echo "lab: bind: $*" >&2; }
bind_die() { echo "lab: bind: error: $*" >&2; exit 1; }

bind_prc_restore() {
    [ -n "${BIND_PRC:-}" ] || return 0
    if [ -n "${BIND_PRC_BACKUP:-}" ]; then
        mv -f "$BIND_PRC_BACKUP" "$BIND_PRC"
    else
        rm -f "$BIND_PRC"
    fi
    rm -f "$BIND_PRC".apbind.*
    BIND_PRC=""
}

bind_install() {
    local -a pkgs=()
    [ -x /usr/sbin/named ] || pkgs+=(bind9)
    command -v kdig >/dev/null 2>&1 || pkgs+=(knot-dnsutils)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    bind_log "installing ${pkgs[*]}"
    local rc=0 log=$LAB_DIR/bind-apt.log
    BIND_PRC=/usr/sbin/policy-rc.d
    BIND_PRC_BACKUP=""
    if [ -e "$BIND_PRC" ] || [ -L "$BIND_PRC" ]; then
        BIND_PRC_BACKUP=$(mktemp /tmp/apbind-policy-rc.d.XXXXXX)
        cp -a "$BIND_PRC" "$BIND_PRC_BACKUP"
    fi
    trap bind_prc_restore EXIT
    printf '#!/bin/sh\n# Aperture lab: no service may start while packages are installed.\nexit 101\n' \
        >"$BIND_PRC.apbind.$$"
    chmod 755 "$BIND_PRC.apbind.$$"
    mv -f "$BIND_PRC.apbind.$$" "$BIND_PRC"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! timeout 600 "${apt[@]}" install "${pkgs[@]}" >"$log" 2>&1; then
        timeout 300 "${apt[@]}" update >>"$log" 2>&1 || true
        timeout 600 "${apt[@]}" install "${pkgs[@]}" >>"$log" 2>&1 || rc=1
    fi
    bind_prc_restore
    trap - EXIT
    [ "$rc" -eq 0 ] || bind_die "apt-get install ${pkgs[*]} failed (see $log)"
    rm -f "$log"
    [ -x /usr/sbin/named ] || bind_die "named still missing after installing ${pkgs[*]}"
}

bind_is_ours() { # pid -- named running this hook's config
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$1/cmdline" ] || return 1
    local cmd state
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)
    [[ $cmd == *named*" -c $BIND_DIR/named.conf"* ]] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

bind_down() {
    local pid="" ns _
    [ -s "$BIND_PIDF" ] && pid=$(tr -dc '0-9' 2>/dev/null <"$BIND_PIDF" || true)
    if bind_is_ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            bind_is_ours "$pid" || break
            sleep 0.1
        done
        if bind_is_ours "$pid"; then
            bind_log "named pid $pid ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        bind_is_ours "$pid" && bind_log "named pid $pid still alive"
    fi
    for ns in "$LAB_SCAN_NS" "$LAB_TGT_NS"; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
        ip -n "$ns" route del "$BIND_NET" 2>/dev/null || true
        ip -n "$ns" route del local "$BIND_NET" dev lo table local 2>/dev/null || true
    done
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$LAB_TGT_NS"; then
        ip -n "$LAB_TGT_NS" addr del "$BIND_IP/32" dev lo 2>/dev/null || true
    fi
    rm -f "$BIND_PIDF" "$BIND_TRUTH" "$BIND_TRUTH.tmp" "$BIND_ENV" "$BIND_ENV.tmp" "$LAB_DIR/bind-apt.log"
    if [ -n "${LAB_DIR:-}" ] && [ "$BIND_DIR" = "$LAB_DIR/bind" ] && [ -d "$BIND_DIR" ]; then
        rm -rf -- "$BIND_DIR"
    fi
    return 0
}

bind_kdig() { ip netns exec "$LAB_SCAN_NS" timeout 10 kdig @"$BIND_IP" +time=2 +retry=0 "$@" 2>&1; }

# Prints what is not ready yet (one item a line); nothing when all is.
bind_check() {
    local z out want
    for z in $BIND_ZONES; do
        out=$(bind_kdig "$z" SOA +norec) || true
        grep -q 'status: NOERROR' <<<"$out" && grep -Eq "^$z\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+SOA" <<<"$out" \
            || echo "SOA of $z"
    done
    want=$(awk '$1 == "bind.test" {print $2}' "$BIND_DIR/expect")
    out=$(bind_kdig bind.test AXFR) || true
    grep -Eq ";; Received [0-9]+ B \\(.* $want records\\)" <<<"$out" \
        || echo "AXFR of bind.test (want $want records: $(grep -E '^;; (Received|ERROR|WARNING)' <<<"$out" | tr '\n' ' '))"
    out=$(bind_kdig bind-locked.test AXFR) || true
    if grep -Eq 'IN[[:space:]]+SOA[[:space:]]' <<<"$out" || ! grep -Eq "replied with error '(NOTAUTH|REFUSED)'" <<<"$out"; then
        echo "AXFR of bind-locked.test refused (got: $(grep -E '^;; ' <<<"$out" | tr '\n' ' '))"
    fi
    return 0
}

bind_up() {
    local t0=$SECONDS z
    [ -r "$BIND_WORDLIST" ] || bind_die "missing wordlist $BIND_WORDLIST"
    bind_install
    bind_down >/dev/null 2>&1 || true
    mkdir -p "$BIND_DIR/run" "$BIND_DIR/zones"
    chmod 755 "$LAB_DIR" "$BIND_DIR"
    ip -n "$LAB_SCAN_NS" route replace "$BIND_NET" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
    ip -n "$LAB_TGT_NS" route replace local "$BIND_NET" dev lo
    # named listens only on addresses its interface scan finds, not on a local route.
    ip -n "$LAB_TGT_NS" addr replace "$BIND_IP/32" dev lo

    "$BIND_PY" "$BIND_ROOT/scripts/lab-dns-zones.py" "$BIND_WORDLIST" "$BIND_SEED" "$BIND_DIR/zones" \
        "$BIND_TRUTH.tmp" "$BIND_DIR/expect" "$BIND_IP" "$BIND_WORDLIST_LINES" \
        bind.test bind-locked.test 198.19.4 bind || bind_die "zone generation failed"
    {
        cat <<EOF
// Aperture lab BIND 9 (26-bind.sh): authoritative for the zones below only.
options {
    directory "$BIND_DIR/run";
    pid-file "$BIND_DIR/run/named.pid";
    session-keyfile "$BIND_DIR/run/session.key";
    managed-keys-directory "$BIND_DIR/run";
    listen-on port 53 { $BIND_IP; };
    listen-on-v6 { none; };
    recursion no;
    // Full authority and additional sections: answers carry records beyond the question.
    minimal-responses no;
    allow-transfer { none; };
    notify no;
    dnssec-validation no;
    rate-limit { responses-per-second 0; };
};
controls { };
EOF
        for z in $BIND_ZONES; do
            echo "zone \"$z\" { type primary; file \"$BIND_DIR/zones/$z.zone\";"
            # The scanner and the worker hosts' probe sources (40-workers.sh) may transfer bind.test.
            [ "$z" = bind.test ] && echo "    allow-transfer { $LAB_SCAN_IP; 198.19.252.0/24; };"
            echo "};"
        done
    } >"$BIND_DIR/named.conf"
    chown -R bind: "$BIND_DIR"
    named-checkconf "$BIND_DIR/named.conf" >"$BIND_DIR/check.log" 2>&1 \
        || { cat "$BIND_DIR/check.log" >&2; bind_die "named config check failed"; }
    for z in $BIND_ZONES; do
        named-checkzone -q "$z" "$BIND_DIR/zones/$z.zone" >"$BIND_DIR/check.log" 2>&1 \
            || { named-checkzone "$z" "$BIND_DIR/zones/$z.zone" >&2 || true; bind_die "zone $z does not check"; }
    done

    # `ip netns exec` execs named, and -g keeps it in the foreground: $! is its PID.
    ip netns exec "$LAB_TGT_NS" /usr/sbin/named -g -u bind -n 1 -c "$BIND_DIR/named.conf" \
        </dev/null >"$BIND_DIR/named.log" 2>&1 &
    local pid=$! _
    echo "$pid" >"$BIND_PIDF.tmp"
    mv -f "$BIND_PIDF.tmp" "$BIND_PIDF"
    for _ in $(seq 1 100); do
        bind_is_ours "$pid" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    bind_is_ours "$pid" || { tail -n 20 "$BIND_DIR/named.log" >&2 || true; bind_die "named did not start (pid $pid)"; }

    local deadline=$((SECONDS + BIND_TIMEOUT)) missing
    while :; do
        bind_is_ours "$pid" || { tail -n 20 "$BIND_DIR/named.log" >&2 || true; bind_die "named (pid $pid) exited"; }
        missing=$(bind_check)
        [ -n "$missing" ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$BIND_DIR/named.log" >&2 || true
            bind_die "not ready after ${BIND_TIMEOUT}s: $(echo "$missing" | paste -sd ';' -)"
        fi
        sleep 0.3
    done

    # The rcode a denied transfer gets, into the truth.
    local rcode
    rcode=$(bind_kdig bind-locked.test AXFR | sed -n "s/.*replied with error '\([A-Z]*\)'.*/\1/p" | head -n 1) || true
    "$BIND_PY" - "$BIND_TRUTH.tmp" "${rcode:-unknown}" <<'PYEOF'
import json, sys
path, rcode = sys.argv[1:3]
t = json.load(open(path))
for z in ("bind-locked.test", "4.19.198.in-addr.arpa"):
    t["zones"][z]["axfr_rcode"] = rcode
t["zones"]["bind.test"]["axfr_rcode"] = "NOERROR"
with open(path, "w") as f:
    json.dump(t, f, indent=1, ensure_ascii=False)
    f.write("\n")
PYEOF
    mv -f "$BIND_TRUTH.tmp" "$BIND_TRUTH"
    cat >"$BIND_ENV.tmp" <<EOF
LAB_DNS_BIND_SERVER=$BIND_IP
LAB_DNS_BIND_NET=$BIND_NET
LAB_DNS_BIND_ZONES="$BIND_ZONES"
LAB_DNS_BIND_TRUTH=$BIND_TRUTH
EOF
    mv -f "$BIND_ENV.tmp" "$BIND_ENV"
    bind_log "named (pid $pid) on $BIND_IP: bind.test (AXFR allowed), bind-locked.test (AXFR refused), 4.19.198.in-addr.arpa; truth in $BIND_TRUTH ($((SECONDS - t0))s)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_DNS:-}" = 0 ] || [ "${APERTURE_LAB_DNS_BIND:-}" = 0 ]; then
            bind_log "skipped (APERTURE_LAB_DNS=0 or APERTURE_LAB_DNS_BIND=0)"
        elif [ "${APERTURE_LAB_SERVICES:-1}" = 0 ] && [ "${APERTURE_LAB_DNS:-}" != 1 ]; then
            bind_log "skipped (APERTURE_LAB_SERVICES=0; APERTURE_LAB_DNS=1 runs it anyway)"
        else
            bind_up
        fi
        ;;
    down) bind_down ;;
    *) bind_die "usage: 26-bind.sh up|down" ;;
esac
