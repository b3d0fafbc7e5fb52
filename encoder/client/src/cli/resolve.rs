//! `hop resolve`: the resolved path, as a table or one JSON object.

use std::io::Write;

use hopstack_encoder::layer::Layer;

use super::args::ResolveArgs;
use super::connect::connector;
use crate::error::ClientError;
use crate::resolve;
use crate::timing::{PathSource, Timings};

pub(super) async fn resolve_cmd(a: &ResolveArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = connector(c, false)?;
    let path = ctx.path(a.probe, t).await?;
    t.hops = path.hop_timings();
    let names: Vec<String> = path.hops.iter().map(|h| h.name.clone()).collect();
    let mut out = std::io::stdout().lock();
    if c.json {
        let hops: Vec<serde_json::Value> = path
            .hops
            .iter()
            .enumerate()
            .map(|(i, h)| {
                serde_json::json!({
                    "hop": i + 1,
                    "name": h.name,
                    "address": h.address.to_string(),
                    "resolved_by": h.resolved_by.describe(&names),
                    "kernel_end_sid": h.kernel_end_sid.map(|s| s.to_string()),
                    "segment": path.segment(i).0.to_string(),
                    "fast_path": path.segment(i).1,
                })
            })
            .collect();
        let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
        // One object: the timings go in it, not in a second object on stderr (`finish`).
        t.finish();
        let timings: serde_json::Value =
            serde_json::from_str(&t.to_json()).unwrap_or(serde_json::Value::Null);
        let v = serde_json::json!({
            "address": c.address,
            "source": path.source,
            "expires": path.expires,
            "hops": hops,
            "advertised_direct_port": path.direct_port,
            "port": port,
            "direct_port": direct,
            "timings": timings,
        });
        let _ = writeln!(out, "{v}");
        t.printed = true;
    } else {
        // The kernel End SID column only when some hop offers one (shown even with
        // --no-fast-path: it is what the hop offers); RESOLVED BY stays last.
        let sids = path.hops.iter().any(|h| h.kernel_end_sid.is_some());
        let sid_col = |s: &str| {
            if sids {
                format!("{s:<40} ")
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            out,
            "{:<4} {:<24} {:<40} {}RESOLVED BY",
            "HOP",
            "NAME",
            "ADDRESS",
            sid_col("KERNEL END SID")
        );
        for (i, h) in path.hops.iter().enumerate() {
            let name = if h.name.is_empty() {
                "-"
            } else {
                h.name.as_str()
            };
            let sid = h
                .kernel_end_sid
                .map_or_else(|| "-".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{:<4} {:<24} {:<40} {}{}",
                i + 1,
                name,
                h.address,
                sid_col(&sid),
                h.resolved_by.describe(&names)
            );
        }
        let src = match path.source {
            PathSource::Client => "client (no probe needed)",
            PathSource::Probe => "probe",
            PathSource::Cache => "cache",
            PathSource::Direct => "nowhere (a plain URL)",
        };
        let _ = writeln!(
            out,
            "path from {src}; valid for {} s",
            path.expires.saturating_sub(resolve::unix_now())
        );
        // What a request would connect to: TCP, and QUIC (`hop get` over udp+quic+h3), use
        // the direct port; `hop cat` over plain udp always goes to hopd's relay.
        let quic = ctx.address().upper_layers().first() == Some(&Layer::Quic);
        if ctx.address().transport() == Layer::Tcp || quic {
            let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
            let how = match path.direct_port {
                _ if direct => "the service's direct port: hopd is not in the connection",
                Some(_) if c.no_fast_path => "hopd; --no-fast-path leaves the direct port out",
                Some(_) => "hopd; --port was given",
                None => "hopd",
            };
            let what = if quic { "quic" } else { "tcp" };
            let _ = writeln!(out, "{what} requests connect to port {port} ({how})");
        }
    }
    Ok(())
}
