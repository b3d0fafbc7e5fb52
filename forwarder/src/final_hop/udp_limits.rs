//! What one source may relay through the UDP relay: decisions only, with the time passed in
//! (the receive loop in `udp.rs` owns the state and the clock).
//!
//! * [`SourceRates`]: datagrams per second per source address into the relay, a token bucket
//!   each (`udp_datagrams_per_second_per_source`, burst `udp_datagram_burst_per_source`).
//! * [`ReplyBudget`]: a session may send its client at most `udp_reply_ratio` times the
//!   octets it received from it. A UDP source address is never validated (anyone can write
//!   any source address into a datagram), so without it hopd would reflect a service's
//!   answers at a victim with whatever amplification the service's protocol has. 3 is
//!   QUIC's limit for a peer whose address is not validated yet (RFC 9000, section 8); hopd
//!   never gets to validate one, so for hopd it stays.
//!
//!   A QUIC client does prove its address, to its server (RFC 9000, section 8.1): it sends
//!   back, as a packet's Destination Connection ID, the Source Connection ID the server
//!   chose and sent only to that address. Both are in the clear, so hopd sees the proof
//!   too ([`QuicAddressCheck`]), and from then on the session's replies are not capped: a
//!   download over QUIC sends its client far more than the acknowledgements it gets back.
//!
//! Octets are counted as whole IPv6 packets on the wire ([`request_wire_len`],
//! [`reply_wire_len`]): what amplification costs a victim's link is packets, and a request
//! carries its Routing header too, which a reply does not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::ratelimit::TokenBucket;

/// Source addresses [`SourceRates`] keeps a bucket for at most. An address whose bucket is
/// full again is forgotten without loss (a new bucket is the same), so the table holds the
/// sources active in the last `burst / rate` seconds; a flood of spoofed addresses fills it.
pub const SOURCE_TABLE_CAP: usize = 65536;

/// How often a full table is swept of forgettable buckets, at most (a sweep walks it all).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// IPv6 header and UDP header, in octets.
const IPV6_UDP_HEADERS: usize = 40 + 8;

/// A relayed request's size on the wire: its payload, its Routing header and the IPv6 and
/// UDP headers.
pub fn request_wire_len(payload: usize, rthdr: usize) -> u64 {
    (payload + rthdr + IPV6_UDP_HEADERS) as u64
}

/// A reply's size on the wire: hopd sends it without a Routing header.
pub fn reply_wire_len(payload: usize) -> u64 {
    (payload + IPV6_UDP_HEADERS) as u64
}

/// One token bucket per source address, for the datagrams it may send into the relay.
#[derive(Debug)]
pub struct SourceRates {
    rate: u32,
    burst: u32,
    cap: usize,
    buckets: HashMap<IpAddr, TokenBucket>,
    /// Shared by the sources that arrive while the table is full and nothing in it may be
    /// forgotten: they are not refused outright, but together get one source's rate, so a
    /// flood of new addresses cannot get more through than one address could.
    overflow: TokenBucket,
    last_sweep: Duration,
}

impl SourceRates {
    pub fn new(rate: u32, burst: u32, now: Duration) -> SourceRates {
        SourceRates::with_cap(rate, burst, SOURCE_TABLE_CAP, now)
    }

    /// As [`SourceRates::new`] with another table size (tests).
    pub fn with_cap(rate: u32, burst: u32, cap: usize, now: Duration) -> SourceRates {
        SourceRates {
            rate,
            burst,
            cap,
            buckets: HashMap::new(),
            overflow: TokenBucket::new(rate, burst, now),
            last_sweep: now,
        }
    }

    /// Whether a datagram from `source` may go into the relay at `now` (taking its token).
    pub fn admit(&mut self, source: IpAddr, now: Duration) -> bool {
        if let Some(b) = self.buckets.get_mut(&source) {
            return b.take(now);
        }
        if self.buckets.len() >= self.cap && now.saturating_sub(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.buckets.retain(|_, b| !b.full_at(now));
        }
        if self.buckets.len() >= self.cap {
            return self.overflow.take(now);
        }
        let mut b = TokenBucket::new(self.rate, self.burst, now);
        let admitted = b.take(now);
        self.buckets.insert(source, b);
        admitted
    }

    /// Sources with a bucket of their own.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// What a UDP session may still send back to its client (see the module documentation).
#[derive(Debug, Clone)]
pub struct ReplyBudget {
    /// 0: no limit.
    ratio: u32,
    received: u64,
    sent: u64,
}

impl ReplyBudget {
    pub fn new(ratio: u32) -> ReplyBudget {
        ReplyBudget {
            ratio,
            received: 0,
            sent: 0,
        }
    }

    /// The client sent a request of `wire_len` octets (relayed to the service).
    pub fn on_request(&mut self, wire_len: u64) {
        self.received = self.received.saturating_add(wire_len);
    }

    /// Whether a reply of `wire_len` octets may go to the client (and counts it if so).
    pub fn allow_reply(&mut self, wire_len: u64) -> bool {
        if self.ratio == 0 {
            return true;
        }
        let allowed = self.received.saturating_mul(u64::from(self.ratio));
        if self.sent.saturating_add(wire_len) > allowed {
            return false;
        }
        self.sent += wire_len;
        true
    }
}

impl ReplyBudget {
    /// The client proved it receives at its address ([`QuicAddressCheck`]): no cap any more.
    pub fn lift(&mut self) {
        self.ratio = 0;
    }
}

/// The connection IDs a QUIC server may choose are at most 20 octets (RFC 9000, section 17.2).
const MAX_CID_LEN: usize = 20;
/// Server connection IDs remembered per session; more are not learned (a server gives one in
/// its Initial and Handshake packets, the same one).
const MAX_SERVER_CIDS: usize = 4;

/// Watches a QUIC session for its client's proof of address (RFC 9000, section 8.1): the
/// server's Source Connection ID, learned from the long-header packets relayed to the client,
/// coming back as the Destination Connection ID of a client packet. Only a client that
/// received the server's packet at its address can know it (a server picks it at random, at
/// least 8 octets with quinn); a spoofed source never sees a reply.
///
/// ```text
///  long header:  |1|1|T T|X X X X| Version (32) | DCID Len (8) | DCID | SCID Len (8) | SCID | ...
///  short header: |0|1|S|R R|K|P P| DCID (the length the endpoints agreed on) | ...
/// ```
#[derive(Debug, Default)]
pub struct QuicAddressCheck {
    server_cids: Vec<Vec<u8>>,
    validated: bool,
}

impl QuicAddressCheck {
    /// A datagram relayed from the service to the client.
    pub fn on_reply(&mut self, datagram: &[u8]) {
        if self.validated || self.server_cids.len() >= MAX_SERVER_CIDS {
            return;
        }
        if let Some(scid) = long_header_scid(datagram)
            && !scid.is_empty()
            && !self.server_cids.iter().any(|c| c == scid)
        {
            self.server_cids.push(scid.to_vec());
        }
    }

    /// A datagram from the client; true once the client has proved its address.
    pub fn on_request(&mut self, datagram: &[u8]) -> bool {
        if self.validated {
            return true;
        }
        let Some(&first) = datagram.first() else {
            return false;
        };
        self.validated = if first & 0x80 != 0 {
            long_header_dcid(datagram).is_some_and(|d| self.server_cids.iter().any(|c| c == d))
        } else {
            first & 0x40 != 0
                && self
                    .server_cids
                    .iter()
                    .any(|c| datagram[1..].starts_with(c))
        };
        self.validated
    }
}

/// A long-header packet's Destination Connection ID.
fn long_header_dcid(d: &[u8]) -> Option<&[u8]> {
    if d.len() < 6 || d[0] & 0x80 == 0 {
        return None;
    }
    let len = usize::from(d[5]);
    (len <= MAX_CID_LEN).then(|| d.get(6..6 + len)).flatten()
}

/// A long-header packet's Source Connection ID.
fn long_header_scid(d: &[u8]) -> Option<&[u8]> {
    let dcid = long_header_dcid(d)?;
    let at = 6 + dcid.len();
    let len = usize::from(*d.get(at)?);
    (len <= MAX_CID_LEN)
        .then(|| d.get(at + 1..at + 1 + len))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_source_is_cut_to_its_rate_and_another_is_not() {
        let t0 = Duration::from_secs(10);
        let mut r = SourceRates::new(100, 10, t0);
        let flood: IpAddr = "fd00:99::1".parse().unwrap();
        let other: IpAddr = "fd00:99::2".parse().unwrap();
        // 1000 at once: the burst passes.
        assert_eq!((0..1000).filter(|_| r.admit(flood, t0)).count(), 10);
        assert!(r.admit(other, t0), "another source has its own bucket");
        // A second later: the rate.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..1000).filter(|_| r.admit(flood, t1)).count(), 10);
        let mut passed = 0;
        for i in 1..=1000u64 {
            passed += usize::from(r.admit(flood, t1 + ms(i)));
        }
        assert_eq!(passed, 100, "one second at 100 per second");
    }

    #[test]
    fn a_full_table_forgets_idle_sources_and_shares_one_bucket_meanwhile() {
        let t0 = Duration::from_secs(10);
        let mut r = SourceRates::with_cap(10, 2, 4, t0);
        let addr = |i: u16| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, i]);
        for i in 0..4 {
            assert!(r.admit(addr(i), t0));
        }
        assert_eq!(r.tracked(), 4);
        // Table full, nothing idle yet: new sources share the overflow bucket (burst 2).
        let newcomers = (10..20).filter(|&i| r.admit(addr(i), t0 + ms(10))).count();
        assert_eq!(newcomers, 2);
        assert_eq!(r.tracked(), 4, "the newcomers got no bucket of their own");
        // After burst/rate (0.2 s) the first four are full again, and a second has passed
        // since the table was last swept: they are forgotten, the newcomer gets a bucket.
        let later = t0 + Duration::from_secs(1);
        assert!(r.admit(addr(30), later));
        assert_eq!(r.tracked(), 1);
        // A forgotten source starts again with a full bucket, as it would have had.
        assert!(r.admit(addr(0), later));
        assert!(r.admit(addr(0), later));
        assert!(!r.admit(addr(0), later));
    }

    #[test]
    fn replies_are_bounded_by_three_times_what_the_client_sent() {
        let mut b = ReplyBudget::new(3);
        assert!(!b.allow_reply(1), "nothing received, nothing may go back");
        b.on_request(request_wire_len(52, 40)); // 140 octets on the wire
        assert!(b.allow_reply(reply_wire_len(300))); // 348
        assert!(!b.allow_reply(reply_wire_len(100)), "348 + 148 > 420");
        assert!(b.allow_reply(reply_wire_len(24)), "348 + 72 = 420");
        assert!(!b.allow_reply(1));
        // The next request adds to the budget.
        b.on_request(100);
        assert!(b.allow_reply(300));

        let mut off = ReplyBudget::new(0);
        assert!(off.allow_reply(u64::MAX / 2), "0 turns the limit off");
    }

    /// A long-header packet: Initial (type 0), version 1, the given connection IDs.
    fn long(dcid: &[u8], scid: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0, 0, 0, 0, 1, dcid.len() as u8];
        p.extend_from_slice(dcid);
        p.push(scid.len() as u8);
        p.extend_from_slice(scid);
        p.extend_from_slice(&[0; 20]);
        p
    }

    fn short(dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0x41];
        p.extend_from_slice(dcid);
        p.extend_from_slice(&[7; 30]);
        p
    }

    #[test]
    fn a_client_that_echoes_the_servers_connection_id_has_proved_its_address() {
        let (client_cid, server_cid) = ([1u8; 8], [9u8, 8, 7, 6, 5, 4, 3, 2]);
        let mut q = QuicAddressCheck::default();
        // The client's Initial names a CID of its own choosing: no proof.
        assert!(!q.on_request(&long(&client_cid, &[5; 8])));
        // A short-header packet before any reply: no proof either.
        assert!(!q.on_request(&short(&server_cid)));
        q.on_reply(&long(&[5; 8], &server_cid));
        // A guess is not the server's CID.
        assert!(!q.on_request(&short(&[9, 8, 7, 6, 5, 4, 3, 3])));
        // The client's Handshake, to the server's CID: proof.
        assert!(q.on_request(&long(&server_cid, &[5; 8])));
        assert!(q.on_request(&[]), "once proved, it stays proved");

        let mut q = QuicAddressCheck::default();
        q.on_reply(&long(&[5; 8], &server_cid));
        assert!(
            q.on_request(&short(&server_cid)),
            "a 1-RTT packet proves it too"
        );
    }

    #[test]
    fn malformed_headers_teach_and_prove_nothing() {
        let mut q = QuicAddressCheck::default();
        for junk in [
            &[0xc0u8][..],
            &[0xc0, 0, 0, 0, 1, 21],
            &[0xc0, 0, 0, 0, 1, 4, 1, 2],
        ] {
            q.on_reply(junk);
            assert!(!q.on_request(junk));
        }
        assert!(q.server_cids.is_empty());
        // An empty server CID is never learned (every datagram would start with it).
        q.on_reply(&long(&[5; 8], &[]));
        assert!(!q.on_request(&short(&[])));
    }

    #[test]
    fn a_lifted_budget_caps_nothing() {
        let mut b = ReplyBudget::new(3);
        b.on_request(100);
        assert!(!b.allow_reply(301));
        b.lift();
        assert!(b.allow_reply(1 << 20));
    }
}
