//! Speed of the border decision function `hopstack_forwarder::border::process`: one IPv6
//! packet in, rewritten in place (or an ICMPv6 error built), no I/O.
//!
//! Run with `cargo bench -p hopstack-benches --bench forwarder`.
//!
//! `process` rewrites the packet in place, so each packet is restored from a template before
//! it is processed again. The restoring is not timed: packets are processed in batches of
//! [`BATCH`], as the shell drains a TUN queue, and each batch is restored between the timed
//! runs. Restoring right before each call would time the copy too, and worse, make `process`
//! read its destination address while the copy's stores are still in flight (a
//! store-forwarding stall no packet read from a TUN device sees: a system call lies between
//! the kernel's copy and `process`); `copy_then_process` keeps that variant for comparison.

use std::hint::black_box;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hopstack_encoder::wire::packet::{Ipv6Fields, Upper, build};
use hopstack_encoder::wire::srh::{FLAG_O, Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{self, HopName, HopNames, TlvRepr, Trace};
use hopstack_forwarder::border::process::{Binding, OUT_BUF_LEN, Settings, State};
use hopstack_forwarder::border::{Action, process};

const SID: &str = "fd00:1::1";
const NOW: Duration = Duration::from_secs(1_700_000_000);
/// Packets per timed run: a typical drain of a TUN queue, and small enough (64 × 1,1 KiB)
/// to stay in the L2 cache.
const BATCH: usize = 64;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn packet(segments: Vec<Ipv6Addr>, flags: u8, tlvs: Vec<TlvRepr>, payload: usize) -> Vec<u8> {
    let repr = SrhRepr {
        next_header: 17,
        segments_left: (segments.len() - 1) as u8,
        flags,
        tag: 0,
        segments,
        tlvs,
    };
    let mut srh = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut srh[..])).unwrap();
    let body = vec![0x5a; payload];
    let mut buf = vec![0u8; 9000];
    let n = build(
        &mut buf,
        &Ipv6Fields::new(a("2001:db8::100")),
        &srh,
        &Upper::Udp {
            src_port: 40000,
            dst_port: 7443,
            payload: &body,
        },
    )
    .unwrap();
    buf.truncate(n);
    buf
}

/// `inner` carried in UDP to `port` (docs/wire-format.md, "UDP encapsulation").
fn in_udp(inner: &[u8], port: u16) -> Vec<u8> {
    let len = (8 + inner.len()) as u16;
    let mut p = inner[..40].to_vec();
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p[6] = 17;
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(inner);
    p
}

fn state() -> State {
    let mut st = State::new(
        Settings {
            sids: vec![SID.parse().unwrap()],
            icmp_rate: u32::MAX,
            icmp_burst: u32::MAX,
            ..Settings::default()
        },
        NOW,
    );
    // As a border facing strangers is configured: the prefixes behind it, each written
    // segment checked against them.
    let mut settings = st.settings().clone();
    settings.policy.allowed_next_hops = vec![
        "fd00:2::/64".parse().unwrap(),
        "fd00:3::/64".parse().unwrap(),
    ];
    st.reconfigure(settings, NOW);
    st.cache.insert(
        b"yc",
        Binding::Addr(a("fd00:3::2")),
        Duration::from_secs(1 << 30),
        NOW,
    );
    st
}

fn bench_process(c: &mut Criterion) {
    let three = vec![a("fd00:3::2"), a("fd00:2::1"), a(SID)];
    let cases = [
        // The typical packet: 3 segments, 1000-octet UDP payload, plain End.
        (
            "end_3seg_udp1000",
            packet(three.clone(), 0, vec![], 1000),
            true,
        ),
        // A probe: O-flag, trace TLV with 4 records, this hop fills one.
        (
            "end_probe_trace",
            packet(
                three.clone(),
                FLAG_O,
                vec![TlvRepr::Trace(Trace::new(a("2001:db8::100"), 49152, 7, 4))],
                64,
            ),
            true,
        ),
        // Late binding from the cache: Segment List[0] is a placeholder named `yc`, so the
        // address is written and the UDP checksum fixed incrementally.
        (
            "end_bind_cached_final",
            packet(
                vec![tlv::placeholder(0), a(SID)],
                0,
                HopNames::split(&[HopName {
                    index: 0,
                    name: "yc".into(),
                }]),
                1000,
            ),
            true,
        ),
        // Error path: Segments Left > Last Entry + 1, a full ICMPv6 error built.
        (
            "icmp_param_problem",
            {
                let mut p = packet(three.clone(), 0, vec![], 1000);
                p[43] = 7;
                p
            },
            false,
        ),
    ];
    let mut group = c.benchmark_group("border_process");
    group.throughput(Throughput::Elements(1));
    for (name, template, forwards) in cases {
        let mut st = state();
        let mut out = vec![0u8; OUT_BUF_LEN];
        let mut pkt = template.clone();
        let act = process(NOW, &mut pkt, &mut st, &mut out);
        assert_eq!(
            matches!(act, Action::Forward { .. }),
            forwards,
            "{name}: unexpected {act:?}"
        );
        let head = template.len().min(256);
        batch_bench(&mut group, name, &template, &mut st, &mut out);
        if name == "end_3seg_udp1000" {
            group.bench_function("copy_then_process", |b| {
                b.iter(|| {
                    pkt[..head].copy_from_slice(&template[..head]);
                    black_box(process(NOW, black_box(&mut pkt), &mut st, &mut out))
                })
            });
            // With `udp_ingress` set: the same bare packet (what every packet pays for the
            // check), and the packet carried in UDP (unwrapped, then End).
            let mut ingress = state();
            let mut settings = ingress.settings().clone();
            settings.udp_ingress_port = Some(7444);
            ingress.reconfigure(settings, NOW);
            let carried = in_udp(&template, 7444);
            for (case, packet) in [
                ("end_3seg_udp1000_ingress_on", template.clone()),
                ("end_3seg_udp1000_in_udp", carried),
            ] {
                let act = process(NOW, &mut packet.clone(), &mut ingress, &mut out);
                assert!(matches!(act, Action::Forward { .. }), "{case}: {act:?}");
                batch_bench(&mut group, case, &packet, &mut ingress, &mut out);
            }
        }
    }
    group.finish();
}

/// `process` over batches of fresh copies of `template` (its first 256 octets restored
/// before each batch, outside the timing: End rewrites only headers).
fn batch_bench(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    template: &[u8],
    st: &mut State,
    out: &mut [u8],
) {
    let head = template.len().min(256);
    let mut batch = vec![template.to_vec(); BATCH];
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                for p in &mut batch[..n] {
                    p[..head].copy_from_slice(&template[..head]);
                }
                let start = Instant::now();
                for p in &mut batch[..n] {
                    black_box(process(NOW, black_box(&mut p[..]), st, out));
                }
                timed += start.elapsed();
                left -= n as u64;
            }
            timed
        })
    });
}

criterion_group!(benches, bench_process);
criterion_main!(benches);
