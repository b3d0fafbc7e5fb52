//! The final hop's decode of the Routing header a connection or datagram arrived with, on
//! arbitrary bytes: `Arrival::decode` never panics, its error renders, and what it accepts
//! agrees with the SRH view; `path`, `answer_path` and `hop_index` never panic and agree with
//! each other and with the Segment List; the trace returned in a probe answer decodes (on the
//! client's side) to the trace the final hop read; and the probe answer the final hop builds
//! from the arrival encodes and parses back to itself.
#![no_main]

use hopstack_encoder::wire::report::{
    ProbeAnswer, ReportBody, ReportRepr, ResolvedBy, ServiceStatus,
};
use hopstack_encoder::wire::srh::Packet;
use hopstack_encoder::wire::tlv::{
    LayerDescriptor, TlvRepr, TYPE_HOP_NAMES, TYPE_LAYER_DESCRIPTOR, TYPE_TRACE,
};
use hopstack_forwarder::final_hop::Arrival;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let a = match Arrival::decode(data) {
        Ok(a) => a,
        Err(e) => {
            // The final hop logs and reports it ("SRH of a datagram: {e}").
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let view = Packet::new_checked(data).expect("an accepted header passes the view check");

    // The fields agree with the view.
    let n = a.segments.len();
    assert!(n >= 1, "Last Entry + 1 segments");
    assert_eq!(n, view.segment_count());
    assert!(a.segments.iter().copied().eq(view.segments()));
    assert_eq!(a.segments_left, view.segments_left());
    assert_eq!(a.oam, view.oam());
    let first = |t| {
        view.find_tlv(t)
            .map(|t| TlvRepr::parse(&t).expect("accepted TLV"))
    };
    match first(TYPE_LAYER_DESCRIPTOR) {
        Some(TlvRepr::LayerDescriptor(d)) => assert_eq!(a.descriptor.as_ref(), Some(&d)),
        None => assert_eq!(a.descriptor, None::<LayerDescriptor>),
        Some(other) => panic!("type 124 decoded as {other:?}"),
    }
    let names: Vec<_> = view
        .tlvs()
        .filter(|t| t.tlv_type == TYPE_HOP_NAMES)
        .flat_map(|t| match TlvRepr::parse(&t) {
            Ok(TlvRepr::HopNames(h)) => h.entries,
            other => panic!("type 125 decoded as {other:?}"),
        })
        .collect();
    assert_eq!(a.names, names);

    // path: the Segment List in travel order, this host last.
    let path = a.path();
    assert_eq!(path.len(), n);
    assert!(path.iter().eq(a.segments.iter().rev()));
    assert_eq!(path.last(), a.segments.first());

    // hop_index: this host's place on the path.
    let hop = a.hop_index();
    assert!(usize::from(hop) < path.len());
    assert_eq!(usize::from(hop), n - 1);

    // answer_path: one entry per hop, first hop first, each name resolved by an earlier hop.
    let answer = a.answer_path();
    assert_eq!(answer.len(), n);
    for (k, e) in answer.iter().enumerate() {
        assert_eq!(e.address, path[k]);
        let segment = n - 1 - k;
        let name = a.names.iter().find(|h| usize::from(h.index) == segment);
        assert_eq!(e.name, name.map_or("", |h| h.name.as_str()));
        match e.resolved_by {
            ResolvedBy::Client => assert!(name.is_none() || k == 0, "{e:?} at hop {k}"),
            ResolvedBy::Hop(h) => {
                assert!(name.is_some() && usize::from(h) < k, "{e:?} at hop {k}");
                assert_eq!(usize::from(h), (k - 1).min(254));
            }
        }
    }

    // The trace: decoded here, returned verbatim, decoded again by the client.
    assert_eq!(a.trace.is_some(), !a.trace_value.is_empty());
    assert_eq!(
        a.trace_value,
        view.find_tlv(TYPE_TRACE).map_or(&[][..], |t| t.value)
    );

    // The probe answer the final hop sends (final_hop::udp), whatever the service says.
    let repr = ReportRepr {
        nonce: a.trace.as_ref().map_or(0, |t| t.nonce),
        reporter: a.segments[0],
        body: ReportBody::Answer(ProbeAnswer {
            path: answer,
            status: ServiceStatus::Exists,
            mode: None,
            text: String::new(),
            trace: a.trace_value.clone(),
            direct_port: None,
        }),
    };
    let bytes = repr
        .to_vec()
        .unwrap_or_else(|e| panic!("the probe answer of an accepted arrival encodes: {e}"));
    let back = ReportRepr::parse_bytes(&bytes).expect("the probe answer parses");
    assert_eq!(back, repr);
    let ReportBody::Answer(answer) = back.body else {
        unreachable!("parsed back equal")
    };
    match (&a.trace, answer.decode_trace()) {
        (None, None) => {}
        (Some(t), Some(Ok(u))) => assert_eq!(*t, u),
        (t, u) => panic!("trace {t:?}, returned and decoded {u:?}"),
    }
});
