use super::cache::{CacheFile, one_entry, read_small};
use super::*;
use hopstack_encoder::wire::tlv::{TraceRecord, TraceStatus};

fn hop(name: &str, a: &str, r: Resolver) -> PathHop {
    PathHop {
        name: name.into(),
        address: a.parse().unwrap(),
        resolved_by: r,
        kernel_end_sid: None,
        direct_ports: BTreeMap::new(),
        udp_ingress: None,
    }
}

/// Until 2026-12-05 the cache was written with the umask's mode (0644: other users read
/// which paths you use) and read whatever stood at its name: a FIFO there hung `hop`.
#[test]
fn the_cache_file_is_private_and_only_a_regular_file_is_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("paths.json");
    let hops = vec![hop("github.com", "fd00:1::2", Resolver::ClientDns)];
    PathCache::open(&f)
        .put("github.com", &hops, 160, 100)
        .unwrap();
    let mode = std::fs::metadata(&f).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    std::fs::remove_file(&f).unwrap();
    let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(PathCache::open(&f).get("github.com", 100)).unwrap());
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(2)),
        Ok(None),
        "a FIFO in the cache's place is a miss at once"
    );
}

#[test]
fn cache_round_trip_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sub/paths.json");
    let hops = vec![
        hop("github.com", "fd00:1::2", Resolver::ClientDns),
        hop("org", "fd00:2::2", Resolver::Hop(0)),
    ];
    let mut c = PathCache::open(&f);
    assert!(c.get("github.com>org", 100).is_none());
    c.put("github.com>org", &hops, 160, 100).unwrap();
    let c = PathCache::open(&f);
    assert_eq!(c.get("github.com>org", 159), Some((hops.clone(), 160)));
    assert_eq!(
        c.get("github.com>org", 160),
        None,
        "expired at its expiry second"
    );
    // A corrupt file is an empty cache, not an error.
    std::fs::write(&f, b"{not json").unwrap();
    assert!(PathCache::open(&f).get("github.com>org", 0).is_none());
}

fn rec(segment_index: u8, status: TraceStatus, end_function: u16) -> TraceRecord {
    TraceRecord {
        segment_index,
        status,
        end_function,
        timestamp_us: 7,
        node_id: 9,
    }
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn records_map_to_hops_by_segment_index() {
    let at = [ip("fc00:1::e"), ip("fc00:2::e"), ip("fd00:3::2")];
    // In arrival order the final hop's record comes last, but order must not matter;
    // index 2 = first hop (Segments Left 2 when it got the packet).
    let records = [
        rec(0, TraceStatus::Delivered, 0x99),
        rec(1, TraceStatus::Bound, 0xef),
        TraceRecord::EMPTY,
        rec(2, TraceStatus::Forwarded, 0xee),
    ];
    assert_eq!(
        kernel_end_sids(&at, &records),
        vec![Some(ip("fc00:1::ee")), Some(ip("fc00:2::ef")), None],
        "the final hop never gets one, even if its record has a function"
    );
    // End Function 0 (what hopd writes until configured) and missing or empty records
    // (a plain kernel End node writes none) give no SID.
    let records = [rec(2, TraceStatus::Forwarded, 0), TraceRecord::EMPTY];
    assert_eq!(kernel_end_sids(&at, &records), vec![None, None, None]);
    // An empty record claiming index 1 is not hop 2's.
    let empty_at_1 = TraceRecord {
        end_function: 0xef,
        ..rec(1, TraceStatus::Empty, 0)
    };
    assert_eq!(kernel_end_sids(&at, &[empty_at_1]), vec![None, None, None]);
    assert_eq!(kernel_end_sids(&[], &[]), Vec::<Option<Ipv6Addr>>::new());
    // A one-hop path: the only hop is the final one.
    assert_eq!(
        kernel_end_sids(&at[..1], &[rec(0, TraceStatus::Delivered, 0xee)]),
        vec![None]
    );
}

proptest::proptest! {
    /// Whatever the records say: one entry per hop, none for the final hop, and every
    /// SID shares its hop's first 112 bits and carries the function of the record at the
    /// hop's Segment Index (the first non-empty one there).
    #[test]
    fn kernel_end_sids_keep_the_hops_112_bits(
        addrs in proptest::collection::vec(proptest::prelude::any::<u128>(), 0..8),
        recs in proptest::collection::vec(
            (0u8..10, 0u8..5, proptest::prelude::any::<u16>()), 0..12),
    ) {
        let at: Vec<Ipv6Addr> = addrs.iter().map(|a| Ipv6Addr::from(*a)).collect();
        let records: Vec<TraceRecord> = recs
            .iter()
            .map(|&(i, st, f)| rec(i, TraceStatus::from_code(st), f))
            .collect();
        let sids = kernel_end_sids(&at, &records);
        proptest::prop_assert_eq!(sids.len(), at.len());
        if let Some(last) = sids.last() {
            proptest::prop_assert!(last.is_none());
        }
        let n = at.len();
        for (i, sid) in sids.iter().enumerate() {
            let want = records
                .iter()
                .find(|r| usize::from(r.segment_index) == n - 1 - i
                    && r.status != TraceStatus::Empty)
                .map(|r| r.end_function)
                .filter(|&f| f != 0 && i + 1 < n);
            match (sid, want) {
                (None, None) => {}
                (Some(s), Some(f)) => {
                    proptest::prop_assert_eq!(u128::from(*s) >> 16, u128::from(at[i]) >> 16);
                    proptest::prop_assert_eq!(s.segments()[7], f);
                }
                (s, f) => proptest::prop_assert!(false, "hop {}: {:?} vs function {:?}", i, s, f),
            }
        }
    }
}

fn fast_path_fixture() -> (StackAddress, ResolvedPath) {
    let a = StackAddress::parse("github.com>org>yc:tcp+http+web/x").unwrap();
    let mut hops = vec![
        hop("github.com", "fc00:1::e", Resolver::ClientDns),
        hop("org", "fc00:2::e", Resolver::Hop(0)),
        hop("yc", "fd00:3::2", Resolver::Hop(1)),
    ];
    hops[0].kernel_end_sid = Some(ip("fc00:1::ee"));
    hops[1].kernel_end_sid = Some(ip("fc00:2::ef"));
    // Even if a final hop's SID got into a cache file, it must not be used.
    hops[2].kernel_end_sid = Some(ip("fd00:3::ff"));
    let p = ResolvedPath {
        hops,
        expires: 0,
        source: PathSource::Cache,
        probe: None,
        fast_path: true,
        direct_port: None,
    };
    (a, p)
}

#[test]
fn direct_port_is_used_on_the_fast_path_unless_port_is_explicit() {
    let (a, mut p) = fast_path_fixture();
    assert_eq!(p.connect_port(7443, false), (7443, false));
    p.direct_port = Some(8080);
    p.hops[2].direct_ports.insert(direct_port_key(&a), 8080);
    assert_eq!(p.connect_port(7443, false), (8080, true));
    assert_eq!(p.connect_port(9000, true), (9000, false), "--port wins");
    p.fast_path = false;
    assert_eq!(p.connect_port(7443, false), (7443, false), "--no-fast-path");
    p.fast_path = true;
    p.hops[2].direct_ports.insert("tcp+http/other".into(), 9090);
    p.forget_direct_port(&a);
    assert_eq!(p.connect_port(7443, false), (7443, false));
    assert_eq!(
        p.hops[2].direct_ports.iter().collect::<Vec<_>>(),
        vec![(&"tcp+http/other".to_owned(), &9090)],
        "other services' ports stay"
    );
}

#[test]
fn direct_port_key_names_layers_and_service() {
    let a = StackAddress::parse("a>b:tcp+tls+http+restapiv3/users").unwrap();
    assert_eq!(direct_port_key(&a), "tcp+tls+http/restapiv3");
}

#[test]
fn request_srh_lists_kernel_end_sids_unless_told_not_to() {
    let (a, mut p) = fast_path_fixture();
    let bytes = p.srh(&a).unwrap().to_bytes().unwrap();
    // Segment List[0] at octet 8 (the final hop), [1] at 24, [2] at 40: RFC 8754 order.
    let seg = |b: &[u8], i: usize| {
        Ipv6Addr::from(<[u8; 16]>::try_from(&b[8 + 16 * i..24 + 16 * i]).unwrap())
    };
    assert_eq!(
        [seg(&bytes, 0), seg(&bytes, 1), seg(&bytes, 2)],
        [ip("fd00:3::2"), ip("fc00:2::ef"), ip("fc00:1::ee")]
    );
    assert_eq!(bytes[3], 2, "Segments Left");
    assert!(p.uses_fast_path());
    assert_eq!(p.segment(0), (ip("fc00:1::ee"), true));
    assert_eq!(p.segment(2), (ip("fd00:3::2"), false));
    assert_eq!(p.final_address(), ip("fd00:3::2"));
    assert_eq!(p.first_address(), ip("fc00:1::e"), "the hop, not its SID");

    // --no-fast-path: hopd's own SIDs, byte for byte what a path without SIDs gives.
    p.fast_path = false;
    let off = p.srh(&a).unwrap().to_bytes().unwrap();
    assert_eq!(
        [seg(&off, 0), seg(&off, 1), seg(&off, 2)],
        [ip("fd00:3::2"), ip("fc00:2::e"), ip("fc00:1::e")]
    );
    assert!(!p.uses_fast_path());
    let mut plain = p.clone();
    plain.fast_path = true;
    for h in &mut plain.hops {
        h.kernel_end_sid = None;
    }
    assert_eq!(plain.srh(&a).unwrap().to_bytes().unwrap(), off);
    assert!(!plain.uses_fast_path());
    // Apart from the segments, the two SRHs are the same (descriptor and all).
    assert_eq!(bytes.len(), off.len());
    assert_eq!(bytes[..8], off[..8]);
    assert_eq!(bytes[56..], off[56..]);
}

#[test]
fn hop_timings_say_where_each_hop_was_reached() {
    let (_, mut p) = fast_path_fixture();
    let t = p.hop_timings();
    assert_eq!((t[0].segment, t[0].fast_path), (ip("fc00:1::ee"), true));
    assert_eq!((t[1].segment, t[1].fast_path), (ip("fc00:2::ef"), true));
    assert_eq!((t[2].segment, t[2].fast_path), (ip("fd00:3::2"), false));
    assert_eq!(t[0].address, ip("fc00:1::e"));
    let mut timings = super::super::timing::Timings::start();
    timings.hops = t;
    let v: serde_json::Value = serde_json::from_str(&timings.to_json()).unwrap();
    assert_eq!(v["hops"][0]["segment"], "fc00:1::ee");
    assert_eq!(v["hops"][0]["fast_path"], true);
    assert_eq!(v["hops"][2]["fast_path"], false);
    let r = timings.render();
    assert!(r.contains("reached at fc00:1::ee (kernel End)"), "{r}");
    assert_eq!(r.matches("(kernel End)").count(), 2, "{r}");
    p.fast_path = false;
    let t = p.hop_timings();
    assert!(t.iter().all(|h| !h.fast_path && h.segment == h.address));
}

#[test]
fn cache_file_with_and_without_kernel_end_sids() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("paths.json");
    // A file as written before the field existed still loads; its hops have no SID.
    std::fs::write(
        &f,
        br#"{"version":1,"paths":{"github.com>org":{"hops":[
            {"name":"github.com","address":"fc00:1::e","resolved_by":"client-dns"},
            {"name":"org","address":"fd00:2::2","resolved_by":{"hop":0}}],
            "expires":500}}}"#,
    )
    .unwrap();
    let c = PathCache::open(&f);
    let (hops, _) = c.get("github.com>org", 100).expect("old file loads");
    assert_eq!(hops[0], hop("github.com", "fc00:1::e", Resolver::ClientDns));
    assert_eq!(hops[1], hop("org", "fd00:2::2", Resolver::Hop(0)));

    // With a SID: stored, reloaded; hops without one write no field at all.
    let mut hops = hops;
    hops[0].kernel_end_sid = Some(ip("fc00:1::ee"));
    let mut c = PathCache::open(&f);
    c.put("github.com>org", &hops, 600, 100).unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    assert_eq!(text.matches("kernel_end_sid").count(), 1, "{text}");
    assert!(text.contains(r#""kernel_end_sid":"fc00:1::ee""#), "{text}");
    assert_eq!(
        PathCache::open(&f).get("github.com>org", 100),
        Some((hops.clone(), 600))
    );

    // Direct ports: on the final hop, by layers/service; the old file had none.
    assert!(hops[1].direct_ports.is_empty());
    hops[1].direct_ports.insert("tcp+http/web".into(), 8080);
    let mut c = PathCache::open(&f);
    c.put("github.com>org", &hops, 600, 100).unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    assert_eq!(text.matches("direct_ports").count(), 1, "{text}");
    assert!(
        text.contains(r#""direct_ports":{"tcp+http/web":8080}"#),
        "{text}"
    );
    assert_eq!(
        PathCache::open(&f).get("github.com>org", 100),
        Some((hops, 600))
    );
}

#[test]
fn lazy_cache_reads_one_entry_and_keeps_the_others_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("paths.json");
    let mut c = PathCache::open(&f);
    for i in 0..20u16 {
        let mut h = hop(&format!("h{i}"), "fd00::1", Resolver::ClientDns);
        h.address = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i);
        c.put(&format!("h{i}>x"), &[h], 1000 + u64::from(i), 10)
            .unwrap();
    }
    let full: CacheFile = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let raw = std::fs::read(&f).unwrap();
    for (k, e) in &full.paths {
        let one = one_entry(&raw, k).unwrap();
        assert_eq!((&one.hops, one.expires), (&e.hops, e.expires), "{k}");
    }
    assert!(one_entry(&raw, "absent").is_none());
    // Another version, a truncated file, trailing junk: no entry (never a panic).
    let v2 = String::from_utf8(raw.clone())
        .unwrap()
        .replace(r#""version":1"#, r#""version":2"#);
    assert!(one_entry(v2.as_bytes(), "h3>x").is_none());
    for cut in [1, raw.len() / 2, raw.len() - 1] {
        assert!(one_entry(&raw[..cut], "h3>x").is_none(), "cut at {cut}");
    }
    let mut junk = raw.clone();
    junk.extend_from_slice(b" {");
    assert!(one_entry(&junk, "h3>x").is_none());

    // A fresh handle reads one entry lazily, then a put keeps all 20 others.
    let mut c = PathCache::open(&f);
    assert_eq!(c.get("h3>x", 10).unwrap().1, 1003);
    c.put(
        "new>y",
        &[hop("new", "fd00::9", Resolver::ClientDns)],
        2000,
        10,
    )
    .unwrap();
    let c = PathCache::open(&f);
    for i in 0..20u16 {
        assert!(c.get(&format!("h{i}>x"), 10).is_some(), "h{i} lost");
    }
    assert_eq!(c.get("new>y", 10).unwrap().1, 2000);
}

#[test]
fn small_read_takes_whole_files_of_any_size() {
    let dir = tempfile::tempdir().unwrap();
    // Empty, short, exactly the first buffer, just over it, several times over it.
    for len in [0usize, 364, 16 * 1024, 16 * 1024 + 1, 100_000] {
        let f = dir.path().join(format!("f{len}"));
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &bytes).unwrap();
        let (got, _handle) = read_small(&f).unwrap();
        assert_eq!(got.len(), len);
        assert!(got == bytes, "content of a {len}-byte file");
    }
    assert!(read_small(&dir.path().join("absent")).is_err());
}

#[test]
fn key_is_the_hops_part() {
    let a = StackAddress::parse("github.com>[fd00::1]>yc:tcp+http+web/x").unwrap();
    assert_eq!(cache_key(&a), "github.com>[fd00::1]>yc");
}

#[test]
fn srh_of_a_resolved_path_has_every_segment_and_no_names() {
    let a = StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3").unwrap();
    let p = ResolvedPath {
        hops: vec![
            hop("github.com", "fd00:1::2", Resolver::ClientDns),
            hop("org", "fd00:2::2", Resolver::Hop(0)),
            hop("yc", "fd00:3::2", Resolver::Hop(1)),
        ],
        expires: 0,
        source: PathSource::Probe,
        probe: None,
        fast_path: true,
        direct_port: None,
    };
    let s = p.srh(&a).unwrap();
    let want: Vec<Ipv6Addr> = ["fd00:3::2", "fd00:2::2", "fd00:1::2"]
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(s.segments, want);
    assert_eq!(s.segments_left, 2);
    assert!(s.hop_name(0).is_none() && s.hop_name(1).is_none());
    assert_eq!(s.layer_descriptor().unwrap().service, "restapiv3");
    assert_eq!(p.final_address(), want[0]);
    let names = vec!["github.com".into(), "org".into(), "yc".into()];
    assert_eq!(Resolver::Hop(1).describe(&names), "hop 2 'org'");
}
