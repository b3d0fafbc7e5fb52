//! `hop`: the hopstack client. The logic lives in the library (`hopstack_encoder::encode`,
//! `wire::*`, `pcap`); this binary only parses arguments, reads the clock and does I/O.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use hopstack_client::ErrorLayer;

use hopstack_encoder::StackAddress;
use hopstack_encoder::encode::{self, DEFAULT_SERVICE_PORT};
use hopstack_encoder::pcap::{LinkType, PcapWriter, Timestamp};
use hopstack_encoder::wire::packet::{self, Ipv6Fields, TcpSyn, Upper};

include!("../hop_cli.rs");

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(c) => ExitCode::from(hopstack_client::cli::run(*c)),
        Command::Encode(args) => match run_encode(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure { message, code }) => {
                eprintln!("{message}");
                ExitCode::from(code)
            }
        },
    }
}

struct Failure {
    message: String,
    code: u8,
}

/// The exit codes of `hop encode` are those of every hop subcommand
/// (`ErrorLayer::exit_code`, the table in `hop --help`): 2 a bad command line, 3 an address
/// that does not parse or cannot be encoded, 1 anything local.
fn usage(message: String) -> Failure {
    let code = ErrorLayer::Usage.exit_code();
    Failure { message, code }
}

fn bad_address(message: String) -> Failure {
    let code = ErrorLayer::Address.exit_code();
    Failure { message, code }
}

fn failed(message: String) -> Failure {
    let code = ErrorLayer::Local.exit_code();
    Failure { message, code }
}

fn parse_overrides(list: &[String]) -> Result<HashMap<String, Ipv6Addr>, Failure> {
    let mut map = HashMap::new();
    for item in list {
        let Some((name, addr)) = item.split_once('=') else {
            return Err(usage(format!(
                "hop: --resolve {item:?}: expected NAME=ADDR, e.g. --resolve github.com=2001:db8::1"
            )));
        };
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let a: Ipv6Addr = bare.parse().map_err(|_| {
            usage(format!(
                "hop: --resolve {item:?}: {addr:?} is not an IPv6 address"
            ))
        })?;
        map.insert(name.to_ascii_lowercase(), a);
    }
    Ok(map)
}

fn default_nonce() -> u32 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(16) ^ std::process::id()
}

fn run_encode(args: &EncodeArgs) -> Result<(), Failure> {
    let addr = StackAddress::parse(&args.address).map_err(|e| {
        let report = hopstack_client::error::address_error_report("hop", &args.address, &e);
        bad_address(report.trim_end().to_owned())
    })?;
    let overrides = parse_overrides(&args.resolve)?;
    let resolve = |name: &str| overrides.get(name).copied();

    let srh = if args.probe {
        let nonce = match &args.nonce {
            Some(h) => u32::from_str_radix(h.trim_start_matches("0x"), 16)
                .map_err(|_| usage(format!("hop: --nonce {h:?}: expected up to 8 hex digits")))?,
            None => default_nonce(),
        };
        encode::build_probe_srh(&addr, &resolve, args.source, args.sport, nonce)
    } else {
        encode::build_srh(&addr, &resolve)
    }
    .map_err(|e| match e {
        // `encode` resolves nothing: the remedy is an argument (--resolve, a literal).
        encode::EncodeError::FirstHopUnresolved { .. } => usage(format!("hop: {e}")),
        _ => bad_address(format!("hop: layer {}: {e}", ErrorLayer::Address)),
    })?;
    let srh_bytes = srh.to_bytes().map_err(|e| {
        bad_address(format!(
            "hop: layer {}: cannot emit the SRH: {e}",
            ErrorLayer::Address
        ))
    })?;

    let out = std::io::stdout();
    let mut out = out.lock();
    if args.hex_only {
        let _ = writeln!(out, "{}", hex::encode(&srh_bytes));
    } else {
        let _ = writeln!(out, "Stack address: {}", args.address);
        let _ = write!(out, "{}", encode::render_tree(&srh));
        let _ = writeln!(out, "SRH bytes ({} octets):", srh_bytes.len());
        for (i, chunk) in srh_bytes.chunks(16).enumerate() {
            let words: Vec<String> = chunk.chunks(2).map(hex::encode).collect();
            let _ = writeln!(out, "    {:04x}  {}", i * 16, words.join(" "));
        }
    }

    if let Some(path) = &args.pcap {
        let udp =
            args.probe || args.udp || (!args.tcp && encode::transport_next_header(&addr) == 17);
        let upper = if udp {
            Upper::Udp {
                src_port: args.sport,
                dst_port: args.port,
                payload: &[],
            }
        } else {
            // MSS for a 1500-octet path MTU, minus the SRH this connection carries on every
            // segment (the kernel does the same with an IPV6_RTHDR socket option).
            let mss = 1500 - packet::IPV6_HEADER_LEN - srh_bytes.len() - packet::TCP_HEADER_LEN;
            Upper::TcpSyn(TcpSyn {
                src_port: args.sport,
                dst_port: args.port,
                seq: default_nonce(),
                window: 64800,
                mss: Some(mss as u16),
            })
        };
        let mut buf = [0u8; 4096];
        let n = packet::build(&mut buf, &Ipv6Fields::new(args.source), &srh_bytes, &upper)
            .map_err(|e| failed(format!("hop: cannot build the packet: {e}")))?;
        let link = match args.link {
            Link::Raw => LinkType::Raw,
            Link::Ethernet => LinkType::Ethernet,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ts = Timestamp {
            secs: now.as_secs() as u32,
            micros: now.subsec_micros(),
        };
        let write = || -> std::io::Result<()> {
            let f = std::fs::File::create(path)?;
            let mut w = PcapWriter::new(std::io::BufWriter::new(f), link)?;
            w.write_packet(ts, &buf[..n])?;
            w.flush()
        };
        write().map_err(|e| failed(format!("hop: writing {}: {e}", path.display())))?;
        if !args.hex_only {
            // The IPv6 destination is the active segment; the final hop is Segment List[0].
            let first_hop = srh.segments[usize::from(srh.segments_left)];
            let final_hop = srh.segments[0];
            let _ = writeln!(
                out,
                "Wrote {} ({} octets: [{}]:{} -> [{}]:{}, final hop {}) to {}",
                if udp { "UDP datagram" } else { "TCP SYN" },
                n,
                args.source,
                args.sport,
                first_hop,
                args.port,
                final_hop,
                path.display()
            );
        }
    }
    Ok(())
}
