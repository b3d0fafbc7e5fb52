//! The hidden helper modes (`__http`, `__ping`, `__tcp-send` …) the harness runs on the nodes.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hopstack_benches::traffic;

use crate::SMALL_PAYLOAD;

/// Runs the helper mode `args` (the command line after the program name) names; `None` when
/// it names none, and the harness itself is to run.
pub fn run(args: &[String]) -> Option<Result<()>> {
    let r = match args.first().map(String::as_str) {
        Some("__http") if args.len() == 3 => serve_http(&args[1], Path::new(&args[2]), None),
        Some("__http") if args.len() == 5 => serve_http(
            &args[1],
            Path::new(&args[2]),
            Some((Path::new(&args[3]), &args[4])),
        ),
        Some("__ping") if args.len() >= 5 => ping(&args[1..]),
        Some("__tcp-sink") if args.len() == 2 => {
            args[1].parse().context("port").and_then(traffic::tcp_sink)
        }
        Some("__tcp-send") if args.len() == 6 => tcp_send(&args[1..]),
        Some("__udp-flood") if args.len() == 6 => udp_flood(&args[1..]),
        Some("__frame-flood") if args.len() == 4 => frame_flood(&args[1..]),
        Some("__udp-count") if args.len() == 3 => {
            args[1].parse().context("port").and_then(|port| {
                let secs: f64 = args[2].parse().context("seconds")?;
                println!("{}", traffic::udp_count(port, secs)?);
                Ok(())
            })
        }
        _ => return None,
    };
    Some(r)
}

/// `via` on the helper command lines: comma-separated segments, `-` for none.
fn parse_via(s: &str) -> Result<Vec<Ipv6Addr>> {
    if s == "-" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|a| a.parse().with_context(|| format!("segment {a:?}")))
        .collect()
}

/// `__ping DST COUNT GAP_MS VIA...`: rounds of one echo by way of each VIA in turn; one line
/// per answered echo, `PATH_INDEX RTT_MS`.
fn ping(a: &[String]) -> Result<()> {
    let paths = a[3..]
        .iter()
        .map(|v| parse_via(v))
        .collect::<Result<Vec<_>>>()?;
    let rtts = traffic::ping(
        a[0].parse().context("destination")?,
        &paths,
        a[1].parse().context("count")?,
        Duration::from_millis(a[2].parse().context("gap")?),
    )?;
    for (i, path) in rtts.iter().enumerate() {
        for r in path {
            println!("{i} {r:.4}");
        }
    }
    Ok(())
}

/// `DST PORT VIA SECS N`, the command line of the senders `__tcp-send` (N streams) and
/// `__udp-flood` (N flows).
struct Flows {
    dst: Ipv6Addr,
    port: u16,
    via: Vec<Ipv6Addr>,
    secs: f64,
    count: usize,
}

impl Flows {
    /// `count_is`: what N counts, for the error message.
    fn parse(a: &[String], count_is: &'static str) -> Result<Flows> {
        Ok(Flows {
            dst: a[0].parse().context("destination")?,
            port: a[1].parse().context("port")?,
            via: parse_via(&a[2])?,
            secs: a[3].parse().context("seconds")?,
            count: a[4].parse().context(count_is)?,
        })
    }
}

/// `__tcp-send DST PORT VIA SECS STREAMS`: prints the goodput in Gbit/s.
fn tcp_send(a: &[String]) -> Result<()> {
    let f = Flows::parse(a, "streams")?;
    let g = traffic::tcp_send(f.dst, f.port, &f.via, f.secs, f.count)?;
    println!("{g:.4}");
    Ok(())
}

/// `__udp-flood DST PORT VIA SECS FLOWS`: 64-octet datagrams; prints how many were sent.
fn udp_flood(a: &[String]) -> Result<()> {
    let f = Flows::parse(a, "flows")?;
    let sent = traffic::udp_flood(f.dst, f.port, &f.via, f.secs, f.count, SMALL_PAYLOAD)?;
    println!("{sent}");
    Ok(())
}

/// `__frame-flood IFNAME FILE SECS`: the frames in FILE (one hex line each) round-robin;
/// prints how many were sent.
fn frame_flood(a: &[String]) -> Result<()> {
    let text = std::fs::read_to_string(&a[1])?;
    let frames: Vec<Vec<u8>> = text
        .lines()
        .map(|l| {
            (0..l.len() / 2)
                .map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).context("hex"))
                .collect()
        })
        .collect::<Result<_>>()?;
    let sent = traffic::frame_flood(&a[0], &frames, a[2].parse()?)?;
    println!("{sent}");
    Ok(())
}

/// The service behind every path: a static HTTP/1.1 server that writes each response in one
/// `write` on a TCP_NODELAY socket, so the server adds no Nagle/delayed-ACK wait of its own
/// that would blur the difference between the paths.
///
/// With `handoff = Some((control socket, service))` the same process also registers with hopd
/// (hand-off mode) and serves the connections hopd passes it exactly like the ones it accepts
/// itself: one service, reachable directly and by stack address.
fn serve_http(bind: &str, root: &Path, handoff: Option<(&Path, &str)>) -> Result<()> {
    let bind: SocketAddr = bind.parse().context("bind address")?;
    let l = std::net::TcpListener::bind(bind).with_context(|| format!("bind {bind}"))?;
    if let Some((control, service)) = handoff {
        // hopd may start after us: its control socket appears when it is ready.
        let t0 = Instant::now();
        let reg = loop {
            match hopstack_forwarder::service::Listener::register_at(control, service) {
                Ok(r) => break r,
                Err(e) if t0.elapsed() > Duration::from_secs(15) => {
                    bail!("registering `{service}` at {}: {e}", control.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let root = root.to_owned();
        std::thread::spawn(move || {
            for conn in &reg {
                let Ok((s, _meta)) = conn else { break };
                let root = root.clone();
                std::thread::spawn(move || answer_http(s, &root));
            }
        });
    }
    for conn in l.incoming() {
        let Ok(s) = conn else { continue };
        let root = root.to_owned();
        std::thread::spawn(move || answer_http(s, &root));
    }
    Ok(())
}

fn answer_http(mut s: std::net::TcpStream, root: &Path) {
    use std::io::{BufRead, BufReader, Write};
    let _ = s.set_nodelay(true);
    let Ok(c) = s.try_clone() else { return };
    let mut r = BufReader::new(c);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        match r.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match (
        path.contains(".."),
        std::fs::read(root.join(path.trim_start_matches('/'))),
    ) {
        (false, Ok(b)) => ("200 OK", b),
        _ => ("404 Not Found", b"not found\n".to_vec()),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let _ = s.write_all(&resp);
}
