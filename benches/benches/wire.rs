//! Speed of the wire core: parse a stack address, emit an SRH, parse and validate an SRH.
//!
//! Run with `cargo bench -p hopstack-benches --bench wire`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hopstack_benches::{EIGHT_HOP_LITERALS, THREE_HOP, example_srhs};
use hopstack_encoder::address::StackAddress;
use hopstack_encoder::wire::srh::{Packet, SrhRepr};

fn parse_stack_address(c: &mut Criterion) {
    let mut group = c.benchmark_group("stack_address_parse");
    for (name, input) in [
        ("three_hop", THREE_HOP),
        ("eight_hop_literals", EIGHT_HOP_LITERALS),
    ] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| StackAddress::parse(black_box(input)).expect("valid"))
        });
    }
    group.finish();
}

fn emit_srh(c: &mut Criterion) {
    let mut group = c.benchmark_group("srh_emit");
    for (name, repr) in example_srhs() {
        let mut buf = vec![0u8; repr.buffer_len()];
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut packet = Packet::new_unchecked(&mut buf[..]);
                black_box(&repr).emit(&mut packet).expect("fits");
            })
        });
    }
    group.finish();
}

fn parse_and_validate_srh(c: &mut Criterion) {
    let mut group = c.benchmark_group("srh_parse_validate");
    for (name, repr) in example_srhs() {
        let bytes = repr.to_bytes().expect("emits");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        // The zero-copy view alone: what a forwarder does per packet.
        group.bench_function(format!("{name}/view"), |b| {
            b.iter(|| {
                let packet = Packet::new_checked(black_box(&bytes[..])).expect("valid");
                black_box(packet.active_segment())
            })
        });
        // The owned representation: what the final hop and the client do.
        group.bench_function(format!("{name}/repr"), |b| {
            b.iter(|| {
                let packet = Packet::new_checked(black_box(&bytes[..])).expect("valid");
                let repr = SrhRepr::parse(&packet).expect("valid");
                repr.validate().expect("valid");
                repr
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    parse_stack_address,
    emit_srh,
    parse_and_validate_srh
);
criterion_main!(benches);
