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
#   - generates, deterministically (seed $APERTURE_LAB_DNS_SEED, default
#     $LAB_SEED; labels from mapper/data/subdomains.txt), three zones:
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
    "$DNS_PY" - "$DNS_WORDLIST" "$DNS_SEED" "$DNS_DIR/zones" "$DNS_TRUTH.tmp" "$DNS_DIR/expect" \
        "$DNS_IP" "$DNS_WORDLIST_LINES" <<'PYEOF'
import ipaddress
import json
import random
import re
import sys

wl_path, seed, zdir, truth_path, expect_path, server, wl_lines = sys.argv[1:8]
wl_lines = int(wl_lines)
labels = [l.strip() for l in open(wl_path) if l.strip() and not l.lstrip().startswith("#")]
if len(labels) < wl_lines:
    sys.exit(f"wordlist {wl_path} has {len(labels)} labels, need at least {wl_lines}")
TOP = labels[:wl_lines]
TOPSET = set(TOP)
ALL = set(labels)
rng = random.Random(f"aperture-lab-dns/{seed}")

TTL = 300
SERIAL = 2024010101

# ---- helpers --------------------------------------------------------------
zones = {}          # zone -> {owner(fqdn, no dot): {type: [rdata, ...]}}


def add(zone, owner, rtype, rdata):
    recs = zones.setdefault(zone, {}).setdefault(owner, {})
    lst = recs.setdefault(rtype, [])
    if rdata not in lst:
        lst.append(rdata)


def exists(zone, owner):
    return owner in zones.get(zone, {})


used_labels = set()
CONSONANTS = "bcdfghjklmnprstvwz"
VOWELS = "aeiou"


def random_label():
    """A label in no line of the wordlist (and not used yet)."""
    while True:
        kind = rng.random()
        syl = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 4)))
        if kind < 0.45:
            lab = syl
        elif kind < 0.75:
            lab = f"{syl}{rng.randint(1, 99)}"
        elif kind < 0.9:
            lab = f"{syl}-{rng.choice(CONSONANTS)}{rng.randint(10, 999)}"
        else:
            lab = "x" + "".join(rng.choice("0123456789abcdef") for _ in range(7))
        if lab not in ALL and lab not in used_labels and "missing" not in lab:
            used_labels.add(lab)
            return lab


pool3 = [i for i in range(2, 98) if i not in (53,)]                     # corp.test in 198.19.3.x
pool1 = list(range(100, 251))                                           # corp.test in 198.19.1.x
pool_locked = list(range(150, 200))                                     # locked.test in 198.19.3.x


def ip3(i):
    return f"198.19.3.{i}"


def v6():
    a = ipaddress.IPv6Address(f"2001:db8:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xffff):x}")
    return str(a)


def pick_a(net3_share=0.5):
    if rng.random() < net3_share:
        return ip3(rng.choice(pool3))
    return f"198.19.1.{rng.choice(pool1)}"


# ---- corp.test -----------------------------------------------------------
Z = "corp.test"
apex = Z
add(Z, apex, "SOA", f"ns1.{Z} hostmaster.{Z} {SERIAL} 3600 900 604800 {TTL}")
add(Z, apex, "NS", f"ns1.{Z}")
add(Z, apex, "NS", f"ns2.{Z}")
add(Z, apex, "A", "198.19.1.10")
add(Z, apex, "MX", f"10 mail.{Z}")
add(Z, apex, "MX", f"20 mx2.{Z}")
add(Z, apex, "TXT", f"v=spf1 ip4:198.19.1.0/24 include:_spf.{Z} -all")
add(Z, apex, "CAA", '0 issue "letsencrypt.org"')
add(Z, f"ns1.{Z}", "A", server)
add(Z, f"ns2.{Z}", "A", server)
add(Z, f"_spf.{Z}", "TXT", "v=spf1 ip4:198.19.3.0/24 -all")
add(Z, f"_dmarc.{Z}", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{Z}; pct=100")
add(Z, f"selector1._domainkey.{Z}", "TXT", "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ")
# Names pointing at the lab's real services (20-services.sh) where they match.
fixed_a = {
    "www": ["198.19.1.10"], "api": ["198.19.1.10", ip3(10)], "mail": ["198.19.1.25"],
    "smtp": ["198.19.1.25"], "imap": ["198.19.1.26"], "mx2": [ip3(26)], "ssh": ["198.19.1.20"],
    "ftp": ["198.19.1.21"], "vpn": [ip3(1)], "sip": [ip3(60)], "xmpp": [ip3(61)],
    "ldap": [ip3(62)],
}
for lab, addrs in fixed_a.items():
    for a in addrs:
        add(Z, f"{lab}.{Z}", "A", a)
    used_labels.add(lab)
add(Z, f"www.{Z}", "AAAA", "2001:db8:c0::10")
add(Z, f"_sip._tcp.{Z}", "SRV", f"10 60 5060 sip.{Z}")
add(Z, f"_xmpp-server._tcp.{Z}", "SRV", f"5 0 5269 xmpp.{Z}")
add(Z, f"_ldap._tcp.{Z}", "SRV", f"0 100 389 ldap.{Z}")
# CNAME chain of length 3, a loop, a dangling CNAME.
add(Z, f"a.{Z}", "CNAME", f"b.{Z}")
add(Z, f"b.{Z}", "CNAME", f"c.{Z}")
add(Z, f"c.{Z}", "CNAME", f"www.{Z}")
add(Z, f"loop1.{Z}", "CNAME", f"loop2.{Z}")
add(Z, f"loop2.{Z}", "CNAME", f"loop1.{Z}")
DANGLING_TARGET = f"missing.{Z}"
add(Z, f"old-shop.{Z}", "CNAME", DANGLING_TARGET)
# Wildcard subzone (same zone, no delegation).
W = f"wild.{Z}"
add(Z, W, "A", ip3(98))
add(Z, f"*.{W}", "A", ip3(99))
for lab, i in (("real", 100), ("api", 101), ("mail", 102), ("www", 103)):
    add(Z, f"{lab}.{W}", "A", ip3(i))
# IDN names.
IDN = {"bücher": 110, "café": 111, "münchen": 112}
idn_map = {}
for u, i in IDN.items():
    ace = u.encode("idna").decode()
    add(Z, f"{ace}.{Z}", "A", ip3(i))
    idn_map[f"{ace}.{Z}"] = f"{u}.{Z}"
used_labels.update({"a", "b", "c", "loop1", "loop2", "old-shop", "wild", "missing", "ns1", "ns2",
                    "mx2", "_spf", "_dmarc", "selector1"} | {n.split(".")[0] for n in idn_map})

# Wordlist names (labels from the first wl_lines lines of the wordlist).
cand = [l for l in TOP if l not in used_labels and l != "missing"]
wl_names = rng.sample(cand, 160)
random_names = [random_label() for _ in range(140)]


def give_records(owner, cname_targets):
    r = rng.random()
    if r < 0.62:
        add(Z, owner, "A", pick_a())
    elif r < 0.72:
        for a in sorted({pick_a(), pick_a()}):
            add(Z, owner, "A", a)
    elif r < 0.84:
        add(Z, owner, "A", pick_a())
        add(Z, owner, "AAAA", v6())
    elif r < 0.90:
        add(Z, owner, "AAAA", v6())
    else:
        add(Z, owner, "CNAME", rng.choice(cname_targets))


# Random names first (they are the CNAME targets some wordlist names point at:
# found only by AXFR or by following the CNAME).
for lab in random_names:
    owner = f"{lab}.{Z}"
    r = rng.random()
    if r < 0.75:
        add(Z, owner, "A", pick_a())
    elif r < 0.88:
        add(Z, owner, "A", pick_a())
        add(Z, owner, "AAAA", v6())
    else:
        add(Z, owner, "AAAA", v6())
addr_targets = sorted(n for n in zones[Z] if n.endswith("." + Z) and n.count(".") == 2
                      and ("A" in zones[Z][n] or "AAAA" in zones[Z][n]) and n.split(".")[0] in used_labels
                      and not n.startswith("_"))
rand_targets = [f"{l}.{Z}" for l in random_names]
for lab in wl_names:
    used_labels.add(lab)
    give_records(f"{lab}.{Z}", rand_targets if rng.random() < 0.6 else addr_targets)
# A few deeper names below random labels (which have records of their own: no
# empty non-terminals), some TXT-only names.
for lab in rng.sample(random_names, 10):
    add(Z, f"{rng.choice(['db', 'app', 'mgmt', 'node1', 'int'])}.{lab}.{Z}", "A", pick_a())
for lab in rng.sample(random_names, 4):
    add(Z, f"{lab}.{Z}", "TXT", f"verification={rng.getrandbits(64):016x}")
add(Z, apex, "TXT", f"aperture-lab-verification={rng.getrandbits(64):016x}")

# ---- locked.test ---------------------------------------------------------
L = "locked.test"
add(L, L, "SOA", f"ns.{L} hostmaster.{L} {SERIAL} 3600 900 604800 {TTL}")
add(L, L, "NS", f"ns.{L}")
add(L, f"ns.{L}", "A", server)
add(L, L, "A", "198.19.1.10")
add(L, L, "MX", f"10 mail.{L}")
add(L, f"mail.{L}", "A", ip3(150))
lock_wl = rng.sample([l for l in TOP if l not in ("ns", "mail")], 24)
lock_rand = [random_label() for _ in range(24)]
lp = iter(rng.sample(pool_locked[1:], len(pool_locked) - 1))
for lab in lock_wl + lock_rand:
    owner = f"{lab}.{L}"
    if rng.random() < 0.7:
        add(L, owner, "A", ip3(next(lp)))
    else:
        add(L, owner, "A", f"198.19.1.{rng.choice(pool1)}")
    if rng.random() < 0.15:
        add(L, owner, "AAAA", v6())

# ---- reverse zone -----------------------------------------------------------
R = "3.19.198.in-addr.arpa"
add(R, R, "SOA", f"ns1.{Z} hostmaster.{Z} {SERIAL} 3600 900 604800 {TTL}")
add(R, R, "NS", f"ns1.{Z}")
add(R, R, "NS", f"ns2.{Z}")
owners_by_ip = {}
for zone in (Z, L):
    for owner, recs in zones[zone].items():
        if owner.startswith("*."):
            continue
        for a in recs.get("A", []):
            if a.startswith("198.19.3."):
                owners_by_ip.setdefault(a, []).append(owner)
ptr = {}
for a in sorted(owners_by_ip, key=lambda s: int(s.rsplit(".", 1)[1])):
    owners = sorted(owners_by_ip[a])
    # Prefer a name the wordlist cannot find (PTR is then the only way besides AXFR).
    hidden = [o for o in owners if o.split(".")[0] not in TOPSET or o.count(".") > 2]
    if a == server:
        name = f"ns1.{Z}"
    else:
        name = rng.choice(hidden or owners)
    ptr[a] = name
PTR_ONLY = {200: "hidden-host", 201: "bkp-vault-7", 202: "oob-ilo-r12", 203: "legacy-fin-db",
            204: random_label()}
ptr_only = []
for i, lab in PTR_ONLY.items():
    assert lab not in ALL, lab
    name = f"{lab}.{Z}"
    assert not exists(Z, name)
    ptr[ip3(i)] = name
    ptr_only.append(name)
for a, name in ptr.items():
    add(R, f"{a.rsplit('.', 1)[1]}.{R}", "PTR", name)

# ---- zone files -------------------------------------------------------------
ORDER = ["SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "PTR"]


def fq(rtype, rdata):
    """Presentation form for the zone file: absolute names get their dot."""
    if rtype in ("NS", "CNAME", "PTR"):
        return rdata + "."
    if rtype == "MX":
        pref, host = rdata.split()
        return f"{pref} {host}."
    if rtype == "SRV":
        p, w, port, host = rdata.split()
        return f"{p} {w} {port} {host}."
    if rtype == "SOA":
        m, r, *rest = rdata.split()
        return f"{m}. {r}. " + " ".join(rest)
    if rtype == "TXT":
        return '"' + rdata.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return rdata


def sort_key(zone, owner):
    rel = owner[: -len(zone)].rstrip(".")
    return (rel != "", list(reversed(rel.split("."))))


counts = {}
for zone, names in zones.items():
    lines = [f"; generated by scripts/lab.d/25-dns.sh (seed {seed}) -- do not edit",
             f"$ORIGIN {zone}.", f"$TTL {TTL}"]
    n = 0
    for owner in sorted(names, key=lambda o: sort_key(zone, o)):
        for rtype in ORDER:
            for rdata in names[owner].get(rtype, []):
                lines.append(f"{owner}. {TTL} IN {rtype} {fq(rtype, rdata)}")
                n += 1
    counts[zone] = n
    with open(f"{zdir}/{zone}.zone", "w") as f:
        f.write("\n".join(lines) + "\n")

# ---- ground truth -------------------------------------------------------------
cname_targets = {}
for owner, recs in zones[Z].items():
    for t in recs.get("CNAME", []):
        cname_targets.setdefault(t, []).append(owner)
ptr_names = set(ptr.values())


def in_wordlist(zone, owner):
    rel = owner[: -len(zone) - 1] if owner != zone else ""
    return rel != "" and "." not in rel and rel in TOPSET


def found_by(zone, owner, axfr):
    f = []
    if in_wordlist(zone, owner):
        f.append("wordlist")
    if axfr:
        f.append("axfr")
    if owner in ptr_names:
        f.append("ptr")
    if owner in cname_targets:
        f.append("cname")
    return f


def zone_names(zone, axfr):
    out = {}
    for owner in sorted(zones[zone], key=lambda o: sort_key(zone, o)):
        recs = {t: list(zones[zone][owner][t]) for t in ORDER if t in zones[zone][owner]}
        e = {"records": recs, "in_wordlist": in_wordlist(zone, owner),
             "found_by": found_by(zone, owner, axfr)}
        if owner.startswith("*."):
            e["wildcard"] = True
        out[owner] = e
    return out


def chase(owner):
    """Follows in-zone CNAMEs: (path, final records) or None for loops/dangling."""
    path, seen, cur = [], {owner}, owner
    while True:
        recs = zones[Z].get(cur)
        if recs is None:
            return None
        if "CNAME" not in recs:
            return path, recs
        cur = recs["CNAME"][0]
        if cur in seen:
            return None
        seen.add(cur)
        path.append(cur)


chains, loops, dangling = {}, [], []
for owner, recs in sorted(zones[Z].items()):
    if "CNAME" not in recs:
        continue
    res = chase(owner)
    if res is None:
        tgt = recs["CNAME"][0]
        if tgt not in zones[Z]:
            dangling.append(owner)
        continue
    path, final = res
    chains[owner] = {"path": path, "length": len(path),
                     "A": final.get("A", []), "AAAA": final.get("AAAA", [])}
loops = [[f"loop1.{Z}", f"loop2.{Z}"]]

truth = {
    "server": server,
    "seed": seed,
    "zones": {
        Z: {
            "axfr": "allowed",
            "axfr_allowed_from": ["198.19.255.1", "198.19.252.0/24"],
            "names": zone_names(Z, True),
            "wildcard": [W],
            "wildcard_records": {f"*.{W}": {"A": [ip3(99)]}},
            "cname_chains": chains,
            "cname_loops": loops,
            "dangling": dangling,
            "dangling_targets": {o: zones[Z][o]["CNAME"][0] for o in dangling},
            "idn": idn_map,
            "records_total": counts[Z],
        },
        L: {
            "axfr": "refused",
            "names": zone_names(L, False),
            "records_total": counts[L],
        },
        R: {
            "axfr": "refused",
            "ptr": ptr,
            "records_total": counts[R],
        },
    },
    "ptr_only": ptr_only,
    "wordlist": "mapper/data/subdomains.txt",
    "wordlist_lines": wl_lines,
}
with open(truth_path, "w") as f:
    json.dump(truth, f, indent=1, ensure_ascii=False, sort_keys=False)
    f.write("\n")
# Expectations for the shell's readiness check: AXFR record counts
# (kdig counts the closing SOA too).
with open(expect_path, "w") as f:
    f.write(f"{Z} {counts[Z] + 1}\n")
stats = {z: (len(zones[z]), counts[z]) for z in zones}
print("lab: dns: zones " + ", ".join(f"{z} {n} names/{c} records" for z, (n, c) in stats.items()), file=sys.stderr)
PYEOF
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
