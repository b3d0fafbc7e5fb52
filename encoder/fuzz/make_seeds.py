#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into corpus/<target>/ (git-ignored).

Seeds come from the repository itself, so they follow the formats as they change:
- stack_address: every example in docs/stack-address.md (valid and invalid);
- srh_view: the SRHs the Linux kernel produced, encoder/tests/golden/*.hex, plus SRHs with
  hopstack's own TLVs from `hop encode --hex-only` when target/debug/hop is built (or the
  HOP environment variable names a `hop` binary);
- report: one error report and one probe answer, built from the layout documented in
  encoder/src/wire/report.rs.
"""
import hashlib
import ipaddress
import os
import pathlib
import re
import struct
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def put(target, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def stack_address():
    doc = (ROOT / "docs/stack-address.md").read_text()
    n = 0
    for m in re.finditer(r"^\$ hoptrace '(.*)'$", doc, re.M):
        put("stack_address", m.group(1).encode())
        n += 1
    valid = doc.split("Valid examples:\n\n```text\n", 1)[1].split("```", 1)[0]
    for line in valid.splitlines():
        put("stack_address", line.encode())
        n += 1
    return n


def golden_srhs():
    """The SRHs the Linux kernel produced, from encoder/tests/golden/*.hex."""
    out = []
    for f in sorted((ROOT / "encoder/tests/golden").glob("*.hex")):
        for line in f.read_text().splitlines():
            if line.startswith("srh "):
                out.append(bytes.fromhex(line[4:].strip()))
    return out


def hop_srhs():
    """SRHs with hopstack's own TLVs from `hop encode --hex-only`: target/debug/hop, or the
    binary the HOP environment variable names; none when there is no such binary."""
    hop = pathlib.Path(os.environ.get("HOP", ROOT / "target/debug/hop"))
    if not hop.exists():
        return []
    out = []
    for addr, extra in [
        ("github.com>org>yc:tcp+tls+http+restapiv3/users", ["--probe", "--nonce", "01020304"]),
        ("github.com>org>yc:tcp+tls+http+restapiv3", []),
        ("[fd00::1]>[fd00::2]>gw.lab>[fd00::4]:udp+quic+h3+web", ["--probe", "--nonce", "0a0b0c0d"]),
    ]:
        words = subprocess.run(
            [str(hop), "encode", addr, "--resolve", "github.com=fd00::1", "--hex-only", *extra],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        out.append(bytes.fromhex(words[0]))
    return out


def srh_view():
    srhs = golden_srhs() + hop_srhs()
    for srh in srhs:
        put("srh_view", srh)
    return len(srhs)


def report():
    a = lambda s: ipaddress.IPv6Address(s).packed
    def header(kind, body):
        return b"HOPS" + struct.pack(">BBHI", 1, kind, 28 + len(body), 0x01020304) + a("fd00:1::1") + body
    name, text = b"yc", b"yc: NXDOMAIN in the view of hop 1"
    err = struct.pack(">BBHBBH", 2, 0x80, 1, 0x80, len(name), len(text)) + a("fd00:2::1") + name + text
    put("report", header(1, err))
    trace = struct.pack(">BBHI", 1, 0, 4242, 0x01020304) + a("fd00::99") + bytes(12) * 2
    entries = a("fd00:1::1") + bytes([0xFF, 0]) + a("fd00:2::1") + bytes([1, 2]) + b"yc"
    text = b"service restapiv3 is up"
    ans = struct.pack(">BBBBHH", 1, 1, 2, 0, len(text), len(trace)) + entries + text + trace
    put("report", header(2, ans))
    return 2


if __name__ == "__main__":
    print("stack_address:", stack_address(), "srh_view:", srh_view(), "report:", report())
