#!/usr/bin/env python3
"""Helper of scripts/bench-dns.

  bench_dns_report.py gen WORDLIST TRUTH N SMALL OUTDIR
      writes OUTDIR/labels.N.txt (the first `wordlist_lines` wordlist labels, then
      generated labels, deterministic), OUTDIR/labels.SMALL.txt (its first SMALL
      lines) and OUTDIR/queries.N.txt ("label.ZONE A" lines for dnsperf).
  bench_dns_report.py report WORK TRUTH N SMALL OUT_MD
      reads the raw outputs in WORK (see bench-dns) and prints the Markdown report
      (also written to OUT_MD).
"""
import hashlib
import json
import os
import re
import sys

ZONE = "corp.test"


def read_labels(path):
    return [l.strip() for l in open(path) if l.strip() and not l.lstrip().startswith("#")]


def gen(wordlist, truth_path, n, small, outdir):
    n, small = int(n), int(small)
    truth = json.load(open(truth_path))
    top = read_labels(wordlist)[: truth.get("wordlist_lines", 2000)]
    out, seen = [], set()
    for l in top:
        if l not in seen:
            seen.add(l)
            out.append(l)
    # Generated labels: a wordlist word, a hyphen and 6 hex digits from a hash of
    # the index (deterministic; cannot be one of the zone's random labels, which
    # have no 6-hex-digit suffix).
    i = 0
    while len(out) < n:
        h = hashlib.sha256(f"aperture-bench-dns/{i}".encode()).hexdigest()
        lab = f"{top[i % len(top)]}-{h[:6]}"[:63].strip("-")
        i += 1
        if lab not in seen:
            seen.add(lab)
            out.append(lab)
    with open(f"{outdir}/labels.{n}.txt", "w") as f:
        f.write("\n".join(out) + "\n")
    with open(f"{outdir}/labels.{small}.txt", "w") as f:
        f.write("\n".join(out[:small]) + "\n")
    with open(f"{outdir}/queries.{n}.txt", "w") as f:
        f.write("".join(f"{l}.{ZONE} A\n" for l in out))


# ---------------------------------------------------------------------------

def expected(truth, labels):
    """(expected A per name, names existing without an A answer, all existing names)"""
    z = truth["zones"][ZONE]
    names = z["names"]
    chains = z.get("cname_chains", {})
    queried = set(labels)
    exp_a, no_a = {}, set()
    for name, e in names.items():
        rel = name[: -len(ZONE) - 1] if name.endswith("." + ZONE) else None
        if rel is None or "." in rel or rel not in queried:
            continue
        a = e["records"].get("A") or chains.get(name, {}).get("A") or []
        if a:
            exp_a[name] = set(a)
        else:
            no_a.add(name)
    return exp_a, no_a, set(names)


def dnsperf_expected_rcodes(truth, labels):
    z = truth["zones"][ZONE]
    names, dangling = set(z["names"]), set(z.get("dangling", []))
    noerror = sum(1 for l in labels if f"{l}.{ZONE}" in names and f"{l}.{ZONE}" not in dangling)
    return {"NOERROR": noerror, "NXDOMAIN": len(labels) - noerror}


def parse_time(path):
    """GNU time -f '%e %U %S %M' -> (wall, user, sys, rss_kib) or None"""
    try:
        for line in open(path):
            p = line.split()
            if len(p) == 4 and re.fullmatch(r"[\d.]+", p[0]):
                return float(p[0]), float(p[1]), float(p[2]), int(p[3])
    except OSError:
        pass
    return None


def parse_dnsperf(path):
    if not os.path.exists(path):
        return None
    text = open(path).read()
    d = {"text": text}
    for key, pat in (("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                     ("lost", r"Queries lost:\s+(\d+)"), ("qps", r"Queries per second:\s+([\d.]+)"),
                     ("runtime", r"Run time \(s\):\s+([\d.]+)"), ("latency", r"Average Latency \(s\):\s+([\d.]+)")):
        m = re.search(pat, text)
        d[key] = float(m.group(1)) if m else None
    m = re.search(r"Response codes:\s+(.*)", text)
    d["rcodes"] = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+)", m.group(1))} if m else {}
    return d


def score_aperture(jsonl, exp_a, no_a, exists):
    reported = {}
    bad_lines = 0
    if os.path.exists(jsonl):
        for line in open(jsonl):
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
                name = o["name"].lower().rstrip(".")
            except (ValueError, KeyError, AttributeError):
                bad_lines += 1
                continue
            recs = o.get("records") or {}
            r = reported.setdefault(name, {})
            for t, v in recs.items():
                r.setdefault(t.upper(), set()).update(str(x).lower().rstrip(".") for x in (v or []))
    correct = wrong = 0
    wrong_ex = []
    for name, a in exp_a.items():
        got = reported.get(name)
        if got is None:
            continue
        if got.get("A", set()) == a:
            correct += 1
        else:
            wrong += 1
            if len(wrong_ex) < 5:
                wrong_ex.append(f"{name}: got {sorted(got.get('A', []))} want {sorted(a)}")
    missed = len(exp_a) - correct - wrong
    fps = sorted(n for n in reported if n not in exists)
    return {"reported": len(reported), "correct": correct, "wrong": wrong, "missed": missed,
            "expected": len(exp_a), "no_a_found": len(no_a & set(reported)), "no_a": len(no_a),
            "false_pos": fps, "wrong_ex": wrong_ex, "bad_lines": bad_lines}


def done_line(err_path):
    try:
        lines = [l.strip() for l in open(err_path, errors="replace") if l.startswith("done:")]
    except OSError:
        return None
    return lines[-1] if lines else None


def kv(line, key):
    m = re.search(rf"\b{key}=([\d.]+)", line or "")
    return float(m.group(1)) if m else None


def mib(kib):
    return f"{kib / 1024:.1f}" if kib is not None else "—"


def report(work, truth_path, n, small, out_md):
    n, small = int(n), int(small)
    truth = json.load(open(truth_path))
    meta = json.load(open(f"{work}/meta.json"))
    labels = read_labels(f"{work}/labels.{n}.txt")
    exp_a, no_a, exists = expected(truth, labels)
    rows, notes, cmds = [], [], []
    env = meta.get("env", "")

    # dnsperf: the ceiling (-l) and one pass over the file (-n 1), rcodes checked.
    for key, label in (("ceiling", f"dnsperf (-l {meta['duration']} -c {meta['clients']}, ceiling)"),
                       ("pass", "dnsperf (-n 1, one pass)")):
        d = parse_dnsperf(f"{work}/dnsperf.{key}.out")
        t = parse_time(f"{work}/dnsperf.{key}.time")
        cmds.append(meta["cmd_dnsperf_" + key])
        if d is None or d["qps"] is None:
            rows.append((label, "failed", "—", f"{t[0]:.1f}" if t else "—", mib(t[3]) if t else "—"))
            notes.append(f"{label}: no result (see {work}/dnsperf.{key}.out)")
            continue
        correct = "n/a"
        if key == "pass":
            want = dnsperf_expected_rcodes(truth, labels)
            got = d["rcodes"]
            ok = got.get("NOERROR", 0) == want["NOERROR"] and got.get("NXDOMAIN", 0) == want["NXDOMAIN"]
            correct = "rcodes ok" if ok else "rcodes differ"
            notes.append(f"{label}: response codes {got} — expected from dns-truth.json {want}; "
                         f"lost {int(d['lost'] or 0)}")
        else:
            notes.append(f"{label}: {int(d['completed'] or 0):,} of {int(d['sent'] or 0):,} queries answered "
                         f"({int(d['lost'] or 0)} lost), response codes {d['rcodes']}, "
                         f"average latency {d['latency']} s")
        rows.append((label, f"{d['qps']:,.0f}", correct, f"{t[0]:.1f}" if t else "—", mib(t[3]) if t else "—"))

    # aperture domains
    rss = {}
    if meta.get("aperture_skip"):
        rows.append(("aperture domains", "skipped", "—", "—", "—"))
        notes.append(f"aperture rows skipped: {meta['aperture_skip']}")
        cmds += [f"{meta[f'cmd_aperture_{size}']}    (not run)" for size in (n, small) if meta.get(f"cmd_aperture_{size}")]
    else:
        for size in (n, small):
            label = f"aperture domains ({size:,} labels)"
            pre = f"{work}/aperture.{size}"
            cmds.append(meta[f"cmd_aperture_{size}"])
            t = parse_time(f"{pre}.time")
            rc = meta.get(f"rc_aperture_{size}")
            s = score_aperture(f"{pre}.jsonl", exp_a, no_a, exists)
            dl = done_line(f"{pre}.err")
            qps = kv(dl, "qps")
            if qps is None and t and t[0] > 0:
                qps = (kv(dl, "queries") or size) / t[0]
            pct = 100.0 * s["correct"] / s["expected"] if s["expected"] else 0.0
            rows.append((label, f"{qps:,.0f}" if qps else "—", f"{pct:.1f}",
                         f"{t[0]:.1f}" if t else "—", mib(t[3]) if t else "—"))
            if t:
                rss[size] = t[3]
            notes.append(
                f"{label}: exit {rc}; {s['correct']}/{s['expected']} existing names with an A answer found with "
                f"the right A records ({s['wrong']} wrong, {s['missed']} missed); "
                f"{s['no_a_found']}/{s['no_a']} existing names without A reported; "
                f"{len(s['false_pos'])} non-existent names reported"
                + (f" (e.g. {', '.join(s['false_pos'][:5])})" if s["false_pos"] else "")
                + (f"; wrong e.g. {'; '.join(s['wrong_ex'])}" if s["wrong_ex"] else "")
                + (f"; {s['bad_lines']} unparsable lines" if s["bad_lines"] else "")
                + (f"; `{dl}`" if dl else "; no `done:` line on stderr"))
        if n in rss and small in rss and rss[small]:
            notes.append(f"peak RSS {mib(rss[small])} MiB with {small:,} labels, {mib(rss[n])} MiB with {n:,} "
                         f"(x{rss[n] / rss[small]:.2f} for x{n / small:.0f} labels)")

    out = []
    out.append(f"## DNS enumeration — {ZONE} on {truth['server']} (lab, {meta['date']})\n")
    out.append(f"Zone: {len(truth['zones'][ZONE]['names'])} names; query set: {len(labels):,} labels, "
               f"{len(exp_a)} of them existing names with an A answer, {len(no_a)} existing without A. "
               f"Machine: {meta['cpus']} CPUs{env}.\n")
    out.append("| tool | queries/s | correct % | wall s | peak RSS MiB |")
    out.append("|---|---:|---:|---:|---:|")
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("")
    out.append("correct % = existing names (dns-truth.json) whose A records the tool reported exactly, "
               "over all existing names in the query set that have an A answer (directly or at the end of "
               "an in-zone CNAME chain); dnsperf reports no names, its one-pass response codes are "
               "checked against the truth instead.\n")
    for note in notes:
        out.append(f"- {note}")
    out.append("\nCommands (inside the scanner namespace):\n")
    for c in cmds:
        out.append(f"    {c}")
    text = "\n".join(out) + "\n"
    with open(out_md, "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "gen" and len(sys.argv) == 7:
        gen(*sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "report" and len(sys.argv) == 7:
        report(*sys.argv[2:])
    else:
        sys.exit(__doc__)
