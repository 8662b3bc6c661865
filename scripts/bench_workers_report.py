#!/usr/bin/env python3
"""scripts/bench-workers' helper: drives the service's API and prints the tables.

  bench_workers_report.py scope BASE TOKEN CIDR
      sets tenant acme's scope to CIDR (allow_special)
  bench_workers_report.py scan BASE TOKEN TARGET PORTS RATE TIMEOUT OUT.json
      POSTs a SYN scan of TARGET x PORTS without grabs, polls it every 50 ms until it is
      "completed" (fails if it fails or takes more than TIMEOUT s), and writes to OUT.json:
      its wall time from the POST, shards, probes, the receipts (shard, applied ms,
      observations, worker) and the deltas of the service's ingest metrics
  bench_workers_report.py services BASE TOKEN
      prints the number of present services and a digest of their keys
  bench_workers_report.py merge FILE key=value ...
      adds keys to a JSON file (numbers stay numbers)
  bench_workers_report.py show FILE
      one line about a measured run (for the log)
  bench_workers_report.py table WORKDIR
      the Markdown report from WORKDIR/ingest-*.json and WORKDIR/scan-*.json

Only the standard library; every request goes to BASE (the service on 127.0.0.1 in the
lab's scanner namespace).
"""

import hashlib
import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request

TENANT = "acme"


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read().decode()
    return raw if path == "/metrics" else json.loads(raw)


def metrics(base, token):
    out = {}
    for line in call(base, token, "GET", "/metrics").splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name in (
            "aperture_ingest_seconds_sum",
            "aperture_ingest_batches_total",
            "aperture_results_total",
            "aperture_probes_sent_total",
        ):
            out[name] = float(value)
    return out


def scope(base, token, cidr):
    call(base, token, "PUT", f"/v1/tenants/{TENANT}/scope",
         {"cidrs": [cidr], "allow_special": True})


def scan(base, token, target, ports, rate, limit, out):
    before = metrics(base, token)
    began = time.monotonic()
    began_ms = int(time.time() * 1000)
    v = call(base, token, "POST", f"/v1/tenants/{TENANT}/scans",
             {"targets": [target], "ports": ports, "rate": int(rate), "grab": False,
              "probe": "syn"})
    sid = v["id"]
    while True:
        v = call(base, token, "GET", f"/v1/tenants/{TENANT}/scans/{sid}")
        if v["state"] == "completed":
            break
        if v["state"] in ("failed", "cancelled"):
            sys.exit(f"scan {sid} ended {v['state']}: {v.get('error')}")
        if time.monotonic() - began > float(limit):
            sys.exit(f"scan {sid} not completed within {limit} s: {v['progress']}")
        time.sleep(0.05)
    secs = time.monotonic() - began
    after = metrics(base, token)
    p = v["progress"]
    if p["shards_done"] != p["shards"]:
        sys.exit(f"scan {sid}: {p['shards_done']} of {p['shards']} shards stored")
    receipts = [
        {"shard": r["shard"], "applied": r["applied"], "observations": r["observations"],
         "worker": (r.get("vantage") or {}).get("worker")}
        for r in v["shards"]
    ]
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    result = {
        "id": sid,
        "secs": secs,
        "posted_ms": began_ms,
        "shards": p["shards"],
        "probes_total": p["probes_total"],
        "observations": sum(r["observations"] for r in receipts),
        "receipts": receipts,
        "ingest_secs": delta.get("aperture_ingest_seconds_sum", 0.0),
        "ingest_batches": delta.get("aperture_ingest_batches_total", 0.0),
        "probes_sent_metric": delta.get("aperture_probes_sent_total", 0.0),
    }
    with open(out, "w") as f:
        json.dump(result, f)
    print(f"{sid} {secs:.2f}s shards {p['shards']} observations {result['observations']}",
          file=sys.stderr)


def services(base, token):
    keys, cursor = [], None
    while True:
        path = f"/v1/tenants/{TENANT}/assets?kind=service&limit=1000"
        if cursor:
            path += "&cursor=" + urllib.parse.quote(cursor)
        v = call(base, token, "GET", path)
        keys += [a["key"] for a in v["items"] if a.get("status") == "present"]
        cursor = v.get("next")
        if not cursor:
            break
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:12]
    print(len(keys), digest)


def merge(path, pairs):
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    for pair in pairs:
        k, _, v = pair.partition("=")
        try:
            data[k] = json.loads(v)
        except ValueError:
            data[k] = v
    with open(path, "w") as f:
        json.dump(data, f)


# --------------------------------------------------------------------------- report

def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(1, min(len(s), int(-(-p * len(s) // 100))))
    return s[k - 1]


def num(x, digits=0):
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{digits}f}"


def load(work, prefix):
    out = []
    for name in sorted(os.listdir(work)):
        if name.startswith(prefix) and name.endswith(".json"):
            with open(os.path.join(work, name)) as f:
                out.append(json.load(f))
    return sorted(out, key=lambda d: d.get("order", 0))


def shard_lines(path):
    out = []
    if path and os.path.exists(path):
        with open(path) as f:
            out = [json.loads(line) for line in f if line.strip()]
    return out


def ingest_table(runs):
    print("#### Coordinator ingest through NATS into the store (fake workers, no probes)")
    print()
    print("lease→results→ack: a fake worker's pull, the publish of its parts (each "
          "confirmed by JetStream) and its double-acked finish. results→store: from its "
          "last part confirmed in the results stream to the coordinator starting to store "
          "the shard (the receipt's time). Redelivered: deliveries beyond the first on "
          "the results (coordinator) and shards (workers) consumers.")
    print()
    print("| phase | shards (batches) | observations | wall s | batches/s | observations/s "
          "| store s (apply + policy) | lease→results→ack ms p50 / p99 | results→store ms p50 / p99 "
          "| CPU s: coordinator / nats-server / fake workers | redelivered: results / shards |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
    for r in runs:
        shards = shard_lines(r.get("shards_file"))
        bus = [s["pull_ms"] + s["publish_ms"] + s["ack_ms"] for s in shards]
        published = {s["shard"]: s["published_at_ms"] for s in shards}
        wait = [rc["applied"] - published[rc["shard"]] for rc in r["receipts"]
                if rc["shard"] in published]
        secs = r["secs"]
        print(f"| {r['phase']} | {r['shards']} | {num(r['observations'])} | {secs:.2f} "
              f"| {num(r['shards'] / secs, 1)} | {num(r['observations'] / secs)} "
              f"| {r['ingest_secs']:.2f} | {num(pct(bus, 50), 1)} / {num(pct(bus, 99), 1)} "
              f"| {num(pct(wait, 50))} / {num(pct(wait, 99))} "
              f"| {r['cpu_coord']:.2f} / {r['cpu_nats']:.2f} / {r['cpu_fake']:.2f} "
              f"| {r.get('redelivered_results', 'n/a')} / {r.get('redelivered_shards', 'n/a')} |")
    print()


def cycle_by_worker(receipts):
    """Mean seconds between two stored shards of one worker, over the workers."""
    by = {}
    for rc in receipts:
        by.setdefault(rc.get("worker") or "-", []).append(rc["applied"])
    spans, gaps = 0.0, 0
    for times in by.values():
        if len(times) > 1:
            spans += (max(times) - min(times)) / 1000
            gaps += len(times) - 1
    return spans / gaps if gaps else float("nan")


def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def spread(values, fmt):
    """The median, and [min–max] when there are several values."""
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(med(values))} [{fmt(min(values))}–{fmt(max(values))}]"


def pct0(v):
    return f"{v:.0f}%"


def scan_table(runs):
    """One row per mode: medians over the runs (each run: in-process, then the workers)."""
    modes, by_mode = [], {}
    for r in sorted(runs, key=lambda r: (r.get("run", 1), r.get("order", 0))):
        if r["mode"] not in by_mode:
            modes.append(r["mode"])
            by_mode[r["mode"]] = []
        by_mode[r["mode"]].append(r)
    base = {r.get("run", 1): r for r in by_mode.get("in-process", [])}
    n_runs = max(len(v) for v in by_mode.values())
    print("#### The same SYN scan, in-process against 1..N remote workers")
    print()
    if n_runs > 1:
        print(f"Medians of {n_runs} runs [min–max]; each run measures every mode in turn, "
              "and efficiency is against the same run's in-process figure.")
        print()
    print("| mode | wall s | probes (SYNs at the target) | probes/s | CPU s of the probing "
          "process(es), user + sys | probes per CPU-s | efficiency vs in-process "
          "| idle CPU of those, ms/s | coordinator CPU s | services stored |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---|")
    for mode in modes:
        rs = by_mode[mode]
        eff = [r["syns"] / r["cpu_probe"] if r["cpu_probe"] > 0 else float("nan") for r in rs]
        rel = []
        for r, e in zip(rs, eff):
            b = base.get(r.get("run", 1))
            if b and b["cpu_probe"] > 0:
                rel.append(100 * e / (b["syns"] / b["cpu_probe"]))
        idle = [1000 * r["idle_cpu"] / r["idle_secs"] for r in rs if r.get("idle_secs")]
        coord = (spread([r["cpu_coord"] for r in rs], lambda v: f"{v:.2f}")
                 if mode != "in-process" else "—")
        notes = set()
        for r in rs:
            notes.add("= truth" if r["services"] == r["truth"] else f"truth {r['truth']}")
            b = base.get(r.get("run", 1))
            if b and r is not b:
                notes.add("= in-process" if r.get("digest") == b.get("digest")
                          else "DIFFERS from in-process")
        services = "/".join(sorted({str(r["services"]) for r in rs}))
        user, sys_ = med([r["cpu_probe_user"] for r in rs]), med([r["cpu_probe_sys"] for r in rs])
        print(f"| {mode} | {spread([r['secs'] for r in rs], lambda v: f'{v:.2f}')} "
              f"| {num(med([r['syns'] for r in rs]))} "
              f"| {num(med([r['syns'] / r['secs'] for r in rs]))} "
              f"| {spread([r['cpu_probe'] for r in rs], lambda v: f'{v:.2f}')} "
              f"= {user:.2f} + {sys_:.2f} | {spread(eff, num)} "
              f"| {'100% (reference)' if mode == 'in-process' else spread(rel, pct0) if rel else 'n/a'} "
              f"| {spread(idle, lambda v: f'{v:.0f}') if idle else 'n/a'} | {coord} "
              f"| {services} ({', '.join(sorted(notes))}) |")
    print()
    remote = [m for m in modes if m != "in-process"]
    if not remote:
        return
    print("Per shard, remote workers: lease → ack is the server's time from delivering a "
          "shard to its ack (JetStream's ack sampling; all runs' shards pooled), the "
          "overhead what is left of it after sending the shard's probes at the worker's "
          "share of the rate and the wait for late replies; a worker's cycle is the mean "
          "time between two of its shards being stored.")
    print()
    print("| mode | shards | lease → ack s p50 / p99 | sending at the worker's share s "
          "| syn wait s | overhead per shard ms p50 / p99 | worker's cycle s per shard "
          "| share of a worker's time spent sending | redelivered: results / shards |")
    print("|---|---:|---|---:|---:|---|---:|---:|---|")
    for mode in remote:
        rs = by_mode[mode]
        acks, over, cycles, sendings = [], [], [], []
        for r in rs:
            k = r["workers"]
            sending = (r["syns"] / r["shards"]) / (r["rate"] / k)
            sendings.append(sending)
            a = [x["ack_ms"] for x in shard_lines(r.get("acks_file"))]
            acks += a
            over += [x - 1000 * (sending + r["wait"]) for x in a]
            cycles.append(cycle_by_worker(r["receipts"]))
        sending, cycle = med(sendings), med(cycles)
        busy = f"{100 * sending / cycle:.0f}%" if cycle == cycle and cycle > 0 else "n/a"
        redo = (sum(r.get("redelivered_results", 0) for r in rs),
                sum(r.get("redelivered_shards", 0) for r in rs))
        print(f"| {mode} | {rs[0]['shards']} | {num(pct(acks, 50) / 1000, 3)} / "
              f"{num(pct(acks, 99) / 1000, 3)} | {sending:.3f} | {rs[0]['wait']:g} "
              f"| {num(pct(over, 50))} / {num(pct(over, 99))} | {num(cycle, 3)} | {busy} "
              f"| {redo[0]} / {redo[1]} |")
    print()


def show(path):
    with open(path) as f:
        d = json.load(f)
    line = f"{d['secs']:.2f} s, {d['shards']} batches, {d['observations']} observations"
    if "syns" in d:
        line += (f", {d['syns']} SYNs, CPU {d['cpu_probe']:.2f} s, {d['services']} services"
                 f" (truth {d['truth']})")
    print(line)


def table(work):
    ingest = load(work, "ingest-")
    scans = load(work, "scan-")
    if ingest:
        ingest_table(ingest)
    if scans:
        scan_table(scans)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "scope" and len(args) == 3:
        scope(*args)
    elif cmd == "scan" and len(args) == 7:
        scan(*args)
    elif cmd == "services" and len(args) == 2:
        services(*args)
    elif cmd == "merge" and len(args) >= 1:
        merge(args[0], args[1:])
    elif cmd == "show" and len(args) == 1:
        show(args[0])
    elif cmd == "table" and len(args) == 1:
        table(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
