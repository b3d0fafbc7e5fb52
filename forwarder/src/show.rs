//! `hopd show cache|pending|services|sessions|sids`: the live state of a running hopd, as
//! `birdc show …` or `wg show` give it for routers. The running hopd serves each view as JSON
//! at `GET /show/<view>` on its `[metrics] listen` address; `hopd show` fetches it and prints
//! a table (or the JSON with `--json`).
//!
//! What the views say is this host's own state (inside names and addresses, backend targets):
//! the metrics listener should stay on loopback or a management network.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use serde::Serialize;
use serde_json::{Value, json};

use crate::border::Shared;
use crate::border::process::Binding;
use crate::final_hop::View as FinalHopView;

/// A view of `hopd show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// The border's name cache: each name, its answer, the time it has left.
    Cache,
    /// Names being resolved and the packets waiting for them.
    Pending,
    /// The final hop's services and the processes registered for them.
    Services,
    /// The final hop's UDP sessions.
    Sessions,
    /// The border's SIDs, kernel End SIDs and their counters.
    Sids,
}

impl What {
    pub fn as_str(self) -> &'static str {
        match self {
            What::Cache => "cache",
            What::Pending => "pending",
            What::Services => "services",
            What::Sessions => "sessions",
            What::Sids => "sids",
        }
    }

    pub fn from_path(path: &str) -> Option<What> {
        let name = path.strip_prefix("/show/")?;
        [
            What::Cache,
            What::Pending,
            What::Services,
            What::Sessions,
            What::Sids,
        ]
        .into_iter()
        .find(|w| w.as_str() == name)
    }
}

/// One name of the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheRow {
    pub name: String,
    /// The address, or the failure (`nxdomain`, `servfail`, `dns-timeout`, `no-aaaa`).
    pub answer: String,
    pub negative: bool,
    pub ttl_left_s: u64,
}

/// The JSON of `what`, from the roles this hopd runs (`null` parts for a role it does not).
pub fn snapshot(what: What, border: Option<&Shared>, final_hop: Option<&FinalHopView>) -> Value {
    match what {
        What::Cache => json!({ "cache": border.map(cache_rows) }),
        What::Pending => json!({ "pending": border.map(pending_rows) }),
        What::Services => json!({ "services": final_hop.map(|f| f.services()) }),
        What::Sessions => json!({ "sessions": final_hop.map(|f| f.sessions()) }),
        What::Sids => json!({ "sids": border.map(sid_rows) }),
    }
}

fn cache_rows(b: &Shared) -> Vec<CacheRow> {
    let now = crate::border::run::monotonic();
    let mut rows: Vec<CacheRow> = Vec::new();
    // Each packet worker keeps its own cache; a name several hold shows once, with the
    // longest time left.
    for w in &b.workers {
        let st = w.state.lock().unwrap_or_else(|p| p.into_inner());
        for (name, binding, left) in st.cache.entries(now) {
            let (answer, negative) = match binding {
                Binding::Addr(a) => (a.to_string(), false),
                Binding::Failed(f) => (f.drop_reason().as_str().to_owned(), true),
            };
            let ttl_left_s = left.as_secs();
            match rows.iter_mut().find(|r| r.name == name) {
                Some(r) if r.ttl_left_s < ttl_left_s => {
                    *r = CacheRow {
                        name,
                        answer,
                        negative,
                        ttl_left_s,
                    }
                }
                Some(_) => {}
                None => rows.push(CacheRow {
                    name,
                    answer,
                    negative,
                    ttl_left_s,
                }),
            }
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PendingRow {
    name: String,
    packets: usize,
    waiting_ms: u64,
    source: Ipv6Addr,
}

fn pending_rows(b: &Shared) -> Vec<PendingRow> {
    let mut rows: Vec<PendingRow> = b
        .workers
        .iter()
        .flat_map(|w| {
            w.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|p| PendingRow {
                    name: p.name.clone(),
                    packets: p.packets,
                    waiting_ms: p.waiting.as_millis() as u64,
                    source: p.source,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct SidRow {
    sid: String,
    kind: &'static str,
    received: u64,
    forwarded: u64,
    dropped: u64,
}

fn sid_rows(b: &Shared) -> Vec<SidRow> {
    let mut rows: Vec<SidRow> = Vec::new();
    let mut kernel_end = Vec::new();
    for w in &b.workers {
        let st = w.state.lock().unwrap_or_else(|p| p.into_inner());
        kernel_end.clone_from(&st.settings().kernel_end_sids);
        for (sid, c) in st.sid_counters() {
            let sid = sid.to_string();
            match rows.iter_mut().find(|r| r.sid == sid) {
                Some(r) => {
                    r.received += c.received;
                    r.forwarded += c.forwarded;
                    r.dropped += c.dropped;
                }
                None => rows.push(SidRow {
                    sid,
                    kind: "hopd",
                    received: c.received,
                    forwarded: c.forwarded,
                    dropped: c.dropped,
                }),
            }
        }
    }
    // The kernel End SIDs are the kernel's routes (counted by `ip -s route`, not here).
    rows.extend(kernel_end.into_iter().map(|k| SidRow {
        sid: format!("{k}/128"),
        kind: "kernel End",
        received: 0,
        forwarded: 0,
        dropped: 0,
    }));
    rows
}

/// `what`'s JSON as a table, one row per entry, columns padded to the widest cell.
pub fn table(what: What, v: &Value) -> String {
    let (rows, columns): (&Value, &[(&str, &str)]) = match what {
        What::Cache => (
            &v["cache"],
            &[
                ("NAME", "name"),
                ("ANSWER", "answer"),
                ("TTL LEFT", "ttl_left_s"),
            ],
        ),
        What::Pending => (
            &v["pending"],
            &[
                ("NAME", "name"),
                ("PACKETS", "packets"),
                ("WAITING MS", "waiting_ms"),
                ("SOURCE /64", "source"),
            ],
        ),
        What::Services => (
            &v["services"],
            &[
                ("SERVICE", "name"),
                ("MODE", "mode"),
                ("LAYERS", "layers"),
                ("TARGET", "target"),
                ("TLS", "tls"),
                ("REGISTERED", "registered"),
            ],
        ),
        What::Sessions => (
            &v["sessions"],
            &[
                ("CLIENT", "client"),
                ("SERVICE", "service"),
                ("IDLE MS", "idle_ms"),
            ],
        ),
        What::Sids => (
            &v["sids"],
            &[
                ("SID", "sid"),
                ("KIND", "kind"),
                ("RECEIVED", "received"),
                ("FORWARDED", "forwarded"),
                ("DROPPED", "dropped"),
            ],
        ),
    };
    let Some(rows) = rows.as_array() else {
        let role = match what {
            What::Services | What::Sessions => "final hop",
            _ => "border",
        };
        return format!("this hopd runs no {role} role\n");
    };
    let cell = |row: &Value, key: &str| -> String {
        match &row[key] {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, k)| cell(r, k)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|c| c[i].len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, parts: Vec<&str>| {
        let mut l = String::new();
        for (i, p) in parts.iter().enumerate() {
            let _ = write!(l, "{p:<w$}  ", w = widths[i]);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, columns.iter().map(|(h, _)| *h).collect());
    for c in &cells {
        line(&mut out, c.iter().map(String::as_str).collect());
    }
    if cells.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::border::process::{ResolveFailure, Settings, State};
    use std::time::Duration;

    #[test]
    fn the_cache_view_lists_names_with_answers_and_ttls_once_per_name() {
        let now = crate::border::run::monotonic();
        let mut a = State::new(Settings::default(), now);
        let mut b = State::new(Settings::default(), now);
        let org: Ipv6Addr = "fc00:2::e".parse().unwrap();
        a.cache
            .insert(b"org", Binding::Addr(org), Duration::from_secs(30), now);
        b.cache
            .insert(b"org", Binding::Addr(org), Duration::from_secs(300), now);
        b.cache.insert(
            b"nosuch",
            Binding::Failed(ResolveFailure::Nxdomain),
            Duration::from_secs(5),
            now,
        );
        let shared = Shared::with_workers(vec![a, b]);
        let v = snapshot(What::Cache, Some(&shared), None);
        let rows = v["cache"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{v}");
        assert_eq!(rows[0]["name"], "nosuch");
        assert_eq!(rows[0]["answer"], "nxdomain");
        assert_eq!(rows[0]["negative"], true);
        assert_eq!(rows[1]["answer"], "fc00:2::e");
        assert!(rows[1]["ttl_left_s"].as_u64().unwrap() >= 299);
        let t = table(What::Cache, &v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("TTL LEFT"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("org ") && lines[2].contains("fc00:2::e"),
            "{t}"
        );
        // A hopd without the role says so instead of an empty table.
        let none = snapshot(What::Services, Some(&shared), None);
        assert_eq!(
            table(What::Services, &none),
            "this hopd runs no final hop role\n"
        );
        assert_eq!(What::from_path("/show/sids"), Some(What::Sids));
        assert_eq!(What::from_path("/show/x"), None);
    }
}
