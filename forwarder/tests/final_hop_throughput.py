#!/usr/bin/env python3
# Throughput of hopd's proxy mode against a direct connection, 1 GiB each (not a cargo test:
# the figure goes to docs/services.md). Python client and sink, so the endpoints rather than
# hopd (splice) are the limit; both runs pay the same endpoint cost. Run as root:
#
#   cat > /tmp/tp.toml <<'T'
#   [final_hop]
#   listen = "[::]:7443"
#   control_socket = "/tmp/tp.sock"
#   [final_hop.services.sink]
#   mode = "proxy"
#   target = "tcp:[::1]:9000"
#   layers = ["tcp"]
#   T
#   unshare -n sh -c 'ip link set lo up mtu 9000
#     sysctl -qw net.ipv6.conf.all.seg6_enabled=1 net.ipv6.conf.lo.seg6_enabled=1
#     python3 forwarder/tests/final_hop_throughput.py direct
#     target/debug/hopd --config /tmp/tp.toml & sleep 0.5
#     python3 forwarder/tests/final_hop_throughput.py hopd; kill %1'
#
# In "hopd" mode the client attaches an SRH (one segment ::1, layer descriptor tcp+sink)
# built here by hand, so this script also checks the TLV 124 layout independently of Rust.
import socket, threading, time, sys

N = 1 << 30
via = sys.argv[1] == "hopd"
# SRH: 1 segment ::1, SL 0, descriptor TLV 124: v1, flags 0, count 1, tcp(1), len 4, "sink" -> 11 octets; PadN to the 8-octet unit
tlv = bytes([124, 9, 1, 0, 1, 1, 4]) + b"sink"
body = bytes([0, 0, 4, 0, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, "::1") + tlv
pad = (-len(body)) % 8
if pad: body += bytes([4, pad - 2]) + bytes(pad - 2)
body = bytes([0, len(body) // 8 - 1]) + body[2:]
l = socket.socket(socket.AF_INET6); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("::1", 9000)); l.listen(1)
got = [0]
def srv():
    c, _ = l.accept()
    buf = bytearray(1 << 20)
    while True:
        k = c.recv_into(buf)
        if k == 0: break
        got[0] += k
    c.close()
t = threading.Thread(target=srv); t.start()
c = socket.socket(socket.AF_INET6)
if via: c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RTHDR, body)
c.connect(("::1", 7443 if via else 9000))
buf = b"x" * (1 << 20)
t0 = time.time()
for i in range(N >> 20): c.sendall(buf)
c.shutdown(socket.SHUT_WR); t.join(); dt = time.time() - t0
print("%s: %d octets in %.2f s = %.0f MiB/s" % (sys.argv[1], got[0], dt, got[0] / dt / 2**20))
