#!/usr/bin/env python3
"""Aperture lab hostile hosts: servers that misbehave on purpose.

Run by the scripts/lab.d/30-hostile.sh hook inside the lab's target namespace
(aplab-tgt), where `ip route add local 198.19.2.0/24 dev lo` makes every
address of the hostile network local. One asyncio process serves every
(address, port) below; scanners and grabbers must survive all of them
without hanging, allocating without bound or crashing.

    .1  silent       21 22 80 443  accept, then never send a byte
    .2  drip         22 80         one byte every --drip-interval s, never
                                   finishing the line ("SSH-2.0-OpenSSH_9.9..."
                                   or "HTTP/1.1 200 OK\\r\\nServer: ...")
    .3  endless      25 80         random printable ASCII (0x20-0x7e, no line
                                   break) as fast as the client reads
    .4  tls-stall    443           reads the ClientHello, sends 3 of the 5 bytes
                                   of a ServerHello record header, stalls
    .5  bad-cert     443           TLS 1.2: well-formed ServerHello (with
                                   renegotiation_info if asked), Certificate
                                   whose certificate is truncated/garbage DER,
                                   ServerHelloDone (all hand-built)
    .6  bad-lengths  443           TLS 1.2: well-formed ServerHello, then a
                                   Certificate message whose handshake,
                                   certificate_list and certificate lengths are
                                   all 0xFFFFFF (inside a short record), then a
                                   record header claiming 0xFFFF bytes; stalls

(The last octet is added to --net's network address: --net 198.19.2.0/24 gives
198.19.2.1 ... 198.19.2.6.)

Bounds: at most --max-conns concurrent connections per listener (more are
accepted and closed at once); a connection is closed after --idle seconds
without a byte from the client (what the server sends does not count), and
after --max-life seconds whatever happens. Input is read and discarded (64 KiB
at most is kept for a ClientHello).

Only once every socket listens does it write --out (JSON Lines, one
{"ip","port","proto","behaviour"} per listener, sorted) atomically: the
file's appearance is the "ready" signal. --pidfile gets the PID. SIGTERM or
SIGINT closes everything and exits 0.

Standard library only.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import random
import signal
import struct
import sys
import time

# (last octet, behaviour, ports)
LAYOUT = [
    (1, "silent", (21, 22, 80, 443)),
    (2, "drip", (22, 80)),
    (3, "endless", (25, 80)),
    (4, "tls-stall", (443,)),
    (5, "bad-cert", (443,)),
    (6, "bad-lengths", (443,)),
]

DRIP_TEXT = {
    22: b"SSH-2.0-OpenSSH_9.9p1 Debian-drip ",
    80: b"HTTP/1.1 200 OK\r\nServer: nginx/1.99.9 ",
}
DRIP_FILL = b"x"  # after the prefix: never a line end, never a complete banner

MAX_HELLO = 64 * 1024


class Conn:
    """Per-connection bookkeeping shared by the reader and the behaviour."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.last = time.monotonic()  # last byte received from the client
        self.start = self.last

    def touch(self):
        self.last = time.monotonic()


class Hostile:
    def __init__(self, args):
        self.args = args
        self.servers = []
        self.tasks = set()
        self.counts = {}
        self.rng = random.Random(args.seed)
        # 1 MiB of random printable bytes; "endless" sends random slices of it.
        self.noise = bytes(self.rng.choices(range(0x20, 0x7F), k=1 << 20))

    # ---- connection plumbing -------------------------------------------------

    async def handle(self, key, behaviour, port, reader, writer):
        if self.counts[key] >= self.args.max_conns:
            writer.close()
            return
        self.counts[key] += 1
        task = asyncio.current_task()
        self.tasks.add(task)
        conn = Conn(reader, writer)
        body = getattr(self, "b_" + behaviour.replace("-", "_"))
        try:
            await self.bounded(conn, body(conn, port))
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as e:  # a bug here must not take the other listeners down
            print(f"lab-hostile: {key[0]}:{key[1]} {behaviour}: {e!r}", file=sys.stderr, flush=True)
        finally:
            self.counts[key] -= 1
            self.tasks.discard(task)
            try:
                writer.transport.abort()
            except Exception:
                pass

    async def bounded(self, conn, coro):
        """Run the behaviour until it ends, the client goes idle or life runs out."""
        behaviour = asyncio.ensure_future(coro)
        try:
            while not behaviour.done():
                now = time.monotonic()
                if now - conn.last >= self.args.idle or now - conn.start >= self.args.max_life:
                    break
                await asyncio.wait({behaviour}, timeout=1.0)
            if behaviour.done() and not behaviour.cancelled():
                behaviour.result()  # re-raise; the caller swallows I/O errors
        finally:
            if not behaviour.done():
                behaviour.cancel()
                try:
                    await behaviour
                except BaseException:
                    pass

    async def discard_input(self, conn):
        """Read and drop whatever the client sends (bumps the idle clock)."""
        while True:
            data = await conn.reader.read(65536)
            if not data:
                # Client closed its side: we are done too.
                raise ConnectionResetError("client closed")
            conn.touch()

    async def write(self, conn, data):
        conn.writer.write(data)
        await conn.writer.drain()

    # ---- behaviours ------------------------------------------------------------

    async def b_silent(self, conn, port):
        await self.discard_input(conn)

    async def b_drip(self, conn, port):
        reader = asyncio.ensure_future(self.discard_input(conn))
        try:
            text = DRIP_TEXT.get(port, b"")
            i = 0
            while not reader.done():
                b = text[i:i + 1] if i < len(text) else DRIP_FILL
                i += 1
                conn.writer.write(b)
                await conn.writer.drain()
                await asyncio.wait({reader}, timeout=self.args.drip_interval)
            reader.result()
        finally:
            reader.cancel()

    async def b_endless(self, conn, port):
        reader = asyncio.ensure_future(self.discard_input(conn))
        try:
            n = len(self.noise)
            chunk = 16384
            while not reader.done():
                off = self.rng.randrange(0, n - chunk)
                await self.write(conn, self.noise[off:off + chunk])
            reader.result()
        finally:
            reader.cancel()

    async def b_tls_stall(self, conn, port):
        await self.read_client_hello(conn)
        await self.write(conn, b"\x16\x03\x03")  # 3 of the 5 record header bytes
        await self.discard_input(conn)

    async def b_bad_cert(self, conn, port):
        hello = await self.read_client_hello(conn)
        if hello is None:
            return
        # Truncated DER: a SEQUENCE claiming 0x0500 content bytes, then an
        # inner SEQUENCE whose own length overruns it, then junk, all in 48 bytes.
        bad_der = (b"\x30\x82\x05\x00" + b"\x30\x82\x04\xf0" + b"\xa0\x03\x02\x01\x02"
                   + b"\x02\x84\xff\xff\xff\xff" + b"\x06\x09" + b"\xde\xad\xbe\xef" * 7)
        cert_entry = u24(len(bad_der)) + bad_der
        cert_list = u24(len(cert_entry)) + cert_entry
        msgs = (server_hello(hello, self.rng)
                + handshake(11, cert_list)
                + handshake(14, b""))
        await self.write(conn, record(22, msgs))
        await self.discard_input(conn)

    async def b_bad_lengths(self, conn, port):
        hello = await self.read_client_hello(conn)
        if hello is None:
            return
        # Certificate: handshake length, certificate_list length and the first
        # certificate's length all 0xFFFFFF, followed by 64 bytes only.
        cert_msg = b"\x0b" + u24(0xFFFFFF) + u24(0xFFFFFF) + u24(0xFFFFFF) + b"\x41" * 64
        await self.write(conn, record(22, server_hello(hello, self.rng) + cert_msg))
        # Then a record header claiming 65535 bytes (> 2^14 + 2048, the TLS
        # maximum) followed by 16 bytes, and nothing more.
        await self.write(conn, b"\x16\x03\x03\xff\xff" + b"\x42" * 16)
        await self.discard_input(conn)

    # ---- TLS parsing (just enough) ---------------------------------------------

    async def read_client_hello(self, conn):
        """Return the parsed ClientHello dict, or None if it is not one."""
        hs = b""
        while True:
            hdr = await conn.reader.readexactly(5)
            conn.touch()
            ctype, _ver, length = hdr[0], hdr[1:3], struct.unpack("!H", hdr[3:5])[0]
            if ctype != 22 or length == 0 or length > 18432:
                return None
            hs += await conn.reader.readexactly(length)
            conn.touch()
            if len(hs) > MAX_HELLO:
                return None
            if len(hs) >= 4:
                if hs[0] != 1:
                    return None
                need = 4 + int.from_bytes(hs[1:4], "big")
                if need > MAX_HELLO:
                    return None
                if len(hs) >= need:
                    return parse_client_hello(hs[4:need])


def u16(n):
    return struct.pack("!H", n)


def u24(n):
    return n.to_bytes(3, "big")


def record(ctype, payload, version=b"\x03\x03"):
    return bytes([ctype]) + version + u16(len(payload)) + payload


def handshake(htype, body):
    return bytes([htype]) + u24(len(body)) + body


def parse_client_hello(body):
    try:
        p = 2 + 32  # legacy_version, random
        sid_len = body[p]
        session_id = body[p + 1:p + 1 + sid_len]
        p += 1 + sid_len
        cs_len = struct.unpack("!H", body[p:p + 2])[0]
        p += 2
        suites = [struct.unpack("!H", body[p + i:p + i + 2])[0] for i in range(0, cs_len - 1, 2)]
        p += cs_len
        p += 1 + body[p]  # compression methods
        exts = []
        if p + 2 <= len(body):
            end = p + 2 + struct.unpack("!H", body[p:p + 2])[0]
            p += 2
            while p + 4 <= min(end, len(body)):
                etype, elen = struct.unpack("!HH", body[p:p + 4])
                exts.append(etype)
                p += 4 + elen
        return {"session_id": session_id, "suites": suites, "extensions": exts}
    except (IndexError, struct.error):
        return None


# TLS 1.2 RSA-key-exchange-or-ECDHE_RSA suites a client is likely to offer.
PREFERRED = [0xC02F, 0xC030, 0x009C, 0x009D, 0xC013, 0xC014, 0x002F, 0x0035, 0xC02B, 0xC02C]


def server_hello(hello, rng):
    offered = hello["suites"] if hello else []
    suite = next((s for s in PREFERRED if s in offered), None)
    if suite is None:
        # Anything the client offered that is not TLS 1.3-only, SCSV or GREASE.
        suite = next((s for s in offered
                      if s >> 8 != 0x13 and s not in (0x00FF, 0x5600) and (s & 0x0F0F) != 0x0A0A),
                     0xC02F)
    # Secure renegotiation (RFC 5746): answer it when the client asks, or
    # modern clients abort before they ever look at the Certificate.
    exts = b""
    if hello and (0x00FF in offered or 0xFF01 in hello.get("extensions", ())):
        exts += u16(0xFF01) + u16(1) + b"\x00"
    random_bytes = bytes(rng.randrange(256) for _ in range(32))
    body = (b"\x03\x03" + random_bytes
            + b"\x20" + bytes(rng.randrange(256) for _ in range(32))  # session id
            + u16(suite) + b"\x00"                                    # null compression
            + u16(len(exts)) + exts)
    return handshake(2, body)


def layout(net):
    base = int(net.network_address)
    for octet, behaviour, ports in LAYOUT:
        ip = ipaddress.IPv4Address(base + octet)
        if ip not in net:
            raise ValueError(f"{ip} is not in {net}")
        for port in ports:
            yield str(ip), port, behaviour


async def main_async(args):
    net = ipaddress.IPv4Network(args.net)
    hostile = Hostile(args)
    entries = sorted(layout(net), key=lambda e: (ipaddress.IPv4Address(e[0]), e[1]))
    for ip, port, behaviour in entries:
        key = (ip, port)
        hostile.counts[key] = 0

        def cb(r, w, key=key, behaviour=behaviour, port=port):
            return hostile.handle(key, behaviour, port, r, w)

        srv = await asyncio.start_server(cb, host=ip, port=port, reuse_address=True, backlog=128)
        hostile.servers.append(srv)

    if args.pidfile:
        write_atomic(args.pidfile, f"{os.getpid()}\n")
    lines = "".join(json.dumps({"ip": ip, "port": port, "proto": "tcp", "behaviour": b}) + "\n"
                    for ip, port, b in entries)
    write_atomic(args.out, lines)
    print(f"lab-hostile: {len(entries)} listeners ready in {net} (pid {os.getpid()})",
          file=sys.stderr, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    for srv in hostile.servers:
        srv.close()
    for task in list(hostile.tasks):
        task.cancel()
    await asyncio.gather(*hostile.tasks, return_exceptions=True)
    for srv in hostile.servers:
        await srv.wait_closed()
    print("lab-hostile: stopped", file=sys.stderr, flush=True)


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="198.19.2.0/24")
    ap.add_argument("--out", required=True, help="ground truth (JSON Lines), written when ready")
    ap.add_argument("--pidfile")
    ap.add_argument("--max-conns", type=int, default=256, help="per listener")
    ap.add_argument("--idle", type=float, default=120.0, help="seconds without client bytes")
    ap.add_argument("--max-life", type=float, default=600.0, help="hard cap per connection")
    ap.add_argument("--drip-interval", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    try:
        asyncio.run(main_async(args))
    except OSError as e:
        print(f"lab-hostile: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
