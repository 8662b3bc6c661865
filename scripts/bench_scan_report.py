#!/usr/bin/env python3
"""Helper for scripts/bench-scan (standard library only).

Subcommands:
  sample  --out FILE [--interval S]
          Run inside the target namespace: poll its Tcp OutRsts counter (one
          RST per probe to a closed port) and write "monotonic_s count" lines
          whenever it changes, until SIGTERM. Times every tool's probes the
          same way, whatever else the tool sends.
  kick    --dst IP [--port N] [--interval S]
          Send one tiny UDP datagram to IP:N every S seconds until SIGTERM
          (masscan 1.3.2's receive thread only notices the end of the scan when
          a packet arrives; this keeps it from hanging). Lab addresses only.
  record  --results FILE --tool T --size Z --rate R --phase P --run K
          --probes N --gt GT --ports P --net CIDR --inv TIME:SAMPLES:RC [...]
          --out OUTPUT [...]
          Score one run (one or more tool invocations, e.g. zmap's per-port
          runs), append a JSON record to FILE, print it.
  report  --results FILE --md OUT [--commands FILE] [--note TEXT ...]
          Print the side-by-side table and write it as Markdown.
"""

import argparse
import ipaddress
import json
import os
import signal
import socket
import statistics
import sys
import time

RECALL_TARGET = 0.999
START_THRESHOLD = 50  # packets above baseline before the send window "starts"


# --------------------------------------------------------------------- sample
def _tcp_out_rsts_reader():
    """Reader of this namespace's Tcp OutRsts counter (/proc/net/snmp)."""
    f = open("/proc/net/snmp", "rb", buffering=0)
    col = None

    def read():
        nonlocal col
        data = f.read() if f.seek(0) == 0 else b""
        lines = [l for l in data.split(b"\n") if l.startswith(b"Tcp:")]
        if col is None:
            col = lines[0].split().index(b"OutRsts")
        return int(lines[1].split()[col])
    return read


def cmd_sample(a):
    """Run inside the TARGET namespace: every probe the target answers with a
    RST (a SYN to a closed port: all but the ground-truth pairs) bumps Tcp
    OutRsts there, whatever extra packets a tool sends (masscan's own RSTs,
    keep-alive kicks) -- so the counter's rise times each tool's probes alike."""
    stop = False

    def on_term(_s, _f):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    read = _tcp_out_rsts_reader()
    rows = []
    last = None
    try:
        while not stop:
            v = read()
            t = time.monotonic()
            if v != last:
                rows.append((t, v))
                last = v
            time.sleep(a.interval)
        rows.append((time.monotonic(), read()))
    finally:
        with open(a.out, "w") as f:
            for t, v in rows:
                f.write(f"{t:.6f} {v}\n")
    return 0


def send_window(samples_path, probes):
    """(seconds, answered) of the send phase from a target-side OutRsts sample
    file, or None: from the last sample before the counter rose by more than
    START_THRESHOLD to the first sample at its final value."""
    try:
        rows = [tuple(map(float, l.split())) for l in open(samples_path) if l.strip()]
    except OSError:
        return None
    if len(rows) < 2:
        return None
    base = rows[0][1]
    total = rows[-1][1] - base
    if total <= START_THRESHOLD:
        return None
    goal = total
    t_start = rows[0][0]
    t_end = None
    for t, v in rows:
        d = v - base
        if d <= START_THRESHOLD:
            t_start = t
        elif d >= goal:
            t_end = t
            break
    if t_end is None or t_end <= t_start:
        return None
    return t_end - t_start, goal


# ----------------------------------------------------------------------- kick
def cmd_kick(a):
    ipaddress.IPv4Address(a.dst)
    stop = False

    def on_term(_s, _f):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while not stop:
        try:
            s.sendto(b"k", (a.dst, a.port))
        except OSError:
            pass
        time.sleep(a.interval)
    return 0


# --------------------------------------------------------------------- record
def parse_ports(text):
    out = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(part))
    return out


def read_results(tool, paths):
    """Set of (ip, port) reported open by a tool."""
    found = set()
    for p in paths:
        if not os.path.exists(p):
            continue
        with open(p, errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if tool == "masscan":
                    # -oL: "open tcp PORT IP TIMESTAMP"
                    parts = line.split()
                    if len(parts) >= 4 and parts[0] == "open" and parts[1] == "tcp":
                        found.add((parts[3], int(parts[2])))
                elif tool == "aperture":
                    try:
                        d = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(d, dict):
                        continue
                    if str(d.get("state", "")).lower() != "open":
                        continue
                    if d.get("proto", "tcp") not in ("tcp", None):
                        continue
                    try:
                        found.add((str(ipaddress.ip_address(d["ip"])), int(d["port"])))
                    except (KeyError, ValueError, TypeError):
                        continue
                else:
                    raise SystemExit(f"unknown tool {tool}")
    return found


def read_zmap(outs):
    found = set()
    for spec in outs:
        port, _, path = spec.partition("=")
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or line == "saddr":
                    continue
                ip = line.split(",")[0]
                try:
                    found.add((str(ipaddress.ip_address(ip)), int(port)))
                except ValueError:
                    continue
    return found


def read_time(path):
    """GNU time -f '%e %U %S %M' -> (wall, user, sys, maxrss_kib)."""
    try:
        lines = [l for l in open(path) if l.strip()]
    except OSError:
        return None
    for l in reversed(lines):
        parts = l.split()
        if len(parts) == 4:
            try:
                return float(parts[0]), float(parts[1]), float(parts[2]), int(parts[3])
            except ValueError:
                continue
    return None


def cmd_record(a):
    net = ipaddress.IPv4Network(a.net)
    ports = parse_ports(a.ports)
    gt = set()
    for line in open(a.gt):
        if line.strip():
            d = json.loads(line)
            ip = ipaddress.IPv4Address(d["ip"])
            if ip in net and int(d["port"]) in ports:
                gt.add((str(ip), int(d["port"])))
    if a.tool == "zmap":
        found = read_zmap(a.out)
    else:
        found = read_results(a.tool, a.out)
    tp = len(found & gt)
    fp = len(found - gt)

    wall = cpu = 0.0
    rss = 0
    send_s = 0.0
    send_pk = 0
    send_ok = True
    rcs = []
    time_ok = True
    for inv in a.inv:
        parts = inv.split(":")
        tfile, sfile, rc = parts[0], parts[1], int(parts[2])
        wall_fallback = float(parts[3]) if len(parts) > 3 and parts[3] else 0.0
        rcs.append(rc)
        t = read_time(tfile)
        if t is None:
            # GNU time writes nothing when it is killed (timeout): use the
            # wall time measured by the caller, no CPU/RSS.
            time_ok = False
            wall += wall_fallback
        else:
            wall += t[0]
            cpu += t[1] + t[2]
            rss = max(rss, t[3])
        w = send_window(sfile, a.probes // len(a.inv))
        if w is None:
            send_ok = False
        else:
            send_s += w[0]
            send_pk += w[1]
    if send_ok and send_s > 0:
        pps = a.probes / send_s
        pps_method = "send-window"
    else:
        pps = a.probes / wall if wall > 0 else 0.0
        pps_method = "wall"
    rec = {
        "tool": a.tool, "size": a.size, "rate": a.rate, "phase": a.phase, "run": a.run,
        "probes": a.probes, "invocations": len(a.inv),
        "rc": max(rcs, key=abs) if rcs else None,
        "timeout": any(r in (124, 137) for r in rcs),
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "cpu_s_per_m": round(cpu / (a.probes / 1e6), 3) if a.probes and time_ok else None,
        "peak_rss_kib": rss if time_ok else None,
        "send_s": round(send_s, 3) if send_ok else None,
        "target_rsts": send_pk if send_ok else None,
        "pps": round(pps), "pps_method": pps_method,
        "time_ok": time_ok, "busy": bool(a.busy),
        "gt": len(gt), "found": len(found), "tp": tp, "fp": fp,
        "recall": round(tp / len(gt), 6) if gt else 0.0,
    }
    rec["ok"] = (not rec["timeout"]) and rec["recall"] >= RECALL_TARGET
    with open(a.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec))
    return 0


# --------------------------------------------------------------------- report
def med_range(vals, fmt):
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(vals))}–{fmt(max(vals))}]"


def med_only(vals, fmt):
    vals = [v for v in vals if v is not None]
    return fmt(statistics.median(vals)) if vals else "-"


def cmd_report(a):
    recs = []
    if os.path.exists(a.results):
        recs = [json.loads(l) for l in open(a.results) if l.strip()]
    groups = {}
    order = []
    for r in recs:
        key = (r["tool"], r["size"])
        if key not in groups:
            groups[key] = {"search": [], "runs": [], "skip": None, "stop": None}
            order.append(key)
        if r.get("phase") == "skip":
            groups[key]["skip"] = r.get("reason", "skipped")
        elif r.get("phase") == "note":
            groups[key]["stop"] = r.get("reason", "")
        elif r.get("phase") == "search":
            groups[key]["search"].append(r)
        else:
            groups[key]["runs"].append(r)

    header = ["tool", "size", "rate chosen", "runs", "wall s", "probes/s",
              "recall", "FP max", "CPU s / M probes", "peak RSS MiB", "notes"]
    rows = []
    for key in order:
        g = groups[key]
        tool, size = key
        if g["skip"] is not None:
            rows.append([tool, size, "-", "0", "-", "-", "-", "-", "-", "-", g["skip"]])
            continue
        runs = g["runs"]
        notes = []
        searched = ", ".join(
            f"{s['rate']:,}:{s['recall'] * 100:.2f}%" for s in g["search"])
        if searched:
            notes.append(f"search {searched}")
        if not runs:
            rows.append([tool, size, "-", "0", "-", "-", "-", "-", "-", "-", "; ".join(notes) or "no runs"])
            continue
        rate = runs[0]["rate"]
        if not any(s["ok"] for s in g["search"]):
            notes.append("no rate reached 99.9%: lowest rate used")
        methods = sorted({r["pps_method"] for r in runs})
        if methods != ["send-window"]:
            notes.append("probes/s = probes / wall for some runs")
        if any(r["timeout"] for r in runs):
            notes.append("TIMEOUT in a run")
        if any(r.get("rc") not in (0, None) and not r["timeout"] for r in runs):
            notes.append("non-zero exit in a run")
        if tool == "zmap":
            notes.append(f"{runs[0]['invocations']} per-port runs summed")
        if any(r.get("busy") for r in runs + g["search"]):
            notes.append("lab shared with other processes during some runs")
        if not all(r.get("time_ok", True) for r in runs):
            notes.append("no GNU time data for some runs")
        if g.get("stop"):
            notes.append(g["stop"])
        recalls = [r["recall"] * 100 for r in runs]
        rec_s = f"{statistics.median(recalls):.2f}% [min {min(recalls):.2f}%]" if len(recalls) > 1 \
            else f"{recalls[0]:.2f}%"
        rows.append([
            tool, size, f"{rate:,}", str(len(runs)),
            med_range([r["wall_s"] for r in runs], lambda v: f"{v:.1f}"),
            med_range([r["pps"] for r in runs], lambda v: f"{v / 1000:.1f}k"),
            rec_s,
            str(max(r["fp"] for r in runs)),
            med_only([r["cpu_s_per_m"] for r in runs], lambda v: f"{v:.2f}"),
            med_only([r["peak_rss_kib"] for r in runs], lambda v: f"{v / 1024:.1f}"),
            "; ".join(notes),
        ])

    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))

    md = ["# bench-scan results", ""]
    for n in a.note or []:
        md.append(f"- {n}")
    if a.note:
        md.append("")
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    md.append("")
    md.append("wall s and probes/s: median [min–max] over the runs; recall: median [min] "
              "against ground truth ∩ scanned space; FP: open results not in the ground truth; "
              "probes/s: probes / send window, timed for every tool alike by the rise of the "
              "target namespace's Tcp OutRsts counter (one RST per probe to a closed port, "
              "5 ms sampling), unless noted; CPU s / M probes: user+sys of the tool (GNU time) "
              "per million probes; peak RSS: GNU time %M (zmap: max over its per-port runs).")
    if a.commands and os.path.exists(a.commands):
        md += ["", "## Commands", "", "```"]
        md += [l.rstrip("\n") for l in open(a.commands)]
        md += ["```"]
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description="bench-scan helper")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("sample")
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.005)

    p = sub.add_parser("kick")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=9)
    p.add_argument("--interval", type=float, default=0.2)

    p = sub.add_parser("record")
    p.add_argument("--results", required=True)
    p.add_argument("--tool", required=True, choices=["aperture", "masscan", "zmap"])
    p.add_argument("--size", required=True)
    p.add_argument("--rate", type=int, required=True)
    p.add_argument("--phase", required=True, choices=["search", "run"])
    p.add_argument("--run", type=int, default=0)
    p.add_argument("--probes", type=int, required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--ports", required=True)
    p.add_argument("--net", required=True)
    p.add_argument("--inv", action="append", required=True)
    p.add_argument("--out", action="append", default=[])
    p.add_argument("--busy", action="store_true",
                   help="other processes were using the scanner namespace")

    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--commands")
    p.add_argument("--note", action="append")

    a = ap.parse_args()
    return {"sample": cmd_sample, "kick": cmd_kick, "record": cmd_record,
            "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
