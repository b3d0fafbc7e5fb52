//! What a trace found: one row per hop, one row per layer, and the verdict.
//!
//! These types are the `--json` output (see `trace/schema/hoptrace.schema.json`, which the
//! tests validate real output against), so field names are part of the interface: add
//! fields, never rename them.

use serde::{Deserialize, Serialize};

/// The state of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Answered, and nothing is wrong.
    Ok,
    /// Answered with an error, or a check failed.
    Failed,
    /// Nothing came back before the timeout.
    NoReply,
    /// Not tried, because something before it failed.
    Skipped,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::NoReply => "no-reply",
            Status::Skipped => "skipped",
        }
    }

    /// Whether the row counts as healthy for the exit code.
    pub const fn is_ok(self) -> bool {
        matches!(self, Status::Ok)
    }
}

/// How a hop row was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// A stack-aware hop filled a record of the probe's trace TLV.
    Trace,
    /// An ICMPv6 error (Time Exceeded, Destination Unreachable) to a hop-limited probe:
    /// legacy SRv6 nodes and plain routers.
    HopLimit,
    /// The final hop's probe answer (and the resolved path it carries).
    Answer,
    /// A stack report: this hop is the failing one, or the one that sent it.
    Report,
    /// Only known from the stack address; nothing came back from it.
    Address,
}

impl Via {
    pub const fn as_str(self) -> &'static str {
        match self {
            Via::Trace => "trace",
            Via::HopLimit => "hop-limit",
            Via::Answer => "answer",
            Via::Report => "report",
            Via::Address => "address",
        }
    }
}

/// Round-trip statistics over the rounds of a run (mtr's report columns).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rtt {
    /// Probes (or checks) attempted.
    pub sent: u32,
    /// Of those, how many were answered.
    pub received: u32,
    /// Milliseconds of the last answered one.
    pub last_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Rtt {
    /// Adds one attempt: `Some(ms)` answered, `None` lost.
    pub fn add(&mut self, sample: Option<f64>) {
        self.sent += 1;
        let Some(ms) = sample else { return };
        // Microseconds are the resolution of every clock involved (trace records included).
        let ms = (ms * 1000.0).round() / 1000.0;
        let n = f64::from(self.received);
        self.received += 1;
        self.last_ms = Some(ms);
        self.min_ms = Some(self.min_ms.map_or(ms, |m| m.min(ms)));
        self.max_ms = Some(self.max_ms.map_or(ms, |m| m.max(ms)));
        let avg = self.avg_ms.map_or(ms, |a| (a * n + ms) / (n + 1.0));
        self.avg_ms = Some((avg * 1000.0).round() / 1000.0);
    }

    /// Per cent of attempts that got no answer; 0 when nothing was sent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            f64::from(self.sent - self.received) * 100.0 / f64::from(self.sent)
        }
    }
}

/// What went wrong, in the words of the stack report format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `route`, `service`, `tcp`, `tls`, `http`, ...
    pub layer: String,
    /// Stable reason name (`nxdomain`, `hop-limit-exceeded`, `tls-failure`, `http-5xx`, ...).
    pub reason: String,
    /// One human sentence, with the details the hop or the check gave.
    pub text: String,
}

/// One hop (or one router between hops) of the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopRow {
    /// Position in the stack address, counted from 1 like mtr and `hop` do (the wire's hop
    /// index + 1); `None` for a router between two hops that is not itself a segment.
    pub hop: Option<u32>,
    /// Hop limit at which it answered (hop-limit probing only).
    pub ttl: Option<u8>,
    /// The name from the stack address, if the hop has one.
    pub name: Option<String>,
    /// The address it answered from, or the segment's address.
    pub address: Option<String>,
    /// `literal`, `--resolve`, `client DNS`, `hop N (name)` (N counted from 1), or `None`
    /// when not known.
    pub resolved_by: Option<String>,
    pub via: Via,
    pub rtt: Rtt,
    /// Milliseconds from sending the probe to this hop's trace record (clocks of client and
    /// hop assumed in step, as on one host or with NTP); draws the waterfall.
    pub offset_ms: Option<f64>,
    pub status: Status,
    pub problem: Option<Problem>,
}

/// TLS handshake results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: Option<String>,
    pub cipher: Option<String>,
    /// Subject of the end-entity certificate (RFC 4514 string).
    pub subject: Option<String>,
    /// Whether the chain verified against the trust anchors for the name asked.
    pub verified: bool,
    /// Why it did not verify.
    pub verify_error: Option<String>,
    /// The application protocol the server chose by ALPN (`h2`, `http/1.1`); absent when it
    /// chose none (or none was offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
}

/// What the MQTT broker answered hoptrace's CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttInfo {
    /// The CONNACK's return code (MQTT 3.1.1: 0 accepted, 1-5 refused).
    pub return_code: u8,
    pub accepted: bool,
    pub session_present: bool,
}

/// What the CoAP endpoint answered hoptrace's ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoapInfo {
    /// The answer's message type: `RST` (the ping's answer), else `ACK`, `CON`, `NON`.
    pub answer: String,
    /// The Message ID of the ping, which the answer carried.
    pub message_id: u16,
}

/// HTTP request results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    pub status: Option<u16>,
    /// The status line's reason phrase.
    pub reason: Option<String>,
}

/// What the final hop said about the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// `exists`, `unknown`, `down`, `layer-mismatch`.
    pub status: String,
    /// `handoff`, `proxy-unix`, `proxy-tcp`, `terminate-tls`, or `None` if not said.
    pub mode: Option<String>,
    /// The final hop's text: the target it maps to, registered processes, ...
    pub target: String,
}

/// One layer check at the final hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    /// `service`, `tcp`, `tls`, `http`, `h2`, `mqtt`, `coap`.
    pub layer: String,
    pub status: Status,
    /// Time the check took (for http: time to first byte).
    pub rtt: Rtt,
    /// Milliseconds from the start of the layer checks to the start of this one.
    pub start_ms: Option<f64>,
    /// One line for the table.
    pub detail: String,
    pub problem: Option<Problem>,
    pub tls: Option<TlsInfo>,
    pub http: Option<HttpInfo>,
    pub service: Option<ServiceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coap: Option<CoapInfo>,
}

/// Where the first failure is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstFailure {
    /// `hop` or `layer`: which table the row is in.
    pub row: String,
    /// Index of the row in `hops` or `layers`.
    pub index: usize,
    /// Stack-address position of the hop (from 1), if it is one.
    pub hop: Option<u32>,
    pub problem: Problem,
}

/// The result of a whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceReport {
    /// Version of this document's layout.
    pub schema_version: u32,
    /// The stack address, as given.
    pub address: String,
    /// Rounds run (`-c N`).
    pub rounds: u32,
    /// `trace` (stack-aware probe), `hop-limit`, or `both`.
    pub method: String,
    pub hops: Vec<HopRow>,
    pub layers: Vec<LayerRow>,
    /// True only when every hop and every layer is fine.
    pub ok: bool,
    pub first_failure: Option<FirstFailure>,
    /// The bare probe met only silence, and the probes and checks went in UDP to the first
    /// hop's `udp_ingress` at this port: the path to it drops routing headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_ingress: Option<u16>,
}

impl TraceReport {
    pub const SCHEMA_VERSION: u32 = 1;

    /// A report with `ok`/`first_failure` computed from the rows.
    pub fn new(
        address: String,
        rounds: u32,
        method: &str,
        hops: Vec<HopRow>,
        layers: Vec<LayerRow>,
    ) -> TraceReport {
        let mut r = TraceReport {
            schema_version: Self::SCHEMA_VERSION,
            address,
            rounds,
            method: method.to_owned(),
            hops,
            layers,
            ok: false,
            first_failure: None,
            udp_ingress: None,
        };
        r.settle();
        r
    }

    /// Recomputes `ok` and `first_failure`. Hops come before layers because a layer check
    /// behind a broken hop only repeats the hop's failure.
    pub fn settle(&mut self) {
        self.first_failure = self
            .hops
            .iter()
            .enumerate()
            .find(|&(i, h)| !h.status.is_ok() && !self.is_silent_transit(i))
            .map(|(i, h)| FirstFailure {
                row: "hop".into(),
                index: i,
                hop: h.hop,
                problem: h.problem.clone().unwrap_or_else(|| no_reply_problem(h)),
            })
            .or_else(|| {
                self.layers
                    .iter()
                    .enumerate()
                    .find(|(_, l)| !l.status.is_ok())
                    .map(|(i, l)| FirstFailure {
                        row: "layer".into(),
                        index: i,
                        hop: None,
                        problem: l.problem.clone().unwrap_or_else(|| Problem {
                            layer: l.layer.clone(),
                            reason: l.status.as_str().into(),
                            text: format!("the {} check did not complete", l.layer),
                        }),
                    })
            });
        self.ok = self.first_failure.is_none() && !self.hops.is_empty();
    }

    /// A router between hops (not a segment) that did not answer its hop limit while a
    /// later hop limit did: it rate-limits or drops ICMPv6, it does not break the path.
    fn is_silent_transit(&self, i: usize) -> bool {
        let h = &self.hops[i];
        h.hop.is_none()
            && h.status == Status::NoReply
            && self.hops[i + 1..].iter().any(|l| l.status.is_ok())
    }

    /// The process exit code: 0 only when everything is fine.
    pub fn exit_code(&self) -> u8 {
        if self.ok { 0 } else { 1 }
    }
}

fn no_reply_problem(h: &HopRow) -> Problem {
    Problem {
        layer: "route".into(),
        reason: "no-reply".into(),
        text: match &h.address {
            Some(a) => format!("nothing came back from {a} before the timeout"),
            None => "nothing came back from this hop before the timeout".into(),
        },
    }
}
