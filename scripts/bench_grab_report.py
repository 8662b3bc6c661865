"""Scores aperture --grab and nmap -sV against the lab ground truth; prints a table."""
import json
import statistics
import sys
import xml.etree.ElementTree as ET

truth_file, work, runs, tls_line, s_time_line, ap_cmd, nmap_cmd, tls_target, tls_secs, tls_conc = sys.argv[1:11]
runs = int(runs)
truth = {(r["ip"], r["port"]): r for r in map(json.loads, filter(str.strip, open(truth_file))) if r.get("proto", "tcp") == "tcp"}


def norm(s):
    return "".join(c for c in (s or "").lower() if c.isalnum())


def same_product(want, got):
    w, g = norm(want), norm(got)
    return bool(w) and bool(g) and (w in g or g in w)


def score(found):
    """found: {(ip, port): (product, version)} -> (products right, versions right, versions expected)."""
    products = versions = expected_versions = 0
    misses = []
    for key, t in truth.items():
        product, version = found.get(key, (None, None))
        if same_product(t.get("product"), product):
            products += 1
        else:
            misses.append(f"{key[0]}:{key[1]} want {t.get('product')} got {product}")
        if t.get("version"):
            expected_versions += 1
            if version and (t["version"] == version or t["version"] in version or version in t["version"]):
                versions += 1
    return products, versions, expected_versions, misses


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
for tool, load in (("aperture --grab", aperture), ("nmap -sV", nmap)):
    key = "aperture" if tool.startswith("aperture") else "nmap"
    walls, cpus, rsss, scores = [], [], [], []
    misses = []
    for run in range(1, runs + 1):
        w, c, m = times(key, run)
        walls.append(w)
        cpus.append(c)
        rsss.append(m)
        p, v, ev, miss = score(load(run))
        scores.append((p, v, ev))
        misses = miss
    p, v, ev = scores[-1]
    rows.append((tool, f"{p}/{len(truth)}", f"{v}/{ev}", statistics.median(walls), min(walls), max(walls),
                 statistics.median(cpus), statistics.median(rsss) / 1024, misses))

print(f"# bench-grab: {len(truth)} lab services, {runs} runs each\n")
print("| tool | products right | versions right | wall s median [min-max] | CPU s | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for tool, p, v, wm, wmin, wmax, cpu, rss, _ in rows:
    print(f"| {tool} | {p} | {v} | {wm:.1f} [{wmin:.1f}-{wmax:.1f}] | {cpu:.2f} | {rss:.0f} |")
speed = rows[1][3] / rows[0][3] if rows[0][3] else 0
print(f"\naperture is {speed:.1f}x faster than nmap -sV on this lab.\n")
for tool, *_, misses in rows:
    if misses:
        print(f"{tool} misidentified: " + "; ".join(misses))
if tls_line:
    print(f"\n## TLS handshakes with certificate summaries against {tls_target} ({tls_secs} s)\n")
    print("| tool | result |")
    print("|---|---|")
    print(f"| aperture (tls_rate, concurrency {tls_conc}) | {tls_line} |")
    print(f"| openssl s_time -new, 2 processes | {s_time_line} |")
print("\nCommands (inside the lab's scanner namespace):\n")
print(f"    aperture {ap_cmd}\n    {nmap_cmd}\n    target/release/examples/tls_rate {tls_target} {tls_secs} {tls_conc}")
