#!/usr/bin/env python3
"""Aperture lab listeners: the open ports of the lab's ground truth.

Run by `scripts/lab up` inside the aplab-tgt network namespace, where
`ip route add local 198.18.0.0/16 dev lo` makes every address of the lab
network local (so bind() to any of them works and closed ports answer RST).

It deterministically picks --pairs distinct (address, port) pairs with
random.Random(--seed) -- addresses from --net minus its network and broadcast
addresses, ports from --ports -- and binds a listening TCP socket on each
(SO_REUSEADDR, backlog 1024). Only once every socket listens does it write the
ground truth (JSON Lines, sorted by numeric address then port) atomically
(tmp file + rename): the file's appearance is the "ready" signal. It then
accepts and immediately closes every connection until SIGTERM/SIGINT, when it
closes its sockets and exits 0.

Standard library only.
"""

import argparse
import ipaddress
import json
import os
import random
import resource
import selectors
import signal
import socket
import sys

DEFAULT_PORTS = "21,22,25,53,80,110,143,443,445,993,995,3306,3389,5432,6379,8080"


def parse_ports(text):
    ports = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        port = int(part)
        if not 1 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        if port not in ports:
            ports.append(port)
    if not ports:
        raise ValueError("no ports given")
    return ports


def pick_pairs(net, ports, count, seed):
    """Deterministic: same (net, ports, count, seed) -> same pairs."""
    # Usable host offsets exclude the network (offset 0) and broadcast (last).
    hosts = net.num_addresses - 2
    if hosts < 1:
        raise ValueError(f"{net} has no usable host addresses")
    if count > hosts * len(ports):
        raise ValueError(f"cannot pick {count} distinct pairs from {hosts} addresses x {len(ports)} ports")
    rng = random.Random(seed)
    base = int(net.network_address)
    chosen = set()
    while len(chosen) < count:
        offset = rng.randrange(1, net.num_addresses - 1)
        port = ports[rng.randrange(len(ports))]
        chosen.add((base + offset, port))
    return sorted(chosen)


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--ports", default=DEFAULT_PORTS)
    ap.add_argument("--net", default="198.18.0.0/16")
    ap.add_argument("--out", required=True, help="ground-truth JSON Lines file")
    ap.add_argument("--pidfile", help="also write our PID here (atomically)")
    ap.add_argument("--backlog", type=int, default=1024)
    args = ap.parse_args()

    net = ipaddress.IPv4Network(args.net, strict=True)
    try:
        ports = parse_ports(args.ports)
    except ValueError as e:
        ap.error(str(e))
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    try:
        pairs = pick_pairs(net, ports, args.pairs, args.seed)
    except ValueError as e:
        ap.error(str(e))

    # One descriptor per listener: lift the soft limit as far as allowed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(pairs) + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))

    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Closed stdout/stderr of a detached parent must never kill us.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    if args.pidfile:
        write_atomic(args.pidfile, f"{os.getpid()}\n")

    sel = selectors.DefaultSelector()
    socks = []
    try:
        for addr, port in pairs:
            ip = str(ipaddress.IPv4Address(addr))
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError as e:
                raise SystemExit(f"lab-listeners: bind {ip}:{port}: {e} "
                                 f"(is {args.net} routed 'local' in this namespace?)")
            s.listen(args.backlog)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)

        lines = "".join(
            json.dumps({"ip": str(ipaddress.IPv4Address(a)), "port": p,
                        "proto": "tcp", "state": "open"}, separators=(",", ":")) + "\n"
            for a, p in pairs)
        write_atomic(args.out, lines)
        print(f"lab-listeners: {len(pairs)} listeners up (seed {args.seed}), "
              f"ground truth in {args.out}", file=sys.stderr, flush=True)

        accepted = 0
        while not stopping:
            try:
                events = sel.select(timeout=0.5)
            except InterruptedError:
                continue
            for key, _ in events:
                # Drain the accept queue; close at once (no data, no state).
                while True:
                    try:
                        conn, _peer = key.fileobj.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    conn.close()
                    accepted += 1
        print(f"lab-listeners: stopping after {accepted} accepted connections",
              file=sys.stderr, flush=True)
    finally:
        for s in socks:
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        sel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
