# shellcheck shell=bash
# Aperture lab hook: a second authoritative DNS server for enumeration tests.
#
# Sourced by scripts/lab with $1 = up|down and the LAB_* variables exported
# (see the header of scripts/lab). Independent of 20-services.sh (which runs
# its own knotd for lab.test on 198.19.1.53): this hook has its own knotd,
# config, rundir and storage under $LAB_DIR/dns/.
#
# On `up` it:
#   - installs knot (with /usr/sbin/policy-rc.d answering 101 meanwhile, so
#     nothing starts on the host) and knot-dnsutils only if knotd / kdig are
#     missing;
#   - routes 198.19.3.0/24 from $LAB_SCAN_NS via $LAB_TGT_IP and makes it
#     local in $LAB_TGT_NS (`ip route add local 198.19.3.0/24 dev lo`);
#   - generates (scripts/lab-dns-zones.py, flavour knot), deterministically (seed
#     $APERTURE_LAB_DNS_SEED, default $LAB_SEED; labels from mapper/data/subdomains.txt),
#     three zones:
#       corp.test   a few hundred names: A/AAAA into 198.19.1.0/24,
#                   198.19.3.0/24 and 2001:db8::/32; part of them use labels
#                   from the first 2,000 wordlist labels, the rest labels that
#                   are in no line of the wordlist (AXFR finds them); MX, NS
#                   (ns1/ns2 -> 198.19.3.53), SOA, SPF TXT, _dmarc, DKIM TXT,
#                   CAA, SRV (_sip._tcp, _xmpp-server._tcp, _ldap._tcp), a CNAME
#                   chain a -> b -> c -> www, a loop loop1 <-> loop2, a dangling
#                   CNAME old-shop -> missing.corp.test (NXDOMAIN), a wildcard
#                   *.wild.corp.test with real names below it that answer
#                   differently, IDN names (xn--bcher-kva, xn--caf-dma,
#                   xn--mnchen-3ya). AXFR allowed from $LAB_SCAN_IP only.
#       locked.test ~50 names (wordlist and non-wordlist labels); no transfer
#                   ACL, so AXFR is refused.
#       3.19.198.in-addr.arpa  PTR for the 198.19.3.x addresses used, plus
#                   PTR-only names (hidden-host.corp.test, ...) that exist
#                   nowhere else.
#   - starts knotd in $LAB_TGT_NS on 198.19.3.53 (53/udp+tcp), PID in
#     $LAB_DIR/dns.pid;
#   - waits ($LAB_DNS_TIMEOUT, 60 s) until, from $LAB_SCAN_NS, kdig gets the
#     SOA of every zone, an AXFR of corp.test succeeds with the expected number
#     of records and an AXFR of locked.test is refused (else fails, naming
#     what is not there);
#   - writes, atomically, the ground truth $LAB_DIR/dns-truth.json and
#     $LAB_DIR/dns.env (LAB_DNS_ENUM_SERVER, LAB_DNS_TRUTH, ...). The truth:
#       {"server": "198.19.3.53", "seed": S, "wordlist": ..., "wordlist_lines": 2000,
#        "ptr_only": [names only PTR reveals (NXDOMAIN forward)],
#        "zones": {
#          "corp.test": {"axfr": "allowed", "axfr_rcode": "NOERROR",
#             "axfr_allowed_from": [...], "records_total": N,
#             "names": {fqdn: {"records": {"A": [...], "AAAA": [...], "CNAME": [...],
#                                          "MX": ["10 mail.corp.test"], "TXT": [...],
#                                          "SRV": [...], "CAA": [...], "NS": [...], "SOA": [...]},
#                              "in_wordlist": bool (<label>.corp.test, label among the
#                                             first wordlist_lines labels),
#                              "found_by": subset of ["wordlist", "axfr", "ptr", "cname"]}},
#             "wildcard": ["wild.corp.test"], "wildcard_records": {...},
#             "cname_chains": {fqdn: {"path": [...], "length": n, "A": [...], "AAAA": [...]}},
#             "cname_loops": [[...]], "dangling": [...], "dangling_targets": {...},
#             "idn": {"xn--bcher-kva.corp.test": "bücher.corp.test", ...}},
#          "locked.test": {"axfr": "refused", "axfr_rcode": "NOTAUTH", "names": {...}},
#          "3.19.198.in-addr.arpa": {"axfr": "refused", "ptr": {"198.19.3.x": fqdn}}}}
#     Names are lowercase, without the final dot; record data as in a zone
#     file but names without their final dot and TXT unquoted.
# On `down` it stops exactly the knotd whose PID is in $LAB_DIR/dns.pid (only
# if its command line is knotd with this hook's config), removes its routes,
# $LAB_DIR/dns/ and its files.
#
# APERTURE_LAB_DNS=0 skips this hook; with APERTURE_LAB_SERVICES=0 (a bare lab)
# it is skipped too unless APERTURE_LAB_DNS=1.
# Nothing here sends a packet anywhere but inside the lab's namespaces.

DNS_NET=198.19.3.0/24
DNS_IP=198.19.3.53
DNS_DIR=$LAB_DIR/dns
DNS_PIDF=$LAB_DIR/dns.pid
DNS_TRUTH=$LAB_DIR/dns-truth.json
DNS_ENV=$LAB_DIR/dns.env
DNS_TIMEOUT=${LAB_DNS_TIMEOUT:-60}
DNS_SEED=${APERTURE_LAB_DNS_SEED:-${LAB_SEED:-42}}
DNS_WORDLIST_LINES=2000
DNS_PY=${PYTHON:-python3}
DNS_WORDLIST=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/mapper/data/subdomains.txt
DNS_ZONEGEN=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lab-dns-zones.py

dns_log() { echo "lab: dns: $*" >&2; }
dns_die() { echo "lab: dns: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Packages (only when missing)

dns_prc_restore() {
    [ -n "${DNS_PRC:-}" ] || return 0
    if [ -n "${DNS_PRC_BACKUP:-}" ]; then
        mv -f "$DNS_PRC_BACKUP" "$DNS_PRC"
    else
        rm -f "$DNS_PRC"
    fi
    rm -f "$DNS_PRC".apdns.*
    DNS_PRC=""
}

dns_install() {
    local -a pkgs=()
    command -v knotd >/dev/null 2>&1 || pkgs+=(knot)
    command -v kdig >/dev/null 2>&1 || pkgs+=(knot-dnsutils)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    dns_log "installing ${pkgs[*]}"
    local rc=0 log=$LAB_DIR/dns-apt.log
    DNS_PRC=/usr/sbin/policy-rc.d
    DNS_PRC_BACKUP=""
    if [ -e "$DNS_PRC" ] || [ -L "$DNS_PRC" ]; then
        DNS_PRC_BACKUP=$(mktemp /tmp/apdns-policy-rc.d.XXXXXX)
        cp -a "$DNS_PRC" "$DNS_PRC_BACKUP"
    fi
    trap dns_prc_restore EXIT
    printf '#!/bin/sh\n# Aperture lab: no service may start while packages are installed.\nexit 101\n' \
        >"$DNS_PRC.apdns.$$"
    chmod 755 "$DNS_PRC.apdns.$$"
    mv -f "$DNS_PRC.apdns.$$" "$DNS_PRC"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    if ! timeout 600 "${apt[@]}" install "${pkgs[@]}" >"$log" 2>&1; then
        timeout 300 "${apt[@]}" update >>"$log" 2>&1 || true
        timeout 600 "${apt[@]}" install "${pkgs[@]}" >>"$log" 2>&1 || rc=1
    fi
    dns_prc_restore
    trap - EXIT
    [ "$rc" -eq 0 ] || dns_die "apt-get install ${pkgs[*]} failed (see $log)"
    rm -f "$log"
    if ! command -v knotd >/dev/null 2>&1 || ! command -v kdig >/dev/null 2>&1; then
        dns_die "knotd/kdig still missing after installing ${pkgs[*]}"
    fi
}

# ---------------------------------------------------------------------------
# Zones and ground truth

# Writes $DNS_DIR/zones/*.zone, $DNS_DIR/expect (kdig checks) and
# $DNS_TRUTH.tmp; everything follows from the wordlist and the seed.
dns_generate() {
    "$DNS_PY" "$DNS_ZONEGEN" "$DNS_WORDLIST" "$DNS_SEED" "$DNS_DIR/zones" "$DNS_TRUTH.tmp" \
        "$DNS_DIR/expect" "$DNS_IP" "$DNS_WORDLIST_LINES" corp.test locked.test 198.19.3 knot
}

# ---------------------------------------------------------------------------
# Process bookkeeping

dns_is_ours() { # pid -- knotd running this hook's config
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$1/cmdline" ] || return 1
    local cmd state
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)
    [[ $cmd == *knotd*" -c $DNS_DIR/knot.conf"* ]] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

dns_routes_down() {
    local ns
    for ns in "$LAB_SCAN_NS" "$LAB_TGT_NS"; do
        ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
        ip -n "$ns" route del "$DNS_NET" 2>/dev/null || true
        ip -n "$ns" route del local "$DNS_NET" dev lo table local 2>/dev/null || true
    done
}

dns_down() {
    local pid="" _
    [ -s "$DNS_PIDF" ] && pid=$(tr -dc '0-9' 2>/dev/null <"$DNS_PIDF" || true)
    if dns_is_ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            dns_is_ours "$pid" || break
            sleep 0.1
        done
        if dns_is_ours "$pid"; then
            dns_log "knotd pid $pid ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        dns_is_ours "$pid" && dns_log "knotd pid $pid still alive"
    fi
    dns_routes_down
    rm -f "$DNS_PIDF" "$DNS_TRUTH" "$DNS_TRUTH.tmp" "$DNS_ENV" "$DNS_ENV.tmp" "$LAB_DIR/dns-apt.log"
    # Only our own directory, and only when it is where it must be.
    if [ -n "${LAB_DIR:-}" ] && [ "$DNS_DIR" = "$LAB_DIR/dns" ] && [ -d "$DNS_DIR" ]; then
        rm -rf -- "$DNS_DIR"
    fi
    return 0
}

# ---------------------------------------------------------------------------
# Readiness, seen from the scanner's namespace

dns_kdig() { ip netns exec "$LAB_SCAN_NS" timeout 10 kdig @"$DNS_IP" +time=2 +retry=0 "$@" 2>&1; }

# Prints what is not ready yet (one item a line); nothing when all is.
dns_check() {
    local z out want
    for z in corp.test locked.test 3.19.198.in-addr.arpa; do
        out=$(dns_kdig "$z" SOA +norec) || true
        grep -q 'status: NOERROR' <<<"$out" && grep -Eq "^$z\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+SOA" <<<"$out" \
            || echo "SOA of $z"
    done
    want=$(awk '$1 == "corp.test" {print $2}' "$DNS_DIR/expect")
    out=$(dns_kdig corp.test AXFR) || true
    grep -Eq ";; Received [0-9]+ B \\(.* $want records\\)" <<<"$out" \
        || echo "AXFR of corp.test (want $want records: $(grep -E '^;; (Received|ERROR|WARNING)' <<<"$out" | tr '\n' ' '))"
    out=$(dns_kdig locked.test AXFR) || true
    if grep -Eq 'IN[[:space:]]+SOA[[:space:]]' <<<"$out" || ! grep -Eq "replied with error '(NOTAUTH|REFUSED)'" <<<"$out"; then
        echo "AXFR of locked.test refused (got: $(grep -E '^;; ' <<<"$out" | tr '\n' ' '))"
    fi
    return 0
}

# The rcode a denied transfer gets (Knot answers NOTAUTH), into the truth file.
dns_record_denied_rcode() {
    local rcode
    rcode=$(dns_kdig locked.test AXFR | sed -n "s/.*replied with error '\([A-Z]*\)'.*/\1/p" | head -n 1) || true
    "$DNS_PY" - "$DNS_TRUTH.tmp" "${rcode:-unknown}" <<'PYEOF'
import json, sys
path, rcode = sys.argv[1:3]
t = json.load(open(path))
for z in ("locked.test", "3.19.198.in-addr.arpa"):
    t["zones"][z]["axfr_rcode"] = rcode
t["zones"]["corp.test"]["axfr_rcode"] = "NOERROR"
with open(path, "w") as f:
    json.dump(t, f, indent=1, ensure_ascii=False)
    f.write("\n")
PYEOF
}

dns_up() {
    local t0=$SECONDS
    [ -r "$DNS_WORDLIST" ] || dns_die "missing wordlist $DNS_WORDLIST"
    dns_install
    dns_down >/dev/null 2>&1 || true
    mkdir -p "$DNS_DIR/run" "$DNS_DIR/db" "$DNS_DIR/zones"
    chmod 755 "$LAB_DIR" "$DNS_DIR"
    ip -n "$LAB_SCAN_NS" route replace "$DNS_NET" via "$LAB_TGT_IP" dev "$LAB_SCAN_IF"
    ip -n "$LAB_TGT_NS" route replace local "$DNS_NET" dev lo

    dns_generate || dns_die "zone generation failed"
    cat >"$DNS_DIR/knot.conf" <<EOF
# Aperture lab Knot DNS (25-dns.sh): authoritative for the zones below only.
server:
    rundir: "$DNS_DIR/run"
    pidfile: "$DNS_DIR/run/knot.pid"
    user: knot:knot
    listen: $DNS_IP@53
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "$DNS_DIR/db"
control:
    listen: "$DNS_DIR/run/knot.sock"
acl:
  # The scanner, and the worker hosts' probe sources (40-workers.sh): every vantage of
  # the lab's own scans may transfer corp.test.
  - id: scanner_transfer
    address: [$LAB_SCAN_IP, 198.19.252.0/24]
    action: transfer
template:
  - id: default
    storage: "$DNS_DIR/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: corp.test
    acl: scanner_transfer
  - domain: locked.test
  - domain: 3.19.198.in-addr.arpa
EOF
    chown -R knot: "$DNS_DIR"
    knotc -c "$DNS_DIR/knot.conf" conf-check >/dev/null 2>"$DNS_DIR/conf-check.log" \
        || { cat "$DNS_DIR/conf-check.log" >&2; dns_die "knot config check failed"; }
    if command -v kzonecheck >/dev/null 2>&1; then
        local z
        for z in corp.test locked.test 3.19.198.in-addr.arpa; do
            kzonecheck -o "$z" "$DNS_DIR/zones/$z.zone" >"$DNS_DIR/zonecheck.log" 2>&1 \
                || { cat "$DNS_DIR/zonecheck.log" >&2; dns_die "zone $z does not check"; }
        done
    fi

    # `ip netns exec` execs knotd, so $! is the daemon's own PID.
    ip netns exec "$LAB_TGT_NS" /usr/sbin/knotd -c "$DNS_DIR/knot.conf" </dev/null >"$DNS_DIR/knotd.log" 2>&1 &
    local pid=$! _
    echo "$pid" >"$DNS_PIDF.tmp"
    mv -f "$DNS_PIDF.tmp" "$DNS_PIDF"
    for _ in $(seq 1 100); do
        dns_is_ours "$pid" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    dns_is_ours "$pid" || { tail -n 20 "$DNS_DIR/knotd.log" >&2 || true; dns_die "knotd did not start (pid $pid)"; }

    local deadline=$((SECONDS + DNS_TIMEOUT)) missing
    while :; do
        dns_is_ours "$pid" || { tail -n 20 "$DNS_DIR/knotd.log" >&2 || true; dns_die "knotd (pid $pid) exited"; }
        missing=$(dns_check)
        [ -n "$missing" ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$DNS_DIR/knotd.log" >&2 || true
            dns_die "not ready after ${DNS_TIMEOUT}s: $(echo "$missing" | paste -sd ';' -)"
        fi
        sleep 0.3
    done

    dns_record_denied_rcode
    mv -f "$DNS_TRUTH.tmp" "$DNS_TRUTH"
    cat >"$DNS_ENV.tmp" <<EOF
LAB_DNS_ENUM_SERVER=$DNS_IP
LAB_DNS_ENUM_NET=$DNS_NET
LAB_DNS_ENUM_ZONES="corp.test locked.test 3.19.198.in-addr.arpa"
LAB_DNS_TRUTH=$DNS_TRUTH
LAB_DNS_WORDLIST=$DNS_WORDLIST
LAB_DNS_WORDLIST_LINES=$DNS_WORDLIST_LINES
EOF
    mv -f "$DNS_ENV.tmp" "$DNS_ENV"
    dns_log "knotd (pid $pid) on $DNS_IP: corp.test (AXFR allowed), locked.test (AXFR refused), 3.19.198.in-addr.arpa; truth in $DNS_TRUTH ($((SECONDS - t0))s)"
}

case ${1:-} in
    up)
        if [ "${APERTURE_LAB_DNS:-}" = 0 ]; then
            dns_log "skipped (APERTURE_LAB_DNS=0)"
        elif [ "${APERTURE_LAB_SERVICES:-1}" = 0 ] && [ "${APERTURE_LAB_DNS:-}" != 1 ]; then
            dns_log "skipped (APERTURE_LAB_SERVICES=0; APERTURE_LAB_DNS=1 runs it anyway)"
        else
            dns_up
        fi
        ;;
    down) dns_down ;;
    *) dns_die "usage: 25-dns.sh up|down" ;;
esac
