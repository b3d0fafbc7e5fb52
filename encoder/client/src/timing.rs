//! Per-phase timings of one request, like curl's `-w` variables: all durations count from the
//! start of the request, so "first byte" includes DNS, probe, connect and handshake. Printed
//! for humans with `-v`, as JSON with `--json`.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Where the resolved path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathSource {
    /// Every hop was a literal, an override or resolved by the client: no probe needed.
    Client,
    /// A probe returned it.
    Probe,
    /// The resolved-path cache had it (no DNS, no probe).
    Cache,
    /// No path: `hop get` of a plain `http(s)://` URL, straight to the server (no SRH).
    Direct,
}

/// One hop of the resolved path, as shown with `-v` and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HopTiming {
    /// 1 = first hop.
    pub hop: usize,
    pub name: String,
    pub address: Ipv6Addr,
    /// The segment a request lists this hop at: its kernel End SID on the fast path, else
    /// `address` (hopd).
    pub segment: Ipv6Addr,
    /// Whether `segment` is the hop's kernel End SID.
    pub fast_path: bool,
    /// `client` or `hop N` (1-based), or `cache`.
    pub resolved_by: String,
    /// What this hop wrote in the probe's trace record (`forwarded`, `bound`, `delivered`), if
    /// it wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_status: Option<String>,
}

/// Timings of one request. Every field is a duration since [`Timings::start`], `None` when the
/// phase did not happen (no DNS for literals, no probe on a cache hit, ...).
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    #[serde(skip)]
    pub start: Instant,
    pub path_source: Option<PathSource>,
    /// Whether a probe was sent (false on a cache hit: the acceptance check).
    pub probed: bool,
    #[serde(serialize_with = "ser_ms")]
    pub dns: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub probe: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub connect: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub tls: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub first_byte: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub total: Option<Duration>,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The port the connection went to at the final hop (`None` before a connect).
    pub port: Option<u16>,
    /// Whether `port` is the service's direct port (hopd not in the connection).
    pub direct_port: bool,
    /// Whether the connection was made from the path's connect record (`client::record`):
    /// destination, port and SRH as a previous request made them, `paths.json` not read
    /// before the response.
    pub connect_record: bool,
    /// The `udp_ingress` port packets to the first hop went to in UDP, because the path to
    /// it drops routing headers (`None`: bare, as usual).
    pub udp_ingress: Option<u16>,
    /// This request found that out: its bare probe met only silence, and the one in UDP an
    /// answer.
    pub udp_fallback: bool,
    pub hops: Vec<HopTiming>,
    /// The subcommand already printed these timings inside its own `--json` object
    /// (`hop resolve`), so no second object follows on stderr.
    #[serde(skip)]
    pub printed: bool,
}

fn ser_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3),
        None => s.serialize_none(),
    }
}

impl Timings {
    pub fn start() -> Timings {
        Timings {
            start: Instant::now(),
            path_source: None,
            probed: false,
            dns: None,
            probe: None,
            connect: None,
            tls: None,
            first_byte: None,
            total: None,
            bytes: 0,
            http_status: None,
            port: None,
            direct_port: false,
            connect_record: false,
            udp_ingress: None,
            udp_fallback: false,
            hops: Vec::new(),
            printed: false,
        }
    }

    /// Time since the start, to store in one of the fields.
    pub fn mark(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn finish(&mut self) {
        self.total = Some(self.mark());
    }

    /// The `-v` block, one phase per line, like `curl -w` (milliseconds since start).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let src = match self.path_source {
            Some(PathSource::Client) => "client (no probe)",
            Some(PathSource::Probe) => "probe",
            Some(PathSource::Cache) => "cache (no probe)",
            Some(PathSource::Direct) => "nowhere: a plain URL, no SRH, no hopstack",
            None => "-",
        };
        s.push_str(&format!("* path from {src}\n"));
        if self.connect_record {
            s.push_str("* connected from the path's connect record (destination, port, SRH)\n");
        }
        for h in &self.hops {
            let name = if h.name.is_empty() {
                "-".to_owned()
            } else {
                h.name.clone()
            };
            s.push_str(&format!(
                "*   hop {} {:<20} {:<39} resolved by {}{}{}\n",
                h.hop,
                name,
                h.address,
                h.resolved_by,
                h.trace_status
                    .as_deref()
                    .map(|t| format!(", trace {t}"))
                    .unwrap_or_default(),
                if h.fast_path {
                    format!(", reached at {} (kernel End)", h.segment)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(port) = self.udp_ingress {
            s.push_str(&format!(
                "* first hop reached in UDP at port {port}: its path drops routing headers ({})\n",
                if self.udp_fallback {
                    "the bare probe met only silence; this choice is cached"
                } else {
                    "cached choice"
                }
            ));
        }
        if let Some(p) = self.port {
            s.push_str(&format!(
                "* port {p}{}\n",
                if self.direct_port {
                    " (the service's direct port: hopd not in the connection)"
                } else {
                    ""
                }
            ));
        }
        let rows = [
            ("dns", self.dns),
            ("probe", self.probe),
            ("connect", self.connect),
            ("tls", self.tls),
            ("first byte", self.first_byte),
            ("total", self.total),
        ];
        for (name, d) in rows {
            match d {
                Some(d) => s.push_str(&format!(
                    "* time {name:<11} {:>10.3} ms\n",
                    d.as_secs_f64() * 1e3
                )),
                None => s.push_str(&format!("* time {name:<11} {:>10} \n", "-")),
            }
        }
        if let Some(st) = self.http_status {
            s.push_str(&format!("* http status {st}\n"));
        }
        s.push_str(&format!("* bytes {}\n", self.bytes));
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_ms_and_nulls() {
        let mut t = Timings::start();
        t.dns = Some(Duration::from_micros(1500));
        t.path_source = Some(PathSource::Cache);
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v["dns"], serde_json::json!(1.5));
        assert!(v["probe"].is_null());
        assert_eq!(v["path_source"], "cache");
        assert_eq!(v["probed"], false);
        let r = t.render();
        assert!(r.contains("* path from cache (no probe)\n"), "{r}");
        assert_eq!(v["connect_record"], false);
        t.connect_record = true;
        let r = t.render();
        assert!(
            r.contains(
                "* path from cache (no probe)\n\
                 * connected from the path's connect record (destination, port, SRH)\n"
            ),
            "{r}"
        );
        assert!(r.contains("* time dns              1.500 ms"), "{r}");
        assert_eq!(v["port"], serde_json::Value::Null);
        assert_eq!(v["direct_port"], false);
        t.port = Some(8080);
        t.direct_port = true;
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(
            (v["port"].clone(), v["direct_port"].clone()),
            (8080.into(), true.into())
        );
        assert!(
            t.render()
                .contains("* port 8080 (the service's direct port"),
            "{}",
            t.render()
        );
    }
}
