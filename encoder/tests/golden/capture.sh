#!/usr/bin/env bash
# Regenerates the kernel-produced SRH golden files in this directory.
#
# Needs root (network namespaces), iproute2 with `ip sr`, tcpdump and python3. Builds a
# throwaway pair of namespaces joined by a veth, installs Linux seg6 routes in the sender
# namespace, sends one packet per case, captures it with tcpdump on the sender's side and
# writes the IPv6 source address and the SRH octets to <case>.hex. Everything is torn down
# on exit. Traffic stays inside the two namespaces.
#
#   sudo encoder/tests/golden/capture.sh            # writes encoder/tests/golden/*.hex
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
A="hsgold-a-$$"
B="hsgold-b-$$"
tmp="$(mktemp -d)"
cleanup() {
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip -n "$A" link set veth-a up
ip -n "$B" link set veth-b up
ip -n "$A" -6 addr add fc00:12::1/64 dev veth-a nodad
ip -n "$B" -6 addr add fc00:12::2/64 dev veth-b nodad
# Fixed tunnel source so encap-mode HMACs are reproducible.
ip -n "$A" sr tunsrc set fc00:12::1
# `ip sr hmac set` reads the secret with getpass(3), which falls back to stdin without a tty.
printf 'hopstack-golden-key-sha256\n' | ip -n "$A" sr hmac set 1 sha256 >/dev/null 2>&1
printf 'hopstack-golden-key-sha1\n' | ip -n "$A" sr hmac set 7 sha1 >/dev/null 2>&1
ip -n "$A" sr hmac show >"$tmp/hmac.txt"

# capture NAME DESCRIPTION ROUTE-ARGS... -- SEND-COMMAND...
capture() {
    local name="$1" desc="$2"
    shift 2
    local route=()
    while [ "$1" != "--" ]; do
        route+=("$1")
        shift
    done
    shift
    ip -n "$A" -6 route replace "${route[@]}"
    # First packet whose IPv6 Next Header is Routing (43).
    ip netns exec "$A" timeout 5 tcpdump -i veth-a -U -c 1 -w "$tmp/$name.pcap" 'ip6[6] == 43' \
        >/dev/null 2>&1 &
    local tpid=$!
    sleep 1
    ip netns exec "$A" "$@" >/dev/null 2>&1 || true
    wait "$tpid" || true
    python3 - "$tmp/$name.pcap" "$here/$name.hex" "$desc" "${route[*]}" "$*" <<'EOF'
import ipaddress, struct, sys
pcap, out, desc, route, send = sys.argv[1:6]
data = open(pcap, "rb").read()
# pcap: 24-octet global header, then 16-octet record header per packet (Ethernet link type).
incl = struct.unpack("<I", data[24 + 8:24 + 12])[0]
frame = data[24 + 16:24 + 16 + incl]
ip6 = frame[14:]
assert ip6[0] >> 4 == 6 and ip6[6] == 43, "not IPv6 with a routing header"
src = ipaddress.IPv6Address(ip6[8:24])
dst = ipaddress.IPv6Address(ip6[24:40])
srh = ip6[40:40 + (ip6[41] + 1) * 8]
with open(out, "w") as f:
    f.write(f"# {desc}\n")
    f.write(f"# Produced by the Linux kernel (encoder/tests/golden/capture.sh):\n")
    f.write(f"#   ip -6 route replace {route}\n")
    f.write(f"#   then: {send}\n")
    f.write(f"# captured on the sender's veth with tcpdump; IPv6 destination was {dst}\n")
    f.write(f"src {src}\n")
    f.write(f"dst {dst}\n")
    f.write(f"srh {srh.hex()}\n")
print(out, len(srh), "octets")
EOF
}

# ICMPv6 echo request through a raw socket (the kernel fills in the checksum); no ping needed.
ping_send='import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6); s.sendto(bytes([128,0,0,0,0x12,0x34,0,1])+b"hopstack", ("fc00:99::1", 0))'
udp_send='import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.sendto(b"hopstack", ("fc00:99::1", 4242))'

capture inline-icmp "inline mode, 3 segments, ICMPv6 echo request" \
    fc00:99::1/128 encap seg6 mode inline segs fc00:12::2,fc00:20::2,fc00:30::3 dev veth-a -- \
    python3 -c "$ping_send"
capture inline-udp "inline mode, 2 segments, UDP" \
    fc00:99::1/128 encap seg6 mode inline segs fc00:12::2,fc00:20::2 dev veth-a -- \
    python3 -c "$udp_send"
capture encap-icmp "encap mode, 3 segments, inner IPv6 ICMPv6 echo request" \
    fc00:99::1/128 encap seg6 mode encap segs fc00:12::2,fc00:20::2,fc00:30::3 dev veth-a -- \
    python3 -c "$ping_send"
capture encap-hmac-sha256 "encap mode, 3 segments, HMAC key id 1 sha256 secret 'hopstack-golden-key-sha256'" \
    fc00:99::1/128 encap seg6 mode encap segs fc00:12::2,fc00:20::2,fc00:30::3 hmac 1 dev veth-a -- \
    python3 -c "$ping_send"
capture inline-hmac-sha1 "inline mode, 2 segments, UDP, HMAC key id 7 sha1 secret 'hopstack-golden-key-sha1'" \
    fc00:99::1/128 encap seg6 mode inline segs fc00:12::2,fc00:20::2 hmac 7 dev veth-a -- \
    python3 -c "$udp_send"
capture encap-hmac-sha1-1seg "encap mode, 1 segment, HMAC key id 7 sha1 secret 'hopstack-golden-key-sha1'" \
    fc00:99::1/128 encap seg6 mode encap segs fc00:12::2 hmac 7 dev veth-a -- \
    python3 -c "$ping_send"

echo "HMAC keys in $A:"
cat "$tmp/hmac.txt"
