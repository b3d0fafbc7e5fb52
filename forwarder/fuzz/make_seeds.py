#!/usr/bin/env python3
"""Writes seed inputs for the forwarder's fuzz targets into corpus/<target>/ (git-ignored).

- border: the packets forwarder/src/border/tests.rs builds (IPv6 + SRH + UDP with a correct
  checksum: plain End, every RFC 8754 error, late binding with its answer, cached failures,
  bad hop names, loops, policy, too many segments, probes with trace TLVs, HMAC-signed
  SRHs, the two Hop Limit modes, a locator SID, full resolver queues, reconfiguration), each
  behind a header that sets the state up as the test does, plus the SRHs of the srh_view
  seeds (encoder/fuzz/make_seeds.py: the kernel's golden SRHs and `hop encode` output) sent
  to the border's SID. The input format is documented in fuzz_targets/border.rs.
- arrival: the same SRHs as the Routing header a final hop receives, and the SRHs of the
  border seeds.
"""
import hashlib
import hmac
import ipaddress
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "encoder/fuzz"))
sys.dont_write_bytecode = True
import make_seeds as encoder_seeds  # noqa: E402  (golden_srhs, hop_srhs)


WRITTEN = {}


def put(target, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    (d / name).write_bytes(data)
    WRITTEN.setdefault(target, set()).add(name)


def a(s):
    return ipaddress.IPv6Address(s).packed


SRC = "2001:db8::100"
SID = "fd00:1::1"


def placeholder(i):
    return f"100::{i:x}"


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo(src, dst, nh, length):
    return a(src) + a(dst) + struct.pack(">IxxxB", length, nh)


def pad_tlvs(tlvs):
    rem = len(tlvs) % 8
    if rem:
        pad = 16 - rem if 8 - rem < 2 else 8 - rem
        tlvs += bytes([4, pad - 2]) + bytes(pad - 2)
    return tlvs


def srh(segs, sl, tlvs=b"", flags=0, routing_type=4, last_entry=None, nh=17):
    tlvs = pad_tlvs(tlvs)
    hel = (len(segs) * 16 + len(tlvs)) // 8
    le = len(segs) - 1 if last_entry is None else last_entry
    return bytes([nh, hel, routing_type, sl, le, flags, 0, 0]) + b"".join(map(a, segs)) + tlvs


def hmac_srh(segs, sl, key=b"s3cret", key_id=7, tlvs=b"", src=SRC, sha1=False):
    """An SRH signed like the kernel's seg6_hmac_compute: the HMAC TLV in the last 40 octets,
    padding before it, the H flag set."""
    flags = 0x08
    tlvs = pad_tlvs(tlvs) if tlvs else b""
    body = bytes([len(segs) - 1, flags]) + struct.pack(">I", key_id) + b"".join(map(a, segs))
    digest = hmac.new(key, a(src) + body, hashlib.sha1 if sha1 else hashlib.sha256).digest()
    tlv = bytes([5, 38, 0, 0]) + struct.pack(">I", key_id) + digest.ljust(32, b"\0")
    hel = (len(segs) * 16 + len(tlvs) + 40) // 8
    return (bytes([17, hel, 4, sl, len(segs) - 1, flags, 0, 0]) + b"".join(map(a, segs))
            + tlvs + tlv)


def packet(dst, routing=None, src=SRC, hop_limit=64, payload=b"hello, hop", final=None,
           partial=False, ext=b"", first_nh=None):
    """IPv6 [+ ext headers] [+ routing header] + UDP with a checksum over the final
    destination (Segment List[0]); with `partial` the field holds the pseudo-header sum only,
    as a TUN with checksum offload delivers it."""
    udp_len = 8 + len(payload)
    udp = struct.pack(">HHHH", 12345, 443, udp_len, 0) + payload
    if final is None:
        final = ipaddress.IPv6Address(routing[8:24]).compressed if routing else dst
    if partial:
        c = csum(pseudo(src, final, 17, udp_len))
    else:
        c = 0xFFFF - csum(pseudo(src, final, 17, udp_len) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", c) + udp[8:]
    body = ext + (routing or b"") + udp
    nh = first_nh if first_nh is not None else (43 if routing else 17)
    return struct.pack(">BBBBHBB", 0x60, 0, 0, 0, len(body), nh, hop_limit) + a(src) + a(dst) + body


def hop_names(entries):
    v = b"".join(bytes([i, len(n)]) + n.encode() for i, n in entries)
    return bytes([125, len(v)]) + v


def trace_tlv(report=SRC, port=40000, nonce=7, records=2):
    v = struct.pack(">BBHI", 1, 0, port, nonce) + a(report) + bytes(12 * records)
    return bytes([252, len(v)]) + v


# Header flags and record ops, as fuzz_targets/border.rs reads them.
REQUIRE_HMAC, NODE_HOP_LIMIT, LOCATOR, KERNEL_END, WALL, ICMP_OFF, SMALL_OUT, SHA1_KEY = (
    1 << i for i in range(8))
PACKET, PARTIAL, TIME, ANSWER, CACHE, RECONF, REPEAT = range(7)
# Bindings: ADDRS[0..=10] in border.rs, 11 raw, 12.. failures.
FD00_3_3, FD00_2_2, DOC_2_9, INSIDE, LOOPBACK = 0, 1, 2, 3, 4
NXDOMAIN, SERVFAIL, TIMEOUT, NOAAAA = 12, 13, 14, 15


def header(flags=0, max_segments=16, rate=100, burst=20, allowed=0, cache_entries=16,
           queue_per_name=4, pending_names=4, out8=0, key_id=7, start=1000, node_id=0x0A0B0C0D,
           udp_ingress=False):
    return bytes([
        flags, max_segments, rate, burst, ((cache_entries - 1) << 4) | allowed,
        (0x10 if udp_ingress else 0) | ((pending_names - 1) << 2) | (queue_per_name - 1), out8,
        key_id,
    ]) + struct.pack(">II", start, node_id)


def in_udp(inner, port=7444, length=None):
    """`inner` carried in UDP to `port` at its own destination, from its own source."""
    n = len(inner) + 8
    udp = struct.pack(">HHHH", 33000, port, n if length is None else length, 0)
    return inner[:4] + struct.pack(">HBB", n, 17, 64) + inner[8:40] + udp + inner


def rec(op, data=b""):
    return bytes([op]) + struct.pack(">H", len(data)) + data


def pkt(p, partial=False):
    return rec(PARTIAL if partial else PACKET, p)


def answer(kind, ttl=60, index=0):
    return rec(ANSWER, bytes([index, kind, ttl]))


def cache(name, kind, ttl=60):
    return rec(CACHE, bytes([kind, ttl]) + bytes(16) + name.encode())


def time(ms):
    return rec(TIME, struct.pack(">H", ms // 10))


def border_cases():
    """(header, records) pairs mirroring forwarder/src/border/tests.rs."""
    h = header()
    to_sid = lambda r, **k: packet(SID, r, **k)
    plain = to_sid(srh(["fd00:3::1", "fd00:2::1", SID], 2))
    yield h, [pkt(plain), rec(REPEAT)]
    dopt = bytes([43, 0, 1, 4, 0, 0, 0, 0])
    yield h, [pkt(to_sid(srh(["fd00:3::1", SID], 1), ext=dopt, first_nh=60))]
    yield h, [pkt(to_sid(srh(["fd00:3::1", SID], 3)))]                     # SL > LE + 1
    yield h, [pkt(to_sid(srh(["fd00:3::1", SID], 1, last_entry=2)))]       # LE > HEL
    yield h, [pkt(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=1)),
              pkt(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=0))]
    yield h, [pkt(packet(SID, srh([SID, "fd00:2::1"], 0)))]                 # SL = 0
    yield h, [pkt(packet(SID))]                                            # no SRH
    yield h, [pkt(to_sid(srh(["fd00:3::1", SID], 1, routing_type=3)))]
    icmp = bytearray(packet(SID))
    icmp[6], icmp[40] = 58, 1
    yield header(rate=1, burst=2), [pkt(bytes(icmp))] + [
        pkt(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=1))] * 4 + [
        time(1000), pkt(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=1))]
    yield h, [pkt(packet("fd00:9::9", srh(["fd00:3::1", "fd00:9::9"], 1)))]  # not our SID
    yield header(flags=LOCATOR), [pkt(packet("fd00:5::abcd", srh(["fd00:3::1", "fd00:5::abcd"], 1)))]
    # Late binding of Segment List[0]: asked for, answered, forwarded; then offload.
    late = to_sid(srh([placeholder(0), SID], 1, hop_names([(0, "yc")])))
    yield h, [pkt(late), answer(FD00_3_3), time(61000), pkt(late)]
    late_partial = to_sid(srh([placeholder(0), SID], 1, hop_names([(0, "yc")])), partial=True)
    yield h, [pkt(late_partial, partial=True), answer(DOC_2_9)]
    yield h, [cache("h", FD00_2_2), pkt(to_sid(srh([placeholder(3), SID], 1, hop_names([(0, "h")]))))]
    middle = to_sid(srh(["fd00:3::1", placeholder(1), SID], 2, hop_names([(1, "org")])))
    yield h, [cache("org", FD00_2_2, 5), pkt(middle), time(5000), pkt(middle)]
    yield h, [cache("org", NXDOMAIN, 30), pkt(middle)]
    yield h, [pkt(middle), answer(SERVFAIL, 30), pkt(middle), time(31000), pkt(middle),
              answer(TIMEOUT, 0)]
    yield h, [pkt(to_sid(srh(["fd00:3::1", placeholder(1), SID], 2, hop_names([(0, "other")])))),
              pkt(to_sid(srh(["fd00:3::1", placeholder(1), SID], 2, hop_names([(1, "bad name!")]))))]
    yield h, [pkt(to_sid(srh([placeholder(0), SID], 1, bytes([125, 4, 0, 9, ord("a"), ord("b")]))))]
    yield h, [pkt(to_sid(srh(["fd00:3::1", SID, SID], 2)))]                # loop
    allow = header(allowed=0b0001)                                          # fd00::/16
    yield allow, [pkt(to_sid(srh(["2001:db8:bad::1", SID], 1))), pkt(to_sid(srh(["fd00:3::1", SID], 1))),
                  pkt(to_sid(srh(["fc00:99::7", "fd00:2::1", SID], 2)))]
    yield header(allowed=0b0010), [pkt(to_sid(srh(["fd00:2::9", "fd00:2::1", SID], 2)))]
    yield h, [pkt(to_sid(srh([s, SID], 1))) for s in ["::1", "fe80::1", "ff02::1", "::ffff:192.0.2.1"]]
    six = [f"fd00:9::{i}" for i in range(5)] + [SID]
    yield header(max_segments=4), [pkt(to_sid(srh(six, 5)))]
    yield h, [pkt(plain + bytes(6))]                                       # link padding
    # Probes: trace filled in place; a cached failure sends a report.
    probe = to_sid(srh(["fd00:3::1", placeholder(1), SID], 2,
                       hop_names([(1, "org")]) + trace_tlv(), flags=0x20))
    yield header(node_id=0x0A0B0C0D), [cache("org", FD00_2_2), pkt(probe)]
    yield header(flags=WALL), [cache("org", FD00_2_2), pkt(probe), time(61000), pkt(probe)]
    yield header(flags=KERNEL_END), [cache("org", FD00_2_2), pkt(probe)]
    nx = to_sid(srh([placeholder(0), SID, "fd00:9::1"], 1,
                    hop_names([(0, "yc")]) + trace_tlv("2001:db8::77", 40001, 0x12345678, 3),
                    flags=0x20))
    yield h, [cache("yc", NXDOMAIN, 30), pkt(nx)]
    vault = to_sid(srh([placeholder(0), SID, "fd00:9::1"], 1,
                       hop_names([(0, "vault")]) + trace_tlv(SRC, 40001, 7, 3), flags=0x20))
    yield allow, [cache("vault", INSIDE), pkt(vault)]
    yield h, [cache("org", FD00_2_2), pkt(to_sid(srh(["fd00:3::1", placeholder(1), SID], 2,
                                                     hop_names([(1, "ORG")])))),
              pkt(to_sid(srh(["fd00:3::1", placeholder(1), SID], 2, hop_names([(1, "New.Example")]))))]
    # HMAC.
    hm = header(flags=REQUIRE_HMAC, key_id=7)
    good = to_sid(hmac_srh(["fd00:3::1", SID], 1))
    yield hm, [pkt(good), pkt(to_sid(hmac_srh(["fd00:3::1", SID], 1, key=b"other"))),
               pkt(to_sid(hmac_srh(["fd00:3::1", SID], 1, key_id=8))),
               pkt(to_sid(srh(["fd00:3::1", SID], 1)))]
    tampered = bytearray(good)
    tampered[48 + 15] ^= 1
    yield hm, [pkt(bytes(tampered))]
    yield header(flags=REQUIRE_HMAC | SHA1_KEY, key_id=7), [
        pkt(to_sid(hmac_srh(["fd00:3::1", SID], 1, key=b"other", key_id=8, sha1=True)))]
    yield header(flags=REQUIRE_HMAC, max_segments=1), [pkt(to_sid(srh(["fd00:3::1", SID], 1)))]
    yield hm, [cache("yc", FD00_3_3), pkt(to_sid(hmac_srh([placeholder(0), SID], 1,
                                                          tlvs=hop_names([(0, "yc")]))))]
    yield hm, [pkt(to_sid(hmac_srh(["fd00:3::1", SID], 1), hop_limit=1)), pkt(packet(SID))]
    # UDP ingress: unwrapped, End; refused when lengths or addresses disagree.
    ui = header(udp_ingress=True)
    bare = to_sid(srh(["fd00:3::1", "fd00:2::1", SID], 2))
    spoofed = bytearray(in_udp(bare))
    spoofed[8] ^= 0x20
    yield ui, [pkt(in_udp(bare)), pkt(in_udp(bare, length=9)), pkt(bytes(spoofed)),
               pkt(in_udp(bare, port=53)), pkt(in_udp(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=1)))]
    yield ui, [pkt(in_udp(to_sid(srh([placeholder(0), SID], 1, hop_names([(0, "yc")]))))),
               answer(FD00_3_3)]
    yield header(udp_ingress=True, flags=NODE_HOP_LIMIT), [pkt(in_udp(bare), partial=True)]
    # Hop Limit as a node.
    yield header(flags=NODE_HOP_LIMIT), [pkt(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=h_))
                                         for h_ in (0, 1, 255)]
    # Bounded resolver queues: one name at a time, one packet per name.
    q = header(queue_per_name=1, pending_names=1)
    other = to_sid(srh([placeholder(0), SID], 1, hop_names([(0, "db")])))
    yield q, [pkt(late), rec(REPEAT), pkt(other), answer(FD00_3_3), pkt(other)]
    # Reconfiguration: HMAC switched on, ICMPv6 switched off, a small output buffer.
    yield h, [pkt(plain), rec(RECONF, header(flags=REQUIRE_HMAC)), pkt(plain), pkt(good),
              rec(RECONF, header(flags=ICMP_OFF)), pkt(to_sid(srh(["fd00:3::1", SID], 1), hop_limit=1))]
    yield header(flags=SMALL_OUT, out8=10), [pkt(nx), cache("yc", NXDOMAIN), pkt(nx)]


def wrapped(srh_bytes):
    """An SRH as the routing header of a packet to the border's SID."""
    payload = b"hello, hop"
    p = bytearray(packet(SID, None, payload=payload))
    body = srh_bytes + bytes(p[40:])
    p = p[:40] + body
    p[4:6] = struct.pack(">H", len(body))
    p[6] = 43
    return bytes(p)


def main():
    srhs_of_cases = []
    for h, records in border_cases():
        put("border", h + b"".join(records))
        for r in records:
            if r[0] in (PACKET, PARTIAL) and r[3 + 6] == 43:
                hel = r[3 + 41]
                srhs_of_cases.append(r[3 + 40:3 + 40 + (hel + 1) * 8])
    outside = encoder_seeds.golden_srhs() + encoder_seeds.hop_srhs()
    for s in outside:
        put("border", header() + pkt(wrapped(s)))
    for s in outside + srhs_of_cases:
        put("arrival", s)
    print("border:", len(WRITTEN["border"]), "arrival:", len(WRITTEN["arrival"]))


if __name__ == "__main__":
    main()
