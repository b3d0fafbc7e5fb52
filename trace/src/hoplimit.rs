//! Hop-limit probing along the SRH path, for hops that do not fill trace records (Linux
//! kernel `seg6local End` nodes, plain routers between segments).
//!
//! Like tracepath: an ordinary UDP socket, unprivileged. The SRH is attached with
//! `IPV6_RTHDR`; probe k leaves with hop limit k; the ICMPv6 error it causes comes back on the
//! socket's error queue (`IPV6_RECVERR`) with the offender's address (`SO_EE_OFFENDER`), the
//! quoted packet's UDP payload, and — in `msg_name` — the quoted packet's *destination
//! address* (net/ipv6/datagram.c, `ipv6_recv_error`: `serr->addr_offset` points at the
//! quoted header's daddr). With an SRH that destination is the segment the packet was
//! heading to when it died, which is how a row is pinned to a hop of the stack address: an
//! End node rewrites the destination to the next segment *before* forwarding decrements the
//! hop limit, so the first Time Exceeded quoting segment j+1 comes from hop j itself.
//!
//! Constant flow identifiers (paris-traceroute): one socket, so one source port; one
//! destination port; flow label 0 (`IPV6_AUTOFLOWLABEL` off). Only the hop limit varies;
//! probes are told apart by the hop limit and sequence number in their payload, which the
//! error quotes back.
//!
//! Probe payload (16 octets):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    'H'        |     'T'       |     'R'       |     'C'       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Hop Limit   |    Round      |          Sequence             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Run identifier (8 octets)                 |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::model::{HopRow, Problem, Rtt, Status, Via};
use crate::sock::{self, ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH, ICMP6_TIME_EXCEEDED};

/// Destination port of hop-limit probes: traceroute's base port, which nothing listens on,
/// so the final host answers with Port Unreachable.
pub const DEFAULT_PORT: u16 = 33434;

const MAGIC: [u8; 4] = *b"HTRC";
const PAYLOAD_LEN: usize = 16;

/// Options of one hop-limit sweep.
#[derive(Debug, Clone)]
pub struct Config {
    /// Highest hop limit tried.
    pub max_hops: u8,
    /// How long to wait for each probe's answer.
    pub timeout: Duration,
    pub port: u16,
    /// Stop after this many consecutive silent hop limits.
    pub max_silent: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_hops: 30,
            timeout: Duration::from_millis(1000),
            port: DEFAULT_PORT,
            max_silent: 3,
        }
    }
}

/// What came back for one hop limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// ICMPv6 Time Exceeded from a node on the way.
    TimeExceeded,
    /// The final destination answered (Port Unreachable from it, or a datagram).
    Reached,
    /// Destination Unreachable with this code, from a node that could not go on.
    Unreachable(u8),
    /// Nothing before the timeout.
    Silent,
}

/// One hop limit's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub hop_limit: u8,
    pub outcome: Outcome,
    /// Who answered.
    pub from: Option<Ipv6Addr>,
    /// The segment the probe was heading to when it died (see the module documentation).
    pub quoted_dst: Option<Ipv6Addr>,
    pub rtt: Option<Duration>,
}

fn payload(hop_limit: u8, round: u8, seq: u16, run: u64) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[0..4].copy_from_slice(&MAGIC);
    p[4] = hop_limit;
    p[5] = round;
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(&run.to_be_bytes());
    p
}

/// (hop limit, round, sequence) of one of our probes, or `None` for anything else.
fn parse_payload(p: &[u8], run: u64) -> Option<(u8, u8, u16)> {
    if p.len() < PAYLOAD_LEN || p[0..4] != MAGIC || p[8..16] != run.to_be_bytes() {
        return None;
    }
    Some((p[4], p[5], u16::from_be_bytes([p[6], p[7]])))
}

/// One socket for every sweep of a run, so every probe of every round leaves from the same
/// source port.
pub struct Prober {
    sock: UdpSocket,
    run: u64,
}

impl Prober {
    pub fn new() -> io::Result<Prober> {
        Ok(Prober {
            sock: sock::udp_socket(None)?,
            run: run_id(),
        })
    }

    /// The local port every probe leaves from.
    pub fn port(&self) -> io::Result<u16> {
        Ok(self.sock.local_addr()?.port())
    }

    /// Sweeps hop limits 1, 2, ... towards `dst` (the final segment) with `srh` attached,
    /// until the destination answers, a node says it cannot go on, `max_silent` hop limits
    /// in a row stay silent, or `max_hops` is reached.
    pub fn sweep(
        &self,
        srh: &[u8],
        dst: Ipv6Addr,
        round: u8,
        cfg: &Config,
    ) -> io::Result<Vec<Answer>> {
        sweep_on(&self.sock, self.run, srh, dst, round, cfg)
    }
}

/// A sweep on a socket of its own (see [`Prober::sweep`]).
pub fn sweep(srh: &[u8], dst: Ipv6Addr, round: u8, cfg: &Config) -> io::Result<Vec<Answer>> {
    Prober::new()?.sweep(srh, dst, round, cfg)
}

fn sweep_on(
    s: &UdpSocket,
    run: u64,
    srh: &[u8],
    dst: Ipv6Addr,
    round: u8,
    cfg: &Config,
) -> io::Result<Vec<Answer>> {
    let fd = s.as_raw_fd();
    sock::set_srh(fd, srh)?;
    let to = SocketAddr::V6(SocketAddrV6::new(dst, cfg.port, 0, 0));
    let mut out = Vec::new();
    let mut silent = 0;
    for (seq, hl) in (1..=cfg.max_hops).enumerate() {
        sock::set_hop_limit(fd, hl)?;
        let sent = Instant::now();
        s.send_to(&payload(hl, round, seq as u16, run), to)?;
        let deadline = sent + cfg.timeout;
        let mut ans = Answer {
            hop_limit: hl,
            outcome: Outcome::Silent,
            from: None,
            quoted_dst: None,
            rtt: None,
        };
        'wait: loop {
            let (readable, err) = sock::wait(fd, deadline)?;
            if !readable && !err {
                break;
            }
            while let Some(e) = sock::recv_error(fd)? {
                // An answer to an earlier (timed-out) hop limit is late, not ours.
                if parse_payload(&e.payload, run).map(|(h, r, _)| (h, r)) != Some((hl, round)) {
                    continue;
                }
                ans.from = e.offender;
                ans.quoted_dst = e.quoted_dst;
                ans.rtt = Some(e.at.duration_since(sent));
                ans.outcome = match (e.icmp_type, e.icmp_code) {
                    (ICMP6_TIME_EXCEEDED, _) => Outcome::TimeExceeded,
                    (ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH) if e.offender == Some(dst) => {
                        Outcome::Reached
                    }
                    (ICMP6_DST_UNREACH, c) => Outcome::Unreachable(c),
                    _ => continue,
                };
                break 'wait;
            }
            if readable {
                // Something listens on the port and answered: the destination is reached.
                let mut buf = [0u8; 2048];
                if let Ok((_, from)) = s.recv_from(&mut buf) {
                    if let SocketAddr::V6(f) = from {
                        ans.from = Some(*f.ip());
                    }
                    ans.rtt = Some(sent.elapsed());
                    ans.outcome = Outcome::Reached;
                    break;
                }
            }
        }
        let stop = matches!(ans.outcome, Outcome::Reached | Outcome::Unreachable(_));
        silent = if ans.outcome == Outcome::Silent {
            silent + 1
        } else {
            0
        };
        out.push(ans);
        if stop || silent >= cfg.max_silent {
            break;
        }
    }
    Ok(out)
}

fn run_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// A hop of the stack address as hop-limit rows need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathHop {
    pub name: Option<String>,
    pub address: Ipv6Addr,
    pub resolved_by: Option<String>,
}

/// Turns sweeps (one per round) into table rows, one per hop limit, pinning each row to the
/// stack-address hop it is (see the module documentation), or to none for a router between
/// hops.
pub fn rows(path: &[PathHop], rounds: &[Vec<Answer>]) -> Vec<HopRow> {
    let max_hl = rounds
        .iter()
        .flat_map(|r| r.iter().map(|a| a.hop_limit))
        .max()
        .unwrap_or(0);
    let seg_pos = |a: Option<Ipv6Addr>| a.and_then(|a| path.iter().position(|h| h.address == a));
    let mut rows: Vec<HopRow> = Vec::new();
    // Position of the segment quoted by the previous answered hop limit: a change means the
    // answering node processed the SRH.
    let mut prev_pos: Option<usize> = Some(0);
    for hl in 1..=max_hl {
        let answers: Vec<&Answer> = rounds
            .iter()
            .filter_map(|r| r.iter().find(|a| a.hop_limit == hl))
            .collect();
        let mut rtt = Rtt::default();
        for a in &answers {
            rtt.add(a.rtt.map(|d| d.as_secs_f64() * 1000.0));
        }
        let best = answers.iter().find(|a| a.outcome != Outcome::Silent);
        let mut row = HopRow {
            hop: None,
            ttl: Some(hl),
            name: None,
            address: None,
            resolved_by: None,
            via: Via::HopLimit,
            rtt,
            offset_ms: None,
            status: Status::NoReply,
            problem: None,
        };
        let Some(a) = best else {
            prev_pos = None;
            rows.push(row);
            continue;
        };
        row.address = a.from.map(|x| x.to_string());
        let hop = match a.outcome {
            Outcome::Reached => Some(path.len() - 1),
            _ => {
                let pos = seg_pos(a.quoted_dst);
                let h = match (pos, prev_pos) {
                    (Some(p), Some(q)) if p > 0 && p != q => Some(p - 1),
                    _ => None,
                };
                prev_pos = pos;
                // A node that owns the segment address answers from it.
                h.or_else(|| seg_pos(a.from))
            }
        };
        if let Some(h) = hop {
            row.hop = Some(h as u32 + 1);
            row.name = path[h].name.clone();
            row.resolved_by = path[h].resolved_by.clone();
        }
        row.status = match a.outcome {
            Outcome::Unreachable(code) => {
                row.problem = Some(Problem {
                    layer: "route".into(),
                    reason: "unreachable".into(),
                    text: format!(
                        "{} answered ICMPv6 Destination Unreachable ({}) on the way to {}",
                        a.from.map_or("a node".into(), |x| x.to_string()),
                        unreach_text(code),
                        a.quoted_dst
                            .map_or("the next segment".into(), |x| x.to_string()),
                    ),
                });
                Status::Failed
            }
            _ => Status::Ok,
        };
        rows.push(row);
    }
    // The sweep stopped (-m) while every node still answered Time Exceeded: the final hop
    // was never reached, and its row must not silently go missing.
    let reached = rounds
        .iter()
        .flatten()
        .any(|a| a.outcome == Outcome::Reached);
    if let (false, Some(last), Some(dest)) = (reached, rows.last(), path.last())
        && last.status == Status::Ok
    {
        let max = last.ttl.unwrap_or(0);
        rows.push(HopRow {
            hop: Some(path.len() as u32),
            ttl: None,
            name: dest.name.clone(),
            address: Some(dest.address.to_string()),
            resolved_by: dest.resolved_by.clone(),
            via: Via::HopLimit,
            rtt: Rtt::default(),
            offset_ms: None,
            status: Status::NoReply,
            problem: Some(Problem {
                layer: "route".into(),
                reason: "not-reached".into(),
                text: format!(
                    "the sweep stopped at hop limit {max} (-m) before the final hop {} answered; \
                     raise -m",
                    dest.address
                ),
            }),
        });
        return rows;
    }
    if let Some(last) = rows.last_mut()
        && last.status == Status::NoReply
    {
        last.problem = Some(Problem {
            layer: "route".into(),
            reason: "no-reply".into(),
            text: format!(
                "no answer at hop limit {} or above: the path to {} is broken after the last node that answered",
                last.ttl.unwrap_or(0),
                path.last()
                    .map_or("the destination".into(), |h| h.address.to_string()),
            ),
        });
    }
    rows
}

fn unreach_text(code: u8) -> &'static str {
    match code {
        0 => "no route to destination",
        1 => "administratively prohibited",
        2 => "beyond scope of source address",
        3 => "address unreachable",
        4 => "port unreachable",
        5 => "source address failed ingress/egress policy",
        6 => "reject route to destination",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(hl: u8, outcome: Outcome, from: &str, quoted: &str, ms: u64) -> Answer {
        Answer {
            hop_limit: hl,
            outcome,
            from: Some(from.parse().unwrap()),
            quoted_dst: Some(quoted.parse().unwrap()),
            rtt: Some(Duration::from_millis(ms)),
        }
    }

    fn path() -> Vec<PathHop> {
        ["fc00:1::e", "fc00:3::e", "fd00:13::2"]
            .iter()
            .map(|s| PathHop {
                name: None,
                address: s.parse().unwrap(),
                resolved_by: Some("client".into()),
            })
            .collect()
    }

    #[test]
    fn payload_round_trips_and_rejects_other_runs() {
        let p = payload(7, 2, 300, 0xdead_beef);
        assert_eq!(parse_payload(&p, 0xdead_beef), Some((7, 2, 300)));
        assert_eq!(parse_payload(&p, 1), None);
        assert_eq!(parse_payload(&p[..15], 0xdead_beef), None);
    }

    /// The mixed topology: client > k1 (End) > r2 (router) > k3 (End) > host.
    #[test]
    fn end_nodes_are_pinned_by_the_quoted_segment() {
        let sweep = vec![
            a(1, Outcome::TimeExceeded, "fd00:10::2", "fc00:3::e", 1),
            a(2, Outcome::TimeExceeded, "fd00:11::2", "fc00:3::e", 2),
            a(3, Outcome::TimeExceeded, "fd00:12::2", "fd00:13::2", 3),
            a(4, Outcome::Reached, "fd00:13::2", "fd00:13::2", 4),
        ];
        let rows = rows(&path(), &[sweep]);
        let hops: Vec<Option<u32>> = rows.iter().map(|r| r.hop).collect();
        assert_eq!(hops, vec![Some(1), None, Some(2), Some(3)]);
        assert!(rows.iter().all(|r| r.status == Status::Ok));
        assert_eq!(rows[1].address.as_deref(), Some("fd00:11::2"));
    }

    #[test]
    fn silence_at_the_end_is_a_failure_with_words() {
        let mut s = vec![a(1, Outcome::TimeExceeded, "fd00:10::2", "fc00:3::e", 1)];
        s.push(Answer {
            hop_limit: 2,
            outcome: Outcome::Silent,
            from: None,
            quoted_dst: None,
            rtt: None,
        });
        let rows = rows(&path(), &[s]);
        assert_eq!(rows[1].status, Status::NoReply);
        assert!(
            rows[1]
                .problem
                .as_ref()
                .unwrap()
                .text
                .contains("hop limit 2"),
            "{:?}",
            rows[1].problem
        );
    }

    #[test]
    fn a_sweep_that_stops_before_the_final_hop_is_not_ok() {
        // Every hop limit up to -m answered Time Exceeded; the destination never did.
        let s = vec![
            a(1, Outcome::TimeExceeded, "fd00:10::2", "fc00:3::e", 1),
            a(2, Outcome::TimeExceeded, "fd00:11::2", "fc00:3::e", 2),
        ];
        let p = path();
        let rows = rows(&p, &[s]);
        let last = rows.last().unwrap();
        assert_eq!(last.status, Status::NoReply);
        assert_eq!(last.hop, Some(p.len() as u32), "the final hop's own row");
        assert_eq!(last.address, Some(p.last().unwrap().address.to_string()));
        let problem = last.problem.as_ref().unwrap();
        assert_eq!(problem.reason, "not-reached");
        assert!(problem.text.contains("hop limit 2"), "{problem:?}");
    }

    #[test]
    fn rounds_aggregate_into_loss_and_min_avg_max() {
        let r1 = vec![a(1, Outcome::Reached, "fd00:13::2", "fd00:13::2", 2)];
        let r2 = vec![Answer {
            hop_limit: 1,
            outcome: Outcome::Silent,
            from: None,
            quoted_dst: None,
            rtt: None,
        }];
        let r3 = vec![a(1, Outcome::Reached, "fd00:13::2", "fd00:13::2", 4)];
        let rows = rows(&path(), &[r1, r2, r3]);
        let r = &rows[0].rtt;
        assert_eq!((r.sent, r.received), (3, 2));
        assert_eq!(
            (r.min_ms, r.avg_ms, r.max_ms),
            (Some(2.0), Some(3.0), Some(4.0))
        );
        assert!((r.loss_pct() - 33.333).abs() < 0.01);
    }
}
