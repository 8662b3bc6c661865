#!/usr/bin/env python3
"""Writes the seed corpora under seeds/<target>/ from real bytes in the repository:
the certificate and Recog fixtures, the JARM reader vectors (answers of real servers),
the built-in rules, and the server transcripts the unit tests carry (hex dumps captured
from Debian daemons on loopback, and the byte strings of each protocol's tests).

Run from anywhere: python3 fingerprints/fuzz/make_seeds.py (it replaces seeds/).
"""
import hashlib
import json
import pathlib
import re
import shutil
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
CRATE = FUZZ.parent
SRC = CRATE / "src"
SEEDS = FUZZ / "seeds"

# Order of fingerprints::proto::protocols(); the legacy TLS grab comes after them.
PROTOCOLS = ["ssh", "ftp", "smtp", "imap", "pop3", "http", "redis", "memcached", "mysql",
             "postgres", "mqtt", "dns", "rdp", "smb", "ldap", "tls"]
SOURCES = {p: [SRC / "proto" / f"{p}.rs"] for p in PROTOCOLS}
SOURCES["dns"] = [SRC / "proto" / "dns_tcp.rs"]
SOURCES["tls"] = [SRC / "tls" / "grab.rs", SRC / "tls" / "record.rs"]
SOURCES["http"].append(SRC / "http_facts.rs")
for p in ("ftp", "smtp", "imap", "pop3"):
    SOURCES[p].append(SRC / "proto" / "lines.rs")

MAX_SEED = 16 * 1024


def unescape(body):
    """A Rust (byte) string literal's body to bytes."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = body[i + 1]
        if n == "\n":  # line continuation: skip the newline and leading whitespace
            i += 2
            while i < len(body) and body[i] in " \t\n":
                i += 1
            continue
        simple = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\0"}
        if n in simple:
            out += simple[n]
            i += 2
        elif n == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif n == "u":
            end = body.index("}", i)
            out += chr(int(body[i + 3:end], 16)).encode()
            i = end + 1
        else:
            out += b"\\"
            i += 1
    return bytes(out)


STRING = r'"((?:[^"\\]|\\.|\\\n)*)"'


def literals(path):
    """Byte strings of a source file's tests: hex dumps, b"..." and &[0x..] arrays."""
    text = path.read_text()
    test_at = text.find("#[cfg(test)]")
    text = text[test_at:] if test_at >= 0 else text
    found = []
    for m in re.finditer(r"hex\((?:concat!\()?((?:\s*" + STRING + r"\s*,?)+)", text, re.S):
        digits = "".join(re.findall(r"[0-9a-fA-F]", "".join(re.findall(STRING, m.group(1), re.S))))
        if len(digits) >= 8:
            found.append(bytes.fromhex(digits[: len(digits) // 2 * 2]))
    for m in re.finditer(r'\bb' + STRING, text, re.S):
        found.append(unescape(m.group(1)))
    for m in re.finditer(r"&\[((?:\s*0x[0-9a-fA-F]{2}\s*,?)+)\]", text):
        found.append(bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", m.group(1))))
    for m in re.finditer(r'(?<![b\w])' + STRING, text, re.S):
        s = unescape(m.group(1))
        if b"\r\n" in s or s.startswith((b"HTTP/", b"SSH-", b"+", b"-ERR", b"* OK")):
            found.append(s)
    return [f for f in found if 4 <= len(f) <= MAX_SEED]


def reads(*chunks):
    """The `Reads` encoding of fuzz_targets: length byte (n means n+1), or 0xff + u16."""
    out = bytearray()
    for c in chunks:
        while c:
            piece, c = c[:0xffff], c[0xffff:]
            if len(piece) <= 255:
                out.append(len(piece) - 1)
            else:
                out += b"\xff" + struct.pack("<H", len(piece))
            out += piece
    return bytes(out)


def tls_flight(ders):
    """A TLS 1.2 ServerHello, Certificate (real DER), ServerHelloDone in one record."""
    hello = struct.pack(">H", 0x0303) + b"\x42" * 32 + b"\x20" + b"\x11" * 32
    hello += struct.pack(">HB", 0xc02f, 0)
    ext = struct.pack(">HH", 0xff01, 1) + b"\x00" + struct.pack(">HHH", 0x0010, 5, 3) + b"\x02h2"
    hello += struct.pack(">H", len(ext)) + ext
    certs = b"".join(struct.pack(">I", len(d))[1:] + d for d in ders)
    cert_body = struct.pack(">I", len(certs))[1:] + certs

    def msg(t, body):
        return bytes([t]) + struct.pack(">I", len(body))[1:] + body

    hs = msg(2, hello) + msg(11, cert_body) + msg(14, b"")
    return b"\x16\x03\x03" + struct.pack(">H", len(hs)) + hs


def version_bind_answer():
    """What BIND 9 on Debian 12 answers to our version.bind CH TXT query."""
    question = b"\x07version\x04bind\x00" + struct.pack(">HH", 16, 3)
    txt = b"9.18.28-1~deb12u2-Debian"
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 16, 3, 0, len(txt) + 1) + bytes([len(txt)]) + txt
    authority = b"\xc0\x0c" + struct.pack(">HHIH", 2, 3, 0, 2) + b"\xc0\x0c"
    return struct.pack(">HHHHHH", 0x4150, 0x8400, 1, 1, 1, 0) + question + answer + authority


# fuzz_targets/unauth.rs CHECKS: which index plans which check.
UNAUTH = {"redis": 0, "redis-error": 1, "memcached": 2, "mongodb": 3, "mongodb-old": 4, "ftp": 5,
          "ldap": 6, "http": 7, "smb": 8}
# The lab's captures (captures/unauth/<name>.json) and the check each one fed.
CAPTURES = {"redis-open": "redis", "redis-auth": "redis-error", "memcached": "memcached",
            "ftp-anon": "ftp", "ftp-noanon": "ftp", "ldap-anon": "ldap", "ldap-noanon": "ldap",
            "etcd-open": "http", "etcd-auth": "http", "prometheus": "http",
            "nginx-listing": "http", "smb-open": "smb", "smb-locked": "smb"}


def unauth_seed(check, conns):
    """The check's conversation from a capture: for HTTP the grab's GET / answer first
    (the check is planned from it), then the server's reads on the connections the check
    opened (those after the grab's: after its GET / and favicon, or the last one)."""
    client = [bytes.fromhex("".join(c["client"])) for c in conns]
    server = [[bytes.fromhex(r) for r in c["server"]] for c in conns]
    if check == "http":
        at = next(i for i, c in enumerate(client) if c.startswith(b"GET / "))
        first = [b"".join(server[at])]
        mine = [i for i in range(at + 1, len(conns)) if not client[i].startswith(b"GET /favicon")]
    else:
        first, mine = [], [len(conns) - 1]
    return bytes([UNAUTH[check], 0]) + reads(*first, *[r for i in mine for r in server[i]])


def bson(doc):
    """A BSON document of str, float, int and list-of-dict values."""
    body = b""
    for k, v in doc.items():
        key = k.encode() + b"\0"
        if isinstance(v, str):
            body += b"\x02" + key + struct.pack("<i", len(v) + 1) + v.encode() + b"\0"
        elif isinstance(v, float):
            body += b"\x01" + key + struct.pack("<d", v)
        elif isinstance(v, int):
            body += b"\x10" + key + struct.pack("<i", v)
        else:
            body += b"\x04" + key + bson({str(i): x for i, x in enumerate(v)})
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def mongo_replies(op_msg):
    """buildInfo and listDatabases answers as [MongoDB Wire Protocol] documents them:
    OP_MSG (2013) section kind 0, or OP_REPLY (1) for servers before 3.6."""
    docs = [bson({"version": "7.0.5", "ok": 1.0}),
            bson({"databases": [{"name": "admin"}, {"name": "shop"}], "ok": 1.0})]
    out = []
    for i, d in enumerate(docs, start=1):
        if op_msg:
            body = struct.pack("<I", 0) + b"\0" + d
            out.append(struct.pack("<iiii", 16 + len(body), 100 + i, i, 2013) + body)
        else:
            body = struct.pack("<iqii", 8, 0, 0, 1) + d
            out.append(struct.pack("<iiii", 16 + len(body), 100 + i, i, 1) + body)
    return out


def write(target, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def main():
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    fixtures = CRATE / "tests" / "fixtures"
    ders = [p.read_bytes() for p in sorted(fixtures.glob("*.der"))]
    jarm = []
    for line in (SRC / "tls" / "testdata" / "jarm_read_vectors.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            h = line.split("\t")[0]
            if h:
                jarm.append(bytes.fromhex(h))

    for i, der in enumerate(ders):
        write("cert", bytes([i % 4]) + der)

    flights = [tls_flight(ders[:1]), tls_flight(ders[1:3])] + jarm[::6]
    for f in flights:
        write("tls_record", f)
    for host in [b"www.example.com", b"b\xc3\xbccher.example", b"192.0.2.1", b"[2001:db8::1]",
                 b"a" * 300, b"example.com.", b""]:
        write("tls_hello", b"\x01\xbb" + host)

    for lit in literals(SRC / "proto" / "http.rs") + literals(SRC / "http_facts.rs"):
        if lit.startswith(b"HTTP/"):
            write("http", lit)

    for lit in literals(SRC / "proto" / "dns_tcp.rs") + [version_bind_answer()]:
        write("dns", b"\x0c" + lit)
    txt = (SRC / "dns" / "txt.rs").read_text()
    for rec in sorted(set(re.findall(r'"(v=(?:spf1|DMARC1)[^"\\]*)"', txt)))[:40]:
        write("dns", b"\x00" + rec.encode())
    for name in ["www.example.com", "b\u00fccher.example", "_dmarc.example.org", "xn--bcher-kva.example.",
                 "a.b.c.d.e.f.example", "ex ample.com", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629.example"]:
        write("dns", b"\x00" + name.encode())

    for index, proto in enumerate(PROTOCOLS):
        lits = [l for src in SOURCES[proto] for l in literals(src)]
        if proto == "tls":
            lits += flights
        if proto == "dns":
            answer = version_bind_answer()
            lits.append(struct.pack(">H", len(answer)) + answer)
        for lit in lits:
            write("session", bytes([index, 0]) + reads(lit))
        # Every reply in turn, as one conversation, and bytewise for the first.
        if lits:
            convo = reads(*lits)[:MAX_SEED]
            write("session", bytes([index, 0]) + convo)
            write("session", bytes([index, 1]) + b"".join(reads(lits[0][i:i + 1]) for i in range(min(len(lits[0]), 200))))

    rules = (CRATE / "rules" / "services.toml").read_text()
    blocks = rules.split("[[rule]]")
    head, blocks = blocks[0], blocks[1:]
    for i in range(0, len(blocks), 12):
        write("rules_toml", (head + "".join("[[rule]]" + b for b in blocks[i:i + 12])).encode())
    protos = ["http", "ssh", "dns", "smtp", "ftp", "mysql", "imap", "ldap", "redis", "pop3", "telnet",
              "vnc", "smb", "postgres", "rdp", "nats", "mssql", "mqtt", "mongodb", "memcached", "tls",
              "snmp", "unknown", "HTTP", ""]
    for m in re.finditer(r'protocol = "([^"]+)".*?example = ("(?:[^"\\]|\\.)*"|\'[^\']*\')', rules, re.S):
        proto, example = m.group(1), m.group(2)
        ex = unescape(example[1:-1]) if example.startswith('"') else example[1:-1].encode()
        if proto in protos:
            write("identify", bytes([protos.index(proto), 0]) + ex)

    for p in sorted((fixtures / "recog").glob("*.xml")):
        write("recog", p.read_bytes())

    for name, check in sorted(CAPTURES.items()):
        conns = json.loads((FUZZ / "captures" / "unauth" / f"{name}.json").read_text())
        write("unauth", unauth_seed(check, conns))
    write("unauth", bytes([UNAUTH["mongodb"], 0]) + reads(*mongo_replies(True)))
    write("unauth", bytes([UNAUTH["mongodb-old"], 0]) + reads(*mongo_replies(False)))
    # The SMB check's unit-test transcripts (Samba 4.17 as the lab runs it), whole.
    for name in ("smb-open", "smb-locked"):
        frames = [bytes.fromhex(l) for l in (SRC / "unauth" / "testdata" / f"{name}.hex").read_text().split()
                  if not l.startswith("#") and all(c in "0123456789abcdef" for c in l)]
        write("unauth", bytes([UNAUTH["smb"], 0]) + reads(*frames))


if __name__ == "__main__":
    main()
