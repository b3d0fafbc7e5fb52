//! The fault matrix of docs/trace.md ("Fault matrix"): every fault hopbed can inject on the
//! three-hop path, each seen by `hop get --no-cache`, `hop get` over a path it cached before
//! the fault, `hoptrace --json` and `hoptrace`'s table — all four must name the same hop, layer
//! and reason, the one the table documents. A cached request may also still succeed, where the
//! fault is off the path it cached (a name it no longer asks for). Needs what three_hop.rs
//! needs (`cargo build --workspace --bins`, access to `/dev/net/tun`).

mod support;

use std::fmt;
use std::time::{Duration, Instant};

use hopstack_testbed::DnsFault;
use support::{Bed, sibling, trace_json, trace_text};

const API: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";
const UDP: &str = "github.com>org>yc:udp+uecho";

/// What a tool said: a failure at (hop from 1, layer, reason), or success.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Ok,
    Failed {
        hop: u64,
        layer: String,
        reason: String,
    },
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Ok => f.write_str("ok"),
            Seen::Failed { hop, layer, reason } => write!(f, "hop {hop}, {layer}, {reason}"),
        }
    }
}

fn failed(hop: u64, layer: &str, reason: &str) -> Seen {
    Seen::Failed {
        hop,
        layer: layer.into(),
        reason: reason.into(),
    }
}

/// What a request over a path cached before the fault must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cached {
    /// The same as without the cache (the probe after the failure explains it).
    Same,
    /// Success: the fault is off the cached path (a name the client no longer asks for).
    Ok,
    /// `hop` has no way to ask for this fault (hoptrace's `--hop-limit`).
    NotApplicable,
}

/// One row of the matrix: the fault, how to undo it, the address and extra arguments, and
/// what every tool must say.
struct Fault {
    name: String,
    address: &'static str,
    hop_args: &'static [&'static str],
    trace_args: &'static [&'static str],
    want: Seen,
    cached: Cached,
}

impl Fault {
    fn new(name: impl Into<String>, want: Seen) -> Fault {
        Fault {
            name: name.into(),
            address: API,
            hop_args: &[],
            trace_args: &[],
            want,
            cached: Cached::Same,
        }
    }

    fn address(self, address: &'static str) -> Fault {
        Fault { address, ..self }
    }

    fn args(self, hop_args: &'static [&'static str], trace_args: &'static [&'static str]) -> Fault {
        Fault {
            hop_args,
            trace_args,
            ..self
        }
    }

    fn cached(self, cached: Cached) -> Fault {
        Fault { cached, ..self }
    }
}

/// The four tools' verdicts on one fault, and how long the cached request took.
struct Row {
    fault: String,
    no_cache: Option<Seen>,
    cached: Option<(Seen, Duration)>,
    trace_json: Seen,
    trace_table: Seen,
}

/// `hop get` (or `hop cat` for a UDP address) on the client, with `--json`: the verdict from
/// its JSON object on stderr and the time it took.
fn hop(bed: &Bed, address: &str, extra: &[&str], cache: Option<&str>) -> (Seen, Duration) {
    let hop = sibling("hop");
    let ca = bed.ca("ca.pem");
    let udp = address.contains(":udp+");
    let mut args: Vec<&str> = vec![if udp { "cat" } else { "get" }, "--json"];
    if !udp {
        args.extend(["--cacert", &ca]);
    }
    args.extend(["--connect-timeout", "2"]);
    match cache {
        Some(file) => args.extend(["--cache-file", file]),
        None => args.push("--no-cache"),
    }
    args.extend(extra);
    args.push(address);
    let mut c = bed.tb.command("client", hop.to_str().unwrap()).unwrap();
    c.args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    // `hop cat` sends what it reads: one datagram for the echo service to answer.
    let mut stdin = child.stdin.take().unwrap();
    if udp {
        let _ = std::io::Write::write_all(&mut stdin, b"ping\n");
    }
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        return (Seen::Ok, took);
    }
    let v: serde_json::Value = stderr
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("hop {args:?} printed no JSON:\n{stderr}"));
    let e = &v["error"];
    let seen = failed(
        e["hop"]["hop"].as_u64().unwrap_or(0),
        e["layer"].as_str().unwrap_or("?"),
        e["reason"].as_str().unwrap_or("?"),
    );
    (seen, took)
}

/// hoptrace's first failure as JSON; a layer row is the final hop's (3).
fn trace_verdict(v: &serde_json::Value) -> Seen {
    if v["ok"] == true {
        return Seen::Ok;
    }
    let f = &v["first_failure"];
    failed(
        f["hop"].as_u64().unwrap_or(3),
        f["problem"]["layer"].as_str().unwrap_or("?"),
        f["problem"]["reason"].as_str().unwrap_or("?"),
    )
}

/// hoptrace's table: its last lines say `OK: ...` or `FAILED at hop N (...)` / `FAILED at the
/// final hop (...)`, then `, layer L: REASON`.
fn table_verdict(t: &str) -> Seen {
    if t.contains("OK: every hop and layer answered") {
        return Seen::Ok;
    }
    let line = t
        .lines()
        .find(|l| l.starts_with("FAILED at "))
        .unwrap_or_else(|| panic!("no verdict line:\n{t}"));
    let hop = match line.strip_prefix("FAILED at hop ") {
        Some(rest) => rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        None if line.starts_with("FAILED at the final hop") => 3,
        None => 0,
    };
    let (_, tail) = line.rsplit_once(", layer ").expect("`, layer `");
    let (layer, reason) = tail.split_once(": ").expect("`layer: reason`");
    failed(hop, layer, reason.trim())
}

/// Runs every tool on `fault` after `inject` and returns the row; `heal` undoes the fault.
fn observe(bed: &Bed, fault: &Fault, inject: impl FnOnce(&Bed), heal: impl FnOnce(&Bed)) -> Row {
    let cache = bed
        .dir
        .path()
        .join(format!("{}.cache.json", fault.name.replace(' ', "-")));
    let cache = cache.to_str().unwrap().to_owned();
    let warm = fault.cached != Cached::NotApplicable;
    if warm {
        // The path the cached request will use, learnt while everything works.
        let healthy = if fault.address == UDP { UDP } else { API };
        // Until it works: the previous fault's answers may live on in a cache for a TTL.
        let t0 = Instant::now();
        loop {
            let (seen, _) = hop(bed, healthy, &[], Some(&cache));
            if seen == Seen::Ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{}: warming the cache: {seen}",
                fault.name
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    inject(bed);
    let cached = warm.then(|| hop(bed, fault.address, fault.hop_args, Some(&cache)));
    let no_cache = warm.then(|| hop(bed, fault.address, fault.hop_args, None).0);
    let ca = bed.ca("ca.pem");
    let mut args = vec!["--cacert", &ca];
    args.extend(fault.trace_args);
    args.push(fault.address);
    let (_, v, _) = trace_json(&bed.tb, "client", &args);
    let (_, t) = trace_text(&bed.tb, "client", &args);
    heal(bed);
    Row {
        fault: fault.name.clone(),
        no_cache,
        cached,
        trace_json: trace_verdict(&v),
        trace_table: table_verdict(&t),
    }
}

/// Checks every cell of `rows` against its fault's expectation; prints the matrix either way.
fn check(faults: &[Fault], rows: &[Row]) {
    let mut wrong = Vec::new();
    eprintln!(
        "{:<38} | {:<38} | {:<38} | {:<38} | {:<38}",
        "fault", "hop get --no-cache", "hop get (cached)", "hoptrace --json", "hoptrace"
    );
    for (f, r) in faults.iter().zip(rows) {
        let cached_want = match f.cached {
            Cached::Same => Some(f.want.clone()),
            Cached::Ok => Some(Seen::Ok),
            Cached::NotApplicable => None,
        };
        let cells = [
            (
                "hop get --no-cache",
                r.no_cache.clone(),
                f.cached.ne(&Cached::NotApplicable).then(|| f.want.clone()),
            ),
            (
                "hop get (cached)",
                r.cached.as_ref().map(|c| c.0.clone()),
                cached_want,
            ),
            (
                "hoptrace --json",
                Some(r.trace_json.clone()),
                Some(f.want.clone()),
            ),
            (
                "hoptrace",
                Some(r.trace_table.clone()),
                Some(f.want.clone()),
            ),
        ];
        let text = |s: &Option<Seen>| s.as_ref().map_or("n/a".to_owned(), |s| s.to_string());
        let took = r
            .cached
            .as_ref()
            .map_or(String::new(), |c| format!(" ({} ms)", c.1.as_millis()));
        eprintln!(
            "{:<38} | {:<38} | {:<38} | {:<38} | {:<38}",
            r.fault,
            text(&cells[0].1),
            format!("{}{took}", text(&cells[1].1)),
            text(&cells[2].1),
            text(&cells[3].1)
        );
        for (tool, seen, want) in cells {
            if seen != want {
                wrong.push(format!(
                    "{}: {tool} said {}, the matrix says {}",
                    r.fault,
                    text(&seen),
                    text(&want)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn links_down() {
    let bed = Bed::start();
    // The hop that cannot be reached; the client's own link down leaves it no route at all.
    let links = [
        ("client", "github.com", failed(1, "route", "no-route")),
        ("github.com", "org", failed(2, "route", "unreachable")),
        ("org", "yc", failed(3, "route", "unreachable")),
    ];
    let faults = links
        .iter()
        .map(|(a, b, want)| Fault::new(format!("link {a}-{b} down"), want.clone()));
    run_matrix(
        &bed,
        &faults.collect::<Vec<_>>(),
        |bed, i| bed.tb.link_down(links[i].0, links[i].1).unwrap(),
        |bed, i| {
            bed.tb.link_up(links[i].0, links[i].1).unwrap();
            bed.wait_healthy();
        },
    );
}

/// Observes every fault on one bed in turn (`inject(i)` before the i-th, `heal(i)` after)
/// and checks the rows against the matrix.
fn run_matrix(
    bed: &Bed,
    faults: &[Fault],
    inject: impl Fn(&Bed, usize),
    heal: impl Fn(&Bed, usize),
) {
    let rows: Vec<Row> = faults
        .iter()
        .enumerate()
        .map(|(i, f)| observe(bed, f, |b| inject(b, i), |b| heal(b, i)))
        .collect();
    check(faults, &rows);
}

/// Each DNS view failing the one name it answers for: the name's own hop, layer route.
fn dns_faults(kind: DnsFault) {
    let bed = Bed::start();
    let reason = match kind {
        DnsFault::Nxdomain => "nxdomain",
        DnsFault::Servfail => "servfail",
        DnsFault::Timeout => "dns-timeout",
    };
    let views = [
        ("internet", "github.com", 1),
        ("github", "org", 2),
        ("org", "yc", 3),
    ];
    let faults: Vec<Fault> = views
        .iter()
        .map(|&(view, name, hop)| {
            // A cached path lists every hop's address: no hop asks DNS for it again.
            Fault::new(
                format!("{view} view: {name} {reason}"),
                failed(hop, "route", reason),
            )
            .cached(Cached::Ok)
        })
        .collect();
    run_matrix(
        &bed,
        &faults,
        |bed, i| {
            bed.tb
                .dns_fault(views[i].0, views[i].1, Some(kind))
                .unwrap();
            // hopd caches answers for their TTL (1 s in this topology).
            std::thread::sleep(Duration::from_millis(1500));
        },
        |bed, i| {
            bed.tb.dns_fault(views[i].0, views[i].1, None).unwrap();
            // hopd keeps a failed lookup for its negative TTL too.
            bed.wait_healthy();
        },
    );
}

fn dns_nxdomain() {
    dns_faults(DnsFault::Nxdomain);
}

fn dns_servfail() {
    dns_faults(DnsFault::Servfail);
}

fn dns_timeout() {
    dns_faults(DnsFault::Timeout);
}

fn hopds_stopped() {
    let bed = Bed::start();
    let nodes = [
        ("github.com", failed(1, "route", "unreachable")),
        ("org", failed(2, "route", "unreachable")),
        ("yc", failed(3, "service", "no-hopd")),
    ];
    let faults = nodes
        .iter()
        .map(|(node, want)| Fault::new(format!("hopd on {node} stopped"), want.clone()));
    run_matrix(
        &bed,
        &faults.collect::<Vec<_>>(),
        |bed, i| bed.tb.kill(nodes[i].0, "hopd").unwrap(),
        |bed, i| {
            bed.tb.restart(nodes[i].0, "hopd").unwrap();
            bed.wait_healthy();
        },
    );
}

/// What goes wrong at the final hop itself, and a hop limit that runs out on the way.
fn final_hop_faults() {
    let bed = Bed::start();
    let nothing = |_: &Bed| {};
    let faults = [
        Fault::new(
            "service process stopped",
            failed(3, "service", "service-down"),
        ),
        Fault::new("unknown service", failed(3, "service", "unknown-service"))
            .address("github.com>org>yc:tcp+http+nosuch/"),
        Fault::new("layer mismatch", failed(3, "service", "layer-mismatch"))
            .address("github.com>org>yc:tcp+http+restapiv3/users/list"),
        Fault::new("TLS name mismatch", failed(3, "tls", "tls-certificate"))
            .args(&["--sni", "other.example"], &["--sni", "other.example"]),
        Fault::new("HTTP error", failed(3, "http", "http-503"))
            .address("github.com>org>yc:tcp+http+broken/x"),
        Fault::new("UDP service stopped", failed(3, "service", "service-down")).address(UDP),
        Fault::new(
            "hop limit too small",
            failed(1, "route", "hop-limit-exceeded"),
        )
        .args(&[], &["--hop-limit", "1"])
        .cached(Cached::NotApplicable),
    ];
    let rows = vec![
        observe(
            &bed,
            &faults[0],
            |bed| bed.tb.kill("yc", "http").unwrap(),
            |bed| {
                bed.tb.restart("yc", "http").unwrap();
                bed.wait_healthy();
            },
        ),
        observe(&bed, &faults[1], nothing, nothing),
        observe(&bed, &faults[2], nothing, nothing),
        observe(&bed, &faults[3], nothing, nothing),
        observe(&bed, &faults[4], nothing, nothing),
        observe(
            &bed,
            &faults[5],
            |bed| bed.tb.kill("yc", "udp-echo").unwrap(),
            |bed| {
                bed.tb.restart("yc", "udp-echo").unwrap();
            },
        ),
        observe(&bed, &faults[6], nothing, nothing),
    ];
    check(&faults, &rows);
}

hopstack_testbed::tests! {
    links_down needs [Tun],
    dns_nxdomain needs [Tun],
    dns_servfail needs [Tun],
    dns_timeout needs [Tun],
    hopds_stopped needs [Tun],
    final_hop_faults needs [Tun],
}
