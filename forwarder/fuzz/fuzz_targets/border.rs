//! The border's decision function on arbitrary packets *and* states: the input chooses the
//! settings (HMAC required or not and its keys, `allowed_next_hops`, extra SIDs, Hop Limit
//! mode, ICMPv6 rate, cache and queue sizes, clocks) and then a sequence of operations on one
//! state — packets, time passing, cache entries, reconfiguration, and answers for the names
//! `process` asked to resolve, after which the queued packets run again as the daemon's shell
//! runs them (`border::run`). Beyond "no panic", every outcome is checked against what
//! docs/forwarder.md promises:
//!
//! - a forwarded packet is the one received, changed only where End may change it (Hop
//!   Limit, destination, Segments Left, a late-bound segment and then the upper-layer
//!   checksum, this hop's trace record); it is still IPv6 with a valid SRH, its destination
//!   is the next segment, never loopback, unspecified, multicast, link-local, IPv4-mapped or
//!   the SID it arrived at, allowed by `allowed_next_hops` with every later literal segment; a
//!   checksum that verified still verifies (a partial one still holds the pseudo-header sum);
//! - a dropped or held packet is not modified; an answer fits `out`; an ICMPv6 error comes
//!   from the SID the packet reached, to its source (never multicast, unspecified or
//!   loopback, never about an ICMPv6 error), with the type and code the drop reason has in
//!   the table, quoting the packet as received; a stack report goes to the packet's report
//!   address with its nonce and names no address that was not in the packet; silent reasons
//!   answer nothing, and under `require_hmac` a packet whose HMAC does not verify draws no
//!   answer at all;
//! - a name is asked for only when its placeholder is the next segment and it is not cached,
//!   never under `require_hmac`, and never again right after its answer was cached;
//! - the counters add up, and ICMPv6 errors plus reports stay within the token bucket.
//!
//! Input: a 16-octet header (see [`Setup::from_header`]), then records `op, length (u16, big
//! endian), data` (see [`Model::run`]). `make_seeds.py` writes seeds in this format. With
//! `BORDER_FUZZ_TRACE` set in the environment, every outcome is printed (for reproducing).
#![no_main]

use core::time::Duration;
use std::net::Ipv6Addr;
use std::sync::OnceLock;

use hopstack_encoder::wire::packet::walk_chain;
use hopstack_encoder::wire::report::{ReportBody, ReportRepr};
use hopstack_encoder::wire::tlv::{self, Trace, TraceStatus, TYPE_TRACE};
use hopstack_encoder::wire::{checksum, hmac, ipv6, srh};
use hopstack_forwarder::border::policy::{
    never_a_next_hop, HmacAlgorithm, HmacKey, Policy, Prefix,
};
use hopstack_forwarder::border::process::{
    process, process_with, Action, Binding, Clock, Counters, DropReason, PacketMeta,
    ResolveFailure, Settings, State, OUT_BUF_LEN,
};
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 16;
const MAX_RECORDS: usize = 256;

const SID: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const LOCATOR: Ipv6Addr = Ipv6Addr::new(0xfd00, 5, 0, 0, 0, 0, 0, 0);
const KERNEL_END_SID: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0xee);
const SECRET: &str = "s3cret";
const SECRET_2: &str = "other";
/// Candidates for `allowed_next_hops`, chosen by a bit mask.
const ALLOWED: [(Ipv6Addr, u8); 4] = [
    (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::UNSPECIFIED, 0),
];
/// Addresses a name may resolve to: allowed, inside, special, our own SID, a placeholder.
const ADDRS: [Ipv6Addr; 11] = [
    Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 3),
    Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9),
    Ipv6Addr::new(0xfc00, 0x99, 0, 0, 0, 0, 0, 7),
    Ipv6Addr::LOCALHOST,
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201),
    Ipv6Addr::UNSPECIFIED,
    SID,
    Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1),
];

fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("BORDER_FUZZ_TRACE").is_some())
}

fn byte(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

fn u32_at(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([byte(d, i), byte(d, i + 1), byte(d, i + 2), byte(d, i + 3)])
}

fn addr_at(d: &[u8], i: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    for (k, o) in a.iter_mut().enumerate() {
        *o = byte(d, i + k);
    }
    Ipv6Addr::from(a)
}

/// A cached answer: `kind` 0..=10 an address of [`ADDRS`], 11 the 16 octets of `raw`,
/// 12..=15 a failure.
fn binding(kind: u8, raw: &[u8]) -> Binding {
    match kind % 16 {
        k @ 0..=10 => Binding::Addr(ADDRS[usize::from(k)]),
        11 => Binding::Addr(addr_at(raw, 0)),
        12 => Binding::Failed(ResolveFailure::Nxdomain),
        13 => Binding::Failed(ResolveFailure::Servfail),
        14 => Binding::Failed(ResolveFailure::Timeout),
        _ => Binding::Failed(ResolveFailure::NoAaaa),
    }
}

/// What the header chooses: settings as `Config::validate` would let them be, and the shell's
/// limits.
struct Setup {
    settings: Settings,
    queue_per_name: usize,
    max_pending_names: usize,
    out_len: usize,
    /// Wall clock minus monotonic clock.
    wall_offset: Duration,
}

impl Setup {
    /// ```text
    /// 0      flags: 0x01 require_hmac, 0x02 hop_limit = "node", 0x04 SID fd00:5::/64 too,
    ///        0x08 kernel_end_sids (only where validate allows it), 0x10 wall clock a
    ///        different time, 0x20 ICMPv6 off (rate and burst 0), 0x40 small `out` buffer,
    ///        0x80 a second (SHA-1) HMAC key
    /// 1      max_segments (at least 1)
    /// 2, 3   icmp_rate, icmp_burst (at least 1 when the rate is not 0)
    /// 4      low nibble: allowed_next_hops (a mask over ALLOWED); high: cache entries - 1
    /// 5      bits 0-1: queue_per_name - 1; bits 2-3: max_pending_names - 1; bit 4: udp_ingress
    ///        at port [`INGRESS_PORT`]
    /// 6      with 0x40: the `out` buffer is 8 times this
    /// 7      HMAC key id (SHA-256, "s3cret"; the SHA-1 key "other" is id + 1)
    /// 8..12  monotonic clock at the start, seconds
    /// 12..16 node id
    /// ```
    fn from_header(h: &[u8]) -> Setup {
        let flags = byte(h, 0);
        let require_hmac = flags & 0x01 != 0;
        let allowed: Vec<Prefix> = ALLOWED
            .iter()
            .enumerate()
            .filter(|(i, _)| byte(h, 4) & (1 << i) != 0)
            .map(|(_, &(a, l))| Prefix::new(a, l).expect("valid prefix"))
            .collect();
        let mut sids = vec![Prefix::new(SID, 128).expect("valid prefix")];
        if flags & 0x04 != 0 {
            sids.push(Prefix::new(LOCATOR, 64).expect("valid prefix"));
        }
        // Config::validate refuses kernel End SIDs under require_hmac, and unless
        // allowed_next_hops says the border forwards anywhere (the kernel's End does).
        let open_relay = allowed.iter().any(|p| p.prefix_len() == 0);
        let kernel_end_sids = if flags & 0x08 != 0 && open_relay && !require_hmac {
            vec![KERNEL_END_SID]
        } else {
            Vec::new()
        };
        let id = u32::from(byte(h, 7));
        let mut hmac_keys = vec![HmacKey {
            id,
            algorithm: HmacAlgorithm::Sha256,
            secret: SECRET.into(),
            name: None,
        }];
        if flags & 0x80 != 0 {
            hmac_keys.push(HmacKey {
                id: id + 1,
                algorithm: HmacAlgorithm::Sha1,
                secret: SECRET_2.into(),
                name: None,
            });
        }
        let (icmp_rate, icmp_burst) = match (flags & 0x20 != 0, byte(h, 2), byte(h, 3)) {
            (true, _, _) => (0, 0),
            (false, 0, b) => (0, b),
            (false, r, b) => (r, b.max(1)),
        };
        let settings = Settings {
            sids,
            policy: Policy {
                max_segments: byte(h, 1).max(1),
                allowed_next_hops: allowed,
                require_hmac,
                hmac_keys,
            },
            icmp_rate: u32::from(icmp_rate),
            icmp_burst: u32::from(icmp_burst),
            node_id: u32_at(h, 12),
            cache_max_entries: usize::from(byte(h, 4) >> 4) + 1,
            tun_hop_limit: flags & 0x02 != 0,
            kernel_end_sids,
            udp_ingress_port: (byte(h, 5) & 0x10 != 0).then_some(INGRESS_PORT),
        };
        Setup {
            settings,
            queue_per_name: usize::from(byte(h, 5) & 3) + 1,
            max_pending_names: usize::from((byte(h, 5) >> 2) & 3) + 1,
            out_len: if flags & 0x40 != 0 {
                usize::from(byte(h, 6)) * 8
            } else {
                OUT_BUF_LEN
            },
            wall_offset: if flags & 0x10 != 0 {
                Duration::from_secs(1_700_000_000)
            } else {
                Duration::ZERO
            },
        }
    }
}

/// A packet and whether its checksum is partial (offload).
type Held = (Vec<u8>, bool);

/// One border worker and the part of its shell that holds packets for names being resolved.
struct Model {
    state: State,
    setup: Setup,
    now: Duration,
    /// Names being resolved, each with the packets waiting for it.
    pending: Vec<(String, Vec<Held>)>,
    out: Vec<u8>,
    last: Option<Held>,
    /// Since when the token bucket has been running, and the answers sent before.
    bucket_since: Duration,
    sent_before: u64,
}

impl Model {
    fn new(h: &[u8]) -> Model {
        let setup = Setup::from_header(h);
        let now = Duration::from_secs(u64::from(u32_at(h, 8)));
        Model {
            state: State::new(setup.settings.clone(), now),
            setup,
            now,
            pending: Vec::new(),
            out: vec![0u8; OUT_BUF_LEN.max(255 * 8)],
            last: None,
            bucket_since: now,
            sent_before: 0,
        }
    }

    /// One record: `op % 8` is
    /// 0, 7: a packet (`data`); 1: a packet with a partial checksum (offload);
    /// 2: time passes, `data[0..2]` (u16) times 10 ms;
    /// 3: the answer for pending name `data[0] % pending`: `binding(data[1], data[3..19])`,
    ///    TTL `data[2]` seconds; then its queued packets run again;
    /// 4: a cache entry: `binding(data[0], data[2..18])`, TTL `data[1]` s, name `data[18..]`;
    /// 5: reconfigure with `data` as a new header (the clock stays);
    /// 6: the last packet again.
    fn run(&mut self, op: u8, data: &[u8]) {
        match op % 8 {
            1 => self.handle(data.to_vec(), true, false),
            2 => {
                let ticks = u16::from_be_bytes([byte(data, 0), byte(data, 1)]);
                self.now += Duration::from_millis(10) * u32::from(ticks);
            }
            3 => self.answer(data),
            4 => {
                let name = data.get(18..).unwrap_or(&[]);
                let ttl = Duration::from_secs(u64::from(byte(data, 1)));
                let b = binding(byte(data, 0), data.get(2..).unwrap_or(&[]));
                self.state.cache.insert(name, b, ttl, self.now);
            }
            5 => self.reconfigure(data),
            6 => {
                if let Some((p, partial)) = self.last.clone() {
                    self.handle(p, partial, false);
                }
            }
            _ => self.handle(data.to_vec(), false, false),
        }
    }

    fn reconfigure(&mut self, h: &[u8]) {
        let new = Setup::from_header(h);
        let (old, s) = (&self.setup.settings, &new.settings);
        if old.icmp_rate != s.icmp_rate || old.icmp_burst != s.icmp_burst {
            // State::reconfigure starts a full bucket.
            self.bucket_since = self.now;
            self.sent_before = self.state.counters.icmp_sent + self.state.counters.reports_sent;
        }
        self.state.reconfigure(new.settings.clone(), self.now);
        self.setup = new;
    }

    /// What `Shell::answer` does: cache the answer, then run the queued packets again.
    fn answer(&mut self, data: &[u8]) {
        if self.pending.is_empty() {
            return;
        }
        let (name, queued) = self
            .pending
            .remove(usize::from(byte(data, 0)) % self.pending.len());
        let ttl = Duration::from_secs(u64::from(byte(data, 2)));
        let b = binding(byte(data, 1), data.get(3..).unwrap_or(&[]));
        self.state.cache.insert(name.as_bytes(), b, ttl, self.now);
        for (p, partial) in queued {
            self.handle(p, partial, !ttl.is_zero());
        }
    }

    /// What `Shell::queue` does with a packet waiting for `name`.
    fn queue(&mut self, name: String, pkt: Vec<u8>, partial: bool) {
        if let Some((_, q)) = self.pending.iter_mut().find(|(n, _)| *n == name) {
            if q.len() < self.setup.queue_per_name {
                q.push((pkt, partial));
            } else {
                self.state.counters.count_drop(DropReason::ResolveQueueFull);
            }
        } else if self.pending.len() >= self.setup.max_pending_names {
            self.state.counters.count_drop(DropReason::ResolveQueueFull);
        } else {
            self.pending.push((name, vec![(pkt, partial)]));
        }
    }

    /// `process` one packet and check the outcome. `answered`: its name was just cached.
    fn handle(&mut self, orig: Vec<u8>, partial: bool, answered: bool) {
        self.last = Some((orig.clone(), partial));
        let mut pkt = orig.clone();
        // A datagram to the UDP ingress port: what End then sees is the inner packet, in
        // place, one hop older; or it is refused, silently and untouched.
        let unwrapped = match self.setup.settings.udp_ingress_port.map(|p| unwrap(&orig, p)) {
            None | Some(Unwrap::No) => None,
            Some(Unwrap::Refused(reason)) => {
                let before = self.state.counters.clone();
                let meta = PacketMeta {
                    checksum_partial: partial,
                    ..PacketMeta::default()
                };
                let clock = Clock::fixed(self.now);
                let act = process_with(clock, &mut pkt, meta, &mut self.state, &mut self.out);
                let want = Action::Drop {
                    reason,
                    icmp_len: 0,
                    report_len: 0,
                };
                assert_eq!(act, want, "a refused datagram to the ingress port");
                assert_eq!(pkt, orig, "a refused datagram is not modified");
                let c = &self.state.counters;
                assert_eq!(c.dropped(reason), before.dropped(reason) + 1);
                assert_eq!(c.received, before.received + 1);
                return;
            }
            Some(Unwrap::Inner(inner)) => Some(inner),
        };

        let before = self.state.counters.clone();
        let clock = Clock {
            monotonic: self.now,
            wall: self.now + self.setup.wall_offset,
        };
        let orig_bytes = orig.len();
        let out = &mut self.out[..self.setup.out_len];
        let act = if !partial && self.setup.wall_offset.is_zero() {
            process(self.now, &mut pkt, &mut self.state, out)
        } else {
            let meta = PacketMeta {
                checksum_partial: partial,
                ..PacketMeta::default()
            };
            process_with(clock, &mut pkt, meta, &mut self.state, out)
        };
        if trace() {
            eprintln!(
                "{:?} +{}: {} octets -> {act:?}",
                self.now,
                self.setup.wall_offset.as_secs(),
                orig_bytes
            );
        }
        // From here on the packet is what End saw: the inner one, if there was one.
        let unwrapped_now = self.state.counters.udp_ingress - before.udp_ingress;
        let (orig, partial) = match unwrapped {
            Some(inner) => {
                assert_eq!(unwrapped_now, 1, "the datagram was not unwrapped");
                pkt.truncate(inner.len());
                (inner, false)
            }
            None => {
                assert_eq!(unwrapped_now, 0, "a packet unwrapped that is no datagram to the port");
                (orig, partial)
            }
        };
        let st = &self.state;
        let c = &st.counters;
        let dropped = |c: &Counters| c.dropped.iter().sum::<u64>();
        match &act {
            Action::Forward { len } => {
                assert_eq!(c.received, before.received + 1);
                assert_eq!(c.forwarded, before.forwarded + 1);
                assert_eq!(dropped(c), dropped(&before));
                check_forward(&orig, &pkt, *len, st, &before, partial, clock.wall);
            }
            Action::Drop {
                reason,
                icmp_len,
                report_len,
            } => {
                assert_eq!(c.received, before.received + 1);
                assert_eq!(c.forwarded, before.forwarded);
                assert_eq!(c.dropped(*reason), before.dropped(*reason) + 1);
                assert_eq!(dropped(c), dropped(&before) + 1);
                assert_eq!(c.icmp_sent, before.icmp_sent + u64::from(*icmp_len > 0));
                assert_eq!(
                    c.reports_sent,
                    before.reports_sent + u64::from(*report_len > 0)
                );
                assert_eq!(pkt, orig, "a dropped packet is not modified");
                let out = &self.out[..self.setup.out_len];
                check_drop(&orig, *reason, *icmp_len, *report_len, out, st);
            }
            Action::NeedResolve { name, segment } => {
                assert!(!answered, "{name} asked for again right after its answer");
                assert_eq!(c.received, before.received);
                assert_eq!(c.resolve_requests, before.resolve_requests + 1);
                assert_eq!(dropped(c), dropped(&before));
                assert_eq!(pkt, orig, "a packet waiting for a name is not modified");
                check_need_resolve(&orig, name, *segment, st, self.now);
            }
        }
        // ICMPv6 errors and reports share the token bucket.
        let sent = c.icmp_sent + c.reports_sent - self.sent_before;
        let elapsed = (self.now - self.bucket_since).as_micros();
        let s = st.settings();
        let allowed = u128::from(s.icmp_burst) + elapsed * u128::from(s.icmp_rate) / 1_000_000;
        assert!(u128::from(sent) <= allowed, "{sent} answers > {allowed}");
        for (_, sc) in st.sid_counters() {
            assert_eq!(sc.received, sc.forwarded + sc.dropped);
        }
        if let Action::NeedResolve { name, .. } = act {
            self.queue(name, orig, partial);
        }
    }
}

/// The UDP ingress port the fuzzed borders may take datagrams at.
const INGRESS_PORT: u16 = 7444;

/// What the UDP ingress must make of a packet (docs/wire-format.md, "UDP encapsulation"),
/// written here apart from the border's code.
enum Unwrap {
    /// Not a datagram to the port.
    No,
    /// The inner packet End must see (its Hop Limit one less).
    Inner(Vec<u8>),
    Refused(DropReason),
}

fn unwrap(o: &[u8], port: u16) -> Unwrap {
    let Ok(total) = ipv6::Packet::<&[u8]>::total_len_of(o) else {
        return Unwrap::No;
    };
    let o = &o[..total];
    if total < 48 || o[6] != 17 || o[42..44] != port.to_be_bytes() {
        return Unwrap::No;
    }
    let inner = &o[48..];
    let whole = usize::from(u16::from_be_bytes([o[44], o[45]])) == total - 40
        && inner.len() >= 40
        && inner[0] >> 4 == 6
        && 40 + usize::from(u16::from_be_bytes([inner[4], inner[5]])) == inner.len();
    if !whole {
        return Unwrap::Refused(DropReason::UdpIngressMalformed);
    }
    if inner[8..40] != o[8..40] {
        return Unwrap::Refused(DropReason::UdpIngressMismatch);
    }
    if inner[7] <= 1 {
        return Unwrap::Refused(DropReason::HopLimitExceeded);
    }
    let mut inner = inner.to_vec();
    inner[7] -= 1;
    Unwrap::Inner(inner)
}

/// The packet cut to Payload Length, its SRH offset and end (for a packet `process` took in).
fn srh_of(o: &[u8]) -> Option<(usize, usize)> {
    let at = walk_chain(o).routing?;
    let v = srh::Packet::new_checked(&o[at..]).ok()?;
    Some((at, at + v.total_len()))
}

fn cut(orig: &[u8]) -> &[u8] {
    let len = ipv6::Packet::<&[u8]>::total_len_of(orig).expect("an IPv6 packet");
    &orig[..len]
}

/// Whether `o` carries an SRH whose HMAC one of the policy's keys verifies (as the kernel's
/// `seg6_hmac_validate_skb`).
fn hmac_ok(orig: &[u8], policy: &Policy) -> bool {
    let Ok(len) = ipv6::Packet::<&[u8]>::total_len_of(orig) else {
        return false;
    };
    let o = &orig[..len];
    let Some((at, end)) = srh_of(o) else {
        return false;
    };
    let view = srh::Packet::new_unchecked(&o[at..end]);
    let Ok(id) = hmac::key_id(&view) else {
        return false;
    };
    let Some(key) = policy.hmac_key(id) else {
        return false;
    };
    let alg = match key.algorithm {
        HmacAlgorithm::Sha1 => hmac::Algorithm::Sha1,
        HmacAlgorithm::Sha256 => hmac::Algorithm::Sha256,
    };
    let src = ipv6::Packet::new_unchecked(o).src_addr();
    hmac::verify(alg, key.secret.as_bytes(), id, &src, &view).is_ok()
}

fn check_forward(
    orig: &[u8],
    pkt: &[u8],
    len: usize,
    st: &State,
    before: &Counters,
    partial: bool,
    wall: Duration,
) {
    let s = st.settings();
    let o = cut(orig);
    assert_eq!(len, o.len(), "forwards the packet as Payload Length has it");
    assert_eq!(pkt[len..], orig[len..], "link padding untouched");
    let p = &pkt[..len];
    assert_eq!(
        ipv6::Packet::<&[u8]>::total_len_of(p).ok(),
        Some(len),
        "still IPv6"
    );
    let reached = ipv6::Packet::new_unchecked(o).dst_addr();
    assert!(s.sids.iter().any(|sid| sid.contains(&reached)));
    if s.policy.require_hmac {
        assert!(hmac_ok(orig, &s.policy), "forwarded without a valid HMAC");
    }
    let (at, end) = srh_of(o).expect("forwarded without a valid SRH");
    let ov = srh::Packet::new_unchecked(&o[at..end]);
    let pv = srh::Packet::new_checked(&p[at..end]).expect("the forwarded SRH is valid");
    let sl = ov.segments_left();
    assert!(sl >= 1 && usize::from(sl) <= ov.segment_count());
    let new_sl = sl - 1;
    assert_eq!(pv.segments_left(), new_sl);
    let next = pv.segment_addr(usize::from(new_sl));
    let dst = ipv6::Packet::new_unchecked(p).dst_addr();
    assert_eq!(dst, next, "the destination is the next segment");
    assert_ne!(dst, reached, "forwarded to the SID it arrived at");
    assert!(!never_a_next_hop(u128::from(dst)), "forwarded to {dst}");
    // Without allowed_next_hops only an address a name resolved to here; with it, the next
    // segment (bound or written) and every later written one inside it.
    let allowed = &s.policy.allowed_next_hops;
    let bound_here = tlv::is_placeholder(&ov.segment_addr(usize::from(new_sl)));
    let ok = |a: &Ipv6Addr, resolved: bool| {
        if allowed.is_empty() {
            resolved
        } else {
            allowed.iter().any(|p| p.contains(a))
        }
    };
    assert!(ok(&dst, bound_here), "{dst} refused by allowed_next_hops");
    for i in 0..usize::from(new_sl) {
        let later = pv.segment_addr(i);
        assert!(
            tlv::is_placeholder(&later) || ok(&later, false),
            "later segment {later} refused by allowed_next_hops"
        );
    }
    let arrived = if s.tun_hop_limit {
        o[7].saturating_add(1)
    } else {
        o[7]
    };
    assert!(arrived >= 2, "forwarded with Hop Limit {arrived}");
    assert_eq!(
        p[7],
        if s.tun_hop_limit {
            arrived
        } else {
            arrived - 1
        }
    );

    // What End may change, and nothing else.
    let c = &st.counters;
    let bound = c.names_bound == before.names_bound + 1;
    assert!(bound || c.names_bound == before.names_bound);
    let was = ov.segment_addr(usize::from(new_sl));
    if bound {
        assert!(tlv::is_placeholder(&was), "bound over the literal {was}");
        assert!(!s.policy.require_hmac, "a name bound under require_hmac");
    } else {
        assert!(
            !tlv::is_placeholder(&was),
            "forwarded to the placeholder {was}"
        );
        assert_eq!(next, was);
    }
    let mut may = vec![false; len];
    may[7] = true;
    may[24..40].fill(true);
    may[at + 3] = true;
    let seg = at + srh::HEADER_LEN + srh::SEGMENT_LEN * usize::from(new_sl);
    may[seg..seg + srh::SEGMENT_LEN].fill(true);
    let chain = walk_chain(o);
    if let Some(sum) = chain.upper().and_then(|u| u.checksum_offset()) {
        if sum + 2 <= len {
            may[sum..sum + 2].fill(true);
        }
    }
    let filled = c.traces_filled - before.traces_filled;
    assert!(filled <= 1);
    let mut changed = Vec::new();
    if ov.oam() {
        for t in ov.tlvs().filter(|t| t.tlv_type == TYPE_TRACE) {
            let v = at + t.at + 2..at + t.at + 2 + t.value.len();
            may[v.clone()].fill(true);
            let (old, new) = (&o[v.clone()], &p[v]);
            if old.len() >= 2 && old[1] != new[1] {
                assert_eq!(
                    new[1],
                    old[1] | Trace::FLAG_OVERFLOW,
                    "only the overflow flag"
                );
            }
            let head = Trace::HEADER_LEN.min(old.len());
            assert!(old[..head]
                .iter()
                .zip(&new[..head])
                .enumerate()
                .all(|(i, (a, b))| i == 1 || a == b));
            for (a, b) in Trace::records_in(old).zip(Trace::records_in(new)) {
                if a != b {
                    assert_eq!(a.status, TraceStatus::Empty, "overwrote a record");
                    changed.push(b);
                }
            }
        }
    }
    assert_eq!(
        changed.len() as u64,
        filled,
        "records changed vs traces_filled"
    );
    if let Some(r) = changed.first() {
        assert_eq!(r.segment_index, sl);
        let status = if bound {
            TraceStatus::Bound
        } else {
            TraceStatus::Forwarded
        };
        assert_eq!(r.status, status);
        assert_eq!(r.end_function, st.end_function(&reached));
        assert_eq!(r.timestamp_us, wall.as_micros() as u32);
        assert_eq!(r.node_id, s.node_id);
    }
    for i in 0..len {
        assert!(may[i] || o[i] == p[i], "octet {i} changed");
    }

    // The upper-layer checksum: Segment List[0] is the pseudo-header's destination.
    let Some(u) = chain.upper() else {
        return;
    };
    let Some(sum) = u.checksum_offset() else {
        return;
    };
    if sum + 2 > len {
        return;
    }
    let src = ipv6::Packet::new_unchecked(o).src_addr();
    let (old_final, new_final) = (ov.segment_addr(0), pv.segment_addr(0));
    if !bound || new_sl != 0 {
        assert_eq!(o[sum..sum + 2], p[sum..sum + 2], "checksum changed");
    }
    if partial {
        let ulen = (len - u.offset) as u32;
        let field = |b: &[u8]| checksum::combine(&[u16::from_be_bytes([b[sum], b[sum + 1]])]);
        let pseudo =
            |d: &Ipv6Addr| checksum::combine(&[checksum::pseudo_header(&src, d, u.protocol, ulen)]);
        if field(o) == pseudo(&old_final) {
            assert_eq!(field(p), pseudo(&new_final), "partial checksum not updated");
        }
    } else if checksum::verify_upper_layer(&src, &old_final, u.protocol, &o[u.offset..]) {
        assert!(
            checksum::verify_upper_layer(&src, &new_final, u.protocol, &p[u.offset..]),
            "a checksum that verified no longer does"
        );
    }
}

/// The ICMPv6 (type, code) the table in docs/forwarder.md gives a drop reason; `None`: no
/// error is ever sent.
fn icmp_of(reason: DropReason) -> Option<(u8, u8)> {
    use DropReason as R;
    Some(match reason {
        R::NoSrh | R::SegmentsLeftZero => (4, 4),
        R::UnknownRoutingType
        | R::LastEntryExceedsHdrLen
        | R::SegmentsLeftExceedsLastEntry
        | R::BadHopName
        | R::Loop
        | R::BadTlv => (4, 0),
        R::TooManySegments | R::NextHopDenied | R::NameUnderHmac => (1, 1),
        R::HopLimitExceeded => (3, 0),
        R::Nxdomain | R::Servfail | R::DnsTimeout | R::NoAaaa => (1, 3),
        _ => return None,
    })
}

fn check_drop(
    orig: &[u8],
    reason: DropReason,
    icmp_len: usize,
    report_len: usize,
    out: &[u8],
    st: &State,
) {
    let policy = &st.settings().policy;
    assert!(
        !matches!(
            reason,
            DropReason::ResolveQueueFull | DropReason::WriteFailed
        ),
        "{reason} is the shell's"
    );
    if matches!(reason, DropReason::HmacMissing | DropReason::HmacInvalid) {
        assert!(policy.require_hmac, "{reason} without require_hmac");
    }
    assert!(icmp_len + report_len <= out.len(), "answers overrun out");
    if icmp_of(reason).is_none() {
        assert_eq!((icmp_len, report_len), (0, 0), "{reason} answered");
    }
    if policy.require_hmac && !hmac_ok(orig, policy) {
        assert_eq!(
            (icmp_len, report_len),
            (0, 0),
            "{reason}: answered a packet without a valid HMAC under require_hmac"
        );
    }
    if icmp_len > 0 {
        check_icmp(orig, &out[..icmp_len], reason, st);
    }
    if report_len > 0 {
        check_report(orig, &out[icmp_len..icmp_len + report_len]);
    }
}

fn check_icmp(orig: &[u8], e: &[u8], reason: DropReason, st: &State) {
    let o = cut(orig);
    let n = e.len();
    assert!((48..=1280).contains(&n), "ICMPv6 error of {n} octets");
    assert_eq!(e[0], 0x60);
    assert_eq!(e[1..4], [0, 0, 0]);
    assert_eq!(usize::from(u16::from_be_bytes([e[4], e[5]])), n - 40);
    assert_eq!((e[6], e[7]), (58, 64));
    let (src, dst) = (addr_at(e, 8), addr_at(e, 24));
    assert_eq!(
        src,
        addr_at(o, 24),
        "from the address the packet was sent to"
    );
    assert!(st.settings().sids.iter().any(|s| s.contains(&src)));
    assert_eq!(dst, addr_at(o, 8), "to the packet's source");
    assert!(
        !(dst.is_multicast() || dst.is_unspecified() || dst.is_loopback()),
        "an error to {dst}"
    );
    assert!(checksum::verify_upper_layer(&src, &dst, 58, &e[40..]));
    assert_eq!(icmp_of(reason), Some((e[40], e[41])), "{reason}");
    let word = u32::from_be_bytes([e[44], e[45], e[46], e[47]]);
    if e[40] == 4 {
        assert!(word as usize <= o.len(), "pointer {word} past the packet");
    } else {
        assert_eq!(word, 0);
    }
    let quoted = &e[48..];
    assert_eq!(quoted, &o[..quoted.len()], "quotes the packet as received");
    if let Ok(u) = walk_chain(o).end {
        if u.protocol == 58 {
            let ty = o.get(u.offset).copied();
            assert!(
                ty.is_some_and(|t| t >= 128),
                "an error about an ICMPv6 error"
            );
        }
    }
}

fn check_report(orig: &[u8], r: &[u8]) {
    let o = cut(orig);
    let n = r.len();
    assert!((48..=1280).contains(&n), "report packet of {n} octets");
    assert_eq!(r[0], 0x60);
    assert_eq!(usize::from(u16::from_be_bytes([r[4], r[5]])), n - 40);
    assert_eq!(r[6], 17);
    let reporter = addr_at(r, 8);
    assert_eq!(reporter, addr_at(o, 24), "from the SID the packet reached");
    let (at, end) = srh_of(o).expect("a report about a packet without a valid SRH");
    let v = srh::Packet::new_unchecked(&o[at..end]);
    let to = v
        .report_target()
        .expect("a report without a report address");
    assert_eq!(addr_at(r, 24), to.addr);
    assert_eq!(r[40..42], to.port.to_be_bytes());
    assert_eq!(r[42..44], to.port.to_be_bytes());
    assert_eq!(usize::from(u16::from_be_bytes([r[44], r[45]])), n - 40);
    assert!(checksum::verify_upper_layer(
        &reporter,
        &to.addr,
        17,
        &r[40..]
    ));
    let rep = ReportRepr::parse_bytes(&r[48..]).expect("the report parses");
    assert_eq!((rep.nonce, rep.reporter), (to.nonce, reporter));
    let ReportBody::Error(e) = rep.body else {
        panic!("a border sends error reports only")
    };
    assert!(usize::from(e.hop_index) < v.segment_count());
    if let Some(a) = e.hop_address {
        assert!(
            a == reporter || v.segments().any(|s| s == a),
            "a report told {a}, which the packet did not carry"
        );
    }
}

fn check_need_resolve(orig: &[u8], name: &str, segment: u8, st: &State, now: Duration) {
    assert!(
        !st.settings().policy.require_hmac,
        "a name to bind under require_hmac"
    );
    let o = cut(orig);
    let (at, end) = srh_of(o).expect("a name asked for without a valid SRH");
    let v = srh::Packet::new_unchecked(&o[at..end]);
    assert_eq!(usize::from(segment) + 1, usize::from(v.segments_left()));
    assert!(tlv::is_placeholder(&v.segment_addr(usize::from(segment))));
    assert!(!name.is_empty() && name.len() <= 253 && !name.starts_with('.'));
    assert!(
        name.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c)),
        "{name:?} is not one lower-case DNS name"
    );
    assert!(
        st.cache.get(name.as_bytes(), now).is_none(),
        "{name} is cached"
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (h, mut rest) = data.split_at(HEADER);
    let mut m = Model::new(h);
    for _ in 0..MAX_RECORDS {
        if rest.len() < 3 {
            break;
        }
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let (record, tail) = rest[3..].split_at(len);
        m.run(op, record);
        rest = tail;
    }
});
