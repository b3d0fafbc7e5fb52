//! The Linux kernel as the independent peer for `wire::packet::build` and the checksum rule.
//!
//! In a fresh network namespace (owned by this test thread) a packet built by hopstack is
//! injected through a raw socket with `Segments Left = 1`. The kernel performs End
//! processing itself (`ipv6_srh_rcv`, net/ipv6/exthdrs.c), loops the packet back to the final
//! segment, and delivers the upper layer only if its checksum verifies — which the kernel
//! computes with the destination address *after* SRH processing, i.e. `Segment List[0]`.
//! So: our packet is delivered, a packet whose checksum used the in-flight destination is
//! counted as a checksum error, and so is one with a flipped octet.
//!
//! Needs CAP_SYS_ADMIN (unshare) and CAP_NET_RAW over the namespace: as root directly, as any
//! other user by re-running itself as root of a user namespace (`hopstack_testbed::userns`);
//! skips loudly when neither is possible.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::process::Command;
use std::time::Duration;

use hopstack_encoder::StackAddress;
use hopstack_encoder::encode::build_srh;
use hopstack_encoder::wire::checksum;
use hopstack_encoder::wire::packet::{Ipv6Fields, TcpSyn, Upper, build, locate_upper_layer};

const SENDER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const FINAL: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PORT: u16 = 7443;

fn sh(cmd: &str) -> std::process::Output {
    // Children forked from this thread inherit its network namespace.
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// Move this test's thread into a new network namespace; skips the test when not permitted.
fn enter_fresh_netns() {
    // SAFETY: unshare has no memory-safety preconditions; CLONE_NEWNET affects only the
    // calling thread, which is this test's own thread.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        hopstack_testbed::harness::skip(format!(
            "unshare(CLONE_NEWNET) failed ({}); run as root",
            std::io::Error::last_os_error()
        ));
    }
    for c in [
        "ip link set lo up",
        "ip -6 addr add fd00::1/128 dev lo nodad",
        "ip -6 addr add fd00::2/128 dev lo nodad",
        // The kernel drops every SRH packet unless seg6 is enabled on `all` and the ingress.
        "sysctl -qw net.ipv6.conf.all.seg6_enabled=1",
        "sysctl -qw net.ipv6.conf.lo.seg6_enabled=1",
    ] {
        let o = sh(c);
        assert!(
            o.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A counter from /proc/net/snmp{,6} as seen by a child in this namespace.
fn counter(file: &str, name: &str) -> u64 {
    let o = sh(&format!("cat /proc/net/{file}"));
    let text = String::from_utf8(o.stdout).unwrap();
    if file == "snmp6" {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            if it.next() == Some(name) {
                return it.next().unwrap().parse().unwrap();
            }
        }
    } else {
        // "Tcp: names..." followed by "Tcp: values...".
        let (proto, field) = name.split_once('.').unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{proto}:")))
            .collect();
        let names: Vec<&str> = lines[0].split_whitespace().collect();
        let values: Vec<&str> = lines[1].split_whitespace().collect();
        let i = names.iter().position(|n| *n == field).unwrap();
        return values[i].parse().unwrap();
    }
    panic!("{name} not in /proc/net/{file}")
}

fn raw_send(packet: &[u8]) {
    // SAFETY: plain socket(2) call; the returned descriptor is checked and closed below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // IPPROTO_RAW implies IPV6_HDRINCL on Linux: the packet goes out as built. The kernel
    // routes it by the sockaddr, which must equal the packet's destination address.
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).unwrap());
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = dst.octets();
    // SAFETY: buffer and sockaddr pointers are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd is a descriptor we own.
    unsafe { libc::close(fd) };
    assert_eq!(n, packet.len() as isize, "sendto: {err}");
}

fn srh() -> Vec<u8> {
    // Two literal hops: Segment List = [fd00::2, fd00::1], SL = 1, plus a layer descriptor
    // TLV — the kernel must accept our TLV area too.
    let addr = StackAddress::parse("[fd00::1]>[fd00::2]:udp+dns+resolver").unwrap();
    build_srh(&addr, &|_| None).unwrap().to_bytes().unwrap()
}

/// The packet `build` makes from SENDER with `srh` and `upper`.
fn built(srh: &[u8], upper: &Upper<'_>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = build(&mut buf, &Ipv6Fields::new(SENDER), srh, upper).unwrap();
    buf[..n].to_vec()
}

/// A UDP datagram from `src_port` to the final segment's PORT, built with `srh`.
fn built_udp(srh: &[u8], src_port: u16, payload: &[u8]) -> Vec<u8> {
    let udp = Upper::Udp {
        src_port,
        dst_port: PORT,
        payload,
    };
    built(srh, &udp)
}

fn set_checksum(packet: &mut [u8], value: u16) {
    let ul = locate_upper_layer(packet).unwrap();
    let at = ul.checksum_offset().unwrap();
    packet[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// The checksum computed (wrongly) with the IPv6 destination the packet leaves with.
fn checksum_with_inflight_da(packet: &[u8]) -> u16 {
    let ul = locate_upper_layer(packet).unwrap();
    let mut upper = packet[ul.offset..ul.end].to_vec();
    let at = ul.checksum_offset().unwrap() - ul.offset;
    upper[at..at + 2].fill(0);
    let da = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).unwrap());
    checksum::upper_layer(&ul.source, &da, ul.protocol, &upper)
}

fn kernel_delivers_our_udp_and_rejects_wrong_pseudo_header() {
    if hopstack_testbed::userns::rerun_in_userns() {
        return;
    }
    let handle = std::thread::spawn(|| {
        enter_fresh_netns();
        let sock = UdpSocket::bind(SocketAddrV6::new(FINAL, PORT, 0, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let srh = srh();
        let build_udp = |payload: &[u8]| built_udp(&srh, 40000, payload);
        let mut rx = [0u8; 100];

        // 1. As built: delivered after the kernel's own End processing.
        let good = build_udp(b"as built");
        assert_eq!(
            &good[24..40],
            &SENDER.octets(),
            "leaves towards the active segment"
        );
        raw_send(&good);
        let (n, from) = sock
            .recv_from(&mut rx)
            .expect("kernel delivered our datagram");
        assert_eq!(&rx[..n], b"as built");
        assert_eq!(from.port(), 40000);
        assert_eq!(counter("snmp6", "Udp6InCsumErrors"), 0);

        // 2. Checksum over the in-flight destination: the kernel counts a checksum error.
        let mut wrong = build_udp(b"in-flight DA");
        let c = checksum_with_inflight_da(&wrong);
        set_checksum(&mut wrong, c);
        raw_send(&wrong);
        assert!(sock.recv_from(&mut rx).is_err(), "must not be delivered");
        assert_eq!(counter("snmp6", "Udp6InCsumErrors"), 1);

        // 3. One flipped payload octet: also an error (the check above was not luck).
        let mut flipped = build_udp(b"flipped");
        let last = flipped.len() - 1;
        flipped[last] ^= 0x20;
        raw_send(&flipped);
        assert!(sock.recv_from(&mut rx).is_err());
        assert_eq!(counter("snmp6", "Udp6InCsumErrors"), 2);

        // 4. A hop rewrote Segment List[0] (placeholder -> address) and fixed the checksum
        // incrementally: delivered.
        let mut rebound = {
            let mut s = srh.clone();
            // Pretend the client sent a placeholder for the final hop.
            s[8..24].copy_from_slice(&hopstack_encoder::wire::tlv::placeholder(0).octets());
            built_udp(&s, 40001, b"rebound")
        };
        let ul = locate_upper_layer(&rebound).unwrap();
        let seg0 = ul.srh_offset.unwrap() + 8;
        let at = ul.checksum_offset().unwrap();
        let old_c = u16::from_be_bytes([rebound[at], rebound[at + 1]]);
        rebound[seg0..seg0 + 16].copy_from_slice(&FINAL.octets());
        let new_c = checksum::update_address_for_protocol(17, old_c, &ul.final_destination, &FINAL);
        rebound[at..at + 2].copy_from_slice(&new_c.to_be_bytes());
        raw_send(&rebound);
        let (n, from) = sock.recv_from(&mut rx).expect("rebound datagram delivered");
        assert_eq!(&rx[..n], b"rebound");
        assert_eq!(from.port(), 40001);
        assert_eq!(counter("snmp6", "Udp6InCsumErrors"), 2);
    });
    // A skip (or failure) on the namespace thread is the test's own.
    handle
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

fn kernel_accepts_our_tcp_syn() {
    if hopstack_testbed::userns::rerun_in_userns() {
        return;
    }
    let handle = std::thread::spawn(|| {
        enter_fresh_netns();
        let _listener = std::net::TcpListener::bind(SocketAddrV6::new(FINAL, PORT, 0, 0)).unwrap();
        let syn = built(
            &srh(),
            &Upper::TcpSyn(TcpSyn {
                src_port: 40002,
                dst_port: PORT,
                seq: 12345,
                window: 65535,
                mss: Some(1300),
            }),
        );
        let out_before = counter("snmp", "Tcp.OutSegs");
        raw_send(&syn);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(counter("snmp", "Tcp.InCsumErrors"), 0);
        // The listener answered with a SYN-ACK (to fd00::1:40002, which then resets it).
        assert!(
            counter("snmp", "Tcp.OutSegs") > out_before,
            "kernel sent no SYN-ACK"
        );

        let mut bad = syn.clone();
        let c = checksum_with_inflight_da(&bad);
        set_checksum(&mut bad, c);
        raw_send(&bad);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(counter("snmp", "Tcp.InCsumErrors"), 1);
    });
    // A skip (or failure) on the namespace thread is the test's own.
    handle
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

hopstack_testbed::tests! {
    kernel_delivers_our_udp_and_rejects_wrong_pseudo_header,
    kernel_accepts_our_tcp_syn,
}
