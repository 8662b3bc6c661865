#!/usr/bin/env python3
"""Aperture lab: one authoritative DNS server's zones and their ground truth.

Run by scripts/lab.d/25-dns.sh (knotd: corp.test, locked.test, 3.19.198.in-addr.arpa)
and scripts/lab.d/26-bind.sh (named: bind.test, bind-locked.test, 4.19.198.in-addr.arpa).

    lab-dns-zones.py WORDLIST SEED ZONEDIR TRUTH EXPECT SERVER WL_LINES \
                     OPEN_ZONE LOCKED_ZONE NET24 FLAVOUR

NET24 is the /24 (three octets) the zones' own addresses and reverse zone live in.
FLAVOUR "knot" gives exactly the zones 25-dns.sh always generated; "bind" uses its own
random stream and adds the shapes BIND answers differently from Knot: a CNAME into the
other server's zone, a delegation to a child zone (referral with glue), a wildcard one
level below the apex (*.dev) in both zones, and in the locked zone a CNAME that leads
below that wildcard level.
Everything follows from the wordlist and the seed.
"""
import ipaddress
import json
import random
import re
import sys

wl_path, seed, zdir, truth_path, expect_path, server, wl_lines, Z, L, NET, FLAVOUR = sys.argv[1:12]
if FLAVOUR not in ("knot", "bind"):
    sys.exit(f"unknown flavour {FLAVOUR!r}")
BIND = FLAVOUR == "bind"
wl_lines = int(wl_lines)
labels = [l.strip() for l in open(wl_path) if l.strip() and not l.lstrip().startswith("#")]
if len(labels) < wl_lines:
    sys.exit(f"wordlist {wl_path} has {len(labels)} labels, need at least {wl_lines}")
TOP = labels[:wl_lines]
TOPSET = set(TOP)
ALL = set(labels)
rng = random.Random(f"aperture-lab-dns/{seed}" if not BIND else f"aperture-lab-dns/{seed}/{Z}")

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
    return f"{NET}.{i}"


def v6():
    a = ipaddress.IPv6Address(f"2001:db8:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xffff):x}")
    return str(a)


def pick_a(net3_share=0.5):
    if rng.random() < net3_share:
        return ip3(rng.choice(pool3))
    return f"198.19.1.{rng.choice(pool1)}"


# ---- corp.test -----------------------------------------------------------
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
add(Z, f"_spf.{Z}", "TXT", f"v=spf1 ip4:{NET}.0/24 -all")
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
CROSS_ZONE, DELEGATIONS, WILDCARDS = {}, {}, {W: {"A": [ip3(99)]}}
if BIND:
    # A CNAME into the other lab server's zone: named, authoritative only and without
    # recursion, answers with the CNAME alone and refuses the target.
    CROSS_ZONE[f"ext.{Z}"] = "www.corp.test"
    add(Z, f"ext.{Z}", "CNAME", "www.corp.test")
    # A delegated child zone nobody serves: names at or below it get a referral
    # (NS in the authority section, glue in the additional one), never an answer.
    C = f"child.{Z}"
    add(Z, C, "NS", f"ns.{C}")
    add(Z, f"ns.{C}", "A", ip3(54))
    DELEGATIONS[C] = {"ns": [f"ns.{C}"], "glue": {f"ns.{C}": [ip3(54)]}}
    # A wildcard one level below a non-wildcard apex, real names below it answering
    # differently.
    D = f"dev.{Z}"
    add(Z, D, "A", ip3(120))
    add(Z, f"*.{D}", "A", ip3(121))
    add(Z, f"api.{D}", "A", ip3(122))
    add(Z, f"db.{D}", "A", ip3(123))
    WILDCARDS[D] = {"A": [ip3(121)]}
    used_labels.update({"ext", "child", "dev"})
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
add(L, L, "SOA", f"ns.{L} hostmaster.{L} {SERIAL} 3600 900 604800 {TTL}")
add(L, L, "NS", f"ns.{L}")
add(L, f"ns.{L}", "A", server)
add(L, L, "A", "198.19.1.10")
add(L, L, "MX", f"10 mail.{L}")
add(L, f"mail.{L}", "A", ip3(150))
LOCK_FIXED = ("ns", "mail") + (("dev", "portal") if BIND else ())
lock_wl = rng.sample([l for l in TOP if l not in LOCK_FIXED], 24)
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
LOCKED_WILDCARDS, LOCKED_BELOW = {}, {}
if BIND:
    # No transfer here: the names below the wildcard level dev.L are reachable only by
    # following portal's CNAME there and guessing under that level.
    DL = f"dev.{L}"
    add(L, DL, "A", ip3(124))
    add(L, f"*.{DL}", "A", ip3(125))
    add(L, f"api.{DL}", "A", ip3(126))
    add(L, f"app.{DL}", "A", ip3(127))
    add(L, f"portal.{L}", "CNAME", f"app.{DL}")
    LOCKED_WILDCARDS[DL] = {"A": [ip3(125)]}
    # How each is reached: api only by guessing under dev (PTR aside), app by the CNAME.
    LOCKED_BELOW = {f"api.{DL}": "wordlist", f"app.{DL}": "cname"}

# ---- reverse zone -----------------------------------------------------------
R = ".".join(reversed(NET.split("."))) + ".in-addr.arpa"
add(R, R, "SOA", f"ns1.{Z} hostmaster.{Z} {SERIAL} 3600 900 604800 {TTL}")
add(R, R, "NS", f"ns1.{Z}")
add(R, R, "NS", f"ns2.{Z}")
owners_by_ip = {}
for zone in (Z, L):
    for owner, recs in zones[zone].items():
        if owner.startswith("*."):
            continue
        for a in recs.get("A", []):
            if a.startswith(NET + "."):
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
    lines = [f"; generated by scripts/lab-dns-zones.py ({FLAVOUR}, seed {seed}) -- do not edit",
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
        if tgt not in zones[Z] and tgt.endswith("." + Z):
            dangling.append(owner)
        continue
    path, final = res
    chains[owner] = {"path": path, "length": len(path),
                     "A": final.get("A", []), "AAAA": final.get("AAAA", [])}
loops = [[f"loop1.{Z}", f"loop2.{Z}"]]

truth = {
    "server": server,
    "seed": seed,
    "flavour": FLAVOUR,
    "open_zone": Z,
    "locked_zone": L,
    "reverse_zone": R,
    "reverse_net": f"{NET}.0/24",
    "zones": {
        Z: {
            "axfr": "allowed",
            "axfr_allowed_from": ["198.19.255.1", "198.19.252.0/24"],
            "names": zone_names(Z, True),
            "wildcard": list(WILDCARDS),
            "wildcard_records": {f"*.{w}": r for w, r in WILDCARDS.items()},
            "cross_zone": CROSS_ZONE,
            "delegations": DELEGATIONS,
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
            "wildcard": list(LOCKED_WILDCARDS),
            "wildcard_records": {f"*.{w}": r for w, r in LOCKED_WILDCARDS.items()},
            "found_below_wildcard": LOCKED_BELOW,
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
