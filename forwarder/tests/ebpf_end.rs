//! hopd's in-kernel End (`border::bpf`) against hopd's own decision function: the kernel runs
//! the program on crafted frames (`BPF_PROG_TEST_RUN`, no network needed), and `process` is
//! the oracle. Whatever the program rewrites, `process` must forward with the very same bytes
//! (the Hop Limit as the kernel's forwarding then leaves it); what it leaves alone goes to hopd
//! through the TUN, which is always correct. Named cases check both directions; a
//! differential run over mutated frames checks the first.
//!
//! Needs root of the initial user namespace (loading an eBPF program).

mod border_support;

use std::net::Ipv6Addr;
use std::time::Duration;

use border_support::udp_with_srh;

use hopstack_encoder::wire::srh::{FLAG_O, SrhRepr};
use hopstack_encoder::wire::tlv::{self, HopName, HopNames, LayerDescriptor, TlvRepr};
use hopstack_forwarder::border::bpf::Program;
use hopstack_forwarder::border::process::{Action, OUT_BUF_LEN, State, process};
use hopstack_forwarder::border::{Config, HopLimitMode};

const SID: &str = "fd00:1::1";
const NEXT: &str = "fd00:2::1";
const FINAL: &str = "fd00:3::2";
const TCX_NEXT: i32 = -1;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Where the test border forwards to: every address the frames below list, in prefixes of
/// several lengths (the program matches them as hopd does).
const ALLOWED: [&str; 5] = [
    "fd00:2::/64",
    "fd00:3::/48",
    "fd00:a::/32",
    "fd00:4::1",
    "fd00:9::/64",
];

fn config(mode: HopLimitMode) -> Config {
    let mut cfg = Config {
        sids: vec![SID.parse().unwrap(), "fd00:9::/64".parse().unwrap()],
        hop_limit: mode,
        ..Config::default()
    };
    cfg.policy.allowed_next_hops = ALLOWED.iter().map(|p| p.parse().unwrap()).collect();
    cfg
}

/// Hop names naming Segment List[`index`] `yc`.
fn name_at(index: u8) -> Vec<TlvRepr> {
    HopNames::split(&[HopName {
        index,
        name: "yc".into(),
    }])
}

/// Ethernet + IPv6 + SRH (`segments` in travel order, then the final one) + UDP.
fn frame(travel: &[&str], sl: u8, hop_limit: u8, flags: u8, tlvs: Vec<TlvRepr>) -> Vec<u8> {
    let mut segments: Vec<Ipv6Addr> = travel.iter().rev().map(|s| a(s)).collect();
    segments.insert(0, a(FINAL));
    let repr = SrhRepr {
        next_header: 17,
        segments_left: sl,
        flags,
        tag: 0,
        segments,
        tlvs,
    };
    let packet = udp_with_srh(
        a("fd00:a::1"),
        hop_limit,
        &repr.to_bytes().unwrap(),
        b"in-kernel end",
    );
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend_from_slice(&packet);
    f
}

fn descriptor() -> Vec<TlvRepr> {
    vec![TlvRepr::LayerDescriptor(LayerDescriptor {
        layers: ["tcp", "http"].map(|w| w.parse().unwrap()).to_vec(),
        service: "restapiv3".into(),
    })]
}

/// What the program did: `Some(frame)` when it rewrote the frame, `None` when it left it.
fn run(prog: &Program, f: &[u8]) -> Option<Vec<u8>> {
    let (ret, out) = prog.test_run(f).expect("BPF_PROG_TEST_RUN");
    assert_eq!(ret, TCX_NEXT, "the program always lets the packet go on");
    (out != f).then_some(out)
}

/// `process` on the packet as the TUN would hand it to hopd (the kernel's forwarding into
/// the TUN took 1 off the Hop Limit), and the packet as it would leave the router (the
/// kernel's forwarding out of the TUN takes 1 more).
fn oracle(cfg: &Config, f: &[u8]) -> Option<Vec<u8>> {
    let mut pkt = f[14..].to_vec();
    if pkt.len() < 40 || pkt[7] <= 1 {
        return None;
    }
    pkt[7] -= 1;
    let mut st = State::new(cfg.settings("test"), Duration::from_secs(1));
    let mut out = vec![0u8; OUT_BUF_LEN];
    match process(Duration::from_secs(1), &mut pkt, &mut st, &mut out) {
        Action::Forward { len } => {
            pkt.truncate(len);
            pkt[7] -= 1;
            Some(pkt)
        }
        _ => None,
    }
}

/// The program's frame as it would leave the router: the kernel's IPv6 input trims it to
/// 40 + Payload Length (link padding), its forwarding takes 1 off the Hop Limit.
fn leaves(mut f: Vec<u8>) -> Vec<u8> {
    f[14 + 7] -= 1;
    let mut pkt = f.split_off(14);
    pkt.truncate(40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]])));
    pkt
}

fn load(mode: HopLimitMode) -> (Config, Program) {
    let cfg = config(mode);
    let prog = Program::load(&cfg).unwrap_or_else(|e| panic!("loading the program: {e}"));
    (cfg, prog)
}

fn plain_end_is_done_in_the_kernel_exactly_as_hopd_does_it() {
    for mode in [HopLimitMode::End, HopLimitMode::Node] {
        let (cfg, prog) = load(mode);
        let later_name = tlv::placeholder(1).to_string();
        for (travel, sl, tlvs) in [
            (vec![SID], 1, Vec::new()),
            (vec![SID], 1, descriptor()),
            (vec![SID, NEXT], 2, descriptor()),
            (vec!["fd00:a::9", SID, NEXT], 2, Vec::new()),
            // A SID inside a locator prefix.
            (vec!["fd00:9::77", NEXT], 2, descriptor()),
            // A later hop left for a later border to bind.
            (vec![SID, NEXT, &later_name], 3, name_at(1)),
        ] {
            let f = frame(&travel, sl, 64, 0, tlvs);
            let bpf = run(&prog, &f).unwrap_or_else(|| panic!("{mode:?} {travel:?}: not done"));
            let hopd = oracle(&cfg, &f).expect("hopd forwards it");
            assert_eq!(leaves(bpf), hopd, "{mode:?} {travel:?}");
        }
        let (packets, _) = prog.counters()[0];
        assert_eq!(
            packets, 5,
            "counted per SID (the sixth reached the locator)"
        );
        assert_eq!(prog.counters()[1].0, 1);
    }
}

fn everything_hopd_adds_is_left_to_hopd() {
    let (_, prog) = load(HopLimitMode::End);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a probe (O-flag)",
            frame(&[SID, NEXT], 2, 64, FLAG_O, descriptor()),
        ),
        ("Segments Left 0", frame(&[SID], 0, 64, 0, Vec::new())),
        (
            "Hop Limit that runs out here (end mode: 3)",
            frame(&[SID, NEXT], 2, 3, 0, Vec::new()),
        ),
        (
            "not our SID",
            frame(&["fd00:5::1", NEXT], 2, 64, 0, Vec::new()),
        ),
        (
            "the next segment is ours (loop guard)",
            frame(&[SID, SID], 2, 64, 0, Vec::new()),
        ),
        (
            "a next segment outside allowed_next_hops",
            frame(&[SID, "fd00:77::1"], 2, 64, 0, Vec::new()),
        ),
        (
            "a later segment outside allowed_next_hops",
            frame(&[SID, NEXT, "fd00:4::2"], 3, 64, 0, Vec::new()),
        ),
        ("an unresolved next segment (late binding)", {
            let mut f = frame(&[SID], 1, 64, 0, name_at(0));
            // Segment List[0] = the placeholder, 14 + 40 + 8 octets in.
            f[62..78].copy_from_slice(&tlv::placeholder(0).octets());
            f
        }),
        ("Segments Left beyond Last Entry", {
            let mut f = frame(&[SID, NEXT], 2, 64, 0, Vec::new());
            f[14 + 40 + 3] = 3;
            f
        }),
        ("Last Entry beyond Hdr Ext Len", {
            let mut f = frame(&[SID, NEXT], 2, 64, 0, Vec::new());
            f[14 + 40 + 4] = 5;
            f[14 + 40 + 3] = 5;
            f
        }),
        ("not IPv6", {
            let mut f = frame(&[SID], 1, 64, 0, Vec::new());
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f
        }),
        ("another extension header before the SRH", {
            let mut f = frame(&[SID], 1, 64, 0, Vec::new());
            f[14 + 6] = 60;
            f
        }),
        (
            "truncated inside the Segment List",
            frame(&[SID, NEXT], 2, 64, 0, Vec::new())[..80].to_vec(),
        ),
    ];
    for (what, f) in cases {
        assert_eq!(
            run(&prog, &f),
            None,
            "{what}: the program must leave it to hopd"
        );
    }
}

/// Differential: single-octet and two-octet changes anywhere in the headers of several
/// frames; whenever the program rewrites, hopd forwards the same bytes.
fn whatever_the_kernel_rewrites_hopd_would_forward_identically() {
    for mode in [HopLimitMode::End, HopLimitMode::Node] {
        let (cfg, prog) = load(mode);
        let seeds = [
            frame(&[SID, NEXT], 2, 64, 0, descriptor()),
            frame(&["fd00:9::1", NEXT, "fd00:4::1"], 3, 9, 0, Vec::new()),
            frame(&[SID], 1, 4, 0, descriptor()),
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rng = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut rewritten = 0;
        for i in 0..3000 {
            let mut f = seeds[i % seeds.len()].clone();
            let header = (14 + 40 + 8 + 16 * 4).min(f.len());
            for _ in 0..1 + rng() % 2 {
                let at = 14 + (rng() as usize) % (header - 14);
                f[at] = match rng() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => f[at].wrapping_add(1),
                    _ => rng() as u8,
                };
            }
            if let Some(bpf) = run(&prog, &f) {
                rewritten += 1;
                let hopd = oracle(&cfg, &f).unwrap_or_else(|| {
                    panic!("{mode:?}: the kernel forwarded what hopd drops: {f:02x?}")
                });
                assert_eq!(leaves(bpf), hopd, "{mode:?}: {f:02x?}");
            }
        }
        assert!(
            rewritten > 100,
            "{mode:?}: only {rewritten} mutants were plain End"
        );
    }
}

hopstack_testbed::tests! {
    plain_end_is_done_in_the_kernel_exactly_as_hopd_does_it needs [InitialRoot],
    everything_hopd_adds_is_left_to_hopd needs [InitialRoot],
    whatever_the_kernel_rewrites_hopd_would_forward_identically needs [InitialRoot],
}
