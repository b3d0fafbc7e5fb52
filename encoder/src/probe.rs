//! The probe as a state machine with no sockets and no clock: what to do with a probe's
//! replies, decided apart from how they are received, so that `hop` (tokio) and `hoptrace`
//! (blocking `poll`) drive the same logic and it is tested from crafted reports.
//!
//! ```text
//!            poll_transmit(now) ── true ──▶ driver sends the probe datagram
//!                   │
//!   on_datagram(now, from, bytes) ─┐ (stack reports with our nonce: answer or error)
//!   on_icmp(now, error)     ─┼──▶ ProbeMachine ──▶ poll_timeout() ─▶ driver waits until then
//!   handle_timeout(now)     ─┘          │
//!                                       └── is_done() ──▶ outcome()
//! ```
//!
//! Rules, the same for both drivers but for [`Mode`]:
//! - a report counts only with this probe's nonce and from the address it names as its
//!   reporter (a hop reports from the address the probe reached it at); an answer only from
//!   the final hop: its address when the client knows it, else the last address of the path
//!   it reports. Anything else (garbage, other probes' reports, a stranger who learnt the
//!   nonce) is ignored, and so is everything once the machine is done (late duplicates);
//! - an **answer** ends the probe;
//! - an **error report** ends it in [`Mode::FirstReport`] (`hop`); in [`Mode::Collect`]
//!   (`hoptrace`) the probe listens on for `grace` (another hop may also say something);
//! - an **ICMPv6 error** shortens the current wait to `grace` after it: a hopd hop sends its
//!   stack report (which names the hop and the reason better) right after its ICMPv6 error;
//! - when a wait runs out, the probe is sent again while `tries` last; then it is done.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::wire::report::{ErrorReport, ProbeAnswer, ReportBody, ReportRepr};
use crate::wire::tlv::{Tlv, TlvRepr, TraceRecord};

/// How the probe treats an error report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The first report, answer or error, ends the probe (`hop`).
    FirstReport,
    /// Error reports are collected, for `grace` after each; only an answer ends the probe
    /// early (`hoptrace`).
    Collect,
}

/// Timing of a probe.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// How long to wait for a report after each send.
    pub timeout: Duration,
    /// How many times to send before giving up (a lost datagram is retried).
    pub tries: u32,
    /// After an ICMPv6 error (and in [`Mode::Collect`] after an error report), how long to
    /// wait for a report that says more.
    pub grace: Duration,
    /// The final hop's address when the client knows it (a literal, its own lookup, a
    /// cached path); `None` while a hop is to resolve it.
    pub final_hop: Option<Ipv6Addr>,
}

/// What came back, each with its time after the send it answered.
#[derive(Debug, Clone)]
pub struct Outcome<I> {
    pub nonce: u32,
    /// Probes sent.
    pub sent: u32,
    /// The final hop's answer and who sent it.
    pub answer: Option<(ProbeAnswer, Ipv6Addr, Duration)>,
    /// Error reports, with their reporter.
    pub errors: Vec<(ErrorReport, Ipv6Addr, Duration)>,
    /// ICMPv6 errors about the probe, as the driver read them.
    pub icmp: Vec<(I, Duration)>,
}

impl<I> Outcome<I> {
    /// Nothing came back at all.
    pub fn is_silent(&self) -> bool {
        self.answer.is_none() && self.errors.is_empty() && self.icmp.is_empty()
    }
}

/// One probe's logic; `I` is whatever the driver reads an ICMPv6 error as.
#[derive(Debug)]
pub struct ProbeMachine<I> {
    opts: Options,
    out: Outcome<I>,
    /// When the current send left; `None` before the first.
    sent_at: Option<Instant>,
    /// When the current wait ends.
    deadline: Option<Instant>,
    /// A send is due (at start, and after a wait ran out with tries left).
    send_due: bool,
    done: bool,
}

impl<I> ProbeMachine<I> {
    /// A probe that will carry `nonce` in its trace TLV.
    pub fn new(nonce: u32, opts: Options) -> Self {
        ProbeMachine {
            opts,
            out: Outcome {
                nonce,
                sent: 0,
                answer: None,
                errors: Vec::new(),
                icmp: Vec::new(),
            },
            sent_at: None,
            deadline: None,
            send_due: true,
            done: false,
        }
    }

    pub fn nonce(&self) -> u32 {
        self.out.nonce
    }

    /// Whether the driver must send the probe datagram now; the machine counts it as sent
    /// at `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> bool {
        if self.done || !self.send_due {
            return false;
        }
        self.send_due = false;
        self.out.sent += 1;
        self.sent_at = Some(now);
        self.deadline = Some(now + self.opts.timeout);
        true
    }

    /// When the driver must call [`ProbeMachine::handle_timeout`] at the latest; `None` when
    /// done (or before the first send).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done { None } else { self.deadline }
    }

    fn since_send(&self, now: Instant) -> Duration {
        self.sent_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// Shorten the current wait to `grace` from `now`.
    fn grace_from(&mut self, now: Instant) {
        let end = now + self.opts.grace;
        self.deadline = Some(self.deadline.map_or(end, |d| d.min(end)));
    }

    /// A datagram from `from` arrived at the probe's socket.
    pub fn on_datagram(&mut self, now: Instant, from: Ipv6Addr, bytes: &[u8]) {
        if self.done {
            return;
        }
        let Ok(rep) = ReportRepr::parse_bytes(bytes) else {
            return;
        };
        if rep.nonce != self.out.nonce || rep.reporter != from {
            return;
        }
        if let ReportBody::Answer(a) = &rep.body {
            let final_hop = self
                .opts
                .final_hop
                .or_else(|| a.path.last().map(|e| e.address));
            if final_hop.is_some_and(|f| f != from) {
                return;
            }
        }
        let at = self.since_send(now);
        match rep.body {
            ReportBody::Answer(a) => {
                self.out.answer = Some((a, rep.reporter, at));
                self.done = true;
            }
            ReportBody::Error(e) => {
                let seen = self
                    .out
                    .errors
                    .iter()
                    .any(|(f, by, _)| *f == e && *by == rep.reporter);
                if !seen {
                    self.out.errors.push((e, rep.reporter, at));
                }
                match self.opts.mode {
                    Mode::FirstReport => self.done = true,
                    Mode::Collect => self.grace_from(now),
                }
            }
        }
    }

    /// The socket reported an ICMPv6 error about the probe.
    pub fn on_icmp(&mut self, now: Instant, icmp: I) {
        if self.done {
            return;
        }
        let at = self.since_send(now);
        self.out.icmp.push((icmp, at));
        self.grace_from(now);
    }

    /// The driver's wait reached [`ProbeMachine::poll_timeout`] (calling it earlier does
    /// nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        // In Collect mode an error report or ICMPv6 error already said what there is to say:
        // sending again would only collect the same.
        let heard = !self.out.errors.is_empty() && self.opts.mode == Mode::Collect;
        if self.out.sent < self.opts.tries.max(1) && !heard {
            self.send_due = true;
            self.deadline = None;
        } else {
            self.done = true;
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What came back (call when done; earlier it is what came back so far).
    pub fn outcome(self) -> Outcome<I> {
        self.out
    }
}

/// The final hop's address as [`Options::final_hop`] wants it: `None` for a placeholder (a
/// hop is to resolve it).
pub fn known_final_hop(final_dst: Ipv6Addr) -> Option<Ipv6Addr> {
    (!crate::wire::tlv::is_placeholder(&final_dst)).then_some(final_dst)
}

/// What a hop may spend resolving the next hop's name before it reports: hopd's default
/// resolver timeout (`[border.resolver] timeout_ms`).
pub const HOP_RESOLVE_TIMEOUT: Duration = Duration::from_millis(2000);

/// The wait for an answer when no name has to be resolved on the way.
pub const BASE_WAIT: Duration = Duration::from_millis(1500);

/// How long to wait for a probe's answer, by default, when `names_en_route` hop names are
/// resolved by the hops ahead: they resolve one after another, and a hop whose DNS server
/// does not answer reports `dns-timeout` only when its resolver gives up, so the prober
/// waits for each of them on top of the base. A shorter wait blames the silence on the
/// first hop instead of naming the hop whose DNS timed out.
pub fn default_wait(names_en_route: usize) -> Duration {
    BASE_WAIT + HOP_RESOLVE_TIMEOUT * u32::try_from(names_en_route).unwrap_or(u32::MAX)
}

/// The hop names of `addr` that hops resolve on the way: every named hop after the first,
/// except those the client resolves itself (`resolved_here`, e.g. `--resolve NAME=ADDR`).
pub fn names_en_route(addr: &crate::StackAddress, resolved_here: impl Fn(&str) -> bool) -> usize {
    addr.hops()
        .iter()
        .skip(1)
        .filter_map(|h| h.name())
        .filter(|n| !resolved_here(n.as_str()))
        .count()
}

/// Which hop an ICMPv6 Destination Unreachable about a packet sent along `sent` (one address
/// per hop in travel order, placeholders for the names hops resolve) names: **the hop whose
/// segment could not be reached**, its quoted destination. When that address is one a hop
/// resolved on the way and more than one name was left to the hops, the error alone cannot
/// tell whose it is: [`UnreachableHop::OneOf`] lists the candidates, and a probe along the
/// address cut after the first of them ([`StackAddress::cut_after`]) tells — met by the same
/// error (the same quoted destination), the candidate is the one; otherwise the next.
///
/// [`StackAddress::cut_after`]: crate::StackAddress::cut_after
pub fn unreachable_hop(sent: &[Ipv6Addr], quoted: Option<Ipv6Addr>) -> UnreachableHop {
    let Some(quoted) = quoted else {
        return UnreachableHop::Hop(0);
    };
    if let Some(i) = sent.iter().position(|s| *s == quoted) {
        return UnreachableHop::Hop(i);
    }
    let left_to_hops: Vec<usize> = (0..sent.len())
        .filter(|&i| crate::wire::tlv::is_placeholder(&sent[i]))
        .collect();
    match left_to_hops.as_slice() {
        [] => UnreachableHop::Hop(0),
        [one] => UnreachableHop::Hop(*one),
        _ => UnreachableHop::OneOf(left_to_hops),
    }
}

/// See [`unreachable_hop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnreachableHop {
    /// This hop (from 0) could not be reached.
    Hop(usize),
    /// One of these hops, whose names were resolved on the way, in path order.
    OneOf(Vec<usize>),
}

/// The records of the trace TLV value a probe answer carries back (opaque in
/// `wire::report`); empty when it is not a valid trace.
pub fn trace_records(value: &[u8]) -> Vec<TraceRecord> {
    let t = Tlv {
        at: 0,
        tlv_type: crate::wire::tlv::TYPE_TRACE,
        value,
    };
    match TlvRepr::parse(&t) {
        Ok(TlvRepr::Trace(tr)) => tr.records,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod unreachable_tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_hop_whose_segment_could_not_be_reached() {
        let resolved = [a("fc00:1::e"), a("fc00:2::e"), a("fd00:3::2")];
        assert_eq!(
            unreachable_hop(&resolved, Some(a("fc00:2::e"))),
            UnreachableHop::Hop(1)
        );
        assert_eq!(
            unreachable_hop(&resolved, Some(a("fd00:3::2"))),
            UnreachableHop::Hop(2)
        );
        assert_eq!(unreachable_hop(&resolved, None), UnreachableHop::Hop(0));
        let ph = |i: u8| crate::wire::tlv::placeholder(i);
        // One name left to the hops: the quoted address can only be its.
        let one = [a("fc00:1::e"), a("fc00:2::e"), ph(0)];
        assert_eq!(
            unreachable_hop(&one, Some(a("fd00:3::2"))),
            UnreachableHop::Hop(2)
        );
        // Two: either; the first of them is probed by cutting the address after it.
        let two = [a("fc00:1::e"), ph(0), ph(1)];
        assert_eq!(
            unreachable_hop(&two, Some(a("fd00:3::2"))),
            UnreachableHop::OneOf(vec![1, 2])
        );
        assert_eq!(
            unreachable_hop(&two, Some(a("fc00:1::e"))),
            UnreachableHop::Hop(0)
        );
    }

    #[test]
    fn cutting_an_address_keeps_layers_and_service() {
        let addr =
            crate::StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3/x").unwrap();
        assert_eq!(
            addr.cut_after(1).to_string(),
            "github.com>org:tcp+tls+http+restapiv3/x"
        );
        assert_eq!(addr.cut_after(9).to_string(), addr.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_wait_covers_every_hop_that_resolves_a_name() {
        let a = crate::StackAddress::parse("github.com>org>yc:tcp+http+web").unwrap();
        assert_eq!(names_en_route(&a, |_| false), 2);
        assert_eq!(names_en_route(&a, |n| n == "yc"), 1);
        assert_eq!(default_wait(2), Duration::from_millis(5500));
        let literal = crate::StackAddress::parse("[fd00::1]>[fd00::2]:udp+dns+resolver").unwrap();
        assert_eq!(default_wait(names_en_route(&literal, |_| false)), BASE_WAIT);
    }
    use crate::wire::report::{
        PathEntry, Reason, ReportLayer, ResolvedBy, ServiceMode, ServiceStatus,
    };

    const NONCE: u32 = 0x0a0b_0c0d;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn opts(mode: Mode) -> Options {
        Options {
            mode,
            timeout: Duration::from_millis(1500),
            tries: 2,
            grace: Duration::from_millis(300),
            final_hop: None,
        }
    }

    /// A report as received: its sender is the reporter it names.
    fn on<I>(m: &mut ProbeMachine<I>, at: Instant, bytes: Vec<u8>) {
        let from = ReportRepr::parse_bytes(&bytes).map_or(Ipv6Addr::UNSPECIFIED, |r| r.reporter);
        m.on_datagram(at, from, &bytes);
    }

    fn bytes(nonce: u32, reporter: &str, body: ReportBody) -> Vec<u8> {
        let r = ReportRepr {
            nonce,
            reporter: a(reporter),
            body,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn answer() -> ReportBody {
        ReportBody::Answer(ProbeAnswer {
            path: vec![PathEntry {
                address: a("fd00:3::2"),
                resolved_by: ResolvedBy::Client,
                name: "yc".into(),
            }],
            status: ServiceStatus::Exists,
            mode: Some(ServiceMode::ProxyTcp),
            text: String::new(),
            trace: Vec::new(),
            direct_port: None,
        })
    }

    fn error(reason: Reason, hop: u8) -> ReportBody {
        ReportBody::Error(ErrorReport {
            hop_index: hop,
            hop_name: "org".into(),
            hop_address: None,
            layer: ReportLayer::Route,
            reason,
            text: String::new(),
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_answer_ends_the_probe_with_its_reporter_and_time() {
        let t0 = Instant::now();
        let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::FirstReport));
        assert!(m.poll_transmit(t0));
        assert!(!m.poll_transmit(t0), "one send at a time");
        assert_eq!(m.poll_timeout(), Some(t0 + ms(1500)));
        on(&mut m, t0 + ms(3), bytes(NONCE, "fd00:3::2", answer()));
        assert!(m.is_done());
        assert_eq!(m.poll_timeout(), None);
        let o = m.outcome();
        let (ans, by, at) = o.answer.unwrap();
        assert_eq!(
            (ans.status, by, at, o.sent),
            (ServiceStatus::Exists, a("fd00:3::2"), ms(3), 1)
        );
    }

    #[test]
    fn every_error_reason_ends_a_first_report_probe_and_is_kept_as_sent() {
        for &reason in Reason::ALL {
            let t0 = Instant::now();
            let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::FirstReport));
            m.poll_transmit(t0);
            on(
                &mut m,
                t0 + ms(9),
                bytes(NONCE, "fc00:2::e", error(reason, 2)),
            );
            assert!(m.is_done(), "{reason:?}");
            let o = m.outcome();
            assert_eq!(o.errors.len(), 1);
            let (e, by, at) = &o.errors[0];
            assert_eq!(
                (e.reason, e.hop_index, *by, *at),
                (reason, 2, a("fc00:2::e"), ms(9))
            );
            assert!(o.answer.is_none());
        }
    }

    #[test]
    fn in_collect_mode_an_error_report_waits_grace_for_more_and_is_not_resent() {
        let t0 = Instant::now();
        let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::Collect));
        m.poll_transmit(t0);
        on(
            &mut m,
            t0 + ms(10),
            bytes(NONCE, "fc00:2::e", error(Reason::Nxdomain, 2)),
        );
        assert!(!m.is_done());
        assert_eq!(m.poll_timeout(), Some(t0 + ms(310)));
        // The same report again (a retransmission somewhere) is not a second error.
        on(
            &mut m,
            t0 + ms(20),
            bytes(NONCE, "fc00:2::e", error(Reason::Nxdomain, 2)),
        );
        m.handle_timeout(t0 + ms(310));
        assert!(m.is_done());
        assert!(
            !m.poll_transmit(t0 + ms(311)),
            "no second send after an error report"
        );
        assert_eq!(m.outcome().errors.len(), 1);
    }

    #[test]
    fn an_icmp_error_shortens_the_wait_and_a_report_after_it_still_counts() {
        let t0 = Instant::now();
        let mut m = ProbeMachine::new(NONCE, opts(Mode::FirstReport));
        m.poll_transmit(t0);
        m.on_icmp(t0 + ms(5), "time exceeded from fd00:2::1");
        assert_eq!(m.poll_timeout(), Some(t0 + ms(305)));
        on(
            &mut m,
            t0 + ms(6),
            bytes(NONCE, "fc00:1::e", error(Reason::HopLimitExceeded, 1)),
        );
        let o = m.outcome();
        assert_eq!(o.icmp, vec![("time exceeded from fd00:2::1", ms(5))]);
        assert_eq!(o.errors[0].0.reason, Reason::HopLimitExceeded);
    }

    #[test]
    fn silence_is_retried_then_given_up_and_early_timeouts_do_nothing() {
        let t0 = Instant::now();
        let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::FirstReport));
        assert!(m.poll_transmit(t0));
        m.handle_timeout(t0 + ms(1000));
        assert!(!m.is_done() && !m.poll_transmit(t0 + ms(1000)), "not yet");
        m.handle_timeout(t0 + ms(1500));
        assert!(m.poll_transmit(t0 + ms(1500)), "second try");
        assert_eq!(m.poll_timeout(), Some(t0 + ms(3000)));
        m.handle_timeout(t0 + ms(3000));
        assert!(m.is_done());
        assert!(!m.poll_transmit(t0 + ms(3000)));
        let o = m.outcome();
        assert_eq!(o.sent, 2);
        assert!(o.is_silent());
    }

    #[test]
    fn an_answer_to_the_first_try_arriving_during_the_second_is_taken() {
        let t0 = Instant::now();
        let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::FirstReport));
        m.poll_transmit(t0);
        m.handle_timeout(t0 + ms(1500));
        m.poll_transmit(t0 + ms(1500));
        on(&mut m, t0 + ms(1600), bytes(NONCE, "fd00:3::2", answer()));
        let o = m.outcome();
        assert_eq!(o.sent, 2);
        assert_eq!(o.answer.unwrap().2, ms(100), "timed from the latest send");
    }

    /// Until 2026-12-05 the nonce alone made a report count: anyone who saw one probe (or
    /// guessed) could answer it for the final hop.
    #[test]
    fn only_the_final_hop_answers_and_every_hop_reports_from_its_own_address() {
        let t0 = Instant::now();
        let stranger = a("2001:db8::66");
        // Late-bound final hop: the answer must come from the path's last address.
        let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::Collect));
        m.poll_transmit(t0);
        let forged = bytes(NONCE, "fd00:3::2", answer());
        m.on_datagram(t0 + ms(1), stranger, &forged);
        on(&mut m, t0 + ms(2), bytes(NONCE, "2001:db8::66", answer()));
        on(
            &mut m,
            t0 + ms(2),
            bytes(NONCE, "2001:db8::66", error(Reason::Nxdomain, 2)),
        );
        m.on_datagram(
            t0 + ms(3),
            stranger,
            &bytes(NONCE, "fc00:2::e", error(Reason::Nxdomain, 2)),
        );
        assert!(!m.is_done());
        on(
            &mut m,
            t0 + ms(4),
            bytes(NONCE, "fc00:2::e", error(Reason::Nxdomain, 2)),
        );
        on(&mut m, t0 + ms(5), forged.clone());
        assert!(m.is_done());
        let o = m.outcome();
        assert_eq!(o.answer.unwrap().1, a("fd00:3::2"));
        // Only the hop that sent its own report, and the stranger's one from itself.
        let reporters: Vec<_> = o.errors.iter().map(|e| e.1).collect();
        assert_eq!(reporters, [stranger, a("fc00:2::e")]);

        // A final hop the client knows: an answer from any other address is not its.
        let mut m = ProbeMachine::<()>::new(
            NONCE,
            Options {
                final_hop: Some(a("fd00:3::9")),
                ..opts(Mode::FirstReport)
            },
        );
        m.poll_transmit(t0);
        on(&mut m, t0 + ms(1), forged);
        assert!(!m.is_done());
    }

    #[test]
    fn late_duplicates_other_nonces_and_garbage_change_nothing() {
        let t0 = Instant::now();
        let mut m = ProbeMachine::<()>::new(NONCE, opts(Mode::FirstReport));
        m.poll_transmit(t0);
        m.on_datagram(t0 + ms(1), a("fd00:3::2"), b"not a report");
        on(&mut m, t0 + ms(2), bytes(NONCE ^ 1, "fd00:9::9", answer()));
        assert!(!m.is_done(), "ignored");
        on(&mut m, t0 + ms(3), bytes(NONCE, "fd00:3::2", answer()));
        // After the outcome: a duplicate answer, a late error, an ICMPv6 error.
        on(&mut m, t0 + ms(4), bytes(NONCE, "fd00:3::3", answer()));
        on(
            &mut m,
            t0 + ms(5),
            bytes(NONCE, "fc00:2::e", error(Reason::Nxdomain, 2)),
        );
        m.on_icmp(t0 + ms(6), ());
        m.handle_timeout(t0 + ms(5000));
        let o = m.outcome();
        assert_eq!(o.answer.unwrap().1, a("fd00:3::2"));
        assert!(o.errors.is_empty() && o.icmp.is_empty());
        assert_eq!(o.sent, 1);
    }
}
