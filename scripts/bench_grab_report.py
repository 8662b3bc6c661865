"""Scores aperture --grab and nmap -sV against the lab ground truth; prints a table.

Ground truth: services.jsonl (20-services.sh), products.jsonl (22-products.sh) and
more.jsonl (24-more.sh).
Per (ip, port): a product claim is right when it names the product really running,
wrong when it names another one (worse than no claim: it misleads), and a port whose
truth names no product (what it says identifies none) is right when nothing, or the
real product, is claimed. Score = right - 2 x wrong.
"""
import json
import statistics
import sys
import xml.etree.ElementTree as ET

truth_files, work, runs, tls_line, s_time_line, ap_cmd, nmap_cmd, tls_target, tls_secs, tls_conc = sys.argv[1:11]
runs = int(runs)
truth = {}
for tf in truth_files.split(","):
    try:
        lines = open(tf).read().splitlines()
    except FileNotFoundError:
        continue
    for r in map(json.loads, filter(str.strip, lines)):
        if r.get("proto", "tcp") == "tcp":
            truth[(r["ip"], r["port"])] = r

# Names other tools give the same product (matched after lower-casing and dropping
# non-alphanumerics, as substrings either way).
ALIASES = {
    "apachehttpserver": ["apachehttpd", "apache"],
    "eclipsejetty": ["jetty"],
    "dropbearssh": ["dropbear"],
    "eclipsemosquitto": ["mosquitto"],
    "natsserver": ["nats"],
    "haproxy": ["haproxy"],
    "postgresql": ["postgresql"],
    "knotdns": ["knot"],
    "openldap": ["openldap", "slapd"],
    "samba": ["samba"],
}


def norm(s):
    return "".join(c for c in (s or "").lower() if c.isalnum())


def same_product(want, got):
    w, g = norm(want), norm(got)
    if not w or not g:
        return False
    if w in g or g in w:
        return True
    return any(a in g for a in ALIASES.get(w, []))


def score(found):
    """found: {(ip, port): (product, version)} -> counts and the wrong claims."""
    right = wrong = unidentified = versions = expected_versions = 0
    wrongs, misses = [], []
    for key, t in truth.items():
        product, version = found.get(key, (None, None))
        actual = t.get("actual") or t.get("product")
        if product:
            if same_product(actual, product):
                right += 1
            else:
                wrong += 1
                wrongs.append(f"{key[0]}:{key[1]} is {actual or 'unnamed'}, claimed {product!r}")
        elif not t.get("product"):
            right += 1  # nothing to claim, nothing claimed
        else:
            unidentified += 1
            misses.append(f"{key[0]}:{key[1]} {t.get('product')}")
        if t.get("version"):
            expected_versions += 1
            if version and (t["version"] == version or version.startswith(t["version"] + " ")):
                versions += 1
    return right, wrong, unidentified, versions, expected_versions, wrongs, misses


def aperture(run):
    out = {}
    for line in open(f"{work}/aperture.{run}.jsonl"):
        if line.strip():
            r = json.loads(line)
            out[(r["ip"], r["port"])] = (r.get("product"), r.get("version"))
    return out


def nmap(run):
    out = {}
    root = ET.parse(f"{work}/nmap.{run}.xml").getroot()
    for host in root.iter("host"):
        ip = next((a.get("addr") for a in host.iter("address") if a.get("addrtype") == "ipv4"), None)
        for port in host.iter("port"):
            svc = port.find("service")
            if svc is not None:
                out[(ip, int(port.get("portid")))] = (svc.get("product"), svc.get("version"))
    return out


def times(tool, run):
    wall, user, sys_, rss = open(f"{work}/{tool}.{run}.time").read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss)


rows = []
for tool, load in (("aperture scan --grab", aperture), ("nmap -sV", nmap)):
    key = "aperture" if tool.startswith("aperture") else "nmap"
    walls, cpus, rsss = [], [], []
    for run in range(1, runs + 1):
        w, c, m = times(key, run)
        walls.append(w)
        cpus.append(c)
        rsss.append(m)
    right, wrong, unid, v, ev, wrongs, misses = score(load(runs))
    rows.append((tool, right, wrong, unid, f"{v}/{ev}", statistics.median(walls), min(walls), max(walls),
                 statistics.median(cpus), statistics.median(rsss) / 1024, wrongs, misses))

n = len(truth)
named = len({norm(t.get("actual") or t.get("product")) for t in truth.values()} - {""})
print(f"# bench-grab: {n} lab ports, {named} products, {runs} runs each\n")
print("| tool | products right | wrong claims | not identified | score (right - 2 x wrong) | versions right | wall s median [min-max] | CPU s | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for tool, right, wrong, unid, v, wm, wmin, wmax, cpu, rss, _, _ in rows:
    print(f"| {tool} | {right}/{n} | {wrong} | {unid} | {right - 2 * wrong} | {v} | {wm:.1f} [{wmin:.1f}-{wmax:.1f}] | {cpu:.2f} | {rss:.0f} |")
speed = rows[1][5] / rows[0][5] if rows[0][5] else 0
print(f"\naperture is {speed:.1f}x faster than nmap -sV on this lab.\n")
for tool, *_, wrongs, misses in rows:
    if wrongs:
        print(f"{tool} wrong claims: " + "; ".join(wrongs) + "\n")
    if misses:
        print(f"{tool} not identified: " + "; ".join(misses) + "\n")
if tls_line:
    print(f"\n## TLS handshakes with certificate summaries against {tls_target} ({tls_secs} s)\n")
    print("| tool | result |")
    print("|---|---|")
    print(f"| aperture (tls_rate, concurrency {tls_conc}) | {tls_line} |")
    print(f"| openssl s_time -new, 2 processes | {s_time_line} |")
print("\nCommands (inside the lab's scanner namespace):\n")
print(f"    aperture {ap_cmd}\n    {nmap_cmd}\n    target/release/examples/tls_rate {tls_target} {tls_secs} {tls_conc}")
